//! Never miss, never flood: the watcher against a Fullscript having a bad
//! day. One test per case of the README's fault table; each fails on a
//! watcher that trusts the happy path.

mod common;

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::*;
use fsn_core::notifier::{Notifier, NotifyError, RecordingNotifier};
use fsn_core::policy::{Notification, NotificationKind};
use fsn_core::status::{Connection, EventsFeed};
use fsn_simulator::{FaultKind, FaultSpec, NewOrder};

fn fault(kind: FaultKind, count: u32, path: &str) -> FaultSpec {
    FaultSpec {
        kind,
        count: Some(count),
        for_secs: None,
        path_prefix: Some(path.to_string()),
    }
}

fn result_orders(notes: &[Notification]) -> Vec<String> {
    let mut ids: Vec<String> = notes
        .iter()
        .filter_map(|n| match &n.kind {
            NotificationKind::Result { order_id } => Some(order_id.clone()),
            _ => None,
        })
        .collect();
    ids.sort();
    ids
}

// ---------------------------------------------------------------- 0. timestamps

#[tokio::test]
async fn timestamps_as_epoch_seconds_milliseconds_strings_or_missing_never_silence_alerts() {
    for format in ["epoch_s", "epoch_ms", "epoch_s_string", "none"] {
        let r = rig("sweep_every = 1000").await;
        r.sim().update_shape(|s| s.timestamps = format.into());
        let a = r.order("Ada", "processing");
        let b = r.order("Ben", "partial_results");
        let mut w = r.watcher();
        let first = w.run_cycle().await.unwrap();
        assert_eq!(first.skipped_records, 0, "{format}: every order readable");

        r.sim().set_state(&a.id, "results_ready").unwrap();
        let report = w.run_cycle().await.unwrap();
        assert!(!report.swept, "{format}: the events path, not a sweep");
        assert_eq!(
            titles(&r.notes.taken()),
            ["Lab results ready"],
            "{format}: the new result is announced"
        );
        r.sim().amend(&b.id).unwrap();
        w.run_cycle().await.unwrap();
        assert_eq!(
            titles(&r.notes.taken()),
            ["Lab results amended"],
            "{format}"
        );
        // And the events were processed: nothing again.
        w.run_cycle().await.unwrap();
        assert!(r.notes.taken().is_empty(), "{format}: nothing twice");
    }
}

// ---------------------------------------------------------------- 1. unreadable orders

#[tokio::test]
async fn one_unreadable_order_at_the_first_sign_in_blocks_neither_the_baseline_nor_later_alerts() {
    let r = rig("sweep_every = 1000").await;
    let odd = r.order("Odd", "results_ready");
    let fine = r.order("Fine", "processing");
    r.sim()
        .corrupt_order(&odd.id, serde_json::json!({"id": odd.id, "state": null}))
        .unwrap();
    let mut w = r.watcher();
    let first = w.run_cycle().await.unwrap();
    assert_eq!(first.skipped_records, 1);
    assert!(
        r.app.store.baseline_at().unwrap().is_some(),
        "the baseline completes: every page was read"
    );
    let status = r.app.status(Some(&r.session)).await;
    assert_eq!(status.watch.skipped_records, 1);
    assert!(status.unreadable_orders.contains_key(&odd.id));

    r.sim().set_state(&fine.id, "results_ready").unwrap();
    let report = w.run_cycle().await.unwrap();
    assert!(!report.swept, "the cheap path, not a sweep every check");
    assert_eq!(titles(&r.notes.taken()), ["Lab results ready"]);
    w.run_cycle().await.unwrap();
    assert!(r.notes.taken().is_empty(), "its event was marked processed");
}

#[tokio::test]
async fn a_tracked_order_that_turns_unreadable_is_kept_never_removed_and_never_alerts() {
    let r = rig("sweep_every = 1").await;
    let o = r.order("Kept", "results_ready");
    // Others listed beside it: the list is not suspect, so only the
    // unreadable record's being kept stops its removal.
    r.order("Other", "processing");
    r.order("Third", "processing");
    let mut w = r.watcher();
    w.run_cycle().await.unwrap();
    r.sim()
        .corrupt_order(
            &o.id,
            serde_json::json!({"id": o.id, "state": "results_ready", "tests": "oops"}),
        )
        .unwrap();
    for _ in 0..4 {
        let report = w.run_cycle().await.unwrap();
        assert_eq!(report.skipped_records, 1);
    }
    let rows = r.app.store.list_orders().unwrap();
    assert_eq!(rows.len(), 3, "kept as it was");
    let kept = rows.iter().find(|row| row.id == o.id).expect("kept");
    assert_eq!(kept.state.as_str(), "results_ready");
    assert!(r.notes.taken().is_empty());
    // Readable again, unchanged: no alert, no longer counted.
    r.sim().restore_order(&o.id).unwrap();
    let report = w.run_cycle().await.unwrap();
    assert_eq!(report.skipped_records, 0);
    assert!(r.notes.taken().is_empty());
    assert!(r.app.store.unreadable_orders().unwrap().is_empty());
}

