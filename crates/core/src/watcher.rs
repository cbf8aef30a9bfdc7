//! Watching lab orders: the poll cycle and its schedule.
//!
//! A cycle normally costs one request: `GET /api/events/lab_orders` for
//! events from two days before the cursor (de-duplicated by id), then one
//! `GET /api/clinic/labs/orders/{id}` per affected order. A full sweep of the
//! order list runs at start, after reconnecting or waking, and every N-th
//! cycle, so states that raise no event (purchased, processing, …) reach the
//! list too; when the events feed is refused (403/404) every cycle sweeps,
//! and when it fails (5xx, a timeout, an answer it cannot read) the cycle
//! sweeps instead and says so.
//!
//! Never miss, never flood:
//! * whatever a cycle managed to read is committed together with its alerts
//!   in one transaction, even when a later request fails;
//! * alerts already committed are shown after every cycle, whatever its
//!   outcome, and at start: delivery never waits on the network;
//! * one unreadable order never blocks anything: it is kept as it was,
//!   listed as unreadable and counted (`skipped_records`);
//! * absence is not deletion: an order a complete sweep did not list is
//!   *missing*; it is removed (its record kept) only after three complete
//!   sweeps without it or a 404 on its detail, and a list that is empty or
//!   shrank by more than half is suspect and removes nothing;
//! * the event cursor comes from the server (event times, its `Date`
//!   header), never this computer's clock;
//! * stopping never cuts a delivery in half: only the reading part of a
//!   cycle can be interrupted.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch, Notify};

use crate::api::{ApiError, EventsQuery, FullscriptClient, OrderPage, OrderSort};
use crate::app_state::AppState;
use crate::backoff::{jittered, Backoff};
use crate::clock::Clock;
use crate::config::{Config, Endpoints, NotificationDetail, NotifyStates};
use crate::detect::{self, AlertRules, Baseline, Tracked};
use crate::lab::{LabEvent, LabOrder};
use crate::notifier::Notifier;
use crate::oauth::AuthError;
use crate::opener::UrlGuard;
use crate::policy::{self, Notification, NotificationKind, Policy};
use crate::schedule::{self, ClinicHours};
use crate::store::{ts, CycleCommit, Store, StoreError};

pub use crate::status::{Connection, EventsFeed, PushState, SweepMode, WatchStatus};

/// Events older than this are gone from Fullscript (documented: 30 days).
const EVENT_WINDOW_DAYS: i64 = 29;
/// Events are asked for from this long before the cursor (the filter works
/// on whole days; events are de-duplicated by id).
const EVENT_LOOKBACK_DAYS: i64 = 2;
/// A cursor further than this ahead of Fullscript's clock was not made by it.
const MAX_CURSOR_AHEAD: chrono::Duration = chrono::Duration::hours(1);
const MAX_PAGES: u32 = 10_000;
/// Unknown state names remembered for logging each once.
const MAX_UNKNOWN_STATES_LOGGED: usize = 32;
/// The most orders one sweep reads (far beyond any clinic): past it the
/// sweep stops with a clear error instead of growing without end.
const MAX_SWEEP_ORDERS: usize = 1_000_000;
/// The most response bytes one sweep reads.
const MAX_SWEEP_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// Waits Fullscript asks for (`Retry-After`) are kept within these bounds.
const MIN_RATE_LIMIT_WAIT: Duration = Duration::from_secs(30);
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(15 * 60);
const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);
/// Complete sweeps without an order before it is taken off the list.
const MISSING_SWEEPS_BEFORE_REMOVAL: u32 = 3;
/// Above this many tracked orders, a list that shrank by more than half is suspect.
const SUSPECT_SHRINK_MIN_TRACKED: usize = 10;
/// Pushed events waiting for their order's check. Past it a push is not
/// queued: the next check reads the order list instead (nothing is lost).
const MAX_PUSHED: usize = 10_000;
/// While pushed and the sorted read is not available: a full read of the
/// order list at most this often (four times a day).
const MIN_FULL_SWEEP_GAP: Duration = Duration::from_secs(6 * 3600);
/// After the sorted read failed, it is tried again after this long.
const RETRY_SORTED_AFTER: Duration = Duration::from_secs(24 * 3600);
/// An incremental read goes this far below the newest update the previous
/// read saw (updates written at nearly the same moment may be listed in
/// either order).
const SWEEP_MARK_MARGIN: chrono::Duration = chrono::Duration::minutes(2);
/// With a relay, the first check waits this long for the push to connect
/// (so that it can be the cheap, incremental one).
const PUSH_START_WAIT: Duration = Duration::from_secs(10);

/// An event the relay pushed: its stream sequence (what the push resumes
/// after) and the event (its id, its order, its time).
#[derive(Debug, Clone, PartialEq)]
pub struct Pushed {
    pub seq: Option<u64>,
    pub event: LabEvent,
}

/// What a cycle reads of the order list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SweepPlan {
    None,
    /// Newest changes first, up to the first page without any (pushed).
    Incremental,
    Full,
}

/// Whether an incremental sweep could rely on the list's order.
enum Sorted {
    Yes,
    No(String),
}

/// Settings the watcher reads at every cycle (the UI may change them live).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WatchSettings {
    pub poll_interval_secs: u64,
    pub sweep_every: u32,
    pub notify_states: NotifyStates,
    pub notification_detail: NotificationDetail,
    pub sound: bool,
    pub summary_threshold: usize,
    /// Result alerts are held (for a digest) until then.
    pub paused_until: Option<DateTime<Utc>>,
    /// Outside these hours result alerts are held for a digest.
    pub clinic_hours: Option<ClinicHours>,
}

impl WatchSettings {
    pub fn from_config(c: &Config) -> WatchSettings {
        WatchSettings {
            poll_interval_secs: c.poll_interval.as_secs(),
            sweep_every: c.sweep_every,
            notify_states: c.notify_states,
            notification_detail: c.notification_detail,
            sound: c.sound,
            summary_threshold: c.summary_threshold,
            paused_until: None,
            clinic_hours: c.clinic_hours.active().copied(),
        }
    }

