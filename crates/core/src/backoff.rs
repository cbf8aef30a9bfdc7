//! Exponential backoff with jitter, and the client-side request budget.

use std::time::Duration;

// Tokio's clock (the real one outside tests), so paused-time tests can drive the budget.
use tokio::time::Instant;

use rand::Rng;

/// `d` ± 20 %, so many clients that failed together do not retry together.
pub fn jittered(d: Duration) -> Duration {
    let factor = rand::rng().random_range(0.8..1.2);
    d.mul_f64(factor)
}

/// Delays for consecutive failures: base, 2×base, 4×base … capped, jittered.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap,
            failures: 0,
        }
    }

    /// The wait before the next attempt after one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.failures.min(16);
        self.failures = self.failures.saturating_add(1);
        jittered(self.base.saturating_mul(1 << exp).min(self.cap))
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// A token bucket: at most `per_5min` requests per rolling five minutes on
/// average, with bursts of a tenth of that. Fullscript allows 5000 requests
/// per 5 minutes for the whole application (every user together), so each
/// copy of the app stays far below.
pub struct RequestBudget {
    capacity: f64,
    per_sec: f64,
    state: std::sync::Mutex<(f64, Instant)>,
    sent: std::sync::atomic::AtomicU64,
}

impl RequestBudget {
    pub fn new(per_5min: u32) -> RequestBudget {
        let capacity = (per_5min as f64 / 10.0).max(1.0);
        RequestBudget {
            capacity,
            per_sec: per_5min as f64 / 300.0,
            state: std::sync::Mutex::new((capacity, Instant::now())),
            sent: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Wait until a request may be sent.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                let refill = now.duration_since(st.1).as_secs_f64() * self.per_sec;
                st.0 = (st.0 + refill).min(self.capacity);
                st.1 = now;
                if st.0 >= 1.0 {
                    st.0 -= 1.0;
                    None
                } else {
                    Some(Duration::from_secs_f64((1.0 - st.0) / self.per_sec))
                }
            };
            match wait {
                None => {
                    self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return;
                }
                Some(d) => {
                    tracing::debug!(
                        wait_ms = d.as_millis() as u64,
                        "request budget spent; waiting"
                    );
                    tokio::time::sleep(d).await;
                }
            }
        }
    }

    /// Requests sent through this budget since start.
    pub fn sent(&self) -> u64 {
        self.sent.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let mut b = Backoff::new(Duration::from_secs(5), Duration::from_secs(60));
        let d: Vec<u64> = (0..6).map(|_| b.next_delay().as_millis() as u64).collect();
        assert!((4000..=6000).contains(&d[0]));
        assert!((8000..=12000).contains(&d[1]));
        assert!(d[5] <= 72_000 && d[5] >= 48_000, "capped: {d:?}");
        b.reset();
        assert_eq!(b.failures(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn budget_allows_a_burst_then_paces() {
        let budget = RequestBudget::new(300); // 1 per second, burst 30
        let start = tokio::time::Instant::now();
        for _ in 0..30 {
            budget.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        budget.acquire().await;
        budget.acquire().await;
        // Paused clock: exact virtual time, not wall-clock.
        assert!(start.elapsed() >= Duration::from_millis(1900));
        assert_eq!(budget.sent(), 32);
    }
}
