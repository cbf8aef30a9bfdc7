//! The app's services wired together from the configuration (store, secret
//! store, session, API client, watcher), and every product decision the
//! command line and the window share: what `status` says, what a click on a
//! notification does, what "open results" opens, what pausing means. The
//! CLI and the window call these and stay thin; neither touches the store's
//! keys or the session's internals.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::api::{Account, ApiError, Clinic, FullscriptClient};
use crate::app_state::AppState;
use crate::backoff::RequestBudget;
use crate::clock::Clock;
use crate::config::{Config, ConfigError, Paths};
use crate::lab::LabState;
use crate::notifier::Notifier;
use crate::oauth::{AuthError, OAuthClient, ResourceOwner};
use crate::opener::{OpenError, Opener, UrlGuard};
use crate::policy::{Notification, NotificationAction, NotificationKind};
use crate::secret::Secret;
use crate::secret_store::{self, SecretStore, SecretStoreError};
use crate::session::{AuthState, Session, SignOutReport, SignedOutCause};
use crate::status::{Connection, PushState, WatchStatus};
use crate::store::{ts, Rebuilt, Store, StoreError};
use crate::watcher::{Watcher, WatcherHandle};

pub const CLIENT_SECRET_KEY: &str = "client_secret";

/// "Connected to Maple Grove Integrative Health. 214 existing lab orders
/// recorded; you will be notified of new results from now on."
fn welcome_text(clinic: Option<&str>, orders: usize) -> String {
    let clinic = clinic.unwrap_or("your clinic");
    let orders = match orders {
        1 => "1 existing lab order recorded".to_string(),
        n => format!("{n} existing lab orders recorded"),
    };
    format!("Connected to {clinic}. {orders}; you will be notified of new results from now on.")
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Auth(#[from] AuthError),
    #[error("{0}")]
    Api(#[from] ApiError),
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Secrets(#[from] SecretStoreError),
    #[error("{0}")]
    Open(#[from] OpenError),
    #[error("cannot set up HTTPS: {0}")]
    Http(String),
    #[error(
        "another copy of Fullscript Lab Notifier is already watching this data directory ({0})"
    )]
    AlreadyWatching(PathBuf),
    #[error("no results page is configured for this order")]
    NoResultsLink,
    #[error("this computer's clock or time zone gave an impossible time")]
    Clock,
}

/// `fullscript-notifier status --json`, and what the window shows in its header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StatusReport {
    pub signed_in: bool,
    pub configured: bool,
    pub environment: String,
    pub clinic: Option<Clinic>,
    pub resource_owner: Option<ResourceOwner>,
    pub token_storage: String,
    pub token_storage_note: Option<String>,
    /// No keychain could keep the secrets, so the private file is in use.
    pub token_storage_fallback: bool,
    pub access_token_expires_at: Option<String>,
    pub signed_out_reason: Option<String>,
    pub signed_out_cause: Option<SignedOutCause>,
    /// Fullscript refused the app's registration; the sign-in is kept.
    pub needs_configuration: Option<String>,
    /// How watching goes (connection, last and next check, events feed,
    /// notifications, unreadable records, restarts), as the watcher left it.
    #[serde(flatten)]
    pub watch: WatchStatus,
    /// The orders among them (id → what was wrong).
    pub unreadable_orders: std::collections::BTreeMap<String, String>,
    /// The local database was damaged and rebuilt (results found meanwhile
    /// are listed as unseen, not announced one by one).
    pub local_history_rebuilt: Option<Rebuilt>,
    pub orders_by_state: std::collections::BTreeMap<String, usize>,
    /// Orders in a state this version does not know (state → how many):
    /// listed, never alerting, and said, so a renamed result state cannot
    /// silently stop alerts.
    pub unknown_states: std::collections::BTreeMap<String, usize>,
    pub alerts_pending: usize,
    pub unseen: usize,
    pub paused_until: Option<String>,
    /// The signed-in practitioner's name (or email), for the header.
    pub owner_name: Option<String>,
    /// Lab orders on the list.
    pub orders_total: usize,
    /// After a sign-in, until dismissed: what happened, in words.
    pub welcome: Option<String>,
    /// Results that arrived since the app last watched (after a start, a
    /// wake from sleep or the end of a pause).
    pub catch_up: Option<CatchUp>,
    /// The clinic hours in force (when set).
    pub clinic_hours: Option<crate::schedule::ClinicHours>,
    /// A newer version found by the daily look at the update feed.
    pub update_available: Option<crate::update::UpdateInfo>,
    pub update_checked_at: Option<String>,
    /// Why the last look at the update feed failed, if it did.
    pub update_error: Option<String>,
    /// With a relay: how results reach this computer, in the window's
    /// words ("Live" while pushed, else "Checking every minute"); absent
    /// without one (the header is as it always was).
    pub watch_mode: Option<String>,
    pub config_file: String,
    pub data_dir: String,
}

/// "Checking every minute", "Checking every 5 minutes", "Checking every 30 seconds".
pub fn checking_every(interval: std::time::Duration) -> String {
    let secs = interval.as_secs().max(1);
    match secs {
        60 => "Checking every minute".to_string(),
        3600 => "Checking every hour".to_string(),
        s if s % 3600 == 0 => format!("Checking every {} hours", s / 3600),
        s if s % 60 == 0 => format!("Checking every {} minutes", s / 60),
        s => format!("Checking every {s} seconds"),
    }
}

/// "5 results since Fri 5:12 pm".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CatchUp {
    pub since: String,
    pub results: usize,
}

