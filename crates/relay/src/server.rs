//! The relay's HTTP side: Fullscript's webhooks in, health and metrics.
//! A webhook is answered 200 (with the configured challenge) only once its
//! event is durably stored, so Fullscript's retries cover a relay that
//! crashes or a NATS that is down.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::config::Config;
use crate::log::EventLog;
use crate::webhook::{parse_event, verify_signature, Parsed, Refused};

/// The largest webhook body read (Fullscript's are a few hundred bytes).
const MAX_BODY: usize = 256 * 1024;

/// What `/metrics` shows (never a token, a secret or a patient's anything).
#[derive(Default)]
pub struct Metrics {
    pub webhooks_received: AtomicU64,
    pub challenges_answered: AtomicU64,
    pub refused: BTreeMap<&'static str, AtomicU64>,
    pub events_stored: AtomicU64,
    pub events_duplicate: AtomicU64,
    pub events_unroutable: AtomicU64,
    pub store_failures: AtomicU64,
    pub connected_desktops: AtomicU64,
    pub events_pushed: AtomicU64,
    /// Desktops that resumed from an id of another stream (one lost and
    /// made again since): sent this one whole instead.
    pub resumes_from_another_stream: AtomicU64,
    /// Webhook received → event written to a desktop, summed (ms) and
    /// counted, and the slowest seen.
    pub push_latency_ms_sum: AtomicU64,
    pub push_latency_ms_max: AtomicU64,
}

impl Metrics {
    fn new() -> Metrics {
        Metrics {
            refused: Refused::ALL
                .iter()
                .map(|r| (*r, AtomicU64::new(0)))
                .collect(),
            ..Default::default()
        }
    }

    /// An event leaves for a desktop, `stored_at` being when JetStream
    /// took it (moments after the webhook arrived): its latency.
    pub fn record_push(&self, stored_at: chrono::DateTime<chrono::Utc>) {
        self.events_pushed.fetch_add(1, Ordering::Relaxed);
        // (A server clock ahead of this one reads as 0, never as negative.)
        let ms = u64::try_from((chrono::Utc::now() - stored_at).num_milliseconds()).unwrap_or(0);
        self.push_latency_ms_sum.fetch_add(ms, Ordering::Relaxed);
        self.push_latency_ms_max.fetch_max(ms, Ordering::Relaxed);
    }

    fn refuse(&self, r: &Refused) {
        if let Some(c) = self.refused.get(r.reason()) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub struct Relay {
    pub config: Config,
    pub log: EventLog,
    pub metrics: Metrics,
    /// To Fullscript: the clinic look-up and the token broker; never
    /// follows a redirect (a token call redirected elsewhere would carry
    /// the secret there).
    pub http: reqwest::Client,
    pub desktops: crate::push::Desktops,
    pub rate_limit: crate::broker::RateLimit,
}

impl Relay {
    pub fn new(config: Config, log: EventLog) -> Result<Arc<Relay>, reqwest::Error> {
        fsn_core::http::install_crypto_provider();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(30))
            .user_agent(concat!(
                "fullscript-notifier-relay/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()?;
        Ok(Arc::new(Relay {
            config,
            log,
            metrics: Metrics::new(),
            http,
            desktops: Default::default(),
            rate_limit: Default::default(),
        }))
    }
}

pub fn router(relay: Arc<Relay>) -> Router {
    Router::new()
        .route("/webhooks/fullscript", post(webhook))
        .route("/v1/events", get(crate::push::events))
        .route("/oauth/token", post(crate::broker::token))
        .route("/oauth/revoke", post(crate::broker::revoke))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(
            MAX_BODY.max(crate::broker::BODY_LIMIT),
        ))
        .with_state(relay)
}

fn challenge(relay: &Relay) -> Response {
    let body = serde_json::json!({ "challenge": relay.config.webhook_challenge.expose() });
    (StatusCode::OK, Json(body)).into_response()
}

fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn webhook(State(relay): State<Arc<Relay>>, headers: HeaderMap, body: Bytes) -> Response {
    let m = &relay.metrics;
    m.webhooks_received.fetch_add(1, Ordering::Relaxed);
    // The handshake: an empty request, answered at once with the challenge.
    if body.iter().all(u8::is_ascii_whitespace) {
        m.challenges_answered.fetch_add(1, Ordering::Relaxed);
        return challenge(&relay);
    }
    let signature = headers
        .get("fullscript-signature")
        .and_then(|v| v.to_str().ok());
    let tolerance = i64::try_from(relay.config.signature_tolerance.as_secs()).unwrap_or(300);
    if let Err(refused) = verify_signature(
        signature,
        &body,
        relay.config.webhook_secret.expose().as_bytes(),
        now_unix(),
        tolerance,
    ) {
        m.refuse(&refused);
        tracing::warn!(
            reason = refused.reason(),
            "a webhook was refused: {refused}"
        );
        return (StatusCode::UNAUTHORIZED, refused.to_string()).into_response();
    }
    match parse_event(&body) {
        Err(refused) => {
            m.refuse(&refused);
            tracing::warn!(
                reason = refused.reason(),
                "a signed webhook was unreadable: {refused}"
            );
            (StatusCode::BAD_REQUEST, refused.to_string()).into_response()
        }
        Ok(Parsed::Unroutable { id, why }) => {
            // Acknowledged: a retry would not make it readable, and
            // failing deliveries get the whole endpoint disabled.
            m.events_unroutable.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(event_id = ?id, why, "a webhook event names no desktop; counted, not stored");
            challenge(&relay)
        }
        Ok(Parsed::Event(event)) => store(&relay, event).await,
    }
}

async fn store(relay: &Relay, event: crate::webhook::StoredEvent) -> Response {
    let m = &relay.metrics;
    #[cfg(debug_assertions)]
    hold_before_store_for_tests().await;
    match relay.log.append(&event).await {
        Ok(appended) => {
            if appended.duplicate {
                m.events_duplicate.fetch_add(1, Ordering::Relaxed);
            } else {
                m.events_stored.fetch_add(1, Ordering::Relaxed);
            }
            tracing::info!(
                event_id = %event.id,
                clinic_id = %event.clinic_id,
                sequence = appended.sequence,
                duplicate = appended.duplicate,
                "webhook event stored"
            );
            challenge(relay)
        }
        Err(e) => {
            // Not acknowledged: Fullscript delivers it again.
            m.store_failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(event_id = %event.id, error = %e, "a webhook event could not be stored; Fullscript will retry it");
            (StatusCode::SERVICE_UNAVAILABLE, "not stored; retry").into_response()
        }
    }
}

async fn readyz(State(relay): State<Arc<Relay>>) -> Response {
    if relay.log.connected() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "NATS is not connected\n").into_response()
    }
}

