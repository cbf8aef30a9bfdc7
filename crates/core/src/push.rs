//! Results pushed by the clinic's relay: one Server-Sent Events connection
//! to `{relay_url}/v1/events`, authenticated with the practitioner's access
//! token. Each event names a lab order; the watcher checks that order at
//! once (its detail, then the same detect → outbox → deliver path as every
//! check), so exactly-once stays the core's job and a repeated push is
//! recognised by its event id.
//!
//! Never silent: the connection is only "connected" while it answers (the
//! relay sends a heartbeat every 25 s; a minute without a byte is a dead
//! connection), every failure is said in the status as `fallback: <why>`
//! and the watcher polls as it does without a relay until the stream is
//! back. Reconnects wait a jittered, growing delay; they resume after the
//! last event handled (`Last-Event-ID`, kept in the local database), so
//! nothing is lost across a reconnect, a sleep or a restart.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use url::Url;

use crate::backoff::Backoff;
use crate::lab::LabEvent;
use crate::oauth::AuthError;
use crate::secret::Secret;
use crate::session::Session;
use crate::status::PushState;
use crate::watcher::{Pushed, WatcherHandle};

/// No byte (not even the 25 s heartbeat) for this long: the connection is dead.
const SILENCE_LIMIT: Duration = Duration::from_secs(60);
/// Connecting (TCP, TLS, the relay's answer) may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest SSE line kept (an event is a few hundred bytes); past it the
/// connection is dropped, so a broken relay cannot fill memory.
const MAX_LINE: usize = 64 * 1024;

/// Why the stream is not connected, in the words `status` shows.
#[derive(Debug, thiserror::Error)]
enum PushError {
    #[error("the relay cannot be reached: {0}")]
    Unreachable(String),
    #[error("the relay answered HTTP {0}")]
    Status(u16),
    #[error("the relay did not accept the sign-in")]
    Refused,
    #[error("the relay went silent (no heartbeat for {} s)", SILENCE_LIMIT.as_secs())]
    Silent,
    #[error("the relay closed the stream")]
    Closed,
    #[error("the relay sent a line longer than {} KB", MAX_LINE / 1024)]
    Overlong,
    #[error("not signed in: {0}")]
    SignedOut(String),
}

/// One event of the stream, as the SSE format frames it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// The SSE wire format (the WHATWG definition): lines ending in LF, CRLF
/// or CR; `field: value`; a blank line ends an event; `:` starts a comment
/// (the heartbeat). Written here rather than taken from a crate because it
/// must be bounded: a line past [`MAX_LINE`] is an error, not a buffer
/// that grows.
#[derive(Default)]
pub struct SseParser {
    line: Vec<u8>,
    pending: SseEvent,
    has_data: bool,
    last_was_cr: bool,
}

impl SseParser {
    /// Feed bytes; answers the events they completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, &'static str> {
        let mut out = Vec::new();
        for &b in bytes {
            if self.last_was_cr {
                self.last_was_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' | b'\r' => {
                    self.last_was_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(e) = self.line_done(&line) {
                        out.push(e);
                    }
                }
                _ => {
                    if self.line.len() >= MAX_LINE {
                        return Err("overlong line");
                    }
                    self.line.push(b);
                }
            }
        }
        Ok(out)
    }

    fn line_done(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            let event = std::mem::take(&mut self.pending);
            let had = std::mem::replace(&mut self.has_data, false);
            return had.then_some(event);
        }
        if line[0] == b':' {
            return None;
        }
        let text = String::from_utf8_lossy(line);
        let (field, value) = match text.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (text.as_ref(), ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.pending.data.push('\n');
                }
                self.pending.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.pending.id = Some(value.to_string()),
            "event" => self.pending.event = Some(value.to_string()),
            _ => {}
        }
        None
    }
}

/// Read one pushed event: the relay's stored event (`id`, `lab_order_id`,
/// `created_at`, …) through the app's own tolerant events parser.
pub fn parse_pushed(e: &SseEvent) -> Result<Pushed, String> {
    let value: serde_json::Value =
        serde_json::from_str(&e.data).map_err(|err| format!("not JSON: {err}"))?;
    let event = LabEvent::from_json(&value)?;
    Ok(Pushed {
        seq: e.id.as_deref().and_then(|id| id.trim().parse().ok()),
        event,
    })
}

/// The agent's connection to the relay.
pub struct PushListener {
    http: reqwest::Client,
    events_url: Url,
    session: Arc<Session>,
    handle: WatcherHandle,
    backoff: Backoff,
}

