//! The relay under load, on this machine: DESKTOPS connected SSE desktops
//! (10 per clinic) and RATE signed webhooks per second for SECS seconds,
//! against the relay's release binary and a real `nats-server` (each its
//! own process, so their memory and CPU are theirs). Prints webhook-to-
//! desktop latency (p50/p99), the relay's and NATS's RSS and CPU, and the
//! events lost (must be 0). Run by `scripts/bench-relay.sh`; asserts nothing.
//!
//! The load generator (this process: 2,000 streams, the webhooks) shares
//! the two cores with what it measures; its own CPU is printed too.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::response::IntoResponse;
use fsn_core::push::SseParser;
use fsn_simulator::fixture::{
    free_port, relay_env_for_fullscript_at, wait_for_port, JetStream, Process,
};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const SECRET: &str = "whsec_load";
const PER_CLINIC: usize = 10;

/// (CPU seconds so far, RSS KiB, peak RSS KiB) of a process (Linux).
fn usage(pid: u32) -> (f64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is the
    // 12th, stime the 13th; clock ticks of 1/100 s on Linux.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (cpu, kib("VmRSS:"), kib("VmHWM:"))
}

/// Fullscript's clinic look-up: `tok-N` belongs to `clinic-(N / 10)`.
async fn fake_fullscript() -> String {
    async fn clinic(headers: HeaderMap) -> axum::response::Response {
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer tok-"))
            .and_then(|n| n.parse::<usize>().ok());
        match token {
            Some(n) => axum::Json(serde_json::json!({"clinic": {"id": format!("clinic-{}", n / PER_CLINIC), "name": "Load"}}))
                .into_response(),
            None => axum::http::StatusCode::UNAUTHORIZED.into_response(),
        }
    }
    let app = axum::Router::new().route("/api/clinic", axum::routing::get(clinic));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    base
}

#[derive(Default)]
struct Tally {
    sent: Mutex<HashMap<String, Instant>>,
    latencies_us: Mutex<Vec<u64>>,
    received: AtomicU64,
    duplicates: AtomicU64,
    streams_failed: AtomicU64,
}

