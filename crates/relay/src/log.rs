//! The durable event log: one JetStream stream shared by every relay, one
//! subject per clinic (`fsn.lab_orders.<clinic>`), de-duplicated by
//! Fullscript's event id (`Nats-Msg-Id`) over a window longer than
//! Fullscript's retry schedule. The relay keeps no other state.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream;

use crate::config::StreamSettings;
use crate::webhook::StoredEvent;

/// The stream's name.
pub const STREAM: &str = "FSN_LAB_ORDERS";
/// Every clinic's subject is under this.
pub const SUBJECT_PREFIX: &str = "fsn.lab_orders";

/// How long one write may take before the webhook is answered with an
/// error (Fullscript retries it).
const APPEND_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("NATS cannot be reached: {0}")]
    Unreachable(String),
    #[error("JetStream refused the event: {0}")]
    Refused(String),
    #[error("JetStream did not confirm the event within {0:?}")]
    TimedOut(Duration),
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The stream sequence (what a desktop resumes from).
    pub sequence: u64,
    /// The event id was stored before (a retry, a replay).
    pub duplicate: bool,
}

/// A clinic id as one subject token: letters, digits and `-` as they are,
/// every other byte as `_XX` (so two clinics never share a subject, and no
/// id can reach into another's with `.`, `*` or `>`).
pub fn subject_token(clinic_id: &str) -> String {
    let mut out = String::with_capacity(clinic_id.len());
    for b in clinic_id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("_{b:02X}"));
        }
    }
    out
}

/// The subject of a clinic's events.
pub fn clinic_subject(clinic_id: &str) -> String {
    format!("{SUBJECT_PREFIX}.{}", subject_token(clinic_id))
}

/// The NATS servers, each address parsed on its own.
fn servers(urls: &[String]) -> Result<Vec<async_nats::ServerAddr>, LogError> {
    urls.iter()
        .map(|u| {
            u.parse().map_err(|e| {
                LogError::Unreachable(format!("`{u}` is not a NATS server address: {e}"))
            })
        })
        .collect()
}

pub struct EventLog {
    client: async_nats::Client,
    js: jetstream::Context,
    settings: StreamSettings,
    /// The stream was there at the last look; cleared when a write fails,
    /// so a stream lost under a running relay (a wiped store) is made again.
    stream_known: AtomicBool,
}

impl EventLog {
    /// Connect (in the background: a relay starts, and says it is not
    /// ready, while NATS is down).
    pub async fn connect(urls: &[String], settings: StreamSettings) -> Result<EventLog, LogError> {
        let client = async_nats::ConnectOptions::new()
            .name("fullscript-notifier-relay")
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(APPEND_TIMEOUT))
            // One address each: async-nats reads a comma-separated string
            // as one (malformed) address, and never connects.
            .connect(servers(urls)?)
            .await
            .map_err(|e| LogError::Unreachable(e.to_string()))?;
        let js = jetstream::new(client.clone());
        Ok(EventLog {
            client,
            js,
            settings,
            stream_known: AtomicBool::new(false),
        })
    }

    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// A fresh inbox subject (an ordered consumer's delivery subject).
    pub fn new_inbox(&self) -> String {
        self.client.new_inbox()
    }

    /// The stream, made if it is not there (every relay may; the same
    /// settings are the same stream).
    pub async fn ensure_stream(&self) -> Result<(), LogError> {
        if self.stream_known.load(Ordering::Acquire) {
            return Ok(());
        }
        let s = &self.settings;
        self.js
            .get_or_create_stream(jetstream::stream::Config {
                name: STREAM.into(),
                subjects: vec![format!("{SUBJECT_PREFIX}.>")],
                max_age: s.max_age,
                max_bytes: s.max_bytes,
                num_replicas: s.replicas,
                duplicate_window: s.dedupe_window,
                storage: jetstream::stream::StorageType::File,
                discard: jetstream::stream::DiscardPolicy::Old,
                ..Default::default()
            })
            .await
            .map_err(|e| LogError::Unreachable(e.to_string()))?;
        self.stream_known.store(true, Ordering::Release);
        Ok(())
    }

    /// Store one event durably; answers once JetStream has it on disk (on
    /// a quorum of replicas).
    pub async fn append(&self, event: &StoredEvent) -> Result<Appended, LogError> {
        let work = async {
            self.ensure_stream().await?;
            let payload =
                serde_json::to_vec(event).map_err(|e| LogError::Refused(e.to_string()))?;
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", event.id.as_str());
            let ack = self
                .js
                .publish_with_headers(clinic_subject(&event.clinic_id), headers, payload.into())
                .await
                .map_err(|e| LogError::Unreachable(e.to_string()))?
                .await
                .map_err(|e| LogError::Refused(e.to_string()))?;
            Ok(Appended {
                sequence: ack.sequence,
                duplicate: ack.duplicate,
            })
        };
        let result = match tokio::time::timeout(APPEND_TIMEOUT, work).await {
            Ok(result) => result,
            Err(_) => Err(LogError::TimedOut(APPEND_TIMEOUT)),
        };
        if result.is_err() {
            self.stream_lost();
        }
        result
    }

    /// Something failed that the stream's absence would explain: look for
    /// it (and make it) again next time.
    pub fn stream_lost(&self) {
        self.stream_known.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_nats_servers_are_several_addresses() {
        let urls = ["nats://a:1".to_string(), "nats://b:2".to_string()];
        let addrs = servers(&urls).unwrap();
        assert_eq!(addrs.len(), 2);
        assert_eq!(addrs[1].host(), "b");
        assert!(servers(&["nats://a:1,nats://b:2".to_string()]).is_err());
    }

    #[test]
    fn a_clinic_id_is_one_subject_token_and_never_another_clinics() {
        assert_eq!(subject_token("7f3a-99"), "7f3a-99");
        assert_eq!(subject_token("a.b"), "a_2Eb");
        assert_eq!(subject_token("a_2Eb"), "a_5F2Eb");
        assert_ne!(subject_token("a.b"), subject_token("a_2Eb"));
        assert_eq!(subject_token("*"), "_2A");
        assert_eq!(subject_token(">"), "_3E");
        assert_eq!(clinic_subject("c1"), "fsn.lab_orders.c1");
    }
}