// ---------------------------------------------------------------- 2. the events feed failing

#[tokio::test]
async fn a_failing_events_feed_means_reading_the_order_list_and_saying_so() {
    let r = rig("sweep_every = 1000").await;
    let o = r.order("Feed", "processing");
    let mut w = r.watcher();
    w.run_cycle().await.unwrap();
    for kind in [
        FaultKind::Status { status: 503 },
        FaultKind::Status { status: 500 },
        FaultKind::MalformedJson,
        FaultKind::DropConnection,
    ] {
        r.sim()
            .add_fault(fault(kind.clone(), 1, "/api/events"))
            .unwrap();
        let report = w.run_cycle().await.unwrap();
        assert!(report.swept, "{kind:?}: the order list was read instead");
        let status = r.app.status(Some(&r.session)).await;
        assert_eq!(
            status.watch.events_feed,
            EventsFeed::Unavailable,
            "{kind:?}"
        );
        assert!(status.watch.events_feed_error.is_some());
    }
    r.sim().set_state(&o.id, "results_ready").unwrap();
    r.sim()
        .add_fault(fault(FaultKind::Status { status: 502 }, 1, "/api/events"))
        .unwrap();
    w.run_cycle().await.unwrap();
    assert_eq!(titles(&r.notes.taken()), ["Lab results ready"]);
    // Back to normal: the feed is available again, and nothing repeats.
    let report = w.run_cycle().await.unwrap();
    assert!(!report.swept);
    assert!(r.notes.taken().is_empty());
    assert_eq!(
        r.app.status(Some(&r.session)).await.watch.events_feed,
        EventsFeed::Available
    );
}

#[tokio::test]
async fn an_amendment_a_sweep_announced_while_the_feed_failed_is_not_announced_again_by_its_event()
{
    let r = rig("sweep_every = 1000").await;
    let o = r.order("Amy", "results_amended");
    let mut w = r.watcher();
    w.run_cycle().await.unwrap(); // baseline
    r.sim()
        .add_fault(fault(FaultKind::Status { status: 503 }, 1, "/api/events"))
        .unwrap();
    r.sim().amend(&o.id).unwrap();
    let report = w.run_cycle().await.unwrap();
    assert!(report.swept, "the feed failed: the order list was read");
    assert_eq!(titles(&r.notes.taken()), ["Lab results amended"]);
    // The feed recovers and lists the amendment's event: already announced.
    for _ in 0..3 {
        w.run_cycle().await.unwrap();
    }
    assert!(
        r.notes.taken().is_empty(),
        "one amendment, one notification"
    );
    // A genuine further amendment that shows only as a new event (the same
    // results), a while later, is still news.
    r.sim().advance_clock(Duration::from_secs(120));
    r.sim().event_only(&o.id).unwrap();
    w.run_cycle().await.unwrap();
    assert_eq!(titles(&r.notes.taken()), ["Lab results amended"]);
    w.run_cycle().await.unwrap();
    assert!(r.notes.taken().is_empty());
}

#[tokio::test]
async fn an_amendment_seen_only_as_an_event_is_announced_even_when_a_sweep_read_the_order_first() {
    let r = rig("sweep_every = 1000").await;
    let o = r.order("Eve", "results_amended");
    let mut w = r.watcher();
    w.run_cycle().await.unwrap(); // baseline
                                  // Amended without new results, while the feed fails: the sweep sees
                                  // only a later `updated_at`, nothing to announce by itself.
    r.sim().advance_clock(Duration::from_secs(120));
    r.sim()
        .add_fault(fault(FaultKind::Status { status: 503 }, 1, "/api/events"))
        .unwrap();
    r.sim().event_only(&o.id).unwrap();
    assert!(w.run_cycle().await.unwrap().swept);
    assert!(r.notes.taken().is_empty());
    // The feed recovers and lists the event: the amendment is announced.
    w.run_cycle().await.unwrap();
    assert_eq!(titles(&r.notes.taken()), ["Lab results amended"]);
    w.run_cycle().await.unwrap();
    assert!(r.notes.taken().is_empty(), "once");
}

