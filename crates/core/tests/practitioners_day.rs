//! A practitioner's day against the simulator: clinic hours and pause hold
//! alerts (never drop them) and announce them in one digest; "Mark
//! reviewed" from a notification; "Mark all seen" and its undo; catch-up
//! after a start; the welcome after sign-in; the practitioner's name.

mod common;

use chrono::{Local, TimeZone, Utc};
use common::*;
use fsn_core::policy::{NotificationAction, NotificationKind};
use fsn_core::schedule::Quiet;

const WEEKDAYS: &str = "[clinic_hours]\ndays = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"]\nopen = \"08:00\"\nclose = \"18:00\"\n";

/// Put the app's clock (and its watcher's) at this local wall-clock time.
fn set_local_time(r: &Rig, y: i32, m: u32, d: u32, h: u32, min: u32) -> chrono::DateTime<Utc> {
    let target = Local
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .earliest()
        .unwrap()
        .with_timezone(&Utc);
    r.app.clock.set_skew(target - Utc::now());
    target
}

#[tokio::test]
async fn outside_clinic_hours_alerts_are_held_and_announced_in_one_digest_at_opening() {
    let r = rig(WEEKDAYS).await;
    let a = r.order("Priya", "processing");
    let b = r.order("Marcus", "processing");
    let c = r.order("Sofia", "results_ready");
    // Saturday 28 November 2026, 10:00: the clinic is closed.
    set_local_time(&r, 2026, 11, 28, 10, 0);
    let mut w = r.watcher();
    w.run_cycle().await.unwrap(); // silent baseline
    r.sim().set_state(&a.id, "results_ready").unwrap();
    r.sim().set_state(&b.id, "results_ready").unwrap();
    r.sim().amend(&c.id).unwrap();
    w.run_cycle().await.unwrap();
    w.run_cycle().await.unwrap();
    assert!(r.notes.taken().is_empty(), "nothing shown on a Saturday");
    let status = w.handle().status();
    assert_eq!(status.held_alerts, 3);
    let monday = Local
        .with_ymd_and_hms(2026, 11, 30, 8, 0, 0)
        .earliest()
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(
        status.quiet,
        Some(Quiet::OutsideHours {
            until: Some(monday)
        })
    );
    // Held, not dropped: still in the outbox, listed as new.
    assert_eq!(r.app.store.pending_count().unwrap(), 3);
    assert_eq!(r.app.store.unseen_count().unwrap(), 3);
    let report = r.app.status(Some(&r.session)).await;
    assert_eq!(report.watch.held_alerts, 3);

    // Monday 08:01: one digest, then every alert is delivered.
    set_local_time(&r, 2026, 11, 30, 8, 1);
    w.run_cycle().await.unwrap();
    let notes = r.notes.taken();
    assert_eq!(titles(&notes), ["While you were away"]);
    assert_eq!(notes[0].body, "2 results ready, 1 amended. Open to review.");
    assert!(matches!(
        &notes[0].kind,
        NotificationKind::Digest { order_ids } if order_ids.len() == 3
    ));
    assert_eq!(r.app.store.pending_count().unwrap(), 0);
    assert_eq!(w.handle().status().held_alerts, 0);
    assert_eq!(w.handle().status().quiet, None);
    // Its click shows the new results, still new.
    let opener =
        fsn_core::opener::RecordingOpener::new(fsn_core::opener::UrlGuard::new(&r.app.config));
    assert_eq!(
        r.app.on_click(&notes[0], &opener),
        fsn_core::app::ClickOutcome::ShowNewResults
    );
    assert!(opener.taken().is_empty());
    assert_eq!(r.app.store.unseen_count().unwrap(), 3);

    // During opening hours a result is announced on its own, as always.
    set_local_time(&r, 2026, 11, 30, 9, 0);
    r.sim().amend(&a.id).unwrap();
    w.run_cycle().await.unwrap();
    assert_eq!(titles(&r.notes.taken()), ["Lab results amended"]);
}

#[tokio::test]
async fn held_alerts_survive_a_restart_and_still_come_as_a_digest() {
    let r = rig(WEEKDAYS).await;
    let a = r.order("Hannah", "processing");
    set_local_time(&r, 2026, 11, 27, 22, 0); // Friday night
    let mut w = r.watcher();
    w.run_cycle().await.unwrap();
    r.sim().set_state(&a.id, "partial_results").unwrap();
    w.run_cycle().await.unwrap();
    assert!(r.notes.taken().is_empty());
    drop(w);

    // The app is restarted on Monday morning.
    set_local_time(&r, 2026, 11, 30, 8, 30);
    let mut w = r.watcher();
    w.deliver().await.unwrap();
    let notes = r.notes.taken();
    assert_eq!(titles(&notes), ["While you were away"]);
    assert_eq!(notes[0].body, "1 partial. Open to review.");
}