/// How long a "Mark all seen" can be undone (the window offers it for 10 s;
/// a few more are allowed for the click to arrive).
pub const UNDO_MARK_ALL_SECS: i64 = 15;

/// Where to look when a test notification did not appear.
pub const TEST_NOTIFICATION_HINT: &str =
    "If it did not appear, check that notifications are allowed for \
Fullscript Lab Notifier in your system's settings, and that Focus or Do Not Disturb is off.";

/// What a click on a notification asks of the window, after the core has
/// done its part (marked the results seen, opened them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClickOutcome {
    /// Nothing to show (the result was marked reviewed from the notification).
    Nothing,
    /// Show the window on this order.
    ShowOrder(String),
    /// Show the window on the new, unseen results.
    ShowNewResults,
    /// Show the window (sign-in, app notices).
    ShowWindow,
}

pub struct App {
    pub paths: Paths,
    pub config: Config,
    pub store: Arc<Store>,
    pub secrets: Arc<dyn SecretStore>,
    /// API calls (same-origin redirects only).
    pub http: reqwest::Client,
    /// Token, refresh and revoke calls (never a redirect).
    pub oauth_http: reqwest::Client,
    pub clock: Clock,
    /// The last "Mark all seen" (which alerts, when), for its undo.
    last_marked_all: std::sync::Mutex<Option<(Vec<i64>, DateTime<Utc>)>>,
}

impl App {
    /// Load the configuration, create the data directory (0700), open the
    /// database and the secret store.
    pub fn open(paths: Paths) -> Result<App, AppError> {
        let config = Config::load(&paths.config_file)?;
        for key in &config.unknown_keys {
            tracing::warn!(key, file = %config.path.display(), "unknown configuration key ignored");
        }
        paths
            .ensure_data_dir()
            .map_err(|source| AppError::DataDir {
                path: paths.data_dir.clone(),
                source,
            })?;
        let store = Arc::new(Store::open(&paths.database())?);
        let secrets: Arc<dyn SecretStore> = Arc::from(secret_store::open(
            config.token_storage,
            &paths.data_dir,
            &Self::namespace(&config),
        ));
        if config.relay.is_some() {
            // Left from before the relay: the secret is the relay's now.
            if let Err(e) = secrets.delete(CLIENT_SECRET_KEY) {
                tracing::debug!(error = %e, "could not clear an old client secret");
            }
        }
        let http = crate::http::api_client(config.request_timeout)
            .map_err(|e| AppError::Http(e.to_string()))?;
        let oauth_http = crate::http::oauth_client(config.request_timeout)
            .map_err(|e| AppError::Http(e.to_string()))?;
        Ok(App {
            paths,
            config,
            store,
            secrets,
            http,
            oauth_http,
            clock: Clock::system(),
            last_marked_all: std::sync::Mutex::new(None),
        })
    }

