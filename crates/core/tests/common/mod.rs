//! Shared by the core's integration tests: a simulator, a config pointing
//! at it, and a test "browser" that walks the consent page like a person.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use fsn_core::{App, Paths};
use fsn_simulator::{SimConfig, Simulator};
use url::Url;

/// A free loopback port for the sign-in redirect (each test its own).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct World {
    pub sim: Simulator,
    pub dir: tempfile::TempDir,
    pub redirect_uri: String,
}

pub async fn world(mut config: SimConfig) -> World {
    let redirect_uri = format!("http://127.0.0.1:{}/callback", free_port());
    config.redirect_uri = redirect_uri.clone();
    World {
        sim: Simulator::start(config).await.unwrap(),
        dir: tempfile::tempdir().unwrap(),
        redirect_uri,
    }
}

impl World {
    pub fn config_text(&self, extra: &str) -> String {
        let base = self.sim.base_url();
        format!(
            r#"environment = "custom"
api_base = "{base}/api"
authorize_url = "{base}/api/oauth/authorize"
token_url = "{base}/api/oauth/token"
revoke_url = "{base}/api/oauth/revoke"
results_url = "{base}/labs/orders/{{id}}"
client_id = "{id}"
client_secret = "{secret}"
redirect_uri = "{redirect}"
token_storage = "file"
{extra}
"#,
            id = fsn_simulator::DEMO_CLIENT_ID,
            secret = fsn_simulator::DEMO_CLIENT_SECRET,
            redirect = self.redirect_uri,
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
