//! A practitioner's day, as a non-technical practitioner lives it, in the
//! real window app on a virtual desktop (WebDriver, dunst, the simulator):
//! one-button sign-in with the clinic's registration set up by IT, the
//! welcome and a test notification, clinic hours holding alerts until a
//! morning digest, a pause ending in one digest, "Mark reviewed" from the
//! notification's button, "Mark all seen" with Undo, the keyboard.

use std::path::PathBuf;

use fsn_e2e::ui::*;
use fsn_e2e::*;
use thirtyfour::prelude::*;

fn artifacts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("artifacts")
}

fn row(id: &str) -> String {
    format!("button.order[data-order-id=\"{id}\"]")
}

async fn is_new(driver: &WebDriver, id: &str) -> bool {
    attr(driver, &row(id), "class")
        .await
        .split_whitespace()
        .any(|c| c == "unseen")
}

/// Wait for `n` more notifications than `before`; answers the new ones.
fn next_notifications(d: &Desktop, before: usize, n: usize) -> Vec<Notify> {
    let all = d.wait_for_notifications(before + n, TIMEOUT);
    all[before..].to_vec()
}

/// The app's clock, `secs` away from the real one (debug builds read
/// `FSN_TEST_CLOCK_FILE` at every look).
fn set_clock(d: &Desktop, secs: i64) {
    std::fs::write(d.home().join("clock-skew"), secs.to_string()).unwrap();
}

/// Seconds from now to this UTC wall-clock time (the app runs with TZ=UTC).
fn skew_to(y: i32, m: u32, day: u32, h: u32, min: u32) -> i64 {
    use chrono::TimeZone;
    let target = chrono::Utc
        .with_ymd_and_hms(y, m, day, h, min, 0)
        .single()
        .unwrap();
    (target - chrono::Utc::now()).num_seconds()
}

