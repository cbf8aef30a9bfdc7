//! Watching lab orders: the poll cycle and its schedule.
//!
//! A cycle normally costs one request: `GET /api/events/lab_orders` for
//! events newer than the stored cursor (de-duplicated by id), then one
//! `GET /api/clinic/labs/orders/{id}` per affected order. A full sweep of the
//! order list runs at start, after reconnecting or waking, and every N-th
//! cycle, so states that raise no event (purchased, processing, …) reach the
//! list too; when the events feed is refused (403/404) every cycle sweeps.
//!
//! Whatever a cycle managed to read is committed together with its alerts in
//! one transaction, even when a later request fails; the event cursor never
//! moves past an event that was not processed. Alerts are shown after the
//! commit and marked delivered after being shown.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch, Notify};

use crate::api::{ApiError, FullscriptClient};
use crate::backoff::Backoff;
use crate::config::{Config, Endpoints, NotifyStates};
use crate::detect::{self, AlertRules};
use crate::lab::LabOrder;
use crate::notifier::Notifier;
use crate::opener::UrlGuard;
use crate::policy::{self, Notification, Policy};
use crate::store::{ts, CycleCommit, Store, StoreError, Tracked};

/// Events older than this are gone from Fullscript (documented: 30 days).
const EVENT_WINDOW_DAYS: i64 = 29;
const MAX_PAGES: u32 = 10_000;
const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(3600);

/// Settings the watcher reads at every cycle (the UI may change them live).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WatchSettings {
    pub poll_interval_secs: u64,
    pub sweep_every: u32,
    pub notify_states: NotifyStates,
    pub show_patient_names: bool,
    pub sound: bool,
    pub summary_threshold: usize,
    /// RFC 3339; notifications are recorded silently until then.
    pub paused_until: Option<DateTime<Utc>>,
}

impl WatchSettings {
    pub fn from_config(c: &Config) -> WatchSettings {
        WatchSettings {
            poll_interval_secs: c.poll_interval.as_secs(),
            sweep_every: c.sweep_every,
            notify_states: c.notify_states,
            show_patient_names: c.show_patient_names,
            sound: c.sound,
            summary_threshold: c.summary_threshold,
            paused_until: None,
        }
    }

