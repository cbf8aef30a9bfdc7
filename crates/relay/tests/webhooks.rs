//! The relay against a real `nats-server` (JetStream, a temporary store, a
//! free port; installed by scripts/setup.sh, started and stopped here):
//! signed webhooks stored once and without patient data, refusals counted
//! by reason, nothing acknowledged that is not stored.

mod support;

use std::time::{Duration, Instant};

use fsn_relay::webhook::sign;
use serde_json::{json, Value};
use support::{free_port, metric, Nats};

const SECRET: &str = "whsec_relay_test";
const CHALLENGE: &str = "challenge-token-42";

const CUSTOM: &str = "environment = \"custom\"\napi_base = \"http://127.0.0.1:9/api\"\ntoken_url = \"http://127.0.0.1:9/api/oauth/token\"\nrevoke_url = \"http://127.0.0.1:9/api/oauth/revoke\"";

async fn start_relay(nats_url: &str) -> (String, ()) {
    (
        support::start_relay(SECRET, CHALLENGE, nats_url, CUSTOM).await,
        (),
    )
}

fn event(id: &str, clinic: &str, order: &str, status: &str) -> Vec<u8> {
    json!({"event_payload": {"event": {
        "id": id, "type": "lab_order.updated", "created_at": "2026-12-03T10:00:00.000Z",
        "clinic_id": clinic,
        "data": {"lab_order": {"id": order, "practitioner_id": "prac-1", "patient_id": "patient-77",
            "first_name": "Marguerite", "last_name": "Okonkwo", "email": "m.okonkwo@example.com",
            "status": status}}
    }}})
    .to_string()
    .into_bytes()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn post(base: &str, body: &[u8], signature: Option<String>) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/webhooks/fullscript"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(s) = signature {
        req = req.header("Fullscript-Signature", s);
    }
    let r = req.send().await.expect("the relay answers");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// The stored messages of the stream, as text.
