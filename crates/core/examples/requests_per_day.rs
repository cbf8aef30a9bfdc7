//! How many requests one practitioner's app sends Fullscript in a day, with
//! today's polling and with a relay pushing results: measured against the
//! simulator (every request it answered is counted), for a clinic of 1,000
//! lab orders through one simulated working day. Run by
//! `scripts/bench-relay.sh`; prints figures, asserts nothing.
//!
//! The day: 24 changes no webhook announces (purchased → processing) and
//! 12 results (6 partial, 5 ready, 1 amended), spread over 08:00–18:00.
//! Polling runs a cycle a minute with today's defaults (the events feed
//! every minute, the whole list every 10th). With the relay, each result
//! arrives as a push (its order's detail is read) and the list is read
//! hourly, newest change first. Time is the simulator's, moved a minute
//! per step; the request budget is lifted so that pacing does not slow the
//! run (it changes when requests go, not how many).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use fsn_core::api::FullscriptClient;
use fsn_core::backoff::RequestBudget;
use fsn_core::lab::LabEvent;
use fsn_core::notifier::RecordingNotifier;
use fsn_core::status::PushState;
use fsn_core::watcher::{Pushed, Watcher};
use fsn_simulator::SimConfig;

const ORDERS: usize = 1000;
/// Fullscript's limit for the whole registration.
const LIMIT_PER_HOUR: f64 = 5000.0 * 12.0;

/// (minute of the day, order index, new state, announced by a webhook)
fn the_day() -> Vec<(u32, usize, &'static str, bool)> {
    let mut day = Vec::new();
    for i in 0..24u32 {
        day.push((8 * 60 + i * 25, 900 + i as usize, "processing", false));
    }
    for i in 0..6u32 {
        day.push((9 * 60 + i * 80, 800 + i as usize, "partial_results", true));
    }
    for i in 0..5u32 {
        day.push((10 * 60 + i * 90, 810 + i as usize, "results_ready", true));
    }
    day.push((15 * 60, 0, "results_amended", true));
    day.sort();
    day
}

fn api_requests(w: &common::World, since: usize) -> usize {
    w.sim
        .control()
        .requests()
        .into_iter()
        .skip(since)
        .filter(|e| e.path.starts_with("/api/") && !e.path.starts_with("/api/oauth"))
        .count()
}

async fn clinic() -> (common::World, Vec<String>) {
    // Tokens last the day (the refreshes are the same either way, said
    // apart); no rate limit (the run is faster than real time).
    let w = common::world(SimConfig {
        access_token_ttl: Duration::from_secs(48 * 3600),
        rate_limit: 10_000_000,
        ..Default::default()
    })
    .await;
    let c = w.sim.control();
    let mut ids = c.add_bulk_orders(700, "results_ready");
    ids.extend(c.add_bulk_orders(100, "processing"));
    ids.extend(c.add_bulk_orders(ORDERS - 800, "purchased"));
    (w, ids)
}

fn watcher(app: &fsn_core::App, session: Arc<fsn_core::session::Session>) -> Watcher {
    let api = Arc::new(FullscriptClient::new(
        app.http.clone(),
        app.config.endpoints.api_base.clone(),
        session,
        Arc::new(RequestBudget::new(100_000_000)),
    ));
    Watcher::new(
        api,
        app.store.clone(),
        Arc::new(RecordingNotifier::default()),
        &app.config,
    )
    .expect("watcher")
}

async fn polling() -> (usize, usize) {
    let (w, ids) = clinic().await;
    let (app, session) = common::signed_in(&w, "").await;
    // Yesterday's first look (not counted): today starts with the app.
    watcher(&app, session.clone())
        .run_cycle()
        .await
        .expect("baseline");
    let mut watcher = watcher(&app, session);
    let day = the_day();
    let start = w.sim.control().requests().len();
    let mut alerts = 0;
    for minute in 0..24 * 60 {
        for (_, i, state, _) in day.iter().filter(|c| c.0 == minute) {
            w.sim.control().set_state(&ids[*i], state).expect("change");
        }
        alerts += watcher.run_cycle().await.map(|r| r.new_alerts).unwrap_or(0);
        w.sim.control().advance_clock(Duration::from_secs(60));
    }
    (api_requests(&w, start), alerts)
}

async fn relay() -> (usize, usize) {
    let (w, ids) = clinic().await;
    let (_, session) = common::signed_in(&w, "").await;
    watcher(&w.app(""), session.clone())
        .run_cycle()
        .await
        .expect("baseline");
    let app = w.app("relay_url = \"http://127.0.0.1:9/\"\n");
    let session = app.session().expect("session");
    session.load().await.expect("signed in");
    let mut watcher = watcher(&app, session);
    let h = watcher.handle();
    let day = the_day();
    let start = w.sim.control().requests().len();
    h.set_push(PushState::Connected);
    // The app starts: its first check (incremental: what changed overnight).
    let mut alerts = watcher.run_cycle().await.map(|r| r.new_alerts).unwrap_or(0);
    let mut seq = 0;
    for minute in 1..24 * 60 {
        let mut run = false;
        for (_, i, state, webhook) in day.iter().filter(|c| c.0 == minute) {
            w.sim.control().set_state(&ids[*i], state).expect("change");
            if *webhook {
                seq += 1;
                h.push_event(Pushed {
                    seq: Some(seq),
                    event: LabEvent {
                        id: format!("ev-{seq}"),
                        created_at: None,
                        order_id: ids[*i].clone(),
                    },
                });
                run = true;
            }
        }
        if minute % 60 == 0 {
            h.check_now_with_sweep();
            run = true;
        }
        if run {
            match watcher.run_cycle().await {
                Ok(r) => alerts += r.new_alerts,
                Err(e) => eprintln!("relay cycle at minute {minute}: {e}"),
            }
        }
        w.sim.control().advance_clock(Duration::from_secs(60));
    }
    if std::env::var_os("FSN_BENCH_VERBOSE").is_some() {
        for e in w.sim.control().requests().into_iter().skip(start) {
            eprintln!("{} {} {}", e.at, e.path, e.query);
        }
    }
    // The relay asks Fullscript which clinic the token is once per
    // connection: one a day for an app that stays connected.
    (api_requests(&w, start) + 1, alerts)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (poll, poll_alerts) = if std::env::var_os("FSN_BENCH_SKIP_POLLING").is_some() {
        (0, 0)
    } else {
        polling().await
    };
    let (pushed, push_alerts) = relay().await;
    let per_hour = |n: usize| n as f64 / 24.0;
    let serves = |n: usize| (LIMIT_PER_HOUR / per_hour(n).max(f64::MIN_POSITIVE)).floor();
    println!("requests per practitioner, a clinic of {ORDERS} lab orders, one simulated day (12 results, 24 other changes):");
    println!(
        "  polling (every 60 s, whole list every 10th): {poll} requests/day = {:.1}/hour; {poll_alerts} alerts; one registration serves {:.0} practitioners under 5,000 requests per 5 minutes",
        per_hour(poll),
        serves(poll)
    );
    println!(
        "  with the relay (push + hourly incremental read): {pushed} requests/day = {:.2}/hour; {push_alerts} alerts; one registration serves {:.0} practitioners",
        per_hour(pushed),
        serves(pushed)
    );
    println!("  (both: 12 token refreshes a day besides, with 2-hour tokens; through the relay when it is used)");
    println!(
        "| requests per practitioner per hour | {:.1} | {:.2} |",
        per_hour(poll),
        per_hour(pushed)
    );
    println!(
        "| practitioners one registration serves | {:.0} | {:.0} |",
        serves(poll),
        serves(pushed)
    );
}