    pub fn paused(&self, now: DateTime<Utc>) -> bool {
        self.paused_until.is_some_and(|t| t > now)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Connection {
    Starting,
    Checking,
    Ok,
    Retrying,
    Offline,
    RateLimited,
    SignedOut,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchStatus {
    pub connection: Connection,
    /// The last cycle that completed.
    pub last_poll_at: Option<String>,
    pub next_poll_at: Option<String>,
    pub last_error: Option<String>,
    /// Since when requests have been failing (cleared by a good cycle).
    pub retrying_since: Option<String>,
    /// `None` until the events feed has been tried.
    pub events_available: Option<bool>,
    pub notifications_available: bool,
    pub notifications_error: Option<String>,
    pub cycles: u64,
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
            notifications_available: true,
            notifications_error: None,
            cycles: 0,
        }
    }
}

/// What changed, for live views (the window, `watch`'s output).
#[derive(Debug, Clone)]
pub enum WatchEvent {
    Status(WatchStatus),
    /// Rows of the status list changed.
    OrdersChanged,
    /// Notifications were shown.
    Delivered(Vec<Notification>),
    /// A cycle ended: its report or error, and when the next one runs.
    Cycle {
        report: Option<CycleReport>,
        error: Option<String>,
        next_in: Duration,
    },
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CycleReport {
    pub swept: bool,
    pub requests: u64,
    pub orders_fetched: usize,
    pub orders_changed: usize,
    pub new_alerts: usize,
    pub delivered: usize,
    pub skipped_records: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum CycleError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a cycle gathered before it ended (well or not).
#[derive(Default)]
struct Gathered {
    orders: Vec<LabOrder>,
    /// order id → a new event about it
    new_events: HashMap<String, String>,
    /// events to record as processed
    processed_events: Vec<(String, String)>,
    cursor: Option<String>,
    sweep_complete: bool,
    skipped: usize,
}

/// The control surface other parts of the app hold on to.
#[derive(Clone)]
pub struct WatcherHandle {
    trigger: Arc<Notify>,
    settings: Arc<RwLock<WatchSettings>>,
    status: watch::Receiver<WatchStatus>,
    events: broadcast::Sender<WatchEvent>,
    sweep_requested: Arc<std::sync::atomic::AtomicBool>,
}

impl WatcherHandle {
    /// Run a cycle now ("Check now").
    pub fn check_now(&self) {
        self.trigger.notify_one();
    }

    /// Run a cycle now that also sweeps every order (after wake or reconnect).
    pub fn check_now_with_sweep(&self) {
        self.sweep_requested
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.trigger.notify_one();
    }

    pub fn settings(&self) -> WatchSettings {
        self.settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn update_settings(&self, f: impl FnOnce(&mut WatchSettings)) {
        f(&mut self.settings.write().unwrap_or_else(|p| p.into_inner()));
        // A new interval takes effect at once.
        self.trigger.notify_one();
    }

    pub fn status(&self) -> WatchStatus {
        self.status.borrow().clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<WatchEvent> {
        self.events.subscribe()
    }
}

pub struct Watcher {
    api: Arc<FullscriptClient>,
    store: Arc<Store>,
    notifier: Arc<dyn Notifier>,
    guard: UrlGuard,
    endpoints: Endpoints,
    settings: Arc<RwLock<WatchSettings>>,
    tracked: HashMap<String, Tracked>,
    cycle_no: u64,
    need_sweep: bool,
    status_tx: watch::Sender<WatchStatus>,
    events_tx: broadcast::Sender<WatchEvent>,
    trigger: Arc<Notify>,
    sweep_requested: Arc<std::sync::atomic::AtomicBool>,
    backoff: Backoff,
}

fn day_of(iso: &str) -> Option<NaiveDate> {
    DateTime::parse_from_rfc3339(iso)
        .map(|d| d.with_timezone(&Utc).date_naive())
        .ok()
        .or_else(|| NaiveDate::parse_from_str(iso.get(..10)?, "%Y-%m-%d").ok())
}

impl Watcher {
    pub fn new(
        api: Arc<FullscriptClient>,
        store: Arc<Store>,
        notifier: Arc<dyn Notifier>,
        config: &Config,
    ) -> Result<Watcher, StoreError> {
        let tracked = store.load_tracked()?;
        let mut settings = WatchSettings::from_config(config);
        settings.paused_until = store
            .meta_get("paused_until")?
            .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
            .map(|d| d.with_timezone(&Utc));
        let mut status = store
            .meta_json::<WatchStatus>("watch_status")?
            .unwrap_or_default();
        status.connection = Connection::Starting;
        status.next_poll_at = None;
        let (status_tx, _) = watch::channel(status);
        let (events_tx, _) = broadcast::channel(64);
        Ok(Watcher {
            api,
            store,
            notifier,
            guard: UrlGuard::new(config),
            endpoints: config.endpoints.clone(),
            settings: Arc::new(RwLock::new(settings)),
            tracked,
            cycle_no: 0,
            need_sweep: true,
            status_tx,
            events_tx,
            trigger: Arc::new(Notify::new()),
            sweep_requested: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            backoff: Backoff::new(Duration::from_secs(5), Duration::from_secs(300)),
        })
    }

    pub fn handle(&self) -> WatcherHandle {
        WatcherHandle {
            trigger: self.trigger.clone(),
            settings: self.settings.clone(),
            status: self.status_tx.subscribe(),
            events: self.events_tx.clone(),
            sweep_requested: self.sweep_requested.clone(),
        }
    }

    pub fn tracked_len(&self) -> usize {
        self.tracked.len()
    }

    fn settings(&self) -> WatchSettings {
        self.settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_status(&self, f: impl FnOnce(&mut WatchStatus)) {
        let mut changed = None;
        self.status_tx.send_if_modified(|s| {
            let before = s.clone();
            f(s);
            if *s != before {
                changed = Some(s.clone());
                true
            } else {
                false
            }
        });
        if let Some(s) = changed {
            // Persisted so `status` from another process can read it.
            if let Err(e) = self.store.meta_set_json("watch_status", &s) {
                tracing::warn!(error = %e, "could not save the watch status");
            }
            let _ = self.events_tx.send(WatchEvent::Status(s));
        }
    }

    /// One poll cycle: gather, detect, commit, deliver.
    pub async fn run_cycle(&mut self) -> Result<CycleReport, CycleError> {
        let now = Utc::now();
        let settings = self.settings();
        let baseline = self.store.meta_get("baseline_at")?.is_none();
        let requested = self
            .sweep_requested
            .swap(false, std::sync::atomic::Ordering::Relaxed);
        let events_refused = self.status_tx.borrow().events_available == Some(false);
        let sweep = baseline
            || self.need_sweep
            || requested
            || events_refused
            || (settings.sweep_every > 0
                && self.cycle_no.is_multiple_of(settings.sweep_every as u64));
        self.cycle_no += 1;
        self.set_status(|s| s.connection = Connection::Checking);
        let sent_before = self.api.budget().sent();

        let mut got = Gathered::default();
        let outcome = self.gather(&mut got, sweep).await;

        let rules = AlertRules {
            notify: settings.notify_states,
            paused: settings.paused(now),
        };
        let detection = detect::detect(
            &self.tracked,
            &got.orders,
            &got.new_events,
            baseline,
            &rules,
        );
        let removals: Vec<String> = if outcome.is_ok() && got.sweep_complete {
            let listed: HashSet<&str> = got.orders.iter().map(|o| o.id.as_str()).collect();
            self.tracked
                .keys()
                .filter(|id| !listed.contains(id.as_str()))
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        let commit = CycleCommit {
            upserts: detection.upserts,
            removals,
            alerts: detection.alerts,
            seen_events: std::mem::take(&mut got.processed_events),
            cursor: got.cursor.take(),
            baseline_done: baseline && outcome.is_ok() && got.sweep_complete,
        };
        let new_alert_ids = self.store.commit_cycle(&commit, now)?;
        for r in &commit.upserts {
            self.tracked.insert(r.id.clone(), r.tracked());
        }
        for id in &commit.removals {
            self.tracked.remove(id);
        }
        if !commit.upserts.is_empty() || !commit.removals.is_empty() || !new_alert_ids.is_empty() {
            let _ = self.events_tx.send(WatchEvent::OrdersChanged);
        }
        if commit.baseline_done {
            tracing::info!(
                orders = self.tracked.len(),
                "first sign-in: recorded the current lab orders silently"
            );
        }
        if got.skipped > 0 {
            tracing::warn!(
                skipped = got.skipped,
                "some lab orders could not be read and were skipped"
            );
        }
        if let Some(cutoff) =
            Utc::now().checked_sub_signed(chrono::Duration::days(EVENT_WINDOW_DAYS + 3))
        {
            let _ = self.store.prune_events(cutoff);
        }
        outcome?;
        if sweep && got.sweep_complete {
            self.need_sweep = false;
        }
        let delivered = self.deliver().await?;
        Ok(CycleReport {
            swept: sweep,
            requests: self.api.budget().sent() - sent_before,
            orders_fetched: got.orders.len(),
            orders_changed: commit.upserts.len(),
            new_alerts: new_alert_ids.len(),
            delivered,
            skipped_records: got.skipped,
        })
    }

    async fn gather(&mut self, got: &mut Gathered, sweep: bool) -> Result<(), ApiError> {
        // Events first: in a sweep they only tell which orders have new
        // events (the sweep reads every order afterwards, so nothing that
        // happened before the events were read can be missed).
        let mut new_events: Vec<crate::lab::LabEvent> = Vec::new();
        let mut fallback = false;
        match self.read_events(got, &mut new_events).await {
            Ok(()) => {}
            Err(ApiError::Refused { status, .. }) if status == 403 || status == 404 => {
                if self.status_tx.borrow().events_available != Some(false) {
                    tracing::warn!(
                        status,
                        "the lab order events feed is refused; every cycle will read all orders"
                    );
                }
                self.set_status(|s| s.events_available = Some(false));
                fallback = true;
            }
            Err(e) => return Err(e),
        }
        if !fallback {
            self.set_status(|s| s.events_available = Some(true));
        }
        for e in &new_events {
            got.new_events.insert(e.order_id.clone(), e.id.clone());
        }

        if sweep || fallback {
            self.sweep(got).await?;
            if got.sweep_complete {
                for e in &new_events {
                    got.processed_events
                        .push((e.id.clone(), e.created_at.clone()));
                }
            }
            return Ok(());
        }

        // Cheap path: fetch just the orders that have new events, oldest event first.
        let mut fetched: HashSet<String> = HashSet::new();
        for e in &new_events {
            if fetched.insert(e.order_id.clone()) {
                match self.api.order(&e.order_id).await {
                    Ok(order) => got.orders.push(order),
                    Err(ApiError::BadRecord(b)) => {
                        tracing::warn!(order_id = %b.id, problem = %b.problem, "skipping an unreadable lab order");
                        got.skipped += 1;
                        fetched.remove(&e.order_id);
                        continue;
                    }
                    Err(ApiError::Refused { status: 404, .. }) => {
                        // The order is gone; the event is processed.
                    }
                    Err(err) => {
                        fetched.remove(&e.order_id);
                        return Err(err);
                    }
                }
            }
            got.processed_events
                .push((e.id.clone(), e.created_at.clone()));
        }
        Ok(())
    }

    /// Read every page of events since the cursor; collect the new ones and
    /// advance the cursor over the prefix that is already processed.
    async fn read_events(
        &mut self,
        got: &mut Gathered,
        new_events: &mut Vec<crate::lab::LabEvent>,
    ) -> Result<(), ApiError> {
        let today = Utc::now().date_naive();
        let oldest = today - chrono::Duration::days(EVENT_WINDOW_DAYS);
        let cursor = self
            .store
            .meta_get("event_cursor")
            .ok()
            .flatten()
            .filter(|c| !c.is_empty());
        let from_day = match cursor.as_deref().and_then(day_of) {
            Some(d) if d >= oldest => d,
            Some(_) => {
                // Out of the 30-day window: events may have been missed.
                self.need_sweep = true;
                oldest
            }
            None => today,
        };
        let mut page = 1;
        let mut blocked = false;
        loop {
            let p = self.api.events_page(from_day, page).await?;
            let ids: Vec<&str> = p
                .events
                .iter()
                .map(|e| e.as_ref().map(|e| e.id.as_str()).unwrap_or(""))
                .collect();
            let unseen = self
                .store
                .unseen_events(&ids)
                .map_err(|e| ApiError::Malformed {
                    what: format!("local database: {e}"),
                    request_id: None,
                })?;
            for (event, is_new) in p.events.into_iter().zip(unseen) {
                match event {
                    Err(problem) => {
                        tracing::warn!(
                            problem,
                            "skipping an unreadable event; the cursor stays before it"
                        );
                        got.skipped += 1;
                        blocked = true;
                    }
                    Ok(e) if is_new => {
                        if !new_events.iter().any(|n| n.id == e.id) {
                            new_events.push(e);
                        }
                        // A new event blocks the cursor until it is processed (below).
                        blocked = true;
                    }
                    Ok(e) => {
                        if !blocked {
                            got.cursor = Some(e.created_at.clone());
                        }
                    }
                }
            }
            match p.meta.next_page {
                Some(n) if n > page && n <= MAX_PAGES => page = n,
                _ => break,
            }
        }
        if cursor.is_none() && got.cursor.is_none() && !blocked {
            got.cursor = Some(ts(Utc::now()));
        }
        Ok(())
    }

    /// Read every page of the order list (plus details where a list item lacks results).
    async fn sweep(&mut self, got: &mut Gathered) -> Result<(), ApiError> {
        let mut page = 1;
        let mut complete = true;
        loop {
            let p = self.api.orders_page(page).await?;
            for b in &p.bad {
                tracing::warn!(order_id = %b.id, problem = %b.problem, "skipping an unreadable lab order");
            }
            got.skipped += p.bad.len();
            complete &= p.bad.is_empty();
            let empty = p.orders.is_empty() && p.bad.is_empty();
            got.orders.extend(p.orders);
            match (p.meta.next_page, p.meta.total_pages) {
                (Some(n), _) if n > page && n <= MAX_PAGES && !empty => page = n,
                (None, Some(total)) if page < total && !empty => page += 1,
                _ => break,
            }
        }
        // List items that entered a result state but carry no results: read the order itself.
        let needing: Vec<usize> = got
            .orders
            .iter()
            .enumerate()
            .filter(|(_, o)| detect::needs_detail(&self.tracked, o))
            .map(|(i, _)| i)
            .collect();
        for i in needing {
            let id = got.orders[i].id.clone();
            match self.api.order(&id).await {
                Ok(full) => got.orders[i] = full,
                Err(ApiError::BadRecord(b)) => {
                    tracing::warn!(order_id = %b.id, "skipping an unreadable lab order");
                    got.skipped += 1;
                    complete = false;
                }
                Err(e) => return Err(e),
            }
        }
        got.sweep_complete = complete;
        if complete {
            // Everything up to now is known: the cursor may move to today.
            if got.cursor.is_none() {
                got.cursor = Some(ts(Utc::now()));
            }
        }
        Ok(())
    }

    /// Show what is in the outbox; mark each delivered after it was shown.
    pub async fn deliver(&mut self) -> Result<usize, StoreError> {
        let pending = self.store.outbox()?;
        if pending.is_empty() {
            return Ok(0);
        }
        hold_before_delivery_for_tests().await;
        let s = self.settings();
        let policy = Policy {
            show_patient_names: s.show_patient_names,
            summary_threshold: s.summary_threshold,
            sound: s.sound,
        };
        let notes = policy::compose(&pending, &policy, &self.guard, &self.endpoints);
        let mut delivered = 0;
        let mut shown = Vec::new();
        for n in notes {
            let notifier = self.notifier.clone();
            let to_show = n.clone();
            let result = tokio::task::spawn_blocking(move || notifier.show(&to_show))
                .await
                .unwrap_or_else(|e| Err(crate::notifier::NotifyError::Unavailable(e.to_string())));
            match result {
                Ok(()) => {
                    self.store.mark_delivered(&n.alert_ids, Utc::now())?;
                    delivered += n.alert_ids.len();
                    tracing::info!(kind = ?kind_label(&n), alerts = n.alert_ids.len(), "notification shown");
                    shown.push(n);
                    self.set_status(|st| {
                        st.notifications_available = true;
                        st.notifications_error = None;
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not show a notification; it stays queued");
                    self.set_status(|st| {
                        st.notifications_available = false;
                        st.notifications_error = Some(e.to_string());
                    });
                    break;
                }
            }
        }
        if !shown.is_empty() {
            let _ = self.events_tx.send(WatchEvent::Delivered(shown));
        }
        Ok(delivered)
    }

    /// One cycle with its outcome recorded in the status (what `watch --once`
    /// and the schedule both use); answers the cycle's result and how long to
    /// wait before the next one.
    pub async fn cycle(&mut self) -> (Result<CycleReport, CycleError>, Duration) {
        let settings = self.settings();
        let interval = Duration::from_secs(settings.poll_interval_secs.max(1));
        let result = self.run_cycle().await;
        let now = Utc::now();
        let delay = match &result {
            Ok(report) => {
                self.backoff.reset();
                self.set_status(|s| {
                    s.connection = Connection::Ok;
                    s.last_poll_at = Some(ts(now));
                    s.last_error = None;
                    s.retrying_since = None;
                    s.cycles += 1;
                });
                tracing::debug!(?report, "cycle done");
                interval
            }
            Err(CycleError::Api(ApiError::SignedOut(reason))) => {
                let reason = reason.clone();
                self.set_status(|s| {
                    s.connection = Connection::SignedOut;
                    s.last_error = Some(reason);
                });
                // Nothing to do until someone signs in (a trigger wakes us).
                Duration::from_secs(3600)
            }
            Err(CycleError::Api(ApiError::RateLimited { retry_after, .. })) => {
                let wait = retry_after
                    .unwrap_or(DEFAULT_RATE_LIMIT_WAIT)
                    .min(MAX_RATE_LIMIT_WAIT);
                self.set_status(|s| {
                    s.connection = Connection::RateLimited;
                    s.last_error = Some(format!(
                        "Fullscript asked to slow down; next try in {}s",
                        wait.as_secs()
                    ));
                    s.retrying_since.get_or_insert_with(|| ts(now));
                });
                self.need_sweep = true;
                wait
            }
            Err(e) => {
                let offline = matches!(e, CycleError::Api(a) if a.is_connectivity());
                let wait = self
                    .backoff
                    .next_delay()
                    .min(interval.max(Duration::from_secs(5)) * 5);
                let text = e.to_string();
                tracing::warn!(error = %text, retry_in_secs = wait.as_secs(), "cycle failed");
                self.set_status(|s| {
                    s.connection = if offline {
                        Connection::Offline
                    } else {
                        Connection::Retrying
                    };
                    s.last_error = Some(text);
                    s.retrying_since.get_or_insert_with(|| ts(now));
                });
                self.need_sweep = true;
                wait
            }
        };
        (result, delay)
    }

    /// Cycle, then announce when the next one runs.
    async fn cycle_and_schedule(&mut self) -> Duration {
        let (result, delay) = self.cycle().await;
        let next =
            Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::seconds(60));
        self.set_status(|s| s.next_poll_at = Some(ts(next)));
        let (report, error) = match result {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let _ = self.events_tx.send(WatchEvent::Cycle {
            report,
            error,
            next_in: delay,
        });
        delay
    }

    /// Poll until `shutdown` turns true. Wakes early for "check now", a
    /// settings change, or when the computer resumes from sleep.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                break;
            }
            let delay = self.cycle_and_schedule().await;
            let woke = tokio::select! {
                w = self.sleep_detecting_resume(delay) => w,
                _ = self.trigger.notified() => false,
                _ = shutdown.changed() => break,
            };
            if woke {
                tracing::info!("resumed from sleep; checking every order");
                self.need_sweep = true;
            }
        }
        self.set_status(|s| s.next_poll_at = None);
    }

    /// Sleep in slices; a wall clock that jumped far past the monotonic one
    /// means the machine slept (monotonic time stops during suspend).
    async fn sleep_detecting_resume(&self, total: Duration) -> bool {
        let slice = Duration::from_secs(10);
        let mut left = total;
        while !left.is_zero() {
            let step = left.min(slice);
            let wall_before = SystemTime::now();
            tokio::time::sleep(step).await;
            let wall = SystemTime::now()
                .duration_since(wall_before)
                .unwrap_or_default();
            if wall > step + Duration::from_secs(30) {
                return true;
            }
            left -= step;
        }
        false
    }
}

/// Crash-safety tests kill the process between the commit and the first
/// notification. With `FSN_TEST_HOLD_BEFORE_DELIVERY=<file>` set, the
/// watcher writes that file and waits there; never set in normal use.
async fn hold_before_delivery_for_tests() {
    if let Some(marker) = std::env::var_os("FSN_TEST_HOLD_BEFORE_DELIVERY") {
        let _ = std::fs::write(&marker, b"holding");
        tokio::time::sleep(Duration::from_secs(120)).await;
    }
}

fn kind_label(n: &Notification) -> &'static str {
    match n.kind {
        policy::NotificationKind::Result { .. } => "result",
        policy::NotificationKind::Summary { .. } => "summary",
        policy::NotificationKind::SignInAgain => "sign_in_again",
        policy::NotificationKind::Info => "info",
    }
}
