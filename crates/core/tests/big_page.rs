//! A benchmark, not a timed test: one page of 500,000 minimal events
//! (`cargo test --workspace --test big_page -- --ignored --nocapture`).
//! Prints the cycle's time and the process's peak memory; the events are
//! de-duplicated with a set, so the cost is linear (a scan per event was
//! quadratic: about 10^11 comparisons here).

mod common;

use common::*;
use fsn_simulator::{FaultKind, FaultSpec};

fn peak_rss_kib() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a benchmark: run with --ignored"]
async fn one_page_of_500000_minimal_events() {
    let r = rig("sweep_every = 1000").await;
    // Events about five orders this clinic does not have (short ids keep
    // the page under the 32 MB a response may be).
    let orders: Vec<String> = (0..5).map(|i| format!("o{i}")).collect();
    let mut w = r.watcher();
    w.run_cycle().await.unwrap(); // baseline
    let events: Vec<String> = (0..500_000)
        .map(|i| {
            format!(
                "{{\"id\":\"e{i}\",\"lab_order_id\":\"{}\"}}",
                orders[i % orders.len()]
            )
        })
        .collect();
    let json = format!("{{\"events\":[{}]}}", events.join(","));
    let megabytes = json.len() as f64 / 1e6;
    r.sim()
        .add_fault(FaultSpec {
            kind: FaultKind::Body { json },
            count: Some(1),
            for_secs: None,
            path_prefix: Some("/api/events".into()),
        })
        .unwrap();
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let start = std::time::Instant::now();
    let report = w.run_cycle().await.unwrap();
    let took = start.elapsed();
    println!(
        "500,000 events on one page ({megabytes:.1} MB): one cycle in {:.2} s, {} requests, peak RSS {:?} KiB",
        took.as_secs_f64(),
        report.requests,
        peak_rss_kib()
    );
    // And they are processed: the next cycle reads nothing again.
    let next = w.run_cycle().await.unwrap();
    println!("the next cycle: {} request(s)", next.requests);
}
