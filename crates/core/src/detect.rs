//! Change detection: compare freshly fetched lab orders with what was known
//! and decide which rows to write and which alerts to raise. Pure and fast
//! (a hash lookup per order), so it runs over every order on every sweep.
//!
//! What alerts: entering `partial_results`, `results_ready` or
//! `results_amended`, and every further amendment while an order stays
//! `results_amended` (its results fingerprint changed, or a new event came
//! with none visible). Every alert is keyed by (order, state, fingerprint)
//! and the store ignores a key it has seen, so nothing alerts twice.
//!
//! What never alerts: anything during the first sign-in's baseline; a
//! fingerprint or timestamp learned for the first time (an order first read
//! from a list without results, or after an upgrade); an order coming back
//! after it went missing in the state it was last recorded in (its record
//! is kept while it is missing, see [`Tracked::removed`]).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::config::NotifyStates;
use crate::lab::{link_identity, LabOrder, LabState};
use crate::secret::PatientName;

/// What the change detector needs to know about an order between cycles.
#[derive(Debug, Clone, PartialEq)]
pub struct Tracked {
    pub state: LabState,
    pub results_fp: Option<String>,
    pub updated_at: Option<String>,
    pub document_url: Option<String>,
    /// Hash of the displayed fields, so a renamed test still updates the row.
    pub display: u64,
    /// Complete sweeps in a row that did not list it.
    pub missing_sweeps: u32,
    /// Gone from Fullscript (3 sweeps without it, or a 404): hidden from the
    /// list, but remembered so that its return is compared, not announced.
    pub removed: bool,
    /// Fullscript's `updated_at` when the order last changed (state,
    /// results, or an amendment an event announced): what an event must be
    /// later than to be news. Not the last `updated_at` written, which also
    /// moves for changes that announce nothing.
    pub change_updated_at: Option<String>,
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
    /// See [`Tracked::change_updated_at`].
    pub change_updated_at: Option<String>,
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
            missing_sweeps: 0,
            removed: false,
            change_updated_at: self.change_updated_at.clone(),
        }
    }
}

/// Hash of what the list shows of an order. A document link counts without
/// its query string: a pre-signed link signed anew is not a change to show.
pub fn display_hash(
    patient: Option<&str>,
    title: Option<&str>,
    lab: Option<&str>,
    tests: &[String],
    document: Option<&str>,
) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let document = document.map(link_identity);
    for part in [patient, title, lab, document.as_deref()] {
        h.update(part.unwrap_or("\u{1}").as_bytes());
        h.update(b"\0");
    }
    for t in tests {
        h.update(t.as_bytes());
        h.update(b"\x1f");
    }
    h.digest()
}

/// Why an alert is recorded without being announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SilentReason {
    /// The state is not chosen in the settings.
    Disabled,
    /// Notifications were paused (older versions recorded alerts found
    /// during a pause this way; now they are held for a digest instead).
    Paused,
    /// Found while rebuilding a damaged local database: listed as unseen,
    /// not announced one by one.
    Rebuilt,
}

