// Declares the window's own commands so that the capability file can grant
// exactly these (and nothing else) to the page. The list is the protocol
// crate's (one definition; the capability file is generated from it too).
include!("../crates/protocol/src/window_commands.rs");

fn main() {
    println!("cargo:rerun-if-changed=../crates/protocol/src/window_commands.rs");
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(WINDOW_COMMANDS)),
    )
    .expect("failed to run tauri-build");
}
