//! The app's services wired together from the configuration: store, secret
//! store, session, API client, watcher. The CLI and the window app both start
//! here and stay thin.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;
use serde::Serialize;
use url::Url;

use crate::api::{ApiError, Clinic, FullscriptClient};
use crate::backoff::RequestBudget;
use crate::config::{Config, ConfigError, Paths};
use crate::notifier::Notifier;
use crate::oauth::{AuthError, OAuthClient, ResourceOwner};
use crate::secret::Secret;
use crate::secret_store::{self, SecretStore, StorageKind};
use crate::session::{Session, SignOutReport};
use crate::store::{ts, Store, StoreError};
use crate::watcher::{WatchStatus, Watcher};

pub const CLIENT_SECRET_KEY: &str = "client_secret";

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
    #[error("secret store: {0}")]
    Secrets(#[from] secret_store::StoreError),
    #[error("{0}")]
    Http(String),
    #[error(
        "another copy of Fullscript Lab Notifier is already watching this data directory ({0})"
    )]
    AlreadyWatching(PathBuf),
}

/// Who is signed in, to which clinic (kept in the database, shown everywhere).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Account {
    pub clinic: Clinic,
    pub resource_owner: Option<ResourceOwner>,
}

/// `fullscript-notifier status --json`
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub signed_in: bool,
    pub configured: bool,
    pub environment: String,
    pub clinic: Option<Clinic>,
    pub resource_owner: Option<ResourceOwner>,
    pub token_storage: &'static str,
    pub token_storage_note: Option<String>,
    pub access_token_expires_at: Option<String>,
    pub signed_out_reason: Option<String>,
    pub connection: crate::watcher::Connection,
    pub last_poll_at: Option<String>,
    pub next_poll_at: Option<String>,
    pub last_error: Option<String>,
    pub retrying_since: Option<String>,
    pub events_available: Option<bool>,
    pub notifications_available: bool,
    pub orders_by_state: std::collections::BTreeMap<String, usize>,
    pub alerts_pending: usize,
    pub unseen: usize,
    pub paused_until: Option<String>,
    pub config_file: String,
    pub data_dir: String,
}