impl SilentReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SilentReason::Disabled => "disabled",
            SilentReason::Paused => "paused",
            SilentReason::Rebuilt => "rebuilt",
        }
    }

    pub fn parse(s: &str) -> Option<SilentReason> {
        match s {
            "disabled" => Some(SilentReason::Disabled),
            "paused" => Some(SilentReason::Paused),
            "rebuilt" => Some(SilentReason::Rebuilt),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewAlert {
    pub order_id: String,
    pub state: LabState,
    pub fingerprint: String,
    /// Recorded but not shown.
    pub silent_reason: Option<SilentReason>,
}

#[derive(Debug, Clone, Copy)]
pub struct AlertRules {
    pub notify: NotifyStates,
}

/// Whether this detection is the silent first look at a clinic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// Normal watching: transitions alert.
    Off,
    /// The first sign-in: record what exists, announce nothing.
    Silent,
    /// The local database was damaged and rebuilt: record what exists;
    /// results that changed after `since` (or at an unknown time) are listed
    /// as unseen, without a notification each.
    Rebuilt { since: Option<DateTime<Utc>> },
}

#[derive(Debug, Default)]
pub struct Detection {
    pub upserts: Vec<OrderRecord>,
    pub alerts: Vec<NewAlert>,
}

/// The fingerprint part of an alert key.
fn alert_fingerprint(results_fp: Option<&str>, event_only: Option<&str>) -> String {
    match event_only {
        // An amendment seen only through a new event (same results): the
        // event is what is new.
        Some(event) => format!("event:{event}"),
        None => results_fp.unwrap_or("-").to_string(),
    }
}

/// Two values differ, both being known. `None` on either side is "not
/// known": learning a value is not a change worth announcing.
fn known_change<T: PartialEq>(before: Option<&T>, after: Option<&T>) -> bool {
    matches!((before, after), (Some(a), Some(b)) if a != b)
}

/// Does this fetched order need its detail fetched before detection? A list
/// item without results that has just entered a result state, or whose
/// timestamp moved while in one, would otherwise alert with an unknown
/// fingerprint or miss an amendment.
pub fn needs_detail(tracked: &HashMap<String, Tracked>, order: &LabOrder) -> bool {
    order.results.is_none()
        && order.state.is_result_state()
        && tracked.get(&order.id).is_none_or(|t| {
            t.state != order.state
                || t.results_fp.is_none()
                || known_change(t.updated_at.as_ref(), order.updated_at.as_ref())
        })
}

/// A not-yet-processed event about an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub id: String,
    /// When Fullscript says it happened (none when unknown or implausible).
    pub at: Option<DateTime<Utc>>,
}

impl NewEvent {
    /// Is this event news about the order as last recorded? An event no
    /// later than the order's last recorded change is that change (a
    /// sweep announced it while the events feed was failing, or the feed
    /// lists it late): it must not announce it again. Unknown times count
    /// as news: better twice than never.
    fn is_news_after(&self, recorded: Option<&Tracked>) -> bool {
        let recorded_at = recorded
            .and_then(|t| t.change_updated_at.as_deref())
            .and_then(crate::timestamp::parse_str);
        match (self.at, recorded_at) {
            // A second of slack: a list may give times to the second only.
            (Some(at), Some(recorded)) => at > recorded + chrono::Duration::seconds(1),
            _ => true,
        }
    }
}

