//! A watcher that panics is restarted and says so; one that cannot even be
//! built ends the supervisor (so `watch` exits non-zero). Its own binary:
//! the panic is injected through a process-wide variable.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use fsn_core::status::Connection;
use fsn_core::supervise::supervise;

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_watcher_is_restarted_with_the_reason_shown_and_keeps_alerting() {
    let r = rig("poll_interval_secs = 15").await;
    let o = r.order("Panic", "processing");
    let marker = r.w.dir.path().join("panicked");
    // The only test in this binary that runs a watcher: nothing else reads it.
    std::env::set_var("FSN_TEST_PANIC_ONCE", &marker);
    fsn_core::supervise::install_panic_hook();

    let handle = r.app.watcher_handle();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let app = Arc::new(r.app);
    let (make_app, session, notes) = (app.clone(), r.session.clone(), r.notes.clone());
    let supervisor = tokio::spawn(supervise(
        move |h| make_app.watcher_on(session.clone(), Arc::new(notes.clone()), h),
        handle.clone(),
        stop_rx,
    ));
    let wait = |what: &'static str, f: &dyn Fn() -> bool| {
        let start = std::time::Instant::now();
        while !f() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "timed out: {what}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait("the first check", &|| handle.status().cycles >= 1);
    handle.check_now(); // the second cycle panics
    wait("the restart", &|| handle.status().restarts == 1);
    assert!(marker.exists());
    let status = handle.status();
    assert!(
        matches!(
            status.connection,
            Connection::Restarting | Connection::Starting | Connection::Checking | Connection::Ok
        ),
        "{status:?}"
    );
    // The restarted watcher works: a new result is announced.
    wait("the restarted watcher's first check", &|| {
        handle.status().connection == Connection::Ok
    });
    r.w.sim.control().set_state(&o.id, "results_ready").unwrap();
    handle.check_now();
    wait("the alert", &|| !r.notes.shown.lock().unwrap().is_empty());
    assert_eq!(titles(&r.notes.taken()), ["Lab results ready"]);
    assert_eq!(app.status(Some(&r.session)).await.watch.restarts, 1);

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), supervisor)
        .await
        .expect("stops when asked")
        .unwrap()
        .expect("a requested stop is not a failure");
}

#[tokio::test(start_paused = true)]
async fn a_watcher_that_cannot_be_built_ends_the_supervisor_with_an_error() {
    let store = Arc::new(fsn_core::store::Store::open_in_memory().unwrap());
    let config = fsn_core::Config::parse(std::path::Path::new("c.toml"), "").unwrap();
    let handle = fsn_core::watcher::WatcherHandle::new(
        store,
        fsn_core::watcher::WatchSettings::from_config(&config),
    );
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let mut attempts = 0;
    let result = supervise(
        |_h| -> Result<fsn_core::watcher::Watcher, String> {
            attempts += 1;
            Err("the local database is read-only".into())
        },
        handle.clone(),
        stop_rx,
    )
    .await;
    let err = result.unwrap_err().to_string();
    assert!(err.contains("read-only"), "{err}");
    assert_eq!(attempts, 5);
    assert!(handle.status().last_error.unwrap().starts_with("Stopped:"));
}
