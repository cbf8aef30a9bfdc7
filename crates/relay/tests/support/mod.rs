//! What the relay's tests share: a JetStream server on a temporary store
//! and a free port (installed by scripts/setup.sh; started and stopped by
//! the tests), and the relay itself in the test's process.

// Each test file uses a part of what is here.
#![allow(dead_code, unused_imports)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use fsn_relay::webhook::sign;
use futures_util::StreamExt;
use serde_json::{json, Value};

/// A JetStream server on a temporary store and a free port (the same one
/// the end-to-end suite and the benchmark start).
pub use fsn_simulator::fixture::{free_port, wait_for_port, JetStream as Nats, Process};

/// The relay in this process on a free port, configured by `extra` TOML
/// over the webhook secret and challenge given; answers its base URL once
/// it is ready (NATS connected).
pub async fn start_relay(secret: &str, challenge: &str, nats_url: &str, extra: &str) -> String {
    fsn_core::http::install_crypto_provider();
    let table: toml::Table = toml::from_str(&format!(
        "webhook_secret = \"{secret}\"\nwebhook_challenge = \"{challenge}\"\nnats_url = \"{nats_url}\"\n{extra}\n"
    ))
    .expect("relay config");
    let config = fsn_relay::Config::from_table(table).expect("relay config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = fsn_relay::serve(config, listener, std::future::pending()).await;
    });
    let start = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(format!("{base}/readyz")).await {
            if r.status() == 200 {
                break;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "relay never ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    base
}

/// A counter or gauge from `/metrics`.
pub async fn metric(base: &str, line_start: &str) -> u64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `{line_start}` in\n{text}"))
}

/// What the stand-in for Fullscript received at its token endpoint.
#[derive(Default)]
pub struct Seen {
    pub token_forms: Vec<String>,
    pub redirect_followed: bool,
}

/// Fullscript's look-up and token endpoint: `token-a` is clinic A's,
/// `token-b` clinic B's; refresh token `redirect-me` answers with a redirect.
pub async fn fake_fullscript(seen: Arc<Mutex<Seen>>) -> String {
    async fn clinic(headers: HeaderMap) -> axum::response::Response {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        match auth {
            "Bearer token-a" => {
                axum::Json(json!({"clinic": {"id": "clinic-a", "name": "A"}})).into_response()
            }
            "Bearer token-b" => {
                axum::Json(json!({"clinic": {"id": "clinic-b", "name": "B"}})).into_response()
            }
            _ => StatusCode::UNAUTHORIZED.into_response(),
        }
    }
    async fn token(State(seen): State<Arc<Mutex<Seen>>>, body: String) -> axum::response::Response {
        let redirect = body.contains("redirect-me");
        seen.lock().unwrap().token_forms.push(body);
        if redirect {
            return (StatusCode::FOUND, [("location", "/elsewhere")], "").into_response();
        }
        axum::Json(json!({"access_token": "at-1", "refresh_token": "rt-2", "token_type": "Bearer", "expires_in": 7200}))
            .into_response()
    }
    async fn elsewhere(State(seen): State<Arc<Mutex<Seen>>>) -> &'static str {
        seen.lock().unwrap().redirect_followed = true;
        "followed"
    }
    let app = axum::Router::new()
        .route("/api/clinic", get(clinic))
        .route("/api/oauth/token", post(token))
        .route("/api/oauth/revoke", post(token))
        .route("/elsewhere", get(elsewhere).post(elsewhere))
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    base
}

/// A signed `lab_order.updated` for `clinic`'s `order`, posted to the relay.
pub async fn webhook(base: &str, secret: &str, id: &str, clinic: &str, order: &str) {
    assert_eq!(try_webhook(base, secret, id, clinic, order).await, 200);
}

/// [`webhook`], answering the relay's status (0 when it could not be reached).
pub async fn try_webhook(base: &str, secret: &str, id: &str, clinic: &str, order: &str) -> u16 {
    let body = json!({"event": {"id": id, "type": "lab_order.updated", "clinic_id": clinic,
        "data": {"lab_order": {"id": order, "status": "results_ready", "first_name": "Ana"}}}})
    .to_string();
    let sig = sign(
        body.as_bytes(),
        secret.as_bytes(),
        chrono::Utc::now().timestamp(),
    );
    reqwest::Client::new()
        .post(format!("{base}/webhooks/fullscript"))
        .header("Fullscript-Signature", sig)
        .body(body)
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

/// One SSE event: (id, data).
pub type Pushed = (u64, Value);

/// Subscribe as a desktop; events arrive on the channel.
pub async fn subscribe(
    base: &str,
    token: &str,
    last_id: Option<u64>,
) -> Result<tokio::sync::mpsc::Receiver<Pushed>, u16> {
    let mut req = reqwest::Client::new()
        .get(format!("{base}/v1/events"))
        .bearer_auth(token);
    if let Some(id) = last_id {
        req = req.header("Last-Event-ID", id.to_string());
    }
    let r = req.send().await.unwrap();
    if r.status() != 200 {
        return Err(r.status().as_u16());
    }
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        let mut body = r.bytes_stream();
        let mut buf = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let mut id = None;
                let mut data = None;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data = serde_json::from_str(v.trim()).ok();
                    }
                }
                if let (Some(id), Some(data)) = (id, data) {
                    if tx.send((id, data)).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    Ok(rx)
}

pub async fn next(rx: &mut tokio::sync::mpsc::Receiver<Pushed>) -> Option<Pushed> {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .ok()
        .flatten()
}

/// Poll `f` until it holds (30 s at most).
pub async fn wait_until(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !f().await {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The simulator's webhooks to `relay`, signed with `secret`: retries on
/// Fullscript's schedule scaled down a thousand times, each delivered twice.
pub fn webhooks_to(relay: &str, secret: &str) -> fsn_simulator::webhooks::WebhookConfig {
    fsn_simulator::webhooks::WebhookConfig {
        url: format!("{relay}/webhooks/fullscript")
            .parse()
            .expect("a relay URL"),
        secret: secret.into(),
        retry_scale: 0.001,
        duplicates: true,
        out_of_order: false,
        wrong_signature: false,
    }
}

/// The relay's keys for a simulator at `sim` playing Fullscript.
pub fn fullscript_at(sim: &str) -> String {
    fsn_simulator::fixture::relay_fullscript_at(sim)
        .iter()
        .map(|(key, value)| format!("{key} = \"{value}\"\n"))
        .collect()
}