#[tokio::test]
async fn a_pause_holds_alerts_and_its_end_announces_them_in_one_digest() {
    let r = rig("").await;
    let a = r.order("Liam", "processing");
    let b = r.order("Noah", "processing");
    let mut w = r.watcher();
    w.run_cycle().await.unwrap();
    let until = r
        .app
        .pause(fsn_core::schedule::PausePreset::OneHour, Some(&w.handle()))
        .unwrap();
    assert!(until > Utc::now());
    r.sim().set_state(&a.id, "results_ready").unwrap();
    r.sim().set_state(&b.id, "partial_results").unwrap();
    w.run_cycle().await.unwrap();
    assert!(r.notes.taken().is_empty(), "paused");
    assert_eq!(w.handle().status().quiet, Some(Quiet::Paused { until }));
    assert_eq!(w.handle().status().held_alerts, 2);

    r.app.resume(Some(&w.handle())).unwrap();
    w.run_cycle().await.unwrap();
    let notes = r.notes.taken();
    assert_eq!(titles(&notes), ["While you were away"]);
    assert_eq!(notes[0].body, "1 result ready, 1 partial. Open to review.");
    // And the window offers them as "2 results since …" (the pause's start).
    let report = r.app.status(Some(&r.session)).await;
    assert_eq!(report.catch_up.as_ref().map(|c| c.results), Some(2));
    r.app.dismiss_catch_up().unwrap();
    assert!(r.app.status(Some(&r.session)).await.catch_up.is_none());
}

#[tokio::test]
async fn mark_reviewed_from_a_notification_marks_the_result_seen_and_opens_nothing() {
    let r = rig("").await;
    let a = r.order("Grace", "processing");
    let mut w = r.watcher();
    w.run_cycle().await.unwrap();
    r.sim().set_state(&a.id, "results_ready").unwrap();
    w.run_cycle().await.unwrap();
    let notes = r.notes.taken();
    assert_eq!(notes[0].actions, [NotificationAction::MarkReviewed]);
    assert_eq!(r.app.store.unseen_count().unwrap(), 1);
    let opener =
        fsn_core::opener::RecordingOpener::new(fsn_core::opener::UrlGuard::new(&r.app.config));
    let outcome = r
        .app
        .on_action(&notes[0], NotificationAction::MarkReviewed, &opener);
    assert_eq!(outcome, fsn_core::app::ClickOutcome::Nothing);
    assert!(opener.taken().is_empty(), "nothing opened");
    assert_eq!(r.app.store.unseen_count().unwrap(), 0);
    assert!(!r.app.store.list_orders().unwrap()[0].unseen);
}

#[tokio::test]
async fn mark_all_seen_can_be_undone_moments_later() {
    let r = rig("").await;
    let a = r.order("Amara", "processing");
    let b = r.order("Jonas", "processing");
    let mut w = r.watcher();
    w.run_cycle().await.unwrap();
    r.sim().set_state(&a.id, "results_ready").unwrap();
    r.sim().set_state(&b.id, "results_ready").unwrap();
    w.run_cycle().await.unwrap();
    assert_eq!(r.app.store.unseen_count().unwrap(), 2);
    assert_eq!(r.app.mark_all_seen().unwrap(), 2);
    assert_eq!(r.app.store.unseen_count().unwrap(), 0);
    assert_eq!(r.app.undo_mark_all_seen().unwrap(), 2);
    assert_eq!(r.app.store.unseen_count().unwrap(), 2);
    // Once only.
    assert_eq!(r.app.undo_mark_all_seen().unwrap(), 0);
}

#[tokio::test]
async fn sign_in_welcomes_with_the_clinic_and_the_practitioners_name() {
    let r = rig("").await;
    r.order("Priya", "results_ready");
    r.order("Marcus", "processing");
    let report = r.app.status(Some(&r.session)).await;
    assert_eq!(report.owner_name.as_deref(), Some("Evelyn Thorne"));
    assert!(report.welcome.is_none(), "not before the first look");
    let mut w = r.watcher();
    w.run_cycle().await.unwrap();
    let report = r.app.status(Some(&r.session)).await;
    assert_eq!(
        report.welcome.as_deref(),
        Some("Connected to Maple Grove Integrative Health. 2 existing lab orders recorded; you will be notified of new results from now on.")
    );
    r.app.dismiss_welcome().unwrap();
    assert!(r.app.status(Some(&r.session)).await.welcome.is_none());
}

#[tokio::test]
async fn results_found_after_a_start_are_offered_since_the_last_check() {
    let r = rig("").await;
    let a = r.order("Hannah", "processing");
    let mut w = r.watcher();
    // A scheduled check: it records when it completed.
    w.cycle().await.0.unwrap();
    drop(w);
    // While the app is off, a result arrives; the next start finds it.
    r.sim().set_state(&a.id, "results_ready").unwrap();
    let w = r.watcher();
    let handle = w.handle();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(w.run(stop_rx));
    let mut waited = 0;
    while r.notes.taken().is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        waited += 1;
        assert!(waited < 400, "the start's first check");
    }
    let _ = stop.send(true);
    run.await.unwrap();
    drop(handle);
    let report = r.app.status(Some(&r.session)).await;
    let catch_up = report.catch_up.expect("offered");
    assert_eq!(catch_up.results, 1);
}

#[test]
fn a_test_notification_goes_through_the_notifier_and_says_where_to_look_when_it_fails() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = rt.block_on(rig(""));
    let notes = fsn_core::notifier::RecordingNotifier::default();
    r.app.send_test_notification(&notes).unwrap();
    let shown = notes.taken();
    assert_eq!(titles(&shown), ["Test notification"]);
    assert_eq!(shown[0].kind, NotificationKind::Test);
    notes
        .unavailable
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let e = r.app.send_test_notification(&notes).unwrap_err();
    assert!(e.contains("Do Not Disturb"), "{e}");
}