async fn desktop(base: String, n: usize, tally: Arc<Tally>, ready: Arc<AtomicU64>) {
    let http = reqwest::Client::new();
    let response = match http
        .get(format!("{base}/v1/events"))
        .bearer_auth(format!("tok-{n}"))
        .send()
        .await
    {
        Ok(r) if r.status() == 200 => r,
        _ => {
            tally.streams_failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    ready.fetch_add(1, Ordering::Relaxed);
    let mut response = response;
    let mut parser = SseParser::default();
    let mut seen = std::collections::HashSet::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let Ok(events) = parser.feed(&chunk) else {
            break;
        };
        let now = Instant::now();
        for e in events {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&e.data) else {
                continue;
            };
            let Some(id) = v["id"].as_str() else { continue };
            if !seen.insert(id.to_string()) {
                tally.duplicates.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            tally.received.fetch_add(1, Ordering::Relaxed);
            let sent = tally.sent.lock().unwrap().get(id).copied();
            if let Some(sent) = sent {
                let us = now.saturating_duration_since(sent).as_micros() as u64;
                tally.latencies_us.lock().unwrap().push(us);
            }
        }
    }
    tally.streams_failed.fetch_add(1, Ordering::Relaxed);
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let desktops = env_or("DESKTOPS", 2000);
    let rate = env_or("RATE", 200);
    let secs = env_or("SECS", 60);
    let clinics = desktops.div_ceil(PER_CLINIC).max(1);
    fsn_core::http::install_crypto_provider();

    let store = tempfile::tempdir().unwrap();
    let nats = JetStream::start(store.path(), free_port());
    let fullscript = fake_fullscript().await;
    let port = free_port();
    let relay_bin = std::env::var("FSN_RELAY_BIN")
        .unwrap_or_else(|_| "target/release/fullscript-notifier-relay".into());
    let relay = Process(
        Command::new(&relay_bin)
            .env("FSN_RELAY_LISTEN", format!("127.0.0.1:{port}"))
            .env("FSN_RELAY_NATS_URL", nats.url())
            .env("FSN_RELAY_WEBHOOK_SECRET", SECRET)
            .env("FSN_RELAY_WEBHOOK_CHALLENGE", "load")
            .envs(relay_env_for_fullscript_at(&fullscript))
            .env("FSN_RELAY_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{relay_bin}: {e}")),
    );
    wait_for_port(port);
    let base = format!("http://127.0.0.1:{port}");

    // ---- the desktops connect (a few at a time, as a morning would)
    let tally = Arc::new(Tally::default());
    let ready = Arc::new(AtomicU64::new(0));
    let connect_start = Instant::now();
    for n in 0..desktops {
        tokio::spawn(desktop(base.clone(), n, tally.clone(), ready.clone()));
        if n % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    while (ready.load(Ordering::Relaxed) as usize)
        + (tally.streams_failed.load(Ordering::Relaxed) as usize)
        < desktops
    {
        if connect_start.elapsed() > Duration::from_secs(120) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connected = ready.load(Ordering::Relaxed);
    println!(
        "{connected} of {desktops} desktops connected in {:.1} s ({clinics} clinics)",
        connect_start.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;

    // ---- the webhooks
    let (relay_cpu0, _, _) = usage(relay.pid());
    let (nats_cpu0, _, _) = usage(nats.pid());
    let (self_cpu0, _, _) = usage(std::process::id());
    let http = reqwest::Client::new();
    let gate = Arc::new(tokio::sync::Semaphore::new(128));
    let acked = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let total = rate * secs;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let load_start = Instant::now();
    for i in 0..total {
        tick.tick().await;
        let id = format!("ev-{i}");
        let clinic = format!("clinic-{}", i % clinics);
        let body = serde_json::json!({"event": {"id": id, "type": "lab_order.updated",
            "created_at": chrono::Utc::now().to_rfc3339(), "clinic_id": clinic,
            "data": {"lab_order": {"id": format!("order-{i}"), "status": "results_ready"}}}})
        .to_string();
        let signature = fsn_relay::webhook::sign(
            body.as_bytes(),
            SECRET.as_bytes(),
            chrono::Utc::now().timestamp(),
        );
        tally.sent.lock().unwrap().insert(id, Instant::now());
        let permit = gate.clone().acquire_owned().await.unwrap();
        let (http, base, acked, refused) =
            (http.clone(), base.clone(), acked.clone(), refused.clone());
        tokio::spawn(async move {
            let r = http
                .post(format!("{base}/webhooks/fullscript"))
                .header("Fullscript-Signature", signature)
                .body(body)
                .send()
                .await;
            match r {
                Ok(r) if r.status() == 200 => acked.fetch_add(1, Ordering::Relaxed),
                _ => refused.fetch_add(1, Ordering::Relaxed),
            };
            drop(permit);
        });
    }
    let sending = load_start.elapsed().as_secs_f64();
    // Receivers per event: the desktops of its clinic that connected.
    let expected = (0..total)
        .map(|i| {
            let c = i % clinics;
            (c * PER_CLINIC..((c + 1) * PER_CLINIC).min(desktops)).count() as u64
        })
        .sum::<u64>();
    let drain = Instant::now();
    while tally.received.load(Ordering::Relaxed) < expected
        && drain.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = load_start.elapsed().as_secs_f64();
    let (relay_cpu, relay_rss, relay_peak) = usage(relay.pid());
    let (nats_cpu, nats_rss, nats_peak) = usage(nats.pid());
    let (self_cpu, _, _) = usage(std::process::id());
    let mut lat = tally.latencies_us.lock().unwrap().clone();
    lat.sort_unstable();
    let received = tally.received.load(Ordering::Relaxed);
    let lost = expected.saturating_sub(received);
    println!(
        "{total} webhooks in {sending:.1} s ({:.0}/s), {} acknowledged, {} refused or failed",
        total as f64 / sending,
        acked.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed)
    );
    println!(
        "pushed: {received} of {expected} deliveries ({lost} lost, {} duplicates, {} streams ended)",
        tally.duplicates.load(Ordering::Relaxed),
        tally.streams_failed.load(Ordering::Relaxed)
    );
    println!(
        "webhook → desktop latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0)
    );
    let cores = |cpu: f64, cpu0: f64| (cpu - cpu0) / elapsed * 100.0;
    println!(
        "relay: RSS {:.1} MiB (peak {:.1}), CPU {:.0} % of a core; nats-server: RSS {:.1} MiB (peak {:.1}), CPU {:.0} %; load generator: CPU {:.0} %",
        relay_rss as f64 / 1024.0,
        relay_peak as f64 / 1024.0,
        cores(relay_cpu, relay_cpu0),
        nats_rss as f64 / 1024.0,
        nats_peak as f64 / 1024.0,
        cores(nats_cpu, nats_cpu0),
        cores(self_cpu, self_cpu0)
    );
    println!(
        "| {desktops} desktops, {rate} webhooks/s for {secs} s | p50 {:.1} ms, p99 {:.1} ms | {lost} | relay {:.0} MiB, {:.0} % CPU | NATS {:.0} MiB, {:.0} % CPU |",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        relay_peak as f64 / 1024.0,
        cores(relay_cpu, relay_cpu0),
        nats_peak as f64 / 1024.0,
        cores(nats_cpu, nats_cpu0)
    );
    drop(relay);
    drop(nats);
}
