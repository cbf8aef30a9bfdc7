//! The simulator as Fullscript's webhook sender (`shared/fullscript-api.md`
//! §6): a challenge handshake first (an empty POST that must be answered
//! with the challenge), then a signed `lab_order.updated` for every result
//! change, retried on failure at Fullscript's schedule (1 min, 5 min,
//! 30 min, 60 min, 5 h; scaled down for tests), and on request sent twice,
//! out of order, or with a wrong signature. Plain http only (it delivers to
//! a relay on this computer).
//!
//! The signature (HMAC-SHA256 over `"{t}.{body}"`) is computed here, not
//! with the relay's code: the two sides are checked against each other.

use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Shared;

/// Fullscript's retry schedule after the first attempt.
pub const RETRY_SCHEDULE_SECS: [u64; 5] = [60, 300, 1800, 3600, 18_000];

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// `http://127.0.0.1:PORT/webhooks/fullscript`
    pub url: url::Url,
    pub secret: String,
    /// Multiplies the retry delays (0.001: a 1-minute retry after 60 ms).
    pub retry_scale: f64,
    /// Deliver every event a second time after it was accepted.
    pub duplicates: bool,
    /// Deliver each batch of new events newest first.
    pub out_of_order: bool,
    /// Sign with another secret (every delivery is refused).
    pub wrong_signature: bool,
}

/// One delivery attempt, as `/_sim/webhooks` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    /// `None` for the handshake.
    pub event_id: Option<String>,
    pub attempt: u32,
    /// The HTTP status, or 0 when the request failed.
    pub status: u16,
    /// The answer's `challenge`, when it had one.
    pub challenge: Option<String>,
}

/// Whether the receiver took a delivery (Fullscript §6: any status outside
/// 200/201 is a failure, retried on its schedule).
pub(crate) fn acknowledged(status: u16) -> bool {
    matches!(status, 200 | 201)
}

/// The most deliveries remembered.
const MAX_LOG: usize = 10_000;

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(message);
            mac.finalize().into_bytes().into()
        }
        // (HMAC takes a key of any length.)
        Err(_) => [0; 32],
    }
}

/// `Fullscript-Signature` for a body at time `t`.
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut message = format!("{t}.").into_bytes();
    message.extend_from_slice(body);
    let mac = hmac_sha256(secret.as_bytes(), &message);
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

/// POST `body` (with headers) over plain HTTP/1.1; the status and body.
async fn post(url: &url::Url, headers: &[(&str, String)], body: &[u8]) -> Option<(u16, String)> {
    let host = url.host_str()?;
    let port = url.port_or_known_default()?;
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let work = async {
        let mut stream = tokio::net::TcpStream::connect((host, port)).await.ok()?;
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: fsn-simulator-webhooks\r\n",
            body.len()
        );
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        stream.write_all(body).await.ok()?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.ok()?;
        let text = String::from_utf8_lossy(&answer).into_owned();
        let status = text.split_whitespace().nth(1)?.parse().ok()?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Some((status, body))
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .ok()
        .flatten()
}

fn challenge_of(body: &str) -> Option<String> {
    // A chunked answer has its JSON between size lines.
    let start = body.find('{')?;
    let end = body.rfind('}')?;
    let v: serde_json::Value = serde_json::from_str(body.get(start..=end)?).ok()?;
    v.get("challenge")
        .and_then(|c| c.as_str())
        .map(str::to_string)
}

fn record(shared: &Shared, d: Delivery) {
    let mut w = shared.lock();
    if w.webhook_log.len() >= MAX_LOG {
        w.webhook_log.remove(0);
    }
    w.webhook_log.push(d);
}

/// The body Fullscript sends for one event (with the patient's details, as
/// the documented example has them: the relay must strip them).
fn body_for(shared: &Shared, event: &crate::state::LabEvent) -> Vec<u8> {
    let w = shared.lock();
    let patient = w
        .order(&event.order_id)
        .and_then(|o| w.patients.get(&o.patient_id).cloned());
    let (first, last, email, patient_id) = match patient {
        Some(p) => (p.first_name, p.last_name, p.email, p.id),
        None => Default::default(),
    };
    json!({"event_payload": {"event": {
        "id": event.id,
        "type": "lab_order.updated",
        "created_at": event.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "clinic_id": event.clinic_id,
        "data": {"lab_order": {
            "id": event.order_id,
            "practitioner_id": w.practitioner_id,
            "patient_id": patient_id,
            "first_name": first,
            "last_name": last,
            "email": email,
            "status": webhook_status(&event.state),
        }}
    }}})
    .to_string()
    .into_bytes()
}

/// The webhook vocabulary (`all_results_received`, `results_received`).
fn webhook_status(state: &str) -> &str {
    match state {
        "results_ready" => "all_results_received",
        "partial_results" => "results_received",
        other => other,
    }
}

async fn deliver(shared: Shared, config: WebhookConfig, event: crate::state::LabEvent) {
    let body = body_for(&shared, &event);
    let secret = if config.wrong_signature {
        format!("{}-wrong", config.secret)
    } else {
        config.secret.clone()
    };
    let sends = if config.duplicates { 2 } else { 1 };
    for _ in 0..sends {
        let mut attempt = 0u32;
        loop {
            let t = chrono::Utc::now().timestamp();
            let headers = [("Fullscript-Signature", signature(&secret, t, &body))];
            let answer = post(&config.url, &headers, &body).await;
            let status = answer.as_ref().map_or(0, |(s, _)| *s);
            record(
                &shared,
                Delivery {
                    event_id: Some(event.id.clone()),
                    attempt,
                    status,
                    challenge: answer.as_ref().and_then(|(_, b)| challenge_of(b)),
                },
            );
            if acknowledged(status) {
                break;
            }
            let Some(delay) = RETRY_SCHEDULE_SECS.get(attempt as usize) else {
                tracing::warn!(event_id = %event.id, "the webhook was given up after its last retry");
                return;
            };
            attempt += 1;
            let wait = Duration::from_secs_f64((*delay as f64 * config.retry_scale).max(0.001));
            tokio::time::sleep(wait).await;
        }
    }
}

/// Deliver every new event for as long as the simulator runs.
/// `from`: the first event to deliver (the simulator's start: a seeded
/// scenario's history is not re-sent; what is raised while the handshake is
/// still going on is).
pub async fn run(shared: Shared, config: WebhookConfig, from: usize) {
    let mut next = from;
    // The handshake, until the receiver answers it.
    loop {
        let answer = post(&config.url, &[], b"").await;
        let status = answer.as_ref().map_or(0, |(s, _)| *s);
        record(
            &shared,
            Delivery {
                event_id: None,
                attempt: 0,
                status,
                challenge: answer.as_ref().and_then(|(_, b)| challenge_of(b)),
            },
        );
        if acknowledged(status) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut batch: Vec<crate::state::LabEvent> = {
            let w = shared.lock();
            let new = w.events.get(next..).map(<[_]>::to_vec).unwrap_or_default();
            next = w.events.len();
            new
        };
        if config.out_of_order {
            batch.reverse();
        }
        for event in batch {
            tokio::spawn(deliver(shared.clone(), config.clone(), event));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hmac_matches_rfc_4231() {
        // RFC 4231, test case 2.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
