//! Staying current: an installed build (the test script's signed `.deb`,
//! unpacked) finds a newer version on a local update server, downloads it,
//! verifies its signature against the key it was built to trust, and
//! installs it through the system's package tool (a recording `pkexec`
//! here) without restarting by itself. When it cannot install the package
//! itself (no administrator), it offers the package for download instead; a
//! tampered package is refused, and a feed that points at plain http on
//! another host is refused. The key is
//! made by the test script for this run (`target/update-test-key`).

use std::path::{Path, PathBuf};
use std::process::Command;

use fsn_e2e::ui::*;
use fsn_e2e::*;

fn update_key() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/update-test-key/key.pub");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/test.sh makes it)", path.display()))
        .trim()
        .to_string()
}

/// The `.deb` unpacked into a scratch root: the installed app.
fn install(deb: &Path, root: &Path) -> PathBuf {
    let ok = Command::new("dpkg")
        .arg("-x")
        .arg(deb)
        .arg(root)
        .status()
        .unwrap()
        .success();
    assert!(ok, "dpkg -x {}", deb.display());
    root.join("usr/bin/fullscript-notifier")
}

/// Signs `file` for `version` with this run's key, as `scripts/release.sh`
/// does for a real release: the version is bound into the signature, so the
/// feed cannot pair a new version number with an older package.
fn sign(file: &Path, version: &str) -> String {
    sign_as(file, Some(version))
}

/// `sign`, or without binding any version (as signatures made before the
/// Tauri CLI recorded one).
fn sign_as(file: &Path, version: Option<&str>) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut args = vec!["signer", "sign"];
    if let Some(v) = version {
        args.extend(["--app-version", v]);
    }
    args.push("-f");
    let out = Command::new(root.join("scripts/tauri"))
        .args(&args)
        .arg(root.join("target/update-test-key/key"))
        .args(["-p", ""])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tauri signer sign: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(format!("{}.sig", file.display())).unwrap()
}

/// A process that exists and has not ended (a zombie has ended).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

