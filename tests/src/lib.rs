//! End-to-end harness: a private virtual desktop for the real app.
//!
//! [`Desktop`] starts, as needed, a private D-Bus session bus, Xvfb, dunst
//! (the notification daemon), a D-Bus monitor recording every `Notify` call,
//! gnome-keyring (Secret Service), and tauri-driver; every child runs in its
//! own process group and is killed by that id when the `Desktop` drops, also
//! when a test fails. `$BROWSER` points at a stub that records each URL and,
//! for the simulator's consent page, presses "Authorize" like a person.

use std::io::{BufRead, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use fsn_simulator::{SimConfig, Simulator};

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Xvfb and dunst (a real notification daemon needs a display).
    pub display: bool,
    /// gnome-keyring as the Secret Service.
    pub keyring: bool,
}

/// One `Notify` call as the daemon received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    pub app_name: String,
    pub icon: String,
    pub summary: String,
    pub body: String,
    pub actions: Vec<String>,
    /// The id the daemon answered (from its method return).
    pub id: Option<u32>,
}

struct Proc {
    name: &'static str,
    child: Child,
}

pub struct Desktop {
    pub dir: tempfile::TempDir,
    pub display: Option<String>,
    pub bus: String,
    procs: Vec<Proc>,
    env: Vec<(String, String)>,
}

/// The desktop scenarios need a virtual desktop and the built app; they run
/// in the test script's end-to-end stage (`FSN_E2E=1`) and are skipped by
/// a plain `cargo test`, which therefore needs no display.
pub fn skip() -> bool {
    if std::env::var_os("FSN_E2E").is_some_and(|v| v == "1") {
        return false;
    }
    eprintln!("skipped: the end-to-end scenarios run with FSN_E2E=1 (scripts/test.sh)");
    true
}

/// The newest `.deb` the bundler wrote (`scripts/bundle.sh`, run by the
/// test script before the end-to-end stage).
pub fn newest_deb() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target");
    let mut debs: Vec<PathBuf> = ["debug", "release"]
        .iter()
        .filter_map(|p| std::fs::read_dir(root.join(p).join("bundle/deb")).ok())
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    debs.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    debs.pop()
        .expect("no .deb found: run scripts/bundle.sh --debug first")
}

/// Poll `f` until it answers `Some`, or give up after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every regular file under `dir`, at any depth (links not followed).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(walkdir::DirEntry::into_path)
        .collect()
}

/// The files under `dir` whose bytes contain `needle` anywhere.
pub fn files_holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| std::fs::read(p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle)))
        .collect()
}

/// The app binary built by `cargo build` (the test script builds it first).
pub fn app_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
        });
    let bin = target.join("debug").join("fullscript-notifier");
    if !bin.exists() {
        let ok = Command::new(env!("CARGO"))
            .args(["build", "-p", "fullscript-notifier"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "could not build the app");
    }
    bin
}

fn kill_group(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stderr(Stdio::null())
        .status();
}

/// One of the app's processes on a desktop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppProcess {
    pub pid: u32,
    /// The executable's file name (`fullscript-notifier`,
    /// `fullscript-notifier-headless`, `WebKitNetworkProcess`, …).
    pub exe: String,
    /// Its arguments after the program.
    pub args: Vec<String>,
}

impl AppProcess {
    /// The background agent: the headless build the app hands over to
    /// (started with no command, `--minimized` or `agent`), or the app in
    /// agent mode.
    pub fn is_agent(&self) -> bool {
        let first = self.args.first().map(String::as_str);
        (self.exe == "fullscript-notifier-headless" && matches!(first, None | Some("--minimized")))
            || (self.exe.starts_with("fullscript-notifier") && first == Some("agent"))
    }

    /// The window process (`fullscript-notifier window`).
    pub fn is_window(&self) -> bool {
        self.exe.starts_with("fullscript-notifier")
            && self.args.first().is_some_and(|a| a == "window")
    }

    /// Maps GTK or WebKit (the window, or one of WebKit's helpers).
    pub fn maps_gtk_or_webkit(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/maps", self.pid))
            .map(|m| {
                m.contains("libgtk-3")
                    || m.contains("libwebkit2gtk")
                    || m.contains("libjavascriptcoregtk")
            })
            .unwrap_or(false)
    }