    /// Secrets are kept per environment and application (client id).
    fn namespace(config: &Config) -> String {
        format!(
            "{}/{}",
            config.environment.as_str(),
            config.client_id.as_deref().unwrap_or("unregistered")
        )
    }

    /// The client secret: `FSN_CLIENT_SECRET` or the file, else the secret
    /// store; never with a relay (it adds the secret itself).
    pub fn client_secret(&self) -> Result<Option<Secret>, AppError> {
        if self.config.relay.is_some() {
            return Ok(None);
        }
        if let Some(s) = &self.config.client_secret {
            return Ok(Some(s.clone()));
        }
        Ok(self.secrets.get(CLIENT_SECRET_KEY)?.map(Secret::new))
    }

    pub fn save_client_secret(&self, secret: &Secret) -> Result<(), AppError> {
        if self.config.relay.is_some() {
            tracing::warn!("a client secret was offered but the relay keeps it; not saved");
            return Ok(());
        }
        Ok(self.secrets.set(CLIENT_SECRET_KEY, secret.expose())?)
    }

    pub fn is_configured(&self) -> bool {
        self.config.client_id.is_some()
            && (self.config.relay.is_some() || matches!(self.client_secret(), Ok(Some(_))))
    }

    /// The session for the configured application (not yet loaded).
    pub fn session(&self) -> Result<Arc<Session>, AppError> {
        let client_id = self.config.client_id.clone().ok_or_else(|| {
            AuthError::NotConfigured(format!(
                "no client_id: set it in {} or FSN_CLIENT_ID (see the README's user guide)",
                self.config.path.display()
            ))
        })?;
        let secret = match &self.config.relay {
            // The relay adds the registration's secret to every token call.
            Some(_) => None,
            None => Some(self.client_secret()?.ok_or_else(|| {
                AuthError::NotConfigured(format!(
                    "no client secret: set FSN_CLIENT_SECRET, client_secret in {}, relay_url, or enter it in the app",
                    self.config.path.display()
                ))
            })?),
        };
        let e = &self.config.endpoints;
        let oauth = OAuthClient::new(
            self.oauth_http.clone(),
            e.authorize_url.clone(),
            e.token_url.clone(),
            e.revoke_url.clone(),
            client_id,
            secret,
            self.config.redirect_uri.clone(),
        );
        let store = self.store.clone();
        let session =
            Session::new(oauth, self.secrets.clone()).on_signed_out(Box::new(move |cause| {
                let _ = AppState::of(&store).set_signed_out_reason(Some(cause));
            }));
        Ok(Arc::new(session))
    }

    pub fn api(&self, session: Arc<Session>) -> Arc<FullscriptClient> {
        Arc::new(
            FullscriptClient::new(
                self.http.clone(),
                self.config.endpoints.api_base.clone(),
                session,
                Arc::new(RequestBudget::new(self.config.request_budget_per_5min)),
            )
            .with_clock(self.clock.clone()),
        )
    }

