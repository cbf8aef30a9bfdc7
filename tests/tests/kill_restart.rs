//! Killing the process between committing an alert and showing it loses
//! nothing and shows it once (a real child process, really killed).

use std::time::Duration;

use fsn_e2e::*;

#[tokio::test(flavor = "multi_thread")]
async fn killed_between_commit_and_delivery_then_delivered_exactly_once() {
    if fsn_e2e::skip() {
        return;
    }
    let (mut d, sim) = signed_in_desktop("").await;
    let order = sim
        .control()
        .add_patient_order("Hannah", "Okafor", "processing");
    assert_eq!(d.run_app(&["watch", "--once"]).0, 0, "baseline");

    sim.control().set_state(&order.id, "results_ready").unwrap();
    let marker = d.home().join("holding");
    let mut cmd = d.app();
    cmd.args(["watch", "--once"])
        .env("FSN_TEST_HOLD_BEFORE_DELIVERY", &marker);
    let pid = d.spawn("watch", cmd);
    wait_for("the commit", Duration::from_secs(30), || {
        marker.exists().then_some(())
    });
    d.kill(pid);
    assert!(!d.is_running(pid));
    assert!(d.notifications().is_empty(), "killed before showing");
    assert_eq!(
        d.status_json()["alerts_pending"],
        1,
        "the alert survived in the outbox"
    );

    // Restart: delivered once; again: nothing more.
    assert_eq!(d.run_app(&["watch", "--once"]).0, 0);
    assert_eq!(d.run_app(&["watch", "--once"]).0, 0);
    std::thread::sleep(Duration::from_millis(500));
    let notes = d.notifications();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].summary, "Lab results ready");
    assert_eq!(d.status_json()["alerts_pending"], 0);
}
