//! Fullscript Lab Notifier's desktop build: the window (`window`), and the
//! same commands as the headless build. Starting the app runs its background
//! agent (`fsn-agent`, from the headless build beside this binary when it is
//! installed), which starts this binary's window when the practitioner opens
//! it.

pub mod memory;
pub mod window;

use std::process::ExitCode;

use clap::Parser;
use fsn_cli::{fail, Cli, Command};

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.is_headless() {
        // The headless build installed beside this binary, if any: the
        // agent runs there, so the process that stays up all day maps no GTK
        // and no WebKit.
        if let Some(sibling) = fsn_agent::sibling_binary(fsn_agent::HEADLESS_BINARY) {
            // Unix: GTK and WebKit are mapped at start, so every command
            // replaces this process with the headless build (same pid, same
            // arguments).
            #[cfg(unix)]
            {
                use std::os::unix::process::CommandExt;
                let err = std::process::Command::new(&sibling)
                    .args(std::env::args_os().skip(1))
                    .exec();
                eprintln!(
                    "warning: could not start {}: {err}; continuing in-process",
                    sibling.display()
                );
            }
            // Windows: nothing of WebView2 loads until a window is made, so
            // one-off commands run here; the agent, which runs all day, is
            // started on its own (without a console) and this process ends.
            #[cfg(windows)]
            if cli.is_agent() {
                let mut cmd = std::process::Command::new(&sibling);
                cmd.args(std::env::args_os().skip(1));
                match fsn_agent::spawn_detached(&mut cmd) {
                    Ok(_) => return ExitCode::SUCCESS,
                    Err(e) => eprintln!(
                        "warning: could not start {}: {e}; continuing in-process",
                        sibling.display()
                    ),
                }
            }
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
        Some(Command::Window) => window::run(paths),
        _ => fail("unreachable: not a window command"),
    }
}
