//! `fullscript-notifier watch` on a real notification daemon (dunst) on a
//! private session bus: what the daemon received, and what a click opens.

use std::time::Duration;

use fsn_e2e::*;

#[tokio::test(flavor = "multi_thread")]
async fn watch_notifies_on_the_daemon_and_a_click_opens_the_results() {
    if fsn_e2e::skip() {
        return;
    }
    let mut d = Desktop::start(Options {
        display: true,
        keyring: false,
    });
    let (sim, redirect) = simulator(SimConfig::default()).await;
    d.write_config(&sim, &redirect, &demo_client());
    let (code, out, err) = d.run_app(&["login"]);
    assert_eq!(code, 0, "login: {err}");
    assert!(
        out.contains("Signed in to Maple Grove Integrative Health"),
        "{out}"
    );

    let order = sim
        .control()
        .add_patient_order("Priya", "Raman", "processing");
    let mut watch = d.app();
    watch.arg("watch");
    let pid = d.spawn("watch", watch);
    wait_for("the baseline", Duration::from_secs(30), || {
        d.status_json()["last_poll_at"].as_str().map(|_| ())
    });
    assert!(d.notifications().is_empty(), "the baseline is silent");

    sim.control().set_state(&order.id, "results_ready").unwrap();
    std::process::Command::new("kill")
        .args(["-USR1", &pid.to_string()])
        .status()
        .unwrap();
    let notes = d.wait_for_notifications(1, Duration::from_secs(30));
    let n = &notes[0];
    assert_eq!(n.app_name, "Fullscript Lab Notifier");
    assert_eq!(n.summary, "Lab results ready");
    assert_eq!(n.body, "Comprehensive Metabolic Panel · Quest Diagnostics");
    assert!(
        !n.body.contains("Priya") && !n.body.contains("Raman"),
        "no patient name by default"
    );
    assert_eq!(n.actions[0], "default");
    assert!(n.icon.ends_with(".png") || n.icon == "fullscript-notifier");

    d.click_newest_notification();
    let want = format!("{}/labs/orders/{}", sim.base_url(), order.id);
    wait_for(
        "the results URL to be opened",
        Duration::from_secs(15),
        || d.opened_urls().iter().any(|u| u == &want).then_some(()),
    );
    wait_for(
        "the alert to be marked seen",
        Duration::from_secs(10),
        || (d.status_json()["unseen"] == 0).then_some(()),
    );
    assert_eq!(d.notifications().len(), 1, "exactly one notification");
    d.kill(pid);
}