    /// The app's own state (sign-in, pause, notices) in the local database.
    pub fn state(&self) -> AppState<'_> {
        AppState::of(&self.store)
    }

    pub fn account(&self) -> Option<Account> {
        self.state().account().ok().flatten()
    }

    /// Sign in through the browser: `open` receives the authorize URL (to
    /// open and to show for copying). Then fetch the clinic and keep it.
    pub async fn login(
        &self,
        session: &Arc<Session>,
        open: impl FnOnce(&Url),
    ) -> Result<Account, AppError> {
        self.check_reachable().await?;
        let pending = session.oauth().begin_login().await?;
        open(&pending.authorize_url);
        let code = pending.wait(self.config.login_timeout).await?;
        let tokens = session.oauth().exchange_code(code).await?;
        let owner = tokens.resource_owner.clone();
        let grant_id = session.complete_login(tokens).await?;
        let api = self.api(session.clone());
        let clinic = api.clinic().await?;
        let owner_name = match &owner {
            Some(o) => api.owner_name(o).await,
            None => None,
        };
        let account = Account {
            clinic,
            resource_owner: owner,
            grant_id: Some(grant_id),
            owner_name,
        };
        self.remember_account(&account)?;
        self.state().set_welcome_pending(true)?;
        Ok(account)
    }

    /// Fail fast (instead of a browser that never comes back) when
    /// Fullscript cannot be reached at all. Any HTTP answer counts as reachable.
    pub async fn check_reachable(&self) -> Result<(), AppError> {
        let mut probe = self.config.endpoints.token_url.clone();
        probe.set_path("/");
        probe.set_query(None);
        match self.oauth_http.get(probe).send().await {
            Ok(_) => Ok(()),
            Err(e) => Err(AuthError::Unreachable(crate::http::describe_transport(&e)).into()),
        }
    }

    /// Keep the account; a different clinic or practitioner starts a fresh
    /// baseline (their orders are not this list's orders).
    pub fn remember_account(&self, account: &Account) -> Result<(), AppError> {
        if let Some(previous) = self.account() {
            let same_owner = previous.resource_owner.as_ref().map(|o| &o.id)
                == account.resource_owner.as_ref().map(|o| &o.id);
            if previous.clinic.id != account.clinic.id || !same_owner {
                tracing::info!(
                    "a different clinic or practitioner signed in; starting a fresh list"
                );
                self.store.reset_tracking()?;
            }
        }
        self.state().set_account(account)?;
        self.state().set_signed_out_reason(None)?;
        Ok(())
    }

    /// Sign out: revoke at Fullscript (what fails is queued and retried at
    /// the next start), delete the tokens here. With `erase`, also erase
    /// every order, alert and event from the database (and its journal)
    /// and delete the log files and any kept damaged database.
    pub async fn logout(&self, session: &Session, erase: bool) -> SignOutReport {
        let mut report = session.sign_out().await;
        if erase {
            if let Err(e) = self.erase_local_data() {
                report.local_error = Some(e.to_string());
            }
        } else {
            let _ = self
                .state()
                .set_signed_out_reason(Some(&SignedOutCause::User));
        }
        report
    }

    /// The database's patient data, the logs and kept damaged databases.
    pub fn erase_local_data(&self) -> Result<(), AppError> {
        self.store
            .erase(&crate::app_state::signed_out_by_user_mark())?;
        let logs = self.paths.log_dir();
        match std::fs::read_dir(&logs) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    if entry.file_type().is_ok_and(|t| t.is_file()) {
                        // Truncated first: a log still open elsewhere keeps nothing.
                        let _ = std::fs::OpenOptions::new()
                            .write(true)
                            .truncate(true)
                            .open(entry.path());
                        std::fs::remove_file(entry.path()).map_err(|source| AppError::DataDir {
                            path: entry.path(),
                            source,
                        })?;
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(AppError::DataDir { path: logs, source }),
        }
        let damaged_prefix = self
            .paths
            .database()
            .file_name()
            .map(|n| format!("{}.damaged-", n.to_string_lossy()))
            .unwrap_or_default();
        if let Ok(entries) = std::fs::read_dir(&self.paths.data_dir) {
            for entry in entries.flatten() {
                if entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(&damaged_prefix)
                {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        tracing::info!("local data erased");
        Ok(())
    }

    // ------------------------------------------------------------ the list

    /// A click on one of our notifications. A result's: the practitioner is
    /// looking at it now, so it is marked seen, its link opened and its row
    /// shown. A summary's or a digest's: the window opens on the new
    /// results, still new (nobody has looked at each one yet).
    pub fn on_click(&self, n: &Notification, opener: &dyn Opener) -> ClickOutcome {
        let now = Utc::now();
        match &n.kind {
            NotificationKind::Result { order_id } => {
                if let Err(e) = self.store.mark_alerts_seen(&n.alert_ids, now) {
                    tracing::warn!(error = %e, "could not mark the results seen");
                }
                if let Err(e) = self.store.mark_order_seen(order_id, now) {
                    tracing::warn!(error = %e, "could not mark the results seen");
                }
                if let Some(url) = &n.url {
                    if let Err(e) = opener.open(url) {
                        tracing::warn!(error = %e, "could not open results");
                    }
                }
                ClickOutcome::ShowOrder(order_id.clone())
            }
            NotificationKind::Summary { .. } | NotificationKind::Digest { .. } => {
                ClickOutcome::ShowNewResults
            }
            NotificationKind::SignInAgain | NotificationKind::Info | NotificationKind::Test => {
                ClickOutcome::ShowWindow
            }
        }
    }

    /// A button on one of our notifications: "Mark reviewed" marks the
    /// result seen and opens nothing; the default action is a click.
    pub fn on_action(
        &self,
        n: &Notification,
        action: NotificationAction,
        opener: &dyn Opener,
    ) -> ClickOutcome {
        match action {
            NotificationAction::Open => self.on_click(n, opener),
            NotificationAction::MarkReviewed => {
                let now = Utc::now();
                if let Err(e) = self.store.mark_alerts_seen(&n.alert_ids, now) {
                    tracing::warn!(error = %e, "could not mark the results reviewed");
                }
                if let NotificationKind::Result { order_id } = &n.kind {
                    if let Err(e) = self.store.mark_order_seen(order_id, now) {
                        tracing::warn!(error = %e, "could not mark the results reviewed");
                    }
                }
                tracing::info!(
                    kind = n.kind.label(),
                    "marked reviewed from the notification"
                );
                ClickOutcome::Nothing
            }
        }
    }

    /// "Send a test notification": through the same notifier as result
    /// alerts. An error says what failed and where to look.
    pub fn send_test_notification(&self, notifier: &dyn Notifier) -> Result<(), String> {
        let note = crate::policy::test_notification(self.config.sound);
        notifier
            .show(&note)
            .map_err(|e| format!("Could not show a notification: {e}. {TEST_NOTIFICATION_HINT}"))
    }

    /// The welcome after a sign-in was read.
    pub fn dismiss_welcome(&self) -> Result<(), AppError> {
        Ok(self.state().set_welcome_pending(false)?)
    }

    /// The "N results since …" banner was followed or closed.
    pub fn dismiss_catch_up(&self) -> Result<(), AppError> {
        Ok(self.state().set_catch_up_since(None)?)
    }

    /// The link "open results" opens for an order: its newest result
    /// document when that is on an allowed host, else its results page.
    pub fn results_link(&self, order_id: &str) -> Result<Url, AppError> {
        let document = self.store.order_document_url(order_id)?;
        crate::policy::results_link(
            &UrlGuard::new(&self.config),
            &self.config.endpoints,
            order_id,
            document.as_deref(),
        )
        .ok_or(AppError::NoResultsLink)
    }

    /// Open an order's results and mark them seen; answers the URL opened.
    pub fn open_results(&self, order_id: &str, opener: &dyn Opener) -> Result<Url, AppError> {
        let url = self.results_link(order_id)?;
        self.store.mark_order_seen(order_id, Utc::now())?;
        opener.open(&url)?;
        Ok(url)
    }

    /// The status list, newest change first.
    pub fn list_orders(&self) -> Result<Vec<crate::store::OrderRow>, AppError> {
        Ok(self.store.list_orders()?)
    }

    /// The rows the window draws (grouped, filtered, searched) and every
    /// group's count: what the window asks for, whatever the clinic's size.
    pub fn list_page(&self, q: &crate::list::ListQuery) -> Result<crate::list::ListPage, AppError> {
        let mut b = crate::list::ListBuilder::new(q);
        self.store.for_each_order(|o| b.add(o))?;
        Ok(b.finish())
    }

    pub fn mark_seen(&self, order_id: &str) -> Result<usize, AppError> {
        Ok(self.store.mark_order_seen(order_id, Utc::now())?)
    }

    /// Everything seen; undoable for a few seconds ([`App::undo_mark_all_seen`]).
    pub fn mark_all_seen(&self) -> Result<usize, AppError> {
        let at = Utc::now();
        let ids = self.store.mark_all_seen(at)?;
        let n = ids.len();
        *self
            .last_marked_all
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some((ids, at));
        Ok(n)
    }

    /// Undo the last "Mark all seen" if it was moments ago; answers how
    /// many results are new again.
    pub fn undo_mark_all_seen(&self) -> Result<usize, AppError> {
        let last = self
            .last_marked_all
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some((ids, at)) = last else {
            return Ok(0);
        };
        if Utc::now().signed_duration_since(at) > chrono::Duration::seconds(UNDO_MARK_ALL_SECS) {
            return Ok(0);
        }
        Ok(self.store.unmark_seen(&ids, at)?)
    }

    // ------------------------------------------------------------ pause

    /// Pause with one of the presets the window and the tray offer; answers until when.
    pub fn pause(
        &self,
        preset: crate::schedule::PausePreset,
        watcher: Option<&WatcherHandle>,
    ) -> Result<DateTime<Utc>, AppError> {
        let until = preset
            .until(self.clock.now(), &chrono::Local)
            .ok_or(AppError::Clock)?;
        self.pause_until(until, watcher)?;
        Ok(until)
    }

    /// Pause notifications until `until`: alerts are recorded and held, and
    /// announced together as one digest when the pause ends (or is
    /// resumed). `watcher` (when running) takes it at once.
    pub fn pause_until(
        &self,
        until: DateTime<Utc>,
        watcher: Option<&WatcherHandle>,
    ) -> Result<(), AppError> {
        if self.paused_until().is_none() {
            self.state().set_paused_at(Some(self.clock.now()))?;
        }
        self.state().set_paused_until(Some(until))?;
        if let Some(w) = watcher {
            w.update_settings(|s| s.paused_until = Some(until));
        }
        Ok(())
    }

    pub fn resume(&self, watcher: Option<&WatcherHandle>) -> Result<(), AppError> {
        self.state().set_paused_until(None)?;
        if let Some(w) = watcher {
            w.update_settings(|s| s.paused_until = None);
        }
        Ok(())
    }

    /// When notifications resume, if they are paused now.
    pub fn paused_until(&self) -> Option<DateTime<Utc>> {
        self.state()
            .paused_until()
            .ok()
            .flatten()
            .filter(|t| *t > self.clock.now())
    }

    // ------------------------------------------------------------ status

    /// Everything `status` and the window's header show; works without
    /// network access and answers at once (it never waits on a refresh).
    pub async fn status(&self, session: Option<&Session>) -> StatusReport {
        let (signed_in, expires_at, owner_live, auth) = match session {
            Some(s) => {
                // Read the saved sign-in only if this session never has: a
                // loaded session answers at once, even while a refresh hangs.
                let loaded =
                    s.is_signed_in() || (!s.is_loaded() && matches!(s.load().await, Ok(true)));
                (loaded, s.expires_at(), s.resource_owner(), Some(s.state()))
            }
            None => (false, None, None, None),
        };
        let account = self.account();
        let mut watch = self
            .state()
            .watch_status()
            .ok()
            .flatten()
            .unwrap_or_default();
        let needs_configuration = match auth {
            Some(AuthState::NeedsConfiguration { reason }) => Some(reason),
            _ => None,
        };
        if needs_configuration.is_some() {
            watch.connection = Connection::NeedsConfiguration;
        } else if !signed_in {
            watch.connection = Connection::SignedOut;
        }
        let cause = if signed_in {
            None
        } else {
            self.state().signed_out_reason().ok().flatten()
        };
        let unreadable = self.store.unreadable_orders().unwrap_or_default();
        // Read before the counts: the baseline is committed with its orders,
        // so a welcome never counts a list the check has not written yet.
        let baseline_done = self.store.baseline_at().ok().flatten().is_some();
        let orders_by_state = self.store.counts_by_state().unwrap_or_default();
        let update = self.state().update_state().ok().flatten();
        watch.skipped_records = watch.skipped_records.max(unreadable.len());
        let orders_total: usize = orders_by_state.values().sum();
        let catch_up = self
            .state()
            .catch_up_since()
            .ok()
            .flatten()
            .and_then(|since| {
                let results = self.store.results_since(since).ok()?;
                (results > 0).then(|| CatchUp {
                    since: ts(since),
                    results,
                })
            });
        let welcome = (signed_in
            && baseline_done
            && self.state().welcome_pending().unwrap_or(false))
        .then(|| {
            welcome_text(
                account.as_ref().map(|a| a.clinic.name.as_str()),
                orders_total,
            )
        });
        let owner_name = account.as_ref().and_then(|a| a.owner_name.clone());
        let watch_mode = self.config.relay.as_ref().filter(|r| r.push).map(|_| {
            if watch.push.as_ref().is_some_and(PushState::is_live) {
                "Live".to_string()
            } else {
                checking_every(self.config.poll_interval)
            }
        });
        StatusReport {
            signed_in,
            configured: self.is_configured(),
            environment: self.config.environment.as_str().to_string(),
            clinic: account.as_ref().map(|a| a.clinic.clone()),
            resource_owner: owner_live.or_else(|| account.and_then(|a| a.resource_owner)),
            token_storage: self.secrets.kind().as_str().to_string(),
            token_storage_note: self.secrets.note(),
            token_storage_fallback: self.secrets.is_fallback(),
            access_token_expires_at: expires_at.map(ts),
            signed_out_reason: cause.as_ref().map(SignedOutCause::describe),
            signed_out_cause: cause,
            needs_configuration,
            watch,
            unreadable_orders: unreadable,
            local_history_rebuilt: self.store.rebuilt().ok().flatten(),
            unknown_states: orders_by_state
                .iter()
                .filter(|(state, _)| matches!(LabState::parse(state), LabState::Other(_)))
                .map(|(state, n)| (state.clone(), *n))
                .collect(),
            orders_by_state,
            alerts_pending: self.store.pending_count().unwrap_or(0),
            unseen: self.store.unseen_count().unwrap_or(0),
            paused_until: self.paused_until().map(ts),
            owner_name,
            orders_total,
            welcome,
            catch_up,
            clinic_hours: self.config.clinic_hours.active().copied(),
            update_available: update.as_ref().and_then(|u| u.available.clone()),
            update_error: update.as_ref().and_then(|u| u.error.clone()),
            update_checked_at: update.map(|u| u.checked_at),
            watch_mode,
            config_file: self.paths.config_file.display().to_string(),
            data_dir: self.paths.data_dir.display().to_string(),
        }
    }

    // ------------------------------------------------------------ updates

    /// Look at the update feed now; the answer is kept for `status` and the window.
    pub async fn check_for_update(
        &self,
    ) -> Result<Option<crate::update::UpdateInfo>, crate::update::UpdateError> {
        let result = crate::update::check(
            &self.http,
            &self.config.update_url,
            env!("CARGO_PKG_VERSION"),
        )
        .await;
        let (available, error) = match &result {
            Ok(a) => (a.clone(), None),
            Err(e) => {
                tracing::info!(error = %e, "could not look for updates");
                (None, Some(e.to_string()))
            }
        };
        if let Some(u) = &available {
            tracing::info!(version = %u.version, "an update is available");
        }
        let state = crate::update::UpdateState {
            checked_at: ts(Utc::now()),
            available: available.clone(),
            error,
        };
        if let Err(e) = self.state().set_update_state(&state) {
            tracing::warn!(error = %e, "could not keep the update check's result");
        }
        result
    }

    /// Look at the update feed once a day (unless `update_check = "never"`),
    /// for as long as the returned task runs; `checked` is called after each look.
    pub fn spawn_update_checks(
        self: &Arc<Self>,
        checked: impl Fn() + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let app = self.clone();
        tokio::spawn(async move {
            if app.config.update_check == crate::config::UpdateCheck::Never {
                return;
            }
            loop {
                let last = AppState::of(&app.store).update_state().ok().flatten();
                if crate::update::due(last.as_ref(), Utc::now()) {
                    let _ = app.check_for_update().await;
                    checked();
                }
                tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            }
        })
    }

    /// The "still running in the tray" notice, the first time only.
    pub fn first_close_notice(&self) -> Option<Notification> {
        match self.state().first_time_still_running() {
            Ok(true) => Some(crate::policy::still_running()),
            _ => None,
        }
    }

    // ------------------------------------------------------------ watching

    /// Only one watcher per data directory: two would poll twice and could
    /// notify twice. The lock is held for as long as the file stays open.
    pub fn lock_watcher(&self) -> Result<std::fs::File, AppError> {
        let path = self.paths.data_dir.join("watcher.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| AppError::DataDir {
                path: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(AppError::AlreadyWatching(path)),
            Err(std::fs::TryLockError::Error(source)) => Err(AppError::DataDir { path, source }),
        }
    }

    pub fn watcher(
        &self,
        session: Arc<Session>,
        notifier: Arc<dyn Notifier>,
    ) -> Result<Watcher, AppError> {
        Ok(Watcher::new(
            self.api(session),
            self.store.clone(),
            notifier,
            &self.config,
        )?
        .with_clock(self.clock.clone()))
    }

    /// A watcher on an existing handle (what the supervisor restarts).
    pub fn watcher_on(
        &self,
        session: Arc<Session>,
        notifier: Arc<dyn Notifier>,
        handle: WatcherHandle,
    ) -> Result<Watcher, AppError> {
        Ok(Watcher::with_handle(
            self.api(session),
            self.store.clone(),
            notifier,
            &self.config,
            handle,
        )?
        .with_clock(self.clock.clone()))
    }

    /// Results pushed by the relay, when one is configured and Fullscript
    /// sends this clinic's webhooks (not for Canadian environments): the
    /// listener to run beside the watcher. It ends when `shutdown` does.
    pub fn spawn_push(
        &self,
        session: Arc<Session>,
        handle: WatcherHandle,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let relay = self.config.relay.as_ref().filter(|r| r.push)?;
        match crate::push::PushListener::new(relay.events_url.clone(), session, handle) {
            Ok(listener) => Some(tokio::spawn(listener.run(shutdown))),
            Err(e) => {
                tracing::error!(error = %e, "cannot set up the relay's push; polling instead");
                None
            }
        }
    }

    /// A handle for a new watcher with this configuration's settings and the
    /// stored pause.
    pub fn watcher_handle(&self) -> WatcherHandle {
        let mut settings = crate::watcher::WatchSettings::from_config(&self.config);
        settings.paused_until = self.state().paused_until().ok().flatten();
        WatcherHandle::new(self.store.clone(), settings)
    }
}
