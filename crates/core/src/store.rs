//! Durable state in SQLite: each lab order's last known state and results
//! fingerprint, the event cursor and seen events, and the alerts (outbox and
//! history). A poll cycle's snapshot and its new alerts commit in one
//! transaction; delivery marks alerts delivered afterwards. So a crash at any
//! point loses no alert, and the only possible duplicate is a crash between
//! showing a notification and recording that it was shown.
//!
//! Only what the status list needs is stored: ids, the patient's display
//! name, order/test/lab names, state, timestamps, a fingerprint of the
//! results and the result document link. Nothing else about patients.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::detect::{display_hash, NewAlert, OrderRecord, SilentReason, Tracked};
use crate::lab::LabState;
use crate::secret::PatientName;
pub use crate::timestamp::canonical as ts;

/// A failure of the local database (never of Fullscript or the network).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("local database {path}: {context}: {source}")]
    Sqlite {
        path: PathBuf,
        context: &'static str,
        source: rusqlite::Error,
    },
    #[error("local database {path}: {context}: {source}")]
    Io {
        path: PathBuf,
        context: &'static str,
        source: std::io::Error,
    },
    #[error(
        "the sign-in changed in another window or command; this check's results were not kept"
    )]
    GrantChanged,
    /// The practitioner signed out (or erased the local data) while a
    /// check was in flight: nothing of it is kept.
    #[error("signed out while a check was in progress; its results were not kept")]
    SignedOut,
    #[error("local database {path} was written by a newer version of the app (schema {found}, this version knows {known})")]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
}

/// Schema migrations, applied in order; `PRAGMA user_version` records how far.
const MIGRATIONS: &[&str] = &[
    // 1: initial schema
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE lab_orders (
        id TEXT PRIMARY KEY,
        patient_name TEXT,
        title TEXT,
        lab_name TEXT,
        test_names TEXT NOT NULL DEFAULT '[]',
        state TEXT NOT NULL,
        results_fp TEXT,
        results_count INTEGER NOT NULL DEFAULT 0,
        document_url TEXT,
        updated_at TEXT,
        changed_at TEXT NOT NULL,
        first_seen_at TEXT NOT NULL
     );
     CREATE TABLE seen_events (id TEXT PRIMARY KEY, created_at TEXT NOT NULL);
     CREATE TABLE alerts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        order_id TEXT NOT NULL,
        state TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        created_at TEXT NOT NULL,
        delivered_at TEXT,
        seen_at TEXT,
        silent_reason TEXT,
        UNIQUE (order_id, state, fingerprint)
     );
     CREATE INDEX alerts_outbox ON alerts (id) WHERE delivered_at IS NULL AND silent_reason IS NULL;
     CREATE INDEX alerts_unseen ON alerts (order_id) WHERE seen_at IS NULL;",
    // 2: orders that went missing are remembered (tombstones), unreadable
    // orders are listed, and results fingerprints cover only what identifies
    // a result. The old fingerprints and timestamps are forgotten: the next
    // read learns the new ones silently (a learned value is not a change).
    "ALTER TABLE lab_orders ADD COLUMN missing_sweeps INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE lab_orders ADD COLUMN removed_at TEXT;
     UPDATE lab_orders SET results_fp = NULL, updated_at = NULL;
     CREATE TABLE unreadable_orders (id TEXT PRIMARY KEY, problem TEXT NOT NULL, seen_at TEXT NOT NULL);",
    // 3: alerts held outside clinic hours or during a pause (announced
    // together in one digest later), and alerts by time for catch-up.
    "ALTER TABLE alerts ADD COLUMN held_at TEXT;
     CREATE INDEX alerts_created ON alerts (created_at);",
    // 4: Fullscript's `updated_at` when the order last changed (state,
    // results, or an amendment announced by an event): an event is news
    // only when it is later than that. Unknown for existing rows: their
    // next events count as news (better twice than never).
    "ALTER TABLE lab_orders ADD COLUMN change_updated_at TEXT;",
];

/// Every key of the `meta` table, in one place. The store reads the few it
/// needs for its own work (the event cursor, the baseline, the rebuild, the
/// sign-out and grant guards of a cycle's commit); the rest belong to
/// [`crate::app_state::AppState`], their one typed owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meta {
    /// JSON `Account`: who is signed in, to which clinic.
    Account,
    /// Why the session ended (shown until the next sign-in).
    SignedOutReason,
    /// RFC 3339: notifications paused until then.
    PausedUntil,
    /// Server time of the newest processed event.
    EventCursor,
    /// When the first sign-in's silent baseline completed.
    BaselineAt,
    /// JSON `WatchStatus`, for `status` from another process.
    WatchStatus,
    /// The "still running in the tray" notice was shown once.
    ToldStillRunning,
    /// JSON [`Rebuilt`]: the database was damaged and started afresh.
    Rebuilt,
    /// JSON [`crate::update::UpdateState`]: the last look at the update feed.
    Update,
    /// RFC 3339: results since then are offered as "N results since …"
    /// (after a start, a wake from sleep or the end of a pause).
    CatchUpSince,
    /// RFC 3339: when the current pause began.
    PausedAt,
    /// A sign-in finished and its welcome ("Connected to … N existing lab
    /// orders recorded") has not been dismissed.
    WelcomePending,
    /// The relay's stream sequence of the last pushed event whose order was
    /// checked (the push resumes after it).
    PushLastEventId,
    /// RFC 3339, Fullscript's `updated_at`: the newest update on the first
    /// page of the last complete read of the list. Every order updated before then
    /// (less a margin) was read as it is now; an incremental read stops
    /// where it reaches such orders.
    SweepMark,
}

