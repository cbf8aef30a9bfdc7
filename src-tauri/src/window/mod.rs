//! The window process (`fullscript-notifier window`): the Tauri part of the
//! app, alive only while the window is open. It owns nothing: the page's
//! commands go to the background agent over its control endpoint (starting
//! the agent when none runs), the agent's events come back to the page, and
//! closing the window ends this process. Only installing an update happens
//! here, because the official updater plugin needs the Tauri app.

pub mod commands;
pub mod link;

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use fsn_core::Paths;
use fsn_protocol::{Event, Request, Snapshot, WindowEvent, WindowSnapshot};
use serde::Serialize;
use tauri::{AppHandle, Emitter, Manager, Runtime, WebviewUrl, WebviewWindowBuilder};

use link::Link;

pub const MAIN_WINDOW: &str = "main";

/// What installing an update did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InstallOutcome {
    /// Installed; it takes effect when the app restarts (the practitioner decides when).
    Installed { version: String },
    /// The feed has nothing newer after all.
    UpToDate,
}

/// Why an update was not installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstallProblem {
    /// The package is not the one the release owner signed: never offered
    /// for download either.
    #[error("The update's signature does not match this app's key: it was not installed.")]
    BadSignature,
    /// A genuine package this copy cannot install (a `.deb` needs an
    /// administrator; no `pkexec`, or the practitioner declined): the
    /// practitioner can download it (`download`, the package the plugin
    /// fetched) and install it by hand.
    #[error(
        "The app could not install the update itself ({reason}). Download the new package and \
         install it (installing a .deb needs an administrator)."
    )]
    CannotInstallItself {
        reason: String,
        download: Option<url::Url>,
    },
    /// Anything else (the network, the feed).
    #[error("The update could not be installed: {0}")]
    Failed(String),
}

/// What this process adds to the agent's snapshot: the update installed in
/// this run, or why it was not.
#[derive(Default)]
pub struct Updates {
    installed: Mutex<Option<String>>,
    problem: Mutex<Option<InstallProblem>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Updates {
    /// The agent's snapshot with this window's update state.
    pub fn window_snapshot(&self, agent: Snapshot) -> WindowSnapshot {
        let problem = lock(&self.problem).clone();
        WindowSnapshot {
            agent,
            update_installed: lock(&self.installed).clone(),
            offer_update_download: matches!(
                problem,
                Some(InstallProblem::CannotInstallItself {
                    download: Some(_),
                    ..
                })
            ),
            update_problem: problem.as_ref().map(ToString::to_string),
        }
    }

    pub fn download(&self) -> Option<url::Url> {
        match &*lock(&self.problem) {
            Some(InstallProblem::CannotInstallItself { download, .. }) => download.clone(),
            _ => None,
        }
    }

    pub fn record(&self, result: &Result<InstallOutcome, InstallProblem>) {
        match result {
            Ok(InstallOutcome::Installed { version }) => {
                tracing::info!(version = %version, "update installed; it takes effect at the next start");
                *lock(&self.installed) = Some(version.clone());
                *lock(&self.problem) = None;
            }
            Ok(InstallOutcome::UpToDate) => *lock(&self.problem) = None,
            Err(e) => {
                tracing::warn!(error = %e, "the update was not installed");
                *lock(&self.problem) = Some(e.clone());
            }
        }
    }
}

/// Run the window process.
pub fn run(paths: Paths) -> ExitCode {
    let _log_guard = fsn_agent::logging::init_files(&paths.log_dir(), "fullscript-notifier-window");
    fsn_core::supervise::install_panic_hook();
    let link = Arc::new(Link::new(paths));
    let builder = tauri::Builder::default()
        .plugin(tauri_plugin_updater::Builder::new().build())
        .plugin(
            tauri_plugin_window_state::Builder::default()
                .with_state_flags(
                    tauri_plugin_window_state::StateFlags::SIZE
                        | tauri_plugin_window_state::StateFlags::POSITION,
                )
                .build(),
        );
    let app = commands::register(builder)
        .manage(link.clone())
        .manage(Arc::new(Updates::default()))
        .setup(move |app| {
            let handle = app.handle().clone();
            show_main_window(&handle);
            tauri::async_runtime::spawn(link::keep_connected(handle, link.clone()));
            Ok(())
        })
        .build(tauri::generate_context!());
    let app = match app {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: the window could not start: {e}");
            return ExitCode::from(1);
        }
    };
    // Closing the window ends this process; the agent keeps watching.
    app.run(|_, _| {});
    ExitCode::SUCCESS
}

/// Restart into an installed update: the agent quits, the new version
/// starts (its agent, then its window), and this window ends.
pub async fn restart_into_new_version<R: Runtime>(
    app: &AppHandle<R>,
    link: &Link,
) -> Result<(), String> {
    // Whatever arrives first (the answer, the agent's "quit" event, the
    // endpoint closing), this process lives on until the new version runs.
    link.set_restarting();
    let _ = link.call(&Request::Quit).await;
    if !link
        .wait_agent_gone(std::time::Duration::from_secs(30))
        .await
    {
        // Starting now would hand over to the old agent, which then quits.
        return Err(
            "The app's background part did not stop; quit the app and start it again.".into(),
        );
    }
    let me = link
        .program()
        .ok_or_else(|| "The new version could not be found.".to_string())?;
    tracing::info!(program = %me.display(), "starting the new version");
    let mut cmd = std::process::Command::new(me);
    cmd.env("FSN_CONFIG", &link.paths().config_file)
        .env("FSN_DATA_DIR", &link.paths().data_dir);
    fsn_protocol::launch::spawn_detached(&mut cmd)
        .map_err(|e| format!("The new version could not be started: {e}"))?;
    app.exit(0);
    Ok(())
}

