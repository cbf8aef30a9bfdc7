//! `fullscript-notifier-headless`: the command line without the window app
//! (no GTK/WebKit loaded). `fullscript-notifier` execs it for headless
//! subcommands; it can also be run directly.

use clap::Parser;

fn main() -> std::process::ExitCode {
    fsn_cli::run_headless(fsn_cli::Cli::parse())
}
