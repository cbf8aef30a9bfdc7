//! The window app: a thin shell around the core. It owns the window, the
//! tray, native notifications with click handling, and the bridge that
//! pushes the watcher's changes to the page as Tauri events.

pub mod commands;
pub mod state;
mod tray;

use std::process::ExitCode;
use std::sync::Arc;

use fsn_core::notifier::{DesktopNotifier, Notifier};
use fsn_core::opener::UrlGuard;
use fsn_core::policy::{Notification, NotificationKind};
use fsn_core::session::AuthState;
use fsn_core::watcher::WatchEvent;
use fsn_core::Paths;
use tauri::{AppHandle, Emitter, Manager, Runtime, WebviewUrl, WebviewWindowBuilder};

pub use state::AppState;
use state::{RunningWatcher, Services};

pub const MAIN_WINDOW: &str = "main";

pub struct Options {
    pub minimized: bool,
    /// The in-process simulator of `demo` (kept alive with the app).
    pub demo: Option<fsn_simulator::Simulator>,
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

pub fn run(paths: Paths, options: Options) -> ExitCode {
    let _log_guard = crate::logging::init_gui(&paths.log_dir());
    let demo = options.demo.is_some();
    let state = AppState::new(paths, demo);
    let minimized = options.minimized;
    let sim = options.demo;

    let builder = tauri::Builder::default()
        // Registered first, so a second start hands over before anything else runs.
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| {
            show_main_window(app);
        }))
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
        .manage(state)
        .setup(move |app| {
            let handle = app.handle().clone();
            if !minimized {
                // The window before the tray: it is what the user waits for.
                show_main_window(&handle);
            }
            tray::create(&handle)?;
            tauri::async_runtime::spawn(async move {
                start(&handle).await;
                // The demo signs itself in through the real OAuth flow.
                if demo {
                    commands::demo_sign_in(&handle).await;
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
            let state = handle.state::<AppState>();
            tauri::async_runtime::block_on(state.stop_watching());
            let _ = &sim;
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
                    tell_once_still_running(&app);
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

/// The first time the window is closed, say that the app keeps watching.
fn tell_once_still_running<R: Runtime>(app: &AppHandle<R>) {
    let state = app.state::<AppState>();
    let Some(core) = state.core_blocking() else {
        return;
    };
    if core
        .store
        .meta_get("told_still_running")
        .ok()
        .flatten()
        .is_some()
    {
        return;
    }
    let _ = core.store.meta_set("told_still_running", "1");
    let note = Notification {
        kind: NotificationKind::Info,
        title: "Fullscript Lab Notifier is still running".into(),
        body: "It keeps watching for lab results. Open it again from the tray or your app menu."
            .into(),
        url: None,
        alert_ids: Vec::new(),
        sound: false,
    };
    let notifier = quiet_notifier();
    std::thread::spawn(move || {
        let _ = notifier.show(&note);
    });
}

fn quiet_notifier() -> DesktopNotifier {
    DesktopNotifier::new(Arc::new(|_n: &Notification| {}))
}

/// What a click on one of our notifications does: mark it seen, open its
/// results in the browser, and bring the window up on that order.
pub fn on_notification_click<R: Runtime>(app: &AppHandle<R>, n: &Notification) {
    let state = app.state::<AppState>();
    let now = chrono::Utc::now();
    if let Some(core) = state.core_blocking() {
        let _ = core.store.mark_alerts_seen(&n.alert_ids, now);
        if let NotificationKind::Result { order_id } = &n.kind {
            let _ = core.store.mark_order_seen(order_id, now);
        }
        if let Some(url) = &n.url {
            if !matches!(n.kind, NotificationKind::Summary { .. }) {
                if let Err(e) = UrlGuard::new(&core.config).open(url) {
                    tracing::warn!(error = %e, "could not open results");
                }
            }
        }
    }
    match &n.kind {
        NotificationKind::Result { order_id } => {
            state.set_highlight(Some(order_id.clone()));
            show_main_window(app);
            let _ = app.emit(events::HIGHLIGHT, order_id);
        }
        NotificationKind::Summary { .. } => {
            show_main_window(app);
            let _ = app.emit(events::SHOW_NEW, ());
        }
        NotificationKind::SignInAgain | NotificationKind::Info => show_main_window(app),
    }
    let _ = app.emit(events::ORDERS, ());
    push_state(app);
}

/// Recompute the snapshot and send it to the page and the tray.
pub fn push_state<R: Runtime>(app: &AppHandle<R>) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let snapshot = app.state::<AppState>().snapshot().await;
        tray::update(&app, snapshot.unseen, &snapshot);
        let _ = app.emit(events::STATE, &snapshot);
    });
}

/// Open the core from the config, load a saved sign-in, start watching.
pub async fn start<R: Runtime>(app: &AppHandle<R>) {
    let state = app.state::<AppState>();
    let mut svc = state.services.lock().await;
    state.reload(&mut svc);
    if let Some(session) = svc.session.clone() {
        match session.load().await {
            Ok(true) => {
                if let Err(e) = start_watching(app, &mut svc).await {
                    tracing::error!(error = %e, "could not start watching");
                    svc.error = Some(e);
                }
            }
            Ok(false) => {}
            Err(e) => svc.error = Some(e.to_string()),
        }
    }
    drop(svc);
    push_state(app);
    let _ = app.emit(events::ORDERS, ());
}

/// Start the watcher for the signed-in session, with the desktop notifier
/// and the bridge to the page.
pub async fn start_watching<R: Runtime>(
    app: &AppHandle<R>,
    svc: &mut Services,
) -> Result<(), String> {
    if svc.watcher.is_some() {
        return Ok(());
    }
    let core = svc.core.clone().ok_or("not configured")?;
    let session = svc.session.clone().ok_or("not configured")?;
    let lock = core.lock_watcher().map_err(|e| e.to_string())?;
    let click_app = app.clone();
    let notifier = Arc::new(
        DesktopNotifier::new(Arc::new(move |n: &Notification| {
            on_notification_click(&click_app, n)
        }))
        .with_icon(state::notification_icon(&core.paths)),
    );
    let watcher = core
        .watcher(session.clone(), notifier.clone())
        .map_err(|e| e.to_string())?;
    let handle = watcher.handle();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);

    // Watcher events → the page and the tray.
    let bridge_app = app.clone();
    let mut events = handle.subscribe();
    let bridge = tauri::async_runtime::spawn(async move {
        loop {
            match events.recv().await {
                Ok(WatchEvent::OrdersChanged) | Ok(WatchEvent::Delivered(_)) => {
                    let _ = bridge_app.emit(events::ORDERS, ());
                    push_state(&bridge_app);
                }
                Ok(WatchEvent::Status(_)) | Ok(WatchEvent::Cycle { .. }) => push_state(&bridge_app),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => push_state(&bridge_app),
                Err(_) => break,
            }
        }
    });

    // Fullscript ended the session: say so, once, and show the sign-in screen.
    let auth_app = app.clone();
    let mut auth = session.subscribe();
    let sound = core.config.sound;
    let auth_notifier = notifier.clone();
    let auth_watch = tauri::async_runtime::spawn(async move {
        while auth.changed().await.is_ok() {
            let ended = matches!(&*auth.borrow(), AuthState::SignedOut { reason: Some(r) } if r != "signed out");
            if ended {
                let note = fsn_core::policy::sign_in_again(sound);
                let n = auth_notifier.clone();
                let _ = tokio::task::spawn_blocking(move || n.show(&note)).await;
                let state = auth_app.state::<AppState>();
                state.stop_watching().await;
                push_state(&auth_app);
                break;
            }
        }
    });

    let task = tauri::async_runtime::spawn(watcher.run(stop_rx));
    svc.watcher = Some(RunningWatcher {
        handle,
        stop: stop_tx,
        tasks: vec![task, bridge, auth_watch],
        _lock: lock,
    });
    Ok(())
}
