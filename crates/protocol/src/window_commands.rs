// The window's own Tauri commands, the one list of them: included by the
// protocol crate (the page's bindings and the capability file are generated
// from it) and by `src-tauri/build.rs` (which declares them to Tauri).
/// `call` forwards a typed request to the agent; the rest are about
/// installing an update, which happens in the window's process.
pub const WINDOW_COMMANDS: &[&str] = &[
    "call",
    "install_update",
    "download_update",
    "restart_to_update",
];
