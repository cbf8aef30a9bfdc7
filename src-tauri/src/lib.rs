//! Fullscript Lab Notifier's desktop build: the window (`window`). Every
//! other command, the background agent included, runs in the headless build
//! installed beside it (`fullscript-notifier-headless`), which starts this
//! binary's window when the practitioner opens it. The window only shows
//! and forwards: it speaks the typed protocol (`fsn-protocol`) to the agent.

pub mod memory;
pub mod window;

use std::process::ExitCode;

use clap::Parser;
use fsn_cli::{fail, Cli, Command};

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.is_headless() {
        return run_in_headless_build(&cli);
    }
    let paths = match cli.paths() {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    // Still single-threaded: the environment may be set.
    memory::prefer_light_webkit_renderer();
    match cli.command {
        Some(Command::Window) => window::run(paths),
        _ => fail("unreachable: not a window command"),
    }
}

/// Every command but the window runs in the headless build installed
/// beside this binary: the agent that stays up all day maps no GTK and no
/// WebKit, and this binary does not carry the watcher, the store and the
/// rest of what it never runs.
fn run_in_headless_build(cli: &Cli) -> ExitCode {
    let Some(headless) =
        fsn_protocol::launch::sibling_binary(fsn_protocol::launch::HEADLESS_BINARY)
    else {
        return fail(format!(
            "the app's background part ({}) is not installed beside this program; reinstall the app",
            fsn_protocol::launch::HEADLESS_BINARY
        ));
    };
    // Unix: the same process becomes the headless build (same pid, same
    // arguments), so whoever started it (a login item, a script) sees it.
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let err = std::process::Command::new(&headless)
            .args(std::env::args_os().skip(1))
            .exec();
        let _ = cli;
        fail(format!("could not start {}: {err}", headless.display()))
    }
    // Windows: the agent is started on its own (without a console) and this
    // process ends; a one-off command runs as a child whose output and exit
    // code are this process's.
    #[cfg(windows)]
    {
        let mut cmd = std::process::Command::new(&headless);
        cmd.args(std::env::args_os().skip(1));
        if cli.is_agent() {
            return match fsn_protocol::launch::spawn_detached(&mut cmd) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => fail(format!("could not start {}: {e}", headless.display())),
            };
        }
        match cmd.status() {
            Ok(status) => ExitCode::from(
                status
                    .code()
                    .and_then(|c| u8::try_from(c).ok())
                    .unwrap_or(1),
            ),
            Err(e) => fail(format!("could not start {}: {e}", headless.display())),
        }
    }
}