    /// Proportional set size, KiB (`/proc/PID/smaps_rollup`).
    pub fn pss_kib(&self) -> Option<u64> {
        let text = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", self.pid)).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("Pss:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

/// Every live process whose environment has `HOME=<home>`: the app's
/// processes on this desktop (and its helpers), however they were started.
fn processes_of(home: &Path) -> Vec<AppProcess> {
    let needle = format!("HOME={}", home.display());
    let me = std::process::id();
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if !env.split(|b| *b == 0).any(|v| v == needle.as_bytes()) {
            continue;
        }
        // A zombie has no executable any more.
        let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args = cmdline
            .split(|b| *b == 0)
            .skip(1)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        found.push(AppProcess {
            pid,
            exe: exe
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            args,
        });
    }
    found
}

const BROWSER_STUB: &str = r#"#!/bin/sh
# Test browser: record the URL; approve the simulator's consent page.
url="$1"
echo "$url" >> "$FSN_E2E_DIR/opened-urls.txt"
case "$url" in
  */oauth/authorize*)
    page=$(curl -s "$url")
    rid=$(printf '%s' "$page" | sed -n 's/.*name="request_id" value="\([^"]*\)".*/\1/p')
    action=$(printf '%s' "$url" | sed 's/?.*//')/decision
    loc=$(curl -s -o /dev/null -w '%{redirect_url}' --data "request_id=$rid&decision=${FSN_E2E_DECISION:-approve}" "$action")
    [ -n "$loc" ] && curl -s -o /dev/null "$loc"
    ;;
esac
exit 0
"#;

/// A notification daemon for the cases a real one does not show: the
/// capabilities it advertises are given on its command line, and while
/// the file `notifyd-hang` exists in its directory it takes calls and
/// never answers them (a hung daemon). It writes what it received and what
/// it answered to `notifyd.log`, a JSON object a line.
const FAKE_NOTIFYD: &str = r#"
import json, os, sys
import dbus, dbus.service, dbus.mainloop.glib
from gi.repository import GLib

caps = [c for c in sys.argv[1].split(",") if c]
home = sys.argv[2]
log = open(os.path.join(home, "notifyd.log"), "a", buffering=1)
held = []
IFACE = "org.freedesktop.Notifications"

def hanging():
    return os.path.exists(os.path.join(home, "notifyd-hang"))

class Daemon(dbus.service.Object):
    next_id = 0

    @dbus.service.method(IFACE, in_signature="", out_signature="as", async_callbacks=("ok", "err"))
    def GetCapabilities(self, ok, err):
        log.write(json.dumps({"call": "GetCapabilities", "answered": not hanging()}) + "\n")
        if hanging():
            held.append(ok)
        else:
            ok(caps)

    @dbus.service.method(IFACE, in_signature="susssasa{sv}i", out_signature="u", async_callbacks=("ok", "err"))
    def Notify(self, app, replaces, icon, summary, body, actions, hints, timeout, ok, err):
        answered = not hanging()
        entry = {"call": "Notify", "summary": str(summary), "body": str(body), "answered": answered}
        log.write(json.dumps(entry) + "\n")
        if answered:
            Daemon.next_id += 1
            ok(dbus.UInt32(Daemon.next_id))
        else:
            held.append(ok)

    @dbus.service.method(IFACE, in_signature="u", out_signature="")
    def CloseNotification(self, id):
        pass

    @dbus.service.method(IFACE, in_signature="", out_signature="ssss")
    def GetServerInformation(self):
        return ("fake-notifyd", "fsn-tests", "1", "1.2")

dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
bus = dbus.SessionBus()
name = dbus.service.BusName(IFACE, bus)
Daemon(bus, "/org/freedesktop/Notifications")
GLib.MainLoop().run()
"#;

/// One call the fake notification daemon received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeNotify {
    pub call: String,
    pub summary: String,
    pub body: String,
    pub answered: bool,
}

const DUNSTRC: &str = "[global]\n    markup = full\n    mouse_left_click = do_action, close_current\n    history_length = 100\n    show_indicators = yes\n[urgency_low]\n    timeout = 0\n[urgency_normal]\n    timeout = 0\n[urgency_critical]\n    timeout = 0\n";

