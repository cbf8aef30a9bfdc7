//! The window app: the Tauri builder, the window and the [`Shell`] the
//! [`Controller`] drives (the page, the tray, launch at login). Commands and
//! the tray are thin callers of the controller; nothing here decides
//! anything a practitioner would notice.

pub mod commands;
pub mod controller;
mod tray;

use std::process::ExitCode;
use std::sync::Arc;

use fsn_core::Paths;
use tauri::{AppHandle, Emitter, Manager, Runtime, WebviewUrl, WebviewWindowBuilder};

pub use controller::{
    Controller, InstallFuture, InstallOutcome, InstallProblem, Shell, SignInBrowser, Snapshot,
    Update,
};

pub const MAIN_WINDOW: &str = "main";

pub struct Options {
    pub minimized: bool,
    /// `demo`: the in-process simulator (kept alive with the app) and the
    /// "browser" that approves its sign-in page.
    pub demo: Option<Demo>,
}

pub struct Demo {
    pub simulator: fsn_simulator::Simulator,
    pub browser: SignInBrowser,
}

/// Events pushed to the page.
pub mod events {
    /// The header/status changed (payload: a snapshot).
    pub const STATE: &str = "state-changed";
    /// The list changed (the page re-reads it).
    pub const ORDERS: &str = "orders-changed";
    /// Highlight this order (payload: order id).
    pub const HIGHLIGHT: &str = "highlight";
    /// Show the new, unseen results (a summary notification was clicked).
    pub const SHOW_NEW: &str = "show-new";
    /// A sign-in finished (payload: { ok, message }).
    pub const SIGN_IN: &str = "sign-in-finished";
}

/// The desktop side of the controller: this app's window, page and tray.
pub struct TauriShell<R: Runtime> {
    app: AppHandle<R>,
}

impl<R: Runtime> TauriShell<R> {
    pub fn new(app: AppHandle<R>) -> TauriShell<R> {
        TauriShell { app }
    }
}

impl<R: Runtime> Shell for TauriShell<R> {
    fn show_window(&self) {
        show_main_window(&self.app);
    }

    fn push(&self, update: Update) {
        let _ = match update {
            Update::State(snapshot) => {
                tray::update(&self.app, &snapshot);
                self.app.emit(events::STATE, &*snapshot)
            }
            Update::Orders => self.app.emit(events::ORDERS, ()),
            Update::Highlight(order_id) => self.app.emit(events::HIGHLIGHT, order_id),
            Update::ShowNew => self.app.emit(events::SHOW_NEW, ()),
            Update::SignIn { ok, message } => self.app.emit(
                events::SIGN_IN,
                serde_json::json!({"ok": ok, "message": message}),
            ),
        };
    }

    fn launch_at_login(&self) -> Option<bool> {
        self.app
            .try_state::<tauri_plugin_autostart::AutoLaunchManager>()
            .and_then(|m| m.is_enabled().ok())
    }

    fn set_launch_at_login(&self, on: bool) -> Result<(), String> {
        let Some(m) = self
            .app
            .try_state::<tauri_plugin_autostart::AutoLaunchManager>()
        else {
            return Ok(());
        };
        if on { m.enable() } else { m.disable() }.map_err(|e| e.to_string())
    }

    fn install_update(&self, feed: url::Url) -> InstallFuture<'_> {
        Box::pin(install_update(self.app.clone(), feed))
    }

    fn restart(&self) {
        self.app.restart();
    }
}

/// The official updater plugin, with this app's rules on top: the feed and
/// the download over https (plain http only on this computer, checked in
/// the config and here), the signature verified against the key built in
/// (`plugins.updater.pubkey`), the package installed without restarting.
async fn install_update<R: Runtime>(
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

pub fn run(paths: Paths, options: Options) -> ExitCode {
    let _log_guard = crate::logging::init_gui(&paths.log_dir());
    fsn_core::supervise::install_panic_hook();
    let minimized = options.minimized;
    let (demo, browser) = match options.demo {
        Some(d) => (Some(d.simulator), Some(d.browser)),
        None => (None, None),
    };
    let is_demo = demo.is_some();

    let builder = tauri::Builder::default()
        // Registered first, so a second start hands over before anything else runs.
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| {
            show_main_window(app);
        }))
        .plugin(tauri_plugin_updater::Builder::new().build())
        .plugin(tauri_plugin_autostart::init(
            tauri_plugin_autostart::MacosLauncher::LaunchAgent,
            Some(vec!["--minimized"]),
        ))
        .plugin(
            tauri_plugin_window_state::Builder::default()
                .with_state_flags(
                    tauri_plugin_window_state::StateFlags::SIZE
                        | tauri_plugin_window_state::StateFlags::POSITION,
                )
                .build(),
        );
    let app = commands::register(builder)
        .setup(move |app| {
            let handle = app.handle().clone();
            let ctl = Controller::new(
                paths,
                is_demo,
                Arc::new(TauriShell::new(handle.clone())),
                browser,
                None,
            );
            app.manage(ctl.clone());
            if !minimized {
                // The window before the tray: it is what the user waits for.
                show_main_window(&handle);
            }
            tray::create(&handle)?;
            tauri::async_runtime::spawn(async move {
                ctl.start().await;
                // The demo signs itself in through the real OAuth flow.
                if is_demo {
                    ctl.sign_in_if_needed().await;
                }
            });
            Ok(())
        })
        .build(tauri::generate_context!());
    let app = match app {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: the window app could not start: {e}");
            return ExitCode::from(1);
        }
    };
    app.run(move |handle, event| match event {
        // Closing the window keeps the app running in the background; only
        // Quit (an explicit exit code) ends it.
        tauri::RunEvent::ExitRequested {
            api, code: None, ..
        } => api.prevent_exit(),
        tauri::RunEvent::Exit => {
            if let Some(ctl) = handle.try_state::<Arc<Controller>>() {
                tauri::async_runtime::block_on(ctl.stop_watching());
            }
            let _ = &demo;
        }
        _ => {}
    });
    ExitCode::SUCCESS
}

/// Show the window, creating it if it was closed (the webview is freed
/// while hidden to keep the background footprint small). Safe from any
/// thread: the work always runs on the main thread, because window calls made
/// from elsewhere block on it, and the window-state plugin holds its lock
/// across them while the main thread wants the same lock for the resize they
/// cause (a second start or a notification click froze the app that way).
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
            w.on_window_event(move |event| match event {
                tauri::WindowEvent::CloseRequested { .. } => {
                    use tauri_plugin_window_state::AppHandleExt;
                    let _ = app.save_window_state(StateFlags::SIZE | StateFlags::POSITION);
                    if let Some(ctl) = app.try_state::<Arc<Controller>>() {
                        ctl.window_closed();
                    }
                }
                tauri::WindowEvent::Destroyed => {
                    // Once WebKit's web process has gone, shrink what is left.
                    std::thread::spawn(|| {
                        std::thread::sleep(std::time::Duration::from_secs(3));
                        crate::memory::release_window_memory();
                    });
                }
                _ => {}
            });
        }
        Err(e) => tracing::error!(error = %e, "could not open the window"),
    }
}