    pub fn paused(&self, now: DateTime<Utc>) -> bool {
        self.paused_until.is_some_and(|t| t > now)
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

/// Why a cycle failed, naming the culprit: Fullscript or the network, or
/// this computer's database. (A notification that could not be shown is not
/// a cycle failure: the alert stays queued and the status says so.)
#[derive(Debug, thiserror::Error)]
pub enum CycleError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stopped")]
    Stopped,
    /// Another process signed in anew or out: follow it at once.
    #[error("the sign-in changed in another window or command")]
    SignInChanged,
}

/// What a cycle gathered before it ended (well or not).
#[derive(Default)]
struct Gathered {
    orders: Vec<LabOrder>,
    /// order id → a new event about it
    new_events: HashMap<String, detect::NewEvent>,
    /// events to record as processed (id, server time)
    processed_events: Vec<(String, String)>,
    cursor: Option<DateTime<Utc>>,
    /// The order list was read (planned, or instead of a failing events feed).
    swept: bool,
    /// Every page of the order list was read.
    sweep_complete: bool,
    /// The order list was read newest change first, up to a page without
    /// any (which says nothing about orders that were not listed).
    incremental_done: bool,
    /// The newest `updated_at` on the first page of the list this cycle
    /// read: an update that existed before the read began. Every change
    /// made after that is newer, so every order updated before it was read
    /// as it is now (by this read, when it is complete).
    first_page_newest: Option<DateTime<Utc>>,
    /// Every order id the list named (readable or not).
    listed: HashSet<String>,
    /// Listed but unreadable: (id, problem).
    unreadable: Vec<(String, String)>,
    /// Unreadable records without even an id, and unreadable events.
    skipped_without_id: usize,
    /// Orders whose detail answered 404.
    gone: Vec<String>,
}

/// The parts of a watcher that outlive it: what the window, the tray and
/// the CLI hold on to, and what a restarted watcher takes over.
struct Shared {
    trigger: Notify,
    settings: RwLock<WatchSettings>,
    status: watch::Sender<WatchStatus>,
    events: broadcast::Sender<WatchEvent>,
    sweep_requested: AtomicBool,
    store: Arc<Store>,
    /// Events pushed by the relay whose orders are not checked yet.
    pushed: Mutex<VecDeque<Pushed>>,
    /// The highest sequence handed over and handled (the push resumes after it).
    push_done: Mutex<Option<u64>>,
}

/// The control surface other parts of the app hold on to.
#[derive(Clone)]
pub struct WatcherHandle {
    shared: Arc<Shared>,
}

impl WatcherHandle {
    /// A handle for watching this store with these settings (the status
    /// starts from what was last persisted).
    pub fn new(store: Arc<Store>, settings: WatchSettings) -> WatcherHandle {
        let mut status = AppState::of(&store)
            .watch_status()
            .ok()
            .flatten()
            .unwrap_or_default();
        status.connection = Connection::Starting;
        status.next_poll_at = None;
        let (status, _) = watch::channel(status);
        let (events, _) = broadcast::channel(64);
        WatcherHandle {
            shared: Arc::new(Shared {
                trigger: Notify::new(),
                settings: RwLock::new(settings),
                status,
                events,
                sweep_requested: AtomicBool::new(false),
                pushed: Mutex::new(VecDeque::new()),
                push_done: Mutex::new(AppState::of(&store).push_last_event_id().ok().flatten()),
                store,
            }),
        }
    }

    /// Run a cycle now ("Check now").
    pub fn check_now(&self) {
        self.shared.trigger.notify_one();
    }

    /// Run a cycle now that also sweeps every order (after wake or reconnect).
    pub fn check_now_with_sweep(&self) {
        self.shared.sweep_requested.store(true, Ordering::Relaxed);
        self.shared.trigger.notify_one();
    }

