// Declares the app's own commands so that the capability file can grant
// exactly these (and nothing else) to the window.
fn main() {
    tauri_build::try_build(tauri_build::Attributes::new().app_manifest(
        tauri_build::AppManifest::new().commands(&[
            "snapshot",
            "list_orders",
            "open_results",
            "mark_seen",
            "mark_all_seen",
            "check_now",
            "get_settings",
            "save_settings",
            "pause_notifications",
            "resume_notifications",
            "sign_in",
            "cancel_sign_in",
            "sign_out",
            "take_view",
            "check_for_update",
            "install_update",
            "download_update",
            "restart_to_update",
            "undo_mark_all_seen",
            "send_test_notification",
            "set_launch_at_login",
            "dismiss_welcome",
            "dismiss_catch_up",
        ]),
    ))
    .expect("failed to run tauri-build");
}