fn feed(version: &str, url: &str, signature: &str) -> String {
    serde_json::json!({
        "version": version,
        "notes": "Faster checks.",
        "pub_date": "2026-11-27T12:00:00Z",
        "platforms": {
            "linux-x86_64-deb": {"signature": signature, "url": url},
            "linux-x86_64": {"signature": signature, "url": url}
        }
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_installed_build_installs_a_signed_update_and_refuses_a_tampered_or_insecure_one() {
    if fsn_e2e::skip() {
        return;
    }
    let deb = newest_deb();
    // The bundler signed the package (createUpdaterArtifacts) for this
    // version; the update is the same package published as 0.2.0.
    assert!(
        Path::new(&format!("{}.sig", deb.display())).exists(),
        "the bundler signs its packages"
    );
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let (mut d, _sim) = signed_in_desktop(&format!("update_url = \"{base}/latest.json\"")).await;
    let installed = install(&deb, &d.home().join("root"));

    // The update server: a tampered package first (one byte changed), signed
    // as the real one.
    let updates = d.home().join("updates");
    std::fs::create_dir_all(&updates).unwrap();
    let genuine = std::fs::read(&deb).unwrap();
    let mut tampered = genuine.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x5a;
    std::fs::write(updates.join("app.deb"), &genuine).unwrap();
    std::fs::write(updates.join("tampered.deb"), &tampered).unwrap();
    let signature = sign(&updates.join("app.deb"), "0.2.0");
    std::fs::write(
        updates.join("latest.json"),
        feed("0.2.0", &format!("{base}/tampered.deb"), &signature),
    )
    .unwrap();
    let mut server = Command::new("python3");
    server
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .current_dir(&updates)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    d.spawn("update-server", server);
    wait_for("the update server", TIMEOUT, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });

    // The system's privileged installers. First none that works (the
    // practitioner is no administrator: pkexec, the graphical password
    // prompts and sudo all fail), later a recording `pkexec dpkg -i <package>`.
    let bin = d.home().join("fake-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = |name: &str, body: &str| {
        use std::os::unix::fs::PermissionsExt;
        let path = bin.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    for name in ["pkexec", "zenity", "kdialog", "sudo"] {
        script(name, "exit 1");
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    d.set_env("PATH", &path);
    d.set_env("FSN_TEST_UPDATE_PUBKEY", &update_key());

    let driver = launch_binary(&mut d, &installed, &[]).await;
    until!(
        "the update to be offered",
        text(&driver, "#banners")
            .await
            .contains("Update available: 0.2.0")
    );
    // The headless build says so too.
    assert_eq!(d.status_json()["update_available"]["version"], "0.2.0");
    eprintln!("scenario: the installed build finds 0.2.0 ... ok");

    click(&driver, "#install-update").await;
    until!(
        "the tampered package to be refused",
        text(&driver, "#banners")
            .await
            .contains("signature does not match")
    );
    assert!(
        !d.home().join("pkexec.log").exists(),
        "nothing was installed"
    );
    assert!(
        !visible(&driver, "#download-update").await,
        "a tampered package is not offered for download either"
    );
    eprintln!("scenario: a tampered package is refused ... ok");

    // The genuine package, but no administrator: offered for download.
    std::fs::write(
        updates.join("latest.json"),
        feed("0.2.0", &format!("{base}/app.deb"), &signature),
    )
    .unwrap();
    assert_eq!(d.status_json()["update_available"]["version"], "0.2.0");
    let before = d.opened_urls().len();
    click(&driver, "#install-update").await;
    until!(
        "the download to be offered",
        visible(&driver, "#download-update").await
    );
    assert!(
        text(&driver, "#banners")
            .await
            .contains("could not install the update itself"),
        "{}",
        text(&driver, "#banners").await
    );
    click(&driver, "#download-update").await;
    let opened = wait_for("the package to open in the browser", TIMEOUT, || {
        d.opened_urls().get(before).cloned()
    });
    assert_eq!(opened, format!("{base}/app.deb"));
    assert!(!d.home().join("pkexec.log").exists());
    eprintln!("scenario: without an administrator, the package is offered for download ... ok");

    // The genuine package with a genuine signature, made for another
    // version (an older release's, replayed as 0.2.0): refused, because the
    // signature must bind the version the feed announces.
    std::fs::copy(updates.join("app.deb"), updates.join("replayed.deb")).unwrap();
    let replayed = sign(&updates.join("replayed.deb"), "0.1.9");
    std::fs::write(
        updates.join("latest.json"),
        feed("0.2.0", &format!("{base}/replayed.deb"), &replayed),
    )
    .unwrap();
    click(&driver, "#install-update").await;
    until!(
        "the replayed signature to be refused",
        text(&driver, "#banners")
            .await
            .contains("signature does not match")
    );
    assert!(!d.home().join("pkexec.log").exists());
    assert!(!visible(&driver, "#download-update").await);
    // One that binds no version at all is refused too (requireSignedVersion).
    std::fs::write(
        updates.join("latest.json"),
        feed("0.2.0", &format!("{base}/app.deb"), &signature),
    )
    .unwrap();
    click(&driver, "#install-update").await;
    until!(
        "the download to be offered again",
        visible(&driver, "#download-update").await
    );
    std::fs::copy(updates.join("app.deb"), updates.join("unbound.deb")).unwrap();
    let unbound = sign_as(&updates.join("unbound.deb"), None);
    std::fs::write(
        updates.join("latest.json"),
        feed("0.2.0", &format!("{base}/unbound.deb"), &unbound),
    )
    .unwrap();
    click(&driver, "#install-update").await;
    until!(
        "the signature without a version to be refused",
        !visible(&driver, "#download-update").await
            && text(&driver, "#banners")
                .await
                .contains("signature does not match")
    );
    assert!(!d.home().join("pkexec.log").exists());
    eprintln!("scenario: a signature made for another version, or for none, is refused ... ok");
    std::fs::write(
        updates.join("latest.json"),
        feed("0.2.0", &format!("{base}/app.deb"), &signature),
    )
    .unwrap();

    // With an administrator: downloaded, verified, installed; no restart.
    // It puts the package's programs in place the way dpkg does: each
    // renamed over the running one.
    script(
        "pkexec",
        "echo \"$@\" >> \"$FSN_E2E_DIR/pkexec.log\"\ncp \"$3\" \"$FSN_E2E_DIR/installed.deb\"\n\
         new=$(mktemp -d) && dpkg -x \"$3\" \"$new\" || exit 1\n\
         for f in \"$new\"/usr/bin/*; do b=$(basename \"$f\"); \
         cp \"$f\" \"$FSN_E2E_DIR/root/usr/bin/.$b.new\" && \
         mv -f \"$FSN_E2E_DIR/root/usr/bin/.$b.new\" \"$FSN_E2E_DIR/root/usr/bin/$b\" || exit 1; done",
    );
    click(&driver, "#install-update").await;
    until!(
        "the update to be installed",
        visible(&driver, "#restart-update").await
    );
    let log = std::fs::read_to_string(d.home().join("pkexec.log")).unwrap();
    assert!(log.starts_with("dpkg -i "), "{log}");
    assert_eq!(
        std::fs::read(d.home().join("installed.deb")).unwrap(),
        genuine,
        "the package installed is the one published"
    );
    assert!(
        text(&driver, "#banners")
            .await
            .contains("takes effect when the app restarts"),
        "installed, not restarted"
    );
    eprintln!("scenario: the signed package is installed, the restart is left to the user ... ok");

    // A feed pointing at plain http on another host is refused.
    std::fs::write(
        updates.join("latest.json"),
        feed("0.3.0", "http://updates.example.com/app.deb", &signature),
    )
    .unwrap();
    click(&driver, "#open-settings").await;
    until!("the settings", visible(&driver, "#check-update").await);
    click(&driver, "#check-update").await;
    until!(
        "the insecure feed to be refused",
        text(&driver, "#update-note").await.contains("https")
    );
    let s = d.status_json();
    assert!(s["update_available"].is_null(), "{s}");
    eprintln!("scenario: plain http to another host is refused ... ok");

    // Restart now: the old agent and window go, the new version (the
    // files the package put in place) runs, agent and window.
    click(&driver, "#settings-cancel").await;
    until!(
        "the restart button",
        visible(&driver, "#restart-update").await
    );
    let old_agent = d.agent();
    let old_window = d
        .app_processes()
        .into_iter()
        .find(AppProcess::is_window)
        .expect("the window");
    let running = |pid: u32| {
        std::fs::read_link(format!("/proc/{pid}/exe"))
            .unwrap()
            .display()
            .to_string()
    };
    assert!(
        running(old_agent.pid).ends_with("(deleted)"),
        "the old agent runs the replaced file: {}",
        running(old_agent.pid)
    );
    // (The WebDriver session ends with the old window: no answer awaited.)
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        click(&driver, "#restart-update"),
    )
    .await;
    let (agent, window) = wait_for("the new version's agent and window", TIMEOUT, || {
        let procs = d.app_processes();
        let agent = procs
            .iter()
            .find(|p| p.is_agent() && p.pid != old_agent.pid)?
            .clone();
        let window = procs
            .iter()
            .find(|p| p.is_window() && p.pid != old_window.pid)?
            .clone();
        Some((agent, window))
    });
    let root = d.home().join("root/usr/bin");
    for p in [&agent, &window] {
        let exe = running(p.pid);
        assert!(
            exe.starts_with(&root.display().to_string()) && !exe.ends_with("(deleted)"),
            "{} {:?} runs the new version's file: {exe}",
            p.exe,
            p.args
        );
    }
    wait_for("the old processes to end", TIMEOUT, || {
        (!alive(old_agent.pid) && !alive(old_window.pid)).then_some(())
    });
    // The new agent answers on the endpoint, and the new window is connected to it.
    wait_for(
        "the new window to connect to the new agent",
        TIMEOUT,
        || {
            let v = d.agent_call("focus_open_window")?;
            (v["value"] == true).then_some(())
        },
    );
    eprintln!("scenario: Restart now ends with the new version's agent and window ... ok");
}
