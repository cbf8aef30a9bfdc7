//! The page's commands: each one line to the agent (over its control
//! endpoint), except installing an update, which happens in this process.

use std::sync::Arc;

use serde_json::{json, Value};
use tauri::{AppHandle, Runtime, State};

use super::link::Link;
use super::{InstallOutcome, Updates};

type L<'a> = State<'a, Arc<Link>>;
type R = Result<Value, String>;

pub fn register<Rt: Runtime>(builder: tauri::Builder<Rt>) -> tauri::Builder<Rt> {
    builder.invoke_handler(tauri::generate_handler![
        snapshot,
        list_orders,
        open_results,
        mark_seen,
        mark_all_seen,
        undo_mark_all_seen,
        check_now,
        get_settings,
        save_settings,
        pause_notifications,
        resume_notifications,
        sign_in,
        cancel_sign_in,
        sign_out,
        take_view,
        check_for_update,
        install_update,
        download_update,
        restart_to_update,
        send_test_notification,
        set_launch_at_login,
        dismiss_welcome,
        dismiss_catch_up,
    ])
}

#[tauri::command]
pub async fn snapshot(link: L<'_>, updates: State<'_, Arc<Updates>>) -> R {
    Ok(updates.merge(link.call("snapshot", json!({})).await?))
}

/// The rows the list draws and each group's count (never every order).
#[tauri::command]
pub async fn list_orders(link: L<'_>, query: Option<serde_json::Value>) -> R {
    link.call("list_page", json!({ "query": query })).await
}

#[tauri::command]
pub async fn open_results(link: L<'_>, order_id: String) -> R {
    link.call("open_results", json!({ "order_id": order_id }))
        .await
}

#[tauri::command]
pub async fn mark_seen(link: L<'_>, order_id: String) -> R {
    link.call("mark_seen", json!({ "order_id": order_id }))
        .await
}

#[tauri::command]
pub async fn mark_all_seen(link: L<'_>) -> R {
    link.call("mark_all_seen", json!({})).await
}

#[tauri::command]
pub async fn undo_mark_all_seen(link: L<'_>) -> R {
    link.call("undo_mark_all_seen", json!({})).await
}

#[tauri::command]
pub async fn check_now(link: L<'_>) -> R {
    link.call("check_now", json!({})).await
}

#[tauri::command]
pub async fn get_settings(link: L<'_>) -> R {
    link.call("get_settings", json!({})).await
}

#[tauri::command]
pub async fn save_settings(link: L<'_>, settings: Value) -> R {
    link.call("save_settings", json!({ "settings": settings }))
        .await
}

#[tauri::command]
pub async fn pause_notifications(link: L<'_>, preset: String) -> R {
    link.call("pause_notifications", json!({ "preset": preset }))
        .await
}

#[tauri::command]
pub async fn resume_notifications(link: L<'_>) -> R {
    link.call("resume_notifications", json!({})).await
}

#[tauri::command]
pub async fn sign_in(
    link: L<'_>,
    region: Option<String>,
    environment: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
) -> R {
    let args = json!({
        "region": region, "environment": environment,
        "client_id": client_id, "client_secret": client_secret,
    });
    link.call("sign_in", args).await
}

#[tauri::command]
pub async fn cancel_sign_in(link: L<'_>) -> R {
    link.call("cancel_sign_in", json!({})).await
}

#[tauri::command]
pub async fn sign_out(link: L<'_>, erase: Option<bool>) -> R {
    link.call("sign_out", json!({ "erase": erase })).await
}

/// What the page opens on (a notification click started this window).
#[tauri::command]
pub async fn take_view(link: L<'_>) -> R {
    let view = link.call("take_view", json!({})).await?;
    if !view.is_null() {
        // Order ids are opaque (no patient data); the e2e suite reads this.
        tracing::info!(view = %view, "window opened on a view");
    }
    Ok(view)
}

#[tauri::command]
pub async fn check_for_update(link: L<'_>) -> R {
    link.call("check_for_update", json!({})).await
}

#[tauri::command]
pub async fn send_test_notification(link: L<'_>) -> R {
    link.call("send_test_notification", json!({})).await
}

#[tauri::command]
pub async fn set_launch_at_login(link: L<'_>, on: bool) -> R {
    link.call("set_launch_at_login", json!({ "on": on })).await
}

#[tauri::command]
pub async fn dismiss_welcome(link: L<'_>) -> R {
    link.call("dismiss_welcome", json!({})).await
}

#[tauri::command]
pub async fn dismiss_catch_up(link: L<'_>) -> R {
    link.call("dismiss_catch_up", json!({})).await
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
    if let Ok(s) = link.call("snapshot", json!({})).await {
        super::emit_event(&app, super::events::STATE, s);
    }
    result.map_err(|e| e.to_string())
}

/// Open the package the updater could not install (only on the update
/// feed's host: the agent's core decides).
#[tauri::command]
pub async fn download_update(link: L<'_>, updates: State<'_, Arc<Updates>>) -> R {
    let url = updates
        .download()
        .ok_or_else(|| "There is no update to download.".to_string())?;
    link.call("open_update_package", json!({ "url": url.as_str() }))
        .await
}

/// Restart into the installed update: the agent quits, the new version
/// starts (agent and window), this window ends.
#[tauri::command]
pub async fn restart_to_update<Rt: Runtime>(app: AppHandle<Rt>, link: L<'_>) -> Result<(), String> {
    super::restart_into_new_version(&app, &link).await
}