impl Meta {
    fn key(self) -> &'static str {
        match self {
            Meta::Account => "account",
            Meta::SignedOutReason => "signed_out_reason",
            Meta::PausedUntil => "paused_until",
            Meta::EventCursor => "event_cursor",
            Meta::BaselineAt => "baseline_at",
            Meta::WatchStatus => "watch_status",
            Meta::ToldStillRunning => "told_still_running",
            Meta::Rebuilt => "rebuilt",
            Meta::Update => "update",
            Meta::CatchUpSince => "catch_up_since",
            Meta::PushLastEventId => "push_last_event_id",
            Meta::SweepMark => "sweep_mark",
            Meta::PausedAt => "paused_at",
            Meta::WelcomePending => "welcome_pending",
        }
    }
}

/// The local database was found damaged at start and replaced by an empty one.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Rebuilt {
    /// When it was rebuilt.
    pub at: String,
    /// The damaged file, kept beside the new one.
    pub kept_as: String,
    /// When the damaged file was last written: results that changed after
    /// this are listed as unseen.
    pub last_written: Option<String>,
}

/// Everything one poll cycle learned, written atomically.
#[derive(Debug, Default)]
pub struct CycleCommit {
    pub upserts: Vec<OrderRecord>,
    /// Tracked orders a complete sweep did not list (one more missed sweep).
    pub missing: Vec<String>,
    /// Orders gone from Fullscript: hidden from the list, their record kept.
    pub removals: Vec<String>,
    /// Orders listed but unreadable (id, problem): kept as they were, listed as unreadable.
    pub unreadable: Vec<(String, String)>,
    /// Orders read fine again after being unreadable.
    pub readable_again: Vec<String>,
    pub alerts: Vec<NewAlert>,
    /// (event id, its server time) processed this cycle.
    pub seen_events: Vec<(String, String)>,
    pub cursor: Option<String>,
    pub baseline_done: bool,
    /// The sign-in this cycle read with: if another process has signed in
    /// anew meanwhile (the stored account names another grant), nothing is
    /// written, so two grants never mix orders in one list.
    pub grant_id: Option<String>,
}

/// An alert waiting to be shown, with what the notification needs.
#[derive(Debug, Clone)]
pub struct PendingAlert {
    pub id: i64,
    pub order_id: String,
    pub state: LabState,
    pub title: Option<String>,
    pub lab_name: Option<String>,
    pub test_names: Vec<String>,
    pub patient_name: Option<PatientName>,
    pub document_url: Option<String>,
    pub created_at: String,
    /// Held outside clinic hours or during a pause: announced in a digest.
    pub held: bool,
}

/// A row of the status list.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct OrderRow {
    pub id: String,
    pub patient_name: Option<PatientName>,
    pub title: String,
    pub lab_name: Option<String>,
    pub test_names: Vec<String>,
    pub state: LabState,
    pub state_label: String,
    pub group: &'static str,
    pub changed_at: String,
    pub unseen: bool,
    pub results_count: usize,
    /// When its newest result alert was recorded (for "N results since …").
    pub last_result_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertRecord {
    pub id: i64,
    pub order_id: String,
    pub state: LabState,
    pub fingerprint: String,
    pub created_at: String,
    pub delivered_at: Option<String>,
    pub seen_at: Option<String>,
    pub silent_reason: Option<SilentReason>,
}

pub struct Store {
    path: PathBuf,
    conn: Mutex<Connection>,
}

/// A database failure that means the file itself is damaged.
fn is_damage(e: &StoreError) -> bool {
    match e {
        StoreError::Sqlite { source, .. } => matches!(
            source.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
        ),
        _ => false,
    }
}

