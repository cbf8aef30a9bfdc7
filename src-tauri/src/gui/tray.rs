//! The tray icon: unseen count in the tooltip (and title where the desktop
//! shows one), an icon variant with a red dot, and the menu. Linux trays
//! report no clicks, so everything is in the menu, "Open" first.

use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, Runtime};

use super::state::{AppState, Snapshot};
use super::{commands, show_main_window};

const TRAY_ID: &str = "main";

fn icon(unseen: bool) -> Option<Image<'static>> {
    let bytes: &'static [u8] = if unseen {
        include_bytes!("../../../icons/tray-unseen.png")
    } else {
        include_bytes!("../../../icons/tray.png")
    };
    Image::from_bytes(bytes).ok()
}

pub fn create<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<()> {
    let open = MenuItem::with_id(app, "open", "Open", true, None::<&str>)?;
    let check = MenuItem::with_id(app, "check", "Check now", true, None::<&str>)?;
    let pause = MenuItem::with_id(
        app,
        "pause",
        "Pause notifications for 1 hour",
        true,
        None::<&str>,
    )?;
    let sign_out = MenuItem::with_id(app, "sign-out", "Sign out", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
    let sep = PredefinedMenuItem::separator(app)?;
    let menu = Menu::with_items(app, &[&open, &check, &pause, &sep, &sign_out, &quit])?;
    let mut builder = TrayIconBuilder::with_id(TRAY_ID)
        .tooltip("Fullscript Lab Notifier")
        .menu(&menu)
        .on_menu_event(|app, event| on_menu(app, event.id.as_ref()));
    if let Some(i) = icon(false) {
        builder = builder.icon(i);
    }
    builder.build(app)?;
    Ok(())
}

fn on_menu<R: Runtime>(app: &AppHandle<R>, id: &str) {
    match id {
        "open" => show_main_window(app),
        "check" => {
            let app = app.clone();
            tauri::async_runtime::spawn(async move {
                if let Some(w) = app.state::<AppState>().watcher().await {
                    w.check_now_with_sweep();
                }
            });
        }
        "pause" => {
            let app = app.clone();
            tauri::async_runtime::spawn(async move {
                let until = chrono::Utc::now() + chrono::Duration::hours(1);
                let state = app.state::<AppState>();
                if let Err(e) = commands::set_pause(&app, &state, Some(until)).await {
                    tracing::warn!(error = %e, "could not pause notifications");
                }
            });
        }
        "sign-out" => {
            let app = app.clone();
            tauri::async_runtime::spawn(async move {
                let state = app.state::<AppState>();
                let _ = commands::sign_out(app.clone(), state).await;
                show_main_window(&app);
            });
        }
        "quit" => app.exit(0),
        _ => {}
    }
}

pub fn update<R: Runtime>(app: &AppHandle<R>, unseen: usize, snapshot: &Snapshot) {
    let Some(tray) = app.tray_by_id(TRAY_ID) else {
        return;
    };
    let status = if !snapshot.signed_in {
        "signed out".to_string()
    } else if unseen == 0 {
        "no new results".to_string()
    } else if unseen == 1 {
        "1 new result".to_string()
    } else {
        format!("{unseen} new results")
    };
    let _ = tray.set_tooltip(Some(format!("Fullscript Lab Notifier: {status}")));
    let _ = tray.set_title(if unseen > 0 {
        Some(unseen.to_string())
    } else {
        None
    });
    let _ = tray.set_icon(icon(unseen > 0));
}
