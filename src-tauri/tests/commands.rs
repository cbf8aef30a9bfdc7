//! The window app's command layer on Tauri's mock runtime, against the
//! simulator: sign-in, list, open and mark seen, check now, settings, sign-out.
//! One scenario per process: it points D-Bus at nothing; the controller's
//! shell and opener are recording doubles.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fsn_core::opener::{RecordingOpener, UrlGuard};
use fullscript_notifier::gui::{
    commands, Controller, InstallOutcome, InstallProblem, Shell, Update,
};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tauri::test::{
    get_ipc_response, mock_builder, mock_context, noop_assets, MockRuntime, INVOKE_KEY,
};
use tauri::webview::InvokeRequest;
use tauri::{Manager, WebviewWindow};

fn invoke<T: DeserializeOwned>(
    w: &WebviewWindow<MockRuntime>,
    cmd: &str,
    args: Value,
) -> Result<T, String> {
    let res = get_ipc_response(
        w,
        InvokeRequest {
            cmd: cmd.into(),
            callback: tauri::ipc::CallbackFn(0),
            error: tauri::ipc::CallbackFn(1),
            url: "tauri://localhost".parse().unwrap(),
            body: tauri::ipc::InvokeBody::Json(args),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        },
    );
    match res {
        Ok(body) => Ok(body.deserialize::<T>().expect("response shape")),
        Err(v) => Err(v
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string())),
    }
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
    updates: Mutex<Vec<String>>,
    autostart: Mutex<bool>,
    /// What the next attempts to install an update answer (then "up to date").
    installs: Mutex<Vec<Result<InstallOutcome, InstallProblem>>>,
}

impl Shell for RecordingShell {
    fn show_window(&self) {
        *self.windows_shown.lock().unwrap() += 1;
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
    fn install_update(&self, _feed: url::Url) -> fullscript_notifier::gui::InstallFuture<'_> {
        let mut queue = self.installs.lock().unwrap();
        let next = if queue.is_empty() {
            Ok(InstallOutcome::UpToDate)
        } else {
            queue.remove(0)
        };
        Box::pin(async move { next })
    }
    fn restart(&self) {}
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
    let controller = Controller::new(
        paths,
        false,
        shell.clone(),
        // The "browser" follows the simulator's approval redirect.
        Some(Arc::new(fullscript_notifier::demo::auto_approve_browser)),
        Some(Arc::new(opener.clone())),
    );
    let app = commands::register(mock_builder())
        .manage(controller.clone())
        .build(mock_context(noop_assets()))
        .unwrap();
    let w = tauri::WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .unwrap();
    tauri::async_runtime::block_on(controller.start());

    // First run: nothing configured.
    let snap: Value = invoke(&w, "snapshot", json!({})).unwrap();
    assert_eq!(snap["signed_in"], false);
    assert_eq!(snap["configured"], false);
    let err = invoke::<Value>(
        &w,
        "sign_in",
        json!({"environment": "custom", "clientId": " ", "clientSecret": null}),
    )
    .unwrap_err();
    assert!(err.contains("client id"), "{err}");

