//! The command line: `fullscript-notifier [login|logout|status|watch|simulate|demo]`.
//!
//! This crate has no GUI dependency. The desktop binary parses the same
//! [`Cli`] and runs the window app itself; for headless subcommands it execs
//! `fullscript-notifier-headless` (this crate's binary) when that is installed
//! beside it, so a long-running `watch` does not carry GTK and WebKit, and
//! otherwise calls [`run_headless`] in-process.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use fsn_core::notifier::DesktopNotifier;
use fsn_core::opener::{BrowserOpener, Opener, UrlGuard};
use fsn_core::session::{AuthState, SignedOutCause};
use fsn_core::watcher::WatchEvent;
use fsn_core::{App, Paths, StatusReport};

#[derive(Debug, Parser)]
#[command(
    name = "fullscript-notifier",
    version,
    about = "Desktop notifications when Fullscript lab results arrive",
    long_about = "Fullscript Lab Notifier watches your clinic's Fullscript lab orders and raises a desktop \
notification when results are received, ready or amended. Without a subcommand it starts the window app."
)]
pub struct Cli {
    /// Configuration file (default: the platform config directory)
    #[arg(long, global = true, env = "FSN_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Data directory: database, logs, token file fallback
    #[arg(
        long = "data-dir",
        global = true,
        env = "FSN_DATA_DIR",
        value_name = "PATH"
    )]
    pub data_dir: Option<PathBuf>,
    /// Start with the window hidden (in the tray); used by launch at login
    #[arg(long, global = true)]
    pub minimized: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sign in to Fullscript in the browser and wait for it to come back
    Login,
    /// Revoke the sign-in at Fullscript and delete it here
    Logout {
        /// Also erase the lab orders, alerts and logs kept on this computer
        #[arg(long)]
        erase: bool,
    },
    /// Show who is signed in and how watching goes
    Status {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Watch lab orders and notify, without a window
    Watch {
        /// Run one cycle, deliver its notifications, and exit
        #[arg(long)]
        once: bool,
        /// Run this many cycles back to back (no waiting), report memory and requests, exit (benchmarks)
        #[arg(long, value_name = "N", conflicts_with = "once")]
        cycles: Option<u32>,
        /// Also print test names with each alert (never patient names unless
        /// `show_patient_names` is on). By default only order ids and states
        /// are printed: under a service manager stdout goes to the system journal.
        #[arg(long)]
        verbose: bool,
    },
    /// Show a test notification, through the same path as result alerts
    NotifyTest,
    /// Run the built-in Fullscript API simulator
    Simulate(Box<SimulateArgs>),
    /// Start the app against the simulator's demo scenario (no account needed)
    Demo {
        /// Seconds between the demo's moves
        #[arg(long, default_value_t = 6.0)]
        step_secs: f64,
    },
    /// The background agent alone (what starting the app runs; `--minimized`: no window)
    #[command(hide = true)]
    Agent,
    /// The window alone (the agent starts it; it starts the agent if none runs)
    #[command(hide = true)]
    Window,
}

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    #[arg(long, default_value_t = 4010)]
    pub port: u16,
    /// empty, sample or demo
    #[arg(long, default_value = "demo")]
    pub scenario: String,
    #[arg(long, default_value = fsn_simulator::DEMO_CLIENT_ID)]
    pub client_id: String,
    #[arg(long, default_value = fsn_simulator::DEMO_CLIENT_SECRET)]
    pub client_secret: String,
    #[arg(long, default_value = fsn_simulator::DEFAULT_REDIRECT_URI)]
    pub redirect_uri: String,
    /// Skip the consent page and redirect at once (for scripts)
    #[arg(long)]
    pub auto_approve: bool,
    /// Access token lifetime in seconds
    #[arg(long, default_value_t = 7200)]
    pub access_token_ttl: u64,
    /// Requests allowed per rolling 5 minutes
    #[arg(long, default_value_t = 5000)]
    pub rate_limit: u32,
    /// Seconds between the demo scenario's moves
    #[arg(long, default_value_t = 6.0)]
    pub step_secs: f64,
    /// Deliver signed `lab_order.updated` webhooks to this URL (plain http,
    /// e.g. a relay on this computer: http://127.0.0.1:8787/webhooks/fullscript)
    #[arg(long, value_name = "URL")]
    pub webhook_url: Option<url::Url>,
    /// The webhook secret the deliveries are signed with
    #[arg(
        long,
        value_name = "SECRET",
        env = "FSN_SIM_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    pub webhook_secret: Option<String>,
    /// Multiply Fullscript's retry delays (1 min … 5 h) by this (0.001 for tests)
    #[arg(long, default_value_t = 1.0)]
    pub webhook_retry_scale: f64,
    /// Deliver every webhook twice
    #[arg(long)]
    pub webhook_duplicates: bool,
    /// Deliver each batch of webhooks newest first
    #[arg(long)]
    pub webhook_out_of_order: bool,
    /// Sign webhooks with a wrong secret (the receiver must refuse them)
    #[arg(long)]
    pub webhook_wrong_signature: bool,
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// One clear line on stderr, exit 1.
pub fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(1)
}

