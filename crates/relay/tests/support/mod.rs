//! What the relay's tests share: a JetStream server on a temporary store
//! and a free port (installed by scripts/setup.sh; started and stopped by
//! the tests), and the relay itself in the test's process.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn wait_for_port(port: u16) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "port {port} never opened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A JetStream server on its own store; stopped when dropped.
pub struct Nats {
    child: Child,
    pub port: u16,
}

impl Nats {
    pub fn start(store: &Path, port: u16) -> Nats {
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server (scripts/setup.sh installs it)");
        wait_for_port(port);
        Nats { child, port }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The relay in this process on a free port, configured by `extra` TOML
/// over the webhook secret and challenge given; answers its base URL once
/// it is ready (NATS connected).
pub async fn start_relay(secret: &str, challenge: &str, nats_url: &str, extra: &str) -> String {
    fsn_core::http::install_crypto_provider();
    let table: toml::Table = toml::from_str(&format!(
        "webhook_secret = \"{secret}\"\nwebhook_challenge = \"{challenge}\"\nnats_url = \"{nats_url}\"\n{extra}\n"
    ))
    .expect("relay config");
    let config = fsn_relay::Config::from_table(table).expect("relay config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = fsn_relay::serve(config, listener, std::future::pending()).await;
    });
    let start = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(format!("{base}/readyz")).await {
            if r.status() == 200 {
                break;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "relay never ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    base
}

/// A counter or gauge from `/metrics`.
pub async fn metric(base: &str, line_start: &str) -> u64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `{line_start}` in\n{text}"))
}
