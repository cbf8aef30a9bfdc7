//! Shared by the core's integration tests: a simulator, a config pointing
//! at it, and a test "browser" that walks the consent page like a person.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use fsn_core::{App, Paths};
use fsn_simulator::{SimConfig, Simulator};
use url::Url;

#[allow(unused_imports)]
pub use fsn_simulator::fixture::free_port;

pub struct World {
    pub sim: Simulator,
    pub dir: tempfile::TempDir,
    pub redirect_uri: String,
}

pub async fn world(config: SimConfig) -> World {
    let (sim, redirect_uri) = fsn_simulator::fixture::start_with_free_redirect(config)
        .await
        .unwrap();
    World {
        sim,
        dir: tempfile::tempdir().unwrap(),
        redirect_uri,
    }
}

impl World {
    pub fn config_text(&self, extra: &str) -> String {
        fsn_simulator::fixture::app_config(
            &self.sim.base_url(),
            &self.redirect_uri,
            &format!("{}{extra}", fsn_simulator::fixture::demo_credentials()),
        )
    }

    pub fn paths(&self) -> Paths {
        Paths {
            config_file: self.dir.path().join("config.toml"),
            data_dir: self.dir.path().join("data"),
        }
    }

    pub fn app(&self, extra: &str) -> App {
        std::fs::write(self.dir.path().join("config.toml"), self.config_text(extra)).unwrap();
        App::open(self.paths()).unwrap()
    }
}

pub fn http() -> reqwest::Client {
    fsn_core::http::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Read the consent page, press a button; answers the redirect's Location.
pub async fn press(url: &Url, decision: &str) -> String {
    let http = http();
    let html = http
        .get(url.clone())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let request_id = html
        .split("name=\"request_id\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("consent page has a request id")
        .to_string();
    let action = url.join("authorize/decision").unwrap();
    let resp = http
        .post(action)
        .form(&[("request_id", request_id.as_str()), ("decision", decision)])
        .send()
        .await
        .unwrap();
    resp.headers()["location"].to_str().unwrap().to_string()
}

/// A browser that approves (or denies), then lands on the app's callback.
/// `tamper` may rewrite the redirect before it is followed.
pub fn browser(decision: &'static str, tamper: fn(String) -> String) -> impl FnOnce(&Url) {
    move |url: &Url| {
        let url = url.clone();
        tokio::spawn(async move {
            let location = tamper(press(&url, decision).await);
            let _ = http().get(location).send().await;
        });
    }
}

pub fn approve() -> impl FnOnce(&Url) {
    browser("approve", |l| l)
}

pub async fn signed_in(w: &World, extra: &str) -> (App, Arc<fsn_core::session::Session>) {
    let app = w.app(extra);
    let session = app.session().unwrap();
    app.login(&session, approve()).await.unwrap();
    (app, session)
}

pub fn count_refreshes(sim: &Simulator) -> usize {
    sim.control()
        .requests_to("/api/oauth/token")
        .iter()
        .filter(|r| r.grant_type.as_deref() == Some("refresh_token"))
        .count()
}

pub fn secrets_file(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("data").join("secrets.json")).unwrap_or_default()
}

/// A private D-Bus session bus (killed on drop), so tests never touch the
/// developer's own session.
pub struct PrivateBus {
    pub address: String,
    child: std::process::Child,
    keyring: Option<std::process::Child>,
}

impl PrivateBus {
    pub fn start() -> PrivateBus {
        use std::io::BufRead;
        let mut child = std::process::Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("dbus-daemon (scripts/setup.sh installs it)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        PrivateBus {
            address: line.trim().to_string(),
            child,
            keyring: None,
        }
    }

    /// Start gnome-keyring's Secret Service on this bus, unlocked, with its
    /// files under `home`.
    pub fn start_keyring(&mut self, home: &Path) {
        use std::io::Write;
        let runtime = home.join("run");
        std::fs::create_dir_all(&runtime).unwrap();
        let mut child = std::process::Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .env("HOME", home)
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("XDG_DATA_HOME", home.join("data"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("gnome-keyring-daemon (scripts/setup.sh installs it)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"test-password")
            .unwrap();
        self.keyring = Some(child);
        // Wait until the Secret Service name is on the bus.
        let ok = std::process::Command::new("gdbus")
            .args([
                "wait",
                "--session",
                "--timeout",
                "10",
                "org.freedesktop.secrets",
            ])
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .status()
            .unwrap()
            .success();
        assert!(ok, "the Secret Service did not start");
    }

    /// Start gnome-keyring's Secret Service on this bus the way a session
    /// without a login keyring has it: answering, but with no unlocked
    /// collection and no prompter (minimal window managers, SSH/X sessions).
    pub fn start_locked_keyring(&mut self, home: &Path) {
        let runtime = home.join("run");
        std::fs::create_dir_all(&runtime).unwrap();
        let child = std::process::Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--components=secrets"])
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .env("HOME", home)
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("XDG_DATA_HOME", home.join("data"))
            .env_remove("DISPLAY")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("gnome-keyring-daemon (scripts/setup.sh installs it)");
        self.keyring = Some(child);
        let ok = std::process::Command::new("gdbus")
            .args([
                "wait",
                "--session",
                "--timeout",
                "10",
                "org.freedesktop.secrets",
            ])
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .status()
            .unwrap()
            .success();
        assert!(ok, "the Secret Service did not start");
    }

    /// `secret-tool lookup` against this bus's keyring.
    pub fn lookup(&self, user: &str) -> Option<String> {
        let out = std::process::Command::new("secret-tool")
            .args([
                "lookup",
                "service",
                fsn_core::config::APP_DIR,
                "username",
                user,
            ])
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        (out.status.success() && !text.is_empty()).then_some(text)
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        if let Some(k) = self.keyring.as_mut() {
            let _ = k.kill();
            let _ = k.wait();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- watching rig

use fsn_core::notifier::RecordingNotifier;
use fsn_core::policy::Notification;
use fsn_core::watcher::Watcher;
use fsn_simulator::{LabOrder, NewOrder};

pub struct Rig {
    pub w: World,
    pub app: fsn_core::App,
    pub session: Arc<fsn_core::session::Session>,
    pub notes: RecordingNotifier,
}

pub async fn rig(extra: &str) -> Rig {
    let w = world(SimConfig::default()).await;
    let (app, session) = signed_in(&w, extra).await;
    Rig {
        w,
        app,
        session,
        notes: RecordingNotifier::default(),
    }
}

impl Rig {
    pub fn watcher(&self) -> Watcher {
        self.app
            .watcher(self.session.clone(), Arc::new(self.notes.clone()))
            .unwrap()
    }

    pub fn sim(&self) -> &fsn_simulator::SimControl {
        self.w.sim.control()
    }

    pub fn order(&self, first: &str, state: &str) -> LabOrder {
        let p = self.sim().add_patient(first, "Testpatient");
        self.sim()
            .add_order(
                NewOrder::for_patient(&p.id)
                    .named("Thyroid Panel", &["TSH", "Free T4"])
                    .in_state(state),
            )
            .unwrap()
    }

    pub fn results_url(&self, id: &str) -> String {
        format!("{}/labs/orders/{id}", self.w.sim.base_url())
    }

    pub fn requests_since(&self, seq: usize) -> Vec<fsn_simulator::RequestLogEntry> {
        self.sim().requests().into_iter().skip(seq).collect()
    }
}

pub fn titles(notes: &[Notification]) -> Vec<String> {
    notes.iter().map(|n| n.title.clone()).collect()
}
