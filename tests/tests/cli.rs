//! The command line's contract: exit codes and one clear line per failure.

use fsn_e2e::*;

const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(40);

fn config(d: &Desktop, sim: &Simulator, redirect: &str, extra: &str) {
    d.write_config(
        sim,
        redirect,
        &format!("client_id = \"fsn-demo-client\"\ntoken_storage = \"file\"\n{extra}"),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn login_status_logout_round_trip() {
    if fsn_e2e::skip() {
        return;
    }
    let d = Desktop::start(Options::default());
    let (sim, redirect) = simulator(SimConfig::default()).await;
    config(&d, &sim, &redirect, "client_secret = \"fsn-demo-secret\"");
    let s = d.status_json();
    assert_eq!(s["signed_in"], false);
    assert_eq!(s["environment"], "custom");

    let (code, out, _) = d.run_app(&["login"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("Maple Grove Integrative Health") && out.contains("Practitioner"),
        "{out}"
    );
    let s = d.status_json();
    for key in [
        "signed_in",
        "environment",
        "clinic",
        "token_storage",
        "access_token_expires_at",
        "last_poll_at",
        "next_poll_at",
        "orders_by_state",
        "last_error",
        "alerts_pending",
    ] {
        assert!(s.get(key).is_some(), "status --json lacks {key}");
    }
    assert_eq!(s["signed_in"], true);
    assert_eq!(s["token_storage"], "file");
    assert_eq!(s["clinic"]["name"], "Maple Grove Integrative Health");
    let (code, human, _) = d.run_app(&["status"]);
    assert_eq!(code, 0);
    assert!(human.contains("Signed in:      yes"), "{human}");

    let (code, out, _) = d.run_app(&["logout"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(sim.control().live_grants(), 0);
    assert_eq!(d.status_json()["signed_in"], false);
    // The browser opened the authorize URL exactly once.
    assert_eq!(
        d.opened_urls()
            .iter()
            .filter(|u| u.contains("/oauth/authorize"))
            .count(),
        1
    );
}

fn one_error_line(stderr: &str) -> String {
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "exactly one error line: {stderr}");
    errors[0].to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn login_failures_exit_non_zero_with_one_clear_line() {
    if fsn_e2e::skip() {
        return;
    }
    let mut d = Desktop::start(Options::default());
    let (sim, redirect) = simulator(SimConfig::default()).await;

    // Wrong secret.
    config(&d, &sim, &redirect, "client_secret = \"not-the-secret\"");
    let (code, _, err) = d.run_app(&["login"]);
    assert_eq!(code, 1);
    assert!(
        one_error_line(&err).contains("client id or secret"),
        "{err}"
    );

    // Denied in the browser.
    config(&d, &sim, &redirect, "client_secret = \"fsn-demo-secret\"");
    d.set_env("FSN_E2E_DECISION", "deny");
    let (code, _, err) = d.run_app(&["login"]);
    assert_eq!(code, 1);
    assert!(one_error_line(&err).contains("denied"), "{err}");

    // The browser never comes back.
    d.set_env("BROWSER", "true");
    config(
        &d,
        &sim,
        &redirect,
        "client_secret = \"fsn-demo-secret\"\nlogin_timeout_secs = 1",
    );
    let (code, _, err) = d.run_app(&["login"]);
    assert_eq!(code, 1);
    assert!(one_error_line(&err).contains("did not come back"), "{err}");

    // Nobody listening.
    let dead = format!("127.0.0.1:{}", free_port());
    let text = std::fs::read_to_string(d.home().join("config.toml"))
        .unwrap()
        .replace(&sim.addr().to_string(), &dead);
    std::fs::write(d.home().join("config.toml"), text).unwrap();
    let (code, _, err) = d.run_app(&["login"]);
    assert_eq!(code, 1);
    assert!(
        one_error_line(&err).contains("cannot reach Fullscript"),
        "{err}"
    );

    // Not configured, and a bad config file: the file, the key and the problem.
    std::fs::write(d.home().join("config.toml"), "poll_interval_secs = 2\n").unwrap();
    let (code, _, err) = d.run_app(&["status"]);
    assert_eq!(code, 1);
    let line = one_error_line(&err);
    assert!(
        line.contains("config.toml")
            && line.contains("poll_interval_secs")
            && line.contains("out of range"),
        "{line}"
    );
    std::fs::write(d.home().join("config.toml"), "").unwrap();
    let (code, _, err) = d.run_app(&["login"]);
    assert_eq!(code, 1);
    assert!(one_error_line(&err).contains("client_id"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn simulate_prints_what_it_accepts() {
    if fsn_e2e::skip() {
        return;
    }
    let mut d = Desktop::start(Options::default());
    let port = free_port();
    let mut cmd = d.app();
    let log = d.home().join("sim.out");
    cmd.args([
        "simulate",
        "--port",
        &port.to_string(),
        "--scenario",
        "sample",
        "--client-id",
        "cid",
        "--client-secret",
        "csec",
        "--redirect-uri",
        "http://127.0.0.1:9/cb",
    ])
    .stdout(std::fs::File::create(&log).unwrap());
    let pid = d.spawn("simulate", cmd);
    let text = wait_for(
        "the simulator banner",
        std::time::Duration::from_secs(20),
        || {
            let t = std::fs::read_to_string(&log).ok()?;
            t.contains("redirect_uri").then_some(t)
        },
    );
    assert!(text.contains(&format!("http://127.0.0.1:{port}")));
    assert!(text.contains("client_id:     cid") && text.contains("client_secret: csec"));
    assert!(text.contains("redirect_uri:  http://127.0.0.1:9/cb"));
    let page = reqwest_get(&format!("http://127.0.0.1:{port}/api/oauth/authorize?client_id=cid&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&response_type=code&state=x"));
    assert!(page.contains("Authorize") && page.contains("Deny"));
    d.kill(pid);
}

fn reqwest_get(url: &str) -> String {
    let out = std::process::Command::new("curl")
        .args(["-s", url])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn usr1(pid: u32) {
    std::process::Command::new("kill")
        .args(["-USR1", &pid.to_string()])
        .status()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_login_to_a_second_clinic_beside_a_running_watch_never_mixes_the_two() {
    if fsn_e2e::skip() {
        return;
    }
    let (mut d, sim) = signed_in_desktop("sweep_every = 1").await;
    let ctl = sim.control().clone();
    let named = |first: &str, order: &str| {
        let p = ctl.add_patient(first, "Duvall");
        ctl.add_order(
            fsn_simulator::NewOrder::for_patient(&p.id)
                .named(order, &[])
                .in_state("processing"),
        )
        .unwrap()
    };
    let first = named("Fiorella", "Maple Panel");
    let mut watch = d.app();
    watch.arg("watch");
    let pid = d.spawn("watch", watch);
    wait_for("the baseline", TIMEOUT, || {
        d.status_json()["last_poll_at"].as_str().map(|_| ())
    });

    // Another practitioner signs in from the command line, beside the watcher.
    ctl.switch_clinic("Cedar Street Wellness");
    let second = named("Sigrun", "Cedar Panel");
    let (code, out, err) = d.run_app(&["login"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Cedar Street Wellness"), "{out}");

    // The running watcher follows the new sign-in: one clinic's orders only.
    usr1(pid);
    wait_for("the watcher to follow", TIMEOUT, || {
        let s = d.status_json();
        let orders: u64 = s["orders_by_state"]
            .as_object()?
            .values()
            .filter_map(|v| v.as_u64())
            .sum();
        (s["clinic"]["name"] == "Cedar Street Wellness" && orders == 1 && s["last_error"].is_null())
            .then_some(())
    });
    ctl.set_state(&first.id, "results_ready").unwrap();
    ctl.set_state(&second.id, "results_ready").unwrap();
    usr1(pid);
    let n = d.wait_for_notifications(1, TIMEOUT);
    assert_eq!(n[0].body, "Cedar Panel · Quest Diagnostics");
    std::thread::sleep(std::time::Duration::from_secs(2));
    usr1(pid);
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(
        d.notifications().len(),
        1,
        "nothing from the first clinic: {:?}",
        d.notifications()
    );
    // The watcher never wrote its old tokens over the new ones.
    let secrets = std::fs::read_to_string(d.data_dir().join("secrets.json")).unwrap();
    let status = d.status_json();
    assert_eq!(status["signed_in"], true);
    assert!(secrets.contains("grant_id"), "{secrets}");
    d.kill(pid);
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_erase_leaves_no_orders_or_logs_behind() {
    if fsn_e2e::skip() {
        return;
    }
    let (d, sim) = signed_in(Options::default(), "").await;
    sim.control()
        .add_patient_order("Erin", "Rasure", "results_ready");
    assert_eq!(d.run_app(&["watch", "--once"]).0, 0);
    assert_eq!(d.status_json()["orders_by_state"]["results_ready"], 1);
    let (code, out, err) = d.run_app(&["logout", "--erase"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("erased"), "{out}");
    let s = d.status_json();
    assert_eq!(s["signed_in"], false);
    assert_eq!(s["orders_by_state"], serde_json::json!({}));
    assert!(s["clinic"].is_null());
    let db = d.data_dir().join("lab-notifier.sqlite3");
    let bytes = std::fs::read(&db).unwrap_or_default();
    assert!(
        !bytes.windows(6).any(|w| w == b"Rasure"),
        "the name is gone from the file"
    );
}