impl Desktop {
    pub fn start(opts: Options) -> Desktop {
        let dir = tempfile::tempdir().expect("temp dir");
        let home = dir.path().to_path_buf();
        for sub in ["run", "config", "data", "cache"] {
            std::fs::create_dir_all(home.join(sub)).unwrap();
        }
        let runtime = home.join("run");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700));
        }
        let browser = home.join("browser.sh");
        std::fs::write(&browser, BROWSER_STUB).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&browser, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::write(home.join("opened-urls.txt"), "").unwrap();

        let mut d = Desktop {
            dir,
            display: None,
            bus: String::new(),
            procs: Vec::new(),
            env: vec![
                ("HOME".into(), home.display().to_string()),
                ("XDG_RUNTIME_DIR".into(), runtime.display().to_string()),
                (
                    "XDG_CONFIG_HOME".into(),
                    home.join("config").display().to_string(),
                ),
                (
                    "XDG_DATA_HOME".into(),
                    home.join("data").display().to_string(),
                ),
                (
                    "XDG_CACHE_HOME".into(),
                    home.join("cache").display().to_string(),
                ),
                ("BROWSER".into(), browser.display().to_string()),
                ("FSN_E2E_DIR".into(), home.display().to_string()),
                ("NO_AT_BRIDGE".into(), "1".into()),
                (
                    "FSN_CONFIG".into(),
                    home.join("config.toml").display().to_string(),
                ),
                (
                    "FSN_DATA_DIR".into(),
                    home.join("app-data").display().to_string(),
                ),
                // No clinic defaults unless a test writes them (never the machine's).
                (
                    "FSN_DEFAULTS".into(),
                    home.join("defaults.toml").display().to_string(),
                ),
                ("GDK_BACKEND".into(), "x11".into()),
                ("WEBKIT_DISABLE_DMABUF_RENDERER".into(), "1".into()),
                // Everything the app can log is logged, and then scanned.
                ("FSN_LOG".into(), "trace".into()),
            ],
        };

        // Private session bus.
        let mut bus = Command::new("dbus-daemon");
        bus.args(["--session", "--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0);
        let mut child = bus.spawn().expect("dbus-daemon (run scripts/setup.sh)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        d.bus = line.trim().to_string();
        d.procs.push(Proc {
            name: "dbus-daemon",
            child,
        });
        d.env
            .push(("DBUS_SESSION_BUS_ADDRESS".into(), d.bus.clone()));

        if opts.display {
            let mut x = Command::new("Xvfb");
            x.args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1280x800x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0);
            let mut child = x.spawn().expect("Xvfb (run scripts/setup.sh)");
            let mut n = String::new();
            std::io::BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut n)
                .unwrap();
            let display = format!(":{}", n.trim());
            d.procs.push(Proc {
                name: "Xvfb",
                child,
            });
            d.env.push(("DISPLAY".into(), display.clone()));
            d.display = Some(display);

            std::fs::write(home.join("dunstrc"), DUNSTRC).unwrap();
            let dunst = d.spawn("dunst", {
                let mut c = d.command("dunst");
                c.arg("-config").arg(home.join("dunstrc"));
                c
            });
            let _ = dunst;
            d.wait_for_bus_name("org.freedesktop.Notifications");
        }

        // Record every Notify call as the daemon receives it.
        let log = std::fs::File::create(home.join("notify.log")).unwrap();
        let mut mon = d.command("dbus-monitor");
        mon.arg("--session")
            .arg("interface='org.freedesktop.Notifications',member='Notify'")
            // The daemon's answers: a notification's id (for pressing its buttons).
            .arg("type='method_return',sender='org.freedesktop.Notifications'")
            .stdout(log);
        d.spawn("dbus-monitor", mon);
        // The monitor is live once it has printed its own NameAcquired lines.
        wait_for("dbus-monitor", Duration::from_secs(10), || {
            let text = std::fs::read_to_string(home.join("notify.log")).ok()?;
            text.contains("NameAcquired").then_some(())
        });

        if opts.keyring {
            let mut k = d.command("gnome-keyring-daemon");
            k.args(["--foreground", "--unlock", "--components=secrets"])
                .stdin(Stdio::piped());
            let mut child = k.process_group(0).spawn().expect("gnome-keyring-daemon");
            child
                .stdin
                .take()
                .unwrap()
                .write_all(b"e2e-password")
                .unwrap();
            d.procs.push(Proc {
                name: "gnome-keyring",
                child,
            });
            d.wait_for_bus_name("org.freedesktop.secrets");
        }
        d
    }

    pub fn home(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.home().join("app-data")
    }

    /// A command with this desktop's environment (and nothing of the caller's session).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.stderr(Stdio::null()).stdout(Stdio::null());
        c
    }

    /// The app, its stdout and stderr appended to files the log scan reads.
    pub fn app(&self) -> Command {
        let mut c = self.command(app_binary());
        let append = |name: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.home().join(name))
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null())
        };
        c.stdout(append("app-stdout.log"))
            .stderr(append("app-stderr.log"));
        c
    }

    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
    }

    /// Start a long-running child in its own process group; answers its pid.
    pub fn spawn(&mut self, name: &'static str, mut cmd: Command) -> u32 {
        let child = cmd
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let pid = child.id();
        self.procs.push(Proc { name, child });
        pid
    }

    /// SIGKILL a child (by its pid, and its process group).
    pub fn kill(&mut self, pid: u32) {
        kill_group(pid);
        if let Some(i) = self.procs.iter().position(|p| p.child.id() == pid) {
            let mut p = self.procs.remove(i);
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }

    /// The app's processes now (agent, window, WebKit's helpers; not the
    /// test's daemons, which are no `fullscript-notifier` or WebKit binary).
    pub fn app_processes(&self) -> Vec<AppProcess> {
        processes_of(self.home())
            .into_iter()
            .filter(|p| {
                p.exe.starts_with("fullscript-notifier")
                    || (p.exe.starts_with("WebKit") && p.exe != "WebKitWebDriver")
            })
            .collect()
    }

    /// Start the fake notification daemon (on a desktop started without a
    /// display, so no dunst owns the name), advertising `capabilities`.
    pub fn start_fake_notification_daemon(&mut self, capabilities: &[&str]) {
        let script = self.home().join("fake-notifyd.py");
        std::fs::write(&script, FAKE_NOTIFYD).unwrap();
        let mut cmd = self.command("/usr/bin/python3");
        cmd.arg(&script)
            .arg(capabilities.join(","))
            .arg(self.home());
        self.spawn("fake-notifyd", cmd);
        self.wait_for_bus_name("org.freedesktop.Notifications");
    }

    /// From now on the fake daemon takes calls and never answers (`true`),
    /// or answers again (`false`).
    pub fn hang_notification_daemon(&self, hang: bool) {
        let flag = self.home().join("notifyd-hang");
        if hang {
            std::fs::write(flag, "").unwrap();
        } else {
            let _ = std::fs::remove_file(flag);
        }
    }

    /// What the fake daemon received, in order.
    pub fn fake_daemon_calls(&self) -> Vec<FakeNotify> {
        let text = std::fs::read_to_string(self.home().join("notifyd.log")).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| FakeNotify {
                call: v["call"].as_str().unwrap_or_default().to_string(),
                summary: v["summary"].as_str().unwrap_or_default().to_string(),
                body: v["body"].as_str().unwrap_or_default().to_string(),
                answered: v["answered"].as_bool().unwrap_or(false),
            })
            .collect()
    }

    /// One command to the agent over its control endpoint, as any client
    /// speaks it (a JSON line each way); `None` when nothing answers.
    pub fn agent_call(&self, cmd: &str) -> Option<serde_json::Value> {
        use std::io::{BufRead, Write};
        let path = self.data_dir().join("agent.sock");
        let mut stream = std::os::unix::net::UnixStream::connect(path).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        let line = serde_json::json!({"id": 1, "cmd": cmd, "args": {}}).to_string();
        stream.write_all(format!("{line}\n").as_bytes()).ok()?;
        let mut reader = std::io::BufReader::new(stream);
        loop {
            let mut answer = String::new();
            if reader.read_line(&mut answer).ok()? == 0 {
                return None;
            }
            let v: serde_json::Value = serde_json::from_str(&answer).ok()?;
            if v["id"] == 1 {
                return Some(v);
            }
        }
    }

    /// The running agent (waits for one).
    pub fn agent(&self) -> AppProcess {
        wait_for("the agent", Duration::from_secs(40), || {
            self.app_processes().into_iter().find(AppProcess::is_agent)
        })
    }

    /// SIGKILL every process of the app (agent, window, WebKit helpers):
    /// windows first (a window that sees its agent die starts another),
    /// until none is left.
    pub fn kill_app(&mut self) {
        for _ in 0..50 {
            let mut left = self.app_processes();
            if left.is_empty() {
                return;
            }
            left.sort_by_key(AppProcess::is_agent);
            for p in left {
                let _ = Command::new("kill")
                    .args(["-KILL", &p.pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn is_running(&mut self, pid: u32) -> bool {
        self.procs
            .iter_mut()
            .find(|p| p.child.id() == pid)
            .is_some_and(|p| matches!(p.child.try_wait(), Ok(None)))
    }

    pub fn wait_for_bus_name(&self, name: &str) {
        let ok = self
            .command("gdbus")
            .args(["wait", "--session", "--timeout", "15", name])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "{name} did not appear on the private bus");
    }

    /// Run the app's CLI to completion: (exit code, stdout, stderr).
    pub fn run_app(&self, args: &[&str]) -> (i32, String, String) {
        let out = self
            .app()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("run the app");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        // Kept for the log scan; `--verbose` may print what the settings allow.
        let kept = if args.contains(&"--verbose") {
            "verbose-output.log"
        } else {
            "run-app-output.log"
        };
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.home().join(kept))
        {
            let _ = write!(f, "$ {}\n{stdout}{stderr}", args.join(" "));
        }
        (out.status.code().unwrap_or(-1), stdout, stderr)
    }

    /// No token, secret, code, patient name or email in any log file the
    /// app wrote or anything it printed (the suite runs with `FSN_LOG=trace`).
    /// Answers each finding as "file: what kind".
    pub fn scan_logs(&self) -> Vec<String> {
        let needles = sensitive_strings();
        let mut files: Vec<PathBuf> = ["app-stdout.log", "app-stderr.log", "run-app-output.log"]
            .iter()
            .map(|n| self.home().join(n))
            .collect();
        files.extend(files_under(&self.data_dir()).into_iter().filter(|path| {
            path.extension().is_some_and(|e| e == "log")
                || path.to_string_lossy().contains("/logs/")
        }));
        let mut found = Vec::new();
        for file in files {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            for n in &needles {
                if text.contains(n.as_str()) {
                    let kind = if n.len() >= 40 {
                        "a token or code"
                    } else if n.contains('@') {
                        "an email"
                    } else if n.starts_with("fsn-") {
                        "the client secret"
                    } else {
                        "a patient name"
                    };
                    found.push(format!("{}: {kind}", file.display()));
                }
            }
        }
        found.sort();
        found.dedup();
        found
    }

    pub fn status_json(&self) -> serde_json::Value {
        let (code, out, err) = self.run_app(&["status", "--json"]);
        assert_eq!(code, 0, "status failed: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("status --json: {e}: {out}"))
    }

    /// Write the app's config for a simulator (custom environment).
    pub fn write_config(&self, sim: &Simulator, redirect_uri: &str, extra: &str) {
        let text = fsn_simulator::fixture::app_config(&sim.base_url(), redirect_uri, extra);
        std::fs::write(self.home().join("config.toml"), text).unwrap();
    }

    /// Every Notify call so far, parsed from the D-Bus monitor's log.
    pub fn notifications(&self) -> Vec<Notify> {
        let text = std::fs::read_to_string(self.home().join("notify.log")).unwrap_or_default();
        parse_notify_log(&text)
    }

    pub fn wait_for_notifications(&self, count: usize, timeout: Duration) -> Vec<Notify> {
        wait_for(&format!("{count} notifications"), timeout, || {
            let n = self.notifications();
            (n.len() >= count).then_some(n)
        })
    }

    /// Click the newest notification's body (its default action), as a user would.
    pub fn click_newest_notification(&self) {
        let ok = self
            .command("dunstctl")
            .args(["action", "0"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "dunstctl action failed");
    }

    /// Press a notification's button: the daemon's `ActionInvoked` signal
    /// for the `index`-th notification it received (0-based), with the id
    /// the daemon gave it, as the daemon sends it when the button is pressed.
    pub fn invoke_action(&self, index: usize, action: &str) {
        let id = wait_for("the notification's id", crate::ui::TIMEOUT, || {
            self.notifications().get(index).and_then(|n| n.id)
        });
        let ok = self
            .command("dbus-send")
            .args([
                "--session",
                "--type=signal",
                "/org/freedesktop/Notifications",
                "org.freedesktop.Notifications.ActionInvoked",
                &format!("uint32:{id}"),
                &format!("string:{action}"),
            ])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "dbus-send ActionInvoked failed");
    }

    pub fn close_all_notifications(&self) {
        let _ = self.command("dunstctl").arg("close-all").status();
    }

    pub fn dunst_history(&self) -> String {
        self.command("dunstctl")
            .arg("history")
            .stdout(Stdio::piped())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// URLs the `$BROWSER` stub was asked to open.
    pub fn opened_urls(&self) -> Vec<String> {
        std::fs::read_to_string(self.home().join("opened-urls.txt"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub fn screenshot(&self, path: &Path) {
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = self
            .command("import")
            .args(["-window", "root"])
            .arg(path)
            .status();
    }

    /// The X11 id of the mapped window titled `title`, if there is one.
    pub fn window_id(&self, title: &str) -> Option<String> {
        self.command("xdotool")
            .args(["search", "--onlyvisible", "--name", title])
            .stdout(Stdio::piped())
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .last()
                    .map(str::to_string)
            })
    }

    /// What a window manager's close button does: send the window
    /// `WM_DELETE_WINDOW` (the app decides what closing means).
    pub fn close_window(&self, window_id: &str) {
        let script = "import sys\n\
from Xlib import X, display, protocol\n\
d = display.Display()\n\
w = d.create_resource_object('window', int(sys.argv[1]))\n\
ev = protocol.event.ClientMessage(window=w, client_type=d.intern_atom('WM_PROTOCOLS'),\n\
    data=(32, [d.intern_atom('WM_DELETE_WINDOW'), X.CurrentTime, 0, 0, 0]))\n\
w.send_event(ev)\n\
d.flush()\n";
        let ok = self
            .command("/usr/bin/python3")
            .args(["-c", script, window_id])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "could not send WM_DELETE_WINDOW (python3-xlib installed?)"
        );
    }

    /// How many distinct colours the window shows: 1 or 2 for a blank
    /// surface, many once the page has painted.
    pub fn window_colours(&self, window_id: &str) -> usize {
        let png = self.home().join("window-colours.png");
        let _ = self
            .command("import")
            .args(["-window", window_id])
            .arg(&png)
            .status();
        self.command("identify")
            .args(["-format", "%k"])
            .arg(&png)
            .stdout(Stdio::piped())
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(0)
    }

    /// A picture of the window titled `title` (falls back to the whole screen).
    pub fn screenshot_window(&self, title: &str, path: &Path) {
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        match self.window_id(title) {
            Some(id) => {
                let _ = self
                    .command("import")
                    .args(["-window", &id])
                    .arg(path)
                    .status();
            }
            None => self.screenshot(path),
        }
    }

    /// `secret-tool store` in this desktop's keyring, as the app names its
    /// entries (`service` fullscript-notifier, `username` user).
    pub fn keyring_store(&self, user: &str, secret: &str) {
        use std::io::Write;
        let mut child = self
            .command("secret-tool")
            .args(["store", "--label", user, "service", "fullscript-notifier"])
            .args(["username", user])
            .stdin(Stdio::piped())
            .spawn()
            .expect("secret-tool");
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(secret.as_bytes())
                .expect("secret-tool's input");
        }
        assert!(child.wait().is_ok_and(|s| s.success()), "secret-tool store");
    }

    /// `secret-tool lookup` in this desktop's keyring.
    pub fn keyring_lookup(&self, user: &str) -> Option<String> {
        let out = self
            .command("secret-tool")
            .args(["lookup", "service", "fullscript-notifier", "username", user])
            .stdout(Stdio::piped())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && !text.is_empty()).then_some(text)
    }

    /// The newest app log (the window app writes one per day).
    pub fn app_log(&self) -> String {
        let dir = self.data_dir().join("logs");
        let mut out = String::new();
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                out.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        out
    }
}

impl Desktop {
    /// Start tauri-driver (and through it WebKitWebDriver) on free ports;
    /// answers the WebDriver URL.
    pub fn start_driver(&mut self) -> String {
        let port = free_port();
        let native = free_port();
        let mut cmd = self.command("tauri-driver");
        cmd.args([
            "--port",
            &port.to_string(),
            "--native-port",
            &native.to_string(),
        ]);
        self.spawn("tauri-driver", cmd);
        // Both ends: tauri-driver answers a new session by forwarding it to
        // the native driver (WebKitWebDriver) it started, and drops the
        // connection when that one does not listen yet (a CI run failed on
        // exactly that: "error sending request for url …/session").
        for (what, p) in [("tauri-driver", port), ("the native WebDriver", native)] {
            wait_for(what, Duration::from_secs(20), || {
                std::net::TcpStream::connect(("127.0.0.1", p))
                    .ok()
                    .map(|_| ())
            });
        }
        format!("http://127.0.0.1:{port}")
    }

    /// Everything useful when a scenario failed.
    pub fn print_diagnostics(&self) {
        eprintln!("----- app log -----\n{}", self.app_log());
        eprintln!("----- notifications the daemon received -----");
        for n in self.notifications() {
            eprintln!("{} | {} | {}", n.app_name, n.summary, n.body);
        }
        eprintln!("----- dunst history -----\n{}", self.dunst_history());
        eprintln!("----- URLs opened -----\n{}", self.opened_urls().join("\n"));
    }
}

impl Drop for Desktop {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_diagnostics();
        }
        // The app's own processes first, however they were started (the
        // window starts the agent in a process group of its own).
        self.kill_app();
        // Reverse order: the app before its daemons, the bus last.
        while let Some(mut p) = self.procs.pop() {
            kill_group(p.child.id());
            let _ = p.child.kill();
            let _ = p.child.wait();
            let _ = p.name;
        }
        if !std::thread::panicking() {
            let found = self.scan_logs();
            assert!(
                found.is_empty(),
                "sensitive data reached a log or the app's output: {found:?}"
            );
        }
    }
}

