//! The window's line to the agent: connect (starting the agent when none
//! runs), pass its events to the page, and when it goes away (a crash, a
//! `kill -9`) say so and start it again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fsn_core::Paths;
use fsn_protocol::{CallError, Client, Endpoint, Event, Request, WindowEvent};
use serde_json::Value;
use tauri::{AppHandle, Runtime};

/// How long a starting agent may take to listen.
const AGENT_START_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Link {
    paths: Paths,
    endpoint: Endpoint,
    /// The connection to the agent (none while it starts or restarts).
    client: tokio::sync::watch::Sender<Option<Arc<Client>>>,
    /// The window is closing (or the app quitting): do not restart the agent.
    closing: AtomicBool,
    /// Restarting into an installed update: the agent's "quit" ends the
    /// link, not this process (which still has to start the new version).
    restarting: AtomicBool,
    /// This program's path as it was at start: after a package replaced
    /// the binary, `current_exe()` names the deleted file, while this path
    /// holds the new version.
    started_as: Option<std::path::PathBuf>,
}

impl Link {
    pub fn new(paths: Paths) -> Link {
        let endpoint = Endpoint::for_data_dir(&paths.data_dir);
        Link {
            paths,
            endpoint,
            client: tokio::sync::watch::Sender::new(None),
            closing: AtomicBool::new(false),
            restarting: AtomicBool::new(false),
            started_as: std::env::current_exe().ok().map(|p| installed_path(&p)),
        }
    }

