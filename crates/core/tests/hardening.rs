//! Patient data and secrets on a shared clinic workstation: what a hostile
//! or broken answer, another local program or another process of the app
//! cannot do.

mod common;

use std::sync::Arc;

use common::*;
use fsn_core::api::ApiError;
use fsn_core::oauth::AuthError;
use fsn_core::secret_store::{FileStore, SecretStore};
use fsn_simulator::{FaultKind, FaultSpec, SimConfig};

fn once(kind: FaultKind, path: &str) -> FaultSpec {
    FaultSpec {
        kind,
        count: Some(1),
        for_secs: None,
        path_prefix: Some(path.to_string()),
    }
}

#[tokio::test]
async fn token_calls_never_follow_a_redirect_and_say_where_it_pointed() {
    let w = world(SimConfig::default()).await;
    let (app, session) = signed_in(&w, "").await;
    // A 307/308 would re-send the body (secret, refresh token) to wherever it points.
    let trap = fsn_simulator::Simulator::start(SimConfig::default())
        .await
        .unwrap();
    let location = format!("{}/api/oauth/token?leak=1", trap.base_url());
    w.sim.control().expire_access_tokens();
    w.sim
        .control()
        .add_fault(once(
            FaultKind::Redirect {
                status: 307,
                location: location.clone(),
            },
            "/api/oauth/token",
        ))
        .unwrap();
    let err = app.api(session.clone()).clinic().await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            ApiError::Auth(AuthError::Redirected { status: 307, .. })
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!("{}/api/oauth/token", trap.base_url())),
        "{text}"
    );
    assert!(!text.contains("leak=1"), "never the query: {text}");
    assert!(
        trap.control().requests().is_empty(),
        "nothing was sent to the redirect's target"
    );
    assert!(session.is_signed_in(), "a redirect is not a sign-out");
}

#[tokio::test]
async fn api_calls_follow_redirects_only_within_their_origin() {
    let w = world(SimConfig::default()).await;
    let (app, session) = signed_in(&w, "").await;
    let api = app.api(session);
    // Same origin: followed.
    w.sim
        .control()
        .add_fault(once(
            FaultKind::Redirect {
                status: 302,
                location: format!("{}/api/clinic", w.sim.base_url()),
            },
            "/api/clinic",
        ))
        .unwrap();
    api.clinic().await.unwrap();
    // Another origin: not followed (the bearer token stays home).
    let other = fsn_simulator::Simulator::start(SimConfig::default())
        .await
        .unwrap();
    w.sim
        .control()
        .add_fault(once(
            FaultKind::Redirect {
                status: 302,
                location: format!("{}/api/clinic", other.base_url()),
            },
            "/api/clinic",
        ))
        .unwrap();
    assert!(api.clinic().await.is_err());
    assert!(other.control().requests().is_empty());
}

#[tokio::test]
async fn responses_larger_than_32_mb_are_refused_with_a_clear_error() {
    let w = world(SimConfig::default()).await;
    let (app, session) = signed_in(&w, "").await;
    let api = app.api(session);
    for chunked in [false, true] {
        w.sim
            .control()
            .add_fault(once(
                FaultKind::HugeBody {
                    megabytes: 33,
                    chunked,
                },
                "/api/clinic/labs/orders",
            ))
            .unwrap();
        let err = match api.orders_page(1).await {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a 33 MB answer was read (chunked: {chunked})"),
        };
        assert!(err.contains("larger than 32 MB"), "{err}");
    }
    // An ordinary answer still reads.
    api.orders_page(1).await.unwrap();
}

#[test]
fn the_secrets_file_loses_nothing_when_two_processes_write_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let path = dir.path().to_path_buf();
            std::thread::spawn(move || {
                // Each its own store: as separate processes would have.
                let store = FileStore::new(&path, "ns", None);
                for i in 0..25 {
                    store.set(&format!("k{t}-{i}"), "v").unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let store = FileStore::new(dir.path(), "ns", None);
    for t in 0..4 {
        for i in 0..25 {
            assert!(
                store.get(&format!("k{t}-{i}")).unwrap().is_some(),
                "k{t}-{i} lost"
            );
        }
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let _ = Arc::new(store);
}

#[tokio::test]
async fn a_refresh_never_writes_over_a_newer_sign_in_from_another_process() {
    let w = world(SimConfig::default()).await;
    let (app, first) = signed_in(&w, "").await;
    // Another process signs in anew on the same data directory.
    let other = fsn_core::App::open(w.paths()).unwrap();
    let second = other.session().unwrap();
    other.login(&second, approve()).await.unwrap();
    let newest = secrets_file(w.dir.path());
    assert_ne!(first.grant_id(), second.grant_id());

    // The first one's token runs out: its refresh must not put its own
    // (older) sign-in back over the newer one; it follows the newer one.
    w.sim.control().expire_access_tokens();
    let err = app.api(first.clone()).clinic().await.unwrap_err();
    assert!(err.to_string().contains("replaced"), "{err}");
    assert_eq!(
        secrets_file(w.dir.path()),
        newest,
        "the newer sign-in is untouched"
    );
    assert_eq!(first.grant_id(), second.grant_id(), "and followed");
}
