//! Nothing lost, nothing twice, when parts of the server side fail: the
//! relay killed between receiving a webhook and storing it (Fullscript's
//! retry, played by the simulator, delivers it), NATS restarted with
//! events on disk, two relays behind one stream.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use fsn_simulator::fixture::relay_env_for_fullscript_at;
use fsn_simulator::webhooks::WebhookConfig;
use fsn_simulator::{SimConfig, Simulator};
use support::{free_port, metric, next, subscribe, wait_for_port, wait_until, Nats, Process};

const SECRET: &str = "whsec_resilience";
const CHALLENGE: &str = "resilience-challenge";

async fn simulator(relay: &str) -> Simulator {
    fsn_core::http::install_crypto_provider();
    Simulator::start(SimConfig {
        webhook: Some(WebhookConfig {
            retry_scale: 0.002,
            duplicates: false,
            ..support::webhooks_to(relay, SECRET)
        }),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// The relay's own binary, configured by its environment variables (a
/// process that can be killed mid-request).
fn relay_process(port: u16, nats: &str, sim: &str, hold: Option<&std::path::Path>) -> Process {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fullscript-notifier-relay"));
    cmd.env("FSN_RELAY_LISTEN", format!("127.0.0.1:{port}"))
        .env("FSN_RELAY_WEBHOOK_SECRET", SECRET)
        .env("FSN_RELAY_WEBHOOK_CHALLENGE", CHALLENGE)
        .env("FSN_RELAY_NATS_URL", nats)
        .envs(relay_env_for_fullscript_at(sim))
        .env_remove("FSN_RELAY_CONFIG")
        .env_remove("FSN_RELAY_TEST_HOLD_BEFORE_STORE")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(marker) = hold {
        cmd.env("FSN_RELAY_TEST_HOLD_BEFORE_STORE", marker);
    }
    let relay = Process(cmd.spawn().expect("the relay binary"));
    wait_for_port(port);
    relay
}

/// NATS on a store of its own, a relay process the simulator's webhooks go
/// to, and a practitioner's token for the simulator's clinic.
struct Rig {
    store: tempfile::TempDir,
    nats: Nats,
    base: String,
    sim: Simulator,
    _relay: Process,
    token: String,
}

impl Rig {
    async fn start() -> Rig {
        let store = tempfile::tempdir().unwrap();
        let nats = Nats::start(store.path(), free_port());
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let sim = simulator(&base).await;
        let relay = relay_process(port, &nats.url(), &sim.base_url(), None);
        let token = sim.control().issue_access_token();
        Rig {
            store,
            nats,
            base,
            sim,
            _relay: relay,
            token,
        }
    }

    fn restart_nats(&mut self) {
        self.nats.restart(self.store.path());
    }

    /// A result for a new order of the clinic (the simulator signs and
    /// delivers its webhook).
    fn result(&self, last_name: &str, state: &str) -> String {
        let order = self
            .sim
            .control()
            .add_patient_order("A", last_name, "processing");
        self.sim.control().set_state(&order.id, state).unwrap();
        order.id
    }
}

async fn stream_messages(nats_url: &str) -> u64 {
    let client = async_nats::connect(nats_url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(fsn_relay::log::STREAM).await.unwrap();
    stream.info().await.unwrap().state.messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_between_receiving_and_storing_is_covered_by_fullscripts_retry() {
    let store = tempfile::tempdir().unwrap();
    let nats = Nats::start(store.path(), free_port());
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let sim = simulator(&base).await;
    let marker = store.path().join("holding");
    let relay = relay_process(port, &nats.url(), &sim.base_url(), Some(&marker));
    wait_until("the handshake", async || {
        sim.control()
            .webhook_deliveries()
            .iter()
            .any(|d| d.event_id.is_none() && d.status == 200)
    })
    .await;

    let order = sim
        .control()
        .add_patient_order("Ines", "Okafor", "processing");
    sim.control().set_state(&order.id, "results_ready").unwrap();
    wait_until("the relay holding the webhook", async || marker.exists()).await;
    // Killed with the webhook read but not stored (and not acknowledged).
    relay.kill();
    let relay = relay_process(port, &nats.url(), &sim.base_url(), None);
    wait_until("the retry stored", async || {
        !sim.control().acknowledged_webhooks().is_empty()
    })
    .await;
    let deliveries: Vec<_> = sim
        .control()
        .webhook_deliveries()
        .into_iter()
        .filter(|d| d.event_id.is_some())
        .collect();
    assert!(
        deliveries.iter().any(|d| d.status != 200),
        "the first attempt was not acknowledged: {deliveries:?}"
    );
    assert_eq!(stream_messages(&nats.url()).await, 1, "stored once");
    drop(relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restarted_keeps_the_events_on_disk_and_a_desktop_resumes_after_its_last_id() {
    let mut r = Rig::start().await;
    let mut desktop = subscribe(&r.base, &r.token, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let a = r.result("Before", "results_ready");
    let (first, data) = next(&mut desktop).await.expect("pushed before the restart");
    assert_eq!(data["lab_order_id"], a.as_str());
    drop(desktop);

    r.restart_nats();
    wait_until("the relay back on NATS", async || {
        reqwest::get(format!("{}/readyz", r.base))
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    let b = r.result("After", "partial_results");
    wait_until("stored after the restart", async || {
        stream_messages(&r.nats.url()).await == 2
    })
    .await;

    // Resumed after its last id: the one it missed, not the one it had.
    let mut back = subscribe(&r.base, &r.token, Some(first)).await.unwrap();
    let (second, data) = next(&mut back).await.expect("the missed event");
    assert!(second > first);
    assert_eq!(data["lab_order_id"], b.as_str());
    // And from the start, both survived the restart on disk.
    let mut all = subscribe(&r.base, &r.token, Some(0)).await.unwrap();
    assert_eq!(next(&mut all).await.map(|p| p.0), Some(first));
    assert_eq!(next(&mut all).await.map(|p| p.0), Some(second));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_behind_one_stream_store_once_and_push_what_the_other_received() {
    let store = tempfile::tempdir().unwrap();
    let nats = Nats::start(store.path(), free_port());
    let port_a = free_port();
    let a = format!("http://127.0.0.1:{port_a}");
    // The simulator delivers to relay A; a desktop listens on relay B.
    let sim = simulator(&a).await;
    let _relay_a = relay_process(port_a, &nats.url(), &sim.base_url(), None);
    let b = support::start_relay(
        SECRET,
        CHALLENGE,
        &nats.url(),
        &support::fullscript_at(&sim.base_url()),
    )
    .await;
    let token = sim.control().issue_access_token();
    let mut desktop = subscribe(&b, &token, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let order = sim
        .control()
        .add_patient_order("Two", "Relays", "processing");
    sim.control()
        .set_state(&order.id, "results_amended")
        .unwrap();
    let (seq, data) = next(&mut desktop).await.expect("pushed by B");
    assert_eq!(data["status"], "results_amended");

    // The same delivery replayed to B (Fullscript retrying through the
    // other relay behind the load balancer): stored once. The simulator
    // records a delivery once it has read A's answer, which can be after
    // the event already reached the desktop through B: wait for it.
    wait_until("the simulator saw A acknowledge", async || {
        !sim.control().acknowledged_webhooks().is_empty()
    })
    .await;
    let event_id = sim.control().acknowledged_webhooks().swap_remove(0);
    support::webhook(
        &b,
        SECRET,
        &event_id,
        data["clinic_id"].as_str().unwrap(),
        &order.id,
    )
    .await;
    assert_eq!(metric(&b, "fsn_relay_events_duplicate_total ").await, 1);
    assert_eq!(stream_messages(&nats.url()).await, 1);
    // A desktop moving from B to A resumes where it was: nothing again.
    let mut moved = subscribe(&a, &token, Some(seq)).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(700), moved.recv())
            .await
            .is_err(),
        "nothing repeated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_or_revoked_token_cannot_subscribe() {
    let r = Rig::start().await;
    let (base, sim) = (&r.base, &r.sim);
    let expired = &r.token;
    sim.control().expire_access_tokens();
    assert_eq!(subscribe(base, expired, None).await.err(), Some(401));
    let revoked = sim.control().issue_access_token();
    assert!(
        subscribe(base, &revoked, None).await.is_ok(),
        "valid before"
    );
    let fresh = sim.control().issue_access_token();
    sim.control().revoke_all_grants();
    assert_eq!(subscribe(base, &fresh, None).await.err(), Some(401));
    assert_eq!(
        metric(base, "fsn_relay_connected_desktops ").await,
        1,
        "only the one valid subscription"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desktop_connected_across_a_nats_restart_is_pushed_what_came_after_or_told_to_reconnect()
{
    let mut r = Rig::start().await;
    let mut desktop = subscribe(&r.base, &r.token, None).await.unwrap();
    r.result("Across", "results_ready");
    let (first, _) = next(&mut desktop).await.expect("pushed before the restart");

    r.restart_nats();
    let b = r.result("Across", "partial_results");
    wait_until("stored after the restart", async || {
        stream_messages(&r.nats.url()).await == 2
    })
    .await;
    // The open stream either pushes it or ends (the desktop then resumes
    // from its last id); what it must not do is stay open, heartbeats and
    // all, with nothing: that is a desktop told "Live" and never alerted.
    match tokio::time::timeout(Duration::from_secs(30), desktop.recv()).await {
        Ok(Some((id, data))) => {
            assert!(id > first);
            assert_eq!(data["lab_order_id"], b.as_str());
        }
        Ok(None) => {
            let mut back = subscribe(&r.base, &r.token, Some(first)).await.unwrap();
            let (_, data) = next(&mut back).await.expect("resumed after the restart");
            assert_eq!(data["lab_order_id"], b.as_str());
        }
        Err(_) => panic!("the stream stayed open and silent after NATS came back"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_lost_under_a_running_relay_is_made_again_and_open_desktops_are_told_to_reconnect(
) {
    let r = Rig::start().await;
    let mut desktop = subscribe(&r.base, &r.token, None).await.unwrap();
    r.result("Lost", "results_ready");
    let (last_seen, _) = next(&mut desktop).await.expect("pushed");

    // The stream is gone (a wiped store, an operator's mistake).
    let client = async_nats::connect(r.nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.delete_stream(fsn_relay::log::STREAM).await.unwrap();
    // The open stream ends instead of staying open on heartbeats alone.
    assert!(
        tokio::time::timeout(Duration::from_secs(30), desktop.recv())
            .await
            .expect("the desktop's stream ended")
            .is_none()
    );
    // The next result is stored in a stream the relay made again (the
    // simulator retries until it is acknowledged), and pushed.
    let b = r.result("Lost", "partial_results");
    wait_until("stored again", async || {
        r.sim.control().acknowledged_webhooks().len() == 2
    })
    .await;
    // The desktop resumes from the last id it saw, which belongs to the
    // old stream (the new one numbers its sequence from 1 again). It is
    // sent the new stream from its start, not nothing.
    let mut back = subscribe(&r.base, &r.token, Some(last_seen)).await.unwrap();
    let (_, data) = next(&mut back)
        .await
        .expect("pushed from the new stream, though the desktop's id is from the old one");
    assert_eq!(data["lab_order_id"], b.as_str());
    assert_eq!(
        metric(&r.base, "fsn_relay_resumes_from_another_stream_total ").await,
        1
    );
}