impl PushListener {
    pub fn new(
        events_url: Url,
        session: Arc<Session>,
        handle: WatcherHandle,
    ) -> Result<PushListener, reqwest::Error> {
        crate::http::install_crypto_provider();
        // No overall timeout (the stream lasts for hours); silence is
        // watched per read instead. Redirects are not followed: the token
        // goes to the configured relay only.
        let http = reqwest::Client::builder()
            .user_agent(crate::http::user_agent())
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(PushListener {
            http,
            events_url,
            session,
            handle,
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(120)),
        })
    }

    /// Hold the connection until `shutdown` turns true.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        self.handle.set_push(PushState::Connecting);
        loop {
            let outcome = tokio::select! {
                r = self.connect_and_read() => r,
                _ = shutdown.wait_for(|s| *s) => break,
            };
            let reason = match outcome {
                Ok(()) => PushError::Closed,
                Err(e) => e,
            };
            let wait = self.backoff.next_delay();
            tracing::warn!(
                reason = %reason,
                retry_in_secs = wait.as_secs(),
                "results are not pushed now; checking as without a relay"
            );
            self.handle
                .set_push(PushState::Fallback(reason.to_string()));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.wait_for(|s| *s) => break,
            }
        }
    }

    async fn token(&self) -> Result<Secret, PushError> {
        self.session.access_token().await.map_err(|e| match e {
            AuthError::Unreachable(m) => PushError::Unreachable(m),
            other => PushError::SignedOut(other.to_string()),
        })
    }

    /// One connection: open it, then hand every event to the watcher until
    /// it fails. `Ok` when the relay ended it cleanly.
    async fn connect_and_read(&mut self) -> Result<(), PushError> {
        let mut token = self.token().await?;
        let mut retried = false;
        let mut response = loop {
            let mut request = self
                .http
                .get(self.events_url.clone())
                .bearer_auth(token.expose())
                .header(reqwest::header::ACCEPT, "text/event-stream");
            if let Some(last) = self.handle.push_resume_after() {
                request = request.header("Last-Event-ID", last.to_string());
            }
            let response = tokio::time::timeout(CONNECT_TIMEOUT, request.send())
                .await
                .map_err(|_| PushError::Unreachable("no answer".into()))?
                .map_err(|e| PushError::Unreachable(crate::http::describe_transport(&e)))?;
            match response.status().as_u16() {
                200 => break response,
                // The relay asks Fullscript about the token: an expired one
                // is renewed once, as for any API call.
                401 if !retried => {
                    retried = true;
                    token = self
                        .session
                        .refresh_after_unauthorized(&token)
                        .await
                        .map_err(|e| PushError::SignedOut(e.to_string()))?;
                }
                401 | 403 => return Err(PushError::Refused),
                other => return Err(PushError::Status(other)),
            }
        };
        drop(token);
        tracing::info!("results are pushed by the relay");
        self.handle.set_push(PushState::Connected);
        let mut parser = SseParser::default();
        loop {
            let chunk = tokio::time::timeout(SILENCE_LIMIT, response.chunk())
                .await
                .map_err(|_| PushError::Silent)?
                .map_err(|e| PushError::Unreachable(crate::http::describe_transport(&e)))?;
            let Some(bytes) = chunk else {
                return Ok(());
            };
            // A connection that delivers is a good one: the next failure
            // starts the delays afresh.
            self.backoff.reset();
            let events = parser.feed(&bytes).map_err(|_| PushError::Overlong)?;
            for e in events {
                if e.event.as_deref().is_some_and(|k| k != "lab_order") {
                    continue;
                }
                match parse_pushed(&e) {
                    Ok(p) => self.handle.push_event(p),
                    Err(problem) => {
                        // Counted and shown; the hourly read of the list
                        // covers whatever it announced.
                        tracing::warn!(problem = %problem, "a pushed event could not be read");
                        self.handle.push_unreadable();
                    }
                }
            }
            if !self.session.is_signed_in() {
                return Err(PushError::SignedOut("signed out".into()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_frames_split_anywhere_with_any_line_ending_and_heartbeats_ignored() {
        let wire = b": heartbeat\r\nid: 7\r\nevent: lab_order\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n:hb\n\nid:8\rdata:x\r\r";
        for split in 0..wire.len() {
            let mut p = SseParser::default();
            let mut got = p.feed(&wire[..split]).unwrap();
            got.extend(p.feed(&wire[split..]).unwrap());
            assert_eq!(
                got,
                vec![
                    SseEvent {
                        id: Some("7".into()),
                        event: Some("lab_order".into()),
                        data: "{\"a\":\n1}".into()
                    },
                    SseEvent {
                        id: Some("8".into()),
                        event: None,
                        data: "x".into()
                    }
                ],
                "split at {split}"
            );
        }
    }

    #[test]
    fn an_endless_line_is_refused_instead_of_buffered() {
        let mut p = SseParser::default();
        let big = vec![b'a'; MAX_LINE + 1];
        assert!(p.feed(&big).is_err());
    }

    #[test]
    fn a_pushed_event_is_read_by_the_apps_own_events_parser() {
        let e = SseEvent {
            id: Some("42".into()),
            event: Some("lab_order".into()),
            data: r#"{"id":"ev-1","type":"lab_order.updated","created_at":"2026-12-03T10:00:00Z","clinic_id":"c","lab_order_id":"o-9","status":"results_ready"}"#.into(),
        };
        let p = parse_pushed(&e).unwrap();
        assert_eq!(p.seq, Some(42));
        assert_eq!(p.event.id, "ev-1");
        assert_eq!(p.event.order_id, "o-9");
        assert!(parse_pushed(&SseEvent {
            data: "{\"id\": 5}".into(),
            ..e.clone()
        })
        .is_err());
        assert!(parse_pushed(&SseEvent {
            data: "nope".into(),
            ..e
        })
        .is_err());
    }
}
