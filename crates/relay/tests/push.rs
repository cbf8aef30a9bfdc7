//! Push to desktops and the token broker, against a real `nats-server` and
//! a stand-in for Fullscript (its `/clinic` look-up and token endpoint):
//! a desktop receives its own clinic's events only, resumes from its last
//! event id, and an unknown token cannot subscribe; token calls reach
//! Fullscript with the secret added and never follow a redirect.

mod support;

use std::sync::{Arc, Mutex};

use std::time::Duration;

use serde_json::{json, Value};
use support::{fake_fullscript, free_port, next, subscribe, webhook, Nats, Seen};

const SECRET: &str = "whsec_push_test";
const CLIENT_SECRET: &str = "registration-secret-9f8e";

async fn start_relay(nats_url: &str, fullscript: &str) -> String {
    let extra = format!(
        "{}client_id = \"app-id\"\nclient_secret = \"{CLIENT_SECRET}\"",
        support::fullscript_at(fullscript)
    );
    support::start_relay(SECRET, "c", nats_url, &extra).await
}

/// A JetStream server on a free port: the server and its URL.
fn start_nats(store: &std::path::Path) -> (Nats, String) {
    let nats = Nats::start(store, free_port());
    let url = nats.url();
    (nats, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desktop_receives_only_its_own_clinics_events_and_resumes_from_its_last_id() {
    let store = tempfile::tempdir().unwrap();
    let (_nats, nats_url) = start_nats(store.path());
    let fullscript = fake_fullscript(Arc::default()).await;
    let base = start_relay(&nats_url, &fullscript).await;

    assert_eq!(subscribe(&base, "not-a-token", None).await.err(), Some(401));
    let mut a = subscribe(&base, "token-a", None)
        .await
        .expect("clinic A subscribes");
    // Subscribed before the events (a first connection starts at the end).
    tokio::time::sleep(Duration::from_millis(300)).await;
    webhook(&base, SECRET, "e1", "clinic-b", "order-b1").await;
    webhook(&base, SECRET, "e2", "clinic-a", "order-a1").await;
    webhook(&base, SECRET, "e3", "clinic-a", "order-a2").await;
    let (id2, first) = next(&mut a).await.expect("A's first event");
    assert_eq!(first["lab_order_id"], "order-a1", "never clinic B's");
    assert!(!first.to_string().contains("Ana"), "no patient data pushed");
    let (_, second) = next(&mut a).await.expect("A's second event");
    assert_eq!(second["lab_order_id"], "order-a2");
    drop(a);

    // Offline meanwhile: resuming from the last id it saw gets what it missed.
    webhook(&base, SECRET, "e4", "clinic-a", "order-a3").await;
    let mut again = subscribe(&base, "token-a", Some(id2)).await.unwrap();
    let (_, resumed) = next(&mut again).await.expect("resumed");
    assert_eq!(
        resumed["lab_order_id"], "order-a2",
        "from the event after the last id"
    );
    let (_, missed) = next(&mut again).await.expect("the missed one");
    assert_eq!(missed["lab_order_id"], "order-a3");

    // Clinic B's desktop, from the start of the stream, sees only B's.
    let mut b = subscribe(&base, "token-b", Some(0)).await.unwrap();
    let (_, only) = next(&mut b).await.expect("B's event");
    assert_eq!(only["lab_order_id"], "order-b1");
    webhook(&base, SECRET, "e5", "clinic-b", "order-b2").await;
    let (_, then) = next(&mut b).await.expect("B's next");
    assert_eq!(then["lab_order_id"], "order-b2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_calls_go_through_the_relay_with_the_secret_added_and_no_redirect_followed() {
    let store = tempfile::tempdir().unwrap();
    let (_nats, nats_url) = start_nats(store.path());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let fullscript = fake_fullscript(seen.clone()).await;
    let base = start_relay(&nats_url, &fullscript).await;
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{base}/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=refresh_token&refresh_token=rt-1&client_id=app-id")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(
        answer["refresh_token"], "rt-2",
        "Fullscript's answer unchanged (rotation)"
    );
    let form = seen.lock().unwrap().token_forms[0].clone();
    assert!(
        form.contains(&format!("client_secret={CLIENT_SECRET}")),
        "{form}"
    );
    assert!(form.contains("refresh_token=rt-1"));

    let r = client
        .post(format!("{base}/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=refresh_token&refresh_token=redirect-me")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "passed on, not followed");
    assert!(
        !seen.lock().unwrap().redirect_followed,
        "the secret never went elsewhere"
    );
    // What the app sends Fullscript today: JSON, without the secret.
    let r = client
        .post(format!("{base}/oauth/token"))
        .json(
            &json!({"grant_type": "authorization_code", "code": "code-1", "client_id": "app-id",
            "redirect_uri": "http://127.0.0.1:47821/callback", "code_verifier": "v"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let sent: Value = serde_json::from_str(&seen.lock().unwrap().token_forms[2]).unwrap();
    assert_eq!(sent["client_secret"], CLIENT_SECRET);
    assert_eq!(sent["code"], "code-1");
    let r = client
        .post(format!("{base}/oauth/revoke"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=at-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