fn metric(out: &mut String, kind: &str, name: &str, help: &str, value: u64) {
    out.push_str(&format!(
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
    ));
}

async fn metrics(State(relay): State<Arc<Relay>>) -> Response {
    let m = &relay.metrics;
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let mut out = String::new();
    for (name, help, value) in [
        (
            "fsn_relay_webhooks_received_total",
            "Webhook requests received.",
            get(&m.webhooks_received),
        ),
        (
            "fsn_relay_challenges_answered_total",
            "Empty handshake requests answered.",
            get(&m.challenges_answered),
        ),
        (
            "fsn_relay_events_stored_total",
            "Events stored for the first time.",
            get(&m.events_stored),
        ),
        (
            "fsn_relay_events_duplicate_total",
            "Events received again (already stored).",
            get(&m.events_duplicate),
        ),
        (
            "fsn_relay_events_unroutable_total",
            "Signed events naming no clinic or order.",
            get(&m.events_unroutable),
        ),
        (
            "fsn_relay_store_failures_total",
            "Events that could not be stored (not acknowledged).",
            get(&m.store_failures),
        ),
        (
            "fsn_relay_events_pushed_total",
            "Events written to desktops.",
            get(&m.events_pushed),
        ),
        (
            "fsn_relay_resumes_from_another_stream_total",
            "Desktops resuming from an id of another stream (one made again), sent this one whole.",
            get(&m.resumes_from_another_stream),
        ),
        (
            "fsn_relay_push_latency_ms_sum",
            "Webhook to desktop, summed over the events pushed (ms).",
            get(&m.push_latency_ms_sum),
        ),
    ] {
        metric(&mut out, "counter", name, help, value);
    }
    out.push_str("# HELP fsn_relay_webhooks_refused_total Webhooks refused, by reason.\n# TYPE fsn_relay_webhooks_refused_total counter\n");
    for (reason, c) in &m.refused {
        out.push_str(&format!(
            "fsn_relay_webhooks_refused_total{{reason=\"{reason}\"}} {}\n",
            get(c)
        ));
    }
    for (name, help, value) in [
        (
            "fsn_relay_push_latency_ms_max",
            "The slowest webhook to desktop (ms).",
            get(&m.push_latency_ms_max),
        ),
        (
            "fsn_relay_connected_desktops",
            "Desktops connected now.",
            get(&m.connected_desktops),
        ),
        (
            "fsn_relay_nats_connected",
            "Whether NATS is connected.",
            u64::from(relay.log.connected()),
        ),
    ] {
        metric(&mut out, "gauge", name, help, value);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// Crash-safety tests kill the relay between receiving a webhook and
/// storing it. With `FSN_RELAY_TEST_HOLD_BEFORE_STORE=<file>` set, the relay
/// writes that file and waits there (once per process). Compiled into debug
/// (test) builds only: release builds have no such hook.
#[cfg(debug_assertions)]
async fn hold_before_store_for_tests() {
    static HELD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if let Some(marker) = std::env::var_os("FSN_RELAY_TEST_HOLD_BEFORE_STORE") {
        if !HELD.swap(true, Ordering::Relaxed) {
            let _ = std::fs::write(&marker, b"holding");
            tokio::time::sleep(std::time::Duration::from_secs(120)).await;
        }
    }
}
