//! The Windows build's command line under Wine, against the simulator
//! running natively on Linux (the two share loopback): sign-in through a
//! stub browser, `status`, `watch --once` raising an alert, sign-out.
//! Secrets go to the Windows Credential Manager, the database to %APPDATA%,
//! and the Wine prefix's path has a space in it. Run by scripts/windows.sh,
//! which cross-builds the binaries and names them in FSN_WINDOWS_BIN_DIR.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fsn_e2e::*;

const WINE: &str = "/usr/lib/wine/wine64";
const TIMEOUT: Duration = Duration::from_secs(120);

struct Wine {
    prefix: PathBuf,
    bin: PathBuf,
    home: PathBuf,
}

impl Wine {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(WINE);
        c.arg(self.bin.join("fullscript-notifier-headless.exe"))
            .args(args)
            .env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all")
            .env("BROWSER", windows_path(&self.bin.join("browser-stub.exe")))
            .env(
                "FSN_BROWSER_LOG",
                windows_path(&self.home.join("opened-urls.txt")),
            )
            .env("FSN_LOG", "info")
            .env_remove("DISPLAY")
            .env_remove("FSN_CONFIG")
            .env_remove("FSN_DATA_DIR")
            .env_remove("DBUS_SESSION_BUS_ADDRESS");
        c
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self
            .command(args)
            .stdin(Stdio::null())
            .output()
            .expect("wine64 (scripts/setup.sh --windows installs it)");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn status(&self) -> serde_json::Value {
        let (code, out, err) = self.run(&["status", "--json"]);
        assert_eq!(code, 0, "status: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// `C:\users\<user>\AppData\Roaming` on the Linux side.
    fn appdata(&self) -> PathBuf {
        let users = self.prefix.join("drive_c/users");
        let user = std::fs::read_dir(&users)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.join("AppData").exists())
            .expect("a Wine user profile");
        user.join("AppData/Roaming")
    }
}

/// A Linux path as Wine's Windows programs see it (drive Z: is /).
fn windows_path(p: &Path) -> String {
    format!("Z:{}", p.display()).replace('/', "\\")
}

fn wait<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < TIMEOUT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Follow the consent page like a person pressing "Authorize", then let
/// the redirect reach the app's loopback listener inside Wine.
fn approve(authorize: &str) {
    let page = curl(&["-s", authorize]);
    let request_id = page
        .split("name=\"request_id\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("consent page");
    let action = format!("{}/decision", authorize.split('?').next().unwrap_or(""));
    let location = curl(&[
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{redirect_url}",
        "--data",
        &format!("request_id={request_id}&decision=approve"),
        &action,
    ]);
    curl(&["-s", "-o", "/dev/null", &location]);
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl").args(args).output().expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_windows_command_line_signs_in_watches_and_signs_out_under_wine() {
    let Some(bin) = std::env::var_os("FSN_WINDOWS_BIN_DIR").map(PathBuf::from) else {
        eprintln!("skipped: scripts/windows.sh runs this with FSN_WINDOWS_BIN_DIR set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wine = Wine {
        // A space in the path, as in "C:\Users\Dr Smith".
        prefix: dir.path().join("wine prefix"),
        bin,
        home: dir.path().to_path_buf(),
    };
    let (sim, redirect) = simulator(SimConfig::default()).await;
    let ctl = sim.control().clone();

    // First start creates the prefix (and %APPDATA%).
    let (code, out, err) = wine.run(&["--version"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out.trim(),
        format!("fullscript-notifier {}", env!("CARGO_PKG_VERSION"))
    );

    // The configuration where Windows keeps it: %APPDATA%\fullscript-notifier\config.
    let config_dir = wine.appdata().join("fullscript-notifier/config");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(
        config_dir.join("config.toml"),
        fsn_simulator::fixture::app_config(
            &sim.base_url(),
            &redirect,
            &format!(
                "client_id = \"{}\"\nclient_secret = \"{}\"\n",
                fsn_simulator::DEMO_CLIENT_ID,
                fsn_simulator::DEMO_CLIENT_SECRET
            ),
        ),
    )
    .unwrap();
    let s = wine.status();
    assert_eq!(s["signed_in"], false);
    let data_dir = s["data_dir"].as_str().unwrap().to_string();
    assert!(
        data_dir.ends_with(r"AppData\Roaming\fullscript-notifier\data"),
        "{data_dir}"
    );

    // Sign in: the browser stub records the URL; this test presses "Authorize".
    let login = wine
        .command(&["login"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The stub browser (scripts/windows/browser-stub.c) records the URL.
    let opened = wine.home.join("opened-urls.txt");
    let url = wait("the browser stub", || {
        let text = std::fs::read_to_string(&opened).ok()?;
        let line = text.lines().next()?.trim().trim_matches('"').to_string();
        line.contains("/oauth/authorize").then_some(line)
    });
    approve(&url);
    let out = login.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "login: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Maple Grove Integrative Health"),
        "{stdout}"
    );
    let s = wine.status();
    assert_eq!(s["signed_in"], true);
    assert_eq!(
        s["token_storage"], "keychain",
        "the Windows Credential Manager: {s}"
    );
    let data = wine.appdata().join("fullscript-notifier/data");
    assert!(data.join("lab-notifier.sqlite3").exists());
    assert!(
        !data.join("secrets.json").exists(),
        "no secrets file next to the database"
    );

    // Watching: the baseline, then an alert. Wine has no toasts: the alert
    // is kept queued and the status says why; nothing crashes.
    let order = ctl.add_patient_order("Wendell", "Wine", "processing");
    let (code, out, err) = wine.run(&["watch", "--once"]);
    assert_eq!(code, 0, "{out}{err}");
    ctl.set_state(&order.id, "results_ready").unwrap();
    let (code, out, err) = wine.run(&["watch", "--once"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1 new alerts"), "{out}");
    let s = wine.status();
    assert_eq!(s["orders_by_state"]["results_ready"], 1);
    assert_eq!(
        s["alerts_pending"], 1,
        "queued, to be shown when toasts work"
    );
    assert_eq!(s["notifications_available"], false);
    assert!(
        s["notifications_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{s}"
    );

    // Signing out revokes at Fullscript and removes the credential.
    let (code, out, err) = wine.run(&["logout"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(ctl.live_grants(), 0);
    assert_eq!(wine.status()["signed_in"], false);
}