async fn focused_id(driver: &WebDriver) -> String {
    driver
        .execute(
            "return document.activeElement && (document.activeElement.dataset.orderId || document.activeElement.id) || ''",
            vec![],
        )
        .await
        .unwrap()
        .json()
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn keys(driver: &WebDriver, keys: impl Into<TypingData>) {
    driver
        .action_chain()
        .send_keys(keys)
        .perform()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_clinics_registration_set_up_sign_in_is_one_button_then_a_welcome_and_a_test_notification(
) {
    if fsn_e2e::skip() {
        return;
    }
    // What the first screen looks like for a clinic in production: a
    // country and one button (screenshot for the README).
    {
        let mut d = Desktop::start(Options {
            display: true,
            keyring: false,
        });
        std::fs::write(
            d.home().join("defaults.toml"),
            "environment = \"ca-production\"\nclient_id = \"clinic-app\"\nclient_secret = \"clinic-secret\"\n",
        )
        .unwrap();
        let driver = launch(&mut d, &[]).await;
        until!("the first screen", visible(&driver, "#signin-button").await);
        assert!(visible(&driver, "#region-ca").await);
        assert!(
            attr(&driver, "#region-ca", "checked").await == "true"
                || driver
                    .execute(
                        "return document.getElementById('region-ca').checked",
                        vec![]
                    )
                    .await
                    .unwrap()
                    .json()
                    == &serde_json::json!(true)
        );
        assert!(!visible(&driver, "#client-secret").await, "no secret field");
        assert!(!visible(&driver, "#client-id").await, "no client id field");
        assert!(!visible(&driver, "#sandbox-note").await);
        d.screenshot_window(
            "Fullscript Lab Notifier",
            &artifacts().join("screenshots/first-screen.png"),
        );
        driver.quit().await.unwrap();
    }

    // Against the simulator: IT's defaults file holds the registration.
    let mut d = Desktop::start(Options {
        display: true,
        keyring: false,
    });
    let (sim, redirect) = simulator(SimConfig::default()).await;
    let ctl = sim.control().clone();
    for (first, last) in [("Priya", "Raman"), ("Marcus", "Webb"), ("Grace", "Hopper")] {
        ctl.add_patient_order(first, last, "processing");
    }
    std::fs::write(
        d.home().join("defaults.toml"),
        fsn_simulator::fixture::app_config(&sim.base_url(), &redirect, &demo_client()),
    )
    .unwrap();
    let driver = launch(&mut d, &[]).await;
    until!("the first screen", visible(&driver, "#signin-button").await);
    assert!(!visible(&driver, "#client-secret").await, "no secret field");
    assert!(!visible(&driver, "#client-id").await, "no client id field");
    assert!(!visible(&driver, "#registration-note").await);
    click(&driver, "#signin-button").await;
    eprintln!("scenario: one-button sign-in with the clinic's registration ... ok");

    until!(
        "the welcome",
        text(&driver, "#welcome-text")
            .await
            .contains("existing lab orders recorded")
    );
    assert_eq!(
        text(&driver, "#welcome-text").await,
        "Connected to Maple Grove Integrative Health. 3 existing lab orders recorded; you will be notified of new results from now on."
    );
    assert_eq!(text(&driver, "#practitioner").await, "Evelyn Thorne");
    // "Start when I log in" is ticked by default, and takes effect.
    // (auto-launch writes to $HOME/.config/autostart, whatever XDG_CONFIG_HOME says.)
    let autostart = d.home().join(".config/autostart");
    until!(
        "launch at login",
        std::fs::read_dir(&autostart)
            .map(|mut e| e.next().is_some())
            .unwrap_or(false)
    );
    let before = d.notifications().len();
    click(&driver, "#welcome-test").await;
    let n = next_notifications(&d, before, 1);
    assert_eq!(n[0].summary, "Test notification");
    assert_eq!(n[0].app_name, "Fullscript Lab Notifier");
    until!(
        "the test's note",
        text(&driver, "#welcome-test-note")
            .await
            .starts_with("Sent.")
    );
    assert!(text(&driver, "#welcome-test-note")
        .await
        .contains("Do Not Disturb"));
    click(&driver, "#welcome-done").await;
    until!("the welcome to close", !visible(&driver, "#welcome").await);
    eprintln!(
        "scenario: the welcome says what happened; the test notification reaches the daemon ... ok"
    );

    // The clinic's registration is not copied into the practitioner's file.
    let user = std::fs::read_to_string(d.home().join("config.toml")).unwrap_or_default();
    assert!(!user.contains("client_id"), "{user}");
    driver.quit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn outside_clinic_hours_results_wait_for_one_digest_at_opening() {
    if fsn_e2e::skip() {
        return;
    }
    let (mut d, sim) = signed_in_desktop("").await;
    let ctl = sim.control().clone();
    let a = ctl.add_patient_order("Priya", "Raman", "processing");
    let b = ctl.add_patient_order("Marcus", "Webb", "processing");
    d.set_env("TZ", "UTC");
    d.set_env(
        "FSN_TEST_CLOCK_FILE",
        &d.home().join("clock-skew").display().to_string(),
    );
    // Saturday 28 November 2026, 10:00.
    set_clock(&d, skew_to(2026, 11, 28, 10, 0));
    let driver = launch(&mut d, &[]).await;
    until!("the list", visible(&driver, &row(&a.id)).await);

    // Clinic hours from Settings: Monday to Friday, 08:00 to 18:00.
    click(&driver, "#open-settings").await;
    until!("the settings", visible(&driver, "#hours-enabled").await);
    click(&driver, "#hours-enabled").await;
    driver
        .execute(
            "document.getElementById('clinic-hours').scrollIntoView({block: 'center'})",
            vec![],
        )
        .await
        .unwrap();
    d.screenshot_window(
        "Fullscript Lab Notifier",
        &artifacts().join("screenshots/settings-clinic-hours.png"),
    );
    click(&driver, "#settings-save").await;
    until!(
        "the clinic-hours banner",
        text(&driver, "#banners")
            .await
            .contains("Outside clinic hours")
    );
    let config = std::fs::read_to_string(d.home().join("config.toml")).unwrap();
    assert!(config.contains("[clinic_hours]"), "{config}");

    let before = d.notifications().len();
    ctl.set_state(&a.id, "results_ready").unwrap();
    ctl.set_state(&b.id, "results_ready").unwrap();
    click(&driver, "#check-now").await;
    until!(
        "the results to be held",
        text(&driver, "#banners")
            .await
            .contains("2 results are waiting")
    );
    until!("the rows to be new", is_new(&driver, &a.id).await);
    assert_eq!(
        d.notifications().len(),
        before,
        "nothing shown on a Saturday"
    );
    assert_eq!(d.status_json()["held_alerts"], 2);
    eprintln!("scenario: outside clinic hours results are held, listed as new ... ok");

    // Monday 08:01.
    set_clock(&d, skew_to(2026, 11, 30, 8, 1));
    click(&driver, "#check-now").await;
    let n = next_notifications(&d, before, 1);
    assert_eq!(n[0].summary, "While you were away");
    assert_eq!(n[0].body, "2 results ready. Open to review.");
    until!(
        "the banner to go",
        !text(&driver, "#banners")
            .await
            .contains("Outside clinic hours")
    );
    // Its click opens the window on the new results.
    d.click_newest_notification();
    until!(
        "the new results",
        driver
            .execute("return document.getElementById('filter').value", vec![])
            .await
            .unwrap()
            .json()
            == &serde_json::json!("unseen")
    );
    assert!(visible(&driver, &row(&a.id)).await && visible(&driver, &row(&b.id)).await);
    eprintln!(
        "scenario: one digest at the clinic's opening; its click shows the new results ... ok"
    );
    driver.quit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pause_ends_in_one_digest_and_the_results_since_are_offered() {
    if fsn_e2e::skip() {
        return;
    }
    let (mut d, sim) = signed_in_desktop("").await;
    let ctl = sim.control().clone();
    let a = ctl.add_patient_order("Sofia", "Alvarez", "processing");
    let b = ctl.add_patient_order("Noah", "Kim", "processing");
    let c = ctl.add_patient_order("Liam", "Ortiz", "processing");
    let driver = launch(&mut d, &[]).await;
    until_listed_and_checked(&driver, &a.id).await;
    click(&driver, "#open-settings").await;
    until!("the settings", visible(&driver, "#pause-1h").await);
    click(&driver, "#pause-1h").await;
    click(&driver, "#settings-cancel").await;
    until!(
        "the pause banner",
        text(&driver, "#banners")
            .await
            .contains("Notifications are paused until")
    );
    let before = d.notifications().len();
    ctl.set_state(&a.id, "results_ready").unwrap();
    ctl.set_state(&b.id, "partial_results").unwrap();
    click(&driver, "#check-now").await;
    until!(
        "the results to be held",
        text(&driver, "#banners")
            .await
            .contains("2 results are waiting")
    );
    assert_eq!(d.notifications().len(), before, "paused");

    click(&driver, "#resume-banner").await;
    let n = next_notifications(&d, before, 1);
    assert_eq!(n[0].summary, "While you were away");
    assert_eq!(n[0].body, "1 result ready, 1 partial. Open to review.");
    eprintln!("scenario: a pause ends in one digest, nothing dropped ... ok");

    until!(
        "the results since the pause",
        text(&driver, "#banners").await.contains("2 results since")
    );
    d.screenshot_window(
        "Fullscript Lab Notifier",
        &artifacts().join("screenshots/list-banners.png"),
    );
    click(&driver, "#catch-up-show").await;
    until!(
        "only those rows",
        visible(&driver, &row(&a.id)).await
            && visible(&driver, &row(&b.id)).await
            && !visible(&driver, &row(&c.id)).await
    );
    click(&driver, "#catch-up-dismiss").await;
    until!(
        "the banner to go",
        !text(&driver, "#banners").await.contains("results since")
    );
    eprintln!("scenario: \"2 results since …\" shows those rows ... ok");
    driver.quit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn triage_from_the_notification_the_list_and_the_keyboard() {
    if fsn_e2e::skip() {
        return;
    }
    let (mut d, sim) = signed_in_desktop("").await;
    let ctl = sim.control().clone();
    let a = ctl.add_patient_order("Hannah", "Lee", "processing");
    let b = ctl.add_patient_order("Jonas", "Berg", "processing");
    let c = ctl.add_patient_order("Amira", "Haddad", "processing");
    let driver = launch(&mut d, &[]).await;
    until_listed_and_checked(&driver, &a.id).await;

    // "Mark reviewed", pressed on the notification (the daemon's ActionInvoked).
    let before = d.notifications().len();
    ctl.set_state(&a.id, "results_ready").unwrap();
    click(&driver, "#check-now").await;
    let n = next_notifications(&d, before, 1);
    assert_eq!(n[0].summary, "Lab results ready");
    assert!(
        n[0].actions
            .windows(2)
            .any(|w| w == ["mark-reviewed", "Mark reviewed"]),
        "{:?}",
        n[0].actions
    );
    until!("the row to be new", is_new(&driver, &a.id).await);
    let opened = d.opened_urls().len();
    d.invoke_action(before, "mark-reviewed");
    until!("the row to be reviewed", !is_new(&driver, &a.id).await);
    assert_eq!(d.opened_urls().len(), opened, "nothing opened");
    eprintln!(
        "scenario: \"Mark reviewed\" on the notification marks the row, opens nothing ... ok"
    );

    // "Mark all seen" asks nothing and offers Undo.
    ctl.set_state(&b.id, "results_ready").unwrap();
    ctl.set_state(&c.id, "partial_results").unwrap();
    click(&driver, "#check-now").await;
    until!(
        "two new rows",
        is_new(&driver, &b.id).await && is_new(&driver, &c.id).await
    );
    click(&driver, "#mark-all-seen").await;
    until!(
        "all seen",
        !is_new(&driver, &b.id).await && !is_new(&driver, &c.id).await
    );
    click(&driver, "#undo-mark-all").await;
    until!(
        "new again",
        is_new(&driver, &b.id).await && is_new(&driver, &c.id).await
    );
    eprintln!("scenario: \"Mark all seen\" is undone ... ok");

    // A row's own "Mark reviewed", without the browser.
    let opened = d.opened_urls().len();
    click(&driver, &format!("[data-review-for=\"{}\"]", c.id)).await;
    until!("the row reviewed", !is_new(&driver, &c.id).await);
    assert_eq!(d.opened_urls().len(), opened);

    // The keyboard: one Tab stop for the list, arrows, r, /, Escape.
    driver
        .execute(
            "document.querySelector('button.order[tabindex=\"0\"]').focus()",
            vec![],
        )
        .await
        .unwrap();
    let first = focused_id(&driver).await;
    let tab_stops: i64 = driver
        .execute(
            "return document.querySelectorAll('#list button.order[tabindex=\"0\"]').length",
            vec![],
        )
        .await
        .unwrap()
        .json()
        .as_i64()
        .unwrap();
    assert_eq!(tab_stops, 1, "one Tab stop for the list");
    keys(&driver, Key::Down).await;
    let second = focused_id(&driver).await;
    assert_ne!(first, second, "the arrow moved to the next row");
    assert!([&a.id, &b.id, &c.id].iter().any(|id| **id == second));
    keys(&driver, Key::Up).await;
    assert_eq!(focused_id(&driver).await, first);
    // `r` on the new row marks it reviewed.
    driver
        .execute(
            &format!(
                "document.querySelector('button.order[data-order-id=\"{}\"]').focus()",
                b.id
            ),
            vec![],
        )
        .await
        .unwrap();
    keys(&driver, "r").await;
    until!("r marks it reviewed", !is_new(&driver, &b.id).await);
    keys(&driver, "/").await;
    assert_eq!(focused_id(&driver).await, "search");
    keys(&driver, "Hannah").await;
    until!(
        "the search",
        visible(&driver, &row(&a.id)).await && !visible(&driver, &row(&c.id)).await
    );
    keys(&driver, Key::Escape).await;
    until!("the search cleared", visible(&driver, &row(&c.id)).await);
    eprintln!("scenario: arrows, r, / and Escape ... ok");
    driver.quit().await.unwrap();
}