pub use fsn_simulator::fixture::free_port;

/// Every simulator the suite started: what each issued and knows of
/// patients is what the log scan looks for (see `Desktop`'s drop).
static SIMULATORS: std::sync::Mutex<Vec<fsn_simulator::SimControl>> =
    std::sync::Mutex::new(Vec::new());

/// A simulator whose registered redirect URI is on a free port.
pub async fn simulator(config: SimConfig) -> (Simulator, String) {
    let (sim, redirect) = fsn_simulator::fixture::start_with_free_redirect(config)
        .await
        .expect("simulator");
    SIMULATORS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(sim.control().clone());
    (sim, redirect)
}

/// Tokens, secrets, codes, patient names and emails of every simulator so far.
fn sensitive_strings() -> Vec<String> {
    SIMULATORS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .flat_map(|s| s.sensitive_strings())
        .collect()
}

/// The simulator's demo client, with tokens in a private file (no keyring).
pub fn demo_client() -> String {
    fsn_simulator::fixture::demo_credentials()
}

/// A desktop, a simulator, and the app already signed in to it with the demo
/// client through `login` (`extra` is appended to the configuration).
pub async fn signed_in(opts: Options, extra: &str) -> (Desktop, Simulator) {
    let d = Desktop::start(opts);
    let (sim, redirect) = simulator(SimConfig::default()).await;
    d.write_config(&sim, &redirect, &format!("{}\n{extra}", demo_client()));
    let (code, _, err) = d.run_app(&["login"]);
    assert_eq!(code, 0, "login: {err}");
    (d, sim)
}