impl Cli {
    /// Commands that need the window toolkit: only the window itself. (The
    /// app and the demo run as the agent, which starts the window.)
    pub fn is_headless(&self) -> bool {
        !matches!(self.command, Some(Command::Window))
    }

    /// The app itself (its background agent), not a one-off command.
    pub fn is_agent(&self) -> bool {
        matches!(self.command, None | Some(Command::Agent))
    }

    pub fn paths(&self) -> Result<Paths, fsn_core::config::ConfigError> {
        Paths::resolve(self.config.clone(), self.data_dir.clone())
    }
}

/// Warnings and errors on stderr (each command's output is its own).
pub fn init_logging() {
    use tracing_subscriber::{fmt, layer::SubscriberExt, util::SubscriberInitExt, EnvFilter};
    let filter = EnvFilter::try_from_env("FSN_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::registry()
        .with(fmt::layer().with_writer(std::io::stderr).with_target(false))
        .with(filter)
        .try_init();
}

/// Run a headless subcommand (login, logout, status, watch, simulate).
pub fn run_headless(cli: Cli) -> ExitCode {
    let paths = match cli.paths() {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let cmd = match cli.command {
        // The app: its agent (which starts the window unless `--minimized`).
        None | Some(Command::Agent) => {
            return fsn_agent::run(
                paths,
                fsn_agent::Options {
                    minimized: cli.minimized,
                    demo: None,
                },
            )
        }
        Some(Command::Demo { step_secs }) => return fsn_agent::demo::run(paths, step_secs),
        Some(Command::Window) => {
            return fail("the window needs the desktop build: run `fullscript-notifier`")
        }
        Some(cmd) => cmd,
    };
    // (The agent logs to its own files; commands to stderr.)
    init_logging();
    if let Command::Simulate(args) = cmd {
        return simulate(*args);
    }
    fsn_core::supervise::install_panic_hook();
    let app = match App::open(paths) {
        Ok(a) => Arc::new(a),
        Err(e) => return fail(e),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    rt.block_on(async move {
        match cmd {
            Command::Login => login(&app).await,
            Command::Logout { erase } => logout(&app, erase).await,
            Command::Status { json } => status(&app, json).await,
            Command::NotifyTest => notify_test(&app).await,
            Command::Watch {
                cycles: Some(n), ..
            } => watch_cycles(&app, n).await,
            Command::Watch {
                once,
                cycles: None,
                verbose,
            } => watch(&app, once, verbose).await,
            Command::Simulate(_) | Command::Demo { .. } | Command::Agent | Command::Window => {
                fail("this command is handled before the app opens")
            }
        }
    })
}

async fn login(app: &App) -> ExitCode {
    // The app is running: its agent signs in (one place for the loopback
    // listener, the browser hand-off and the watcher that follows).
    if let Some(code) = login_through_agent(app).await {
        return code;
    }
    let session = match app.session() {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    session.retry_pending_revocations().await;
    let opener = BrowserOpener::new(UrlGuard::new(&app.config));
    let result = app
        .login(&session, |url| {
            eprintln!("Opening your browser to sign in to Fullscript. If it does not open, visit:\n  {url}");
            if let Err(e) = opener.open(url) {
                eprintln!("({e})");
            }
        })
        .await;
    match result {
        Ok(account) => {
            let who = account
                .resource_owner
                .as_ref()
                .map(|o| format!("{} {}", o.kind, o.id))
                .unwrap_or_else(|| "unknown user".into());
            println!(
                "Signed in to {} ({}) as {who}; tokens kept in the {}.",
                account.clinic.name,
                app.config.environment,
                match session.storage().kind() {
                    fsn_core::secret_store::StorageKind::Keychain => "system keychain",
                    fsn_core::secret_store::StorageKind::File => "private token file",
                }
            );
            if let Some(note) = session.storage().note() {
                println!("Note: {note}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// Sign in through the running agent; `None` when none runs.
async fn login_through_agent(app: &App) -> Option<ExitCode> {
    use fsn_protocol::{Client, Endpoint, Event, Request, SignInStarted, Snapshot};
    let endpoint = Endpoint::for_data_dir(&app.paths.data_dir);
    let (client, mut events) = Client::connect(&endpoint).await.ok()?;
    client.subscribe(false).await.ok()?;
    eprintln!("The app is running: signing in through it.");
    let sign_in = Request::SignIn {
        region: None,
        environment: None,
        client_id: None,
        client_secret: None,
    };
    let started: SignInStarted = match client.ask(&sign_in).await {
        Ok(v) => v,
        Err(e) => return Some(fail(e)),
    };
    eprintln!(
        "Opening your browser to sign in to Fullscript. If it does not open, visit:\n  {}",
        started.authorize_url
    );
    // The practitioner signs in in the browser: a while, never forever.
    let deadline = tokio::time::Instant::now() + SIGN_IN_WAIT;
    while let Ok(Some(e)) = tokio::time::timeout_at(deadline, events.recv()).await {
        let Event::SignInFinished { ok, message } = e else {
            continue;
        };
        if !ok {
            return Some(fail(message));
        }
        let report = match client.ask::<Snapshot>(&Request::Snapshot).await {
            Ok(s) => s.report,
            Err(e) => return Some(fail(format!("signed in, but the running app: {e}"))),
        };
        let who = report
            .as_ref()
            .and_then(|r| r.resource_owner.as_ref())
            .map(|o| format!("{} {}", o.kind, o.id))
            .unwrap_or_else(|| "unknown user".into());
        println!(
            "Signed in to {} ({}) as {who}; the running app watches it now.",
            report
                .as_ref()
                .and_then(|r| r.clinic.as_ref())
                .map_or("your clinic", |c| c.name.as_str()),
            report.as_ref().map_or("?", |r| r.environment.as_str()),
        );
        return Some(ExitCode::SUCCESS);
    }
    if tokio::time::Instant::now() >= deadline {
        return Some(fail("the sign-in did not finish within 15 minutes"));
    }
    Some(fail("the running app stopped during sign-in"))
}

/// How long `login` through the running app waits for the browser's sign-in.
const SIGN_IN_WAIT: std::time::Duration = std::time::Duration::from_secs(15 * 60);

async fn logout(app: &App, erase: bool) -> ExitCode {
    // The app is running: its agent signs out (and erases), so that its
    // watcher stops and nothing it holds is written back afterwards.
    if let Some(code) = logout_through_agent(app, erase).await {
        return code;
    }
    let session = match app.session() {
        Ok(s) => s,
        Err(_) if erase => {
            // Not configured: nothing to revoke, but the local data still goes.
            return match app.erase_local_data() {
                Ok(()) => {
                    println!("Local lab orders, alerts and logs erased.");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(format!("could not erase the local data: {e}")),
            };
        }
        Err(e) => return fail(e),
    };
    if let Err(e) = session.load().await {
        return fail(e);
    }
    let report = app.logout(&session, erase).await;
    print_sign_out(&fsn_protocol::SignedOut {
        was_signed_in: report.was_signed_in,
        revoke_errors: report.revoke_errors,
        queued: report.queued,
        local_error: report.local_error,
        erased: erase,
    })
}

/// Sign out (and erase) through the running agent; `None` when none runs.
async fn logout_through_agent(app: &App, erase: bool) -> Option<ExitCode> {
    use fsn_protocol::{Client, Endpoint, Request, SignedOut};
    let endpoint = Endpoint::for_data_dir(&app.paths.data_dir);
    let (client, _events) = Client::connect(&endpoint).await.ok()?;
    eprintln!("The app is running: signing out through it.");
    match client.ask::<SignedOut>(&Request::SignOut { erase }).await {
        Ok(report) => Some(print_sign_out(&report)),
        Err(e) => Some(fail(e)),
    }
}

fn print_sign_out(report: &fsn_protocol::SignedOut) -> ExitCode {
    let erase = report.erased;
    if !report.was_signed_in {
        println!("Not signed in; nothing to revoke.");
    }
    for e in &report.revoke_errors {
        eprintln!("warning: could not revoke at Fullscript: {e}");
    }
    if report.queued > 0 {
        eprintln!(
            "warning: {} revocation(s) will be retried at the next start",
            report.queued
        );
    }
    if let Some(e) = &report.local_error {
        return fail(format!("could not delete the local data: {e}"));
    }
    if report.was_signed_in {
        println!("Signed out; local tokens deleted.");
    }
    if erase {
        println!("Local lab orders, alerts and logs erased.");
    }
    if report.revoke_errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn print_status(s: &StatusReport) {
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let signed = if s.signed_in {
        match &s.resource_owner {
            Some(o) => format!("yes ({} {})", o.kind, o.id),
            None => "yes".into(),
        }
    } else {
        match &s.signed_out_reason {
            Some(r) => format!("no ({r})"),
            None if !s.configured => "no (not configured: see the README's user guide)".into(),
            None => "no".into(),
        }
    };
    println!("Signed in:      {signed}");
    println!(
        "Clinic:         {}",
        s.clinic
            .as_ref()
            .map(|c| format!("{} ({})", c.name, c.id))
            .unwrap_or_else(|| "-".into())
    );
    println!("Environment:    {}", s.environment);
    println!(
        "Token storage:  {}{}",
        s.token_storage,
        s.token_storage_note
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default()
    );
    println!("Token expires:  {}", or_dash(&s.access_token_expires_at));
    println!(
        "Connection:     {}",
        serde_json::to_value(s.watch.connection)
            .unwrap_or_default()
            .as_str()
            .unwrap_or("-")
    );
    if let Some(push) = &s.watch.push {
        println!(
            "Push:           {push}{}",
            s.watch_mode
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        );
        if let Some(note) = &s.watch.sweep_note {
            println!("Order list:     {note}");
        }
        if s.watch.push_unreadable > 0 {
            println!(
                "Unreadable:     {} pushed event(s) could not be read (the hourly read covers them)",
                s.watch.push_unreadable
            );
        }
    }
    println!("Last check:     {}", or_dash(&s.watch.last_poll_at));
    println!("Next check:     {}", or_dash(&s.watch.next_poll_at));
    if let Some(since) = &s.watch.retrying_since {
        println!("Retrying since: {since}");
    }
    match s.watch.events_feed {
        fsn_core::status::EventsFeed::Refused => {
            println!("Events feed:    refused by Fullscript; every check reads all orders")
        }
        fsn_core::status::EventsFeed::Unavailable => println!(
            "Events feed:    unavailable at the last check ({}); the order list was read instead",
            s.watch.events_feed_error.as_deref().unwrap_or("no detail")
        ),
        _ => {}
    }
    if s.watch.skipped_records > 0 {
        println!(
            "Unreadable:     {} record(s) from Fullscript could not be read (kept as they were){}",
            s.watch.skipped_records,
            if s.unreadable_orders.is_empty() {
                String::new()
            } else {
                format!(
                    "; orders: {}",
                    s.unreadable_orders
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
    }
    if s.watch.restarts > 0 {
        println!(
            "Restarts:       the watcher stopped unexpectedly {} time(s) and was restarted",
            s.watch.restarts
        );
    }
    if let Some(r) = &s.local_history_rebuilt {
        println!(
            "Local history:  rebuilt {} (the damaged database is kept as {}); results found meanwhile are listed as unseen",
            r.at, r.kept_as
        );
    }
    if let Some(reason) = &s.needs_configuration {
        println!("Needs setup:    {reason}");
    }
    let orders: Vec<String> = s
        .orders_by_state
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect();
    println!(
        "Lab orders:     {}",
        if orders.is_empty() {
            "-".into()
        } else {
            orders.join(", ")
        }
    );
    if !s.unknown_states.is_empty() {
        let states: Vec<String> = s
            .unknown_states
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        println!(
            "Unrecognised:   {} (listed, never notified; an update may be needed)",
            states.join(", ")
        );
    }
    println!("Unseen results: {}", s.unseen);
    println!("Alerts queued:  {}", s.alerts_pending);
    if let Some(p) = &s.paused_until {
        println!("Paused until:   {p}");
    }
    if let Some(h) = &s.clinic_hours {
        println!(
            "Clinic hours:   {} {}-{} (alerts outside them are held for a digest)",
            h.day_names().join(","),
            h.open.format("%H:%M"),
            h.close.format("%H:%M")
        );
    }
    if s.watch.held_alerts > 0 {
        let until = s
            .watch
            .quiet
            .and_then(|q| q.until())
            .map(|t| format!(" until {}", fsn_core::store::ts(t)))
            .unwrap_or_default();
        println!(
            "Held:           {} alert(s){until}, then announced in one digest",
            s.watch.held_alerts
        );
    }
    if !s.watch.notifications_available {
        println!("Notifications:  no notification service answered; alerts are queued");
    }
    println!("Last error:     {}", or_dash(&s.watch.last_error));
    println!("Config file:    {}", s.config_file);
    println!("Data directory: {}", s.data_dir);
}

/// `notify-test`: a real notification through the desktop notifier.
async fn notify_test(app: &Arc<App>) -> ExitCode {
    let notifier = DesktopNotifier::new(Arc::new(|_, _| {}));
    let shown = {
        let app = app.clone();
        tokio::task::spawn_blocking(move || app.send_test_notification(&notifier)).await
    };
    match shown {
        Ok(Ok(())) => {
            println!(
                "A test notification was sent. {}",
                fsn_core::app::TEST_NOTIFICATION_HINT
            );
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => fail(e),
        Err(e) => fail(e),
    }
}

async fn status(app: &App, json: bool) -> ExitCode {
    let session = app.session().ok();
    let report = app.status(session.as_deref()).await;
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => return fail(e),
        }
    } else {
        print_status(&report);
    }
    ExitCode::SUCCESS
}

/// What every watching command needs first: this data directory's watcher
/// lock (held while the answer lives) and a signed-in session.
async fn watching_session(
    app: &App,
) -> Result<(std::fs::File, Arc<fsn_core::session::Session>), ExitCode> {
    let lock = app.lock_watcher().map_err(fail)?;
    let session = app.session().map_err(fail)?;
    // Revocations a sign-out could not get through: tried again, in the background.
    let retry = session.clone();
    tokio::spawn(async move { retry.retry_pending_revocations().await });
    match session.load().await {
        Ok(true) => Ok((lock, session)),
        Ok(false) => Err(fail("not signed in: run `fullscript-notifier login` first")),
        Err(e) => Err(fail(e)),
    }
}

async fn watch(app: &Arc<App>, once: bool, verbose: bool) -> ExitCode {
    let (_lock, session) = match watching_session(app).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let click_app = app.clone();
    let opener = Arc::new(BrowserOpener::new(UrlGuard::new(&app.config)));
    let notifier = Arc::new(DesktopNotifier::new(Arc::new(move |n, action| {
        // A click: the practitioner is looking at these results now (or
        // marked them reviewed from the notification).
        click_app.on_action(n, action, &*opener);
        println!(
            "notification {} ({})",
            match action {
                fsn_core::policy::NotificationAction::Open => "clicked",
                fsn_core::policy::NotificationAction::MarkReviewed => "marked reviewed",
            },
            n.kind.label()
        );
    })));
    let handle = app.watcher_handle();
    let mut events = handle.subscribe();
    let printer = tokio::spawn(async move {
        while let Ok(ev) = events.recv().await {
            print_event(&ev, verbose);
        }
    });

    if once {
        let mut watcher = match app.watcher_on(session.clone(), notifier.clone(), handle) {
            Ok(w) => w,
            Err(e) => return fail(e),
        };
        let (result, _) = watcher.cycle().await;
        // Let the printer drain.
        tokio::time::sleep(Duration::from_millis(50)).await;
        printer.abort();
        return match result {
            Ok(r) => {
                println!(
                    "cycle ok: {} requests, {} orders read, {} changed, {} new alerts, {} delivered",
                    r.requests, r.orders_fetched, r.orders_changed, r.new_alerts, r.delivered
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        };
    }

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let push = app.spawn_push(session.clone(), handle.clone(), stop_rx.clone());
    let mut auth = session.subscribe();
    let make_app = app.clone();
    let make_session = session.clone();
    let make_notifier: Arc<dyn fsn_core::notifier::Notifier> = notifier.clone();
    let mut run = tokio::spawn(fsn_core::supervise::supervise(
        move |h| make_app.watcher_on(make_session.clone(), make_notifier.clone(), h),
        handle.clone(),
        stop_rx,
    ));
    spawn_check_now_on_sigusr1(handle.clone());
    let update_checks = app.spawn_update_checks(|| {});
    println!(
        "watching lab orders (Ctrl-C to stop; `kill -USR1 {}` checks now)",
        std::process::id()
    );
    let code = tokio::select! {
        _ = shutdown_signal() => ExitCode::SUCCESS,
        ended = &mut run => {
            // The supervisor only returns on its own when it gave up.
            let why = match ended {
                Ok(Err(e)) => e.to_string(),
                Ok(Ok(())) => "the watcher stopped".to_string(),
                Err(e) => format!("the watcher's supervisor failed: {e}"),
            };
            printer.abort();
            return fail(why);
        }
        cause = async {
            loop {
                if let AuthState::SignedOut { cause: Some(SignedOutCause::Ended { reason }) } = &*auth.borrow_and_update() {
                    return reason.clone();
                }
                if auth.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        } => {
            let note = fsn_core::policy::sign_in_again(app.config.sound);
            let n = notifier.clone();
            let _ = tokio::task::spawn_blocking(move || fsn_core::notifier::Notifier::show(&*n, &note)).await;
            eprintln!("error: signed out: {cause}; run `fullscript-notifier login`");
            ExitCode::from(1)
        }
    };
    // A graceful stop: a delivery in progress finishes first.
    update_checks.abort();
    if let Some(p) = push {
        p.abort();
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(30), run).await;
    printer.abort();
    code
}

/// Resident memory of this process in KiB (Linux), for the benchmark lines.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// `watch --cycles N`: the benchmark drives the cycles; the interval is not waited for.
async fn watch_cycles(app: &Arc<App>, n: u32) -> ExitCode {
    let (_lock, session) = match watching_session(app).await {
        Ok(s) => s,
        Err(code) => return code,
    };
    let notifier = Arc::new(fsn_core::notifier::RecordingNotifier::default());
    let mut watcher = match app.watcher(session, notifier.clone()) {
        Ok(w) => w,
        Err(e) => return fail(e),
    };
    let mut requests = Vec::with_capacity(n as usize);
    for i in 1..=n {
        match watcher.cycle().await.0 {
            Ok(r) => requests.push(r.requests),
            Err(e) => return fail(format!("cycle {i}: {e}")),
        }
        notifier.taken();
        if i == 1 || i % 100 == 0 {
            println!(
                "cycle {i:>5}: rss {} KiB, tracked orders {}",
                rss_kib()
                    .map(|k| k.to_string())
                    .unwrap_or_else(|| "?".into()),
                watcher.tracked_len()
            );
        }
    }
    let mut sorted = requests.clone();
    sorted.sort_unstable();
    let total: u64 = requests.iter().sum();
    println!(
        "{n} cycles: {total} requests, median {} per cycle, mean {:.2}",
        sorted[sorted.len() / 2],
        total as f64 / n as f64
    );
    ExitCode::SUCCESS
}

/// One line per check and per alert. Alerts print their order id and
/// state, never what the test or patient is (stdout may go to a system
/// journal outside the private data directory); `--verbose` adds the
/// notification's text, which names a patient only when `show_patient_names` is on.
fn print_event(ev: &WatchEvent, verbose: bool) {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    match ev {
        WatchEvent::Cycle {
            report,
            error,
            next_in,
        } => match (report, error) {
            (Some(r), _) => println!(
                "{now} cycle ok{}: {} requests, {} changed, {} new alerts; next in {}s",
                if r.swept { " (full sweep)" } else { "" },
                r.requests,
                r.orders_changed,
                r.new_alerts,
                next_in.as_secs()
            ),
            (None, Some(e)) => println!(
                "{now} cycle failed: {e}; next try in {}s",
                next_in.as_secs()
            ),
            (None, None) => {}
        },
        WatchEvent::Delivered(notes) => {
            for n in notes {
                let what = match &n.kind {
                    fsn_core::policy::NotificationKind::Result { order_id } => {
                        format!("order {order_id}")
                    }
                    fsn_core::policy::NotificationKind::Summary { order_ids } => {
                        format!("{} orders", order_ids.len())
                    }
                    _ => String::new(),
                };
                if verbose {
                    println!("{now} alert: {} ({what}) — {}", n.title, n.body);
                } else {
                    println!("{now} alert: {} ({what})", n.title);
                }
            }
        }
        WatchEvent::Status(_) | WatchEvent::OrdersChanged => {}
    }
}

/// `kill -USR1 <pid>`: check now (scripts, and after a manual reconnect).
fn spawn_check_now_on_sigusr1(handle: fsn_core::watcher::WatcherHandle) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut usr1) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
        else {
            return;
        };
        while usr1.recv().await.is_some() {
            handle.check_now();
        }
    });
    #[cfg(not(unix))]
    let _ = handle;
}

/// Ctrl-C, or SIGTERM from a service manager.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn simulate(a: SimulateArgs) -> ExitCode {
    let scenario = match a.scenario.parse::<fsn_simulator::Scenario>() {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    if !(a.step_secs.is_finite() && a.step_secs > 0.0) {
        return fail("--step-secs must be a positive number");
    }
    if !(a.webhook_retry_scale.is_finite() && a.webhook_retry_scale > 0.0) {
        return fail("--webhook-retry-scale must be a positive number");
    }
    let webhook =
        match (a.webhook_url, a.webhook_secret) {
            (Some(url), Some(secret)) if url.scheme() == "http" => {
                Some(fsn_simulator::webhooks::WebhookConfig {
                    url,
                    secret,
                    retry_scale: a.webhook_retry_scale,
                    duplicates: a.webhook_duplicates,
                    out_of_order: a.webhook_out_of_order,
                    wrong_signature: a.webhook_wrong_signature,
                })
            }
            (Some(_), Some(_)) => return fail(
                "--webhook-url must be a plain http URL (the simulator delivers to this computer)",
            ),
            (Some(_), None) => return fail("--webhook-url needs --webhook-secret"),
            (None, _) => None,
        };
    let config = fsn_simulator::SimConfig {
        port: a.port,
        client_id: a.client_id,
        client_secret: a.client_secret,
        redirect_uri: a.redirect_uri,
        auto_approve: a.auto_approve,
        access_token_ttl: Duration::from_secs(a.access_token_ttl.max(1)),
        rate_limit: a.rate_limit.max(1),
        scenario,
        demo_step: Duration::from_secs_f64(a.step_secs),
        webhook,
        ..Default::default()
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    rt.block_on(async move {
        let sim = match fsn_simulator::Simulator::start(config.clone()).await {
            Ok(s) => s,
            Err(e) => return fail(format!("cannot listen on 127.0.0.1:{}: {e}", config.port)),
        };
        let base = sim.base_url();
        // The simulator's own made-up credentials: printed on purpose, so a
        // config file or a person can use them.
        println!("Fullscript API simulator listening on {base}");
        println!("  client_id:     {}", config.client_id);
        println!("  client_secret: {}", config.client_secret);
        println!("  redirect_uri:  {}", config.redirect_uri);
        println!("  scenario:      {}", config.scenario.name());
        println!("  authorize:     {base}/api/oauth/authorize");
        if let Some(w) = &config.webhook {
            println!("  webhooks to:   {}", w.url);
        }
        println!("Config for the app (environment = \"custom\"):");
        println!(
            "{}",
            custom_config_toml(&base, &config.client_id, &config.redirect_uri)
        );
        shutdown_signal().await;
        sim.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// A config file for the custom environment pointing at a simulator.
pub fn custom_config_toml(base: &str, client_id: &str, redirect_uri: &str) -> String {
    fsn_simulator::fixture::app_config(base, redirect_uri, &format!("client_id = \"{client_id}\""))
}
