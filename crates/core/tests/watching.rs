//! Watching lab orders against the simulator: what alerts, exactly once,
//! across restarts and faults, at what request cost.

mod common;

use common::*;
use fsn_core::policy::NotificationKind;
use fsn_core::watcher::Connection;
use fsn_simulator::{FaultKind, FaultSpec, LabOrder};

#[tokio::test]
async fn each_result_transition_alerts_once_with_the_right_text_and_url() {
    let r = rig("").await;
    let o = r.order("Priya", "processing");
    let mut w = r.watcher();
    w.run_cycle().await.unwrap(); // silent baseline
    assert!(r.notes.taken().is_empty());

    let steps = [
        ("partial_results", Some("Partial lab results received")),
        ("results_ready", Some("Lab results ready")),
        ("interpretation_ready", None),
        ("results_amended", Some("Lab results amended")),
    ];
    for (state, expect) in steps {
        r.sim().set_state(&o.id, state).unwrap();
        let report = w.run_cycle().await.unwrap();
        let notes = r.notes.taken();
        match expect {
            Some(title) => {
                assert_eq!(titles(&notes), [title], "after {state}");
                let n = &notes[0];
                assert_eq!(n.body, "Thyroid Panel · Quest Diagnostics");
                assert!(!n.body.contains("Priya"), "no patient name by default");
                assert_eq!(n.url.as_ref().unwrap().as_str(), r.results_url(&o.id));
                assert_eq!(
                    n.kind,
                    NotificationKind::Result {
                        order_id: o.id.clone()
                    }
                );
                assert_eq!(report.delivered, 1);
            }
            None => assert!(notes.is_empty(), "{state} must not alert"),
        }
        // Nothing twice: a further cycle with no change says nothing.
        w.run_cycle().await.unwrap();
        assert!(r.notes.taken().is_empty());
    }
    let alerts = r.app.store.alerts().unwrap();
    assert_eq!(alerts.len(), 3);
    assert!(alerts.iter().all(|a| a.delivered_at.is_some()));
}

#[tokio::test]
async fn two_successive_amendments_alert_twice() {
    let r = rig("").await;
    let o = r.order("Marcus", "results_ready");
    let mut w = r.watcher();
    w.run_cycle().await.unwrap();
    r.sim().amend(&o.id).unwrap();
    w.run_cycle().await.unwrap();
    r.sim().amend(&o.id).unwrap();
    w.run_cycle().await.unwrap();
    assert_eq!(
        titles(&r.notes.taken()),
        ["Lab results amended", "Lab results amended"]
    );
}

#[tokio::test]
async fn other_transitions_and_unknown_states_stay_silent_but_update_the_list() {
    let r = rig("").await;
    let o = r.order("Sofia", "purchased");
    let mut w = r.watcher();
    w.run_cycle().await.unwrap();
    for state in [
        "schedule_appointment",
        "upcoming_appointment",
        "processing",
        "specimen_lost_in_transit",
    ] {
        r.sim().set_state(&o.id, state).unwrap();
        // These raise no event: a sweep finds them (every cycle here).
        w.handle().check_now_with_sweep();
        w.run_cycle().await.unwrap();
        assert!(r.notes.taken().is_empty(), "{state}");
        let rows = r.app.store.list_orders().unwrap();
        assert_eq!(rows[0].state.as_str(), state);
    }
    let row = &r.app.store.list_orders().unwrap()[0];
    assert_eq!(row.group, "other");
    assert_eq!(row.state_label, "Other");
    // An unrecognised state is said, so a renamed result state cannot go unnoticed.
    let status = r.app.status(Some(&r.session)).await;
    assert_eq!(
        status.unknown_states,
        std::collections::BTreeMap::from([("specimen_lost_in_transit".to_string(), 1)])
    );
}

