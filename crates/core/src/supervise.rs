//! Keeping the watcher alive: a panic in a background task must not leave
//! the app saying "Checking…" while nothing checks. The supervisor runs the
//! watcher in its own task, and when it stops unexpectedly (a panic, or its
//! loop ending without being asked to) logs why, shows "Stopped: …;
//! restarting" in the status, waits with backoff and starts a new watcher on
//! the same handle (so the window and the tray keep their view of it).

use std::time::Duration;

use tokio::sync::watch;

use crate::backoff::Backoff;
use crate::status::Connection;
use crate::watcher::{Watcher, WatcherHandle};

/// A watcher could not even be built this many times in a row: give up
/// (`watch` then exits non-zero; the window shows the error).
const MAX_BUILD_FAILURES: u32 = 5;

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    #[error("the watcher could not be started: {0}")]
    CannotStart(String),
}

/// Log panics through `tracing` (so they reach the log file, not only a
/// stderr nobody reads), then let the default hook print as usual.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = panic_text(info.payload());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(panic = %message, location, "a task panicked");
        default(info);
    }));
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Run watchers built by `make` until `shutdown` turns true, restarting
/// them with backoff when they stop unexpectedly. `Ok` only after a
/// requested shutdown.
pub async fn supervise<F, E>(
    mut make: F,
    handle: WatcherHandle,
    shutdown: watch::Receiver<bool>,
) -> Result<(), SuperviseError>
where
    F: FnMut(WatcherHandle) -> Result<Watcher, E>,
    E: std::fmt::Display,
{
    let mut backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(300));
    let mut build_failures = 0;
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        let why = match make(handle.clone()) {
            Err(e) => {
                build_failures += 1;
                if build_failures >= MAX_BUILD_FAILURES {
                    let text = e.to_string();
                    handle.set_status(|s| {
                        s.connection = Connection::Retrying;
                        s.last_error = Some(format!("Stopped: {text}"));
                    });
                    return Err(SuperviseError::CannotStart(text));
                }
                e.to_string()
            }
            Ok(watcher) => {
                build_failures = 0;
                // Ends with the supervisor: a supervisor aborted (a stop
                // that took too long) leaves no watcher running on.
                let mut task = AbortOnDrop(tokio::spawn(watcher.run(shutdown.clone())));
                match (&mut task.0).await {
                    Ok(()) if *shutdown.borrow() => return Ok(()),
                    Ok(()) => "the watcher's loop ended".to_string(),
                    Err(e) if e.is_panic() => panic_text(&*e.into_panic()),
                    Err(_) => "the watcher's task was cancelled".to_string(),
                }
            }
        };
        let wait = backoff.next_delay();
        tracing::error!(reason = %why, restart_in_secs = wait.as_secs(), "the watcher stopped unexpectedly; restarting it");
        handle.set_status(|s| {
            s.connection = Connection::Restarting;
            s.last_error = Some(format!("Stopped: {why}; restarting"));
            s.restarts = s.restarts.saturating_add(1);
        });
        let mut stop = shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = async { while !*stop.borrow_and_update() { if stop.changed().await.is_err() { std::future::pending::<()>().await } } } => return Ok(()),
        }
    }
}
