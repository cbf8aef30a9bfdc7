//! Fullscript's clock, as its `Date` headers tell it. The event cursor and
//! the pruning of processed events follow Fullscript's time, not this
//! computer's (which may be a year off), but one answer must not be able
//! to move that time either: a single `Date` a year ahead would otherwise
//! prune every processed event, and the last days' events would replay as
//! new alerts.
//!
//! Each `Date` is kept with the monotonic instant it arrived at, so the
//! estimate of "Fullscript's now" is the median of the recent dates, each
//! moved on by the time elapsed since (a computer clock corrected in
//! between changes nothing). A date more than [`AGREEMENT`] from that
//! estimate is set aside; only when [`CONFIRMATIONS`] set-aside dates in a
//! row agree with each other do they replace the estimate (Fullscript's
//! clock really moved, or the first answer was the wrong one).

use std::collections::VecDeque;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};

/// How far a `Date` may be from the estimate and still count.
pub const AGREEMENT: Duration = Duration::days(1);
/// Dates that must agree before the estimate is trusted enough to prune
/// by it (or to be replaced by dates that disagree with it).
pub const CONFIRMATIONS: usize = 3;
/// Dates kept for the median.
const KEEP: usize = 7;

#[derive(Debug, Clone, Copy)]
struct Sample {
    date: DateTime<Utc>,
    at: Instant,
}

impl Sample {
    fn projected(&self, now: Instant) -> DateTime<Utc> {
        let elapsed = now.saturating_duration_since(self.at);
        Duration::from_std(elapsed)
            .ok()
            .and_then(|d| self.date.checked_add_signed(d))
            .unwrap_or(self.date)
    }
}

#[derive(Debug, Default)]
pub struct ServerClock {
    samples: VecDeque<Sample>,
    /// Recent dates that disagreed with the estimate, in a row.
    outliers: Vec<Sample>,
}

fn median(mut times: Vec<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    times.sort();
    times.get(times.len() / 2).copied()
}

fn agree(a: DateTime<Utc>, b: DateTime<Utc>) -> bool {
    a.signed_duration_since(b).abs() <= AGREEMENT
}

impl ServerClock {
    /// One answer's `Date`, received at `at`.
    pub fn observe(&mut self, date: DateTime<Utc>, at: Instant) {
        let sample = Sample { date, at };
        match self.estimate(at) {
            Some(expected) if !agree(date, expected) => {
                self.outliers.push(sample);
                let newest = date;
                let consistent = self.outliers.iter().all(|o| agree(o.projected(at), newest));
                if !consistent {
                    // Not one story: keep only the latest.
                    self.outliers.retain(|o| o.date == newest);
                }
                if self.outliers.len() >= CONFIRMATIONS {
                    tracing::warn!("Fullscript's clock moved by more than a day; following it");
                    self.samples = self.outliers.drain(..).collect();
                } else {
                    tracing::debug!(
                        "an answer's Date header disagrees with Fullscript's recent ones; ignored"
                    );
                }
            }
            _ => {
                self.outliers.clear();
                self.samples.push_back(sample);
                while self.samples.len() > KEEP {
                    self.samples.pop_front();
                }
            }
        }
    }

    /// Fullscript's now at `at`; `None` before any answer.
    pub fn estimate(&self, at: Instant) -> Option<DateTime<Utc>> {
        median(self.samples.iter().map(|s| s.projected(at)).collect())
    }

    /// Has any answer told Fullscript's time?
    pub fn known(&self) -> bool {
        !self.samples.is_empty()
    }

    /// Do enough answers agree to act on the time irreversibly (pruning)?
    pub fn confirmed(&self) -> bool {
        self.samples.len() >= CONFIRMATIONS
    }

    /// Is `t` (an event's time) plausible: no more than [`AGREEMENT`] past
    /// Fullscript's now (or, before any answer, this computer's)?
    pub fn plausible(&self, t: DateTime<Utc>, at: Instant, local_now: DateTime<Utc>) -> bool {
        let now = self.estimate(at).unwrap_or(local_now);
        // (A `Date` at the end of time must not overflow into a panic.)
        now.checked_add_signed(AGREEMENT)
            .is_none_or(|limit| t <= limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn one_date_a_year_ahead_is_ignored() {
        let start = Instant::now();
        let mut c = ServerClock::default();
        for i in 0..3 {
            c.observe(
                t("2026-12-03T10:00:00Z") + Duration::seconds(i),
                start + std::time::Duration::from_secs(i as u64),
            );
        }
        assert!(c.confirmed());
        let later = start + std::time::Duration::from_secs(10);
        c.observe(t("2027-12-03T10:00:10Z"), later);
        let now = c.estimate(later).unwrap();
        assert!(agree(now, t("2026-12-03T10:00:10Z")), "{now}");
        // Two more in a row are still not enough; a third is.
        c.observe(t("2027-12-03T10:00:10Z"), later);
        assert!(agree(c.estimate(later).unwrap(), t("2026-12-03T10:00:10Z")));
        c.observe(t("2027-12-03T10:00:10Z"), later);
        assert!(agree(c.estimate(later).unwrap(), t("2027-12-03T10:00:10Z")));
    }

    #[test]
    fn a_wrong_first_answer_is_replaced_by_the_agreeing_ones_and_never_confirmed_alone() {
        let start = Instant::now();
        let mut c = ServerClock::default();
        c.observe(t("2099-01-01T00:00:00Z"), start);
        assert!(c.known() && !c.confirmed());
        for _ in 0..3 {
            c.observe(t("2026-12-03T10:00:00Z"), start);
        }
        assert!(agree(c.estimate(start).unwrap(), t("2026-12-03T10:00:00Z")));
        assert!(c.confirmed());
    }

    #[test]
    fn a_date_at_the_end_of_time_does_not_panic() {
        let start = Instant::now();
        let mut c = ServerClock::default();
        let end = DateTime::<Utc>::MAX_UTC;
        c.observe(end, start);
        c.observe(t("2026-12-03T10:00:00Z"), start);
        let later = start + std::time::Duration::from_secs(3600);
        let _ = c.estimate(later);
        assert!(c.plausible(t("2026-12-03T10:00:00Z"), later, t("2026-12-03T10:00:00Z")));
    }

    #[test]
    fn the_estimate_moves_on_with_the_monotonic_clock_and_event_times_are_bounded() {
        let start = Instant::now();
        let mut c = ServerClock::default();
        c.observe(t("2026-12-03T10:00:00Z"), start);
        let later = start + std::time::Duration::from_secs(3600);
        assert_eq!(c.estimate(later).unwrap(), t("2026-12-03T11:00:00Z"));
        let local = t("2030-01-01T00:00:00Z");
        assert!(c.plausible(t("2026-12-04T10:00:00Z"), later, local));
        assert!(!c.plausible(t("2027-12-03T10:00:00Z"), later, local));
    }
}
