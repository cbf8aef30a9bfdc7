//! The relay end to end, as a clinic deploys it: a real `nats-server`, the
//! relay's own binary holding the registration's secret, the simulator
//! delivering Fullscript's signed webhooks to it, and the app (its agent,
//! on a virtual desktop with a real notification daemon) configured with
//! `relay_url` and no secret, polling only hourly. A result in the
//! simulator becomes one D-Bus notification within seconds; its click
//! opens the results; the window says "Live"; losing the relay falls back
//! to polling and says so; the client secret is nowhere on the desktop,
//! the keychain included (one left there from before the relay removed).

use std::process::{Command, Stdio};
use std::time::Duration;

use fsn_e2e::ui::*;
use fsn_e2e::*;
use fsn_simulator::fixture::{relay_env_for_fullscript_at, wait_for_port, JetStream, Process};
use fsn_simulator::webhooks::WebhookConfig;
use fsn_simulator::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};

const WEBHOOK_SECRET: &str = "whsec_e2e_relay";

fn relay_binary() -> std::path::PathBuf {
    let bin = app_binary().with_file_name("fullscript-notifier-relay");
    if !bin.exists() {
        let ok = Command::new(env!("CARGO"))
            .args(["build", "-p", "fsn-relay"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "could not build the relay");
    }
    bin
}

fn start_relay(port: u16, nats: &str, sim: &str) -> Process {
    let child = Command::new(relay_binary())
        .env("FSN_RELAY_LISTEN", format!("127.0.0.1:{port}"))
        .env("FSN_RELAY_NATS_URL", nats)
        .env("FSN_RELAY_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env("FSN_RELAY_WEBHOOK_CHALLENGE", "e2e-challenge")
        .envs(relay_env_for_fullscript_at(sim))
        .env("FSN_RELAY_CLIENT_ID", DEMO_CLIENT_ID)
        .env("FSN_RELAY_CLIENT_SECRET", DEMO_CLIENT_SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the relay");
    let relay = Process(child);
    wait_for_port(port);
    relay
}

/// A JetStream server and the address the relay will listen on: the
/// simulator delivers its webhooks there, so it is known before either
/// starts.
struct RelaySite {
    _store: tempfile::TempDir,
    nats: JetStream,
    port: u16,
    url: String,
}

impl RelaySite {
    fn new() -> RelaySite {
        let store = tempfile::tempdir().unwrap();
        let nats = JetStream::start(store.path(), free_port());
        let port = free_port();
        RelaySite {
            _store: store,
            nats,
            port,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The relay, for a Fullscript (the simulator) at `sim`.
    fn start(&self, sim: &str) -> Process {
        start_relay(self.port, &self.nats.url(), sim)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_result_reaches_the_desktop_through_the_relay_within_seconds_and_its_click_opens_it() {
    if fsn_e2e::skip() {
        return;
    }
    let site = RelaySite::new();
    let relay = &site.url;
    let (sim, redirect) = simulator(SimConfig {
        webhook: Some(WebhookConfig {
            url: format!("{relay}/webhooks/fullscript").parse().unwrap(),
            secret: WEBHOOK_SECRET.into(),
            retry_scale: 0.01,
            duplicates: true,
            out_of_order: false,
            wrong_signature: false,
        }),
        ..Default::default()
    })
    .await;
    let relay_process = site.start(&sim.base_url());

    let mut d = Desktop::start(Options {
        display: true,
        keyring: false,
    });
    // The clinic's configuration: the client id and the relay; no secret.
    d.write_config(
        &sim,
        &redirect,
        &format!(
            "client_id = \"{DEMO_CLIENT_ID}\"\ntoken_storage = \"file\"\nrelay_url = \"{relay}\"\npoll_interval_secs = 3600"
        ),
    );
    let (code, out, err) = d.run_app(&["login"]);
    assert_eq!(code, 0, "login through the relay: {out}{err}");
    let order = sim
        .control()
        .add_patient_order("Amara", "Osei", "processing");
    let mut cmd = d.app();
    cmd.arg("--minimized");
    d.spawn("app", cmd);
    until!(
        "the push connected after the first check",
        d.status_json()["push"] == "connected" && d.status_json()["last_poll_at"].is_string()
    );
    let status = d.status_json();
    assert_eq!(status["watch_mode"], "Live");

    // ---- the window says how results arrive
    let driver = launch(&mut d, &[]).await;
    until!(
        "the header to say Live",
        text(&driver, "#conn-detail").await.starts_with("Live")
    );
    let _ = driver.quit().await;
    wait_for("the window closed", TIMEOUT, || {
        d.app_processes()
            .iter()
            .all(|p| !p.is_window())
            .then_some(())
    });
    let polls_before = sim.control().requests_to("/api/events/lab_orders").len();

    // ---- a result: one notification, long before the hourly check
    sim.control().set_state(&order.id, "results_ready").unwrap();
    // (Only result notifications: closing the window may have said once
    // that the app keeps running.)
    let results = |d: &Desktop| -> Vec<Notify> {
        d.notifications()
            .into_iter()
            .filter(|n| n.summary.starts_with("Lab results") || n.summary.starts_with("Partial"))
            .collect()
    };
    let n = wait_for("the result's notification", Duration::from_secs(20), || {
        Some(results(&d)).filter(|n| !n.is_empty())
    });
    assert_eq!(n[0].summary, "Lab results ready");
    assert!(!n[0].body.contains("Amara"), "{}", n[0].body);
    assert_eq!(
        sim.control().requests_to("/api/events/lab_orders").len(),
        polls_before,
        "told by the push, not by polling"
    );
    // Delivered twice by "Fullscript", shown once.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(results(&d).len(), 1, "{:?}", d.notifications());
    d.click_newest_notification();
    let url = format!("{}/labs/orders/{}", sim.base_url(), order.id);
    until!("the results opened", d.opened_urls().contains(&url));
    eprintln!("scenario: simulator → webhook → relay → push → notification → click ... ok");

    // ---- no client secret on the desktop: files, arguments, environment
    let secret = DEMO_CLIENT_SECRET.as_bytes();
    let found = files_holding(d.home(), secret);
    assert!(found.is_empty(), "the client secret in {found:?}");
    let agent = d.agent();
    for what in ["cmdline", "environ"] {
        let bytes = std::fs::read(format!("/proc/{}/{what}", agent.pid)).unwrap();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret),
            "the agent's {what} holds the secret"
        );
    }
    eprintln!("scenario: the desktop holds no client secret ... ok");

    // ---- the relay gone: polling as without one, and said
    drop(relay_process);
    until!(
        "the fallback said",
        d.status_json()["push"]
            .as_str()
            .is_some_and(|p| p.starts_with("fallback: "))
    );
    assert_eq!(d.status_json()["watch_mode"], "Checking every hour");
    let (code, out, _) = d.run_app(&["status"]);
    assert_eq!(code, 0);
    assert!(out.contains("Push:           fallback: "), "{out}");
    eprintln!("scenario: the relay gone, polling says so ... ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_relay_the_keychain_holds_the_tokens_and_never_the_client_secret() {
    if fsn_e2e::skip() {
        return;
    }
    let site = RelaySite::new();
    let relay = &site.url;
    let (sim, redirect) = simulator(SimConfig::default()).await;
    let _relay = site.start(&sim.base_url());
    let d = Desktop::start(Options {
        display: false,
        keyring: true,
    });
    // A secret left in the keychain from before the clinic had a relay.
    let account = format!("custom/{DEMO_CLIENT_ID}/client_secret");
    d.keyring_store(&account, DEMO_CLIENT_SECRET);
    assert_eq!(
        d.keyring_lookup(&account).as_deref(),
        Some(DEMO_CLIENT_SECRET)
    );

    // The keychain is where tokens go (the default): sign in through the relay.
    d.write_config(
        &sim,
        &redirect,
        &format!("client_id = \"{DEMO_CLIENT_ID}\"\nrelay_url = \"{relay}\""),
    );
    let (code, out, err) = d.run_app(&["login"]);
    assert_eq!(code, 0, "login through the relay: {out}{err}");

    // Everything the app keeps in the keychain, secrets and all.
    let listed = d
        .command("secret-tool")
        .args([
            "search",
            "--all",
            "--unlock",
            "service",
            "fullscript-notifier",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&listed.stdout),
        String::from_utf8_lossy(&listed.stderr)
    );
    // Failures name the entries, not what they hold.
    let labels: Vec<&str> = text.lines().filter(|l| l.starts_with("label = ")).collect();
    assert!(
        text.contains(&format!("custom/{DEMO_CLIENT_ID}/tokens")),
        "the tokens are in the keychain: {labels:?}"
    );
    assert!(
        !text.contains(DEMO_CLIENT_SECRET),
        "the keychain holds the client secret: {labels:?}"
    );
    assert_eq!(d.keyring_lookup(&account), None, "the old secret removed");
    let found = files_holding(d.home(), DEMO_CLIENT_SECRET.as_bytes());
    assert!(found.is_empty(), "the client secret in {found:?}");
    eprintln!("scenario: with a relay the keychain holds no client secret ... ok");
}
