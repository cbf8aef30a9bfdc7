//! No token or secret string ever reaches a log line, even at TRACE. Its
//! own process: tracing caches per-callsite interest process-wide, so a
//! thread-local subscriber must not share the process with other tests.

mod common;

use common::*;
use fsn_simulator::SimConfig;

/// Captures every log line of the test's thread.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_token_or_secret_reaches_the_logs() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let w = world(SimConfig::default()).await;
    let (app, session) = signed_in(&w, "").await;
    let stored = secrets_file(w.dir.path());
    w.sim.control().expire_access_tokens();
    app.api(session.clone()).clinic().await.unwrap();
    let stored_after = secrets_file(w.dir.path());
    tracing::debug!(client = ?session.oauth(), "debug of the client");
    app.logout(&session, false).await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("signed in to Fullscript"),
        "logging was captured: {logs}"
    );
    let mut secrets = vec![fsn_simulator::DEMO_CLIENT_SECRET.to_string()];
    for text in [stored, stored_after] {
        let map: serde_json::Value = serde_json::from_str(&text).unwrap();
        for v in map.as_object().unwrap().values() {
            let t: serde_json::Value = serde_json::from_str(v.as_str().unwrap()).unwrap();
            secrets.push(t["access_token"].as_str().unwrap().to_string());
            secrets.push(t["refresh_token"].as_str().unwrap().to_string());
        }
    }
    for s in secrets {
        assert!(!logs.contains(&s), "a secret reached the logs");
    }
}