/// Pass one of the agent's events to the page (a snapshot gets this
/// window's update state).
pub fn emit_agent_event<R: Runtime>(app: &AppHandle<R>, event: Event) {
    let window_snapshot = match (&event, app.try_state::<Arc<Updates>>()) {
        (Event::StateChanged(s), Some(u)) => Some(u.window_snapshot((**s).clone())),
        _ => None,
    };
    let (name, mut payload) = event.into_parts();
    if let Some(w) = window_snapshot {
        payload = serde_json::to_value(w).unwrap_or_default();
    }
    let _ = app.emit(&name, payload);
}

/// Tell the page what this window knows (the agent went, came back).
pub fn emit_window_event<R: Runtime>(app: &AppHandle<R>, event: WindowEvent) {
    let (name, payload) = event.into_parts();
    let _ = app.emit(&name, payload);
}

/// The official updater plugin, with this app's rules on top: the feed and
/// the download over https (plain http only on this computer, checked in
/// the config and here), the signature verified against the key built in
/// (`plugins.updater.pubkey`), the package installed without restarting.
pub async fn install_update<R: Runtime>(
    app: AppHandle<R>,
    feed: url::Url,
) -> Result<InstallOutcome, InstallProblem> {
    use tauri_plugin_updater::UpdaterExt;
    let failed = |e: &dyn std::fmt::Display| InstallProblem::Failed(e.to_string());
    fsn_core::update::check_transport(&feed).map_err(|e| failed(&e))?;
    // (The plugin itself refuses plain http in release builds; debug builds
    // accept a local update server, which is what the tests use.)
    #[allow(unused_mut)]
    let mut builder = app
        .updater_builder()
        .endpoints(vec![feed.clone()])
        .map_err(|e| failed(&e))?;
    #[cfg(debug_assertions)]
    if let Some(key) = std::env::var("FSN_TEST_UPDATE_PUBKEY")
        .ok()
        .filter(|k| !k.is_empty())
    {
        // Tests sign with a key made for the run; debug builds only.
        builder = builder.pubkey(key);
    }
    let updater = builder.build().map_err(|e| failed(&e))?;
    let Some(update) = updater.check().await.map_err(describe_update_error)? else {
        return Ok(InstallOutcome::UpToDate);
    };
    fsn_core::update::check_transport(&update.download_url).map_err(|e| failed(&e))?;
    let version = update.version.clone();
    let package = update.download_url.clone();
    update
        .download_and_install(|_, _| {}, || {})
        .await
        .map_err(|e| match describe_update_error(e) {
            InstallProblem::CannotInstallItself { reason, .. } => {
                InstallProblem::CannotInstallItself {
                    reason,
                    download: Some(package),
                }
            }
            other => other,
        })?;
    Ok(InstallOutcome::Installed { version })
}

fn describe_update_error(e: tauri_plugin_updater::Error) -> InstallProblem {
    use tauri_plugin_updater::Error as E;
    match e {
        E::Minisign(_)
        | E::Base64(_)
        | E::SignatureUtf8(_)
        | E::SignedVersionMismatch { .. }
        | E::MissingSignedVersion => InstallProblem::BadSignature,
        E::PackageInstallFailed
        | E::DebInstallFailed
        | E::AuthenticationFailed
        | E::InvalidUpdaterFormat
        | E::TempDirNotFound
        | E::Io(_)
        | E::UnsupportedOs
        | E::UnsupportedArch => InstallProblem::CannotInstallItself {
            reason: e.to_string(),
            download: None,
        },
        other => InstallProblem::Failed(other.to_string()),
    }
}

/// Show the window, creating it if needed. Safe from any thread: the work
/// always runs on the main thread, because window calls made from elsewhere
/// block on it, and the window-state plugin holds its lock across them while
/// the main thread wants the same lock for the resize they cause.
pub fn show_main_window<R: Runtime>(app: &AppHandle<R>) {
    let handle = app.clone();
    if let Err(e) = app.run_on_main_thread(move || show_main_window_now(&handle)) {
        tracing::error!(error = %e, "could not open the window");
    }
}

fn show_main_window_now<R: Runtime>(app: &AppHandle<R>) {
    if let Some(w) = app.get_webview_window(MAIN_WINDOW) {
        let _ = w.unminimize();
        let _ = w.show();
        let _ = w.set_focus();
        return;
    }
    let built = WebviewWindowBuilder::new(app, MAIN_WINDOW, WebviewUrl::App("index.html".into()))
        .title("Fullscript Lab Notifier")
        .inner_size(980.0, 700.0)
        .min_inner_size(520.0, 420.0)
        .build();
    match built {
        Ok(w) => {
            use tauri_plugin_window_state::{StateFlags, WindowExt};
            let _ = w.restore_state(StateFlags::SIZE | StateFlags::POSITION);
            let _ = w.set_focus();
            let app = app.clone();
            w.on_window_event(move |event| {
                if let tauri::WindowEvent::CloseRequested { .. } = event {
                    use tauri_plugin_window_state::AppHandleExt;
                    let _ = app.save_window_state(StateFlags::SIZE | StateFlags::POSITION);
                    if let Some(link) = app.try_state::<Arc<Link>>() {
                        link.closing();
                    }
                }
            });
        }
        Err(e) => tracing::error!(error = %e, "could not open the window"),
    }
}
