//! The window only shows and forwards: its binary carries the protocol and
//! the core's wire types, never the watcher, the store, the notifier or
//! the agent's controller (those run in the headless build's agent). Read
//! from the debug build's symbol names (Rust's mangling spells each path
//! segment with its length: `8fsn_core7watcher`).

use fsn_e2e::app_binary;

#[test]
fn the_window_binary_does_not_carry_what_only_the_agent_runs() {
    // (std's substring search is optimised even in a debug build.)
    let read = |p: std::path::PathBuf| {
        String::from_utf8_lossy(&std::fs::read(&p).expect("the app is built")).into_owned()
    };
    let window = read(app_binary());
    let headless = read(app_binary().with_file_name("fullscript-notifier-headless"));
    for (module, mangled) in [
        ("fsn_core::watcher", "8fsn_core7watcher"),
        ("fsn_core::store::Store", "8fsn_core5store5Store"),
        ("fsn_core::notifier", "8fsn_core8notifier"),
        ("fsn_core::detect", "8fsn_core6detect"),
        ("fsn_core::app::App", "8fsn_core3app3App"),
        ("fsn_agent::controller", "9fsn_agent10controller"),
    ] {
        // The check itself works: the agent's binary has them.
        assert!(headless.contains(mangled), "{module} in the agent");
        assert!(!window.contains(mangled), "{module} linked into the window");
    }
}
