//! The app's one controller, living in the background agent. It owns the
//! app's state machine (core services rebuilt when the sign-in settings
//! change, the running watcher, the sign-in in progress) and is the only
//! thing the window's commands (over the control endpoint), the tray and
//! notification clicks call. It decides nothing a practitioner would notice
//! (that lives in `fsn_core::App`); it sequences.
//!
//! OS effects (showing the window, telling it and the tray what changed,
//! launch at login) go through the [`Shell`] trait, so the controller can be
//! driven in tests with a recording shell.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use fsn_core::app::ClickOutcome;
use fsn_core::config::{write_settings, Environment, NotificationDetail, Region, SettingsUpdate};
use fsn_core::notifier::{DesktopNotifier, Notifier};
use fsn_core::opener::{BrowserOpener, Opener, UrlGuard};
use fsn_core::policy::{Notification, NotificationAction};
use fsn_core::schedule::PausePreset;
use fsn_core::secret::Secret;
use fsn_core::session::{AuthState, Session, SignedOutCause};
use fsn_core::store::{ts, OrderRow};
use fsn_core::supervise::{supervise, SuperviseError};
use fsn_core::watcher::{WatchEvent, WatcherHandle};
use fsn_core::{App, AppError, Paths};
use serde::Serialize;

pub use fsn_protocol::{Settings, SignInStarted, SignedOut, Snapshot, View};
use tokio::sync::Mutex as AsyncMutex;
use tokio::task::JoinHandle;

/// What the page is told.
#[derive(Debug, Clone)]
pub enum Update {
    /// The header/status changed.
    State(Box<Snapshot>),
    /// The list changed (the page re-reads it).
    Orders,
    /// Highlight this order (a notification about it was clicked).
    Highlight(String),
    /// Show the new, unseen results (a summary was clicked).
    ShowNew,
    /// A sign-in finished.
    SignIn { ok: bool, message: String },
}

/// The agent's effects on the desktop, behind one small trait: the window
/// (a separate process), what it and the tray are told, launch at login.
pub trait Shell: Send + Sync + 'static {
    /// Show the window (starting its process if none is open).
    fn show_window(&self);
    /// Is a window open (and listening) now?
    fn window_open(&self) -> bool;
    /// Tell the window (and the tray) what changed.
    fn push(&self, update: Update);
    /// Is the app launched at log-in? (`None`: unknown on this desktop.)
    fn launch_at_login(&self) -> Option<bool>;
    fn set_launch_at_login(&self, on: bool) -> Result<(), String>;
}

/// Follows the sign-in page itself instead of the system browser (the demo
/// approves automatically; tests do the same).
pub type SignInBrowser = Arc<dyn Fn(&url::Url) + Send + Sync>;

/// Errors the page shows: one sentence, whatever failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    App(#[from] AppError),
    #[error(transparent)]
    Config(#[from] fsn_core::config::ConfigError),
    #[error("{0}")]
    Message(String),
}

impl Serialize for CommandError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl CommandError {
    fn msg(text: impl Into<String>) -> CommandError {
        CommandError::Message(text.into())
    }
}

pub type CmdResult<T> = Result<T, CommandError>;

/// The most orders `list_orders` answers in one message (a few MB at most).
const MAX_LISTED_AT_ONCE: usize = 10_000;

struct Running {
    handle: WatcherHandle,
    stop: tokio::sync::watch::Sender<bool>,
    supervisor: JoinHandle<Result<(), SuperviseError>>,
    /// The bridge to the page and the sign-out watch.
    helpers: Vec<JoinHandle<()>>,
    /// Held while watching: one watcher per data directory.
    _lock: std::fs::File,
}

#[derive(Default)]
struct Services {
    core: Option<Arc<App>>,
    session: Option<Arc<Session>>,
    watcher: Option<Running>,
    error: Option<String>,
}

