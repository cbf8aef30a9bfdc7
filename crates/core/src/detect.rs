//! Change detection: compare freshly fetched lab orders with what was known
//! and decide which rows to write and which alerts to raise. Pure and fast
//! (a hash lookup per order), so it runs over every order on every sweep.
//!
//! What alerts: entering `partial_results`, `results_ready` or
//! `results_amended`, and every further amendment while an order stays
//! `results_amended` (a new event, a changed results fingerprint or
//! `updated_at`). Every alert is keyed by (order, state, fingerprint) and the
//! store ignores a key it has seen, so nothing alerts twice. During the
//! first sign-in's baseline nothing alerts.

use std::collections::HashMap;

use crate::config::NotifyStates;
use crate::lab::{LabOrder, LabState};
use crate::store::{display_hash, NewAlert, OrderRecord, Tracked};

#[derive(Debug, Clone, Copy)]
pub struct AlertRules {
    pub notify: NotifyStates,
    /// Notifications paused: alerts are recorded (the list shows them) but not shown.
    pub paused: bool,
}

#[derive(Debug, Default)]
pub struct Detection {
    pub upserts: Vec<OrderRecord>,
    pub alerts: Vec<NewAlert>,
}

/// The fingerprint part of an alert key.
fn alert_fingerprint(
    state: &LabState,
    results_fp: Option<&str>,
    updated_at: Option<&str>,
    event_only: Option<&str>,
) -> String {
    let fp = results_fp.unwrap_or("-");
    match (state, event_only) {
        // An amendment seen only through a new event (same results, same
        // timestamp): the event is what is new.
        (LabState::ResultsAmended, Some(event)) => format!("event:{event}"),
        (LabState::ResultsAmended, None) => format!("{fp}@{}", updated_at.unwrap_or("-")),
        _ => fp.to_string(),
    }
}

/// Does this fetched order need its detail fetched before detection? A list
/// item without results that has just entered a result state would
/// otherwise alert with an unknown fingerprint.
pub fn needs_detail(tracked: &HashMap<String, Tracked>, order: &LabOrder) -> bool {
    order.results.is_none()
        && order.state.is_result_state()
        && tracked
            .get(&order.id)
            .is_none_or(|t| t.state != order.state)
}

/// `new_events`: order id → id of a not-yet-processed event about it.
pub fn detect(
    tracked: &HashMap<String, Tracked>,
    fetched: &[LabOrder],
    new_events: &HashMap<String, String>,
    baseline: bool,
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
        let event = new_events.get(&o.id);
        let (state_changed, results_changed, updated_changed, display_changed) = match prev {
            None => (true, true, true, true),
            Some(p) => (
                p.state != o.state,
                p.results_fp != results_fp,
                p.updated_at != o.updated_at,
                p.display != display,
            ),
        };
        if !(state_changed
            || results_changed
            || updated_changed
            || display_changed
            || event.is_some())
        {
            continue;
        }
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
            changed: state_changed || results_changed,
        });
        if baseline || !o.state.is_result_state() {
            continue;
        }
        let amended_again = o.state == LabState::ResultsAmended
            && !state_changed
            && (results_changed || updated_changed || event.is_some());
        if !(state_changed || amended_again) {
            continue;
        }
        let event_only = (amended_again && !results_changed && !updated_changed)
            .then_some(event.map(String::as_str))
            .flatten();
        let silent_reason = if !rules.notify.allows(&o.state) {
            Some("disabled")
        } else if rules.paused {
            Some("paused")
        } else {
            None
        };
        out.alerts.push(NewAlert {
            order_id: o.id.clone(),
            state: o.state.clone(),
            fingerprint: alert_fingerprint(
                &o.state,
                results_fp.as_deref(),
                o.updated_at.as_deref(),
                event_only,
            ),
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
            paused: false,
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
        let d = detect(&HashMap::new(), &fetched, &HashMap::new(), true, &rules());
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
            (LabState::Other("specimen_lost".into()), "f4", "t6", None),
        ];
        let mut first = true;
        for (state, fp, updated, expect) in steps {
            let d = detect(
                &tracked,
                &[order("o", state, fp, updated)],
                &none,
                first,
                &rules(),
            );
            first = false;
            let got = d.alerts.first().map(|a| a.state.as_str().to_string());
            assert_eq!(got.as_deref(), expect, "at {fp}/{updated}");
            track(&d, &mut tracked);
        }
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
                true,
                &rules(),
            ),
            &mut tracked,
        );
        let events = HashMap::from([("o".to_string(), "evt-9".to_string())]);
        let d = detect(&tracked, std::slice::from_ref(&o), &events, false, &rules());
        assert_eq!(d.alerts.len(), 1);
        assert_eq!(d.alerts[0].fingerprint, "event:evt-9");
        track(&d, &mut tracked);
        assert!(detect(&tracked, &[o], &HashMap::new(), false, &rules())
            .alerts
            .is_empty());
    }

    #[test]
    fn disabled_states_and_pause_record_silently() {
        let r = AlertRules {
            notify: NotifyStates {
                results_amended: false,
                ..NotifyStates::default()
            },
            paused: false,
        };
        let d = detect(
            &HashMap::new(),
            &[order("o", LabState::ResultsAmended, "f", "t")],
            &HashMap::new(),
            false,
            &r,
        );
        assert_eq!(d.alerts[0].silent_reason, Some("disabled"));
        let p = AlertRules {
            notify: NotifyStates::default(),
            paused: true,
        };
        let d = detect(
            &HashMap::new(),
            &[order("o", LabState::ResultsReady, "f", "t")],
            &HashMap::new(),
            false,
            &p,
        );
        assert_eq!(d.alerts[0].silent_reason, Some("paused"));
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
                true,
                &rules(),
            ),
            &mut tracked,
        );
        assert!(detect(
            &tracked,
            std::slice::from_ref(&o),
            &HashMap::new(),
            false,
            &rules()
        )
        .upserts
        .is_empty());
        let mut bare = o.clone();
        bare.results = None;
        assert!(!needs_detail(&tracked, &bare));
        assert!(
            detect(&tracked, &[bare.clone()], &HashMap::new(), false, &rules())
                .upserts
                .is_empty()
        );
        bare.state = LabState::ResultsAmended;
        assert!(needs_detail(&tracked, &bare));
    }
}
