//! Fullscript Lab Notifier's desktop app: the window app and demo mode, a
//! thin layer over `fsn-core`; the command line lives in `fsn-cli`.

pub mod demo;
pub mod gui;
pub mod logging;
pub mod memory;

use std::process::ExitCode;

use clap::Parser;
use fsn_cli::{fail, Cli, Command};

/// The headless build installed beside this binary, if any. (Unix: there
/// the window toolkit's libraries are mapped at start, so `watch` replaces
/// itself with the build that has none. On Windows nothing of WebView2 loads
/// until a window is made, so the commands run in-process.)
#[cfg(unix)]
fn headless_sibling() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let sibling = exe.parent()?.join("fullscript-notifier-headless");
    sibling.is_file().then_some(sibling)
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.is_headless() {
        // Replace this process with the headless build (same pid, same
        // arguments), so GTK and WebKit are not kept in memory all day.
        #[cfg(unix)]
        if let Some(sibling) = headless_sibling() {
            use std::os::unix::process::CommandExt;
            let err = std::process::Command::new(&sibling)
                .args(std::env::args_os().skip(1))
                .exec();
            eprintln!(
                "warning: could not start {}: {err}; continuing in-process",
                sibling.display()
            );
        }
        return fsn_cli::run_headless(cli);
    }
    let paths = match cli.paths() {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    // Still single-threaded: the environment may be set.
    memory::prefer_light_webkit_renderer();
    match cli.command {
        Some(Command::Demo { step_secs }) => demo::run(paths, step_secs),
        _ => gui::run(
            paths,
            gui::Options {
                minimized: cli.minimized,
                demo: None,
            },
        ),
    }
}