#[tokio::test]
async fn legacy_state_names_and_the_status_field_are_understood() {
    let r = rig("").await;
    r.sim().update_shape(|s| {
        s.legacy_state_names = true;
        s.state_field = "status".into();
        s.list_root = "orders".into();
        s.events_root = "lab_order_events".into();
    });
    let o = r.order("Noah", "processing");
    let mut w = r.watcher();
    w.run_cycle().await.unwrap();
    r.sim().set_state(&o.id, "partial_results").unwrap(); // served as "results_received"
    w.run_cycle().await.unwrap();
    r.sim().set_state(&o.id, "results_ready").unwrap(); // served as "all_results_received"
    w.run_cycle().await.unwrap();
    assert_eq!(
        titles(&r.notes.taken()),
        ["Partial lab results received", "Lab results ready"]
    );
    assert_eq!(
        r.app.store.list_orders().unwrap()[0].state.as_str(),
        "results_ready"
    );
}

#[tokio::test]
async fn first_sign_in_is_a_silent_baseline_and_later_starts_catch_up() {
    let r = rig("").await;
    let ready = r.order("Hannah", "results_ready");
    let waiting = r.order("Liam", "processing");
    let mut w = r.watcher();
    let report = w.run_cycle().await.unwrap();
    assert_eq!(report.new_alerts, 0);
    assert!(r.notes.taken().is_empty(), "no flood of old results");
    assert_eq!(r.app.store.list_orders().unwrap().len(), 2);
    drop(w);

    // While the app is off, results arrive.
    r.sim().set_state(&waiting.id, "results_ready").unwrap();
    r.sim().amend(&ready.id).unwrap();
    let mut w = r.watcher();
    w.run_cycle().await.unwrap();
    let mut got = titles(&r.notes.taken());
    got.sort();
    assert_eq!(got, ["Lab results amended", "Lab results ready"]);
}

#[tokio::test]
async fn many_alerts_at_once_become_one_summary() {
    let r = rig("").await;
    let orders: Vec<LabOrder> = (0..5)
        .map(|i| r.order(&format!("P{i}"), "processing"))
        .collect();
    let mut w = r.watcher();
    w.run_cycle().await.unwrap();
    for o in &orders {
        r.sim().set_state(&o.id, "results_ready").unwrap();
    }
    w.run_cycle().await.unwrap();
    let notes = r.notes.taken();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].title, "5 new lab results");
    assert_eq!(notes[0].alert_ids.len(), 5);
    assert!(matches!(notes[0].kind, NotificationKind::Summary { .. }));
    assert_eq!(r.app.store.pending_count().unwrap(), 0);
}

#[tokio::test]
async fn settings_choose_what_notifies_and_whether_names_show() {
    let r = rig("notify_states = [\"results_ready\"]\nshow_patient_names = true").await;
    let o = r.order("Grace", "processing");
    let mut w = r.watcher();
    w.run_cycle().await.unwrap();
    r.sim().set_state(&o.id, "partial_results").unwrap();
    w.run_cycle().await.unwrap();
    assert!(
        r.notes.taken().is_empty(),
        "partial results are switched off"
    );
    assert_eq!(
        r.app.store.unseen_count().unwrap(),
        1,
        "but the list still shows them as new"
    );
    r.sim().set_state(&o.id, "results_ready").unwrap();
    w.run_cycle().await.unwrap();
    let notes = r.notes.taken();
    assert_eq!(
        notes[0].body,
        "Grace Testpatient — Thyroid Panel · Quest Diagnostics"
    );

    // Paused: recorded and held, not shown; when the pause ends, announced
    // (never silently dropped).
    w.handle().update_settings(|s| {
        s.paused_until = Some(chrono::Utc::now() + chrono::Duration::hours(1))
    });
    r.sim().amend(&o.id).unwrap();
    w.handle()
        .update_settings(|s| s.notify_states.results_amended = true);
    w.run_cycle().await.unwrap();
    assert!(r.notes.taken().is_empty());
    w.handle().update_settings(|s| s.paused_until = None);
    w.run_cycle().await.unwrap();
    let notes = r.notes.taken();
    assert_eq!(titles(&notes), ["While you were away"]);
    assert_eq!(notes[0].body, "1 amended. Open to review.");
    assert_eq!(
        r.app.store.alerts().unwrap().last().unwrap().silent_reason,
        None
    );
}

