//! The page's commands. One forwards a typed [`Request`] to the agent over
//! its control endpoint; the others are the window's own, about installing
//! an update, which happens in this process (the updater plugin needs the
//! Tauri app). Their names are declared once, in the protocol crate
//! (`window_commands.rs`), from which `build.rs`, the capability file and
//! the page's bindings take them.

use std::sync::Arc;

use fsn_protocol::{Request, Snapshot};
use serde_json::Value;
use tauri::{AppHandle, Runtime, State};

use super::link::Link;
use super::{InstallOutcome, Updates};

type L<'a> = State<'a, Arc<Link>>;

pub fn register<Rt: Runtime>(builder: tauri::Builder<Rt>) -> tauri::Builder<Rt> {
    builder.invoke_handler(tauri::generate_handler![
        call,
        install_update,
        download_update,
        restart_to_update,
    ])
}

/// Forward one request from the page to the agent and return its answer;
/// the snapshot gets this window's update state.
#[tauri::command]
pub async fn call(
    link: L<'_>,
    updates: State<'_, Arc<Updates>>,
    request: Request,
) -> Result<Value, String> {
    if !request.page_may_send() {
        return Err(format!("`{}` is not the page's to send", request.name()));
    }
    match request {
        Request::Snapshot => {
            let snapshot: Snapshot = link.ask(&Request::Snapshot).await?;
            serde_json::to_value(updates.window_snapshot(snapshot)).map_err(|e| e.to_string())
        }
        Request::TakeView => {
            let view = link.call(&Request::TakeView).await?;
            if !view.is_null() {
                // Order ids are opaque (no patient data); the e2e suite reads this.
                tracing::info!(view = %view, "window opened on a view");
            }
            Ok(view)
        }
        other => link.call(&other).await,
    }
}

/// Install the available update here (the updater plugin lives in this
/// process); never restarts by itself.
#[tauri::command]
pub async fn install_update<Rt: Runtime>(
    app: AppHandle<Rt>,
    link: L<'_>,
    updates: State<'_, Arc<Updates>>,
) -> Result<InstallOutcome, String> {
    let config = fsn_core::Config::load(&link.paths().config_file).map_err(|e| e.to_string())?;
    let result = super::install_update(app.clone(), config.update_url).await;
    updates.record(&result);
    // The page's banners follow the new state.
    if let Ok(s) = link.ask::<Snapshot>(&Request::Snapshot).await {
        super::emit_agent_event(&app, fsn_protocol::Event::StateChanged(Box::new(s)));
    }
    result.map_err(|e| e.to_string())
}

/// Open the package the updater could not install (only on the update
/// feed's host: the agent's core decides).
#[tauri::command]
pub async fn download_update(
    link: L<'_>,
    updates: State<'_, Arc<Updates>>,
) -> Result<Value, String> {
    let url = updates
        .download()
        .ok_or_else(|| "There is no update to download.".to_string())?;
    link.call(&Request::OpenUpdatePackage {
        url: url.to_string(),
    })
    .await
}

/// Restart into the installed update: the agent quits, the new version
/// starts (agent and window), this window ends.
#[tauri::command]
pub async fn restart_to_update<Rt: Runtime>(app: AppHandle<Rt>, link: L<'_>) -> Result<(), String> {
    super::restart_into_new_version(&app, &link).await
}
