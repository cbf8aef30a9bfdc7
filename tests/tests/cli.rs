//! The command line's contract: exit codes and one clear line per failure.

use fsn_e2e::*;

fn config(d: &Desktop, sim: &Simulator, redirect: &str, extra: &str) {
    d.write_config(
        sim,
        redirect,
        &format!("client_id = \"fsn-demo-client\"\ntoken_storage = \"file\"\n{extra}"),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn login_status_logout_round_trip() {
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