#[tokio::test(flavor = "multi_thread")]
async fn patient_names_appear_only_when_enabled_and_never_on_stdout() {
    if fsn_e2e::skip() {
        return;
    }
    let (d, sim) = signed_in_desktop("show_patient_names = true").await;
    let order = sim
        .control()
        .add_patient_order("Grace", "Hopper", "processing");
    assert_eq!(d.run_app(&["watch", "--once"]).0, 0);
    sim.control()
        .set_state(&order.id, "partial_results")
        .unwrap();
    let (code, out, _) = d.run_app(&["watch", "--once"]);
    assert_eq!(code, 0);
    // stdout may go to a system journal: order id and state only.
    assert!(
        out.contains(&format!(
            "alert: Partial lab results received (order {})",
            order.id
        )),
        "{out}"
    );
    for phi in ["Grace", "Hopper", "Comprehensive Metabolic Panel"] {
        assert!(!out.contains(phi), "{phi} on stdout: {out}");
    }
    let notes = d.wait_for_notifications(1, Duration::from_secs(10));
    assert_eq!(
        notes[0].body,
        "Grace Hopper — Comprehensive Metabolic Panel · Quest Diagnostics"
    );
    // --verbose prints the notification's text (names only because they are on).
    sim.control().set_state(&order.id, "results_ready").unwrap();
    let (code, out, _) = d.run_app(&["watch", "--once", "--verbose"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("— Grace Hopper — Comprehensive Metabolic Panel"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn notification_text_is_plain_text_on_a_daemon_that_reads_markup() {
    if fsn_e2e::skip() {
        return;
    }
    let (d, sim) = signed_in_desktop("").await;
    let ctl = sim.control();
    let p = ctl.add_patient("Mark", "Up");
    let order = ctl
        .add_order(
            fsn_simulator::NewOrder::for_patient(&p.id)
                .named(
                    "CBC w/ Diff & Platelets <a href=\"https://evil.example/\">View</a> <img src=\"https://evil.example/t.png\">",
                    &[],
                )
                .in_state("processing"),
        )
        .unwrap();
    assert_eq!(d.run_app(&["watch", "--once"]).0, 0);
    ctl.set_state(&order.id, "results_ready").unwrap();
    assert_eq!(d.run_app(&["watch", "--once"]).0, 0);
    let notes = d.wait_for_notifications(1, Duration::from_secs(10));
    let body = &notes[0].body;
    // The tags are gone (the words stay), the ampersand is escaped.
    assert!(
        body.starts_with("CBC w/ Diff &amp; Platelets View"),
        "{body}"
    );
    assert!(
        !body.contains('<') && !body.contains("&P") && !body.contains("evil"),
        "{body}"
    );
    assert!(body.chars().count() <= 240 * 5, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn generic_notifications_say_only_that_a_result_arrived() {
    if fsn_e2e::skip() {
        return;
    }
    let (d, sim) = signed_in_desktop("notification_detail = \"generic\"").await;
    let order = sim
        .control()
        .add_patient_order("Ada", "Lovelace", "processing");
    assert_eq!(d.run_app(&["watch", "--once"]).0, 0);
    sim.control().set_state(&order.id, "results_ready").unwrap();
    assert_eq!(d.run_app(&["watch", "--once"]).0, 0);
    let notes = d.wait_for_notifications(1, Duration::from_secs(10));
    assert_eq!(notes[0].summary, "New lab result");
    assert_eq!(notes[0].body, "");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_notification_service_is_reported_and_the_alert_waits() {
    if fsn_e2e::skip() {
        return;
    }
    // A bus with no notification daemon (and no display to activate one on).
    let (d, sim) = signed_in(
        Options {
            display: false,
            keyring: false,
        },
        "",
    )
    .await;
    let order = sim
        .control()
        .add_patient_order("Liam", "Chen", "processing");
    assert_eq!(d.run_app(&["watch", "--once"]).0, 0);
    sim.control().set_state(&order.id, "results_ready").unwrap();
    let (code, _, _) = d.run_app(&["watch", "--once"]);
    assert_eq!(code, 0, "no crash without a daemon");
    let status = d.status_json();
    assert_eq!(status["alerts_pending"], 1);
    assert_eq!(status["notifications_available"], false);
}

/// Signed in on a desktop without dunst, where the fake notification
/// daemon advertises `capabilities`.
async fn with_fake_daemon(capabilities: &[&str]) -> (Desktop, Simulator) {
    let mut d = Desktop::start(Options::default());
    d.start_fake_notification_daemon(capabilities);
    let (sim, redirect) = simulator(SimConfig::default()).await;
    d.write_config(&sim, &redirect, &demo_client());
    let (code, _, err) = d.run_app(&["login"]);
    assert_eq!(code, 0, "login: {err}");
    (d, sim)
}

fn answered_notifications(d: &Desktop) -> Vec<FakeNotify> {
    d.fake_daemon_calls()
        .into_iter()
        .filter(|c| c.call == "Notify" && c.answered)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_that_makes_links_of_markup_receives_no_tag_from_fullscript() {
    if fsn_e2e::skip() {
        return;
    }
    // As dunst ships: hyperlinks, and no body-markup.
    let (d, sim) = with_fake_daemon(&["body", "body-hyperlinks", "actions"]).await;
    let ctl = sim.control();
    let p = ctl.add_patient("Link", "Less");
    let order = ctl
        .add_order(
            fsn_simulator::NewOrder::for_patient(&p.id)
                .named("<a href=\"https://evil.example/x\">CBC</a>", &[])
                .in_state("processing"),
        )
        .unwrap();
    assert_eq!(d.run_app(&["watch", "--once"]).0, 0);
    ctl.set_state(&order.id, "results_ready").unwrap();
    assert_eq!(d.run_app(&["watch", "--once"]).0, 0);
    let shown = wait_for("the notification", Duration::from_secs(20), || {
        let n = answered_notifications(&d);
        (!n.is_empty()).then_some(n)
    });
    let body = &shown[0].body;
    assert!(body.starts_with("CBC"), "{body}");
    assert!(!body.contains('<') && !body.contains("evil"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_that_never_answers_freezes_no_check_and_the_alert_comes_when_it_answers() {
    if fsn_e2e::skip() {
        return;
    }
    let (mut d, sim) = with_fake_daemon(&["body", "actions"]).await;
    let order = sim
        .control()
        .add_patient_order("Hana", "Hung", "processing");
    let mut watch = d.app();
    watch.arg("watch");
    let pid = d.spawn("watch", watch);
    let check_now = || {
        std::process::Command::new("kill")
            .args(["-USR1", &pid.to_string()])
            .status()
            .unwrap();
    };
    wait_for("the baseline", Duration::from_secs(30), || {
        d.status_json()["last_poll_at"].as_str().map(|_| ())
    });

    // The daemon takes the call and never answers.
    d.hang_notification_daemon(true);
    sim.control().set_state(&order.id, "results_ready").unwrap();
    check_now();
    wait_for("the daemon to be asked", Duration::from_secs(30), || {
        d.fake_daemon_calls()
            .iter()
            .any(|c| c.call == "Notify" && !c.answered)
            .then_some(())
    });
    let s = wait_for("the status to say so", Duration::from_secs(60), || {
        let s = d.status_json();
        s["notifications_error"]
            .as_str()
            .is_some_and(|e| e.contains("did not answer"))
            .then_some(s)
    });
    assert_eq!(s["notifications_available"], false, "{s}");
    // Checks go on.
    let before = sim.control().requests_to("/api/events").len();
    check_now();
    wait_for("another check", Duration::from_secs(60), || {
        (sim.control().requests_to("/api/events").len() > before).then_some(())
    });
    assert!(answered_notifications(&d).is_empty());

    // The daemon answers again: the alert kept queued is shown, once.
    d.hang_notification_daemon(false);
    check_now();
    let shown = wait_for("the queued alert", Duration::from_secs(60), || {
        let n = answered_notifications(&d);
        (!n.is_empty()).then_some(n)
    });
    assert_eq!(shown[0].summary, "Lab results ready");
    wait_for("the status to recover", Duration::from_secs(30), || {
        d.status_json()["notifications_error"]
            .is_null()
            .then_some(())
    });
    check_now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(answered_notifications(&d).len(), 1, "shown once");
    d.kill(pid);
}