impl Store {
    /// Open (creating, migrating) the database. A damaged file is moved aside
    /// (kept, with a timestamp) and replaced by an empty database that
    /// records why ([`Store::rebuilt`]); the watcher then starts from a
    /// silent baseline. Any other failure (permissions, a newer schema) is
    /// an error: the file might be fine and must not be moved.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        match Store::open_checked(path) {
            Err(e) if is_damage(&e) => {
                tracing::error!(error = %e, "the local database is damaged; keeping it aside and starting afresh");
                Store::replace_damaged(path)
            }
            other => other,
        }
    }

    /// Damage found while running (`SQLITE_CORRUPT` in the middle of the
    /// day): the same as at open, in place, so every holder of this store
    /// goes on with the fresh database. The sign-in's account is carried
    /// over when it can still be read. Answers whether it rebuilt.
    pub fn recover_from(&self, e: &StoreError) -> Result<bool, StoreError> {
        if !is_damage(e) || self.path == Path::new(":memory:") {
            return Ok(false);
        }
        tracing::error!(error = %e, "the local database turned out damaged while running; keeping it aside and starting afresh");
        // Carried over as written (its owner reads it, and ignores it when
        // it does not read as an account).
        let account = self.meta_get(Meta::Account).ok().flatten();
        let mut conn = self.conn();
        let placeholder = Connection::open_in_memory().map_err(self.err("open"))?;
        // The damaged file's connection is closed before the file is moved.
        drop(std::mem::replace(&mut *conn, placeholder));
        let fresh = Store::replace_damaged(&self.path)?;
        *conn = fresh.conn.into_inner().unwrap_or_else(|p| p.into_inner());
        drop(conn);
        if let Some(account) = account {
            self.meta_put(Meta::Account, Some(&account))?;
        }
        Ok(true)
    }

    /// Move a damaged database (and its journal) aside, kept with a
    /// timestamp, and start an empty one that records why ([`Store::rebuilt`]).
    fn replace_damaged(path: &Path) -> Result<Store, StoreError> {
        let last_written = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .map(|t| ts(DateTime::<Utc>::from(t)));
        let now = Utc::now();
        let kept = path.with_file_name(format!(
            "{}.damaged-{}",
            path.file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_else(|| "database".into()),
            now.format("%Y%m%dT%H%M%S%.3fZ")
        ));
        let move_aside = |from: &Path, to: &Path| -> Result<(), StoreError> {
            match std::fs::rename(from, to) {
                Ok(()) => Ok(()),
                Err(io) if io.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(io) => Err(StoreError::Io {
                    path: from.to_path_buf(),
                    context: "keep the damaged database aside",
                    source: io,
                }),
            }
        };
        move_aside(path, &kept)?;
        for suffix in ["-wal", "-shm"] {
            let side = PathBuf::from(format!("{}{suffix}", path.display()));
            let kept_side = PathBuf::from(format!("{}{suffix}", kept.display()));
            move_aside(&side, &kept_side)?;
        }
        let store = Store::open_checked(path)?;
        store.set_rebuilt(&Rebuilt {
            at: ts(now),
            kept_as: kept.display().to_string(),
            last_written,
        })?;
        Ok(store)
    }

    fn open_checked(path: &Path) -> Result<Store, StoreError> {
        let ctx = |context: &'static str| {
            let path = path.to_path_buf();
            move |source| StoreError::Sqlite {
                path,
                context,
                source,
            }
        };
        let conn = Connection::open(path).map_err(ctx("open"))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        let store = Store::init(conn, path)?;
        store.quick_check()?;
        Ok(store)
    }

    /// SQLite's quick integrity check (linear in the file size; a few
    /// milliseconds for thousands of orders).
    fn quick_check(&self) -> Result<(), StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("PRAGMA quick_check")
            .map_err(self.err("integrity check"))?;
        let problems: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(self.err("integrity check"))?
            .collect::<Result<_, _>>()
            .map_err(self.err("integrity check"))?;
        if problems.len() == 1 && problems[0] == "ok" {
            return Ok(());
        }
        Err(StoreError::Sqlite {
            path: self.path.clone(),
            context: "integrity check",
            source: rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                Some(problems.into_iter().take(3).collect::<Vec<_>>().join("; ")),
            ),
        })
    }

    pub fn open_in_memory() -> Result<Store, StoreError> {
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Sqlite {
            path: PathBuf::from(":memory:"),
            context: "open",
            source,
        })?;
        Store::init(conn, Path::new(":memory:"))
    }

    fn init(mut conn: Connection, path: &Path) -> Result<Store, StoreError> {
        let ctx = |context: &'static str| {
            let path = path.to_path_buf();
            move |source| StoreError::Sqlite {
                path,
                context,
                source,
            }
        };
        // WAL: `status` can read while the watcher writes. busy_timeout: two
        // processes briefly contending wait instead of failing.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(ctx("enable WAL"))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(ctx("pragma"))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(ctx("pragma"))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(ctx("busy timeout"))?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(ctx("read schema version"))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew {
                path: path.to_path_buf(),
                found: version,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction().map_err(ctx("begin migration"))?;
            tx.execute_batch(sql).map_err(ctx("migrate"))?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(ctx("record schema version"))?;
            tx.commit().map_err(ctx("commit migration"))?;
        }
        Ok(Store {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, context: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sqlite {
            path: self.path.clone(),
            context,
            source,
        }
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.conn()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(self.err("read schema version"))
    }

    // ------------------------------------------------------------------ meta

    /// One value of the `meta` table (its owner reads it typed).
    pub(crate) fn meta_get(&self, key: Meta) -> Result<Option<String>, StoreError> {
        self.conn()
            .query_row("SELECT value FROM meta WHERE key = ?1", [key.key()], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.err("read meta"))
    }

    /// Write (or with `None` delete) one value of the `meta` table.
    pub(crate) fn meta_put(&self, key: Meta, value: Option<&str>) -> Result<(), StoreError> {
        let conn = self.conn();
        match value {
            Some(v) => conn.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key.key(), v],
            ),
            None => conn.execute("DELETE FROM meta WHERE key = ?1", [key.key()]),
        }
        .map(|_| ())
        .map_err(self.err("write meta"))
    }

    fn meta_time(&self, key: Meta) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self
            .meta_get(key)?
            .and_then(|s| crate::timestamp::parse_str(&s)))
    }

    /// Server time of the newest processed event.
    pub fn event_cursor(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.meta_time(Meta::EventCursor)
    }

    pub fn set_event_cursor(&self, cursor: Option<DateTime<Utc>>) -> Result<(), StoreError> {
        self.meta_put(Meta::EventCursor, cursor.map(ts).as_deref())
    }

    /// When the first sign-in's silent baseline completed.
    pub fn baseline_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.meta_time(Meta::BaselineAt)
    }

    /// Set when the database was found damaged and rebuilt.
    pub fn rebuilt(&self) -> Result<Option<Rebuilt>, StoreError> {
        Ok(self
            .meta_get(Meta::Rebuilt)?
            .and_then(|v| serde_json::from_str(&v).ok()))
    }

    fn set_rebuilt(&self, r: &Rebuilt) -> Result<(), StoreError> {
        let text = serde_json::to_string(r).unwrap_or_else(|_| "null".into());
        self.meta_put(Meta::Rebuilt, Some(&text))
    }

    /// The practitioner has read that local history was rebuilt.
    pub fn dismiss_rebuilt(&self) -> Result<(), StoreError> {
        self.meta_put(Meta::Rebuilt, None)
    }

    // ------------------------------------------------------------------ tracking

    pub fn load_tracked(&self) -> Result<HashMap<String, Tracked>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT id, state, results_fp, updated_at, patient_name, title, lab_name, test_names, document_url,
                        missing_sweeps, removed_at IS NOT NULL, change_updated_at
                 FROM lab_orders",
            )
            .map_err(self.err("load orders"))?;
        let rows = stmt
            .query_map([], |r| {
                let tests: String = r.get(7)?;
                let tests: Vec<String> = serde_json::from_str(&tests).unwrap_or_default();
                let patient: Option<String> = r.get(4)?;
                let title: Option<String> = r.get(5)?;
                let lab: Option<String> = r.get(6)?;
                let doc: Option<String> = r.get(8)?;
                Ok((
                    r.get::<_, String>(0)?,
                    Tracked {
                        state: LabState::parse(&r.get::<_, String>(1)?),
                        results_fp: r.get(2)?,
                        updated_at: r.get(3)?,
                        document_url: doc.clone(),
                        display: display_hash(
                            patient.as_deref(),
                            title.as_deref(),
                            lab.as_deref(),
                            &tests,
                            doc.as_deref(),
                        ),
                        missing_sweeps: u32::try_from(r.get::<_, i64>(9)?).unwrap_or(0),
                        removed: r.get(10)?,
                        change_updated_at: r.get(11)?,
                    },
                ))
            })
            .map_err(self.err("load orders"))?;
        let mut map = HashMap::new();
        for row in rows {
            let (id, t) = row.map_err(self.err("load orders"))?;
            map.insert(id, t);
        }
        Ok(map)
    }

    /// Which of these event ids have not been processed yet.
    pub fn unseen_events(&self, ids: &[&str]) -> Result<Vec<bool>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT 1 FROM seen_events WHERE id = ?1")
            .map_err(self.err("read events"))?;
        ids.iter()
            .map(|id| {
                stmt.exists([id])
                    .map(|seen| !seen)
                    .map_err(self.err("read events"))
            })
            .collect()
    }

    /// Write a cycle's snapshot and alerts in one transaction; answers the ids of alerts actually new.
    pub fn commit_cycle(
        &self,
        c: &CycleCommit,
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>, StoreError> {
        let now_s = ts(now);
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.err("begin cycle"))?;
        if c.grant_id.is_some() {
            // Signed out (or erased) by another process, or by this one
            // while the check was in flight: its rows are not written back.
            let signed_out: Option<String> = tx
                .query_row(
                    "SELECT value FROM meta WHERE key = ?1",
                    [Meta::SignedOutReason.key()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(self.err("read sign-out"))?;
            if signed_out.is_some() {
                return Err(StoreError::SignedOut);
            }
        }
        if let Some(ours) = &c.grant_id {
            // (The account is its owner's JSON; only its grant is read here.)
            let theirs: Option<String> = tx
                .query_row(
                    "SELECT json_extract(value, '$.grant_id') FROM meta
                     WHERE key = ?1 AND json_valid(value)",
                    [Meta::Account.key()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(self.err("read account"))?
                .flatten();
            if theirs.is_some_and(|t| &t != ours) {
                return Err(StoreError::GrantChanged);
            }
        }
        {
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO lab_orders (id, patient_name, title, lab_name, test_names, state, results_fp,
                        results_count, document_url, updated_at, changed_at, first_seen_at,
                        change_updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?14)
                     ON CONFLICT (id) DO UPDATE SET
                        patient_name = excluded.patient_name, title = excluded.title,
                        lab_name = excluded.lab_name, test_names = excluded.test_names,
                        state = excluded.state, results_fp = excluded.results_fp,
                        results_count = CASE WHEN ?13 THEN excluded.results_count ELSE lab_orders.results_count END,
                        document_url = excluded.document_url,
                        updated_at = excluded.updated_at,
                        change_updated_at = excluded.change_updated_at,
                        missing_sweeps = 0, removed_at = NULL,
                        changed_at = CASE WHEN ?12 THEN excluded.changed_at ELSE lab_orders.changed_at END",
                )
                .map_err(self.err("prepare order upsert"))?;
            for o in &c.upserts {
                let tests = serde_json::to_string(&o.test_names).unwrap_or_else(|_| "[]".into());
                upsert
                    .execute(params![
                        o.id,
                        o.patient_name.as_ref().map(|p| p.expose()),
                        o.title,
                        o.lab_name,
                        tests,
                        o.state.as_str(),
                        o.results_fp,
                        o.results_count as i64,
                        o.document_url,
                        o.updated_at,
                        now_s,
                        o.changed,
                        o.results_known,
                        o.change_updated_at,
                    ])
                    .map_err(self.err("write order"))?;
            }
            let mut missing = tx
                .prepare_cached(
                    "UPDATE lab_orders SET missing_sweeps = missing_sweeps + 1 WHERE id = ?1",
                )
                .map_err(self.err("prepare missing order"))?;
            for id in &c.missing {
                missing
                    .execute([id])
                    .map_err(self.err("mark order missing"))?;
            }
            let mut remove = tx
                .prepare_cached(
                    "UPDATE lab_orders SET removed_at = ?2 WHERE id = ?1 AND removed_at IS NULL",
                )
                .map_err(self.err("prepare order removal"))?;
            for id in &c.removals {
                remove
                    .execute(params![id, now_s])
                    .map_err(self.err("remove order"))?;
            }
            let mut unreadable = tx
                .prepare_cached(
                    "INSERT INTO unreadable_orders (id, problem, seen_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (id) DO UPDATE SET problem = excluded.problem, seen_at = excluded.seen_at",
                )
                .map_err(self.err("prepare unreadable order"))?;
            for (id, problem) in &c.unreadable {
                unreadable
                    .execute(params![id, problem, now_s])
                    .map_err(self.err("record unreadable order"))?;
            }
            let mut readable = tx
                .prepare_cached("DELETE FROM unreadable_orders WHERE id = ?1")
                .map_err(self.err("prepare readable order"))?;
            for id in &c.readable_again {
                readable
                    .execute([id])
                    .map_err(self.err("record readable order"))?;
            }
            let mut seen = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO seen_events (id, created_at) VALUES (?1, ?2)",
                )
                .map_err(self.err("prepare event"))?;
            for (id, created) in &c.seen_events {
                seen.execute([id, created])
                    .map_err(self.err("record event"))?;
            }
        }
        let mut new_ids = Vec::new();
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO alerts (order_id, state, fingerprint, created_at, silent_reason)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(self.err("prepare alert"))?;
            for a in &c.alerts {
                let n = insert
                    .execute(params![
                        a.order_id,
                        a.state.as_str(),
                        a.fingerprint,
                        now_s,
                        a.silent_reason.map(SilentReason::as_str)
                    ])
                    .map_err(self.err("record alert"))?;
                if n == 1 {
                    new_ids.push(tx.last_insert_rowid());
                }
            }
        }
        let put_meta = |key: Meta, value: &str| {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key.key(), value],
            )
        };
        if let Some(cursor) = &c.cursor {
            put_meta(Meta::EventCursor, cursor).map_err(self.err("write cursor"))?;
        }
        if c.baseline_done {
            put_meta(Meta::BaselineAt, &now_s).map_err(self.err("write baseline"))?;
        }
        tx.commit().map_err(self.err("commit cycle"))?;
        Ok(new_ids)
    }

    pub fn prune_events(&self, older_than: DateTime<Utc>) -> Result<usize, StoreError> {
        self.conn()
            .execute(
                "DELETE FROM seen_events WHERE created_at < ?1",
                [ts(older_than)],
            )
            .map_err(self.err("prune events"))
    }

    /// Forget every order, event and alert (a different clinic signed in, or a reset).
    pub fn reset_tracking(&self) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.err("begin reset"))?;
        tx.execute_batch(
            "DELETE FROM lab_orders; DELETE FROM seen_events; DELETE FROM alerts;
             DELETE FROM unreadable_orders;
             DELETE FROM meta WHERE key IN ('event_cursor', 'baseline_at', 'watch_status');",
        )
        .map_err(self.err("reset"))?;
        tx.commit().map_err(self.err("commit reset"))
    }

    /// Erase everything this database knows about patients and the clinic
    /// (sign out and erase): the rows are deleted with `secure_delete` on
    /// (freed pages are overwritten with zeros), the write-ahead log is
    /// checkpointed and truncated, and the file is rebuilt (`VACUUM`), so
    /// no name, test or link is left in the file or its journal.
    /// `signed_out_mark` is what the sign-out reason says afterwards
    /// (written in the same transaction).
    pub fn erase(&self, signed_out_mark: &str) -> Result<(), StoreError> {
        let mut conn = self.conn();
        conn.pragma_update(None, "secure_delete", "ON")
            .map_err(self.err("secure delete"))?;
        let tx = conn.transaction().map_err(self.err("begin erase"))?;
        tx.execute_batch(
            "DELETE FROM lab_orders; DELETE FROM seen_events; DELETE FROM alerts;
             DELETE FROM unreadable_orders; DELETE FROM meta;",
        )
        .map_err(self.err("erase"))?;
        // Signed out is what remains: a watcher anywhere that still holds
        // tokens follows it, and a check in flight is not written back.
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)",
            params![Meta::SignedOutReason.key(), signed_out_mark],
        )
        .map_err(self.err("erase"))?;
        tx.commit().map_err(self.err("commit erase"))?;
        let checkpoint = |conn: &Connection| {
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                .optional()
                .map(|_| ())
        };
        checkpoint(&conn).map_err(self.err("checkpoint"))?;
        conn.execute_batch("VACUUM").map_err(self.err("vacuum"))?;
        checkpoint(&conn).map_err(self.err("checkpoint"))?;
        Ok(())
    }

    // ------------------------------------------------------------------ alerts

    pub fn outbox(&self) -> Result<Vec<PendingAlert>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT a.id, a.order_id, a.state, o.title, o.lab_name, o.test_names, o.patient_name,
                        o.document_url, a.created_at, a.held_at IS NOT NULL
                 FROM alerts a LEFT JOIN lab_orders o ON o.id = a.order_id
                 WHERE a.delivered_at IS NULL AND a.silent_reason IS NULL
                 ORDER BY a.id",
            )
            .map_err(self.err("read outbox"))?;
        let rows = stmt
            .query_map([], |r| {
                let tests: Option<String> = r.get(5)?;
                Ok(PendingAlert {
                    id: r.get(0)?,
                    order_id: r.get(1)?,
                    state: LabState::parse(&r.get::<_, String>(2)?),
                    title: r.get(3)?,
                    lab_name: r.get(4)?,
                    test_names: tests
                        .and_then(|t| serde_json::from_str(&t).ok())
                        .unwrap_or_default(),
                    patient_name: r.get::<_, Option<String>>(6)?.map(PatientName::new),
                    document_url: r.get(7)?,
                    created_at: r.get(8)?,
                    held: r.get(9)?,
                })
            })
            .map_err(self.err("read outbox"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.err("read outbox"))
    }

    pub fn mark_delivered(&self, ids: &[i64], at: DateTime<Utc>) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.err("begin delivery"))?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "UPDATE alerts SET delivered_at = ?2 WHERE id = ?1 AND delivered_at IS NULL",
                )
                .map_err(self.err("mark delivered"))?;
            for id in ids {
                stmt.execute(params![id, ts(at)])
                    .map_err(self.err("mark delivered"))?;
            }
        }
        tx.commit().map_err(self.err("commit delivery"))
    }

    /// Alerts not shown now (outside clinic hours, paused): announced
    /// together later. The first hold is the one remembered.
    pub fn hold_alerts(&self, ids: &[i64], at: DateTime<Utc>) -> Result<usize, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("UPDATE alerts SET held_at = ?2 WHERE id = ?1 AND held_at IS NULL")
            .map_err(self.err("hold alerts"))?;
        let mut n = 0;
        for id in ids {
            n += stmt
                .execute(params![id, ts(at)])
                .map_err(self.err("hold alerts"))?;
        }
        Ok(n)
    }

    /// Result alerts recorded since `since` (from that millisecond on; not
    /// counting silent ones: a first look at the clinic, a damaged history).
    pub fn results_since(&self, since: DateTime<Utc>) -> Result<usize, StoreError> {
        self.conn()
            .query_row(
                "SELECT COUNT(*) FROM alerts WHERE created_at >= ?1 AND silent_reason IS NULL",
                [ts(since)],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| usize::try_from(n).unwrap_or(0))
            .map_err(self.err("count recent results"))
    }

    /// The practitioner looked at an order's results.
    pub fn mark_order_seen(&self, order_id: &str, at: DateTime<Utc>) -> Result<usize, StoreError> {
        self.conn()
            .execute(
                "UPDATE alerts SET seen_at = ?2 WHERE order_id = ?1 AND seen_at IS NULL",
                params![order_id, ts(at)],
            )
            .map_err(self.err("mark seen"))
    }

    pub fn mark_alerts_seen(&self, ids: &[i64], at: DateTime<Utc>) -> Result<usize, StoreError> {
        let conn = self.conn();
        let mut n = 0;
        let mut stmt = conn
            .prepare_cached("UPDATE alerts SET seen_at = ?2 WHERE id = ?1 AND seen_at IS NULL")
            .map_err(self.err("mark seen"))?;
        for id in ids {
            n += stmt
                .execute(params![id, ts(at)])
                .map_err(self.err("mark seen"))?;
        }
        Ok(n)
    }

    /// Marks every unseen alert seen; answers which (for an undo).
    pub fn mark_all_seen(&self, at: DateTime<Utc>) -> Result<Vec<i64>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.err("mark all seen"))?;
        let ids = {
            let mut stmt = tx
                .prepare("UPDATE alerts SET seen_at = ?1 WHERE seen_at IS NULL RETURNING id")
                .map_err(self.err("mark all seen"))?;
            let rows = stmt
                .query_map([ts(at)], |r| r.get::<_, i64>(0))
                .map_err(self.err("mark all seen"))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(self.err("mark all seen"))?
        };
        tx.commit().map_err(self.err("mark all seen"))?;
        Ok(ids)
    }

    /// Undo a "mark all seen" made at `at`: those alerts are unseen again
    /// (unless looked at since).
    pub fn unmark_seen(&self, ids: &[i64], at: DateTime<Utc>) -> Result<usize, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("UPDATE alerts SET seen_at = NULL WHERE id = ?1 AND seen_at = ?2")
            .map_err(self.err("undo mark seen"))?;
        let mut n = 0;
        for id in ids {
            n += stmt
                .execute(params![id, ts(at)])
                .map_err(self.err("undo mark seen"))?;
        }
        Ok(n)
    }

    pub fn alerts(&self) -> Result<Vec<AlertRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT id, order_id, state, fingerprint, created_at, delivered_at, seen_at, silent_reason
                 FROM alerts ORDER BY id",
            )
            .map_err(self.err("read alerts"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(AlertRecord {
                    id: r.get(0)?,
                    order_id: r.get(1)?,
                    state: LabState::parse(&r.get::<_, String>(2)?),
                    fingerprint: r.get(3)?,
                    created_at: r.get(4)?,
                    delivered_at: r.get(5)?,
                    seen_at: r.get(6)?,
                    silent_reason: r
                        .get::<_, Option<String>>(7)?
                        .as_deref()
                        .and_then(SilentReason::parse),
                })
            })
            .map_err(self.err("read alerts"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.err("read alerts"))
    }

    pub fn pending_count(&self) -> Result<usize, StoreError> {
        self.conn()
            .query_row(
                "SELECT COUNT(*) FROM alerts WHERE delivered_at IS NULL AND silent_reason IS NULL",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as usize)
            .map_err(self.err("count outbox"))
    }

    /// Orders with results not yet looked at.
    pub fn unseen_count(&self) -> Result<usize, StoreError> {
        self.conn()
            .query_row(
                "SELECT COUNT(DISTINCT a.order_id) FROM alerts a JOIN lab_orders o ON o.id = a.order_id
                 WHERE a.seen_at IS NULL AND o.removed_at IS NULL",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as usize)
            .map_err(self.err("count unseen"))
    }

    // ------------------------------------------------------------------ list

    pub fn list_orders(&self) -> Result<Vec<OrderRow>, StoreError> {
        let mut out = Vec::new();
        self.for_each_order(|row| out.push(row))?;
        Ok(out)
    }

    /// Every listed order, newest change first, one at a time (a clinic
    /// with years of history is never held in memory at once).
    pub fn for_each_order(&self, mut visit: impl FnMut(OrderRow)) -> Result<(), StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT o.id, o.patient_name, o.title, o.lab_name, o.test_names, o.state, o.changed_at,
                        o.results_count,
                        EXISTS (SELECT 1 FROM alerts a WHERE a.order_id = o.id AND a.seen_at IS NULL),
                        (SELECT MAX(a.created_at) FROM alerts a
                          WHERE a.order_id = o.id AND a.silent_reason IS NULL)
                 FROM lab_orders o WHERE o.removed_at IS NULL ORDER BY o.changed_at DESC, o.id",
            )
            .map_err(self.err("list orders"))?;
        let rows = stmt
            .query_map([], |r| {
                let tests: String = r.get(4)?;
                let test_names: Vec<String> = serde_json::from_str(&tests).unwrap_or_default();
                let title: Option<String> = r.get(2)?;
                let lab_name: Option<String> = r.get(3)?;
                let state = LabState::parse(&r.get::<_, String>(5)?);
                let title =
                    crate::lab::display_title(title.as_deref(), &test_names, lab_name.as_deref());
                Ok(OrderRow {
                    id: r.get(0)?,
                    patient_name: r.get::<_, Option<String>>(1)?.map(PatientName::new),
                    title,
                    lab_name,
                    test_names,
                    state_label: state.label().to_string(),
                    group: state.group(),
                    state,
                    changed_at: r.get(6)?,
                    results_count: r.get::<_, i64>(7)? as usize,
                    unseen: r.get(8)?,
                    last_result_at: r.get(9)?,
                })
            })
            .map_err(self.err("list orders"))?;
        for row in rows {
            visit(row.map_err(self.err("list orders"))?);
        }
        Ok(())
    }

    pub fn order_document_url(&self, order_id: &str) -> Result<Option<String>, StoreError> {
        self.conn()
            .query_row(
                "SELECT document_url FROM lab_orders WHERE id = ?1",
                [order_id],
                |r| r.get(0),
            )
            .optional()
            .map(Option::flatten)
            .map_err(self.err("read order"))
    }

    pub fn counts_by_state(&self) -> Result<BTreeMap<String, usize>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT state, COUNT(*) FROM lab_orders WHERE removed_at IS NULL GROUP BY state",
            )
            .map_err(self.err("count orders"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as usize))
            })
            .map_err(self.err("count orders"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.err("count orders"))
    }
}

