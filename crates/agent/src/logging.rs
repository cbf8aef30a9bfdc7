//! Logging with `tracing`. Secrets and patient names never reach a log line:
//! they live in types that redact themselves, and HTTP libraries log at warn.

use std::path::Path;

use tracing_subscriber::{fmt, layer::SubscriberExt, util::SubscriberInitExt, EnvFilter};

fn filter(default: &str) -> EnvFilter {
    EnvFilter::try_from_env("FSN_LOG").unwrap_or_else(|_| EnvFilter::new(default))
}

/// The agent and the window: stderr and a daily log file in the data
/// directory (7 kept), one per process kind (`prefix`).
pub fn init_files(
    log_dir: &Path,
    prefix: &str,
) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    let _ = std::fs::create_dir_all(log_dir);
    let file = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix(prefix)
        .filename_suffix("log")
        .max_log_files(7)
        .build(log_dir)
        .ok();
    let default = "warn,fsn_core=info,fsn_agent=info,fullscript_notifier=info";
    match file {
        Some(appender) => {
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let _ = tracing_subscriber::registry()
                .with(fmt::layer().with_writer(std::io::stderr).with_target(false))
                .with(
                    fmt::layer()
                        .with_writer(writer)
                        .with_ansi(false)
                        .with_target(false),
                )
                .with(filter(default))
                .try_init();
            Some(guard)
        }
        None => {
            let _ = tracing_subscriber::registry()
                .with(fmt::layer().with_writer(std::io::stderr).with_target(false))
                .with(filter(default))
                .try_init();
            None
        }
    }
}