    // Sign in.
    let started: Value = invoke(
        &w,
        "sign_in",
        json!({"environment": "custom", "clientId": "fsn-demo-client", "clientSecret": "fsn-demo-secret"}),
    )
    .unwrap();
    assert!(started["authorize_url"]
        .as_str()
        .unwrap()
        .contains("/api/oauth/authorize"));
    wait_until("signed in and watching", || {
        let s: Value = invoke(&w, "snapshot", json!({})).unwrap();
        s["signed_in"] == true && s["watching"] == true && s["last_poll_at"].is_string()
    });
    let snap: Value = invoke(&w, "snapshot", json!({})).unwrap();
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
    let rows: Vec<Value> = invoke(&w, "list_orders", json!({})).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["patient_name"], "Priya Raman");
    assert_eq!(rows[0]["unseen"], false);

    // Check now picks up a result at once; the row becomes new.
    ctl.set_state(&ready.id, "results_ready").unwrap();
    invoke::<()>(&w, "check_now", json!({})).unwrap();
    wait_until("the new result", || {
        let rows: Vec<Value> = invoke(&w, "list_orders", json!({})).unwrap();
        rows[0]["state"] == "results_ready" && rows[0]["unseen"] == true
    });
    let snap: Value = invoke(&w, "snapshot", json!({})).unwrap();
    assert_eq!(snap["unseen"], 1);
    // No daemon here: the alert waits, and the status says why.
    assert_eq!(snap["notifications_available"], false);

    // Opening results opens the results page and marks the row seen.
    let url: String = invoke(&w, "open_results", json!({"orderId": ready.id})).unwrap();
    assert_eq!(url, format!("{}/labs/orders/{}", sim.base_url(), ready.id));
    let opened: Vec<String> = opener.taken().iter().map(|u| u.to_string()).collect();
    assert_eq!(opened, std::slice::from_ref(&url));
    let rows: Vec<Value> = invoke(&w, "list_orders", json!({})).unwrap();
    assert_eq!(rows[0]["unseen"], false);

    // mark_seen / mark_all_seen
    ctl.amend(&ready.id).unwrap();
    invoke::<()>(&w, "check_now", json!({})).unwrap();
    wait_until("the amendment", || {
        invoke::<Vec<Value>>(&w, "list_orders", json!({})).unwrap()[0]["unseen"] == true
    });
    assert_eq!(
        invoke::<usize>(&w, "mark_seen", json!({"orderId": ready.id})).unwrap(),
        1
    );
    assert_eq!(invoke::<usize>(&w, "mark_all_seen", json!({})).unwrap(), 0);

    // Settings round trip, written to the config file.
    let mut settings: Value = invoke(&w, "get_settings", json!({})).unwrap();
    assert_eq!(settings["poll_interval_secs"], 60);
    assert_eq!(settings["show_patient_names"], false);
    assert_eq!(settings["notification_detail"], "test");
    settings["poll_interval_secs"] = json!(300);
    settings["notification_detail"] = json!("full");
    settings["notify_states"]["results_amended"] = json!(false);
    let saved: Value = invoke(&w, "save_settings", json!({"settings": settings})).unwrap();
    assert_eq!(saved["poll_interval_secs"], 300);
    assert_eq!(saved["show_patient_names"], true);
    assert_eq!(saved["notify_states"]["results_amended"], false);
    let again: Value = invoke(&w, "get_settings", json!({})).unwrap();
    assert_eq!(again, saved);
    let text = std::fs::read_to_string(&config_file).unwrap();
    assert!(
        text.contains("poll_interval_secs = 300")
            && text.contains("notification_detail = \"full\"")
    );
    let mut bad = saved.clone();
    bad["poll_interval_secs"] = json!(5);
    let err = invoke::<Value>(&w, "save_settings", json!({"settings": bad})).unwrap_err();
    assert!(err.contains("poll_interval_secs"), "{err}");

    // Pause and resume.
    let until: String = invoke(&w, "pause_notifications", json!({"preset": "1h"})).unwrap();
    let snap: Value = invoke(&w, "snapshot", json!({})).unwrap();
    assert_eq!(snap["paused_until"], until);
    invoke::<()>(&w, "resume_notifications", json!({})).unwrap();
    let snap: Value = invoke(&w, "snapshot", json!({})).unwrap();
    assert!(snap["paused_until"].is_null());
    assert!(invoke::<String>(&w, "pause_notifications", json!({"preset": "forever"})).is_err());

    // A click on a result's notification: marked seen, its results opened,
    // the window shown on that order (and the order handed to a page that
    // loads later).
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
    assert!(shell
        .updates
        .lock()
        .unwrap()
        .contains(&format!("highlight:{}", ready.id)));
    assert_eq!(
        invoke::<Option<String>>(&w, "take_highlight", json!({})).unwrap(),
        Some(ready.id.clone())
    );
    assert_eq!(
        invoke::<Option<String>>(&w, "take_highlight", json!({})).unwrap(),
        None
    );

    // Updates. A package this copy cannot install is offered for download,
    // on the update feed's own host only; a tampered one never is.
    let feed_host = fsn_core::config::DEFAULT_UPDATE_URL
        .parse::<url::Url>()
        .unwrap();
    let package = feed_host
        .join("fullscript-notifier_0.2.0_amd64.deb")
        .unwrap();
    shell.installs.lock().unwrap().extend([
        Err(InstallProblem::BadSignature),
        Err(InstallProblem::CannotInstallItself {
            reason: "dpkg needs an administrator".into(),
            download: Some(package.clone()),
        }),
        Err(InstallProblem::CannotInstallItself {
            reason: "dpkg needs an administrator".into(),
            download: Some("https://elsewhere.example/app.deb".parse().unwrap()),
        }),
        Ok(InstallOutcome::Installed {
            version: "0.2.0".into(),
        }),
    ]);
    let err = invoke::<Value>(&w, "install_update", json!({})).unwrap_err();
    assert!(err.contains("signature does not match"), "{err}");
    let snap: Value = invoke(&w, "snapshot", json!({})).unwrap();
    assert_eq!(snap["offer_update_download"], false);
    assert!(invoke::<String>(&w, "download_update", json!({})).is_err());
    assert!(opener.taken().is_empty());

    let err = invoke::<Value>(&w, "install_update", json!({})).unwrap_err();
    assert!(err.contains("could not install the update itself"), "{err}");
    let snap: Value = invoke(&w, "snapshot", json!({})).unwrap();
    assert_eq!(snap["offer_update_download"], true);
    assert!(snap["update_problem"]
        .as_str()
        .unwrap()
        .contains("needs an administrator"));
    let opened: String = invoke(&w, "download_update", json!({})).unwrap();
    assert_eq!(opened, package.as_str());
    assert_eq!(opener.taken(), vec![package]);

    invoke::<Value>(&w, "install_update", json!({})).unwrap_err();
    let err = invoke::<String>(&w, "download_update", json!({})).unwrap_err();
    assert!(err.contains("elsewhere.example"), "{err}");
    assert!(opener.taken().is_empty());

    let done: Value = invoke(&w, "install_update", json!({})).unwrap();
    assert_eq!(done, json!({"kind": "installed", "version": "0.2.0"}));
    let snap: Value = invoke(&w, "snapshot", json!({})).unwrap();
    assert_eq!(snap["update_installed"], "0.2.0");
    assert!(snap["update_problem"].is_null());
    assert_eq!(snap["offer_update_download"], false);

    // Sign out: revoked at the simulator, local tokens gone, watcher stopped.
    let out: Value = invoke(&w, "sign_out", json!({})).unwrap();
    assert_eq!(out["revoke_errors"], json!([]));
    let revoked = ctl.requests_to("/api/oauth/revoke").len();
    assert_eq!(revoked, 2);
    let snap: Value = invoke(&w, "snapshot", json!({})).unwrap();
    assert_eq!(snap["signed_in"], false);
    assert_eq!(snap["watching"], false);
    assert!(invoke::<()>(&w, "check_now", json!({})).is_err());
    let _ = app.state::<Arc<Controller>>();
    drop(sim);
}