/// `new_events`: order id → the newest not-yet-processed event about it.
pub fn detect(
    tracked: &HashMap<String, Tracked>,
    fetched: &[LabOrder],
    new_events: &HashMap<String, NewEvent>,
    baseline: Baseline,
    rules: &AlertRules,
) -> Detection {
    let mut out = Detection::default();
    for o in fetched {
        let prev = tracked.get(&o.id);
        let (results_fp, document_url) = match &o.results {
            Some(r) => (Some(r.fingerprint.clone()), r.document_url.clone()),
            None => (
                prev.and_then(|p| p.results_fp.clone()),
                prev.and_then(|p| p.document_url.clone()),
            ),
        };
        let display = display_hash(
            o.patient_name.as_ref().map(|p| p.expose()),
            o.title.as_deref(),
            o.lab_name.as_deref(),
            &o.test_names,
            document_url.as_deref(),
        );
        // Only an event newer than what was last recorded can say the
        // order changed again.
        let event = new_events
            .get(&o.id)
            .filter(|e| e.is_news_after(prev))
            .map(|e| &e.id);
        let (state_changed, results_changed, worth_writing) = match prev {
            None => (true, true, true),
            Some(p) => {
                let state_changed = p.state != o.state;
                let results_changed = known_change(p.results_fp.as_ref(), results_fp.as_ref());
                let write = state_changed
                    || p.results_fp != results_fp
                    || p.updated_at != o.updated_at
                    || p.display != display
                    || p.missing_sweeps > 0
                    || p.removed
                    || event.is_some();
                (state_changed, results_changed, write)
            }
        };
        if !worth_writing {
            continue;
        }
        let amended_again = o.state == LabState::ResultsAmended
            && !state_changed
            && (results_changed || event.is_some());
        // The order changed (or an event announced an amendment): its time
        // is what later events are compared with.
        let change_updated_at = if state_changed || results_changed || amended_again {
            o.updated_at.clone()
        } else {
            prev.and_then(|p| p.change_updated_at.clone())
        };
        out.upserts.push(OrderRecord {
            id: o.id.clone(),
            patient_name: o.patient_name.clone(),
            title: o.title.clone(),
            lab_name: o.lab_name.clone(),
            test_names: o.test_names.clone(),
            state: o.state.clone(),
            results_fp: results_fp.clone(),
            results_count: o.results.as_ref().map_or(0, |r| r.count),
            results_known: o.results.is_some(),
            document_url,
            updated_at: o.updated_at.clone(),
            change_updated_at,
            changed: state_changed || results_changed,
        });
        if !o.state.is_result_state() {
            continue;
        }
        let silent_reason = match baseline {
            Baseline::Silent => continue,
            Baseline::Rebuilt { since } => {
                let recent = match (since, o.updated_at.as_deref()) {
                    // The same instant counts as after: better listed twice than missed.
                    (Some(since), Some(at)) => {
                        crate::timestamp::parse_str(at).is_none_or(|at| at >= since)
                    }
                    _ => true,
                };
                if !recent {
                    continue;
                }
                Some(SilentReason::Rebuilt)
            }
            Baseline::Off => None,
        };
        if silent_reason.is_none() && !(state_changed || amended_again) {
            continue;
        }
        let event_only = (amended_again && !results_changed)
            .then_some(event.map(String::as_str))
            .flatten();
        // A pause or clinic hours do not make an alert silent: delivery
        // holds it for a digest (see `schedule`).
        let silent_reason = silent_reason.or(if !rules.notify.allows(&o.state) {
            Some(SilentReason::Disabled)
        } else {
            None
        });
        out.alerts.push(NewAlert {
            order_id: o.id.clone(),
            state: o.state.clone(),
            fingerprint: alert_fingerprint(results_fp.as_deref(), event_only),
            silent_reason,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::ResultsSummary;

    fn order(id: &str, state: LabState, fp: &str, updated: &str) -> LabOrder {
        LabOrder {
            id: id.into(),
            state,
            patient_name: None,
            title: Some("Panel".into()),
            lab_name: None,
            test_names: vec![],
            results: Some(ResultsSummary {
                fingerprint: fp.into(),
                count: 1,
                document_url: None,
            }),
            updated_at: Some(updated.into()),
        }
    }

    fn rules() -> AlertRules {
        AlertRules {
            notify: NotifyStates::default(),
        }
    }

    fn track(d: &Detection, map: &mut HashMap<String, Tracked>) {
        for r in &d.upserts {
            map.insert(r.id.clone(), r.tracked());
        }
    }

    #[test]
    fn baseline_records_without_alerting() {
        let fetched = vec![order("a", LabState::ResultsReady, "f", "t1")];
        let d = detect(
            &HashMap::new(),
            &fetched,
            &HashMap::new(),
            Baseline::Silent,
            &rules(),
        );
        assert_eq!(d.upserts.len(), 1);
        assert!(d.alerts.is_empty());
    }

    #[test]
    fn lifecycle_alerts_exactly_on_result_transitions() {
        let mut tracked = HashMap::new();
        let none = HashMap::new();
        let steps = [
            (LabState::Processing, "f0", "t0", None),
            (
                LabState::PartialResults,
                "f1",
                "t1",
                Some("partial_results"),
            ),
            (LabState::PartialResults, "f1b", "t1b", None), // more partial results: not "entering"
            (LabState::ResultsReady, "f2", "t2", Some("results_ready")),
            (LabState::InterpretationReady, "f2", "t3", None),
            (
                LabState::ResultsAmended,
                "f3",
                "t4",
                Some("results_amended"),
            ),
            (
                LabState::ResultsAmended,
                "f4",
                "t5",
                Some("results_amended"),
            ),
            (LabState::ResultsAmended, "f4", "t5", None), // nothing changed
            (LabState::ResultsAmended, "f4", "t6", None), // only the order's timestamp moved
            (LabState::Other("specimen_lost".into()), "f4", "t7", None),
        ];
        let mut first = true;
        for (state, fp, updated, expect) in steps {
            let d = detect(
                &tracked,
                &[order("o", state, fp, updated)],
                &none,
                if first {
                    Baseline::Silent
                } else {
                    Baseline::Off
                },
                &rules(),
            );
            first = false;
            let got = d.alerts.first().map(|a| a.state.as_str().to_string());
            assert_eq!(got.as_deref(), expect, "at {fp}/{updated}");
            track(&d, &mut tracked);
        }
    }

    #[test]
    fn an_event_no_newer_than_the_recorded_update_announces_nothing_again() {
        let mut tracked = HashMap::new();
        let o = order(
            "o",
            LabState::ResultsAmended,
            "f",
            "2026-12-01T10:00:00.250Z",
        );
        track(
            &detect(
                &tracked,
                std::slice::from_ref(&o),
                &HashMap::new(),
                Baseline::Silent,
                &rules(),
            ),
            &mut tracked,
        );
        let at = |t: &str| crate::timestamp::parse_str(t);
        let event = |id: &str, t: &str| {
            HashMap::from([(
                "o".to_string(),
                NewEvent {
                    id: id.into(),
                    at: at(t),
                },
            )])
        };
        // The change already recorded (the same instant, or a list that
        // rounded it to the second): not news.
        for t in [
            "2026-12-01T10:00:00.250Z",
            "2026-12-01T10:00:00.900Z",
            "2026-12-01T09:59:00Z",
        ] {
            let d = detect(
                &tracked,
                std::slice::from_ref(&o),
                &event("old", t),
                Baseline::Off,
                &rules(),
            );
            assert!(d.alerts.is_empty(), "{t}");
        }
        // Later than what was recorded: a further amendment.
        let d = detect(
            &tracked,
            std::slice::from_ref(&o),
            &event("new", "2026-12-01T10:05:00Z"),
            Baseline::Off,
            &rules(),
        );
        assert_eq!(d.alerts.len(), 1);
        assert_eq!(d.alerts[0].fingerprint, "event:new");
    }

    #[test]
    fn amendment_seen_only_as_a_new_event_alerts_once() {
        let mut tracked = HashMap::new();
        let o = order("o", LabState::ResultsAmended, "f", "t");
        track(
            &detect(
                &tracked,
                std::slice::from_ref(&o),
                &HashMap::new(),
                Baseline::Silent,
                &rules(),
            ),
            &mut tracked,
        );
        let events = HashMap::from([(
            "o".to_string(),
            NewEvent {
                id: "evt-9".into(),
                at: None,
            },
        )]);
        let d = detect(
            &tracked,
            std::slice::from_ref(&o),
            &events,
            Baseline::Off,
            &rules(),
        );
        assert_eq!(d.alerts.len(), 1);
        assert_eq!(d.alerts[0].fingerprint, "event:evt-9");
        track(&d, &mut tracked);
        assert!(
            detect(&tracked, &[o], &HashMap::new(), Baseline::Off, &rules())
                .alerts
                .is_empty()
        );
    }

    #[test]
    fn a_fingerprint_learned_for_the_first_time_is_not_an_amendment() {
        // Read first from a list without results (or after an upgrade that
        // forgot the old fingerprints): the first fingerprint is recorded silently.
        let mut tracked = HashMap::new();
        let mut bare = order("o", LabState::ResultsAmended, "f", "t");
        bare.results = None;
        track(
            &detect(
                &tracked,
                &[bare],
                &HashMap::new(),
                Baseline::Silent,
                &rules(),
            ),
            &mut tracked,
        );
        assert_eq!(tracked["o"].results_fp, None);
        let full = order("o", LabState::ResultsAmended, "f", "t");
        let d = detect(&tracked, &[full], &HashMap::new(), Baseline::Off, &rules());
        assert_eq!(d.upserts.len(), 1, "the fingerprint is recorded");
        assert!(d.alerts.is_empty());
    }

    #[test]
    fn an_order_that_comes_back_alerts_only_if_it_changed_meanwhile() {
        let mut tracked = HashMap::new();
        let o = order("o", LabState::ResultsReady, "f", "t");
        track(
            &detect(
                &tracked,
                std::slice::from_ref(&o),
                &HashMap::new(),
                Baseline::Silent,
                &rules(),
            ),
            &mut tracked,
        );
        let t = tracked.get_mut("o").unwrap();
        t.removed = true;
        t.missing_sweeps = 3;
        let d = detect(
            &tracked,
            std::slice::from_ref(&o),
            &HashMap::new(),
            Baseline::Off,
            &rules(),
        );
        assert_eq!(d.upserts.len(), 1, "written back, no longer removed");
        assert!(d.alerts.is_empty(), "same state and results: no alert");
        let amended = order("o", LabState::ResultsAmended, "f2", "t2");
        let d = detect(
            &tracked,
            &[amended],
            &HashMap::new(),
            Baseline::Off,
            &rules(),
        );
        assert_eq!(d.alerts.len(), 1);
    }

    #[test]
    fn disabled_states_record_silently() {
        let r = AlertRules {
            notify: NotifyStates {
                results_amended: false,
                ..NotifyStates::default()
            },
        };
        let d = detect(
            &HashMap::new(),
            &[order("o", LabState::ResultsAmended, "f", "t")],
            &HashMap::new(),
            Baseline::Off,
            &r,
        );
        assert_eq!(d.alerts[0].silent_reason, Some(SilentReason::Disabled));
    }

    #[test]
    fn a_rebuilt_database_lists_recent_results_as_unseen_without_announcing_them() {
        let since = crate::timestamp::parse_str("2026-11-01T00:00:00Z");
        let fetched = [
            order(
                "old",
                LabState::ResultsReady,
                "f",
                "2026-10-01T00:00:00.000Z",
            ),
            order(
                "new",
                LabState::ResultsReady,
                "f",
                "2026-11-20T00:00:00.000Z",
            ),
            order(
                "busy",
                LabState::Processing,
                "f",
                "2026-11-20T00:00:00.000Z",
            ),
        ];
        let d = detect(
            &HashMap::new(),
            &fetched,
            &HashMap::new(),
            Baseline::Rebuilt { since },
            &rules(),
        );
        assert_eq!(d.upserts.len(), 3);
        assert_eq!(d.alerts.len(), 1);
        assert_eq!(d.alerts[0].order_id, "new");
        assert_eq!(d.alerts[0].silent_reason, Some(SilentReason::Rebuilt));
    }

    #[test]
    fn unchanged_orders_cost_nothing_and_list_items_without_results_keep_the_fingerprint() {
        let mut tracked = HashMap::new();
        let o = order("o", LabState::ResultsReady, "f", "t");
        track(
            &detect(
                &tracked,
                std::slice::from_ref(&o),
                &HashMap::new(),
                Baseline::Silent,
                &rules(),
            ),
            &mut tracked,
        );
        assert!(detect(
            &tracked,
            std::slice::from_ref(&o),
            &HashMap::new(),
            Baseline::Off,
            &rules()
        )
        .upserts
        .is_empty());
        let mut bare = o.clone();
        bare.results = None;
        assert!(!needs_detail(&tracked, &bare));
        assert!(detect(
            &tracked,
            &[bare.clone()],
            &HashMap::new(),
            Baseline::Off,
            &rules()
        )
        .upserts
        .is_empty());
        bare.updated_at = Some("t-later".into());
        assert!(needs_detail(&tracked, &bare), "it may have been amended");
        bare.updated_at = Some("t".into());
        bare.state = LabState::ResultsAmended;
        assert!(needs_detail(&tracked, &bare));
    }
}
