//! Fullscript Lab Notifier's background agent: the one process that runs
//! all day. It owns the watcher and the database writes, shows
//! notifications and receives their clicks, keeps the tray, and listens on
//! a private control endpoint for the window, which is a separate process
//! (`fullscript-notifier window`) started when the practitioner opens it and
//! gone when it is closed. It links neither GTK nor WebKit.
//!
//! One agent per data directory: starting the app again finds the running
//! agent on its endpoint and asks it to show the window.

pub mod controller;
pub mod demo;
pub mod dispatch;
pub mod logging;
pub mod shell;
pub mod tray;

use std::process::ExitCode;
use std::sync::Arc;

use fsn_core::Paths;
use fsn_protocol::transport as ipc;
use fsn_protocol::{Event, Request};
use tokio::sync::Notify;

pub use controller::{Controller, SignInBrowser};

pub struct Options {
    /// Start in the background (launch at login): no window.
    pub minimized: bool,
    /// The demo: the in-process simulator (kept alive with the agent) and
    /// the "browser" that approves its sign-in page.
    pub demo: Option<Demo>,
}

pub struct Demo {
    pub simulator: fsn_simulator::Simulator,
    pub browser: SignInBrowser,
}

pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// Quit (from the tray or the window), and the one-window rule.
struct Agent {
    quit: Notify,
    hub: ipc::Hub,
}

impl dispatch::AgentControl for Agent {
    fn quit(&self) {
        self.quit.notify_one();
    }

    fn focus_open_window(&self) -> bool {
        if self.hub.windows() > 0 {
            self.hub.send(Event::Show);
            true
        } else {
            false
        }
    }
}

/// Run the agent (or hand over to the one already running).
pub fn run(paths: Paths, options: Options) -> ExitCode {
    match runtime() {
        Ok(rt) => run_on(rt, paths, options),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::from(1)
        }
    }
}

pub use fsn_protocol::launch::{sibling_binary, spawn_detached, HEADLESS_BINARY, WINDOW_BINARY};

/// Ask a running agent to show its window; `false` when none runs.
pub async fn show_in_running_agent(paths: &Paths) -> bool {
    let endpoint = ipc::Endpoint::for_data_dir(&paths.data_dir);
    match ipc::Client::connect(&endpoint).await {
        Ok((client, _events)) => client.call(&Request::ShowWindow).await.is_ok(),
        Err(_) => false,
    }
}

pub fn run_on(rt: tokio::runtime::Runtime, paths: Paths, options: Options) -> ExitCode {
    let log_guard = logging::init_files(&paths.log_dir(), "fullscript-notifier");
    fsn_core::supervise::install_panic_hook();
    let work = move || {
        let code = rt.block_on(agent(paths, options));
        // The watcher's blocking work (a notification in flight) may still
        // hold threads: give them a moment, never forever.
        rt.shutdown_timeout(std::time::Duration::from_secs(5));
        // (The last log lines are written before the process may end.)
        drop(log_guard);
        code
    };
    // macOS: the main thread runs the run loop the tray and notification
    // clicks need; the agent runs beside it.
    #[cfg(target_os = "macos")]
    {
        tray::macos::run_with_main_loop(work)
    }
    #[cfg(not(target_os = "macos"))]
    {
        work()
    }
}

async fn agent(paths: Paths, options: Options) -> ExitCode {
    if let Err(e) = paths.ensure_data_dir() {
        eprintln!("error: data directory {}: {e}", paths.data_dir.display());
        return ExitCode::from(1);
    }
    let endpoint = ipc::Endpoint::for_data_dir(&paths.data_dir);
    // Started again: the running agent shows its window.
    if ipc::Client::connect(&endpoint).await.is_ok() {
        tracing::info!(
            minimized = options.minimized,
            "the app is running already: handing over to it"
        );
        if !options.minimized && !show_in_running_agent(&paths).await {
            eprintln!("error: the running app did not answer");
            return ExitCode::from(1);
        }
        return ExitCode::SUCCESS;
    }
    let listener = match ipc::Listener::bind(&endpoint).await {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            // Another start won the race (it holds the lock and is about to
            // listen): it shows the window. Or a `watch` holds the lock.
            tracing::info!("another agent holds this data directory: handing over to it");
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
            loop {
                if ipc::Client::connect(&endpoint).await.is_ok() {
                    if !options.minimized {
                        show_in_running_agent(&paths).await;
                    }
                    return ExitCode::SUCCESS;
                }
                if tokio::time::Instant::now() > deadline {
                    eprintln!(
                        "error: another process of the app is watching {} (a `fullscript-notifier watch`?); stop it first",
                        paths.data_dir.display()
                    );
                    return ExitCode::from(1);
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
        Err(e) => {
            eprintln!("error: cannot listen for the window: {e}");
            return ExitCode::from(1);
        }
    };
    let (demo, browser) = match options.demo {
        Some(d) => (Some(d.simulator), Some(d.browser)),
        None => (None, None),
    };
    let hub = ipc::Hub::default();
    let shell = Arc::new(shell::AgentShell::new(hub.clone(), paths.clone()));
    let ctl = Controller::new(paths, demo.is_some(), shell.clone(), browser, None);
    // The watcher runs under the agent's own lock (taken before it bound).
    match listener.lock_handle() {
        Ok(lock) => ctl.hold_watcher_lock(lock),
        Err(e) => tracing::warn!(error = %e, "could not share the agent's lock with its watcher"),
    }
    let quit = Arc::new(Agent {
        quit: Notify::new(),
        hub: hub.clone(),
    });
    let handler: ipc::Handler = {
        let ctl = ctl.clone();
        let quit = quit.clone();
        Arc::new(move |request| {
            let ctl = ctl.clone();
            let quit = quit.clone();
            Box::pin(async move { dispatch::dispatch(&ctl, &*quit, request).await })
        })
    };
    let server = tokio::spawn(ipc::serve(listener, handler, hub.clone()));
    if let Some(tray) = tray::spawn(ctl.clone(), quit.clone()).await {
        shell.set_tray(tray);
    }
    tracing::info!(pid = std::process::id(), "agent started");
    ctl.start().await;
    if demo.is_some() {
        // The demo signs itself in through the real OAuth flow.
        ctl.sign_in_if_needed().await;
    }
    if !options.minimized {
        ctl.show_window();
    }
    wait_for_quit(&quit).await;
    tracing::info!("agent stopping");
    shell.close_windows();
    // An open window must hear "quit" before the endpoint goes, or it would
    // take the agent for crashed and start it again: wait until it has gone
    // (it disconnects when it closes), a few seconds at most.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
    while hub.windows() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    ctl.stop_watching().await;
    server.abort();
    drop(demo);
    ExitCode::SUCCESS
}

async fn wait_for_quit(quit: &Agent) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).ok();
        let mut int = signal(SignalKind::interrupt()).ok();
        tokio::select! {
            _ = quit.quit.notified() => {}
            _ = async { match term.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {}
            _ = async { match int.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {}
        }
    }
    #[cfg(not(unix))]
    {
        tokio::select! {
            _ = quit.quit.notified() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
}