pub struct Controller {
    me: Weak<Controller>,
    /// The agent's runtime: notification clicks arrive on threads of their own.
    rt: tokio::runtime::Handle,
    paths: Paths,
    demo: bool,
    shell: Arc<dyn Shell>,
    /// Replaces the system browser for sign-in (demo, tests).
    sign_in_browser: Option<SignInBrowser>,
    /// Replaces the system browser for results (tests).
    opener_override: Option<Arc<dyn Opener>>,
    services: AsyncMutex<Services>,
    /// The core for synchronous callers (notification clicks).
    core_now: Mutex<Option<Arc<App>>>,
    /// What a window opened by a notification click shows first.
    pending_view: Mutex<Option<View>>,
    /// Snapshots are computed concurrently and may finish out of order:
    /// each is numbered when asked for, and one older than the last shown
    /// is dropped (a stale "not paused" never overwrites "paused").
    refresh_asked: std::sync::atomic::AtomicU64,
    refresh_shown: Mutex<u64>,
    sign_in_task: Mutex<Option<JoinHandle<()>>>,
    /// The daily look at the update feed.
    update_checks: Mutex<Option<JoinHandle<()>>>,
    /// The agent's lock on the data directory (its watcher runs under it).
    watcher_lock: Mutex<Option<std::fs::File>>,
}