#[tokio::test]
async fn without_a_notification_service_alerts_wait_in_the_outbox() {
    let r = rig("").await;
    let o = r.order("Amara", "processing");
    let mut w = r.watcher();
    w.run_cycle().await.unwrap();
    r.notes
        .unavailable
        .store(true, std::sync::atomic::Ordering::SeqCst);
    r.sim().set_state(&o.id, "results_ready").unwrap();
    w.run_cycle().await.unwrap();
    assert_eq!(r.app.store.pending_count().unwrap(), 1);
    assert!(!w.handle().status().notifications_available);
    r.notes
        .unavailable
        .store(false, std::sync::atomic::Ordering::SeqCst);
    w.run_cycle().await.unwrap();
    assert_eq!(titles(&r.notes.taken()), ["Lab results ready"]);
    w.run_cycle().await.unwrap();
    assert!(r.notes.taken().is_empty());
    assert!(w.handle().status().notifications_available);
}

#[tokio::test]
async fn an_idle_cycle_costs_one_request() {
    let r = rig("sweep_every = 1000").await;
    r.order("Elena", "processing");
    let mut w = r.watcher();
    w.run_cycle().await.unwrap(); // baseline: events + one page
    let before = r.sim().requests().len();
    for _ in 0..5 {
        let report = w.run_cycle().await.unwrap();
        assert_eq!(report.requests, 1);
    }
    let idle = r.requests_since(before);
    assert_eq!(idle.len(), 5);
    assert!(idle.iter().all(|q| q.path == "/api/events/lab_orders"));
}

#[tokio::test]
async fn two_hundred_fifty_orders_over_three_pages() {
    let r = rig("").await;
    r.sim().add_bulk_orders(250, "processing");
    let mut w = r.watcher();
    let before = r.sim().requests().len();
    let report = w.run_cycle().await.unwrap();
    assert_eq!(report.orders_fetched, 250);
    assert_eq!(w.tracked_len(), 250);
    let pages: Vec<String> = r
        .requests_since(before)
        .into_iter()
        .filter(|q| q.path == "/api/clinic/labs/orders")
        .map(|q| q.query)
        .collect();
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert!(pages.iter().all(|q| q.contains("page%5Bsize%5D=100")));
    assert_eq!(r.app.store.counts_by_state().unwrap()["processing"], 250);
}

#[tokio::test]
async fn when_events_are_refused_every_cycle_sweeps() {
    let r = rig("sweep_every = 1000").await;
    r.sim().update_shape(|s| s.events_enabled = false);
    let o = r.order("Mei", "processing");
    let mut w = r.watcher();
    w.run_cycle().await.unwrap();
    assert_eq!(w.handle().status().events_available, Some(false));
    r.sim().set_state(&o.id, "results_ready").unwrap();
    let report = w.run_cycle().await.unwrap();
    assert!(report.swept);
    assert_eq!(titles(&r.notes.taken()), ["Lab results ready"]);
    let status = r.app.status(Some(&r.session)).await;
    assert_eq!(status.watch.events_available, Some(false));
}

#[tokio::test]
async fn a_bad_record_is_skipped_and_the_rest_kept() {
    let r = rig("").await;
    let good = r.order("Ada", "processing");
    let bad = r.order("Bob", "processing");
    let mut w = r.watcher();
    w.run_cycle().await.unwrap();
    r.sim().set_state(&good.id, "results_ready").unwrap();
    r.sim().set_state(&bad.id, "results_ready").unwrap();
    r.sim()
        .corrupt_order(
            &bad.id,
            serde_json::json!({"id": bad.id, "state": 42, "first_name": "Bob"}),
        )
        .unwrap();
    let report = w.run_cycle().await.unwrap();
    assert_eq!(report.skipped_records, 1);
    let notes = r.notes.taken();
    assert_eq!(notes.len(), 1);
    assert_eq!(
        notes[0].kind,
        NotificationKind::Result {
            order_id: good.id.clone()
        }
    );
}

