//! The app's core against a real relay (and a real `nats-server`), the
//! simulator playing Fullscript: sign-in, refresh and sign-out go through
//! the relay's token broker and the desktop holds no client secret; a
//! result in the simulator reaches the watcher as a push (the polling
//! interval an hour) and alerts once; a desktop that was away resumes from
//! its last event.

#[path = "../../core/tests/common/mod.rs"]
mod common;
mod support;

use std::sync::Arc;
use std::time::Duration;

use fsn_core::notifier::RecordingNotifier;
use fsn_core::status::PushState;
use fsn_core::App;
use fsn_simulator::{SimConfig, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET};
use support::{free_port, wait_until, Nats};

const SECRET: &str = "whsec_desktop_test";
const CHALLENGE: &str = "desktop-challenge";

/// NATS, the simulator delivering its webhooks to the relay, the relay
/// holding the registration's secret.
struct Stack {
    w: common::World,
    relay: String,
    _nats: Nats,
    _store: tempfile::TempDir,
}

async fn stack() -> Stack {
    let store = tempfile::tempdir().unwrap();
    let nats = Nats::start(store.path(), free_port());
    let port = free_port();
    let relay = format!("http://127.0.0.1:{port}");
    let w = common::world(SimConfig {
        webhook: Some(support::webhooks_to(&relay, SECRET)),
        ..Default::default()
    })
    .await;
    let sim = w.sim.base_url();
    let table: toml::Table = toml::from_str(&format!(
        r#"listen = "127.0.0.1:{port}"
webhook_secret = "{SECRET}"
webhook_challenge = "{CHALLENGE}"
nats_url = "{nats}"
environment = "custom"
api_base = "{sim}/api"
token_url = "{sim}/api/oauth/token"
revoke_url = "{sim}/api/oauth/revoke"
client_id = "{DEMO_CLIENT_ID}"
client_secret = "{DEMO_CLIENT_SECRET}"
"#,
        nats = nats.url()
    ))
    .unwrap();
    let config = fsn_relay::Config::from_table(table).unwrap();
    tokio::spawn(async move {
        let _ = fsn_relay::run(config, std::future::pending()).await;
    });
    support::wait_for_port(port);
    Stack {
        w,
        relay,
        _nats: nats,
        _store: store,
    }
}

impl Stack {
    /// The app as a clinic would configure it: the client id and the relay,
    /// no secret anywhere; polling an hour apart.
    fn app(&self) -> App {
        let extra = format!(
            "client_id = \"{DEMO_CLIENT_ID}\"\ntoken_storage = \"file\"\nrelay_url = \"{}\"\npoll_interval_secs = 3600\n",
            self.relay
        );
        let text = fsn_simulator::fixture::app_config(
            &self.w.sim.base_url(),
            &self.w.redirect_uri,
            &extra,
        );
        std::fs::write(self.w.dir.path().join("config.toml"), text).unwrap();
        App::open(self.w.paths()).unwrap()
    }
}