/// Where the notification icon is written (an absolute path works whether
/// the app is installed or run from a build).
fn notification_icon(paths: &Paths) -> String {
    let path = paths.data_dir.join("notification-icon.png");
    if !path.exists() {
        let _ = std::fs::write(&path, include_bytes!("../../../icons/128x128.png"));
    }
    path.display().to_string()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Controller {
    /// Must be called inside the agent's tokio runtime.
    pub fn new(
        paths: Paths,
        demo: bool,
        shell: Arc<dyn Shell>,
        sign_in_browser: Option<SignInBrowser>,
        opener_override: Option<Arc<dyn Opener>>,
    ) -> Arc<Controller> {
        Arc::new_cyclic(|me| Controller {
            me: me.clone(),
            rt: tokio::runtime::Handle::current(),
            paths,
            demo,
            shell,
            sign_in_browser,
            opener_override,
            services: AsyncMutex::new(Services::default()),
            core_now: Mutex::new(None),
            pending_view: Mutex::new(None),
            refresh_asked: std::sync::atomic::AtomicU64::new(0),
            refresh_shown: Mutex::new(0),
            sign_in_task: Mutex::new(None),
            update_checks: Mutex::new(None),
            watcher_lock: Mutex::new(None),
        })
    }

    /// The agent holds the data directory's lock for as long as it runs;
    /// its watcher runs under that same lock (another handle on it), not a
    /// second one it could not get.
    pub fn hold_watcher_lock(&self, file: std::fs::File) {
        *lock(&self.watcher_lock) = Some(file);
    }

    fn arc(&self) -> Option<Arc<Controller>> {
        self.me.upgrade()
    }

    fn opener(&self, core: &App) -> Arc<dyn Opener> {
        match &self.opener_override {
            Some(o) => o.clone(),
            None => Arc::new(BrowserOpener::new(UrlGuard::new(&core.config))),
        }
    }

    /// Re-read the configuration and rebuild the core and session.
    fn reload(&self, svc: &mut Services) {
        svc.error = None;
        svc.session = None;
        match App::open(self.paths.clone()) {
            Ok(core) => {
                let core = Arc::new(core);
                if core.config.client_id.is_some() {
                    // Without a secret yet, there is no session: the sign-in screen asks for it.
                    svc.session = core.session().ok();
                }
                *lock(&self.core_now) = Some(core.clone());
                let me = self.me.clone();
                let checks = core.spawn_update_checks(move || {
                    if let Some(c) = me.upgrade() {
                        c.refresh();
                    }
                });
                if let Some(old) = lock(&self.update_checks).replace(checks) {
                    old.abort();
                }
                svc.core = Some(core);
            }
            Err(e) => {
                svc.error = Some(e.to_string());
                svc.core = None;
            }
        }
    }

    async fn core(&self) -> CmdResult<Arc<App>> {
        self.services
            .lock()
            .await
            .core
            .clone()
            .ok_or_else(|| CommandError::msg("The app is not set up yet: sign in first."))
    }

    async fn watcher(&self) -> Option<WatcherHandle> {
        self.services
            .lock()
            .await
            .watcher
            .as_ref()
            .map(|w| w.handle.clone())
    }

    /// Recompute the snapshot and push it to the page and the tray.
    pub fn refresh(&self) {
        let Some(me) = self.arc() else { return };
        let asked = self
            .refresh_asked
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            .saturating_add(1);
        self.rt.spawn(async move {
            let snapshot = me.snapshot().await;
            let mut shown = lock(&me.refresh_shown);
            if asked > *shown {
                *shown = asked;
                me.shell.push(Update::State(Box::new(snapshot)));
            }
        });
    }

    fn changed(&self) {
        self.shell.push(Update::Orders);
        self.refresh();
    }

    // ------------------------------------------------------------ lifecycle

    /// Open the core from the config, load a saved sign-in, start watching.
    pub async fn start(&self) {
        let mut svc = self.services.lock().await;
        self.reload(&mut svc);
        if let Some(session) = svc.session.clone() {
            // Revocations a sign-out could not get through: tried again, in the background.
            let retry = session.clone();
            self.rt
                .spawn(async move { retry.retry_pending_revocations().await });
            match session.load().await {
                Ok(true) => {
                    if let Err(e) = self.start_watching(&mut svc).await {
                        tracing::error!(error = %e, "could not start watching");
                        svc.error = Some(e.to_string());
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    svc.error = Some(e.to_string());
                    if let fsn_core::oauth::AuthError::Secrets(s) = &e {
                        if s.is_keychain_locked() {
                            // A locked keychain at log-in: try again shortly,
                            // never treat it as "signed out".
                            self.retry_start_later();
                        }
                    }
                }
            }
        }
        drop(svc);
        self.changed();
    }

    fn retry_start_later(&self) {
        let Some(me) = self.arc() else { return };
        self.rt.spawn(async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            me.start().await;
        });
    }

    /// The demo (and tests) sign in through the configured registration,
    /// approved by `sign_in_browser`, when nobody is signed in yet.
    pub async fn sign_in_if_needed(&self) {
        let signed_in = match self.services.lock().await.session.clone() {
            Some(s) => s.is_signed_in(),
            None => false,
        };
        if !signed_in {
            if let Err(e) = self.begin_sign_in(None, None).await {
                tracing::error!(error = %e, "automatic sign-in failed");
            }
        }
    }

    /// Start the watcher for the signed-in session, supervised, with the
    /// desktop notifier and the bridge to the page.
    async fn start_watching(&self, svc: &mut Services) -> CmdResult<()> {
        if svc.watcher.is_some() {
            return Ok(());
        }
        let core = svc
            .core
            .clone()
            .ok_or_else(|| CommandError::msg("not configured"))?;
        let session = svc
            .session
            .clone()
            .ok_or_else(|| CommandError::msg("not configured"))?;
        let held = lock(&self.watcher_lock)
            .as_ref()
            .map(std::fs::File::try_clone);
        let dir_lock = match held {
            Some(handle) => {
                handle.map_err(|e| CommandError::msg(format!("the data directory's lock: {e}")))?
            }
            None => core.lock_watcher()?,
        };
        let notifier = self.notifier(&core);
        let handle = core.watcher_handle();
        let (stop, stop_rx) = tokio::sync::watch::channel(false);

        // Watcher events → the page and the tray.
        let mut events = handle.subscribe();
        let bridge_me = self.me.clone();
        let bridge = self.rt.spawn(async move {
            loop {
                let event = events.recv().await;
                let Some(c) = bridge_me.upgrade() else { break };
                match event {
                    Ok(WatchEvent::OrdersChanged) | Ok(WatchEvent::Delivered(_)) => c.changed(),
                    Ok(WatchEvent::Status(_)) | Ok(WatchEvent::Cycle { .. }) => c.refresh(),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => c.refresh(),
                    Err(_) => break,
                }
            }
        });

        // Fullscript ended the session: say so, once, and show the sign-in screen.
        let mut auth = session.subscribe();
        let sound = core.config.sound;
        let auth_notifier = notifier.clone();
        let auth_me = self.me.clone();
        let auth_watch = self.rt.spawn(async move {
            while auth.changed().await.is_ok() {
                let state = auth.borrow_and_update().clone();
                let Some(c) = auth_me.upgrade() else { break };
                match state {
                    AuthState::SignedOut {
                        cause: Some(SignedOutCause::Ended { .. }),
                    } => {
                        let note = fsn_core::policy::sign_in_again(sound);
                        let n = auth_notifier.clone();
                        let _ = tokio::task::spawn_blocking(move || n.show(&note)).await;
                        c.stop_watching().await;
                        c.refresh();
                        break;
                    }
                    _ => c.refresh(),
                }
            }
        });

        // Results pushed by the relay (when one is configured), beside the watcher.
        let mut helpers = vec![bridge, auth_watch];
        let push = {
            let _enter = self.rt.enter();
            core.spawn_push(session.clone(), handle.clone(), stop_rx.clone())
        };
        helpers.extend(push);

        let make_core = core.clone();
        let supervisor = self.rt.spawn(supervise(
            move |h| make_core.watcher_on(session.clone(), notifier.clone(), h),
            handle.clone(),
            stop_rx,
        ));
        svc.watcher = Some(Running {
            handle,
            stop,
            supervisor,
            helpers,
            _lock: dir_lock,
        });
        Ok(())
    }

    /// Stop watching gracefully: a delivery in progress (shown, then marked
    /// delivered) finishes before the watcher ends.
    pub async fn stop_watching(&self) {
        let running = self.services.lock().await.watcher.take();
        if let Some(w) = running {
            let _ = w.stop.send(true);
            let mut supervisor = w.supervisor;
            if tokio::time::timeout(Duration::from_secs(30), &mut supervisor)
                .await
                .is_err()
            {
                // Stopped for good all the same: a sign-out or an erase must
                // not be followed by a check writing its rows back.
                tracing::warn!("the watcher did not stop within 30 s; ending it");
                supervisor.abort();
                let _ = supervisor.await;
            }
            for t in w.helpers {
                t.abort();
            }
        }
    }

    // ------------------------------------------------------------ the page

    pub async fn snapshot(&self) -> Snapshot {
        let svc = self.services.lock().await;
        let core = svc.core.clone();
        let session = svc.session.clone();
        let watching = svc.watcher.is_some();
        let error = svc.error.clone();
        drop(svc);
        let report = match &core {
            Some(c) => Some(c.status(session.as_deref()).await),
            None => None,
        };
        Snapshot {
            report,
            signing_in: self.signing_in(),
            demo: self.demo,
            environments: Environment::ALL
                .iter()
                .map(|e| e.as_str().to_string())
                .collect(),
            client_id: core.as_ref().and_then(|c| c.config.client_id.clone()),
            secret_from_config: core
                .as_ref()
                .is_some_and(|c| c.config.client_secret.is_some()),
            secret_kept_by_relay: core.as_ref().is_some_and(|c| c.config.relay.is_some()),
            region: core.as_ref().and_then(|c| c.config.environment.region()),
            sandbox: core
                .as_ref()
                .is_some_and(|c| c.config.environment.is_sandbox()),
            registration_preset: core.as_ref().is_some_and(|c| c.config.registration_preset),
            watching,
            error,
        }
    }

    /// What the window's list draws: grouped, filtered, searched, the
    /// newest rows of each group and every group's count.
    pub async fn list_page(
        &self,
        q: fsn_core::list::ListQuery,
    ) -> CmdResult<fsn_core::list::ListPage> {
        let core = self.core().await?;
        tokio::task::spawn_blocking(move || core.list_page(&q))
            .await
            .map_err(|e| CommandError::msg(e.to_string()))?
            .map_err(CommandError::from)
    }

    /// Every order, for small lists (tests, scripts); the window pages
    /// (`list_page`). A long history is refused with a clear error rather
    /// than sent as one line that no client would accept.
    pub async fn list_orders(&self) -> CmdResult<Vec<OrderRow>> {
        let rows = self
            .core()
            .await?
            .store
            .list_orders()
            .map_err(AppError::from)?;
        if rows.len() > MAX_LISTED_AT_ONCE {
            return Err(CommandError::msg(format!(
                "{} lab orders are too many for one answer; ask for them in pages (list_page).",
                rows.len()
            )));
        }
        Ok(rows)
    }

    /// Open an order's results in the browser and mark them seen; answers the URL opened.
    pub async fn open_results(&self, order_id: String) -> CmdResult<String> {
        let core = self.core().await?;
        let opener = self.opener(&core);
        let url = tokio::task::spawn_blocking(move || core.open_results(&order_id, &*opener))
            .await
            .map_err(|e| CommandError::msg(e.to_string()))??;
        self.changed();
        Ok(url.to_string())
    }

    pub async fn mark_seen(&self, order_id: String) -> CmdResult<usize> {
        let n = self.core().await?.mark_seen(&order_id)?;
        self.changed();
        Ok(n)
    }

    pub async fn mark_all_seen(&self) -> CmdResult<usize> {
        let n = self.core().await?.mark_all_seen()?;
        self.changed();
        Ok(n)
    }

    /// Undo the "Mark all seen" of a moment ago.
    pub async fn undo_mark_all_seen(&self) -> CmdResult<usize> {
        let n = self.core().await?.undo_mark_all_seen()?;
        self.changed();
        Ok(n)
    }

    /// "Send a test notification": through the notifier result alerts use.
    pub async fn send_test_notification(&self) -> CmdResult<String> {
        let core = self.core().await?;
        let notifier = self.notifier(&core);
        tokio::task::spawn_blocking(move || core.send_test_notification(&*notifier))
            .await
            .map_err(|e| CommandError::msg(e.to_string()))?
            .map_err(CommandError::Message)?;
        Ok(fsn_core::app::TEST_NOTIFICATION_HINT.to_string())
    }

    /// "Start when I log in" (the welcome's checkbox; Settings saves it too).
    pub fn set_launch_at_login(&self, on: bool) -> CmdResult<()> {
        self.shell
            .set_launch_at_login(on)
            .map_err(CommandError::Message)
    }

    pub async fn dismiss_welcome(&self) -> CmdResult<()> {
        self.core().await?.dismiss_welcome()?;
        self.refresh();
        Ok(())
    }

    pub async fn dismiss_catch_up(&self) -> CmdResult<()> {
        self.core().await?.dismiss_catch_up()?;
        self.refresh();
        Ok(())
    }

    /// A person asked: read every order, not only those with events.
    pub async fn check_now(&self) -> CmdResult<()> {
        match self.watcher().await {
            Some(w) => {
                w.check_now_with_sweep();
                Ok(())
            }
            None => Err(CommandError::msg("Not watching: sign in first.")),
        }
    }

    /// What a window that just opened should show (once).
    pub fn take_view(&self) -> Option<View> {
        lock(&self.pending_view).take()
    }

    // ------------------------------------------------------------ settings

    pub async fn get_settings(&self) -> CmdResult<Settings> {
        let core = self.core().await?;
        // The file is the source of truth (a watcher may run with an older copy).
        let config = fsn_core::Config::load(&core.paths.config_file)?;
        Ok(Settings {
            poll_interval_secs: config.poll_interval.as_secs(),
            notify_states: config.notify_states,
            notification_detail: Some(config.notification_detail),
            show_patient_names: config.show_patient_names,
            sound: config.sound,
            launch_at_login: self.shell.launch_at_login().unwrap_or(false),
            paused_until: core.paused_until().map(ts),
            clinic_hours: Some(config.clinic_hours),
        })
    }

    pub async fn save_settings(&self, settings: Settings) -> CmdResult<Settings> {
        let core = self.core().await?;
        let config = write_settings(
            &core.paths.config_file,
            &SettingsUpdate {
                poll_interval_secs: Some(settings.poll_interval_secs),
                notify_states: Some(settings.notify_states),
                notification_detail: Some(settings.notification_detail.unwrap_or(
                    if settings.show_patient_names {
                        NotificationDetail::Full
                    } else {
                        NotificationDetail::Test
                    },
                )),
                sound: Some(settings.sound),
                clinic_hours: settings.clinic_hours,
                ..Default::default()
            },
        )?;
        if let Some(w) = self.watcher().await {
            w.update_settings(|s| {
                s.poll_interval_secs = config.poll_interval.as_secs();
                s.notify_states = config.notify_states;
                s.notification_detail = config.notification_detail;
                s.sound = config.sound;
                s.clinic_hours = config.clinic_hours.active().copied();
            });
        }
        if let Err(e) = self.shell.set_launch_at_login(settings.launch_at_login) {
            tracing::warn!(error = %e, "could not change launch at login");
        }
        self.refresh();
        self.get_settings().await
    }

    /// `1h`, or `tomorrow` (until 8:00 tomorrow, local time).
    pub async fn pause(&self, preset: &str) -> CmdResult<String> {
        let preset = PausePreset::parse(preset).ok_or_else(|| {
            CommandError::msg(format!("Unknown pause `{preset}` (1h or tomorrow)."))
        })?;
        let core = self.core().await?;
        let until = core.pause(preset, self.watcher().await.as_ref())?;
        self.refresh();
        Ok(ts(until))
    }

    /// The tray's one item: resume while paused, else pause for an hour.
    pub async fn pause_or_resume(&self) -> CmdResult<()> {
        if self.core().await?.paused_until().is_some() {
            self.resume().await
        } else {
            self.pause("1h").await.map(|_| ())
        }
    }

    pub async fn resume(&self) -> CmdResult<()> {
        let core = self.core().await?;
        core.resume(self.watcher().await.as_ref())?;
        self.refresh();
        Ok(())
    }

    // ------------------------------------------------------------ sign-in

    fn signing_in(&self) -> bool {
        lock(&self.sign_in_task)
            .as_ref()
            .is_some_and(|t| !t.is_finished())
    }

    /// Sign in: from the first screen's country choice (`region`, keeping
    /// the registration's sandbox or production), or from its Advanced
    /// fields (`environment`, `client_id`); what is not given is what the
    /// configuration (or the clinic's defaults) already says.
    pub async fn sign_in(
        &self,
        region: Option<Region>,
        environment: Option<String>,
        client_id: Option<String>,
        client_secret: Option<String>,
    ) -> CmdResult<SignInStarted> {
        let configured = self.core().await.ok();
        let current = configured
            .as_ref()
            .map(|c| c.config.environment)
            .unwrap_or(Environment::UsSandbox);
        let environment = match (environment.filter(|e| !e.trim().is_empty()), region) {
            (Some(e), _) => e.trim().parse().map_err(CommandError::Message)?,
            (None, Some(r)) => current.in_region(r),
            (None, None) => current,
        };
        let client_id = client_id
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .or_else(|| configured.as_ref().and_then(|c| c.config.client_id.clone()))
            .ok_or_else(|| {
                CommandError::msg("Enter the client id from your Fullscript API Dashboard.")
            })?;
        self.begin_sign_in(
            Some((environment, client_id)),
            client_secret.filter(|s| !s.trim().is_empty()),
        )
        .await
    }

    /// Save the sign-in settings, then run the OAuth flow in the background;
    /// answers as soon as the browser has been pointed at Fullscript.
    async fn begin_sign_in(
        &self,
        app_settings: Option<(Environment, String)>,
        client_secret: Option<String>,
    ) -> CmdResult<SignInStarted> {
        if let Some(t) = lock(&self.sign_in_task).take() {
            t.abort();
        }
        self.stop_watching().await;
        let mut svc = self.services.lock().await;
        if let Some((environment, client_id)) = app_settings {
            write_settings(
                &self.paths.config_file,
                &SettingsUpdate {
                    environment: Some(environment),
                    client_id: Some(client_id),
                    ..Default::default()
                },
            )?;
        }
        self.reload(&mut svc);
        let core = svc
            .core
            .clone()
            .ok_or_else(|| CommandError::msg(svc.error.clone().unwrap_or_default()))?;
        if let Some(secret) = client_secret {
            core.save_client_secret(&Secret::new(secret.trim()))
                .map_err(|e| CommandError::msg(format!("Could not keep the client secret: {e}")))?;
        }
        let session = core.session()?;
        svc.session = Some(session.clone());
        drop(svc);

        let (url_tx, url_rx) = tokio::sync::oneshot::channel::<String>();
        let browser = self.sign_in_browser.clone();
        let opener = self.opener(&core);
        let me = self.me.clone();
        let task = self.rt.spawn(async move {
            let result = core
                .login(&session, |url| {
                    let _ = url_tx.send(url.to_string());
                    match &browser {
                        Some(b) => b(url),
                        None => {
                            if let Err(e) = opener.open(url) {
                                tracing::warn!(error = %e, "could not open the browser for sign-in");
                            }
                        }
                    }
                })
                .await;
            let Some(c) = me.upgrade() else { return };
            let (ok, message) = match result {
                Ok(_) => {
                    let mut svc = c.services.lock().await;
                    match c.start_watching(&mut svc).await {
                        Ok(()) => (true, "Signed in.".to_string()),
                        Err(e) => (false, e.to_string()),
                    }
                }
                Err(e) => (false, e.to_string()),
            };
            c.shell.push(Update::SignIn { ok, message });
            c.changed();
        });
        let finished_early = task.is_finished();
        *lock(&self.sign_in_task) = Some(task);
        self.refresh();
        match tokio::time::timeout(Duration::from_secs(30), url_rx).await {
            Ok(Ok(url)) => Ok(SignInStarted { authorize_url: url }),
            // The flow ended before a browser was needed: its event says why.
            _ if finished_early => Err(CommandError::msg("Sign-in could not start.")),
            _ => Err(CommandError::msg(
                "Sign-in could not start: Fullscript did not answer (see the message above).",
            )),
        }
    }

    pub async fn cancel_sign_in(&self) -> CmdResult<()> {
        if let Some(t) = lock(&self.sign_in_task).take() {
            t.abort();
        }
        self.refresh();
        Ok(())
    }

    /// Sign out (revoke, delete the tokens); with `erase`, also erase the
    /// lab orders, alerts and logs kept on this computer.
    pub async fn sign_out(&self, erase: bool) -> CmdResult<SignedOut> {
        self.stop_watching().await;
        let svc = self.services.lock().await;
        let (core, session) = (svc.core.clone(), svc.session.clone());
        drop(svc);
        let Some(core) = core else {
            return Err(CommandError::msg("Not signed in."));
        };
        let report = match session {
            Some(session) => core.logout(&session, erase).await,
            // Not configured: nothing to revoke, but the local data still goes.
            None if erase => fsn_core::session::SignOutReport {
                local_error: core.erase_local_data().err().map(|e| e.to_string()),
                ..Default::default()
            },
            None => return Err(CommandError::msg("Not signed in.")),
        };
        self.changed();
        Ok(SignedOut {
            was_signed_in: report.was_signed_in,
            revoke_errors: report.revoke_errors,
            queued: report.queued,
            local_error: report.local_error,
            erased: erase,
        })
    }

    // ------------------------------------------------------------ the desktop

    /// The desktop notifier result alerts go through (and the test
    /// notification, so it shows exactly what they would).
    fn notifier(&self, core: &App) -> Arc<dyn Notifier> {
        let me = self.me.clone();
        Arc::new(
            DesktopNotifier::new(Arc::new(move |n: &Notification, action| {
                if let Some(c) = me.upgrade() {
                    c.on_notification_action(n, action);
                }
            }))
            .with_icon(notification_icon(&core.paths)),
        )
    }

    /// A click on one of our notifications or one of its buttons (from a
    /// notification thread).
    pub fn on_notification_action(&self, n: &Notification, action: NotificationAction) {
        let Some(core) = lock(&self.core_now).clone() else {
            self.shell.show_window();
            return;
        };
        let opener = self.opener(&core);
        match core.on_action(n, action, &*opener) {
            ClickOutcome::Nothing => {}
            ClickOutcome::ShowOrder(order_id) => self.show_view(
                View::Order {
                    order_id: order_id.clone(),
                },
                Update::Highlight(order_id),
            ),
            ClickOutcome::ShowNewResults => self.show_view(View::NewResults, Update::ShowNew),
            ClickOutcome::ShowWindow => self.shell.show_window(),
        }
        self.changed();
    }

    /// Show the window on `view`: an open window is told now; a window that
    /// opens takes it when its page loads (and only that one: an old view
    /// never comes back in a later window).
    fn show_view(&self, view: View, update: Update) {
        let open = self.shell.window_open();
        *lock(&self.pending_view) = (!open).then_some(view);
        self.shell.show_window();
        if open {
            self.shell.push(update);
        }
    }

    /// The window was closed (the app keeps watching): the first time, say so.
    pub fn window_closed(&self) {
        let Some(core) = lock(&self.core_now).clone() else {
            return;
        };
        if let Some(note) = core.first_close_notice() {
            let notifier = self.notifier(&core);
            std::thread::spawn(move || {
                let _ = notifier.show(&note);
            });
        }
    }

    pub fn show_window(&self) {
        self.shell.show_window();
    }

    // ------------------------------------------------------------ updates

    /// Look at the update feed now (Settings → "Check for updates").
    pub async fn check_for_update(&self) -> CmdResult<Option<fsn_core::update::UpdateInfo>> {
        let core = self.core().await?;
        let found = core.check_for_update().await;
        self.refresh();
        found.map_err(|e| CommandError::Message(e.to_string()))
    }

    /// Open a new version's package in the browser (the window's updater
    /// could not install it itself): only on the update feed's own host,
    /// as the core's `UrlGuard` decides. Answers the URL opened.
    pub async fn open_update_package(&self, url: String) -> CmdResult<String> {
        let url: url::Url = url
            .parse()
            .map_err(|_| CommandError::msg("That is not a link to a package."))?;
        let opener = self.opener(&*self.core().await?);
        let opened = url.clone();
        tokio::task::spawn_blocking(move || opener.open(&opened))
            .await
            .map_err(|e| CommandError::msg(e.to_string()))?
            .map_err(AppError::from)?;
        Ok(url.to_string())
    }
}
