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