    pub fn settings(&self) -> WatchSettings {
        self.shared
            .settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn update_settings(&self, f: impl FnOnce(&mut WatchSettings)) {
        f(&mut self
            .shared
            .settings
            .write()
            .unwrap_or_else(|p| p.into_inner()));
        // A new interval takes effect at once.
        self.shared.trigger.notify_one();
    }

    pub fn status(&self) -> WatchStatus {
        self.shared.status.borrow().clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<WatchEvent> {
        self.shared.events.subscribe()
    }

    /// Change the status; persisted (so `status` from another process reads
    /// it) and announced when it really changed.
    pub fn set_status(&self, f: impl FnOnce(&mut WatchStatus)) {
        let mut changed = None;
        self.shared.status.send_if_modified(|s| {
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
            if let Err(e) = AppState::of(&self.shared.store).set_watch_status(&s) {
                tracing::warn!(error = %e, "could not save the watch status");
            }
            let _ = self.shared.events.send(WatchEvent::Status(s));
        }
    }

    fn emit(&self, event: WatchEvent) {
        let _ = self.shared.events.send(event);
    }

    /// An event the relay pushed: its order is checked at once (a cycle
    /// that reads just that order). Exactly-once stays the store's job: an
    /// event already handled is dropped by its id.
    pub fn push_event(&self, pushed: Pushed) {
        {
            let mut q = lock(&self.shared.pushed);
            if q.iter().any(|p| p.event.id == pushed.event.id) {
                return;
            }
            if q.len() >= MAX_PUSHED {
                // Not dropped in silence: the order list is read instead.
                tracing::warn!("too many pushed events waiting; reading the order list instead");
                self.shared.sweep_requested.store(true, Ordering::Relaxed);
            } else {
                q.push_back(pushed);
            }
        }
        self.shared.trigger.notify_one();
    }

    /// Where the push resumes: after the last event handled.
    pub fn push_resume_after(&self) -> Option<u64> {
        *lock(&self.shared.push_done)
    }

    /// The push stream's state. Losing it checks at once (and polls as
    /// without a relay until it is back).
    pub fn set_push(&self, state: PushState) {
        let was_live = self.status().push.as_ref().is_some_and(PushState::is_live);
        let live = state.is_live();
        self.set_status(|s| s.push = Some(state));
        if was_live && !live {
            self.shared.trigger.notify_one();
        }
    }

    /// A count of pushed events that could not be read.
    pub fn push_unreadable(&self) {
        self.set_status(|s| s.push_unreadable = s.push_unreadable.saturating_add(1));
    }

    fn pending_pushed(&self) -> Vec<Pushed> {
        lock(&self.shared.pushed).iter().cloned().collect()
    }

    /// Take the handled events off the queue; answers the sequence the push
    /// may now resume after, when it moved.
    fn confirm_pushed(&self, done: &HashSet<&str>) -> Option<u64> {
        let mut q = lock(&self.shared.pushed);
        let mut newest_done = None;
        q.retain(|p| {
            let handled = done.contains(p.event.id.as_str());
            if handled {
                newest_done = newest_done.max(p.seq);
            }
            !handled
        });
        // Not past an event still waiting (its order could not be read yet).
        let oldest_waiting = q.iter().filter_map(|p| p.seq).min();
        let mut resume = lock(&self.shared.push_done);
        let candidate = match oldest_waiting {
            Some(w) => newest_done.map(|d| d.min(w.saturating_sub(1))),
            None => newest_done,
        };
        match candidate {
            Some(c) if resume.is_none_or(|r| c > r) => {
                *resume = Some(c);
                Some(c)
            }
            _ => None,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct Watcher {
    api: Arc<FullscriptClient>,
    store: Arc<Store>,
    notifier: Arc<dyn Notifier>,
    guard: UrlGuard,
    endpoints: Endpoints,
    handle: WatcherHandle,
    clock: Clock,
    tracked: HashMap<String, Tracked>,
    unreadable: HashSet<String>,
    /// Unknown states already logged (once each per run).
    unknown_states_logged: HashSet<String>,
    /// A page larger than asked for was said once.
    oversized_page_logged: bool,
    cycle_no: u64,
    need_sweep: bool,
    /// After a 429 the full sweep waits until this cycle (see `cycle`).
    sweep_not_before: u64,
    events_query: EventsQuery,
    backoff: Backoff,
    /// With a relay pushing results: how often the order list is read.
    relay_sweep: Option<Duration>,
    last_sweep: Option<tokio::time::Instant>,
    last_full_sweep: Option<tokio::time::Instant>,
    /// When the sorted read of the order list last turned out unusable.
    unsorted_at: Option<tokio::time::Instant>,
}

impl Watcher {
    pub fn new(
        api: Arc<FullscriptClient>,
        store: Arc<Store>,
        notifier: Arc<dyn Notifier>,
        config: &Config,
    ) -> Result<Watcher, StoreError> {
        let mut settings = WatchSettings::from_config(config);
        settings.paused_until = AppState::of(&store).paused_until()?;
        let handle = WatcherHandle::new(store.clone(), settings);
        Watcher::with_handle(api, store, notifier, config, handle)
    }

    /// A watcher taking over an existing handle (a restart after a crash
    /// keeps the window's and the tray's view of it).
    pub fn with_handle(
        api: Arc<FullscriptClient>,
        store: Arc<Store>,
        notifier: Arc<dyn Notifier>,
        config: &Config,
        handle: WatcherHandle,
    ) -> Result<Watcher, StoreError> {
        let tracked = store.load_tracked()?;
        let unreadable = store.unreadable_orders()?.into_keys().collect();
        Ok(Watcher {
            api,
            store,
            notifier,
            guard: UrlGuard::new(config),
            endpoints: config.endpoints.clone(),
            handle,
            clock: Clock::system(),
            tracked,
            unreadable,
            unknown_states_logged: HashSet::new(),
            oversized_page_logged: false,
            cycle_no: 0,
            need_sweep: true,
            sweep_not_before: 0,
            events_query: EventsQuery::Full,
            backoff: Backoff::new(Duration::from_secs(5), Duration::from_secs(300)),
            relay_sweep: config
                .relay
                .as_ref()
                .filter(|r| r.push)
                .map(|r| r.sweep_interval),
            last_sweep: None,
            last_full_sweep: None,
            unsorted_at: None,
        })
    }

    /// Read this computer's time from `clock` (tests skew it).
    pub fn with_clock(mut self, clock: Clock) -> Watcher {
        self.clock = clock;
        self
    }

    pub fn handle(&self) -> WatcherHandle {
        self.handle.clone()
    }

    pub fn tracked_len(&self) -> usize {
        self.tracked.len()
    }

    fn settings(&self) -> WatchSettings {
        self.handle.settings()
    }

    fn set_status(&self, f: impl FnOnce(&mut WatchStatus)) {
        self.handle.set_status(f)
    }

    fn baseline(&self) -> Result<Baseline, StoreError> {
        if self.store.baseline_at()?.is_some() {
            return Ok(Baseline::Off);
        }
        Ok(match self.store.rebuilt()? {
            Some(r) => Baseline::Rebuilt {
                since: r
                    .last_written
                    .as_deref()
                    .and_then(crate::timestamp::parse_str),
            },
            None => Baseline::Silent,
        })
    }

    /// One poll cycle: gather, detect, commit, deliver. Only the gathering
    /// can be interrupted by `stop`. A database found damaged on the way is
    /// rebuilt (as at open: kept aside, said in the status) and the cycle
    /// runs again on the fresh one, which lists what it finds without
    /// announcing it one by one.
    pub async fn run_cycle_until(
        &mut self,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<CycleReport, CycleError> {
        match self.run_cycle_once(stop).await {
            Err(CycleError::Store(e)) if self.store.recover_from(&e)? => {
                self.tracked = self.store.load_tracked()?;
                self.unreadable.clear();
                self.need_sweep = true;
                self.run_cycle_once(stop).await
            }
            other => other,
        }
    }

    async fn run_cycle_once(
        &mut self,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<CycleReport, CycleError> {
        self.follow_other_processes().await?;
        let now = self.clock.now();
        let settings = self.settings();
        let baseline = self.baseline()?;
        let requested = self
            .handle
            .shared
            .sweep_requested
            .swap(false, Ordering::Relaxed);
        let live = self.push_live();
        let plan = if live {
            self.push_plan(baseline, requested)
        } else {
            let feed_refused = self.handle.status().events_feed == EventsFeed::Refused;
            let deferred = self.cycle_no < self.sweep_not_before;
            let scheduled = settings.sweep_every > 0
                && self
                    .cycle_no
                    .is_multiple_of(u64::from(settings.sweep_every));
            let sweep = baseline != Baseline::Off
                || requested
                || feed_refused
                || (!deferred && (self.need_sweep || scheduled));
            if sweep {
                SweepPlan::Full
            } else {
                SweepPlan::None
            }
        };
        self.cycle_no = self.cycle_no.saturating_add(1);
        self.set_status(|s| s.connection = Connection::Checking);
        let sent_before = self.api.budget().sent();
        let pushed = self.unseen_pushed()?;

        let mut got = Gathered::default();
        let outcome = tokio::select! {
            r = self.gather(&mut got, plan, live, &pushed) => r,
            _ = stopped(stop) => return Err(CycleError::Stopped),
        };

        for o in &got.orders {
            if let crate::lab::LabState::Other(state) = &o.state {
                // (Bounded: a feed inventing a state per order is logged a few times only.)
                if self.unknown_states_logged.len() < MAX_UNKNOWN_STATES_LOGGED
                    && self.unknown_states_logged.insert(state.clone())
                {
                    tracing::warn!(
                        state = %state,
                        "a lab order is in a state this version does not know; it is listed but never alerts"
                    );
                }
            }
        }
        let rules = AlertRules {
            notify: settings.notify_states,
        };
        let detection = detect::detect(
            &self.tracked,
            &got.orders,
            &got.new_events,
            baseline,
            &rules,
        );
        let (missing, mut removals) = if outcome.is_ok() && got.sweep_complete {
            self.absences(&got)
        } else {
            (Vec::new(), Vec::new())
        };
        removals.extend(got.gone.iter().cloned());
        let readable_again: Vec<String> = got
            .orders
            .iter()
            .filter(|o| self.unreadable.contains(&o.id))
            .map(|o| o.id.clone())
            .collect();
        let commit = CycleCommit {
            upserts: detection.upserts,
            missing,
            removals,
            unreadable: std::mem::take(&mut got.unreadable),
            readable_again,
            alerts: detection.alerts,
            seen_events: std::mem::take(&mut got.processed_events),
            cursor: got.cursor.take().map(ts),
            baseline_done: baseline != Baseline::Off && outcome.is_ok() && got.sweep_complete,
            grant_id: self.api.session().grant_id(),
        };
        let new_alert_ids = match self.store.commit_cycle(&commit, now) {
            Err(StoreError::GrantChanged | StoreError::SignedOut) => {
                return Err(CycleError::SignInChanged)
            }
            other => other?,
        };
        self.remember(&commit);
        self.confirm_pushed(&pushed, &commit);
        if !commit.upserts.is_empty()
            || !commit.removals.is_empty()
            || !commit.unreadable.is_empty()
            || !commit.readable_again.is_empty()
            || !new_alert_ids.is_empty()
        {
            self.handle.emit(WatchEvent::OrdersChanged);
        }
        if commit.baseline_done {
            tracing::info!(
                orders = self.tracked.len(),
                "first look at this clinic: recorded the current lab orders silently"
            );
        }
        let skipped = self.unreadable.len() + got.skipped_without_id;
        if !commit.unreadable.is_empty() || got.skipped_without_id > 0 {
            tracing::warn!(
                orders = commit.unreadable.len(),
                other_records = got.skipped_without_id,
                "some records from Fullscript could not be read; they are kept as they were and counted"
            );
        }
        self.set_status(|s| s.skipped_records = skipped);
        // Pruning cannot be undone: only by a time several answers agree on.
        if self.api.server_time_confirmed() {
            let horizon = chrono::Duration::days(EVENT_WINDOW_DAYS + 3);
            if let Some(cutoff) = self.api.server_now().checked_sub_signed(horizon) {
                let _ = self.store.prune_events(cutoff);
            }
        }
        // Delivery never waits on the network: whatever is queued is shown
        // now, whether or not the reading went well.
        let delivered = self.deliver().await?;
        outcome?;
        if got.sweep_complete || got.incremental_done {
            self.need_sweep = false;
        }
        if got.sweep_complete || got.incremental_done {
            // Fullscript's own times only: no clock of this computer's, no
            // `Date` header; and only the first page's (what a push fetched
            // later, or a later page, may be newer than the read's start).
            if let Some(newest) = got.first_page_newest {
                if let Err(e) = AppState::of(&self.store).set_sweep_mark(Some(newest)) {
                    tracing::warn!(error = %e, "could not note how far the list was read");
                }
            }
        }
        if got.swept {
            let now = tokio::time::Instant::now();
            self.last_sweep = Some(now);
            if got.sweep_complete {
                self.last_full_sweep = Some(now);
            }
        }
        Ok(CycleReport {
            swept: got.swept,
            requests: self.api.budget().sent().saturating_sub(sent_before),
            orders_fetched: got.orders.len(),
            orders_changed: commit.upserts.len(),
            new_alerts: new_alert_ids.len(),
            delivered,
            skipped_records: skipped,
        })
    }

    /// The window, `login` and `logout` may run in other processes on the
    /// same data directory. Their sign-out is followed here; their new
    /// sign-in too (its tokens, and the list it started afresh), so two
    /// grants never mix orders in one list or overwrite each other's tokens.
    async fn follow_other_processes(&mut self) -> Result<(), CycleError> {
        let session = self.api.session().clone();
        if session.is_signed_in() {
            if let Some(cause) = AppState::of(&self.store).signed_out_reason()? {
                tracing::info!("signed out in another window or command; following");
                let text = cause.describe();
                session.adopt_sign_out(cause);
                return Err(ApiError::SignedOut(text).into());
            }
        }
        let theirs = AppState::of(&self.store)
            .account()?
            .and_then(|a| a.grant_id);
        if theirs.is_some() && theirs != session.grant_id() {
            tracing::info!("signed in anew in another window or command; following");
            session.load().await.map_err(ApiError::from)?;
            self.tracked = self.store.load_tracked()?;
            self.unreadable = self.store.unreadable_orders()?.into_keys().collect();
            self.need_sweep = true;
        }
        Ok(())
    }

    /// [`Watcher::run_cycle_until`] without a way to stop it.
    pub async fn run_cycle(&mut self) -> Result<CycleReport, CycleError> {
        let (_keep, mut never) = watch::channel(false);
        self.run_cycle_until(&mut never).await
    }

    /// Apply a committed cycle to what is kept in memory.
    fn remember(&mut self, commit: &CycleCommit) {
        for r in &commit.upserts {
            self.tracked.insert(r.id.clone(), r.tracked());
        }
        for id in &commit.missing {
            if let Some(t) = self.tracked.get_mut(id) {
                t.missing_sweeps = t.missing_sweeps.saturating_add(1);
            }
        }
        for id in &commit.removals {
            if let Some(t) = self.tracked.get_mut(id) {
                t.removed = true;
            }
        }
        for (id, _) in &commit.unreadable {
            self.unreadable.insert(id.clone());
        }
        for id in &commit.readable_again {
            self.unreadable.remove(id);
        }
    }

    /// After a complete sweep: which tracked orders were not listed (one
    /// more missed sweep), and which of them are now gone for good. A list
    /// that is empty or shrank by more than half removes nothing.
    fn absences(&self, got: &Gathered) -> (Vec<String>, Vec<String>) {
        let present: Vec<(&String, &Tracked)> =
            self.tracked.iter().filter(|(_, t)| !t.removed).collect();
        let unlisted: Vec<(&String, &Tracked)> = present
            .iter()
            .filter(|(id, _)| !got.listed.contains(id.as_str()))
            .copied()
            .collect();
        if unlisted.is_empty() {
            return (Vec::new(), Vec::new());
        }
        let listed = got.listed.len();
        let suspect = listed == 0
            || (present.len() > SUSPECT_SHRINK_MIN_TRACKED && listed * 2 < present.len());
        if suspect {
            tracing::warn!(
                listed,
                tracked = present.len(),
                "the order list came back empty or much shorter than before; treating it as suspect and removing nothing"
            );
            return (Vec::new(), Vec::new());
        }
        let mut missing = Vec::new();
        let mut removals = Vec::new();
        for (id, t) in unlisted {
            if t.missing_sweeps.saturating_add(1) >= MISSING_SWEEPS_BEFORE_REMOVAL {
                removals.push(id.clone());
            } else {
                missing.push(id.clone());
            }
        }
        (missing, removals)
    }

    async fn gather(
        &mut self,
        got: &mut Gathered,
        plan: SweepPlan,
        live: bool,
        pushed: &[Pushed],
    ) -> Result<(), CycleError> {
        // Events first: in a sweep they only tell which orders have new
        // events (for amendments seen only through an event). While the
        // relay pushes them, the events feed is not read at all.
        let mut events = Vec::new();
        let mut fallback = false;
        if !live {
            match self.read_events(got, &mut events, self.events_query).await {
                Ok(()) => self.feed_state(EventsFeed::Available, None),
                Err(CycleError::Api(e)) => match self.feed_failure(got, &mut events, e).await? {
                    true => {}
                    false => fallback = true,
                },
                Err(other) => return Err(other),
            }
        }
        for p in pushed {
            if !events.iter().any(|e: &LabEvent| e.id == p.event.id) {
                events.push(p.event.clone());
            }
        }
        for e in &events {
            let at = e.created_at.filter(|t| self.api.plausible_time(*t));
            let newer = got
                .new_events
                .get(&e.order_id)
                .is_none_or(|known| known.at.is_some() && (at.is_none() || at > known.at));
            if newer {
                got.new_events.insert(
                    e.order_id.clone(),
                    detect::NewEvent {
                        id: e.id.clone(),
                        at,
                    },
                );
            }
        }

        let plan = if fallback { SweepPlan::Full } else { plan };
        let plan = match plan {
            SweepPlan::Incremental => match self.sweep_incremental(got).await? {
                Sorted::Yes => SweepPlan::Incremental,
                Sorted::No(why) => self.unsorted(got, why),
            },
            other => other,
        };
        if plan == SweepPlan::Full {
            self.sweep(got).await?;
            if got.sweep_complete {
                for e in &events {
                    got.processed_events
                        .push((e.id.clone(), self.event_time(e)));
                }
            }
            return Ok(());
        }

        // Cheap path: fetch just the orders that have new events (and that
        // an incremental sweep did not just read), oldest event first.
        let mut fetched: HashSet<String> = got.orders.iter().map(|o| o.id.clone()).collect();
        for e in &events {
            if got.incremental_done && fetched.contains(&e.order_id) {
                got.processed_events
                    .push((e.id.clone(), self.event_time(e)));
                continue;
            }
            if fetched.insert(e.order_id.clone()) {
                match self.api.order(&e.order_id).await {
                    Ok(order) => got.orders.push(order),
                    Err(ApiError::BadRecord(b)) => {
                        tracing::warn!(order_id = %b.id, problem = %b.problem, "an order named by an event could not be read");
                        got.unreadable.push((e.order_id.clone(), b.problem.clone()));
                        // Not processed: it is asked for again at the next check.
                        fetched.remove(&e.order_id);
                        continue;
                    }
                    Err(ApiError::Refused { status: 404, .. }) => {
                        // The order is gone; the event is processed.
                        if self.tracked.contains_key(&e.order_id) {
                            got.gone.push(e.order_id.clone());
                        }
                    }
                    Err(err) => {
                        fetched.remove(&e.order_id);
                        return Err(err.into());
                    }
                }
            }
            got.processed_events
                .push((e.id.clone(), self.event_time(e)));
        }
        Ok(())
    }

    fn feed_state(&self, feed: EventsFeed, error: Option<String>) {
        self.set_status(|s| s.set_events_feed(feed, error));
    }

    /// The events feed failed. 401 and 429 end the cycle as they would
    /// anywhere; anything else means "unavailable this cycle": read the
    /// order list instead. A 400/422 may be the guessed query parameters:
    /// ask once more without them. Answers whether events were read after all.
    async fn feed_failure(
        &mut self,
        got: &mut Gathered,
        events: &mut Vec<LabEvent>,
        e: ApiError,
    ) -> Result<bool, CycleError> {
        match e {
            ApiError::SignedOut(_)
            | ApiError::RateLimited { .. }
            | ApiError::RefusedAfterRefresh
            | ApiError::Auth(_) => Err(e.into()),
            ApiError::Refused { status, .. } if status == 403 || status == 404 => {
                if self.handle.status().events_feed != EventsFeed::Refused {
                    tracing::warn!(
                        status,
                        "the lab order events feed is refused; every check will read all orders"
                    );
                }
                self.feed_state(EventsFeed::Refused, Some(e.to_string()));
                Ok(false)
            }
            ApiError::Refused { status, .. }
                if (status == 400 || status == 422) && self.events_query == EventsQuery::Full =>
            {
                tracing::warn!(
                    status,
                    "the events feed refused its query; asking again without the optional parameters"
                );
                events.clear();
                got.cursor = None;
                match self.read_events(got, events, EventsQuery::Minimal).await {
                    Ok(()) => {
                        self.events_query = EventsQuery::Minimal;
                        self.feed_state(EventsFeed::Available, None);
                        Ok(true)
                    }
                    Err(CycleError::Api(again)) => {
                        events.clear();
                        got.cursor = None;
                        self.feed_unavailable(again);
                        Ok(false)
                    }
                    Err(other) => Err(other),
                }
            }
            other => {
                self.feed_unavailable(other);
                Ok(false)
            }
        }
    }

    fn feed_unavailable(&self, e: ApiError) {
        tracing::warn!(error = %e, "the lab order events feed is unavailable; reading every order this check");
        self.feed_state(EventsFeed::Unavailable, Some(e.to_string()));
    }

    /// When to record an event as processed: its own time, else Fullscript's now.
    fn event_time(&self, e: &LabEvent) -> String {
        ts(e.created_at.unwrap_or_else(|| self.api.server_now()))
    }

    /// Where to start reading events: two days before the cursor, within
    /// the 30-day window, by Fullscript's clock. A cursor ahead of that
    /// clock (written once by a wrong computer clock) is not trusted.
    fn events_from(&mut self, cursor: Option<DateTime<Utc>>) -> chrono::NaiveDate {
        let server_now = self.api.server_now();
        let oldest = server_now
            .checked_sub_signed(chrono::Duration::days(EVENT_WINDOW_DAYS))
            .unwrap_or(server_now);
        let lookback = chrono::Duration::days(EVENT_LOOKBACK_DAYS);
        let from = match cursor {
            Some(c) if c > server_now + MAX_CURSOR_AHEAD => {
                tracing::warn!("the stored event cursor is ahead of Fullscript's clock; reading the last days again and every order");
                self.need_sweep = true;
                server_now.checked_sub_signed(lookback)
            }
            Some(c) => c.checked_sub_signed(lookback),
            None => server_now.checked_sub_signed(lookback),
        }
        .unwrap_or(oldest);
        if from < oldest {
            // Out of the 30-day window: events may have been missed.
            self.need_sweep = true;
            return oldest.date_naive();
        }
        from.date_naive()
    }

    /// Read every page of events since the cursor; collect the new ones and
    /// move the cursor up to the newest event before the first one not yet
    /// processed (server times only).
    async fn read_events(
        &mut self,
        got: &mut Gathered,
        new_events: &mut Vec<LabEvent>,
        query: EventsQuery,
    ) -> Result<(), CycleError> {
        let cursor = self.store.event_cursor()?;
        let knew_server_time = self.api.knows_server_time();
        let mut from_day = self.events_from(cursor);
        let mut all: Vec<(LabEvent, bool)> = Vec::new();
        let mut listed_ids: HashSet<String> = HashSet::new();
        let mut skipped = 0;
        let mut page = 1;
        loop {
            let p = self.api.events_page(from_day, page, query).await?;
            if page == 1 && !knew_server_time && self.api.knows_server_time() {
                // The first answer of this run told us Fullscript's time;
                // if it moves the window, ask again from the right day.
                let corrected = self.events_from(cursor);
                if corrected != from_day {
                    from_day = corrected;
                    continue;
                }
            }
            let ids: Vec<&str> = p
                .events
                .iter()
                .map(|e| e.as_ref().map(|e| e.id.as_str()).unwrap_or(""))
                .collect();
            let unseen = self.store.unseen_events(&ids)?;
            for (event, is_new) in p.events.into_iter().zip(unseen) {
                match event {
                    Err(problem) => {
                        tracing::warn!(
                            problem,
                            "an event could not be read; every order will be read to cover it"
                        );
                        skipped += 1;
                    }
                    Ok(e) => {
                        // (A set, not a scan: a page of 500,000 events stays linear.)
                        if listed_ids.insert(e.id.clone()) {
                            all.push((e, is_new));
                        }
                    }
                }
            }
            match p.meta.next_page {
                Some(n) if n > page && n <= MAX_PAGES => page = n,
                _ => break,
            }
        }
        if skipped > 0 {
            got.skipped_without_id += skipped;
            self.need_sweep = true;
        }
        // An event time more than a day past Fullscript's own now (a wrong
        // clock, epoch nanoseconds read as seconds) moves nothing.
        let time_of = |e: &LabEvent| e.created_at.filter(|t| self.api.plausible_time(*t));
        // The cursor may pass processed events only up to the oldest one not
        // yet processed (whatever order the feed answered in).
        let blocked_at = all
            .iter()
            .filter(|(_, new)| *new)
            .map(|(e, _)| time_of(e))
            .min();
        let newest_done = all
            .iter()
            .filter(|(_, new)| !*new)
            .filter_map(|(e, _)| time_of(e))
            .filter(|t| match blocked_at {
                Some(Some(b)) => *t < b,
                // A new event without a time blocks nothing it can be placed after.
                Some(None) | None => true,
            })
            .max();
        got.cursor = match (newest_done, cursor) {
            (Some(t), Some(c)) if c <= self.api.server_now() + MAX_CURSOR_AHEAD => Some(t.max(c)),
            (Some(t), _) => Some(t),
            // No events in the window at all: Fullscript's now.
            (None, None) if all.is_empty() && self.api.knows_server_time() => {
                Some(self.api.server_now())
            }
            (None, Some(c)) if c > self.api.server_now() + MAX_CURSOR_AHEAD => {
                // The untrusted cursor is replaced by server time.
                Some(self.api.server_now())
            }
            _ => None,
        };
        // Never past Fullscript's own clock.
        if self.api.knows_server_time() {
            let server_now = self.api.server_now();
            got.cursor = got.cursor.map(|c| c.min(server_now));
        }
        new_events.extend(all.into_iter().filter(|(_, new)| *new).map(|(e, _)| e));
        Ok(())
    }

    /// Read every page of the order list (plus details where a list item lacks results).
    async fn sweep(&mut self, got: &mut Gathered) -> Result<(), CycleError> {
        got.swept = true;
        // Whatever an incremental read found first is read again here.
        got.orders.clear();
        got.listed.clear();
        got.unreadable.clear();
        got.incremental_done = false;
        got.first_page_newest = None;
        let mut page = 1;
        let bytes_before = self.api.bytes_read();
        loop {
            let p = self.api.orders_page(page).await?;
            let Some(next) = self.take_page(got, p, page, bytes_before)? else {
                break;
            };
            page = next;
        }
        self.read_details(got).await?;
        // Complete means every page was read; unreadable records are kept
        // and counted, they do not make the sweep incomplete.
        got.sweep_complete = true;
        self.set_status(|s| {
            if s.push.is_some() {
                s.sweep = Some(SweepMode::Full);
            }
        });
        if got.cursor.is_none() && self.api.knows_server_time() {
            // Everything up to Fullscript's now is known.
            got.cursor = Some(self.api.server_now());
        }
        Ok(())
    }

    /// While results are pushed: read the order list newest change first
    /// (for orders the webhooks do not announce: purchased, processing, …)
    /// and stop at the page that reaches what the previous read already
    /// saw: an unchanged order updated before the newest update on that
    /// read's first page. Everything after it in the list is older still, and every
    /// change since that read is newer, so it was read as it is now.
    /// (Without such a mark yet: the first page where nothing changed.)
    /// Answers whether the list really came sorted; when it did not, what
    /// was read is kept (it is all real) and the caller decides about a
    /// full read.
    async fn sweep_incremental(&mut self, got: &mut Gathered) -> Result<Sorted, CycleError> {
        got.swept = true;
        let mark = AppState::of(&self.store).sweep_mark()?;
        let mut page = 1;
        let bytes_before = self.api.bytes_read();
        let mut previous: Option<DateTime<Utc>> = None;
        loop {
            let p = match self
                .api
                .orders_page_in(page, OrderSort::NewestUpdateFirst)
                .await
            {
                Ok(p) => p,
                Err(ApiError::Refused { status, .. }) if status == 400 || status == 422 => {
                    return Ok(Sorted::No(format!(
                        "Fullscript refused the sorted order list (HTTP {status})"
                    )));
                }
                Err(e) => return Err(e.into()),
            };
            let mut times = Vec::with_capacity(p.orders.len());
            for o in &p.orders {
                match o
                    .updated_at
                    .as_deref()
                    .and_then(crate::timestamp::parse_str)
                {
                    Some(t) => times.push(t),
                    None => {
                        return Ok(Sorted::No(
                            "Fullscript's order list gives no update time to sort by".into(),
                        ))
                    }
                }
            }
            // A list sorted newest first starts at least as late as the
            // newest update already recorded (unless that order is gone:
            // then a full read is all it costs).
            let starts_late_enough = page > 1
                || times
                    .first()
                    .is_none_or(|top| self.newest_known_update().is_none_or(|known| *top >= known));
            let sorted = starts_late_enough
                && previous
                    .into_iter()
                    .chain(times.iter().copied())
                    .collect::<Vec<_>>()
                    .windows(2)
                    .all(|w| w[0] >= w[1]);
            if !sorted {
                return Ok(Sorted::No(
                    "Fullscript's order list did not come sorted by update time".into(),
                ));
            }
            previous = times.last().copied().or(previous);
            let unchanged = |o: &LabOrder| {
                self.tracked.get(&o.id).is_some_and(|t| {
                    !t.removed && t.state == o.state && t.updated_at == o.updated_at
                })
            };
            let all_unchanged = p.bad.is_empty() && p.orders.iter().all(unchanged);
            let reached_known = match mark {
                // An unchanged order clearly older than the last read's
                // newest update; or a page where nothing changed and nothing
                // is newer than that update (many orders updated at once).
                Some(newest) => {
                    let before = newest
                        .checked_sub_signed(SWEEP_MARK_MARGIN)
                        .unwrap_or(newest);
                    p.orders
                        .iter()
                        .zip(&times)
                        .any(|(o, t)| *t < before && unchanged(o))
                        || (all_unchanged
                            && !times.is_empty()
                            && times.iter().all(|t| *t <= newest))
                }
                None => all_unchanged,
            };
            let next = self.take_page(got, p, page, bytes_before)?;
            match next {
                Some(n) if !reached_known => page = n,
                _ => break,
            }
        }
        self.read_details(got).await?;
        got.incremental_done = true;
        self.set_status(|s| {
            s.sweep = Some(SweepMode::Incremental);
            s.sweep_note = None;
        });
        Ok(Sorted::Yes)
    }

    /// The latest `updated_at` of any order on the list.
    fn newest_known_update(&self) -> Option<DateTime<Utc>> {
        self.tracked
            .values()
            .filter(|t| !t.removed)
            .filter_map(|t| {
                t.updated_at
                    .as_deref()
                    .and_then(crate::timestamp::parse_str)
            })
            .max()
    }

    /// The sorted read cannot be relied on: a full read now if none ran
    /// for a while (at most four a day), else the pushed events only; the
    /// status says which.
    fn unsorted(&mut self, got: &mut Gathered, why: String) -> SweepPlan {
        let first = self.unsorted_at.is_none();
        if first {
            tracing::warn!(reason = %why, "the incremental read of the order list is not possible; reading it whole a few times a day");
        }
        self.unsorted_at = Some(tokio::time::Instant::now());
        got.incremental_done = false;
        // Found out now: this read is done whole (what the sorted one was
        // for must not wait six hours); then at most every six hours.
        let full_allowed = first
            || self
                .last_full_sweep
                .is_none_or(|t| t.elapsed() >= MIN_FULL_SWEEP_GAP);
        let note = format!(
            "{why}; the whole list is read at most every {} hours",
            MIN_FULL_SWEEP_GAP.as_secs() / 3600
        );
        self.set_status(|s| {
            s.sweep = Some(SweepMode::Full);
            s.sweep_note = Some(note);
        });
        if full_allowed {
            SweepPlan::Full
        } else {
            // What it read stays (it is real) but proves nothing about the rest.
            got.orders.clear();
            got.listed.clear();
            got.unreadable.clear();
            SweepPlan::None
        }
    }

    /// What a cycle does to the order list while results are pushed.
    fn push_plan(&self, baseline: Baseline, requested: bool) -> SweepPlan {
        if baseline != Baseline::Off {
            return SweepPlan::Full;
        }
        let interval = self.relay_sweep.unwrap_or(Duration::from_secs(3600));
        let due =
            self.need_sweep || requested || self.last_sweep.is_none_or(|t| t.elapsed() >= interval);
        if !due {
            return SweepPlan::None;
        }
        match self.unsorted_at {
            Some(t) if t.elapsed() < RETRY_SORTED_AFTER => {
                if self
                    .last_full_sweep
                    .is_none_or(|t| t.elapsed() >= MIN_FULL_SWEEP_GAP)
                {
                    SweepPlan::Full
                } else {
                    SweepPlan::None
                }
            }
            _ => SweepPlan::Incremental,
        }
    }

    /// The relay is pushing results now.
    fn push_live(&self) -> bool {
        self.relay_sweep.is_some()
            && self
                .handle
                .status()
                .push
                .as_ref()
                .is_some_and(PushState::is_live)
    }

    /// Pushed events not handled yet (one the store knows is dropped from
    /// the queue here: the events feed or an earlier push handled it).
    fn unseen_pushed(&self) -> Result<Vec<Pushed>, StoreError> {
        let pending = self.handle.pending_pushed();
        if pending.is_empty() {
            return Ok(pending);
        }
        let ids: Vec<&str> = pending.iter().map(|p| p.event.id.as_str()).collect();
        let unseen = self.store.unseen_events(&ids)?;
        let seen: HashSet<&str> = ids
            .iter()
            .zip(&unseen)
            .filter(|(_, new)| !**new)
            .map(|(id, _)| *id)
            .collect();
        if !seen.is_empty() {
            self.persist_push_resume(self.handle.confirm_pushed(&seen));
        }
        Ok(pending
            .iter()
            .zip(unseen)
            .filter(|(_, new)| *new)
            .map(|(p, _)| p.clone())
            .collect())
    }

    /// After a commit: the pushed events it recorded leave the queue, and
    /// the push resumes after them.
    fn confirm_pushed(&self, pushed: &[Pushed], commit: &CycleCommit) {
        if pushed.is_empty() {
            return;
        }
        let done: HashSet<&str> = commit
            .seen_events
            .iter()
            .map(|(id, _)| id.as_str())
            .collect();
        self.persist_push_resume(self.handle.confirm_pushed(&done));
    }

    fn persist_push_resume(&self, resume: Option<u64>) {
        if let Some(seq) = resume {
            if let Err(e) = AppState::of(&self.store).set_push_last_event_id(seq) {
                // Harmless: the push resumes a little earlier, and what it
                // repeats is recognised by its event id.
                tracing::warn!(error = %e, "could not note where the push resumes");
            }
        }
    }

    /// One page of the order list into what the cycle gathered: the
    /// ceilings checked, unreadable records kept and counted. Answers the
    /// next page to read, if any.
    fn take_page(
        &mut self,
        got: &mut Gathered,
        p: OrderPage,
        page: u32,
        bytes_before: u64,
    ) -> Result<Option<u32>, CycleError> {
        let items = p.orders.len().saturating_add(p.bad.len());
        let asked = crate::api::PAGE_SIZE as usize;
        if items > asked && !self.oversized_page_logged {
            // Read all the same (refusing it would silence the clinic);
            // the sweep's ceilings bound what it can cost.
            tracing::warn!(
                items,
                asked,
                "Fullscript answered a page larger than the app asked for"
            );
            self.oversized_page_logged = true;
        }
        if got.orders.len().saturating_add(items) > MAX_SWEEP_ORDERS
            || self.api.bytes_read().saturating_sub(bytes_before) > MAX_SWEEP_BYTES
        {
            return Err(ApiError::Malformed {
                what: format!(
                    "the lab order list ran past {MAX_SWEEP_ORDERS} orders or {} MB in one check; stopped reading",
                    MAX_SWEEP_BYTES / (1024 * 1024)
                ),
                request_id: None,
            }
            .into());
        }
        for b in &p.bad {
            tracing::warn!(order_id = %b.id, problem = %b.problem, "a lab order could not be read; it is kept as it was");
            if b.id_known {
                got.listed.insert(b.id.clone());
                got.unreadable.push((b.id.clone(), b.problem.clone()));
            } else {
                got.skipped_without_id += 1;
            }
        }
        if page == 1 {
            got.first_page_newest = p
                .orders
                .iter()
                .filter_map(|o| {
                    o.updated_at
                        .as_deref()
                        .and_then(crate::timestamp::parse_str)
                })
                .max();
        }
        let empty = p.orders.is_empty() && p.bad.is_empty();
        got.listed.extend(p.orders.iter().map(|o| o.id.clone()));
        got.orders.extend(p.orders);
        Ok(match (p.meta.next_page, p.meta.total_pages) {
            (Some(n), _) if n > page && n <= MAX_PAGES && !empty => Some(n),
            (None, Some(total)) if page < total && page < MAX_PAGES && !empty => Some(page + 1),
            _ => None,
        })
    }

    /// List items that entered a result state but carry no results: read
    /// the order itself.
    async fn read_details(&mut self, got: &mut Gathered) -> Result<(), CycleError> {
        let needing: Vec<usize> = got
            .orders
            .iter()
            .enumerate()
            .filter(|(_, o)| detect::needs_detail(&self.tracked, o))
            .map(|(i, _)| i)
            .collect();
        let mut unreadable_details = HashSet::new();
        for i in needing {
            let id = got.orders[i].id.clone();
            match self.api.order(&id).await {
                Ok(full) => got.orders[i] = full,
                Err(ApiError::BadRecord(b)) => {
                    tracing::warn!(order_id = %b.id, "a lab order's detail could not be read; it is kept as it was");
                    got.unreadable.push((id.clone(), b.problem));
                    unreadable_details.insert(id);
                }
                Err(e) => return Err(e.into()),
            }
        }
        if !unreadable_details.is_empty() {
            got.orders.retain(|o| !unreadable_details.contains(&o.id));
        }
        Ok(())
    }

    /// Show what is in the outbox; mark each delivered after it was shown.
    /// While paused or outside clinic hours nothing is shown: the alerts are
    /// held, and announced together as one digest when that ends.
    pub async fn deliver(&mut self) -> Result<usize, StoreError> {
        let pending = self.store.outbox()?;
        let s = self.settings();
        let now = self.clock.now();
        let quiet = schedule::quiet(now, &chrono::Local, s.paused_until, s.clinic_hours.as_ref());
        self.set_status(|st| st.quiet = quiet);
        if quiet.is_none() {
            // A pause ended (or was resumed): what arrived during it is
            // offered as "N results since …" too.
            if let Some(at) = AppState::of(&self.store).paused_at()? {
                AppState::of(&self.store).set_catch_up_since(Some(at))?;
                AppState::of(&self.store).set_paused_at(None)?;
            }
        }
        if pending.is_empty() {
            self.set_status(|st| st.held_alerts = 0);
            return Ok(0);
        }
        if let Some(q) = quiet {
            let ids: Vec<i64> = pending.iter().map(|a| a.id).collect();
            let newly = self.store.hold_alerts(&ids, now)?;
            if newly > 0 {
                tracing::info!(
                    alerts = newly,
                    reason = q.label(),
                    "alerts held for a digest"
                );
            }
            self.set_status(|st| st.held_alerts = pending.len());
            return Ok(0);
        }
        #[cfg(debug_assertions)]
        hold_before_delivery_for_tests().await;
        let policy = Policy {
            detail: s.notification_detail,
            summary_threshold: s.summary_threshold,
            sound: s.sound,
        };
        let (held, fresh): (Vec<_>, Vec<_>) = pending.into_iter().partition(|a| a.held);
        let mut notes: Vec<Notification> =
            policy::digest(&held, &policy, &self.guard, &self.endpoints)
                .into_iter()
                .collect();
        notes.extend(policy::compose(
            &fresh,
            &policy,
            &self.guard,
            &self.endpoints,
        ));
        let mut held_left = held.len();
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
                    if matches!(n.kind, NotificationKind::Digest { .. }) {
                        held_left = 0;
                    }
                    tracing::info!(
                        kind = n.kind.label(),
                        alerts = n.alert_ids.len(),
                        "notification shown"
                    );
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
        self.set_status(|st| st.held_alerts = held_left);
        if !shown.is_empty() {
            self.handle.emit(WatchEvent::Delivered(shown));
        }
        Ok(delivered)
    }

    /// One cycle with its outcome recorded in the status (what `watch --once`
    /// and the schedule both use); answers the cycle's result and how long to
    /// wait before the next one.
    pub async fn cycle(&mut self) -> (Result<CycleReport, CycleError>, Duration) {
        let (_keep, mut never) = watch::channel(false);
        self.cycle_until(&mut never).await
    }

    async fn cycle_until(
        &mut self,
        stop: &mut watch::Receiver<bool>,
    ) -> (Result<CycleReport, CycleError>, Duration) {
        let settings = self.settings();
        let result = self.run_cycle_until(stop).await;
        let interval = self.next_interval(&settings);
        let now = Utc::now();
        let delay = match &result {
            Ok(report) => {
                self.backoff.reset();
                self.set_status(|s| {
                    s.connection = Connection::Ok;
                    s.last_poll_at = Some(ts(now));
                    s.last_error = None;
                    s.retrying_since = None;
                    s.cycles = s.cycles.saturating_add(1);
                });
                tracing::debug!(?report, "cycle done");
                interval
            }
            Err(CycleError::Stopped) => Duration::ZERO,
            // Follow the other process's sign-in right away.
            Err(CycleError::SignInChanged) => Duration::from_secs(1),
            Err(CycleError::Api(e)) if e.needs_user() => {
                let needs_config = matches!(e, ApiError::Auth(AuthError::NeedsConfiguration(_)));
                let text = e.to_string();
                self.set_status(|s| {
                    s.connection = if needs_config {
                        Connection::NeedsConfiguration
                    } else {
                        Connection::SignedOut
                    };
                    s.last_error = Some(text);
                });
                // Nothing to do until someone acts (a trigger wakes us).
                Duration::from_secs(3600)
            }
            Err(CycleError::Api(ApiError::RateLimited { retry_after, .. })) => {
                let wait = rate_limit_wait(*retry_after);
                self.set_status(|s| {
                    s.connection = Connection::RateLimited;
                    s.last_error = Some(format!(
                        "Fullscript asked to slow down; next try in {}s",
                        wait.as_secs()
                    ));
                    s.retrying_since.get_or_insert_with(|| ts(now));
                });
                // Every copy of the app shares Fullscript's limit: come back
                // on the cheap events path and put the full sweep off by a
                // few cycles, so they do not all return with a sweep at once.
                let spread = u64::from(settings.sweep_every.max(2));
                self.sweep_not_before = self
                    .cycle_no
                    .saturating_add(rand::random_range(2..=spread.max(2)));
                wait
            }
            Err(e) => {
                let offline = matches!(e, CycleError::Api(a) if a.is_connectivity());
                let wait = self
                    .backoff
                    .next_delay()
                    .min(interval.max(Duration::from_secs(5)).saturating_mul(5));
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

    /// How long until the next planned cycle: the poll interval, or while
    /// results are pushed, what is left until the next read of the list
    /// (pushed events start cycles of their own in between).
    fn next_interval(&self, settings: &WatchSettings) -> Duration {
        let poll = Duration::from_secs(settings.poll_interval_secs.max(1));
        match (self.push_live(), self.relay_sweep) {
            (true, Some(every)) => {
                let since = self.last_sweep.map(|t| t.elapsed()).unwrap_or(every);
                every.saturating_sub(since).max(Duration::from_secs(1))
            }
            _ => poll,
        }
    }

    /// Cycle, then announce when the next one runs.
    async fn cycle_and_schedule(&mut self, stop: &mut watch::Receiver<bool>) -> Duration {
        let (result, delay) = self.cycle_until(stop).await;
        if matches!(result, Err(CycleError::Stopped)) {
            return delay;
        }
        let next = chrono::Duration::from_std(delay)
            .ok()
            .and_then(|d| Utc::now().checked_add_signed(d));
        self.set_status(|s| s.next_poll_at = next.map(ts));
        let (report, error) = match result {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(e.to_string())),
        };
        self.handle.emit(WatchEvent::Cycle {
            report,
            error,
            next_in: delay,
        });
        delay
    }

    /// Poll until `shutdown` turns true. Wakes early for "check now", a
    /// settings change, or when the computer resumes from sleep. What was
    /// queued before (a crash, a missing notification daemon) is shown
    /// first, before any request.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        self.offer_catch_up();
        if let Err(e) = self.deliver().await {
            tracing::error!(error = %e, "could not read the queued alerts");
        }
        if self.relay_sweep.is_some() && matches!(self.store.baseline_at(), Ok(Some(_))) {
            // Give the push a moment: connected, the first check reads only
            // what changed since the last one instead of everything.
            let mut status = self.handle.shared.status.subscribe();
            let _ = tokio::time::timeout(
                PUSH_START_WAIT,
                status.wait_for(|s| matches!(&s.push, Some(p) if *p != PushState::Connecting)),
            )
            .await;
        }
        loop {
            if *shutdown.borrow() {
                break;
            }
            #[cfg(debug_assertions)]
            panic_for_tests(self.cycle_no);
            let delay = self.cycle_and_schedule(&mut shutdown).await;
            if *shutdown.borrow() {
                break;
            }
            let woke = tokio::select! {
                w = self.sleep_detecting_resume(delay) => w,
                _ = self.handle.shared.trigger.notified() => false,
                _ = stopped(&mut shutdown) => break,
            };
            if woke {
                tracing::info!("resumed from sleep; checking every order");
                self.need_sweep = true;
                self.offer_catch_up();
            }
        }
        self.set_status(|s| s.next_poll_at = None);
    }

    /// After a start or a wake from sleep: results found from now on that
    /// arrived since the last completed check are offered together
    /// ("5 results since Fri 5:12 pm").
    fn offer_catch_up(&self) {
        let since = self
            .handle
            .status()
            .last_poll_at
            .as_deref()
            .and_then(crate::timestamp::parse_str);
        if let Some(since) = since {
            if let Err(e) = AppState::of(&self.store).set_catch_up_since(Some(since)) {
                tracing::warn!(error = %e, "could not note the catch-up time");
            }
        }
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
            left = left.saturating_sub(step);
        }
        false
    }
}

/// Resolves once `stop` is (or becomes) true; never if its sender is gone.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        if stop.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// How long to wait after a 429: what Fullscript asked for, kept within
/// [30 s, 15 min] (a `Retry-After` of zero or in the past means the
/// minimum), ±20 % so that many clients do not return together.
pub fn rate_limit_wait(retry_after: Option<Duration>) -> Duration {
    jittered(
        retry_after
            .unwrap_or(DEFAULT_RATE_LIMIT_WAIT)
            .clamp(MIN_RATE_LIMIT_WAIT, MAX_RATE_LIMIT_WAIT),
    )
}

/// Crash-safety tests kill the process between the commit and the first
/// notification. With `FSN_TEST_HOLD_BEFORE_DELIVERY=<file>` set, the
/// watcher writes that file and waits there. Compiled into debug (test)
/// builds only: release builds have no such hook.
#[cfg(debug_assertions)]
async fn hold_before_delivery_for_tests() {
    if let Some(marker) = std::env::var_os("FSN_TEST_HOLD_BEFORE_DELIVERY") {
        let _ = std::fs::write(&marker, b"holding");
        tokio::time::sleep(Duration::from_secs(120)).await;
    }
}

/// Supervision tests: with `FSN_TEST_PANIC_ONCE=<file>` set, the watcher
/// panics at its second cycle unless that file exists (it creates it
/// first, so the restarted watcher runs on). Debug builds only.
#[cfg(debug_assertions)]
fn panic_for_tests(cycle_no: u64) {
    if cycle_no != 1 {
        return;
    }
    if let Some(marker) = std::env::var_os("FSN_TEST_PANIC_ONCE") {
        if std::fs::metadata(&marker).is_err() {
            let _ = std::fs::write(&marker, b"panicked");
            panic!("test-only panic (FSN_TEST_PANIC_ONCE)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_waits_are_clamped_and_jittered() {
        for (asked, lo, hi) in [
            (None, 48, 72),
            (Some(Duration::ZERO), 24, 36),
            (Some(Duration::from_secs(1)), 24, 36),
            (Some(Duration::from_secs(120)), 96, 144),
            (Some(Duration::from_secs(86_400)), 720, 1080),
        ] {
            let w = rate_limit_wait(asked).as_secs();
            assert!((lo..=hi).contains(&w), "{asked:?} → {w}");
        }
    }
}
