//! Push to desktops: `GET /v1/events` as Server-Sent Events, one clinic's
//! events per connection. The desktop authenticates with its practitioner's
//! Fullscript access token; the relay asks Fullscript once which clinic the
//! token belongs to (`GET {api_base}/clinic`) and remembers the answer for
//! a few minutes, by the token's hash (the token itself is never kept).
//! `Last-Event-ID` resumes where the desktop left off; a first connection
//! starts at the stream's end.
//!
//! An event's id is its stream sequence offset by the millisecond the
//! stream was made (× 2²²), not the bare sequence: a stream lost and made
//! again (a wiped store, a cluster rebuilt) numbers from 1 again, and a
//! desktop resuming after its old id would be sent nothing until the new
//! stream caught up. Offset, ids keep growing across streams, and an id
//! from an earlier stream is recognised and answered with the new stream
//! whole (the desktop ignores the events it has handled).

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

/// Where a desktop's stream starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// A first connection: at the stream's end (its own sweep is its baseline).
    End,
    /// After this stream sequence.
    After(u64),
    /// The stream whole: the desktop's id is from an earlier stream.
    Whole,
}

/// The first id of a stream made at `created_ms` (unix milliseconds): ids
/// stay unique and growing across streams made again (as long as a stream
/// stored fewer than 4 million events per millisecond it lived), and fit
/// in 64 bits until 2109.
fn id_base(created_ms: i64) -> u64 {
    u64::try_from(created_ms)
        .ok()
        .and_then(|ms| ms.checked_mul(1 << 22))
        .unwrap_or(0)
}

/// The id a desktop is given for the event at `seq`.
fn event_id(base: u64, seq: u64) -> u64 {
    base.saturating_add(seq)
}

/// Where a desktop resuming after `resume` starts, in a stream whose ids
/// start at `base` and whose last sequence is `last_seq`.
fn start(resume: Option<u64>, base: u64, last_seq: u64) -> Start {
    let Some(resume) = resume else {
        return Start::End;
    };
    match resume.checked_sub(base) {
        // Past the end: an id this stream never gave (another stream's, or
        // a clock that ran backwards when this one was made).
        Some(seq) if seq > last_seq => Start::Whole,
        Some(seq) => Start::After(seq),
        // Below this stream's first id: from an earlier stream, whose
        // events this one does not hold; everything here is newer.
        None => Start::Whole,
    }
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
    let info = stream.cached_info();
    let base = id_base(info.created.timestamp_millis());
    let deliver_policy = match start(resume, base, info.state.last_sequence) {
        Start::End => DeliverPolicy::New,
        Start::After(seq) => DeliverPolicy::ByStartSequence {
            start_sequence: seq.saturating_add(1),
        },
        // The desktop ignores the events it has handled already.
        Start::Whole => {
            relay
                .metrics
                .resumes_from_another_stream
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!("a desktop resumed from an id of another stream; sent this one whole");
            DeliverPolicy::All
        }
    };
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
                        .id(event_id(base, seq).to_string())
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
    fn ids_keep_growing_across_a_stream_made_again() {
        let old = id_base(1_780_000_000_000);
        // Made again a second later, after ten million events; or a
        // millisecond later, after a million.
        let second = id_base(1_780_000_001_000);
        assert!(event_id(second, 1) > event_id(old, 10_000_000));
        let millisecond = id_base(1_780_000_000_001);
        assert!(event_id(millisecond, 1) > event_id(old, 1_000_000));
    }

    #[test]
    fn a_desktop_resumes_after_its_id_in_the_same_stream() {
        let base = id_base(1_780_000_000_000);
        assert_eq!(start(None, base, 7), Start::End);
        assert_eq!(start(Some(event_id(base, 5)), base, 7), Start::After(5));
        assert_eq!(start(Some(event_id(base, 7)), base, 7), Start::After(7));
        assert_eq!(start(Some(base), base, 7), Start::After(0));
    }

    #[test]
    fn an_id_from_another_stream_is_answered_with_this_stream_whole() {
        let base = id_base(1_780_000_000_000);
        // An earlier stream's id, and a bare sequence of an older relay.
        assert_eq!(
            start(Some(event_id(id_base(1_770_000_000_000), 900)), base, 7),
            Start::Whole
        );
        assert_eq!(start(Some(3), base, 7), Start::Whole);
        // An id this stream never gave.
        assert_eq!(start(Some(event_id(base, 8)), base, 7), Start::Whole);
        assert_eq!(start(Some(u64::MAX), base, 7), Start::Whole);
    }

    #[test]
    fn a_stream_made_before_1970_or_past_2109_still_gets_ids() {
        assert_eq!(id_base(-5), 0);
        assert_eq!(id_base(i64::MAX), 0);
        assert_eq!(event_id(u64::MAX, 3), u64::MAX);
    }

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
