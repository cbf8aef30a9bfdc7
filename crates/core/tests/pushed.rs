//! Watching with results pushed by a relay: a pushed event checks just its
//! order (and alerts once, whatever the relay repeats); the order list is
//! read newest change first and only as far as something changed; a list
//! that does not come sorted costs a full read at most a few times a day,
//! and says so; losing the push polls as without a relay.
//!
//! The push itself (the relay, its stream) is tested end to end in
//! `crates/relay/tests` and `tests/tests/relay.rs`; here the watcher is
//! handed events as the listener hands them.

mod common;

use common::*;
use fsn_core::lab::LabEvent;
use fsn_core::status::{PushState, SweepMode};
use fsn_core::watcher::{Pushed, Watcher};
use fsn_simulator::OrdersSort;

/// A relay that is never reached: the watcher only reads its settings.
const RELAY: &str = "relay_url = \"http://127.0.0.1:9/\"\n";

/// Signed in through the simulator, then opened again with a relay
/// configured (tokens stay valid; no token call is made here).
async fn pushed_rig(extra: &str) -> Rig {
    let mut r = rig(extra).await;
    r.app = r.w.app(&format!("{extra}{RELAY}"));
    r.session = r.app.session().unwrap();
    assert!(r.session.load().await.unwrap());
    r
}

fn watcher(r: &Rig) -> Watcher {
    r.watcher()
}

fn pushed(seq: u64, id: &str, order_id: &str) -> Pushed {
    Pushed {
        seq: Some(seq),
        event: LabEvent {
            id: id.into(),
            created_at: Some(chrono::Utc::now()),
            order_id: order_id.into(),
        },
    }
}

fn state_of(r: &Rig, id: &str) -> String {
    r.app
        .store
        .list_orders()
        .unwrap()
        .into_iter()
        .find(|o| o.id == id)
        .map(|o| o.state.as_str().to_string())
        .unwrap_or_default()
}

fn api_requests(r: &Rig, since: usize) -> Vec<String> {
    r.requests_since(since)
        .into_iter()
        .filter(|e| e.path.starts_with("/api/") && !e.path.starts_with("/api/oauth"))
        .map(|e| {
            if e.query.is_empty() {
                e.path
            } else {
                format!("{}?{}", e.path, e.query)
            }
        })
        .collect()
}

#[tokio::test]
async fn a_pushed_event_checks_just_its_order_alerts_once_and_moves_the_resume_point() {
    let r = pushed_rig("").await;
    let o = r.order("Priya", "processing");
    let mut w = watcher(&r);
    w.run_cycle().await.unwrap(); // the silent first look (a full read)
    let h = w.handle();
    h.set_push(PushState::Connected);

    r.sim().set_state(&o.id, "results_ready").unwrap();
    let before = r.sim().requests().len();
    h.push_event(pushed(7, "ev-1", &o.id));
    let report = w.run_cycle().await.unwrap();
    assert_eq!(titles(&r.notes.taken()), ["Lab results ready"]);
    assert_eq!(report.delivered, 1);
    assert_eq!(
        api_requests(&r, before),
        [format!("/api/clinic/labs/orders/{}", o.id)],
        "one request: the order's detail (no events feed, no list)"
    );
    assert_eq!(r.app.state().push_last_event_id().unwrap(), Some(7));

    // The relay repeats it (a reconnect, a duplicate webhook): nothing.
    let before = r.sim().requests().len();
    h.push_event(pushed(7, "ev-1", &o.id));
    w.run_cycle().await.unwrap();
    assert!(r.notes.taken().is_empty());
    assert!(api_requests(&r, before).is_empty(), "not even a request");
}