impl Store {
    /// Orders Fullscript listed that could not be read (id → problem).
    pub fn unreadable_orders(&self) -> Result<BTreeMap<String, String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT id, problem FROM unreadable_orders")
            .map_err(self.err("read unreadable orders"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(self.err("read unreadable orders"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.err("read unreadable orders"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, state: LabState, fp: &str) -> OrderRecord {
        OrderRecord {
            id: id.into(),
            patient_name: Some(PatientName::new("Ada Lovelace")),
            title: Some("Lipid Panel".into()),
            lab_name: Some("Quest".into()),
            test_names: vec!["Lipid Panel".into()],
            state,
            results_fp: Some(fp.into()),
            results_count: 1,
            results_known: true,
            document_url: None,
            updated_at: Some("2026-01-01T00:00:00Z".into()),
            change_updated_at: None,
            changed: true,
        }
    }

    #[test]
    fn migrations_are_versioned_and_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let s = Store::open(&path).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
        drop(s);
        let s = Store::open(&path).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
        s.conn().pragma_update(None, "user_version", 99).unwrap();
        drop(s);
        assert!(matches!(
            Store::open(&path),
            Err(StoreError::TooNew { found: 99, .. })
        ));
    }

    #[test]
    fn a_cycle_of_another_grant_or_after_a_sign_out_writes_nothing() {
        let s = Store::open_in_memory().unwrap();
        let now = Utc::now();
        s.meta_put(
            Meta::Account,
            Some(r#"{"grant_id": "g1", "clinic": {"id": "c", "name": "n"}}"#),
        )
        .unwrap();
        let cycle = |grant: &str| CycleCommit {
            upserts: vec![record("o1", LabState::ResultsReady, "f1")],
            grant_id: Some(grant.into()),
            ..Default::default()
        };
        assert!(matches!(
            s.commit_cycle(&cycle("g2"), now),
            Err(StoreError::GrantChanged)
        ));
        assert!(s.list_orders().unwrap().is_empty(), "nothing of g2 written");
        s.commit_cycle(&cycle("g1"), now).unwrap();
        assert_eq!(s.list_orders().unwrap().len(), 1);
        s.meta_put(Meta::SignedOutReason, Some(r#"{"kind":"user"}"#))
            .unwrap();
        assert!(matches!(
            s.commit_cycle(&cycle("g1"), now),
            Err(StoreError::SignedOut)
        ));
    }

    #[test]
    fn cycle_commit_dedups_alerts_and_tracks_delivery_and_seen() {
        let s = Store::open_in_memory().unwrap();
        let now = Utc::now();
        let alert = NewAlert {
            order_id: "o1".into(),
            state: LabState::ResultsReady,
            fingerprint: "f1".into(),
            silent_reason: None,
        };
        let c = CycleCommit {
            upserts: vec![record("o1", LabState::ResultsReady, "f1")],
            alerts: vec![alert.clone()],
            seen_events: vec![("e1".into(), "2026-01-01T00:00:00Z".into())],
            cursor: Some("2026-01-01T00:00:00Z".into()),
            ..Default::default()
        };
        assert_eq!(s.commit_cycle(&c, now).unwrap().len(), 1);
        // The same alert key never inserts twice.
        assert!(s.commit_cycle(&c, now).unwrap().is_empty());
        assert_eq!(
            s.event_cursor().unwrap(),
            crate::timestamp::parse_str("2026-01-01T00:00:00Z")
        );
        assert_eq!(s.unseen_events(&["e1", "e2"]).unwrap(), [false, true]);

        let out = s.outbox().unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].title.as_deref(), Some("Lipid Panel"));
        assert_eq!(s.pending_count().unwrap(), 1);
        s.mark_delivered(&[out[0].id], now).unwrap();
        assert!(s.outbox().unwrap().is_empty());
        assert_eq!(s.unseen_count().unwrap(), 1);
        let rows = s.list_orders().unwrap();
        assert!(rows[0].unseen);
        assert_eq!(s.mark_order_seen("o1", now).unwrap(), 1);
        assert_eq!(s.unseen_count().unwrap(), 0);

        let tracked = s.load_tracked().unwrap();
        assert_eq!(tracked["o1"], c.upserts[0].tracked());
        assert_eq!(s.counts_by_state().unwrap()["results_ready"], 1);

        // Silent alerts are history, not outbox.
        let silent = CycleCommit {
            alerts: vec![NewAlert {
                fingerprint: "f2".into(),
                silent_reason: Some(SilentReason::Disabled),
                ..alert
            }],
            ..Default::default()
        };
        s.commit_cycle(&silent, now).unwrap();
        assert!(s.outbox().unwrap().is_empty());
        assert_eq!(s.alerts().unwrap().len(), 2);
        s.reset_tracking().unwrap();
        assert!(s.list_orders().unwrap().is_empty());
    }

    #[test]
    fn missing_orders_are_hidden_only_when_removed_and_remembered_for_their_return() {
        let s = Store::open_in_memory().unwrap();
        let now = Utc::now();
        let c = CycleCommit {
            upserts: vec![
                record("a", LabState::ResultsReady, "f"),
                record("b", LabState::Processing, "g"),
            ],
            ..Default::default()
        };
        s.commit_cycle(&c, now).unwrap();
        s.commit_cycle(
            &CycleCommit {
                missing: vec!["a".into()],
                ..Default::default()
            },
            now,
        )
        .unwrap();
        assert_eq!(s.load_tracked().unwrap()["a"].missing_sweeps, 1);
        assert_eq!(s.list_orders().unwrap().len(), 2, "missing is still listed");
        s.commit_cycle(
            &CycleCommit {
                removals: vec!["a".into()],
                ..Default::default()
            },
            now,
        )
        .unwrap();
        let rows = s.list_orders().unwrap();
        assert_eq!(rows.len(), 1, "removed orders leave the list");
        let tracked = s.load_tracked().unwrap();
        assert!(tracked["a"].removed, "but their record is kept");
        assert_eq!(tracked["a"].state, LabState::ResultsReady);
        // Back again: written as usual, no longer removed or missing.
        s.commit_cycle(
            &CycleCommit {
                upserts: vec![record("a", LabState::ResultsReady, "f")],
                ..Default::default()
            },
            now,
        )
        .unwrap();
        let t = &s.load_tracked().unwrap()["a"];
        assert!(!t.removed && t.missing_sweeps == 0);
        assert_eq!(s.list_orders().unwrap().len(), 2);
    }

    #[test]
    fn unreadable_orders_are_recorded_until_they_read_again() {
        let s = Store::open_in_memory().unwrap();
        let now = Utc::now();
        s.commit_cycle(
            &CycleCommit {
                unreadable: vec![("x".into(), "missing state".into())],
                ..Default::default()
            },
            now,
        )
        .unwrap();
        assert_eq!(s.unreadable_orders().unwrap()["x"], "missing state");
        s.commit_cycle(
            &CycleCommit {
                readable_again: vec!["x".into()],
                ..Default::default()
            },
            now,
        )
        .unwrap();
        assert!(s.unreadable_orders().unwrap().is_empty());
    }

    #[test]
    fn a_damaged_database_is_kept_aside_and_replaced_by_one_that_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lab-notifier.sqlite3");
        {
            let s = Store::open(&path).unwrap();
            s.commit_cycle(
                &CycleCommit {
                    upserts: vec![record("a", LabState::ResultsReady, "f")],
                    baseline_done: true,
                    ..Default::default()
                },
                Utc::now(),
            )
            .unwrap();
        }
        // Garbage over the header: "file is not a database".
        let mut bytes = std::fs::read(&path).unwrap();
        for b in bytes.iter_mut().take(100) {
            *b = 0x5a;
        }
        std::fs::write(&path, &bytes).unwrap();

        let s = Store::open(&path).unwrap();
        let rebuilt = s.rebuilt().unwrap().expect("the rebuild is recorded");
        assert!(rebuilt.kept_as.contains(".damaged-"), "{}", rebuilt.kept_as);
        assert_eq!(
            std::fs::read(&rebuilt.kept_as).unwrap(),
            bytes,
            "the damaged file is kept as it was"
        );
        assert!(rebuilt.last_written.is_some());
        assert!(s.load_tracked().unwrap().is_empty());
        assert_eq!(s.baseline_at().unwrap(), None, "a new baseline follows");
        s.dismiss_rebuilt().unwrap();
        assert_eq!(s.rebuilt().unwrap(), None);
        drop(s);
        // A healthy database opens as it is.
        let s = Store::open(&path).unwrap();
        assert_eq!(s.rebuilt().unwrap(), None);
    }
}
