//! Fullscript's side played by the simulator (`--webhook-url`): a result in
//! the simulator reaches a subscribed desktop through the relay, once
//! although delivered twice; a wrong signature stores nothing; a delivery
//! refused while NATS is down is retried on Fullscript's (scaled) schedule
//! and then stored.

mod support;

use std::time::{Duration, Instant};

use fsn_simulator::webhooks::WebhookConfig;
use fsn_simulator::{SimConfig, Simulator};
use futures_util::StreamExt;
use serde_json::Value;
use support::{free_port, metric, wait_until, Nats};

const SECRET: &str = "whsec_sim_test";
const CHALLENGE: &str = "sim-challenge";

async fn simulator(relay: &str, wrong_signature: bool) -> Simulator {
    fsn_core::http::install_crypto_provider();
    Simulator::start(SimConfig {
        webhook: Some(WebhookConfig {
            wrong_signature,
            ..support::webhooks_to(relay, SECRET)
        }),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// The first pushed event's data (within 15 s).
async fn first_push(relay: &str, token: &str) -> impl futures_util::Future<Output = Option<Value>> {
    let r = reqwest::Client::new()
        .get(format!("{relay}/v1/events"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the simulator's token subscribes");
    async move {
        let mut body = r.bytes_stream();
        let mut buf = String::new();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            let chunk = tokio::time::timeout(Duration::from_secs(15), body.next()).await;
            let Ok(Some(Ok(chunk))) = chunk else {
                return None;
            };
            buf.push_str(&String::from_utf8_lossy(&chunk));
            if let Some(line) = buf.lines().find_map(|l| l.strip_prefix("data:")) {
                return serde_json::from_str(line.trim()).ok();
            }
        }
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_in_the_simulator_reaches_its_clinics_desktop_once_through_the_relay() {
    let store = tempfile::tempdir().unwrap();
    let nats = Nats::start(store.path(), free_port());
    // The simulator's API first (the relay asks it which clinic a token is).
    let port = free_port();
    let relay_base_guess = format!("http://127.0.0.1:{port}");
    let sim = simulator(&relay_base_guess, false).await;
    let relay = {
        // The relay on the port the simulator delivers to.
        fsn_core::http::install_crypto_provider();
        let table: toml::Table = toml::from_str(&format!(
            "webhook_secret = \"{SECRET}\"\nwebhook_challenge = \"{CHALLENGE}\"\nnats_url = \"{}\"\nlisten = \"127.0.0.1:{port}\"\n{}",
            nats.url(),
            support::fullscript_at(&sim.base_url())
        ))
        .unwrap();
        let config = fsn_relay::Config::from_table(table).unwrap();
        tokio::spawn(async move {
            let _ = fsn_relay::run(config, std::future::pending()).await;
        });
        support::wait_for_port(port);
        relay_base_guess
    };
    // The handshake was answered with the challenge.
    wait_until("the handshake", async || {
        sim.control()
            .webhook_deliveries()
            .iter()
            .any(|d| d.event_id.is_none() && d.challenge.as_deref() == Some(CHALLENGE))
    })
    .await;

    let token = sim.control().issue_access_token();
    let order = sim
        .control()
        .add_patient_order("Priya", "Ramanathan", "processing");
    let pushed = first_push(&relay, &token).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    sim.control().set_state(&order.id, "results_ready").unwrap();
    let event = pushed.await.expect("the desktop was told");
    assert_eq!(event["lab_order_id"], order.id.as_str());
    assert_eq!(event["status"], "results_ready");
    assert!(!event.to_string().contains("Ramanathan"));
    // Delivered twice (a duplicate), stored once.
    wait_until("both deliveries", async || {
        sim.control().acknowledged_webhooks().len() == 2
    })
    .await;
    assert_eq!(metric(&relay, "fsn_relay_events_stored_total ").await, 1);
    assert_eq!(metric(&relay, "fsn_relay_events_duplicate_total ").await, 1);
    assert!(metric(&relay, "fsn_relay_events_pushed_total ").await >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_signature_stores_nothing_and_a_retry_after_an_outage_is_stored() {
    let store = tempfile::tempdir().unwrap();
    let nats_port = free_port();
    let nats = Nats::start(store.path(), nats_port);
    let relay = support::start_relay(
        SECRET,
        CHALLENGE,
        &nats.url(),
        &support::fullscript_at("http://127.0.0.1:9"),
    )
    .await;

    let forged = simulator(&relay, true).await;
    let order = forged
        .control()
        .add_patient_order("Jonas", "Berg", "processing");
    forged
        .control()
        .set_state(&order.id, "results_ready")
        .unwrap();
    wait_until("the forged delivery refused", async || {
        forged
            .control()
            .webhook_deliveries()
            .iter()
            .any(|d| d.status == 401)
    })
    .await;
    assert!(
        metric(
            &relay,
            "fsn_relay_webhooks_refused_total{reason=\"bad_signature\"} "
        )
        .await
            >= 1
    );
    assert_eq!(metric(&relay, "fsn_relay_events_stored_total ").await, 0);
    drop(forged);

    // NATS down: the delivery is not acknowledged, and retried.
    let sim = simulator(&relay, false).await;
    wait_until("the handshake", async || {
        sim.control()
            .webhook_deliveries()
            .iter()
            .any(|d| d.status == 200)
    })
    .await;
    drop(nats);
    wait_until("NATS seen gone", async || {
        metric(&relay, "fsn_relay_nats_connected ").await == 0
    })
    .await;
    let order = sim
        .control()
        .add_patient_order("Lea", "Novak", "processing");
    sim.control()
        .set_state(&order.id, "results_amended")
        .unwrap();
    wait_until("a refused delivery", async || {
        sim.control()
            .webhook_deliveries()
            .iter()
            .any(|d| d.status == 503)
    })
    .await;
    let nats = Nats::start(store.path(), nats_port);
    // Accepted on a retry; in the stream once (the write the relay gave up
    // waiting for may have reached JetStream when NATS came back: then the
    // retry is its duplicate, never a second copy).
    wait_until("the retry accepted", async || {
        !sim.control().acknowledged_webhooks().is_empty()
    })
    .await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(fsn_relay::log::STREAM).await.unwrap();
    assert_eq!(
        stream.info().await.unwrap().state.messages,
        1,
        "stored once"
    );
    let retried = sim
        .control()
        .webhook_deliveries()
        .into_iter()
        .find(|d| d.event_id.is_some() && d.status == 200)
        .map(|d| d.attempt)
        .expect("an accepted delivery");
    assert!(retried >= 1, "accepted on a retry, not the first attempt");
}
