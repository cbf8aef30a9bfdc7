//! Two processes, one app: the background agent (watcher, notifications,
//! tray, control endpoint; no GTK, no WebKit) and the window, a process of
//! its own that exists only while it is open. Asserted on real outcomes:
//! the processes alive and what they map, the daemon's Notify calls, the
//! URLs opened, the tray's D-Bus interface, the page through WebDriver.

use std::time::Duration;

use fsn_e2e::ui::*;
use fsn_e2e::*;

const TITLE: &str = "Fullscript Lab Notifier";

fn window_painted(d: &Desktop) -> String {
    let window = wait_for("the window", TIMEOUT, || d.window_id(TITLE));
    wait_for("the page painted", TIMEOUT, || {
        (d.window_colours(&window) > 16).then_some(())
    });
    window
}

/// The window's process is gone, and with it every process of the app that
/// maps GTK or WebKit (WebKit's network and web processes included).
fn only_the_agent_left(d: &Desktop, agent: &AppProcess) {
    wait_for("the window's processes to end", TIMEOUT, || {
        let left = d.app_processes();
        (left.len() == 1 && left[0].pid == agent.pid).then_some(())
    });
    assert!(
        !agent.maps_gtk_or_webkit(),
        "the agent maps no GTK and no WebKit"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn closing_the_window_ends_its_process_the_agent_keeps_watching_and_clicks_bring_it_back() {
    if fsn_e2e::skip() {
        return;
    }
    let (mut d, sim) = signed_in_desktop("poll_interval_secs = 15").await;
    let first = sim
        .control()
        .add_patient_order("Tomás", "Alvarez", "processing");
    let second = sim
        .control()
        .add_patient_order("Ines", "Okafor", "processing");
    // Started like a practitioner does: the agent, which opens the window.
    let pid = d.spawn("app", d.app());
    let agent = d.agent();
    assert_eq!(
        agent.pid, pid,
        "the app started is the agent (same process)"
    );
    assert!(
        !agent.maps_gtk_or_webkit(),
        "the agent maps no GTK and no WebKit"
    );
    let window = window_painted(&d);
    assert!(
        d.app_processes().iter().any(AppProcess::is_window),
        "the window is a process of its own"
    );
    until!(
        "the first check",
        d.status_json()["last_poll_at"].is_string()
    );

    // ---- closing the window: told once that the app keeps running; the
    // window's process and WebKit's are gone, the agent stays
    d.close_window(&window);
    let n = d.wait_for_notifications(1, TIMEOUT);
    assert_eq!(n[0].summary, "Fullscript Lab Notifier is still running");
    only_the_agent_left(&d, &agent);
    match agent.pss_kib() {
        Some(kib) => eprintln!(
            "agent alone (window closed): PSS {:.1} MiB (target: 0.25x the same-setting hello-world, about 20 MiB)",
            kib as f64 / 1024.0
        ),
        None => eprintln!("agent alone (window closed): PSS not readable here"),
    }
    d.close_all_notifications();
    eprintln!("scenario: closing the window leaves only the agent ... ok");

    // ---- still watching; a click opens the results and a window on that order
    sim.control().set_state(&first.id, "results_ready").unwrap();
    let n = d.wait_for_notifications(2, Duration::from_secs(90));
    assert_eq!(n[1].summary, "Lab results ready");
    d.click_newest_notification();
    let url = format!("{}/labs/orders/{}", sim.base_url(), first.id);
    until!("the results opened", d.opened_urls().contains(&url));
    window_painted(&d);
    until!(
        "the new window to open on that order",
        d.app_log()
            .lines()
            .any(|l| l.contains("window opened on a view") && l.contains(&first.id))
    );
    eprintln!("scenario: a click with the window closed opens it on that order ... ok");

    // ---- kill -9 of the window: nothing lost, the agent keeps notifying
    let window_process = d
        .app_processes()
        .into_iter()
        .find(AppProcess::is_window)
        .expect("the window's process");
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &window_process.pid.to_string()])
        .status();
    only_the_agent_left(&d, &agent);
    d.close_all_notifications();
    sim.control()
        .set_state(&second.id, "results_ready")
        .unwrap();
    let n = d.wait_for_notifications(3, Duration::from_secs(90));
    assert_eq!(n[2].summary, "Lab results ready");
    assert!(d.is_running(pid), "the agent outlives its window");
    eprintln!("scenario: the window killed, the agent keeps notifying ... ok");

    // ---- starting the app again: the running agent opens a window and the
    // second start exits
    let mut again = d.app().spawn().expect("start the app again");
    let status = wait_for("the second start to hand over and exit", TIMEOUT, || {
        again.try_wait().ok().flatten()
    });
    assert!(status.success(), "the second start exits cleanly");
    window_painted(&d);
    assert_eq!(d.agent().pid, pid, "the same agent");
    assert_eq!(
        d.notifications().len(),
        3,
        "the still-running notice is shown once"
    );
    eprintln!("scenario: starting again brings the window back ... ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_agent_with_the_window_open_the_window_says_so_and_starts_it_again() {
    if fsn_e2e::skip() {
        return;
    }
    let (mut d, sim) = signed_in_desktop("poll_interval_secs = 3600").await;
    let order = sim
        .control()
        .add_patient_order("Lena", "Fischer", "processing");
    // The window started first (under WebDriver) starts the agent.
    let driver = launch(&mut d, &[]).await;
    until_listed_and_checked(&driver, &order.id).await;
    let agent = d.agent();
    assert!(!agent.maps_gtk_or_webkit());

    let _ = std::process::Command::new("kill")
        .args(["-KILL", &agent.pid.to_string()])
        .status();
    until!(
        "the window to say the agent was restarted",
        visible(&driver, "#agent-restarted-dismiss").await
    );
    let restarted = d.agent();
    assert_ne!(restarted.pid, agent.pid, "a new agent");

    // The new agent does the work: a check from the window finds the result
    // and notifies it.
    sim.control().set_state(&order.id, "results_ready").unwrap();
    click(&driver, "#check-now").await;
    let n = d.wait_for_notifications(1, TIMEOUT);
    assert_eq!(n[0].summary, "Lab results ready");
    until!(
        "the row to show the result",
        attr(
            &driver,
            &format!("[data-order-id=\"{}\"]", order.id),
            "class"
        )
        .await
        .split_whitespace()
        .any(|c| c == "unseen")
    );
    click(&driver, "#agent-restarted-dismiss").await;
    until!(
        "the note dismissed",
        !visible(&driver, "#agent-restarted-dismiss").await
    );
    driver.quit().await.unwrap();
    eprintln!("scenario: the agent killed, the window restarts it ... ok");
}

/// The tray's well-known name on the bus: `org.kde.StatusNotifierItem-PID-N`.
fn tray_name(d: &Desktop, agent_pid: u32) -> String {
    let prefix = format!("org.kde.StatusNotifierItem-{agent_pid}-");
    wait_for("the tray on the bus", TIMEOUT, || {
        let out = d
            .command("gdbus")
            .args([
                "call",
                "--session",
                "--dest",
                "org.freedesktop.DBus",
                "--object-path",
                "/org/freedesktop/DBus",
                "--method",
                "org.freedesktop.DBus.ListNames",
            ])
            .stdout(std::process::Stdio::piped())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split('\'')
            .find(|s| s.starts_with(&prefix))
            .map(str::to_string)
    })
}

fn gdbus(d: &Desktop, dest: &str, path: &str, method: &str, args: &[&str]) -> String {
    let out = d
        .command("gdbus")
        .args([
            "call",
            "--session",
            "--dest",
            dest,
            "--object-path",
            path,
            "--method",
            method,
            // (arguments like -1 are not options)
            "--",
        ])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("gdbus");
    assert!(
        out.status.success(),
        "{method}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The tray menu's items as (id, label), from `GetLayout`'s text form.
fn menu_items(d: &Desktop, name: &str) -> Vec<(i32, String)> {
    let layout = gdbus(
        d,
        name,
        "/MenuBar",
        "com.canonical.dbusmenu.GetLayout",
        &["0", "-1", "[]"],
    );
    let mut items = Vec::new();
    // Each item reads `(<id>, {… 'label': <'Text'> …}, …)`.
    for (i, _) in layout.match_indices("'label': <'") {
        let label_start = i + "'label': <'".len();
        let label: String = layout[label_start..]
            .chars()
            .take_while(|c| *c != '\'')
            .collect();
        let before = &layout[..i];
        let Some(open) = before.rfind("(") else {
            continue;
        };
        let id: String = before[open + 1..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        if let Ok(id) = id.parse() {
            items.push((id, label));
        }
    }
    items
}

fn click_menu(d: &Desktop, name: &str, label: &str) {
    let items = menu_items(d, name);
    let id = items
        .iter()
        .find(|(_, l)| l == label)
        .unwrap_or_else(|| panic!("no menu item {label:?} in {items:?}"))
        .0;
    gdbus(
        d,
        name,
        "/MenuBar",
        "com.canonical.dbusmenu.Event",
        &[&id.to_string(), "clicked", "<0>", "0"],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_tray_over_dbus_opens_the_window_checks_pauses_and_quits() {
    if fsn_e2e::skip() {
        return;
    }
    let (mut d, sim) = signed_in_desktop("poll_interval_secs = 3600").await;
    let order = sim
        .control()
        .add_patient_order("Omar", "Haddad", "processing");
    // Started at log-in: the agent alone, no window.
    let mut cmd = d.app();
    cmd.arg("--minimized");
    let pid = d.spawn("app", cmd);
    until!(
        "the first check",
        d.status_json()["last_poll_at"].is_string()
    );
    assert!(d.window_id(TITLE).is_none(), "no window at log-in");
    let name = tray_name(&d, pid);
    let title = |d: &Desktop| {
        gdbus(
            d,
            &name,
            "/StatusNotifierItem",
            "org.freedesktop.DBus.Properties.Get",
            &["org.kde.StatusNotifierItem", "Title"],
        )
    };
    assert!(
        title(&d).contains("'Fullscript Lab Notifier'"),
        "{}",
        title(&d)
    );

    // "Check now" checks now: the result is found, notified, counted in the tray.
    sim.control().set_state(&order.id, "results_ready").unwrap();
    click_menu(&d, &name, "Check now");
    let n = d.wait_for_notifications(1, TIMEOUT);
    assert_eq!(n[0].summary, "Lab results ready");
    until!(
        "the tray to count the new result",
        title(&d).contains("Fullscript Lab Notifier (1)")
    );

    // "Pause notifications for 1 hour" pauses; the item then offers Resume.
    click_menu(&d, &name, "Pause notifications for 1 hour");
    until!("paused", d.status_json()["paused_until"].is_string());
    until!(
        "the menu to offer Resume",
        menu_items(&d, &name)
            .iter()
            .any(|(_, l)| l == "Resume notifications")
    );
    click_menu(&d, &name, "Resume notifications");
    until!("resumed", d.status_json()["paused_until"].is_null());

    // A click on the icon (SNI `Activate`) opens the window.
    gdbus(
        &d,
        &name,
        "/StatusNotifierItem",
        "org.kde.StatusNotifierItem.Activate",
        &["0", "0"],
    );
    window_painted(&d);

    // "Quit" ends the agent and its window.
    click_menu(&d, &name, "Quit");
    wait_for("the app to quit", TIMEOUT, || {
        d.app_processes().is_empty().then_some(())
    });
    eprintln!("scenario: the tray over D-Bus ... ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn login_from_the_command_line_goes_through_the_running_agent() {
    if fsn_e2e::skip() {
        return;
    }
    let mut d = Desktop::start(Options::default());
    let (sim, redirect) = simulator(SimConfig::default()).await;
    d.write_config(
        &sim,
        &redirect,
        &format!("{}\npoll_interval_secs = 3600", demo_client()),
    );
    // The app running (as at log-in), not signed in yet.
    let mut cmd = d.app();
    cmd.arg("--minimized");
    let pid = d.spawn("app", cmd);
    let endpoint = d.data_dir().join("agent.sock");
    wait_for("the agent's endpoint", TIMEOUT, || {
        endpoint.exists().then_some(())
    });
    assert_eq!(d.status_json()["signed_in"], false);

    let (code, out, err) = d.run_app(&["login"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("The app is running: signing in through it."),
        "{err}"
    );
    assert!(out.contains("Maple Grove Integrative Health"), "{out}");
    // Who signed in, as a direct `login` says it (the untyped reply was read
    // with the wrong key and said "unknown user").
    assert!(out.contains(" as Practitioner "), "{out}");
    // The agent that signed in is the one watching now.
    until!(
        "the agent's first check",
        d.status_json()["last_poll_at"].is_string()
    );
    assert!(d.is_running(pid), "the same agent");
    assert_eq!(
        d.opened_urls()
            .iter()
            .filter(|u| u.contains("/oauth/authorize"))
            .count(),
        1,
        "one sign-in page"
    );
    eprintln!("scenario: login from the command line goes through the running agent ... ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_erase_while_the_agent_runs_stops_its_watcher_and_leaves_no_patient_data() {
    if fsn_e2e::skip() {
        return;
    }
    let (mut d, sim) = signed_in(
        Options {
            display: true,
            keyring: false,
        },
        "poll_interval_secs = 15",
    )
    .await;
    let order = sim
        .control()
        .add_patient_order("Erasmus", "Wipeley", "processing");
    let mut cmd = d.app();
    cmd.arg("--minimized");
    let pid = d.spawn("app", cmd);
    until!(
        "the agent's first check",
        d.status_json()["orders_by_state"]["processing"] == 1
    );
    // Fullscript cannot be told (its revoke endpoint fails): the agent's
    // tokens must go all the same.
    sim.control()
        .add_fault(fsn_simulator::FaultSpec {
            kind: fsn_simulator::FaultKind::Status { status: 503 },
            count: None,
            for_secs: Some(600.0),
            path_prefix: Some("/api/oauth/revoke".into()),
        })
        .unwrap();

    let (_, out, err) = d.run_app(&["logout", "--erase"]);
    assert!(
        err.contains("The app is running: signing out through it."),
        "{err}"
    );
    assert!(out.contains("erased"), "{out}");
    assert!(err.contains("retried at the next start"), "{err}");
    let after_logout = sim.control().requests().len();

    // A result arrives; two check intervals pass.
    sim.control().set_state(&order.id, "results_ready").unwrap();
    tokio::time::sleep(Duration::from_secs(32)).await;
    let later: Vec<String> = sim.control().requests()[after_logout..]
        .iter()
        .filter(|r| !r.path.starts_with("/api/oauth/revoke"))
        .map(|r| r.path.clone())
        .collect();
    assert!(later.is_empty(), "the watcher stopped: {later:?}");
    assert!(d.notifications().is_empty(), "no notification");
    assert!(d.is_running(pid), "the agent itself keeps running");
    let s = d.status_json();
    assert_eq!(s["signed_in"], false, "{s}");
    assert_eq!(s["orders_by_state"], serde_json::json!({}), "{s}");
    for file in files_under(&d.data_dir()) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        for name in [&b"Wipeley"[..], b"Erasmus"] {
            assert!(
                !bytes.windows(name.len()).any(|w| w == name),
                "{} holds a patient's name after the erase",
                file.display()
            );
        }
    }
    eprintln!("scenario: logout --erase goes through the running agent ... ok");
}