#[tokio::test]
async fn an_events_feed_that_refuses_the_guessed_parameters_is_asked_again_without_them() {
    let r = rig("sweep_every = 1000").await;
    r.sim()
        .update_shape(|s| s.events_reject_optional_params = true);
    let o = r.order("Params", "processing");
    let mut w = r.watcher();
    w.run_cycle().await.unwrap();
    let before = r.sim().requests().len();
    r.sim().set_state(&o.id, "results_ready").unwrap();
    let report = w.run_cycle().await.unwrap();
    assert!(
        !report.swept,
        "the feed works without its optional parameters"
    );
    assert_eq!(titles(&r.notes.taken()), ["Lab results ready"]);
    let events: Vec<_> = r
        .requests_since(before)
        .into_iter()
        .filter(|e| e.path == "/api/events/lab_orders")
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e.status == 200 && !e.query.contains("created_at")),
        "{events:?}"
    );
    // Remembered: no more 400s.
    let before = r.sim().requests().len();
    w.run_cycle().await.unwrap();
    assert!(r.requests_since(before).iter().all(|e| e.status != 400));
}

// ---------------------------------------------------------------- 3. delivery never waits on the network

/// A notifier that can be switched off (no daemon) and records what it showed.
fn unavailable(notes: &RecordingNotifier, off: bool) {
    notes
        .unavailable
        .store(off, std::sync::atomic::Ordering::Relaxed);
}

#[tokio::test]
async fn queued_alerts_are_shown_after_a_failed_cycle_and_at_start_before_any_request() {
    let r = rig("sweep_every = 1000").await;
    let o = r.order("Queued", "processing");
    let mut w = r.watcher();
    w.run_cycle().await.unwrap();
    r.sim().set_state(&o.id, "results_ready").unwrap();
    unavailable(&r.notes, true);
    w.run_cycle().await.unwrap();
    assert_eq!(r.app.store.pending_count().unwrap(), 1, "committed, queued");

    // The daemon is back but Fullscript is not: the cycle fails, the alert shows anyway.
    unavailable(&r.notes, false);
    r.sim()
        .add_fault(FaultSpec {
            kind: FaultKind::Status { status: 500 },
            count: None,
            for_secs: Some(60.0),
            path_prefix: None,
        })
        .unwrap();
    assert!(w.run_cycle().await.is_err());
    assert_eq!(titles(&r.notes.taken()), ["Lab results ready"]);

    // At start: queued (another alert, no daemon), then a new watcher with
    // Fullscript still down shows it before its first request answers.
    let p = r.order("Second", "processing");
    r.sim().clear_faults();
    w.run_cycle().await.unwrap();
    r.sim().set_state(&p.id, "results_ready").unwrap();
    unavailable(&r.notes, true);
    w.run_cycle().await.unwrap();
    drop(w);
    unavailable(&r.notes, false);
    r.sim()
        .add_fault(FaultSpec {
            kind: FaultKind::Delay { delay_ms: 30_000 },
            count: None,
            for_secs: Some(60.0),
            path_prefix: None,
        })
        .unwrap();
    let w = r.watcher();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(w.run(stop_rx));
    let shown = wait_until(Duration::from_secs(10), || {
        let n = r.notes.shown.lock().unwrap().len();
        (n > 0).then_some(n)
    })
    .await;
    assert_eq!(shown, 1);
    assert_eq!(r.app.store.pending_count().unwrap(), 0);
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
}

async fn wait_until<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = tokio::time::Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------- 4. absence is not deletion

#[tokio::test]
async fn an_empty_or_shrunken_list_removes_nothing_and_announces_nothing_when_it_comes_back() {
    let r = rig("sweep_every = 1").await;
    let ids: Vec<String> = (0..15)
        .map(|i| r.order(&format!("P{i}"), "results_ready").id)
        .collect();
    let mut w = r.watcher();
    w.run_cycle().await.unwrap();
    for kind in [FaultKind::EmptyList, FaultKind::TruncatedList { keep: 5 }] {
        // As many sweeps in a row as removing an order takes: only the
        // suspicion of the list itself keeps the orders.
        r.sim()
            .add_fault(fault(kind.clone(), 3, "/api/clinic/labs/orders"))
            .unwrap();
        for _ in 0..3 {
            w.run_cycle().await.unwrap();
        }
        assert_eq!(
            r.app.store.list_orders().unwrap().len(),
            15,
            "{kind:?}: nothing removed"
        );
        w.run_cycle().await.unwrap();
        assert!(r.notes.taken().is_empty(), "{kind:?}: no flood on return");
    }
    assert_eq!(
        r.app.store.load_tracked().unwrap()[&ids[14]].missing_sweeps,
        0
    );
}