#[tokio::test]
async fn a_pushed_event_whose_order_cannot_be_fetched_waits_and_the_push_does_not_resume_past_it() {
    let r = pushed_rig("").await;
    let a = r.order("Ana", "processing");
    let b = r.order("Ben", "processing");
    let mut w = watcher(&r);
    w.run_cycle().await.unwrap();
    let h = w.handle();
    h.set_push(PushState::Connected);
    r.sim().set_state(&a.id, "results_ready").unwrap();
    r.sim().set_state(&b.id, "results_ready").unwrap();
    r.sim()
        .add_fault(fsn_simulator::FaultSpec {
            path_prefix: Some(format!("/api/clinic/labs/orders/{}", a.id)),
            kind: fsn_simulator::FaultKind::Status { status: 503 },
            count: Some(1),
            for_secs: None,
        })
        .unwrap();
    h.push_event(pushed(1, "ev-a", &a.id));
    h.push_event(pushed(2, "ev-b", &b.id));
    assert!(w.run_cycle().await.is_err(), "Fullscript failed this check");
    assert_eq!(
        r.app.state().push_last_event_id().unwrap(),
        None,
        "not past the event still waiting"
    );
    w.run_cycle().await.unwrap();
    let mut t = titles(&r.notes.taken());
    t.sort();
    assert_eq!(t, ["Lab results ready", "Lab results ready"]);
    assert_eq!(r.app.state().push_last_event_id().unwrap(), Some(2));
}

#[tokio::test]
async fn while_pushed_the_list_is_read_newest_change_first_and_only_as_far_as_something_changed() {
    let r = pushed_rig("").await;
    let ids = r.sim().add_bulk_orders(250, "purchased");
    // Ten minutes later one of them moved on: the newest update the first
    // look sees is well after the others.
    r.sim().advance_clock(std::time::Duration::from_secs(600));
    r.sim().set_state(&ids[0], "processing").unwrap();
    let mut w = watcher(&r);
    w.run_cycle().await.unwrap(); // the first look reads all 3 pages
    let h = w.handle();
    h.set_push(PushState::Connected);
    // Half an hour on, one order changes (what raises no webhook, e.g.
    // purchased → processing): the read is the first page only, because it
    // reaches orders updated before the newest update the first look saw.
    r.sim().advance_clock(std::time::Duration::from_secs(1800));
    r.sim().set_state(&ids[200], "processing").unwrap();
    let before = r.sim().requests().len();
    h.check_now_with_sweep();
    w.run_cycle().await.unwrap();
    assert_eq!(api_requests(&r, before).len(), 1);
    assert_eq!(state_of(&r, &ids[200]), "processing");

    // Nothing changed: one page, sorted.
    let before = r.sim().requests().len();
    h.check_now_with_sweep();
    w.run_cycle().await.unwrap();
    let reqs = api_requests(&r, before);
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert!(reqs[0].contains("sort_by=updated_at") && reqs[0].contains("order_by=DESC"));
    assert_eq!(h.status().sweep, Some(SweepMode::Incremental));

    // A change no webhook announces (purchased → processing) is found on
    // the first page, which also reaches orders the last read saw: the
    // read stops there.
    r.sim().advance_clock(std::time::Duration::from_secs(60));
    r.sim().set_state(&ids[10], "processing").unwrap();
    let before = r.sim().requests().len();
    h.check_now_with_sweep();
    let report = w.run_cycle().await.unwrap();
    let reqs = api_requests(&r, before);
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(report.orders_changed, 1);
    assert_eq!(state_of(&r, &ids[10]), "processing");
    assert!(r.notes.taken().is_empty(), "processing never alerts");
}

#[tokio::test]
async fn a_list_that_ignores_the_sort_is_read_whole_at_most_every_six_hours_and_status_says_so() {
    for behaviour in [OrdersSort::Ignore, OrdersSort::Refuse] {
        let r = pushed_rig("").await;
        // Each order updated a second after the one before: the
        // simulator's creation order is then oldest update first.
        for id in r.sim().add_bulk_orders(150, "purchased") {
            r.sim().advance_clock(std::time::Duration::from_secs(1));
            r.sim().set_state(&id, "processing").unwrap();
        }
        let mut w = watcher(&r);
        w.run_cycle().await.unwrap();
        let h = w.handle();
        h.set_push(PushState::Connected);
        r.sim().update_shape(|s| s.orders_sort = behaviour);
        let ids = r.sim().order_ids();
        r.sim().advance_clock(std::time::Duration::from_secs(1));
        r.sim()
            .set_state(&ids[120], "interpretation_ready")
            .unwrap();

        let before = r.sim().requests().len();
        h.check_now_with_sweep();
        w.run_cycle().await.unwrap();
        let reqs = api_requests(&r, before);
        let unsorted_pages = reqs.iter().filter(|q| !q.contains("sort_by")).count();
        assert_eq!(
            unsorted_pages, 2,
            "{behaviour:?}: a full read instead: {reqs:?}"
        );
        assert_eq!(
            state_of(&r, &ids[120]),
            "interpretation_ready",
            "{behaviour:?}: the change is found all the same"
        );
        let s = h.status();
        assert_eq!(s.sweep, Some(SweepMode::Full), "{behaviour:?}");
        let note = s.sweep_note.unwrap_or_default();
        assert!(note.contains("every 6 hours"), "{behaviour:?}: {note}");

        // Within the six hours: no second full read.
        let before = r.sim().requests().len();
        h.check_now_with_sweep();
        w.run_cycle().await.unwrap();
        let reqs = api_requests(&r, before);
        assert!(
            reqs.iter()
                .all(|q| !q.starts_with("/api/clinic/labs/orders?") || q.contains("sort_by")),
            "{behaviour:?}: {reqs:?}"
        );
        assert!(reqs.len() <= 1, "{behaviour:?}: {reqs:?}");
    }
}

