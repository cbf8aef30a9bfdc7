//! How watching goes, as data: written by the watcher (and persisted, so
//! `status` in another process reads it), shown by the CLI and the window.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schedule::Quiet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Connection {
    Starting,
    Checking,
    Ok,
    Retrying,
    Offline,
    RateLimited,
    SignedOut,
    /// Fullscript refused the app's registration (`invalid_client`): the
    /// sign-in is kept; the client id or secret must be fixed.
    NeedsConfiguration,
    /// The watcher stopped unexpectedly and is being restarted.
    Restarting,
}

/// What the lab-order events feed did at the last check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventsFeed {
    /// Not tried yet.
    #[default]
    Unknown,
    Available,
    /// Failed this check (a server error, a timeout, an answer it could not
    /// read): the whole order list was read instead.
    Unavailable,
    /// Refused (403/404: a Canadian clinic, a missing scope): every check
    /// reads the whole order list.
    Refused,
}

/// Results pushed by the clinic's relay: in `status --json` as
/// `"connected"`, `"connecting"` or `"fallback: <reason>"` (polling as
/// without a relay, until the stream is back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushState {
    Connecting,
    Connected,
    Fallback(String),
}

impl PushState {
    /// Results arrive within seconds: the order list is read only hourly.
    pub fn is_live(&self) -> bool {
        matches!(self, PushState::Connected)
    }
}

impl std::fmt::Display for PushState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PushState::Connecting => f.write_str("connecting"),
            PushState::Connected => f.write_str("connected"),
            PushState::Fallback(reason) => write!(f, "fallback: {reason}"),
        }
    }
}

impl From<&str> for PushState {
    fn from(s: &str) -> PushState {
        match s {
            "connecting" => PushState::Connecting,
            "connected" => PushState::Connected,
            other => PushState::Fallback(
                other
                    .strip_prefix("fallback: ")
                    .unwrap_or(other)
                    .to_string(),
            ),
        }
    }
}

impl Serialize for PushState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PushState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<PushState, D::Error> {
        let s = String::deserialize(d)?;
        Ok(PushState::from(s.as_str()))
    }
}

/// How the order list is read while results are pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SweepMode {
    /// Newest changes first, stopping at the first page with nothing new.
    Incremental,
    /// Fullscript ignored or refused the sort: the whole list, at most a
    /// few times a day.
    Full,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct WatchStatus {
    pub connection: Connection,
    /// The last cycle that completed.
    pub last_poll_at: Option<String>,
    pub next_poll_at: Option<String>,
    pub last_error: Option<String>,
    /// Since when requests have been failing (cleared by a good cycle).
    pub retrying_since: Option<String>,
    /// `None` until the events feed has been tried (kept for older readers;
    /// `events_feed` says more).
    pub events_available: Option<bool>,
    pub events_feed: EventsFeed,
    pub events_feed_error: Option<String>,
    pub notifications_available: bool,
    pub notifications_error: Option<String>,
    pub cycles: u64,
    /// Records Fullscript sent that could not be read: orders (kept as they
    /// were, listed as unreadable) and events. Never silently dropped.
    pub skipped_records: usize,
    /// Times the watcher stopped unexpectedly and was restarted.
    pub restarts: u32,
    /// Why result alerts are held now (paused, outside clinic hours), and until when.
    pub quiet: Option<Quiet>,
    /// Alerts held for the digest at the next opening or the end of the pause.
    pub held_alerts: usize,
    /// Results pushed by the relay (absent without one, or for a Canadian
    /// clinic, where Fullscript sends no lab webhooks).
    #[schemars(with = "Option<String>")]
    pub push: Option<PushState>,
    /// How the order list was last read while pushed (absent without push).
    pub sweep: Option<SweepMode>,
    /// Why the sorted read is not used, when it is not.
    pub sweep_note: Option<String>,
    /// Pushed events the app could not read (counted, never dropped silently).
    pub push_unreadable: u64,
}

impl Default for WatchStatus {
    fn default() -> Self {
        WatchStatus {
            connection: Connection::Starting,
            last_poll_at: None,
            next_poll_at: None,
            last_error: None,
            retrying_since: None,
            events_available: None,
            events_feed: EventsFeed::Unknown,
            events_feed_error: None,
            notifications_available: true,
            notifications_error: None,
            cycles: 0,
            skipped_records: 0,
            restarts: 0,
            quiet: None,
            held_alerts: 0,
            push: None,
            sweep: None,
            sweep_note: None,
            push_unreadable: 0,
        }
    }
}

impl WatchStatus {
    pub fn set_events_feed(&mut self, feed: EventsFeed, error: Option<String>) {
        self.events_feed = feed;
        self.events_feed_error = error;
        self.events_available = match feed {
            EventsFeed::Unknown => None,
            EventsFeed::Available => Some(true),
            EventsFeed::Unavailable | EventsFeed::Refused => Some(false),
        };
    }
}