#[tokio::test]
async fn an_order_is_removed_after_three_sweeps_without_it_and_its_return_is_compared_not_announced(
) {
    let r = rig("sweep_every = 1").await;
    let ids: Vec<String> = (0..4)
        .map(|i| r.order(&format!("P{i}"), "results_ready").id)
        .collect();
    let mut w = r.watcher();
    w.run_cycle().await.unwrap();
    // The list leaves out the last order (a truncated answer, three times).
    r.sim()
        .add_fault(fault(
            FaultKind::TruncatedList { keep: 3 },
            3,
            "/api/clinic/labs/orders",
        ))
        .unwrap();
    w.run_cycle().await.unwrap();
    w.run_cycle().await.unwrap();
    assert_eq!(
        r.app.store.list_orders().unwrap().len(),
        4,
        "missing twice: still listed"
    );
    w.run_cycle().await.unwrap();
    assert_eq!(
        r.app.store.list_orders().unwrap().len(),
        3,
        "gone after three"
    );
    // It comes back as it was: listed again, no alert.
    w.run_cycle().await.unwrap();
    assert_eq!(r.app.store.list_orders().unwrap().len(), 4);
    assert!(r.notes.taken().is_empty());
    // Gone again, and back amended: that is news.
    r.sim()
        .add_fault(fault(
            FaultKind::TruncatedList { keep: 3 },
            3,
            "/api/clinic/labs/orders",
        ))
        .unwrap();
    for _ in 0..3 {
        w.run_cycle().await.unwrap();
    }
    r.sim().amend(&ids[3]).unwrap();
    w.run_cycle().await.unwrap();
    assert_eq!(result_orders(&r.notes.taken()), [ids[3].clone()]);
}

#[tokio::test]
async fn a_404_on_an_orders_detail_removes_it_at_once() {
    let r = rig("sweep_every = 1000").await;
    let o = r.order("Deleted", "partial_results");
    let mut w = r.watcher();
    w.run_cycle().await.unwrap();
    // An event about it, then it is deleted before the detail is read.
    r.sim().set_state(&o.id, "results_ready").unwrap();
    r.sim().remove_order(&o.id).unwrap();
    w.run_cycle().await.unwrap();
    assert!(r.app.store.list_orders().unwrap().is_empty());
    assert!(r.notes.taken().is_empty());
}

// ---------------------------------------------------------------- 5. fingerprints

#[tokio::test]
async fn pre_signed_links_and_list_versus_detail_formats_never_make_an_amendment_alert_again() {
    let r = rig("sweep_every = 2").await;
    r.sim().update_shape(|s| {
        s.presigned_links = true;
        s.list_timestamps = Some("epoch_s".into());
    });
    let o = r.order("Signed", "processing");
    r.sim()
        .set_state_with_document(&o.id, "results_amended")
        .unwrap();
    let mut w = r.watcher();
    w.run_cycle().await.unwrap(); // baseline
    for _ in 0..6 {
        // Sweeps (list: epoch times, a new signature) and cheap cycles alternate.
        w.run_cycle().await.unwrap();
    }
    assert!(r.notes.taken().is_empty(), "no amendment without one");
    // A real amendment, seen through its event (detail: ISO times, another signature).
    r.sim()
        .set_state_with_document(&o.id, "results_amended")
        .unwrap();
    for _ in 0..4 {
        w.run_cycle().await.unwrap();
    }
    assert_eq!(titles(&r.notes.taken()), ["Lab results amended"]);
}

// ---------------------------------------------------------------- 6. numbers from the server