    /// The program to start for the new version.
    pub fn program(&self) -> Option<std::path::PathBuf> {
        self.started_as
            .clone()
            .or_else(|| std::env::current_exe().ok().map(|p| installed_path(&p)))
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// One command to the agent (waiting for it while it starts); its
    /// error is one sentence for the page.
    pub async fn call(&self, request: &Request) -> Result<Value, String> {
        let mut rx = self.client.subscribe();
        let connected = tokio::time::timeout(AGENT_START_TIMEOUT, rx.wait_for(Option::is_some))
            .await
            .ok()
            .and_then(Result::ok)
            .and_then(|c| c.clone());
        match connected {
            Some(c) => c.call(request).await.map_err(|e| match e {
                CallError::NotRunning => {
                    "The app's background part stopped; it is being restarted. Try again in a moment."
                        .to_string()
                }
                CallError::Refused(m) => m,
                CallError::TimedOut(_) => {
                    "The app's background part did not answer in time; try again in a moment."
                        .to_string()
                }
                CallError::Unreadable(e) => format!(
                    "The app's background part answered something this window cannot read ({e}); restart the app."
                ),
            }),
            None => Err("The app's background part is not answering; try again in a moment.".into()),
        }
    }

    /// One command, its answer read as what that command answers.
    pub async fn ask<T: serde::de::DeserializeOwned>(
        &self,
        request: &Request,
    ) -> Result<T, String> {
        let v = self.call(request).await?;
        serde_json::from_value(v).map_err(|e| {
            format!("The app's background part answered something this window cannot read ({e}); restart the app.")
        })
    }

    /// The window is closing: tell the agent (the first time it says it
    /// keeps watching), and do not restart it from here any more.
    pub fn closing(&self) {
        self.closing.store(true, Ordering::SeqCst);
        let call = self.call(&Request::WindowClosed);
        let _ = tauri::async_runtime::block_on(async {
            tokio::time::timeout(Duration::from_secs(2), call).await
        });
    }

    /// Leaving on purpose (a restart into an update): the agent is not
    /// restarted, and its "quit" does not end this process.
    pub fn set_restarting(&self) {
        self.closing.store(true, Ordering::SeqCst);
        self.restarting.store(true, Ordering::SeqCst);
    }

    fn is_restarting(&self) -> bool {
        self.restarting.load(Ordering::SeqCst)
    }

    /// Until the agent no longer listens (it quit), at most `limit`;
    /// answers whether it is gone.
    pub async fn wait_agent_gone(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while Client::connect(&self.endpoint).await.is_ok() {
            if tokio::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        true
    }

    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// Connect, starting the agent (in the background) if none listens.
    async fn connect_or_start(
        &self,
    ) -> Result<(Client, tokio::sync::mpsc::Receiver<Event>), String> {
        if let Ok(c) = Client::connect(&self.endpoint).await {
            return Ok(c);
        }
        start_agent(&self.paths)?;
        let deadline = tokio::time::Instant::now() + AGENT_START_TIMEOUT;
        loop {
            if let Ok(c) = Client::connect(&self.endpoint).await {
                return Ok(c);
            }
            if tokio::time::Instant::now() > deadline {
                return Err("The app's background part did not start.".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The path a program was started from, as it is on disk now: Linux
/// names a binary replaced while running `… (deleted)`.
pub fn installed_path(p: &std::path::Path) -> std::path::PathBuf {
    let text = p.to_string_lossy();
    match text.strip_suffix(" (deleted)") {
        Some(original) => std::path::PathBuf::from(original),
        None => p.to_path_buf(),
    }
}

/// Start the agent: the headless build beside this binary (no GTK, no
/// WebKit), else this binary in agent mode. In its own process group, so
/// it outlives this window and whatever started it.
pub fn start_agent(paths: &Paths) -> Result<(), String> {
    let bin = match fsn_protocol::launch::sibling_binary(fsn_protocol::launch::HEADLESS_BINARY) {
        Some(headless) => headless,
        None => std::env::current_exe().map_err(|e| e.to_string())?,
    };
    let mut cmd = std::process::Command::new(bin);
    cmd.args(["agent", "--minimized"])
        .env("FSN_CONFIG", &paths.config_file)
        .env("FSN_DATA_DIR", &paths.data_dir);
    let mut child = fsn_protocol::launch::spawn_detached(&mut cmd)
        .map_err(|e| format!("could not start the agent: {e}"))?;
    tracing::info!(pid = child.id(), "agent started by the window");
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    Ok(())
}

/// For as long as the window lives: connected to the agent, its events
/// passed to the page; when it goes away, said, and started again.
pub async fn keep_connected<R: Runtime>(app: AppHandle<R>, link: Arc<Link>) {
    let mut first = true;
    loop {
        let (client, mut events) = match link.connect_or_start().await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "no agent");
                super::emit_window_event(&app, WindowEvent::AgentGone { message: e });
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        // One window: if another is open, it comes forward and this one goes.
        if first
            && client
                .call(&Request::FocusOpenWindow)
                .await
                .ok()
                .and_then(|v| v.as_bool())
                == Some(true)
        {
            tracing::info!("a window is open already; it was brought forward");
            link.closing.store(true, Ordering::SeqCst);
            app.exit(0);
            return;
        }
        if let Err(e) = client.subscribe(true).await {
            tracing::warn!(error = %e, "could not listen to the agent");
            continue;
        }
        link.client.send_replace(Some(Arc::new(client)));
        if !first {
            tracing::info!("agent back");
            super::emit_window_event(&app, WindowEvent::AgentBack);
        }
        first = false;
        while let Some(e) = events.recv().await {
            match e {
                Event::Show => super::show_main_window(&app),
                Event::Quit if link.is_restarting() => {
                    // The restart goes on (it starts the new version, then
                    // exits); the connection closes now, so the agent
                    // need not wait for this window before it leaves.
                    link.client.send_replace(None);
                    return;
                }
                Event::Quit => {
                    link.closing.store(true, Ordering::SeqCst);
                    app.exit(0);
                    return;
                }
                other => super::emit_agent_event(&app, other),
            }
        }
        link.client.send_replace(None);
        if link.is_closing() {
            return;
        }
        tracing::warn!("the agent went away; starting it again");
        super::emit_window_event(
            &app,
            WindowEvent::AgentGone {
                message: "The app's background part stopped; restarting it…".into(),
            },
        );
    }
}