/// The usual start: a desktop with a display and tokens in a private file,
/// the app signed in to a fresh simulator.
pub async fn signed_in_desktop(extra: &str) -> (Desktop, Simulator) {
    signed_in(
        Options {
            display: true,
            keyring: false,
        },
        extra,
    )
    .await
}

fn unquote(line: &str) -> Option<String> {
    let l = line.trim();
    let rest = l.strip_prefix("string \"")?;
    Some(rest.strip_suffix('"').unwrap_or(rest).to_string())
}

fn header_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .map(|v| v.trim_end_matches(';'))
}

pub fn parse_notify_log(text: &str) -> Vec<Notify> {
    let mut out = Vec::new();
    // (caller, serial) of each Notify call → its index in `out` (serials
    // are counted per connection, and every notification has its own).
    let mut by_serial = std::collections::HashMap::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.starts_with("method return") {
            let key = header_field(line, "destination=").zip(header_field(line, "reply_serial="));
            let Some(i) = key.and_then(|(to, s)| by_serial.get(&(to.to_string(), s.to_string())))
            else {
                continue;
            };
            let i: usize = *i;
            if let Some(id) = lines
                .peek()
                .and_then(|l| l.trim().strip_prefix("uint32 "))
                .and_then(|v| v.trim().parse().ok())
            {
                if let Some(n) = out.get_mut(i) {
                    let n: &mut Notify = n;
                    n.id = Some(id);
                }
            }
            continue;
        }
        if !(line.starts_with("method call") && line.contains("member=Notify")) {
            continue;
        }
        let serial = header_field(line, "sender=")
            .zip(header_field(line, "serial="))
            .map(|(from, s)| (from.to_string(), s.to_string()));
        let mut strings = Vec::new();
        let mut actions = Vec::new();
        let mut in_actions = false;
        let mut arrays_seen = 0;
        while let Some(next) = lines.peek() {
            if next.starts_with("method call")
                || next.starts_with("signal")
                || next.starts_with("method return")
            {
                break;
            }
            let l = lines.next().unwrap_or_default().trim().to_string();
            if l.starts_with("array [") {
                arrays_seen += 1;
                in_actions = arrays_seen == 1;
                continue;
            }
            if l == "]" {
                in_actions = false;
                continue;
            }
            if let Some(s) = unquote(&l) {
                if in_actions {
                    actions.push(s);
                } else if arrays_seen == 0 {
                    strings.push(s);
                }
            }
        }
        if strings.len() >= 4 {
            if let Some(s) = serial {
                by_serial.insert(s, out.len());
            }
            out.push(Notify {
                app_name: strings[0].clone(),
                icon: strings[1].clone(),
                summary: strings[2].clone(),
                body: strings[3].clone(),
                actions,
                id: None,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_recorded_notify_call() {
        let log = r#"signal time=1 sender=org.freedesktop.DBus -> destination=:1.3 serial=2 path=/org/freedesktop/DBus; interface=org.freedesktop.DBus; member=NameAcquired
   string ":1.3"
method call time=2 sender=:1.5 -> destination=org.freedesktop.Notifications serial=7 path=/org/freedesktop/Notifications; interface=org.freedesktop.Notifications; member=Notify
   string "Fullscript Lab Notifier"
   uint32 0
   string "/tmp/icon.png"
   string "Lab results ready"
   string "Thyroid Panel · Quest Diagnostics"
   array [
      string "default"
      string "Open results"
   ]
   array [
      dict entry(
         string "desktop-entry"
         variant             string "fullscript-notifier"
      )
   ]
   int32 -1
method return time=3 sender=:1.2 -> destination=:1.9 serial=40 reply_serial=7
   uint32 99
method return time=3 sender=:1.2 -> destination=:1.5 serial=41 reply_serial=7
   uint32 4
"#;
        let n = parse_notify_log(log);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].id, Some(4), "the answer to this caller's call");
        assert_eq!(n[0].app_name, "Fullscript Lab Notifier");
        assert_eq!(n[0].summary, "Lab results ready");
        assert_eq!(n[0].body, "Thyroid Panel · Quest Diagnostics");
        assert_eq!(n[0].actions, ["default", "Open results"]);
    }
}

/// Driving the window app through WebDriver (tauri-driver).
pub mod ui {
    use std::path::Path;
    use std::time::Duration;

    use serde_json::json;
    use thirtyfour::prelude::*;
    use thirtyfour::Capabilities;

    use super::{app_binary, Desktop};

    /// How long a scenario waits for anything.
    pub const TIMEOUT: Duration = Duration::from_secs(40);

    /// Poll an async condition until it holds (or fail after [`TIMEOUT`]).
    #[macro_export]
    macro_rules! until {
        ($what:expr, $cond:expr) => {{
            let start = std::time::Instant::now();
            loop {
                if $cond {
                    break;
                }
                if start.elapsed() > $crate::ui::TIMEOUT {
                    panic!("timed out waiting for {}", $what);
                }
                tokio::time::sleep(std::time::Duration::from_millis(150)).await;
            }
        }};
    }

    /// Start the app's window (as built) under WebDriver; it starts the
    /// background agent, which outlives it.
    pub async fn launch(d: &mut Desktop, args: &[&str]) -> WebDriver {
        launch_binary(d, &app_binary(), args).await
    }

    /// Start this build of the app under WebDriver.
    pub async fn launch_binary(d: &mut Desktop, binary: &Path, args: &[&str]) -> WebDriver {
        let url = d.start_driver();
        let mut caps = Capabilities::new();
        // WebDriver drives the window process (`window`), which starts the
        // agent when none runs.
        let args: Vec<&str> = std::iter::once("window")
            .chain(args.iter().copied())
            .collect();
        caps.set(
            "tauri:options",
            json!({"application": binary.display().to_string(), "args": args}),
        )
        .unwrap();
        // If the app died at start, session creation would hang: bound it.
        let driver = tokio::time::timeout(Duration::from_secs(90), WebDriver::new(url, caps))
            .await
            .expect("WebDriver session within 90 s")
            .expect("WebDriver session");
        driver
            .set_implicit_wait_timeout(Duration::from_millis(0))
            .await
            .unwrap();
        driver
    }

    pub async fn text(driver: &WebDriver, css: &str) -> String {
        match driver.find(By::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    pub async fn attr(driver: &WebDriver, css: &str, name: &str) -> String {
        match driver.find(By::Css(css)).await {
            Ok(e) => e.attr(name).await.ok().flatten().unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Drawn on the page: laid out (not `hidden`, not in a closed dialog or
    /// a closed `<details>`, which WebKitWebDriver's own check counts as
    /// displayed) and not `visibility: hidden`.
    pub async fn visible(driver: &WebDriver, css: &str) -> bool {
        driver
            .execute(
                "const e = document.querySelector(arguments[0]);
                 return !!e && e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden';",
                vec![json!(css)],
            )
            .await
            .ok()
            .and_then(|r| r.json().as_bool())
            .unwrap_or(false)
    }

    /// The window shows this order's row and has finished its first check.
    pub async fn until_listed_and_checked(driver: &WebDriver, order_id: &str) {
        let row = format!("button.order[data-order-id=\"{order_id}\"]");
        crate::until!("the list", visible(driver, &row).await);
        crate::until!(
            "the first check",
            attr(driver, "#conn-badge", "data-state").await == "ok"
        );
    }

    pub async fn click(driver: &WebDriver, css: &str) {
        driver
            .find(By::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap();
    }
}
