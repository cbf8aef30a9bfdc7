//! The real window app in a virtual desktop, driven through WebDriver
//! (tauri-driver + WebKitWebDriver) like a practitioner would use it, with
//! dunst as the notification daemon and gnome-keyring as the Secret Service.
//! Assertions are on real outcomes: the daemon's Notify calls, the URLs the
//! browser was asked to open, the page's DOM, the simulator's request log.

use std::path::PathBuf;
use std::time::Duration;

use fsn_e2e::ui::*;
use fsn_e2e::*;
use thirtyfour::prelude::*;

fn artifacts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("artifacts")
}

fn row(id: &str) -> String {
    format!("[data-order-id=\"{id}\"]")
}

async fn row_class(driver: &WebDriver, id: &str) -> String {
    attr(driver, &row(id), "class").await
}

async fn badge(driver: &WebDriver, id: &str) -> String {
    text(driver, &format!("{} .badge", row(id))).await
}

/// Wait for `n` more notifications than `before`; answers the new ones.
fn next_notifications(d: &Desktop, before: usize, n: usize) -> Vec<Notify> {
    let all = d.wait_for_notifications(before + n, TIMEOUT);
    all[before..].to_vec()
}

async fn check_now(driver: &WebDriver) {
    click(driver, "#check-now").await;
}

const SECRET_USER: &str = "custom/fsn-demo-client/tokens";