async fn fault_then_recover(kind: FaultKind, extra: &str) {
    let r = rig(extra).await;
    let o = r.order("Faulty", "processing");
    let mut w = r.watcher();
    w.run_cycle().await.unwrap();
    r.sim().set_state(&o.id, "results_ready").unwrap();
    // On the orders (a failing events feed alone does not fail a cycle: the
    // order list is read instead, see `bad_day.rs`).
    r.sim()
        .add_fault(FaultSpec {
            kind: kind.clone(),
            count: Some(1),
            for_secs: None,
            path_prefix: Some("/api/clinic/labs/orders".into()),
        })
        .unwrap();
    let (first, _) = w.cycle().await;
    assert!(first.is_err(), "{kind:?} must fail the cycle");
    let status = w.handle().status();
    assert!(
        matches!(
            status.connection,
            Connection::Retrying | Connection::Offline | Connection::RateLimited
        ),
        "{status:?}"
    );
    assert!(status.retrying_since.is_some());
    assert!(r.notes.taken().is_empty());
    let (second, _) = w.cycle().await;
    second.unwrap();
    assert_eq!(
        titles(&r.notes.taken()),
        ["Lab results ready"],
        "{kind:?}: nothing lost"
    );
    w.cycle().await.0.unwrap();
    assert!(r.notes.taken().is_empty(), "{kind:?}: nothing twice");
    assert_eq!(w.handle().status().connection, Connection::Ok);
    assert!(w.handle().status().retrying_since.is_none());
}

#[tokio::test]
async fn server_errors_recover_with_nothing_lost() {
    fault_then_recover(FaultKind::Status { status: 500 }, "").await;
    fault_then_recover(FaultKind::Status { status: 503 }, "").await;
}

#[tokio::test]
async fn malformed_json_recovers_with_nothing_lost() {
    fault_then_recover(FaultKind::MalformedJson, "").await;
}

#[tokio::test]
async fn a_dropped_connection_recovers_with_nothing_lost() {
    fault_then_recover(FaultKind::DropConnection, "").await;
}

#[tokio::test]
async fn a_timeout_recovers_with_nothing_lost() {
    fault_then_recover(
        FaultKind::Delay { delay_ms: 1_500 },
        "request_timeout_secs = 0.3",
    )
    .await;
}

#[tokio::test]
async fn a_failure_mid_cycle_keeps_what_was_read_and_retries_the_rest() {
    let r = rig("sweep_every = 1000").await;
    let a = r.order("First", "processing");
    let b = r.order("Second", "processing");
    let mut w = r.watcher();
    w.run_cycle().await.unwrap();
    r.sim().set_state(&a.id, "results_ready").unwrap();
    r.sim().set_state(&b.id, "results_ready").unwrap();
    r.sim()
        .add_fault(FaultSpec {
            kind: FaultKind::Status { status: 500 },
            count: Some(1),
            for_secs: None,
            path_prefix: Some(format!("/api/clinic/labs/orders/{}", b.id)),
        })
        .unwrap();
    assert!(w.run_cycle().await.is_err());
    // The first order's alert was committed and shown despite the failure.
    let first: Vec<NotificationKind> = r.notes.taken().into_iter().map(|n| n.kind).collect();
    assert!(
        first.is_empty()
            || first
                == [NotificationKind::Result {
                    order_id: a.id.clone()
                }]
    );
    w.run_cycle().await.unwrap();
    let mut all: Vec<NotificationKind> = first;
    all.extend(r.notes.taken().into_iter().map(|n| n.kind));
    // Committed alerts from the failed cycle are delivered by the next one.
    let ids: Vec<String> = all
        .into_iter()
        .map(|k| match k {
            NotificationKind::Result { order_id } => order_id,
            other => panic!("{other:?}"),
        })
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    let mut want = vec![a.id.clone(), b.id.clone()];
    want.sort();
    assert_eq!(sorted, want, "each exactly once");
}

#[tokio::test]
async fn rate_limiting_waits_for_retry_after_within_bounds() {
    let r = rig("").await;
    let mut w = r.watcher();
    w.run_cycle().await.unwrap();
    r.sim()
        .add_fault(FaultSpec {
            kind: FaultKind::RateLimited {
                retry_after_secs: Some(120),
                retry_after_raw: None,
            },
            count: Some(1),
            for_secs: None,
            path_prefix: None,
        })
        .unwrap();
    let (result, wait) = w.cycle().await;
    assert!(result.is_err());
    assert_eq!(w.handle().status().connection, Connection::RateLimited);
    // 120 s asked, ±20 % so that clients do not all come back together.
    assert!(
        (96..=144).contains(&wait.as_secs()),
        "waits what Fullscript asked: {wait:?}"
    );
    assert!(w
        .handle()
        .status()
        .last_error
        .unwrap()
        .contains("slow down"));
}