async fn stored(nats_url: &str) -> Vec<(String, String)> {
    let client = async_nats::connect(nats_url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(fsn_relay::log::STREAM).await.unwrap();
    let info = stream.info().await.unwrap();
    let mut out = Vec::new();
    for seq in info.state.first_sequence..=info.state.last_sequence {
        if let Ok(m) = stream.get_raw_message(seq).await {
            out.push((
                m.subject.to_string(),
                String::from_utf8_lossy(&m.payload).into_owned(),
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_webhook_is_stored_once_per_clinic_without_patient_data() {
    let store = tempfile::tempdir().unwrap();
    let nats = Nats::start(store.path(), free_port());
    let (base, _relay) = start_relay(&nats.url()).await;

    // The handshake: an empty body is answered with the challenge.
    let (status, body) = post(&base, b"", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["challenge"],
        CHALLENGE
    );

    let first = event("evt-1", "clinic-a", "order-1", "all_results_received");
    let (status, body) = post(&base, &first, Some(sign(&first, SECRET.as_bytes(), now()))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["challenge"],
        CHALLENGE
    );
    // Fullscript's retry of the same event (signed again, later): stored once.
    let (status, _) = post(&base, &first, Some(sign(&first, SECRET.as_bytes(), now()))).await;
    assert_eq!(status, 200, "a duplicate is acknowledged");
    let other = event("evt-2", "clinic.b", "order-2", "results_amended");
    let (status, _) = post(&base, &other, Some(sign(&other, SECRET.as_bytes(), now()))).await;
    assert_eq!(status, 200);

    let messages = stored(&nats.url()).await;
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(messages[0].0, "fsn.lab_orders.clinic-a");
    assert_eq!(
        messages[1].0, "fsn.lab_orders.clinic_2Eb",
        "a clinic id is one subject token"
    );
    let a: Value = serde_json::from_str(&messages[0].1).unwrap();
    assert_eq!(a["lab_order_id"], "order-1");
    assert_eq!(a["status"], "results_ready");
    for (_, payload) in &messages {
        for patient in ["Marguerite", "Okonkwo", "example.com", "patient-77"] {
            assert!(!payload.contains(patient), "{patient} stored: {payload}");
        }
    }
    assert_eq!(metric(&base, "fsn_relay_events_stored_total ").await, 2);
    assert_eq!(metric(&base, "fsn_relay_events_duplicate_total ").await, 1);
    assert_eq!(
        metric(&base, "fsn_relay_challenges_answered_total ").await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_stale_and_unreadable_webhooks_are_refused_and_counted_by_reason() {
    let store = tempfile::tempdir().unwrap();
    let nats = Nats::start(store.path(), free_port());
    let (base, _relay) = start_relay(&nats.url()).await;
    let body = event("evt-9", "clinic-a", "order-9", "results_ready");

    let forged = sign(&body, b"not the secret", now());
    assert_eq!(post(&base, &body, Some(forged)).await.0, 401);
    let six_minutes_old = sign(&body, SECRET.as_bytes(), now() - 360);
    assert_eq!(post(&base, &body, Some(six_minutes_old)).await.0, 401);
    assert_eq!(post(&base, &body, None).await.0, 401);
    let not_json = b"<html>hello</html>";
    assert_eq!(
        post(
            &base,
            not_json,
            Some(sign(not_json, SECRET.as_bytes(), now()))
        )
        .await
        .0,
        400
    );
    let refused = "fsn_relay_webhooks_refused_total{reason=";
    assert_eq!(
        metric(&base, &format!("{refused}\"bad_signature\"}} ")).await,
        1
    );
    assert_eq!(metric(&base, &format!("{refused}\"stale\"}} ")).await, 1);
    assert_eq!(
        metric(&base, &format!("{refused}\"no_signature\"}} ")).await,
        1
    );
    assert_eq!(metric(&base, &format!("{refused}\"not_json\"}} ")).await, 1);
    assert_eq!(metric(&base, "fsn_relay_events_stored_total ").await, 0);
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(fsn_relay::log::STREAM).await.unwrap();
    assert_eq!(
        stream.info().await.unwrap().state.messages,
        0,
        "nothing refused was stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_acknowledged_while_nats_is_down_and_the_retry_stores_it() {
    let store = tempfile::tempdir().unwrap();
    let port = free_port();
    let nats = Nats::start(store.path(), port);
    let (base, _relay) = start_relay(&nats.url()).await;
    let ready = |base: String| async move {
        reqwest::get(format!("{base}/readyz"))
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    let start = Instant::now();
    while ready(base.clone()).await != 200 {
        assert!(start.elapsed() < Duration::from_secs(20), "never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body = event("evt-5", "clinic-a", "order-5", "results_ready");
    assert_eq!(
        post(&base, &body, Some(sign(&body, SECRET.as_bytes(), now())))
            .await
            .0,
        200
    );

    drop(nats);
    let start = Instant::now();
    while ready(base.clone()).await != 503 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "still ready with NATS gone"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let later = event("evt-6", "clinic-a", "order-6", "results_amended");
    let (status, _) = post(&base, &later, Some(sign(&later, SECRET.as_bytes(), now()))).await;
    assert_eq!(
        status, 503,
        "not stored, so not acknowledged: Fullscript retries"
    );
    assert_eq!(metric(&base, "fsn_relay_store_failures_total ").await, 1);

    // NATS back with its store on disk; Fullscript's retry is stored, and
    // what was stored before the restart is still there.
    let nats = Nats::start(store.path(), port);
    let start = Instant::now();
    loop {
        let (status, _) = post(&base, &later, Some(sign(&later, SECRET.as_bytes(), now()))).await;
        if status == 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the retry was never stored"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let ids: Vec<String> = stored(&nats.url())
        .await
        .iter()
        .map(|(_, p)| {
            serde_json::from_str::<Value>(p).unwrap()["id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(ids, ["evt-5", "evt-6"]);
}