#[tokio::test(flavor = "multi_thread")]
async fn a_practitioners_day() {
    if fsn_e2e::skip() {
        return;
    }
    let mut d = Desktop::start(Options {
        display: true,
        keyring: true,
    });
    let (sim, redirect) = simulator(SimConfig::default()).await;
    let ctl = sim.control().clone();
    d.write_config(&sim, &redirect, "");
    let priya = ctl.add_patient_order("Priya", "Raman", "processing");
    let marcus = ctl.add_patient_order("Marcus", "Webb", "purchased");
    let grace = ctl.add_patient_order("Grace", "Hopper", "processing");
    let driver = launch(&mut d, &[]).await;

    // ---- sign in from the UI
    until!("the sign-in screen", visible(&driver, "#signin-form").await);
    d.screenshot_window(
        "Fullscript Lab Notifier",
        &artifacts().join("screenshots/sign-in.png"),
    );
    driver
        .execute(
            "document.getElementById('environment').value = 'custom'",
            vec![],
        )
        .await
        .unwrap();
    driver
        .find(By::Css("#client-id"))
        .await
        .unwrap()
        .send_keys("fsn-demo-client")
        .await
        .unwrap();
    driver
        .find(By::Css("#client-secret"))
        .await
        .unwrap()
        .send_keys("fsn-demo-secret")
        .await
        .unwrap();
    click(&driver, "#signin-button").await;
    until!(
        "the list after sign-in",
        visible(&driver, &row(&priya.id)).await
    );
    eprintln!("scenario: sign in from the UI ... ok");
    assert_eq!(
        text(&driver, "#clinic-name").await,
        "Maple Grove Integrative Health"
    );
    assert!(d
        .opened_urls()
        .iter()
        .any(|u| u.contains("/api/oauth/authorize")));
    let stored = d
        .keyring_lookup(SECRET_USER)
        .expect("the tokens are in the Secret Service");
    assert!(stored.contains("refresh_token"));
    assert!(
        !d.data_dir().join("secrets.json").exists(),
        "no token file when a keychain exists"
    );
    until!(
        "the first check",
        attr(&driver, "#conn-badge", "data-state").await == "ok"
    );

    // ---- partial results: one notification, privacy-safe; a click opens and highlights
    d.close_all_notifications();
    let before = d.notifications().len();
    ctl.set_state(&priya.id, "partial_results").unwrap();
    check_now(&driver).await;
    let n = next_notifications(&d, before, 1);
    assert_eq!(n[0].app_name, "Fullscript Lab Notifier");
    assert_eq!(n[0].summary, "Partial lab results received");
    assert!(
        !n[0].body.contains("Priya") && !n[0].body.contains("Raman"),
        "{:?}",
        n[0]
    );
    until!(
        "the new row",
        row_class(&driver, &priya.id).await.contains("unseen")
    );
    d.click_newest_notification();
    let url = format!("{}/labs/orders/{}", sim.base_url(), priya.id);
    until!("the results opened", d.opened_urls().contains(&url));
    until!("the row highlighted and seen", {
        let c = row_class(&driver, &priya.id).await;
        c.contains("highlighted") && !c.contains("unseen")
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        d.notifications().len(),
        before + 1,
        "exactly one notification"
    );
    eprintln!("scenario: partial results notify once, click opens and highlights ... ok");

    // ---- results ready, then two amendments: three more; a non-result transition: none
    let before = d.notifications().len();
    ctl.set_state(&priya.id, "results_ready").unwrap();
    check_now(&driver).await;
    assert_eq!(
        next_notifications(&d, before, 1)[0].summary,
        "Lab results ready"
    );
    for i in 1..=2 {
        ctl.amend(&priya.id).unwrap();
        check_now(&driver).await;
        assert_eq!(
            next_notifications(&d, before + i, 1)[0].summary,
            "Lab results amended"
        );
    }
    let before = d.notifications().len();
    ctl.set_state(&marcus.id, "processing").unwrap();
    check_now(&driver).await;
    until!(
        "the badge to change",
        badge(&driver, &marcus.id).await == "Processing"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        d.notifications().len(),
        before,
        "no notification for processing"
    );
    eprintln!("scenario: ready + two amendments notify three times, processing does not ... ok");
    d.screenshot_window(
        "Fullscript Lab Notifier",
        &artifacts().join("screenshots/list.png"),
    );

    // ---- settings: amendments off, patient names on
    click(&driver, "#open-settings").await;
    until!(
        "the settings dialog",
        visible(&driver, "#settings-save").await
    );
    d.screenshot_window(
        "Fullscript Lab Notifier",
        &artifacts().join("screenshots/settings.png"),
    );
    click(&driver, "#notify-amended").await;
    click(&driver, "#notification-detail option[value=full]").await;
    click(&driver, "#settings-save").await;
    until!(
        "the dialog to close",
        !visible(&driver, "#settings-save").await
    );
    let before = d.notifications().len();
    click(&driver, "#mark-all-seen").await;
    ctl.amend(&priya.id).unwrap();
    check_now(&driver).await;
    until!(
        "the silent amendment listed as new",
        row_class(&driver, &priya.id).await.contains("unseen")
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        d.notifications().len(),
        before,
        "amendments are switched off"
    );
    ctl.set_state(&grace.id, "results_ready").unwrap();
    check_now(&driver).await;
    let n = next_notifications(&d, before, 1);
    assert_eq!(
        n[0].body,
        "Grace Hopper — Comprehensive Metabolic Panel · Quest Diagnostics"
    );
    eprintln!("scenario: settings change what notifies and the text ... ok");

    // ---- the access token expires: refreshed silently
    let refreshes = |s: &Simulator| {
        s.control()
            .requests_to("/api/oauth/token")
            .iter()
            .filter(|r| r.grant_type.as_deref() == Some("refresh_token"))
            .count()
    };
    ctl.expire_access_tokens();
    check_now(&driver).await;
    until!("a silent refresh", refreshes(&sim) == 1);
    until!(
        "still up to date",
        attr(&driver, "#conn-badge", "data-state").await == "ok"
    );
    assert!(visible(&driver, "#main").await);
    eprintln!("scenario: an expired token is refreshed silently ... ok");

    // ---- sign out from the UI: revoked at Fullscript, keychain entry gone
    click(&driver, "#open-settings").await;
    until!("the settings dialog", visible(&driver, "#sign-out").await);
    click(&driver, "#sign-out").await;
    // It asks first.
    until!("the confirmation", visible(&driver, "#sign-out-yes").await);
    assert!(visible(&driver, "#main").await, "not signed out yet");
    click(&driver, "#sign-out-yes").await;
    until!("the sign-in screen", visible(&driver, "#signin-form").await);
    let revoked: Vec<Option<String>> = ctl
        .requests_to("/api/oauth/revoke")
        .iter()
        .map(|r| r.revoked.clone())
        .collect();
    assert_eq!(
        revoked,
        [Some("refresh".to_string()), Some("access".to_string())]
    );
    assert_eq!(d.keyring_lookup(SECRET_USER), None);
    eprintln!("scenario: sign out revokes and removes the keychain entry ... ok");

    // ---- sign in again (the secret is still in the keychain), then the grant is revoked
    click(&driver, "#signin-button").await;
    until!("signed in again", visible(&driver, &row(&priya.id)).await);
    until!(
        "a check",
        attr(&driver, "#conn-badge", "data-state").await == "ok"
    );
    let before = d.notifications().len();
    ctl.revoke_all_grants();
    check_now(&driver).await;
    until!(
        "the signed-out banner",
        text(&driver, "#banners")
            .await
            .contains("You were signed out")
    );
    assert!(visible(&driver, "#signin-form").await);
    let n = next_notifications(&d, before, 1);
    assert_eq!(n[0].summary, "Sign in to Fullscript again");
    eprintln!("scenario: a revoked grant shows the banner and notifies ... ok");

    driver.quit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_show_in_the_header_and_nothing_is_lost() {
    if fsn_e2e::skip() {
        return;
    }
    let (mut d, sim) = signed_in_desktop("").await;
    let ctl = sim.control().clone();
    let order = ctl.add_patient_order("Sofia", "Alvarez", "processing");
    let driver = launch(&mut d, &[]).await;
    until_listed_and_checked(&driver, &order.id).await;
    let before = d.notifications().len();
    ctl.set_state(&order.id, "results_ready").unwrap();

    // On the order list: a failing events feed alone does not fail a check
    // (the list is read instead), so these target what every check needs.
    let fault = |kind: fsn_simulator::FaultKind| fsn_simulator::FaultSpec {
        kind,
        count: Some(1),
        for_secs: None,
        path_prefix: Some("/api/clinic/labs/orders".into()),
    };
    for (kind, shown, words) in [
        (
            fsn_simulator::FaultKind::Status { status: 500 },
            "retrying",
            "Checking for results is failing",
        ),
        (
            fsn_simulator::FaultKind::RateLimited {
                retry_after_secs: Some(2),
                retry_after_raw: None,
            },
            "rate_limited",
            "Fullscript asked the app to slow down",
        ),
        (
            fsn_simulator::FaultKind::MalformedJson,
            "retrying",
            "Checking for results is failing",
        ),
    ] {
        ctl.add_fault(fault(kind)).unwrap();
        check_now(&driver).await;
        until!(
            format!("the header to show {shown}"),
            attr(&driver, "#conn-badge", "data-state").await == shown
        );
        // Said in words in a banner, with what to do about it.
        until!(
            format!("the banner for {shown}"),
            text(&driver, "#banners").await.contains(words)
        );
        // A person asking again ("Retry now") does not wait out the (at
        // least 30 s) pause.
        click(&driver, "#retry-now").await;
        until!(
            "recovery",
            attr(&driver, "#conn-badge", "data-state").await == "ok"
        );
        eprintln!("scenario: fault shown as {shown}, then recovered ... ok");
    }
    let n = next_notifications(&d, before, 1);
    assert_eq!(n[0].summary, "Lab results ready");
    check_now(&driver).await;
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        d.notifications().len(),
        before + 1,
        "nothing lost, nothing twice"
    );
    driver.quit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_before_the_next_check_then_restarted_alerts_exactly_once() {
    if fsn_e2e::skip() {
        return;
    }
    let (mut d, sim) = signed_in_desktop("poll_interval_secs = 3600").await;
    let order = sim
        .control()
        .add_patient_order("Amara", "Nwosu", "processing");
    let pid = d.spawn("app", d.app());
    until!(
        "the first check",
        d.status_json()["last_poll_at"].is_string()
    );
    sim.control().set_state(&order.id, "results_ready").unwrap();
    d.kill(pid);
    assert!(d.notifications().is_empty());

    let pid = d.spawn("app", d.app());
    let n = d.wait_for_notifications(1, TIMEOUT);
    assert_eq!(n[0].summary, "Lab results ready");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(d.notifications().len(), 1, "exactly once");
    d.kill(pid);
    eprintln!("scenario: SIGKILL then restart alerts exactly once ... ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_history_shows_recent_orders_first_and_the_rest_on_request() {
    if fsn_e2e::skip() {
        return;
    }
    let (mut d, sim) = signed_in_desktop("poll_interval_secs = 3600").await;
    sim.control().add_bulk_orders(150, "processing");
    let driver = launch(&mut d, &[]).await;
    let rows = "section[data-group=\"in_progress\"] li";
    let count = |driver: WebDriver| async move {
        driver
            .find_all(By::Css(rows))
            .await
            .map(|v| v.len())
            .unwrap_or(0)
    };
    until!("the first 100 rows", count(driver.clone()).await == 100);
    let changed: Vec<String> = driver
        .execute(
            "return [...document.querySelectorAll('section[data-group=\"in_progress\"] .when')].map(e => e.dataset.changedAt)",
            vec![],
        )
        .await
        .unwrap()
        .convert()
        .unwrap();
    assert_eq!(changed.len(), 100);
    assert!(
        changed.windows(2).all(|w| w[0] >= w[1]),
        "most recent first: {changed:?}"
    );
    assert_eq!(
        text(&driver, "section[data-group=\"in_progress\"] h2").await,
        "IN PROGRESS (150)"
    );
    assert_eq!(text(&driver, ".show-more").await, "Show 50 more");
    click(&driver, ".show-more").await;
    until!("all 150 rows", count(driver.clone()).await == 150);
    assert!(!visible(&driver, ".show-more").await);
    eprintln!("scenario: a long history draws 100 rows, the rest on request ... ok");
    driver.quit().await.unwrap();
}
