//! The computer's clock, as the watcher reads it.
//!
//! Real clocks are wrong sometimes (a laptop back from a long sleep, a
//! dead CMOS battery, a practitioner who set the date by hand), so nothing
//! that decides what Fullscript has or has not sent may rest on it: cursors
//! come from server data and server time comes from its `Date` header (see
//! `api::FullscriptClient::server_now`). This wrapper exists so tests can
//! put the computer's clock a year off and prove exactly that.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Default)]
pub struct Clock {
    skew_ms: Arc<AtomicI64>,
    /// Debug builds: `FSN_TEST_CLOCK_FILE` holds a skew in seconds, read at
    /// every look (end-to-end tests move the app's day: clinic hours).
    #[cfg(debug_assertions)]
    skew_file: Option<Arc<std::path::PathBuf>>,
}

impl Clock {
    /// The real clock.
    pub fn system() -> Clock {
        #[cfg(debug_assertions)]
        {
            Clock {
                skew_file: std::env::var_os("FSN_TEST_CLOCK_FILE")
                    .filter(|p| !p.is_empty())
                    .map(|p| Arc::new(p.into())),
                ..Clock::default()
            }
        }
        #[cfg(not(debug_assertions))]
        Clock::default()
    }

    pub fn now(&self) -> DateTime<Utc> {
        let now = Utc::now();
        #[cfg(debug_assertions)]
        if let Some(secs) = self
            .skew_file
            .as_deref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|t| t.trim().parse::<i64>().ok())
        {
            return chrono::Duration::try_seconds(secs)
                .and_then(|d| now.checked_add_signed(d))
                .unwrap_or(now);
        }
        match self.skew_ms.load(Ordering::Relaxed) {
            0 => now,
            ms => chrono::Duration::try_milliseconds(ms)
                .and_then(|d| now.checked_add_signed(d))
                .unwrap_or(now),
        }
    }

    /// Pretend the computer's clock is off by `skew` (tests).
    pub fn set_skew(&self, skew: chrono::Duration) {
        self.skew_ms
            .store(skew.num_milliseconds(), Ordering::Relaxed);
    }
}
