//! The tray icon: unseen count in the tooltip (and title where the desktop
//! shows one), an icon variant with a red dot, and the menu. Linux trays
//! report no clicks, so everything is in the menu, "Open" first. Every item
//! is one call into the [`Controller`].

use std::sync::Arc;

use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, Runtime};

use super::controller::{Controller, Snapshot};

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
    // Shown once an update is found (its text says which); it opens the window.
    let update = MenuItem::with_id(app, "update", "No update available", false, None::<&str>)?;
    let sep = PredefinedMenuItem::separator(app)?;
    let menu = Menu::with_items(
        app,
        &[&open, &check, &pause, &sep, &update, &sep, &sign_out, &quit],
    )?;
    app.manage(TrayItems {
        update,
        pause: pause.clone(),
    });
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
    let ctl = app.state::<Arc<Controller>>().inner().clone();
    match id {
        "open" | "update" => ctl.show_window(),
        "check" => {
            tauri::async_runtime::spawn(async move {
                let _ = ctl.check_now().await;
            });
        }
        "pause" => {
            tauri::async_runtime::spawn(async move {
                if let Err(e) = ctl.pause_or_resume().await {
                    tracing::warn!(error = %e, "could not pause or resume notifications");
                }
            });
        }
        "sign-out" => {
            tauri::async_runtime::spawn(async move {
                let _ = ctl.sign_out(false).await;
                ctl.show_window();
            });
        }
        "quit" => app.exit(0),
        _ => {}
    }
}

/// Menu items whose text follows the app's state.
struct TrayItems<R: Runtime> {
    update: MenuItem<R>,
    /// "Pause notifications for 1 hour", or "Resume notifications" while paused.
    pause: MenuItem<R>,
}

pub fn update<R: Runtime>(app: &AppHandle<R>, snapshot: &Snapshot) {
    if let Some(items) = app.try_state::<TrayItems<R>>() {
        let offered = snapshot
            .report
            .as_ref()
            .and_then(|r| r.update_available.as_ref());
        let (text, enabled) = match (&snapshot.update_installed, offered) {
            (Some(v), _) => (format!("Update {v} installed: restart to use it"), true),
            (None, Some(u)) => (format!("Update available: {}", u.version), true),
            (None, None) => ("No update available".to_string(), false),
        };
        let _ = items.update.set_text(text);
        let _ = items.update.set_enabled(enabled);
        let paused = snapshot
            .report
            .as_ref()
            .is_some_and(|r| r.paused_until.is_some());
        let _ = items.pause.set_text(if paused {
            "Resume notifications"
        } else {
            "Pause notifications for 1 hour"
        });
    }
    let Some(tray) = app.tray_by_id(TRAY_ID) else {
        return;
    };
    let (signed_in, unseen) = snapshot
        .report
        .as_ref()
        .map_or((false, 0), |r| (r.signed_in, r.unseen));
    let status = if !signed_in {
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
