//! Push to desktops: `GET /v1/events` as Server-Sent Events, one clinic's
//! events per connection. The desktop authenticates with its practitioner's
//! Fullscript access token; the relay asks Fullscript once which clinic the
//! token belongs to (`GET {api_base}/clinic`) and remembers the answer for
//! a few minutes, by the token's hash (the token itself is never kept).
//! `Last-Event-ID` (the stream sequence) resumes where the desktop left off;
//! a first connection starts at the stream's end.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{push, DeliverPolicy};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::log::{clinic_subject, STREAM};
use crate::server::Relay;

/// How long a token's clinic is remembered.
const CLINIC_CACHE: Duration = Duration::from_secs(5 * 60);
/// Connections one token may hold at once.
pub const MAX_CONNECTIONS_PER_TOKEN: usize = 4;
/// The heartbeat (a comment line) that keeps proxies from closing an idle stream.
const HEARTBEAT: Duration = Duration::from_secs(25);
/// How long the clinic look-up at Fullscript may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A token's clinic and when Fullscript said so, by the token's SHA-256.
type Clinics = HashMap<[u8; 32], (String, Instant)>;

/// Tokens' clinics and open connections, by the token's SHA-256.
#[derive(Default)]
pub struct Desktops {
    clinics: Mutex<Clinics>,
    open: Mutex<HashMap<[u8; 32], usize>>,
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One open connection, counted out when its stream ends.
struct Slot {
    relay: Arc<Relay>,
    key: [u8; 32],
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = lock(&self.relay.desktops.open);
        if let Some(n) = open.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.key);
            }
        }
        self.relay
            .metrics
            .connected_desktops
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a desktop may not subscribe.
#[derive(Debug, thiserror::Error)]
pub enum Denied {
    #[error("no bearer token")]
    NoToken,
    #[error("Fullscript does not accept this token")]
    TokenRefused,
    #[error("Fullscript could not be asked which clinic this is: {0}")]
    Lookup(String),
    #[error("too many connections for this sign-in")]
    TooMany,
    #[error("the event stream is not available: {0}")]
    Stream(String),
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        let status = match self {
            Denied::NoToken | Denied::TokenRefused => StatusCode::UNAUTHORIZED,
            Denied::TooMany => StatusCode::TOO_MANY_REQUESTS,
            Denied::Lookup(_) => StatusCode::BAD_GATEWAY,
            Denied::Stream(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        (status, self.to_string()).into_response()
    }
}

/// Which clinic a token belongs to (Fullscript's word, cached briefly).
async fn clinic_of(relay: &Relay, token: &str) -> Result<String, Denied> {
    let key = token_hash(token);
    if let Some((clinic, at)) = lock(&relay.desktops.clinics).get(&key) {
        if at.elapsed() < CLINIC_CACHE {
            return Ok(clinic.clone());
        }
    }
    let url = format!(
        "{}/clinic",
        relay.config.api_base.as_str().trim_end_matches('/')
    );
    let response = relay
        .http
        .get(url)
        .bearer_auth(token)
        .timeout(LOOKUP_TIMEOUT)
        .send()
        .await
        .map_err(|e| Denied::Lookup(e.without_url().to_string()))?;
    match response.status().as_u16() {
        200..=299 => {}
        401 | 403 => return Err(Denied::TokenRefused),
        other => return Err(Denied::Lookup(format!("HTTP {other}"))),
    }
    let body = fsn_core::http::read_capped(response)
        .await
        .map_err(|e| Denied::Lookup(e.to_string()))?;
    let body: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|_| Denied::Lookup("the answer is not JSON".into()))?;
    let clinic = fsn_core::api::parse_clinic(&body)
        .ok_or_else(|| Denied::Lookup("the answer names no clinic".into()))?;
    remember(
        &mut lock(&relay.desktops.clinics),
        key,
        &clinic.id,
        MAX_REMEMBERED,
    );
    Ok(clinic.id)
}

/// The most tokens whose clinic is remembered at once.
const MAX_REMEMBERED: usize = 100_000;