#[tokio::test]
async fn losing_the_push_polls_the_events_feed_again_and_status_says_why() {
    let r = pushed_rig("").await;
    r.order("Priya", "processing");
    let mut w = watcher(&r);
    w.run_cycle().await.unwrap();
    let h = w.handle();
    h.set_push(PushState::Connected);
    let before = r.sim().requests().len();
    w.run_cycle().await.unwrap();
    assert!(
        api_requests(&r, before).is_empty(),
        "pushed and not due: a check reads nothing"
    );

    h.set_push(PushState::Fallback("the relay cannot be reached".into()));
    let before = r.sim().requests().len();
    w.run_cycle().await.unwrap();
    let reqs = api_requests(&r, before);
    assert!(
        reqs.iter().any(|q| q.starts_with("/api/events/lab_orders")),
        "{reqs:?}"
    );
    let status = r.app.status(Some(&r.session)).await;
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["push"], "fallback: the relay cannot be reached");
    assert_eq!(json["watch_mode"], "Checking every minute");
    h.set_push(PushState::Connected);
    let status = r.app.status(Some(&r.session)).await;
    assert_eq!(status.watch_mode.as_deref(), Some("Live"));
}

#[tokio::test]
async fn without_a_relay_nothing_about_push_shows_and_polling_is_as_before() {
    let r = rig("").await;
    r.order("Priya", "processing");
    let mut w = r.watcher();
    w.run_cycle().await.unwrap();
    let before = r.sim().requests().len();
    w.run_cycle().await.unwrap();
    let reqs = api_requests(&r, before);
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert!(reqs[0].starts_with("/api/events/lab_orders"));
    let json = serde_json::to_value(r.app.status(Some(&r.session)).await).unwrap();
    assert!(json["push"].is_null());
    assert!(json["watch_mode"].is_null());
}

#[tokio::test]
async fn a_change_below_a_page_of_pushed_orders_is_still_read() {
    // A page where nothing is new is not proof enough: here it holds
    // orders the push already fetched, and the change no webhook announced
    // is on the page after. The read goes on until it reaches orders older
    // than the previous read's newest update. (A budget that lets 110
    // detail requests through at once.)
    let r = pushed_rig("request_budget_per_5min = 4000\n").await;
    let ids = r.sim().add_bulk_orders(150, "purchased");
    let mut w = watcher(&r);
    w.run_cycle().await.unwrap();
    let h = w.handle();
    h.set_push(PushState::Connected);
    let clock = |secs| r.sim().advance_clock(std::time::Duration::from_secs(secs));
    clock(600);
    r.sim().set_state(&ids[140], "processing").unwrap(); // no webhook
    for (n, id) in ids[..110].iter().enumerate() {
        clock(10);
        r.sim().set_state(id, "partial_results").unwrap();
        h.push_event(pushed(n as u64 + 1, &format!("ev-{n}"), id));
    }
    w.run_cycle().await.unwrap();
    assert_eq!(r.app.store.alerts().unwrap().len(), 110);
    let before = r.sim().requests().len();
    h.check_now_with_sweep();
    w.run_cycle().await.unwrap();
    assert_eq!(
        api_requests(&r, before).len(),
        2,
        "past the page of pushed orders"
    );
    assert_eq!(state_of(&r, &ids[140]), "processing");
}