pub struct App {
    pub paths: Paths,
    pub config: Config,
    pub store: Arc<Store>,
    pub secrets: Arc<dyn SecretStore>,
    pub http: reqwest::Client,
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
        if secrets.kind() == StorageKind::File {
            tracing::info!(note = ?secrets.note(), "tokens are stored in a private file in the data directory");
        }
        let http = crate::http::client(config.request_timeout)
            .map_err(|e| AppError::Http(e.to_string()))?;
        Ok(App {
            paths,
            config,
            store,
            secrets,
            http,
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

    /// The client secret: `FSN_CLIENT_SECRET` or the file, else the secret store.
    pub fn client_secret(&self) -> Result<Option<Secret>, AppError> {
        if let Some(s) = &self.config.client_secret {
            return Ok(Some(s.clone()));
        }
        Ok(self.secrets.get(CLIENT_SECRET_KEY)?.map(Secret::new))
    }

    pub fn save_client_secret(&self, secret: &Secret) -> Result<(), AppError> {
        Ok(self.secrets.set(CLIENT_SECRET_KEY, secret.expose())?)
    }

    pub fn is_configured(&self) -> bool {
        self.config.client_id.is_some() && matches!(self.client_secret(), Ok(Some(_)))
    }

    /// The session for the configured application (not yet loaded).
    pub fn session(&self) -> Result<Arc<Session>, AppError> {
        let client_id = self.config.client_id.clone().ok_or_else(|| {
            AuthError::NotConfigured(format!(
                "no client_id: set it in {} or FSN_CLIENT_ID (see the README's user guide)",
                self.config.path.display()
            ))
        })?;
        let secret = self.client_secret()?.ok_or_else(|| {
            AuthError::NotConfigured(format!(
                "no client secret: set FSN_CLIENT_SECRET, client_secret in {}, or enter it in the app",
                self.config.path.display()
            ))
        })?;
        let e = &self.config.endpoints;
        let oauth = OAuthClient::new(
            self.http.clone(),
            e.authorize_url.clone(),
            e.token_url.clone(),
            e.revoke_url.clone(),
            client_id,
            secret,
            self.config.redirect_uri.clone(),
        );
        let store = self.store.clone();
        let session =
            Session::new(oauth, self.secrets.clone()).on_signed_out(Box::new(move |reason| {
                let _ = store.meta_set("signed_out_reason", reason);
            }));
        Ok(Arc::new(session))
    }

    pub fn api(&self, session: Arc<Session>) -> Arc<FullscriptClient> {
        Arc::new(FullscriptClient::new(
            self.http.clone(),
            self.config.endpoints.api_base.clone(),
            session,
            Arc::new(RequestBudget::new(self.config.request_budget_per_5min)),
        ))
    }

    pub fn account(&self) -> Option<Account> {
        self.store.meta_json::<Account>("account").ok().flatten()
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
        session.complete_login(tokens).await?;
        let clinic = self.api(session.clone()).clinic().await?;
        let account = Account {
            clinic,
            resource_owner: owner,
        };
        self.remember_account(&account)?;
        Ok(account)
    }

    /// Fail fast (instead of a browser that never comes back) when
    /// Fullscript cannot be reached at all. Any HTTP answer counts as reachable.
    pub async fn check_reachable(&self) -> Result<(), AppError> {
        let mut probe = self.config.endpoints.token_url.clone();
        probe.set_path("/");
        probe.set_query(None);
        match self.http.get(probe).send().await {
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
        self.store.meta_set_json("account", account)?;
        self.store.meta_delete("signed_out_reason")?;
        Ok(())
    }

    pub async fn logout(&self, session: &Session) -> SignOutReport {
        let report = session.sign_out().await;
        let _ = self.store.meta_set("signed_out_reason", "signed out");
        report
    }

    /// Everything `status` shows; works without network access.
    pub async fn status(&self, session: Option<&Session>) -> StatusReport {
        let (signed_in, expires_at, owner_live) = match session {
            Some(s) => {
                let loaded = s.is_signed_in().await || matches!(s.load().await, Ok(true));
                (loaded, s.expires_at().await, s.resource_owner().await)
            }
            None => (false, None, None),
        };
        let account = self.account();
        let watch = self
            .store
            .meta_json::<WatchStatus>("watch_status")
            .ok()
            .flatten()
            .unwrap_or_default();
        let mut connection = watch.connection;
        if !signed_in {
            connection = crate::watcher::Connection::SignedOut;
        }
        let paused_until = self
            .store
            .meta_get("paused_until")
            .ok()
            .flatten()
            .filter(|p| p.as_str() > ts(Utc::now()).as_str());
        StatusReport {
            signed_in,
            configured: self.is_configured(),
            environment: self.config.environment.as_str().to_string(),
            clinic: account.as_ref().map(|a| a.clinic.clone()),
            resource_owner: owner_live.or_else(|| account.and_then(|a| a.resource_owner)),
            token_storage: self.secrets.kind().as_str(),
            token_storage_note: self.secrets.note(),
            access_token_expires_at: expires_at.map(ts),
            signed_out_reason: if signed_in {
                None
            } else {
                self.store.meta_get("signed_out_reason").ok().flatten()
            },
            connection,
            last_poll_at: watch.last_poll_at,
            next_poll_at: watch.next_poll_at,
            last_error: watch.last_error,
            retrying_since: watch.retrying_since,
            events_available: watch.events_available,
            notifications_available: watch.notifications_available,
            orders_by_state: self.store.counts_by_state().unwrap_or_default(),
            alerts_pending: self.store.pending_count().unwrap_or(0),
            unseen: self.store.unseen_count().unwrap_or(0),
            paused_until,
            config_file: self.paths.config_file.display().to_string(),
            data_dir: self.paths.data_dir.display().to_string(),
        }
    }

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
        )?)
    }
}