/// Remember a token's clinic, the map kept under `max` entries: expired
/// ones go first and, should every one still be fresh, all of them (each
/// costs one more look-up at Fullscript; none is ever served stale).
fn remember(cache: &mut Clinics, key: [u8; 32], clinic: &str, max: usize) {
    if cache.len() >= max {
        cache.retain(|_, (_, at)| at.elapsed() < CLINIC_CACHE);
    }
    if cache.len() >= max {
        cache.clear();
    }
    cache.insert(key, (clinic.to_string(), Instant::now()));
}

/// `GET /v1/events`.
pub async fn events(
    State(relay): State<Arc<Relay>>,
    headers: HeaderMap,
) -> Result<Response, Denied> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(Denied::NoToken)?
        .to_string();
    let clinic = clinic_of(&relay, &token).await?;
    let key = token_hash(&token);
    drop(token);
    {
        let mut open = lock(&relay.desktops.open);
        let n = open.entry(key).or_insert(0);
        if *n >= MAX_CONNECTIONS_PER_TOKEN {
            return Err(Denied::TooMany);
        }
        *n += 1;
    }
    relay
        .metrics
        .connected_desktops
        .fetch_add(1, Ordering::Relaxed);
    let slot = Slot {
        relay: relay.clone(),
        key,
    };
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let deliver_policy = match resume {
        Some(seq) => DeliverPolicy::ByStartSequence {
            start_sequence: seq.saturating_add(1),
        },
        None => DeliverPolicy::New,
    };
    relay
        .log
        .ensure_stream()
        .await
        .map_err(|e| Denied::Stream(e.to_string()))?;
    let stream = relay
        .log
        .jetstream()
        .get_stream(STREAM)
        .await
        .map_err(|e| {
            relay.log.stream_lost();
            Denied::Stream(e.to_string())
        })?;
    let consumer = stream
        .create_consumer(push::OrderedConfig {
            deliver_subject: relay.log.new_inbox(),
            filter_subject: clinic_subject(&clinic),
            deliver_policy,
            ..Default::default()
        })
        .await
        .map_err(|e| Denied::Stream(e.to_string()))?;
    let messages = consumer
        .messages()
        .await
        .map_err(|e| Denied::Stream(e.to_string()))?;
    tracing::info!(clinic_id = %clinic, resume = ?resume, "a desktop subscribed");
    let relay_for_stream = relay.clone();
    // A consumer error ends the stream rather than leaving it open on
    // heartbeats alone: the desktop reconnects from its last id (nothing
    // lost) and, while the relay cannot serve it, says it is polling
    // instead of "Live".
    let sse = messages
        .take_while(|m| {
            if let Err(e) = m {
                tracing::warn!(error = %e, "a desktop's event stream failed; closed");
            }
            std::future::ready(m.is_ok())
        })
        .filter_map(move |m| {
            let _slot = &slot;
            let relay = relay_for_stream.clone();
            async move {
                let m = m.ok()?;
                let info = m.info().ok()?;
                let seq = info.stream_sequence;
                relay.metrics.record_push(info.published);
                let data = String::from_utf8_lossy(&m.payload).into_owned();
                Some(Ok::<_, Infallible>(
                    SseEvent::default()
                        .id(seq.to_string())
                        .event("lab_order")
                        .data(data),
                ))
            }
        });
    Ok(Sse::new(sse)
        .keep_alive(KeepAlive::new().interval(HEARTBEAT))
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clinic_cache_never_grows_past_its_bound_even_when_every_entry_is_fresh() {
        let mut cache = Clinics::new();
        for i in 0..10u8 {
            remember(&mut cache, [i; 32], "clinic-a", 4);
            assert!(cache.len() <= 4, "{} entries", cache.len());
        }
        // The newest is always remembered.
        assert_eq!(
            cache.get(&[9; 32]).map(|(c, _)| c.as_str()),
            Some("clinic-a")
        );
    }

    #[test]
    fn expired_clinics_are_dropped_before_fresh_ones() {
        let mut cache = Clinics::new();
        let old = Instant::now().checked_sub(CLINIC_CACHE * 2);
        if let Some(old) = old {
            cache.insert([1; 32], ("clinic-old".into(), old));
            cache.insert([2; 32], ("clinic-b".into(), Instant::now()));
            remember(&mut cache, [3; 32], "clinic-c", 2);
            assert!(!cache.contains_key(&[1; 32]));
            assert!(cache.contains_key(&[2; 32]) && cache.contains_key(&[3; 32]));
        }
    }
}
