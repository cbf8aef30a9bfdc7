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

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::lab::LabState;
use crate::secret::PatientName;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {context}: {source}")]
    Sqlite {
        path: PathBuf,
        context: &'static str,
        source: rusqlite::Error,
    },
    #[error("database {path} was written by a newer version of the app (schema {found}, this version knows {known})")]
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
];

pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// What the change detector needs to know about an order between cycles.
#[derive(Debug, Clone, PartialEq)]
pub struct Tracked {
    pub state: LabState,
    pub results_fp: Option<String>,
    pub updated_at: Option<String>,
    pub document_url: Option<String>,
    /// Hash of the displayed fields, so a renamed test still updates the row.
    pub display: u64,
}

/// A row to write for an order that is new or changed.
#[derive(Debug, Clone)]
pub struct OrderRecord {
    pub id: String,
    pub patient_name: Option<PatientName>,
    pub title: Option<String>,
    pub lab_name: Option<String>,
    pub test_names: Vec<String>,
    pub state: LabState,
    pub results_fp: Option<String>,
    pub results_count: usize,
    /// False when the response carried no results field: the stored count is kept.
    pub results_known: bool,
    pub document_url: Option<String>,
    pub updated_at: Option<String>,
    /// State or results changed (not just a display field).
    pub changed: bool,
}

impl OrderRecord {
    pub fn tracked(&self) -> Tracked {
        Tracked {
            state: self.state.clone(),
            results_fp: self.results_fp.clone(),
            updated_at: self.updated_at.clone(),
            document_url: self.document_url.clone(),
            display: display_hash(
                self.patient_name.as_ref().map(|p| p.expose()),
                self.title.as_deref(),
                self.lab_name.as_deref(),
                &self.test_names,
                self.document_url.as_deref(),
            ),
        }
    }
}

pub fn display_hash(
    patient: Option<&str>,
    title: Option<&str>,
    lab: Option<&str>,
    tests: &[String],
    document: Option<&str>,
) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for part in [patient, title, lab, document] {
        h.update(part.unwrap_or("\u{1}").as_bytes());
        h.update(b"\0");
    }
    for t in tests {
        h.update(t.as_bytes());
        h.update(b"\x1f");
    }
    h.digest()
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewAlert {
    pub order_id: String,
    pub state: LabState,
    pub fingerprint: String,
    /// Recorded but not shown: `disabled` (state not chosen in settings) or `paused`.
    pub silent_reason: Option<&'static str>,
}

/// Everything one poll cycle learned, written atomically.
#[derive(Debug, Default)]
pub struct CycleCommit {
    pub upserts: Vec<OrderRecord>,
    /// Orders no longer listed by a complete sweep.
    pub removals: Vec<String>,
    pub alerts: Vec<NewAlert>,
    pub seen_events: Vec<(String, String)>,
    pub cursor: Option<String>,
    pub baseline_done: bool,
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
}

/// A row of the status list.
#[derive(Debug, Clone, Serialize)]
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
    pub silent_reason: Option<String>,
}

pub struct Store {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
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
        Store::init(conn, path)
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

    pub fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn()
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(self.err("read meta"))
    }

    pub fn meta_set(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(|_| ())
            .map_err(self.err("write meta"))
    }

    pub fn meta_delete(&self, key: &str) -> Result<(), StoreError> {
        self.conn()
            .execute("DELETE FROM meta WHERE key = ?1", [key])
            .map(|_| ())
            .map_err(self.err("delete meta"))
    }

    pub fn meta_json<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        Ok(self
            .meta_get(key)?
            .and_then(|v| serde_json::from_str(&v).ok()))
    }

    pub fn meta_set_json<T: Serialize>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        let text = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
        self.meta_set(key, &text)
    }

    // ------------------------------------------------------------------ tracking

    pub fn load_tracked(&self) -> Result<HashMap<String, Tracked>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT id, state, results_fp, updated_at, patient_name, title, lab_name, test_names, document_url
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
        {
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO lab_orders (id, patient_name, title, lab_name, test_names, state, results_fp,
                        results_count, document_url, updated_at, changed_at, first_seen_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)
                     ON CONFLICT (id) DO UPDATE SET
                        patient_name = excluded.patient_name, title = excluded.title,
                        lab_name = excluded.lab_name, test_names = excluded.test_names,
                        state = excluded.state, results_fp = excluded.results_fp,
                        results_count = CASE WHEN ?13 THEN excluded.results_count ELSE lab_orders.results_count END,
                        document_url = excluded.document_url,
                        updated_at = excluded.updated_at,
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
                    ])
                    .map_err(self.err("write order"))?;
            }
            let mut remove = tx
                .prepare_cached("DELETE FROM lab_orders WHERE id = ?1")
                .map_err(self.err("prepare order removal"))?;
            for id in &c.removals {
                remove.execute([id]).map_err(self.err("remove order"))?;
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
                        a.silent_reason
                    ])
                    .map_err(self.err("record alert"))?;
                if n == 1 {
                    new_ids.push(tx.last_insert_rowid());
                }
            }
        }
        if let Some(cursor) = &c.cursor {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('event_cursor', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [cursor],
            )
            .map_err(self.err("write cursor"))?;
        }
        if c.baseline_done {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('baseline_at', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [&now_s],
            )
            .map_err(self.err("write baseline"))?;
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
             DELETE FROM meta WHERE key IN ('event_cursor', 'baseline_at', 'watch_status');",
        )
        .map_err(self.err("reset"))?;
        tx.commit().map_err(self.err("commit reset"))
    }

    // ------------------------------------------------------------------ alerts

    pub fn outbox(&self) -> Result<Vec<PendingAlert>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT a.id, a.order_id, a.state, o.title, o.lab_name, o.test_names, o.patient_name,
                        o.document_url, a.created_at
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

    pub fn mark_all_seen(&self, at: DateTime<Utc>) -> Result<usize, StoreError> {
        self.conn()
            .execute(
                "UPDATE alerts SET seen_at = ?1 WHERE seen_at IS NULL",
                [ts(at)],
            )
            .map_err(self.err("mark all seen"))
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
                    silent_reason: r.get(7)?,
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
                 WHERE a.seen_at IS NULL",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as usize)
            .map_err(self.err("count unseen"))
    }

    // ------------------------------------------------------------------ list

    pub fn list_orders(&self) -> Result<Vec<OrderRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT o.id, o.patient_name, o.title, o.lab_name, o.test_names, o.state, o.changed_at,
                        o.results_count,
                        EXISTS (SELECT 1 FROM alerts a WHERE a.order_id = o.id AND a.seen_at IS NULL)
                 FROM lab_orders o ORDER BY o.changed_at DESC, o.id",
            )
            .map_err(self.err("list orders"))?;
        let rows = stmt
            .query_map([], |r| {
                let tests: String = r.get(4)?;
                let test_names: Vec<String> = serde_json::from_str(&tests).unwrap_or_default();
                let title: Option<String> = r.get(2)?;
                let lab_name: Option<String> = r.get(3)?;
                let state = LabState::parse(&r.get::<_, String>(5)?);
                let title = title
                    .or_else(|| (!test_names.is_empty()).then(|| test_names.join(", ")))
                    .or_else(|| lab_name.clone())
                    .unwrap_or_else(|| "Lab order".into());
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
                })
            })
            .map_err(self.err("list orders"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.err("list orders"))
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
            .prepare("SELECT state, COUNT(*) FROM lab_orders GROUP BY state")
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
            s.meta_get("event_cursor").unwrap().as_deref(),
            Some("2026-01-01T00:00:00Z")
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
                silent_reason: Some("disabled"),
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
}
