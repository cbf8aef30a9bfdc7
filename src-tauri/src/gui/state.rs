//! The window app's state: the core services (rebuilt when the sign-in
//! settings change), the running watcher, and what the page is shown.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use fsn_core::app::Account;
use fsn_core::config::Environment;
use fsn_core::session::Session;
use fsn_core::watcher::{WatchStatus, WatcherHandle};
use fsn_core::{App, Paths};
use serde::Serialize;
use tokio::sync::Mutex as AsyncMutex;

pub struct RunningWatcher {
    pub handle: WatcherHandle,
    pub stop: tokio::sync::watch::Sender<bool>,
    pub tasks: Vec<tauri::async_runtime::JoinHandle<()>>,
    /// Held while watching: one watcher per data directory.
    pub _lock: std::fs::File,
}

#[derive(Default)]
pub struct Services {
    pub core: Option<Arc<App>>,
    pub session: Option<Arc<Session>>,
    pub watcher: Option<RunningWatcher>,
    /// A problem to show on the page (bad config file, keychain failure, …).
    pub error: Option<String>,
}

/// Opens a URL "in the browser" during sign-in. The real app opens the
/// system browser; the demo and tests follow the simulator's redirect.
pub type Browser = Arc<dyn Fn(&url::Url) + Send + Sync>;

pub struct AppState {
    pub paths: Paths,
    pub demo: bool,
    pub services: AsyncMutex<Services>,
    /// A clone of the core for synchronous callers (notification clicks).
    core_cache: Mutex<Option<Arc<App>>>,
    highlight: Mutex<Option<String>>,
    pub sign_in_task: Mutex<Option<tauri::async_runtime::JoinHandle<()>>>,
    pub browser: Mutex<Option<Browser>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub configured: bool,
    pub signed_in: bool,
    pub signing_in: bool,
    pub demo: bool,
    pub environment: String,
    pub environments: Vec<&'static str>,
    pub client_id: Option<String>,
    /// The secret came from the environment or the file: the page need not ask.
    pub secret_from_config: bool,
    pub account: Option<Account>,
    pub status: WatchStatus,
    pub watching: bool,
    pub token_storage: Option<&'static str>,
    pub token_storage_note: Option<String>,
    /// No keychain answered, so the file fallback is in use.
    pub token_storage_fallback: bool,
    pub unseen: usize,
    pub paused_until: Option<String>,
    pub signed_out_reason: Option<String>,
    pub error: Option<String>,
}

/// Where the notification icon is written (an absolute path works whether
/// the app is installed or run from a build).
pub fn notification_icon(paths: &Paths) -> String {
    let path: PathBuf = paths.data_dir.join("notification-icon.png");
    if !path.exists() {
        let _ = std::fs::write(&path, include_bytes!("../../../icons/128x128.png"));
    }
    path.display().to_string()
}

impl AppState {
    pub fn new(paths: Paths, demo: bool) -> AppState {
        AppState {
            paths,
            demo,
            services: AsyncMutex::new(Services::default()),
            core_cache: Mutex::new(None),
            highlight: Mutex::new(None),
            sign_in_task: Mutex::new(None),
            browser: Mutex::new(None),
        }
    }

    /// Re-read the configuration and rebuild the core and session.
    pub fn reload(&self, svc: &mut Services) {
        svc.error = None;
        svc.session = None;
        match App::open(self.paths.clone()) {
            Ok(core) => {
                let core = Arc::new(core);
                if core.config.client_id.is_some() {
                    // Without a secret yet, there is no session: the sign-in screen asks for it.
                    svc.session = core.session().ok();
                }
                *self.core_cache.lock().unwrap_or_else(|p| p.into_inner()) = Some(core.clone());
                svc.core = Some(core);
            }
            Err(e) => {
                svc.error = Some(e.to_string());
                svc.core = None;
            }
        }
    }

    pub fn core_blocking(&self) -> Option<Arc<App>> {
        self.core_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_highlight(&self, order: Option<String>) {
        *self.highlight.lock().unwrap_or_else(|p| p.into_inner()) = order;
    }

    pub fn take_highlight(&self) -> Option<String> {
        self.highlight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    pub fn browser(&self) -> Option<Browser> {
        self.browser
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn signing_in(&self) -> bool {
        self.sign_in_task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|t| !t.inner().is_finished())
    }

    pub async fn stop_watching(&self) {
        let running = self.services.lock().await.watcher.take();
        if let Some(w) = running {
            let _ = w.stop.send(true);
            for t in w.tasks {
                t.abort();
            }
        }
    }

    pub async fn watcher(&self) -> Option<WatcherHandle> {
        self.services
            .lock()
            .await
            .watcher
            .as_ref()
            .map(|w| w.handle.clone())
    }

    pub async fn snapshot(&self) -> Snapshot {
        let svc = self.services.lock().await;
        let core = svc.core.clone();
        let watching = svc.watcher.is_some();
        let live_status = svc.watcher.as_ref().map(|w| w.handle.status());
        let session = svc.session.clone();
        let error = svc.error.clone();
        drop(svc);
        let signed_in = match &session {
            Some(s) => s.is_signed_in().await,
            None => false,
        };
        let fallback = core.as_ref().is_some_and(|c| c.secrets.is_fallback());
        let (
            configured,
            environment,
            client_id,
            secret_from_config,
            account,
            status,
            storage,
            note,
            unseen,
            paused,
            reason,
        ) = match &core {
            Some(c) => {
                let status = live_status
                    .or_else(|| {
                        c.store
                            .meta_json::<WatchStatus>("watch_status")
                            .ok()
                            .flatten()
                    })
                    .unwrap_or_default();
                let now = fsn_core::store::ts(chrono::Utc::now());
                (
                    c.is_configured(),
                    c.config.environment.as_str().to_string(),
                    c.config.client_id.clone(),
                    c.config.client_secret.is_some(),
                    c.account(),
                    status,
                    Some(c.secrets.kind().as_str()),
                    c.secrets.note(),
                    c.store.unseen_count().unwrap_or(0),
                    c.store
                        .meta_get("paused_until")
                        .ok()
                        .flatten()
                        .filter(|p| *p > now),
                    c.store.meta_get("signed_out_reason").ok().flatten(),
                )
            }
            None => (
                false,
                Environment::UsSandbox.as_str().to_string(),
                None,
                false,
                None,
                WatchStatus::default(),
                None,
                None,
                0,
                None,
                None,
            ),
        };
        let mut status = status;
        if !signed_in {
            status.connection = fsn_core::watcher::Connection::SignedOut;
        }
        Snapshot {
            configured,
            signed_in,
            signing_in: self.signing_in(),
            demo: self.demo,
            environment,
            environments: Environment::ALL.iter().map(|e| e.as_str()).collect(),
            client_id,
            secret_from_config,
            account: if signed_in { account } else { None },
            status,
            watching,
            token_storage: storage,
            token_storage_note: note,
            token_storage_fallback: fallback,
            unseen,
            paused_until: paused,
            signed_out_reason: if signed_in { None } else { reason },
            error,
        }
    }
}
