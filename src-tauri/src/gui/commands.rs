//! The page's commands: each a one-liner into the [`Controller`].

use std::sync::Arc;

use fsn_core::config::Region;
use fsn_core::store::OrderRow;
use tauri::{Runtime, State};

use super::controller::{
    CmdResult, Controller, InstallOutcome, Settings, SignInStarted, SignedOut, Snapshot,
};

type Ctl<'a> = State<'a, Arc<Controller>>;

pub fn register<R: Runtime>(builder: tauri::Builder<R>) -> tauri::Builder<R> {
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
        take_highlight,
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
pub async fn snapshot(ctl: Ctl<'_>) -> CmdResult<Snapshot> {
    Ok(ctl.snapshot().await)
}

#[tauri::command]
pub async fn list_orders(ctl: Ctl<'_>) -> CmdResult<Vec<OrderRow>> {
    ctl.list_orders().await
}

#[tauri::command]
pub async fn open_results(ctl: Ctl<'_>, order_id: String) -> CmdResult<String> {
    ctl.open_results(order_id).await
}

#[tauri::command]
pub async fn mark_seen(ctl: Ctl<'_>, order_id: String) -> CmdResult<usize> {
    ctl.mark_seen(order_id).await
}

#[tauri::command]
pub async fn mark_all_seen(ctl: Ctl<'_>) -> CmdResult<usize> {
    ctl.mark_all_seen().await
}

#[tauri::command]
pub async fn check_now(ctl: Ctl<'_>) -> CmdResult<()> {
    ctl.check_now().await
}

#[tauri::command]
pub async fn get_settings(ctl: Ctl<'_>) -> CmdResult<Settings> {
    ctl.get_settings().await
}

#[tauri::command]
pub async fn save_settings(ctl: Ctl<'_>, settings: Settings) -> CmdResult<Settings> {
    ctl.save_settings(settings).await
}

#[tauri::command]
pub async fn pause_notifications(ctl: Ctl<'_>, preset: String) -> CmdResult<String> {
    ctl.pause(&preset).await
}

#[tauri::command]
pub async fn resume_notifications(ctl: Ctl<'_>) -> CmdResult<()> {
    ctl.resume().await
}

#[tauri::command]
pub async fn sign_in(
    ctl: Ctl<'_>,
    region: Option<Region>,
    environment: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
) -> CmdResult<SignInStarted> {
    ctl.sign_in(region, environment, client_id, client_secret)
        .await
}

#[tauri::command]
pub async fn undo_mark_all_seen(ctl: Ctl<'_>) -> CmdResult<usize> {
    ctl.undo_mark_all_seen().await
}

#[tauri::command]
pub async fn send_test_notification(ctl: Ctl<'_>) -> CmdResult<String> {
    ctl.send_test_notification().await
}

#[tauri::command]
pub fn set_launch_at_login(ctl: Ctl<'_>, on: bool) -> CmdResult<()> {
    ctl.set_launch_at_login(on)
}

#[tauri::command]
pub async fn dismiss_welcome(ctl: Ctl<'_>) -> CmdResult<()> {
    ctl.dismiss_welcome().await
}

#[tauri::command]
pub async fn dismiss_catch_up(ctl: Ctl<'_>) -> CmdResult<()> {
    ctl.dismiss_catch_up().await
}

#[tauri::command]
pub async fn cancel_sign_in(ctl: Ctl<'_>) -> CmdResult<()> {
    ctl.cancel_sign_in().await
}

#[tauri::command]
pub async fn sign_out(ctl: Ctl<'_>, erase: Option<bool>) -> CmdResult<SignedOut> {
    ctl.sign_out(erase.unwrap_or(false)).await
}

#[tauri::command]
pub fn take_highlight(ctl: Ctl<'_>) -> Option<String> {
    ctl.take_highlight()
}

#[tauri::command]
pub async fn check_for_update(ctl: Ctl<'_>) -> CmdResult<Option<fsn_core::update::UpdateInfo>> {
    ctl.check_for_update().await
}

#[tauri::command]
pub async fn install_update(ctl: Ctl<'_>) -> CmdResult<InstallOutcome> {
    ctl.install_update().await
}

#[tauri::command]
pub async fn download_update(ctl: Ctl<'_>) -> CmdResult<String> {
    ctl.download_update().await
}

#[tauri::command]
pub fn restart_to_update(ctl: Ctl<'_>) {
    ctl.restart_to_update()
}