#[tokio::test]
async fn any_retry_after_is_clamped_and_the_sweep_is_deferred_after_a_429() {
    // A sweep every other check: each 429 below arrives on a cheap check,
    // so the check after it is one where a sweep is due.
    let r = rig("sweep_every = 2").await;
    let mut w = r.watcher();
    w.run_cycle().await.unwrap();
    for (raw, lo, hi) in [
        ("1e20", 720, 1080),
        ("18446744073709551616", 720, 1080),
        ("-5", 24, 36),
        ("0", 24, 36),
        ("Wed, 01 Jan 2020 00:00:00 GMT", 24, 36),
        ("soon", 48, 72),
        ("inf", 720, 1080),
    ] {
        r.sim()
            .add_fault(fault(
                FaultKind::RateLimited {
                    retry_after_secs: None,
                    retry_after_raw: Some(raw.into()),
                },
                1,
                "/api/",
            ))
            .unwrap();
        let (result, wait) = w.cycle().await;
        assert!(result.is_err(), "{raw}");
        assert!(
            (lo..=hi).contains(&wait.as_secs()),
            "Retry-After {raw} → {wait:?}"
        );
        // Back on the cheap path, not with the full sweep that was due.
        let (next, _) = w.cycle().await;
        assert!(!next.unwrap().swept, "{raw}: the sweep waits");
    }
}

// ---------------------------------------------------------------- 8. only a real "no" signs out

#[tokio::test]
async fn transient_token_endpoint_failures_never_sign_out() {
    let r = rig("").await;
    for kind in [
        FaultKind::Status { status: 400 },
        FaultKind::Status { status: 500 },
        FaultKind::MalformedJson,
        FaultKind::Delay { delay_ms: 1_500 },
    ] {
        let session = Arc::new(
            fsn_core::session::Session::new(r.session.oauth().clone(), r.app.secrets.clone())
                .with_retry(Duration::from_millis(50), Duration::from_millis(100)),
        );
        session.load().await.unwrap();
        let api = r.app.api(session.clone());
        r.sim().expire_access_tokens();
        r.sim()
            .add_fault(fault(kind.clone(), 1, "/api/oauth/token"))
            .unwrap();
        let err = if matches!(kind, FaultKind::Delay { .. }) {
            // A token endpoint that does not answer within the request timeout.
            let short = fsn_core::http::oauth_client(Duration::from_millis(300)).unwrap();
            let o = session.oauth();
            let slow = Arc::new(
                fsn_core::session::Session::new(
                    fsn_core::oauth::OAuthClient::new(
                        short,
                        o.authorize_url.clone(),
                        o.token_url.clone(),
                        o.revoke_url.clone(),
                        o.client_id.clone(),
                        Some(fsn_core::secret::Secret::new(
                            fsn_simulator::DEMO_CLIENT_SECRET,
                        )),
                        o.redirect_uri.clone(),
                    ),
                    r.app.secrets.clone(),
                )
                .with_retry(Duration::from_millis(50), Duration::from_millis(100)),
            );
            slow.load().await.unwrap();
            let e = r.app.api(slow.clone()).clinic().await.unwrap_err();
            assert!(slow.is_signed_in(), "{kind:?}: still signed in");
            e
        } else {
            api.clinic().await.unwrap_err()
        };
        assert!(
            !matches!(err, fsn_core::api::ApiError::SignedOut(_)),
            "{kind:?}: {err}"
        );
        assert!(session.is_signed_in(), "{kind:?}: still signed in");
        assert!(
            secrets_file(r.w.dir.path()).contains("access_token"),
            "{kind:?}: tokens kept"
        );
        // The backoff ends; the next refresh works.
        tokio::time::sleep(Duration::from_millis(150)).await;
        api.clinic().await.unwrap();
    }
}

#[tokio::test]
async fn a_refused_registration_keeps_the_sign_in_and_says_it_needs_configuration() {
    let r = rig("").await;
    let o = r.session.oauth();
    let wrong = fsn_core::oauth::OAuthClient::new(
        r.app.oauth_http.clone(),
        o.authorize_url.clone(),
        o.token_url.clone(),
        o.revoke_url.clone(),
        o.client_id.clone(),
        Some(fsn_core::secret::Secret::new("not-the-secret")),
        o.redirect_uri.clone(),
    );
    let session = Arc::new(fsn_core::session::Session::new(
        wrong,
        r.app.secrets.clone(),
    ));
    session.load().await.unwrap();
    r.sim().expire_access_tokens();
    let err = r.app.api(session.clone()).clinic().await.unwrap_err();
    assert!(err.to_string().contains("needs configuration"), "{err}");
    assert!(session.is_signed_in(), "the sign-in is kept");
    assert!(secrets_file(r.w.dir.path()).contains("access_token"));
    let status = r.app.status(Some(&session)).await;
    assert_eq!(status.watch.connection, Connection::NeedsConfiguration);
    assert!(status.needs_configuration.is_some());
}

