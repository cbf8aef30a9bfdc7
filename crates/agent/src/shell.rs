//! The agent's side of the desktop ([`Shell`]): the window is another
//! process of the same app (`fullscript-notifier window`), started when the
//! practitioner opens it and gone when it is closed; what changed goes to it
//! (when one is open) and to the tray; launch at login.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fsn_core::config::APP_NAME;
use fsn_core::Paths;
use fsn_protocol::{Event, Hub};

use crate::controller::{Shell, Snapshot, Update};

/// What the tray shows; the agent's tray implements it.
pub trait TrayView: Send + Sync {
    fn update(&self, snapshot: &Snapshot);
}

/// The agent's shell.
pub struct AgentShell {
    hub: Hub,
    paths: Paths,
    window_binary: Option<PathBuf>,
    /// A window process started and not connected yet (so a second click
    /// does not start a second window): when, and how many windows had
    /// connected before it.
    starting: Mutex<Option<(Instant, usize)>>,
    tray: Mutex<Option<Arc<dyn TrayView>>>,
    autostart: Option<auto_launch::AutoLaunch>,
}

/// How long a started window may take to connect before another is started.
const WINDOW_START_GRACE: Duration = Duration::from_secs(15);

/// The window app's binary: `fullscript-notifier` beside this one (the
/// headless agent), or this very binary when it is the window app.
pub fn window_binary() -> Option<PathBuf> {
    crate::sibling_binary(crate::WINDOW_BINARY)
}

impl AgentShell {
    pub fn new(hub: Hub, paths: Paths) -> AgentShell {
        let window_binary = window_binary();
        let autostart = window_binary.as_ref().and_then(|bin| {
            let mut b = auto_launch::AutoLaunchBuilder::new();
            b.set_app_name(APP_NAME)
                .set_app_path(&bin.display().to_string())
                .set_args(&["--minimized"]);
            #[cfg(target_os = "macos")]
            b.set_macos_launch_mode(auto_launch::MacOSLaunchMode::LaunchAgent);
            b.build()
                .map_err(|e| tracing::warn!(error = %e, "launch at login is not available"))
                .ok()
        });
        AgentShell {
            hub,
            paths,
            window_binary,
            starting: Mutex::new(None),
            tray: Mutex::new(None),
            autostart,
        }
    }

    pub fn set_tray(&self, tray: Arc<dyn TrayView>) {
        *self.tray.lock().unwrap_or_else(|p| p.into_inner()) = Some(tray);
    }

    /// Tell the open window (if any) to close: the app quits.
    pub fn close_windows(&self) {
        self.hub.send(Event::Quit);
    }

    fn start_window(&self) {
        let mut starting = self.starting.lock().unwrap_or_else(|p| p.into_inner());
        let arrived = self.hub.windows_ever();
        if starting.is_some_and(|(t, before)| t.elapsed() < WINDOW_START_GRACE && arrived == before)
        {
            return;
        }
        let Some(bin) = &self.window_binary else {
            tracing::warn!("the window app is not installed beside the agent; it cannot be shown");
            return;
        };
        let spawned = std::process::Command::new(bin)
            .arg("window")
            .env("FSN_CONFIG", &self.paths.config_file)
            .env("FSN_DATA_DIR", &self.paths.data_dir)
            .stdin(std::process::Stdio::null())
            .spawn();
        match spawned {
            Ok(mut child) => {
                *starting = Some((Instant::now(), arrived));
                tracing::info!(pid = child.id(), "window started");
                // Reaped when it exits (closing the window ends its process).
                std::thread::spawn(move || {
                    let _ = child.wait();
                });
            }
            Err(e) => tracing::error!(error = %e, "could not start the window"),
        }
    }
}

impl Shell for AgentShell {
    fn window_open(&self) -> bool {
        self.hub.windows() > 0
    }

    fn show_window(&self) {
        if self.hub.windows() > 0 {
            self.hub.send(Event::Show);
        } else {
            self.start_window();
        }
    }

    fn push(&self, update: Update) {
        match update {
            Update::State(snapshot) => {
                let tray = self.tray.lock().unwrap_or_else(|p| p.into_inner()).clone();
                if let Some(t) = tray {
                    t.update(&snapshot);
                }
                self.hub.send(Event::StateChanged(snapshot));
            }
            Update::Orders => self.hub.send(Event::OrdersChanged),
            Update::Highlight(order_id) => self.hub.send(Event::Highlight { order_id }),
            Update::ShowNew => self.hub.send(Event::ShowNew),
            Update::SignIn { ok, message } => self.hub.send(Event::SignInFinished { ok, message }),
        }
    }

    fn launch_at_login(&self) -> Option<bool> {
        self.autostart.as_ref().and_then(|a| a.is_enabled().ok())
    }

    fn set_launch_at_login(&self, on: bool) -> Result<(), String> {
        let Some(a) = &self.autostart else {
            return Err("launch at login is not available here".into());
        };
        let r = if on { a.enable() } else { a.disable() };
        match r {
            Err(auto_launch::Error::Io(e)) if !on && e.kind() == std::io::ErrorKind::NotFound => {
                Ok(())
            }
            other => other.map_err(|e| e.to_string()),
        }
    }
}
