//! The agent's controller and its command layer, against the simulator:
//! sign-in, list, open and mark seen, check now, settings, a notification
//! click, update links, sign-out. One scenario per process: it points D-Bus
//! at nothing; the controller's shell and opener are recording doubles.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fsn_agent::controller::{Controller, Shell, Update};
use fsn_agent::dispatch::{dispatch, AgentControl};
use fsn_core::opener::{RecordingOpener, UrlGuard};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

struct NoAgent;

impl AgentControl for NoAgent {
    fn quit(&self) {}
    fn focus_open_window(&self) -> bool {
        false
    }
}

/// One command, as the window sends it over the control endpoint.
fn call<T: DeserializeOwned>(
    rt: &tokio::runtime::Runtime,
    ctl: &Arc<Controller>,
    cmd: &str,
    args: Value,
) -> Result<T, String> {
    let request = fsn_protocol::Request::from_wire(cmd, args)?;
    let v = rt.block_on(dispatch(ctl, &NoAgent, request))?;
    Ok(serde_json::from_value(v).expect("response shape"))
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn write_config(path: &Path, base: &str, redirect: &str) {
    // No client id yet: the sign-in screen provides it.
    let text = fsn_simulator::fixture::app_config(base, redirect, "token_storage = \"file\"");
    std::fs::write(path, format!("# written by the test\n{text}")).unwrap();
}

/// Records what the controller asks of the desktop.
#[derive(Default)]
struct RecordingShell {
    windows_shown: Mutex<usize>,
    window_open: Mutex<bool>,
    updates: Mutex<Vec<String>>,
    autostart: Mutex<bool>,
}

impl Shell for RecordingShell {
    fn show_window(&self) {
        *self.windows_shown.lock().unwrap() += 1;
    }
    fn window_open(&self) -> bool {
        *self.window_open.lock().unwrap()
    }
    fn push(&self, update: Update) {
        let name = match update {
            Update::State(_) => "state".to_string(),
            Update::Orders => "orders".to_string(),
            Update::Highlight(id) => format!("highlight:{id}"),
            Update::ShowNew => "show-new".to_string(),
            Update::SignIn { ok, .. } => format!("sign-in:{ok}"),
        };
        self.updates.lock().unwrap().push(name);
    }
    fn launch_at_login(&self) -> Option<bool> {
        Some(*self.autostart.lock().unwrap())
    }
    fn set_launch_at_login(&self, on: bool) -> Result<(), String> {
        *self.autostart.lock().unwrap() = on;
        Ok(())
    }
}

#[test]
fn sign_in_list_open_mark_seen_check_now_settings_and_sign_out() {
    let dir = tempfile::tempdir().unwrap();
    // No notification daemon for this process.
    std::env::set_var(
        "DBUS_SESSION_BUS_ADDRESS",
        "unix:path=/nonexistent/fsn-test",
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let redirect = format!("http://127.0.0.1:{port}/callback");
    let sim = rt
        .block_on(fsn_simulator::Simulator::start(fsn_simulator::SimConfig {
            auto_approve: true,
            redirect_uri: redirect.clone(),
            ..Default::default()
        }))
        .unwrap();
    let ctl = sim.control().clone();
    let ready = ctl.add_patient_order("Priya", "Raman", "processing");
    let config_file = dir.path().join("config.toml");
    write_config(&config_file, &sim.base_url(), &redirect);

    let paths = fsn_core::Paths {
        config_file: config_file.clone(),
        data_dir: dir.path().join("data"),
    };
    let shell = Arc::new(RecordingShell::default());
    let config = fsn_core::Config::load(&config_file).unwrap();
    let opener = RecordingOpener::new(UrlGuard::new(&config));
    let _in_runtime = rt.enter();
    let controller = Controller::new(
        paths,
        false,
        shell.clone(),
        // The "browser" follows the simulator's approval redirect.
        Some(Arc::new(fsn_agent::demo::auto_approve_browser)),
        Some(Arc::new(opener.clone())),
    );
    rt.block_on(controller.start());

    // First run: nothing configured.
    let snap: Value = call(&rt, &controller, "snapshot", json!({})).unwrap();
    assert_eq!(snap["signed_in"], false);
    assert_eq!(snap["configured"], false);
    let err = call::<Value>(
        &rt,
        &controller,
        "sign_in",
        json!({"environment": "custom", "client_id": " ", "client_secret": null}),
    )
    .unwrap_err();
    assert!(err.contains("client id"), "{err}");

    // Sign in.
    let started: Value = call(&rt, &controller,
        "sign_in",
        json!({"environment": "custom", "client_id": "fsn-demo-client", "client_secret": "fsn-demo-secret"}),
    )
    .unwrap();
    assert!(started["authorize_url"]
        .as_str()
        .unwrap()
        .contains("/api/oauth/authorize"));
    wait_until("signed in and watching", || {
        let s: Value = call(&rt, &controller, "snapshot", json!({})).unwrap();
        s["signed_in"] == true && s["watching"] == true && s["last_poll_at"].is_string()
    });
    let snap: Value = call(&rt, &controller, "snapshot", json!({})).unwrap();
    assert_eq!(snap["clinic"]["name"], "Maple Grove Integrative Health");
    assert!(shell
        .updates
        .lock()
        .unwrap()
        .contains(&"sign-in:true".to_string()));
    assert_eq!(snap["token_storage"], "file");
    let config_text = std::fs::read_to_string(&config_file).unwrap();
    assert!(
        config_text.starts_with("# written by the test"),
        "comments kept"
    );
    assert!(config_text.contains("client_id = \"fsn-demo-client\""));
    assert!(
        !config_text.contains("fsn-demo-secret"),
        "the secret is not written to the config"
    );

    // The list (patient names are shown in the window).
    let rows: Vec<Value> = call(&rt, &controller, "list_orders", json!({})).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["patient_name"], "Priya Raman");
    assert_eq!(rows[0]["unseen"], false);

    // Check now picks up a result at once; the row becomes new.
    ctl.set_state(&ready.id, "results_ready").unwrap();
    call::<()>(&rt, &controller, "check_now", json!({})).unwrap();
    wait_until("the new result", || {
        let rows: Vec<Value> = call(&rt, &controller, "list_orders", json!({})).unwrap();
        rows[0]["state"] == "results_ready" && rows[0]["unseen"] == true
    });
    let snap: Value = call(&rt, &controller, "snapshot", json!({})).unwrap();
    assert_eq!(snap["unseen"], 1);
    // No daemon here: the alert waits, and the status says why (once the
    // delivery after the check has tried).
    wait_until("the status to say no daemon answered", || {
        let snap: Value = call(&rt, &controller, "snapshot", json!({})).unwrap();
        snap["notifications_available"] == false
    });

    // Opening results opens the results page and marks the row seen.
    let url: String = call(
        &rt,
        &controller,
        "open_results",
        json!({"order_id": ready.id}),
    )
    .unwrap();
    assert_eq!(url, format!("{}/labs/orders/{}", sim.base_url(), ready.id));
    let opened: Vec<String> = opener.taken().iter().map(|u| u.to_string()).collect();
    assert_eq!(opened, std::slice::from_ref(&url));
    let rows: Vec<Value> = call(&rt, &controller, "list_orders", json!({})).unwrap();
    assert_eq!(rows[0]["unseen"], false);

    // mark_seen / mark_all_seen
    ctl.amend(&ready.id).unwrap();
    call::<()>(&rt, &controller, "check_now", json!({})).unwrap();
    wait_until("the amendment", || {
        call::<Vec<Value>>(&rt, &controller, "list_orders", json!({})).unwrap()[0]["unseen"] == true
    });
    assert_eq!(
        call::<usize>(&rt, &controller, "mark_seen", json!({"order_id": ready.id})).unwrap(),
        1
    );
    assert_eq!(
        call::<usize>(&rt, &controller, "mark_all_seen", json!({})).unwrap(),
        0
    );

    // Settings round trip, written to the config file.
    let mut settings: Value = call(&rt, &controller, "get_settings", json!({})).unwrap();
    assert_eq!(settings["poll_interval_secs"], 60);
    assert_eq!(settings["show_patient_names"], false);
    assert_eq!(settings["notification_detail"], "test");
    settings["poll_interval_secs"] = json!(300);
    settings["notification_detail"] = json!("full");
    settings["notify_states"]["results_amended"] = json!(false);
    let saved: Value = call(
        &rt,
        &controller,
        "save_settings",
        json!({"settings": settings}),
    )
    .unwrap();
    assert_eq!(saved["poll_interval_secs"], 300);
    assert_eq!(saved["show_patient_names"], true);
    assert_eq!(saved["notify_states"]["results_amended"], false);
    let again: Value = call(&rt, &controller, "get_settings", json!({})).unwrap();
    assert_eq!(again, saved);
    let text = std::fs::read_to_string(&config_file).unwrap();
    assert!(
        text.contains("poll_interval_secs = 300")
            && text.contains("notification_detail = \"full\"")
    );
    let mut bad = saved.clone();
    bad["poll_interval_secs"] = json!(5);
    let err =
        call::<Value>(&rt, &controller, "save_settings", json!({"settings": bad})).unwrap_err();
    assert!(err.contains("poll_interval_secs"), "{err}");

    // Pause and resume.
    let until: String = call(
        &rt,
        &controller,
        "pause_notifications",
        json!({"preset": "1h"}),
    )
    .unwrap();
    let snap: Value = call(&rt, &controller, "snapshot", json!({})).unwrap();
    assert_eq!(snap["paused_until"], until);
    call::<()>(&rt, &controller, "resume_notifications", json!({})).unwrap();
    let snap: Value = call(&rt, &controller, "snapshot", json!({})).unwrap();
    assert!(snap["paused_until"].is_null());
    assert!(call::<String>(
        &rt,
        &controller,
        "pause_notifications",
        json!({"preset": "forever"})
    )
    .is_err());

    // A click on a result's notification: marked seen, its results opened,
    // the window started, and the order handed to its page when it loads.
    let note = fsn_core::policy::Notification {
        kind: fsn_core::policy::NotificationKind::Result {
            order_id: ready.id.clone(),
        },
        title: "Lab results amended".into(),
        body: String::new(),
        url: Some(url.parse().unwrap()),
        alert_ids: Vec::new(),
        sound: false,
        actions: vec![fsn_core::policy::NotificationAction::MarkReviewed],
    };
    controller.on_notification_action(&note, fsn_core::policy::NotificationAction::Open);
    assert_eq!(opener.taken().len(), 1);
    assert_eq!(*shell.windows_shown.lock().unwrap(), 1);
    assert_eq!(
        call::<Value>(&rt, &controller, "take_view", json!({})).unwrap(),
        json!({"kind": "order", "order_id": ready.id})
    );
    assert_eq!(
        call::<Value>(&rt, &controller, "take_view", json!({})).unwrap(),
        Value::Null
    );
    // With the window open, it is told at once, and nothing is left for a
    // window that opens later.
    *shell.window_open.lock().unwrap() = true;
    controller.on_notification_action(&note, fsn_core::policy::NotificationAction::Open);
    assert_eq!(opener.taken().len(), 1);
    assert_eq!(*shell.windows_shown.lock().unwrap(), 2);
    assert!(shell
        .updates
        .lock()
        .unwrap()
        .contains(&format!("highlight:{}", ready.id)));
    assert_eq!(
        call::<Value>(&rt, &controller, "take_view", json!({})).unwrap(),
        Value::Null
    );

    // A new version's package the window could not install is opened only
    // on the update feed's own host.
    let package = fsn_core::config::DEFAULT_UPDATE_URL
        .parse::<url::Url>()
        .unwrap()
        .join("fullscript-notifier_0.2.0_amd64.deb")
        .unwrap();
    let opened: String = call(
        &rt,
        &controller,
        "open_update_package",
        json!({"url": package.as_str()}),
    )
    .unwrap();
    assert_eq!(opened, package.as_str());
    assert_eq!(opener.taken(), vec![package]);
    let err = call::<String>(
        &rt,
        &controller,
        "open_update_package",
        json!({"url": "https://elsewhere.example/app.deb"}),
    )
    .unwrap_err();
    assert!(err.contains("elsewhere.example"), "{err}");
    assert!(opener.taken().is_empty());

    // Sign out: revoked at the simulator, local tokens gone, watcher stopped.
    let out: Value = call(&rt, &controller, "sign_out", json!({})).unwrap();
    assert_eq!(out["revoke_errors"], json!([]));
    let revoked = ctl.requests_to("/api/oauth/revoke").len();
    assert_eq!(revoked, 2);
    let snap: Value = call(&rt, &controller, "snapshot", json!({})).unwrap();
    assert_eq!(snap["signed_in"], false);
    assert_eq!(snap["watching"], false);
    assert!(call::<()>(&rt, &controller, "check_now", json!({})).is_err());
    drop(sim);
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn a_clinic_of_200000_orders_is_listed_in_pages_far_under_the_line_limit() {
    use fsn_core::detect::OrderRecord;
    use fsn_core::lab::LabState;
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var(
        "DBUS_SESSION_BUS_ADDRESS",
        "unix:path=/nonexistent/fsn-test",
    );
    let config_file = dir.path().join("config.toml");
    write_config(
        &config_file,
        "http://127.0.0.1:9",
        "http://127.0.0.1:9/callback",
    );
    let paths = fsn_core::Paths {
        config_file,
        data_dir: dir.path().join("data"),
    };
    // 200,000 orders in the store.
    {
        let app = fsn_core::App::open(paths.clone()).unwrap();
        let upserts: Vec<OrderRecord> = (0..200_000)
            .map(|i| OrderRecord {
                id: format!("order-{i:06}"),
                patient_name: Some(fsn_core::secret::PatientName::new(format!("Patient {i}"))),
                title: Some("Comprehensive Metabolic Panel".into()),
                lab_name: Some("Quest Diagnostics".into()),
                test_names: vec!["Glucose".into(), "Sodium".into()],
                state: if i % 3 == 0 {
                    LabState::ResultsReady
                } else {
                    LabState::Processing
                },
                results_fp: Some(format!("{i:016x}")),
                results_count: 2,
                results_known: true,
                document_url: None,
                updated_at: Some("2026-12-01T10:00:00Z".into()),
                change_updated_at: None,
                changed: true,
            })
            .collect();
        app.store
            .commit_cycle(
                &fsn_core::store::CycleCommit {
                    upserts,
                    missing: vec![],
                    removals: vec![],
                    unreadable: vec![],
                    readable_again: vec![],
                    alerts: vec![],
                    seen_events: vec![],
                    cursor: None,
                    baseline_done: true,
                    grant_id: None,
                },
                chrono::Utc::now(),
            )
            .unwrap();
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _in_runtime = rt.enter();
    let shell = Arc::new(RecordingShell::default());
    let controller = Controller::new(paths.clone(), false, shell, None, None);
    rt.block_on(controller.start());

    // Through the real control endpoint, as the window asks.
    let endpoint = fsn_protocol::transport::Endpoint::for_data_dir(&paths.data_dir);
    let listener = rt
        .block_on(fsn_protocol::transport::Listener::bind(&endpoint))
        .unwrap();
    let handler: fsn_protocol::transport::Handler = {
        let ctl = controller.clone();
        Arc::new(move |request| {
            let ctl = ctl.clone();
            Box::pin(async move { dispatch(&ctl, &NoAgent, request).await })
        })
    };
    let server = rt.spawn(fsn_protocol::transport::serve(
        listener,
        handler,
        fsn_protocol::transport::Hub::default(),
    ));
    // (Peak RSS counted from here: `5` resets the high-water mark.)
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = peak_rss_kib();
    let page = rt
        .block_on(async {
            let (client, _events) = fsn_protocol::transport::Client::connect(&endpoint).await?;
            client
                .call(&fsn_protocol::Request::ListPage {
                    query: Some(fsn_core::list::ListQuery {
                        highlighted: Some("order-100002".into()),
                        ..Default::default()
                    }),
                })
                .await
        })
        .expect("the list request succeeds");
    let after = peak_rss_kib();
    let size = page.to_string().len();
    eprintln!(
        "list of 200,000 orders: answer {size} bytes; agent peak RSS {before:?} KiB before, {after:?} KiB after answering"
    );
    assert!(size < 1024 * 1024, "far under the line limit: {size} bytes");
    // Everything at once is refused with a clear error, not one huge line.
    let all = rt.block_on(async {
        let (client, _events) = fsn_protocol::transport::Client::connect(&endpoint).await?;
        client.call(&fsn_protocol::Request::ListOrders).await
    });
    assert!(
        matches!(&all, Err(fsn_protocol::transport::CallError::Refused(m)) if m.contains("pages")),
        "{all:?}"
    );
    let groups = page["groups"].as_array().unwrap();
    assert_eq!(page["orders_total"], 200_000);
    assert_eq!(groups[0]["key"], "results_ready");
    assert_eq!(groups[0]["total"], 66_667);
    assert_eq!(groups[1]["key"], "in_progress");
    assert_eq!(groups[1]["total"], 133_333);
    assert_eq!(groups[1]["rows"].as_array().unwrap().len(), 100);
    assert!(
        groups[0]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == "order-100002"),
        "the highlighted order is among the rows"
    );
    server.abort();
}