#[tokio::test]
async fn status_answers_at_once_while_a_refresh_hangs() {
    let r = rig("request_timeout_secs = 20").await;
    r.sim().expire_access_tokens();
    r.sim()
        .add_fault(fault(
            FaultKind::Delay { delay_ms: 4_000 },
            1,
            "/api/oauth/token",
        ))
        .unwrap();
    let api = r.app.api(r.session.clone());
    let before = r.sim().requests().len();
    let refreshing = tokio::spawn(async move { api.clinic().await });
    // The refresh is under way: the API said 401, the token call is in flight.
    wait_until(Duration::from_secs(10), || {
        let answered = r.requests_since(before);
        (answered.iter().any(|e| e.status == 401) && r.sim().in_flight() == 1).then_some(())
    })
    .await;
    let status = tokio::time::timeout(Duration::from_secs(2), r.app.status(Some(&r.session))).await;
    assert!(
        !refreshing.is_finished(),
        "the refresh is still hanging while status answers"
    );
    let status = status.expect("status answers while the refresh hangs");
    assert!(status.signed_in);
    refreshing.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_api_refusing_a_renewed_token_signs_out_only_the_second_time_in_a_row() {
    let r = rig("").await;
    let api = r.app.api(r.session.clone());
    // 401, refresh, 401 again: once is not enough to sign out.
    r.sim()
        .add_fault(fault(FaultKind::Status { status: 401 }, 2, "/api/clinic"))
        .unwrap();
    let err = api.clinic().await.unwrap_err();
    assert!(
        !matches!(err, fsn_core::api::ApiError::SignedOut(_)),
        "{err}"
    );
    assert!(r.session.is_signed_in());
    // A success in between resets the count.
    api.clinic().await.unwrap();
    r.sim()
        .add_fault(fault(FaultKind::Status { status: 401 }, 2, "/api/clinic"))
        .unwrap();
    assert!(api.clinic().await.is_err());
    assert!(r.session.is_signed_in(), "not twice in a row");
    r.sim()
        .add_fault(fault(FaultKind::Status { status: 401 }, 2, "/api/clinic"))
        .unwrap();
    let err = api.clinic().await.unwrap_err();
    assert!(
        matches!(err, fsn_core::api::ApiError::SignedOut(_)),
        "{err}"
    );
    assert!(!r.session.is_signed_in());
}

// ---------------------------------------------------------------- 10. the cursor comes from the server

#[tokio::test]
async fn a_computer_clock_a_year_ahead_and_then_corrected_neither_misses_nor_repeats_an_alert() {
    let r = rig("sweep_every = 1000").await;
    let orders: Vec<String> = (0..4)
        .map(|i| r.order(&format!("C{i}"), "processing").id)
        .collect();
    let clock = r.app.clock.clone();
    clock.set_skew(chrono::Duration::days(365));
    let mut w = r.watcher();
    w.run_cycle().await.unwrap(); // baseline, with the clock wrong
    r.sim().set_state(&orders[0], "results_ready").unwrap();
    let report = w.run_cycle().await.unwrap();
    assert!(!report.swept);
    r.sim().set_state(&orders[1], "partial_results").unwrap();
    w.run_cycle().await.unwrap();
    assert_eq!(
        result_orders(&r.notes.taken()),
        {
            let mut v = vec![orders[0].clone(), orders[1].clone()];
            v.sort();
            v
        },
        "nothing missed with the clock a year ahead"
    );
    let cursor = r.app.store.event_cursor().unwrap().unwrap();
    assert!(
        cursor <= chrono::Utc::now() + chrono::Duration::minutes(5),
        "the cursor is server time, not the computer's: {cursor}"
    );
    // The clock is corrected.
    clock.set_skew(chrono::Duration::zero());
    r.sim().set_state(&orders[2], "results_ready").unwrap();
    w.run_cycle().await.unwrap();
    r.sim().amend(&orders[0]).unwrap();
    w.run_cycle().await.unwrap();
    w.run_cycle().await.unwrap();
    let notes = r.notes.taken();
    assert_eq!(
        titles(&notes),
        ["Lab results ready", "Lab results amended"],
        "nothing missed, nothing repeated after the correction"
    );
}

#[tokio::test]
async fn an_event_dated_a_year_ahead_moves_no_cursor_and_is_announced_once() {
    let r = rig("sweep_every = 1000").await;
    let a = r.order("Future", "processing");
    let b = r.order("Later", "processing");
    let mut w = r.watcher();
    w.run_cycle().await.unwrap(); // baseline
    r.sim().set_state(&a.id, "results_ready").unwrap();
    r.sim().shift_newest_event(chrono::Duration::days(365));
    let mut sweeps = 0;
    for _ in 0..4 {
        if w.run_cycle().await.unwrap().swept {
            sweeps += 1;
        }
    }
    assert!(sweeps <= 1, "{sweeps} full sweeps in 4 checks");
    assert_eq!(titles(&r.notes.taken()), ["Lab results ready"]);
    let cursor = r.app.store.event_cursor().unwrap().unwrap();
    assert!(
        cursor <= chrono::Utc::now() + chrono::Duration::minutes(5),
        "the cursor never passes Fullscript's own clock: {cursor}"
    );
    r.sim().set_state(&b.id, "results_ready").unwrap();
    for _ in 0..3 {
        w.run_cycle().await.unwrap();
    }
    assert_eq!(
        result_orders(&r.notes.taken()),
        std::slice::from_ref(&b.id),
        "the next result, and not the dated one again"
    );
}

#[tokio::test]
async fn one_response_dated_a_year_ahead_replays_no_event() {
    let r = rig("sweep_every = 1000").await;
    let orders: Vec<String> = (0..3)
        .map(|i| r.order(&format!("D{i}"), "processing").id)
        .collect();
    let mut w = r.watcher();
    w.run_cycle().await.unwrap(); // baseline
    for id in &orders {
        r.sim().set_state(id, "results_ready").unwrap();
    }
    r.sim().amend(&orders[0]).unwrap();
    w.run_cycle().await.unwrap();
    assert_eq!(r.notes.taken().len(), 3);
    w.run_cycle().await.unwrap();
    // One answer says it is a year later.
    r.sim()
        .add_fault(fault(
            FaultKind::ServerDate {
                offset_secs: 365 * 86_400,
            },
            1,
            "/api/events",
        ))
        .unwrap();
    w.run_cycle().await.unwrap();
    for _ in 0..3 {
        let report = w.run_cycle().await.unwrap();
        assert_eq!(
            report.requests, 1,
            "the events already processed stay processed: no order is read again"
        );
    }
    assert!(r.notes.taken().is_empty(), "nothing replayed");
}

// ---------------------------------------------------------------- 11. stopping

/// Blocks in `show` until released, to stop the watcher mid-delivery.
#[derive(Clone, Default)]
struct SlowNotifier {
    inside: Arc<(Mutex<(bool, bool)>, Condvar)>,
    shown: Arc<Mutex<usize>>,
}

impl Notifier for SlowNotifier {
    fn show(&self, _n: &Notification) -> Result<(), NotifyError> {
        let (lock, cv) = &*self.inside;
        let mut st = lock.lock().unwrap();
        st.0 = true; // inside
        cv.notify_all();
        while !st.1 {
            st = cv.wait(st).unwrap();
        }
        *self.shown.lock().unwrap() += 1;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stopping_lets_a_delivery_in_progress_finish_and_be_recorded() {
    let r = rig("sweep_every = 1000").await;
    let o = r.order("Stop", "processing");
    let slow = SlowNotifier::default();
    let mut w = r
        .app
        .watcher(r.session.clone(), Arc::new(slow.clone()))
        .unwrap();
    w.run_cycle().await.unwrap();
    r.sim().set_state(&o.id, "results_ready").unwrap();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(w.run(stop_rx));
    // Wait until the notification is being shown, then ask to stop.
    let inside = slow.inside.clone();
    tokio::task::spawn_blocking(move || {
        let (lock, cv) = &*inside;
        let mut st = lock.lock().unwrap();
        while !st.0 {
            st = cv.wait(st).unwrap();
        }
    })
    .await
    .unwrap();
    stop.send(true).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!task.is_finished(), "the delivery is not cut in half");
    {
        let (lock, cv) = &*slow.inside;
        lock.lock().unwrap().1 = true;
        cv.notify_all();
    }
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("stops once the delivery finished")
        .unwrap();
    assert_eq!(*slow.shown.lock().unwrap(), 1);
    assert_eq!(
        r.app.store.pending_count().unwrap(),
        0,
        "shown, then marked delivered"
    );
}

// ---------------------------------------------------------------- 12. a damaged database

#[tokio::test]
async fn a_damaged_database_is_rebuilt_silently_and_says_so() {
    let Rig {
        w: world,
        app,
        session,
        notes: _,
    } = rig("").await;
    let sim = world.sim.control().clone();
    let add = |name: &str, state: &str| {
        let p = sim.add_patient(name, "Rebuilt");
        sim.add_order(NewOrder::for_patient(&p.id).in_state(state))
            .unwrap()
    };
    add("Before", "results_ready");
    let new = add("Meanwhile", "processing");
    let mut w = app
        .watcher(session.clone(), Arc::new(RecordingNotifier::default()))
        .unwrap();
    w.run_cycle().await.unwrap();
    drop(w);
    let db = app.paths.database();
    // Closed, as at a real start (the session's sign-out hook holds the store too).
    drop(session);
    drop(app);
    // Damaged while the app was not running (its journal lost too); a result
    // arrived meanwhile.
    let mut bytes = std::fs::read(&db).unwrap();
    for b in bytes.iter_mut() {
        *b = 0x5a;
    }
    std::fs::write(&db, &bytes).unwrap();
    for side in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{side}", db.display()));
    }
    let written = std::time::SystemTime::now();
    std::fs::File::options()
        .write(true)
        .open(&db)
        .unwrap()
        .set_modified(written)
        .unwrap();
    sim.set_state(&new.id, "results_ready").unwrap();

    let app = fsn_core::App::open(world.paths()).unwrap();
    let session = app.session().unwrap();
    assert!(session.load().await.unwrap());
    let status = app.status(Some(&session)).await;
    let rebuilt = status.local_history_rebuilt.expect("said in status");
    assert!(std::path::Path::new(&rebuilt.kept_as).exists());
    let notes = RecordingNotifier::default();
    let mut w = app
        .watcher(session.clone(), Arc::new(notes.clone()))
        .unwrap();
    w.run_cycle().await.unwrap();
    assert!(notes.taken().is_empty(), "not announced one by one");
    let rows = app.store.list_orders().unwrap();
    assert_eq!(rows.len(), 2);
    let unseen: Vec<&str> = rows
        .iter()
        .filter(|r| r.unseen)
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(
        unseen,
        [new.id.as_str()],
        "what arrived meanwhile is listed as new"
    );
    // Later results are announced as usual.
    let later = add("Later", "processing");
    w.run_cycle().await.unwrap();
    sim.set_state(&later.id, "results_ready").unwrap();
    w.run_cycle().await.unwrap();
    assert_eq!(titles(&notes.taken()), ["Lab results ready"]);
}

#[tokio::test]
async fn a_database_damaged_while_running_is_rebuilt_at_the_next_check_and_later_results_alert() {
    let r = rig("sweep_every = 1000").await;
    r.order("Before", "results_ready");
    let pending = r.order("Meanwhile", "processing");
    let mut w = r.watcher();
    w.run_cycle().await.unwrap(); // baseline
    let db = r.app.paths.database();
    // Everything in the main file, then every page but the first (the
    // header and the schema) overwritten under the running watcher.
    {
        let other = rusqlite::Connection::open(&db).unwrap();
        other
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
    }
    let mut bytes = std::fs::read(&db).unwrap();
    let page = 4096;
    assert!(bytes.len() > page, "more than one page");
    for b in bytes.iter_mut().skip(page) {
        *b = 0x5a;
    }
    std::fs::write(&db, &bytes).unwrap();
    r.sim().set_state(&pending.id, "results_ready").unwrap();

    let report = w.run_cycle().await.expect("the check rebuilds and goes on");
    assert!(
        report.swept,
        "the fresh database is filled from the whole list"
    );
    let status = r.app.status(Some(&r.session)).await;
    let rebuilt = status.local_history_rebuilt.expect("said in status");
    assert!(std::path::Path::new(&rebuilt.kept_as).exists());
    assert!(r.notes.taken().is_empty(), "not announced one by one");
    assert_eq!(r.app.store.list_orders().unwrap().len(), 2);
    // Later results are announced as usual.
    let later = r.order("Later", "processing");
    w.run_cycle().await.unwrap();
    r.sim().set_state(&later.id, "results_ready").unwrap();
    w.run_cycle().await.unwrap();
    assert_eq!(
        result_orders(&r.notes.taken()),
        std::slice::from_ref(&later.id)
    );
}