/// The files under `dir` whose bytes hold `needle`.
fn files_containing(dir: &std::path::Path, needle: &str) -> Vec<std::path::PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(walkdir::DirEntry::into_path)
        .filter(|p| {
            std::fs::read(p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_refresh_and_sign_out_go_through_the_relay_and_the_desktop_holds_no_client_secret()
{
    let s = stack().await;
    let app = s.app();
    assert!(app.is_configured(), "a client id and a relay are enough");
    assert!(app
        .config
        .endpoints
        .token_url
        .as_str()
        .starts_with(&s.relay));
    let session = app.session().unwrap();
    let account = app.login(&session, common::approve()).await.unwrap();
    assert!(
        !account.clinic.id.is_empty(),
        "the clinic was read with the new token"
    );

    // Refresh, with rotation: the old refresh token stops working.
    let before = session.access_token().await.unwrap();
    s.w.sim.control().expire_access_tokens();
    let refreshes = common::count_refreshes(&s.w.sim);
    let after = session
        .refresh_after_unauthorized(&before)
        .await
        .expect("refreshed through the relay");
    assert_ne!(before.expose(), after.expose());
    assert_eq!(common::count_refreshes(&s.w.sim), refreshes + 1);

    let report = session.sign_out().await;
    assert!(
        report.revoke_errors.is_empty() && report.queued == 0,
        "revoked through the relay: {:?}",
        report.revoke_errors
    );
    assert_eq!(s.w.sim.control().live_grants(), 0);

    // The secret is nowhere on the desktop: not in its files, not in this
    // process's environment or arguments (the CLI's are checked end to end).
    let found = files_containing(s.w.dir.path(), DEMO_CLIENT_SECRET);
    assert!(found.is_empty(), "the client secret in {found:?}");
    assert!(std::env::vars().all(|(_, v)| !v.contains(DEMO_CLIENT_SECRET)));
    assert!(std::env::args().all(|a| !a.contains(DEMO_CLIENT_SECRET)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_is_pushed_and_alerts_once_long_before_the_hourly_check() {
    let s = stack().await;
    let app = s.app();
    let session = app.session().unwrap();
    app.login(&session, common::approve()).await.unwrap();
    let order =
        s.w.sim
            .control()
            .add_patient_order("Priya", "Ramanathan", "processing");
    let notes = RecordingNotifier::default();
    let watcher = app
        .watcher(session.clone(), Arc::new(notes.clone()))
        .unwrap();
    let handle = watcher.handle();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(watcher.run(stop_rx.clone()));
    let push = app
        .spawn_push(session.clone(), handle.clone(), stop_rx)
        .expect("a relay is configured");
    wait_until("pushed", async || {
        handle.status().push == Some(PushState::Connected) && handle.status().cycles >= 1
    })
    .await;
    let next = handle.status().next_poll_at.unwrap();
    let next = fsn_core::timestamp::parse_str(&next).unwrap();
    assert!(
        next - chrono::Utc::now() > chrono::Duration::minutes(50),
        "while pushed the next planned check is an hour away"
    );

    s.w.sim
        .control()
        .set_state(&order.id, "results_ready")
        .unwrap();
    wait_until("the notification", async || !notes.seen().is_empty()).await;
    // The simulator delivered the webhook twice; the relay stored it once
    // and the app alerted once.
    wait_until("both deliveries", async || {
        s.w.sim.control().acknowledged_webhooks().len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let shown = notes.seen();
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(shown[0].title, "Lab results ready");
    assert!(!shown[0].body.contains("Priya"));
    assert!(app.state().push_last_event_id().unwrap().is_some());
    let report = app.status(Some(&session)).await;
    assert_eq!(report.watch_mode.as_deref(), Some("Live"));

    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), run).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), push).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desktop_that_was_away_resumes_from_its_last_event_and_misses_nothing() {
    let s = stack().await;
    let app = s.app();
    let session = app.session().unwrap();
    app.login(&session, common::approve()).await.unwrap();
    let control = s.w.sim.control();
    let orders: Vec<_> = (0..3)
        .map(|i| control.add_patient_order(&format!("P{i}"), "Away", "processing"))
        .collect();
    let notes = RecordingNotifier::default();

    let start = |notes: &RecordingNotifier| {
        let watcher = app
            .watcher(session.clone(), Arc::new(notes.clone()))
            .unwrap();
        let handle = watcher.handle();
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let run = tokio::spawn(watcher.run(stop_rx.clone()));
        let push = app.spawn_push(session.clone(), handle.clone(), stop_rx);
        (handle, stop, run, push)
    };

    let (handle, stop, run, push) = start(&notes);
    wait_until("pushed", async || {
        handle.status().push == Some(PushState::Connected) && handle.status().cycles >= 1
    })
    .await;
    control.set_state(&orders[0].id, "results_ready").unwrap();
    wait_until("the first", async || notes.seen().len() == 1).await;
    let resume = app.state().push_last_event_id().unwrap();
    assert!(resume.is_some());

    // Away (the app quit, the laptop asleep): results keep arriving.
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), run).await;
    if let Some(p) = push {
        let _ = tokio::time::timeout(Duration::from_secs(10), p).await;
    }
    control.set_state(&orders[1].id, "partial_results").unwrap();
    control.set_state(&orders[2].id, "results_ready").unwrap();
    wait_until("stored at the relay", async || {
        control.acknowledged_webhooks().len() >= 6
    })
    .await;

    // Back: the first check is a full read in any case; what matters is
    // that the push resumed after its last event rather than at the end.
    let (handle, stop, run, _push) = start(&notes);
    wait_until("both missed results", async || notes.seen().len() == 3).await;
    wait_until("pushed again", async || {
        handle.status().push == Some(PushState::Connected)
    })
    .await;
    // The full read may well announce both before the push hands over the
    // two events it missed; those then find nothing new, but they still
    // move the resume point, which a push started at the stream's end
    // (no Last-Event-ID) would never do.
    wait_until("the missed events pushed after the last one", async || {
        app.state().push_last_event_id().unwrap() > resume
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(notes.seen().len(), 3, "each once");
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), run).await;
}
