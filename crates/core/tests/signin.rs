//! Sign in with Fullscript: the OAuth flow, the token lifecycle and local
//! storage, against the simulator over real HTTP (no mocks of our own code).

mod common;

use std::time::Duration;

use common::*;
use fsn_core::oauth::{AuthError, AuthorizationCode};
use fsn_core::session::AuthState;
use fsn_core::AppError;
use fsn_simulator::{FaultKind, FaultSpec, SimConfig};

#[tokio::test]
async fn full_login_through_the_consent_page() {
    let w = world(SimConfig::default()).await;
    let app = w.app("");
    let session = app.session().unwrap();
    let account = app.login(&session, approve()).await.unwrap();
    assert_eq!(account.clinic.name, "Maple Grove Integrative Health");
    assert_eq!(account.resource_owner.unwrap().kind, "Practitioner");

    let status = app.status(Some(&session)).await;
    assert!(status.signed_in);
    assert_eq!(status.token_storage, "file");
    assert_eq!(
        status.clinic.unwrap().name,
        "Maple Grove Integrative Health"
    );
    assert!(status.access_token_expires_at.is_some());
    // The pair is stored (file fallback here), and the request carried PKCE.
    assert!(secrets_file(w.dir.path()).contains("access_token"));
    let authorize = &w.sim.control().requests_to("/api/oauth/authorize")[0];
    assert!(authorize.query.contains("code_challenge_method=S256"));
    assert!(authorize.query.contains("state="));

    // A new process finds the sign-in again.
    let again = w.app("");
    let s2 = again.session().unwrap();
    assert!(s2.load().await.unwrap());
    assert!(again.status(Some(&s2)).await.signed_in);
}

#[tokio::test]
async fn a_state_mismatch_is_rejected() {
    let w = world(SimConfig::default()).await;
    let app = w.app("login_timeout_secs = 2");
    let session = app.session().unwrap();
    let err = app
        .login(
            &session,
            browser("approve", |loc| {
                let mut u = url::Url::parse(&loc).unwrap();
                let code = u
                    .query_pairs()
                    .find(|(k, _)| k == "code")
                    .unwrap()
                    .1
                    .into_owned();
                u.set_query(Some(&format!("code={code}&state=forged")));
                u.to_string()
            }),
        )
        .await
        .unwrap_err();
    // Refused, and the sign-in kept waiting for the right answer until it gave up.
    assert!(
        matches!(err, AppError::Auth(AuthError::TimedOut(_))),
        "{err}"
    );
    assert!(!session.is_signed_in());
    // The code was never exchanged.
    assert!(w.sim.control().requests_to("/api/oauth/token").is_empty());
}

#[tokio::test]
async fn a_local_request_with_a_wrong_state_cannot_jam_the_sign_in() {
    let w = world(SimConfig::default()).await;
    let app = w.app("");
    let session = app.session().unwrap();
    let (status_tx, status_rx) = tokio::sync::oneshot::channel();
    let jam_then_approve = move |url: &url::Url| {
        let url = url.clone();
        tokio::spawn(async move {
            let location = press(&url, "approve").await;
            // Another local program gets there first, with a made-up answer.
            let mut forged = url::Url::parse(&location).unwrap();
            forged.set_query(Some("code=stolen&state=guess"));
            let status = http().get(forged).send().await.unwrap().status();
            let _ = status_tx.send(status.as_u16());
            let _ = http().get(location).send().await;
        });
    };
    app.login(&session, jam_then_approve).await.unwrap();
    assert_eq!(
        status_rx.await.unwrap(),
        400,
        "the forged answer is refused"
    );
    assert!(session.is_signed_in(), "and the real one still signs in");
}

#[tokio::test]
async fn unknown_callback_parameters_are_ignored() {
    let w = world(SimConfig::default()).await;
    let app = w.app("");
    let session = app.session().unwrap();
    app.login(
        &session,
        browser("approve", |loc| format!("{loc}&iss=https%3A%2F%2Fexample")),
    )
    .await
    .unwrap();
    assert!(session.is_signed_in());
}

#[tokio::test]
async fn denial_is_reported() {
    let w = world(SimConfig::default()).await;
    let app = w.app("");
    let session = app.session().unwrap();
    let err = app
        .login(&session, browser("deny", |l| l))
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::Auth(AuthError::Denied(_))), "{err}");
    assert!(err.to_string().contains("denied"));
}

#[tokio::test]
async fn a_wrong_secret_is_named_plainly() {
    let w = world(SimConfig::default()).await;
    let text = w
        .config_text("")
        .replace(fsn_simulator::DEMO_CLIENT_SECRET, "wrong-secret");
    std::fs::write(w.dir.path().join("config.toml"), text).unwrap();
    let app = fsn_core::App::open(w.paths()).unwrap();
    let session = app.session().unwrap();
    let err = app.login(&session, approve()).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("client id or secret") && msg.contains("invalid_client"),
        "{msg}"
    );
    assert!(
        !msg.contains("wrong-secret"),
        "the secret itself is never shown"
    );
}

#[tokio::test]
async fn the_browser_not_coming_back_times_out() {
    let w = world(SimConfig::default()).await;
    let app = w.app("login_timeout_secs = 1");
    let session = app.session().unwrap();
    let err = app.login(&session, |_url| {}).await.unwrap_err();
    assert!(
        matches!(err, AppError::Auth(AuthError::TimedOut(_))),
        "{err}"
    );
}

#[tokio::test]
async fn an_unreachable_server_fails_before_any_browser_opens() {
    let w = world(SimConfig::default()).await;
    let dead = format!("127.0.0.1:{}", free_port());
    let text = format!("{}\nlogin_timeout_secs = 2\n", w.config_text(""));
    let text = text.replace(&w.sim.addr().to_string(), &dead);
    std::fs::write(w.dir.path().join("config.toml"), text).unwrap();
    let app = fsn_core::App::open(w.paths()).unwrap();
    let session = app.session().unwrap();
    let opened = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let o = opened.clone();
    let err = app
        .login(&session, move |_| {
            o.store(true, std::sync::atomic::Ordering::SeqCst)
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, AppError::Auth(AuthError::Unreachable(_))),
        "{err}"
    );
    assert!(!opened.load(std::sync::atomic::Ordering::SeqCst));
}

/// Drive the browser and capture the code instead of letting the app exchange it.
async fn code_from_browser(w: &World) -> (AuthorizationCode, fsn_core::oauth::OAuthClient) {
    let app = w.app("");
    let oauth = app.session().unwrap().oauth().clone();
    let pending = oauth.begin_login().await.unwrap();
    approve()(&pending.authorize_url);
    (pending.wait(Duration::from_secs(10)).await.unwrap(), oauth)
}

#[tokio::test]
async fn a_code_is_single_use() {
    let w = world(SimConfig::default()).await;
    let (code, oauth) = code_from_browser(&w).await;
    let replay = AuthorizationCode::from_parts(code.code.clone(), code.verifier().to_string());
    oauth.exchange_code(code).await.unwrap();
    let err = oauth.exchange_code(replay).await.unwrap_err();
    assert!(
        matches!(&err, AuthError::Rejected { code, .. } if code == "invalid_grant"),
        "{err}"
    );
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let w = world(SimConfig::default()).await;
    let (code, oauth) = code_from_browser(&w).await;
    w.sim.control().advance_clock(Duration::from_secs(601));
    let err = oauth.exchange_code(code).await.unwrap_err();
    assert!(
        matches!(&err, AuthError::Rejected { code, .. } if code == "invalid_grant"),
        "{err}"
    );
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_on_401_and_the_call_succeeds() {
    let w = world(SimConfig::default()).await;
    let (app, session) = signed_in(&w, "").await;
    let before = secrets_file(w.dir.path());
    w.sim.control().expire_access_tokens();
    let clinic = app.api(session.clone()).clinic().await.unwrap();
    assert_eq!(clinic.name, "Maple Grove Integrative Health");
    assert_eq!(count_refreshes(&w.sim), 1);
    // The rotated pair was saved.
    assert_ne!(before, secrets_file(w.dir.path()));
    assert_eq!(session.state(), AuthState::SignedIn);
}

#[tokio::test]
async fn tokens_are_refreshed_ahead_of_expiry_without_a_401() {
    let w = world(SimConfig {
        access_token_ttl: Duration::from_secs(4),
        ..SimConfig::default()
    })
    .await;
    let (app, session) = signed_in(&w, "").await;
    // Inside the last quarter of the lifetime: the next call refreshes first.
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    app.api(session.clone()).clinic().await.unwrap();
    assert_eq!(count_refreshes(&w.sim), 1);
    let unauthorized = w
        .sim
        .control()
        .requests()
        .iter()
        .filter(|r| r.status == 401)
        .count();
    assert_eq!(unauthorized, 0, "the user never sees an expired token");
}

#[tokio::test]
async fn rotation_follows_the_grace_rule() {
    let w = world(SimConfig::default()).await;
    let (app, session) = signed_in(&w, "").await;
    let old: serde_json::Value = serde_json::from_str(&secrets_file(w.dir.path())).unwrap();
    let old_refresh = old
        .as_object()
        .unwrap()
        .values()
        .find_map(|v| serde_json::from_str::<serde_json::Value>(v.as_str()?).ok())
        .and_then(|t| t["refresh_token"].as_str().map(str::to_string))
        .unwrap();
    w.sim.control().expire_access_tokens();
    app.api(session.clone()).clinic().await.unwrap(); // refresh + first use of the new token
                                                      // The old refresh token died when the new access token was used.
    let err = session
        .oauth()
        .refresh(&fsn_core::secret::Secret::new(old_refresh))
        .await
        .unwrap_err();
    assert!(matches!(&err, AuthError::Rejected { code, .. } if code == "invalid_grant"));
    // And the saved (new) one still works.
    w.sim.control().expire_access_tokens();
    app.api(session.clone()).clinic().await.unwrap();
    assert_eq!(count_refreshes(&w.sim), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_on_an_expired_token_share_one_refresh() {
    let w = world(SimConfig::default()).await;
    let (app, session) = signed_in(&w, "").await;
    w.sim.control().expire_access_tokens();
    let api = app.api(session.clone());
    let (a, b, c) = tokio::join!(api.clinic(), api.clinic(), api.orders_page(1));
    assert!(a.is_ok() && b.is_ok() && c.is_ok());
    assert_eq!(count_refreshes(&w.sim), 1, "single flight");
}

#[tokio::test]
async fn refresh_after_revocation_signs_out_cleanly() {
    let w = world(SimConfig::default()).await;
    let (app, session) = signed_in(&w, "").await;
    let mut states = session.subscribe();
    w.sim.control().revoke_all_grants();
    let err = app.api(session.clone()).clinic().await.unwrap_err();
    assert!(
        matches!(err, fsn_core::api::ApiError::SignedOut(_)),
        "{err}"
    );
    assert_eq!(count_refreshes(&w.sim), 1, "one refresh, no retry loop");
    assert!(matches!(
        &*states.borrow_and_update(),
        AuthState::SignedOut {
            cause: Some(fsn_core::session::SignedOutCause::Ended { .. })
        }
    ));
    assert!(
        !secrets_file(w.dir.path()).contains("access_token"),
        "refused tokens are deleted"
    );
    let status = app.status(Some(&session)).await;
    assert!(!status.signed_in);
    assert!(status.signed_out_reason.unwrap().contains("sign in again"));
    // Later calls fail fast without touching the network.
    let before = w.sim.control().requests().len();
    assert!(app.api(session.clone()).clinic().await.is_err());
    assert_eq!(w.sim.control().requests().len(), before);
}

#[tokio::test]
async fn network_failures_during_refresh_are_retried_with_backoff_and_never_sign_out() {
    let w = world(SimConfig::default()).await;
    let (app, session) = signed_in(&w, "").await;
    let session = std::sync::Arc::new(
        // Same app and store, faster backoff.
        fsn_core::session::Session::new(session.oauth().clone(), app.secrets.clone())
            .with_retry(Duration::from_millis(50), Duration::from_millis(200)),
    );
    session.load().await.unwrap();
    w.sim.control().expire_access_tokens();
    w.sim
        .control()
        .add_fault(FaultSpec {
            kind: FaultKind::Status { status: 503 },
            count: Some(2),
            for_secs: None,
            path_prefix: Some("/api/oauth/token".into()),
        })
        .unwrap();
    let api = app.api(session.clone());
    // One refresh attempt per call; a failed one is remembered for its
    // backoff, so calls in between fail fast without asking again.
    let first = api.clinic().await.unwrap_err();
    assert!(
        !matches!(first, fsn_core::api::ApiError::SignedOut(_)),
        "{first}"
    );
    let token_calls = || w.sim.control().requests_to("/api/oauth/token").len();
    let after_first = token_calls();
    let during_backoff = api.clinic().await.unwrap_err();
    assert!(
        during_backoff.to_string().contains("next try"),
        "{during_backoff}"
    );
    assert_eq!(token_calls(), after_first, "no refresh during the backoff");
    let mut ok = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(60)).await;
        if api.clinic().await.is_ok() {
            ok = true;
            break;
        }
    }
    assert!(ok, "the refresh succeeds once the server recovers");
    let statuses: Vec<u16> = w
        .sim
        .control()
        .requests_to("/api/oauth/token")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(
        statuses,
        [200, 503, 503, 200],
        "sign-in, two failures, then the refresh"
    );
    assert_eq!(session.state(), AuthState::SignedIn);
    assert!(session.is_signed_in());
}

#[tokio::test]
async fn logout_revokes_at_fullscript_and_deletes_local_tokens() {
    let w = world(SimConfig::default()).await;
    let (app, session) = signed_in(&w, "").await;
    assert_eq!(w.sim.control().live_grants(), 1);
    let report = app.logout(&session, false).await;
    assert!(
        report.was_signed_in && report.revoke_errors.is_empty() && report.local_error.is_none()
    );
    let revoked: Vec<String> = w
        .sim
        .control()
        .requests_to("/api/oauth/revoke")
        .iter()
        .filter_map(|r| r.revoked.clone())
        .collect();
    assert_eq!(revoked, ["refresh", "access"]);
    assert_eq!(w.sim.control().live_grants(), 0);
    assert!(!secrets_file(w.dir.path()).contains("access_token"));
    assert!(!app.status(Some(&session)).await.signed_in);
}

#[tokio::test]
async fn logout_deletes_locally_even_when_revocation_fails() {
    let w = world(SimConfig::default()).await;
    let (app, session) = signed_in(&w, "").await;
    w.sim
        .control()
        .add_fault(FaultSpec {
            kind: FaultKind::Status { status: 500 },
            count: None,
            for_secs: Some(30.0),
            path_prefix: Some("/api/oauth/revoke".into()),
        })
        .unwrap();
    let report = app.logout(&session, false).await;
    assert_eq!(report.revoke_errors.len(), 2);
    assert!(report.local_error.is_none());
    assert!(!secrets_file(w.dir.path()).contains("access_token"));
}

#[tokio::test]
async fn a_different_clinic_signing_in_starts_a_fresh_list() {
    let w = world(SimConfig::default()).await;
    let (app, _session) = signed_in(&w, "").await;
    app.store
        .commit_cycle(
            &fsn_core::store::CycleCommit {
                baseline_done: true,
                ..Default::default()
            },
            chrono::Utc::now(),
        )
        .unwrap();
    assert!(app.store.baseline_at().unwrap().is_some());
    let mut other = app.account().unwrap();
    other.clinic.id = "another-clinic".into();
    app.remember_account(&other).unwrap();
    assert_eq!(app.store.baseline_at().unwrap(), None);
}

#[tokio::test]
async fn sign_out_and_erase_leaves_no_patient_data_in_the_database_its_journal_or_the_logs() {
    let w = world(SimConfig::default()).await;
    let (app, session) = signed_in(&w, "").await;
    let ctl = w.sim.control();
    let p = ctl.add_patient("Zebulon", "Quartermaine");
    let o = ctl
        .add_order(
            fsn_simulator::NewOrder::for_patient(&p.id)
                .named("Xylophage Antibody Panel", &[])
                .in_state("processing"),
        )
        .unwrap();
    let notes = fsn_core::notifier::RecordingNotifier::default();
    let mut watcher = app
        .watcher(session.clone(), std::sync::Arc::new(notes.clone()))
        .unwrap();
    watcher.run_cycle().await.unwrap();
    ctl.set_state_with_document(&o.id, "results_ready").unwrap();
    watcher.run_cycle().await.unwrap();
    drop(watcher);
    assert_eq!(notes.taken().len(), 1);
    let logs = app.paths.log_dir();
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(
        logs.join("fullscript-notifier.2026-11-27.log"),
        "a log line\n",
    )
    .unwrap();
    let db = app.paths.database();
    let on_disk = |needle: &str| {
        ["", "-wal", "-shm"].iter().any(|suffix| {
            std::fs::read(format!("{}{suffix}", db.display()))
                .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
        })
    };
    assert!(
        on_disk("Quartermaine"),
        "the name was stored (or this test proves nothing)"
    );

    let report = app.logout(&session, true).await;
    assert!(report.revoke_errors.is_empty() && report.local_error.is_none());
    assert!(app.store.list_orders().unwrap().is_empty());
    assert!(app.store.alerts().unwrap().is_empty());
    assert!(app.account().is_none());
    for needle in ["Quartermaine", "Zebulon", "Xylophage", "documents/"] {
        assert!(!on_disk(needle), "{needle} is still in the database files");
    }
    assert_eq!(std::fs::read_dir(&logs).unwrap().count(), 0, "logs deleted");
    assert!(!secrets_file(w.dir.path()).contains("access_token"));
}

#[tokio::test]
async fn revocations_that_fail_at_sign_out_are_retried_at_the_next_start() {
    let w = world(SimConfig::default()).await;
    let (app, session) = signed_in(&w, "").await;
    w.sim
        .control()
        .add_fault(FaultSpec {
            kind: FaultKind::Status { status: 503 },
            count: None,
            for_secs: Some(60.0),
            path_prefix: Some("/api/oauth/revoke".into()),
        })
        .unwrap();
    let report = app.logout(&session, false).await;
    assert_eq!(report.queued, 2, "{:?}", report.revoke_errors);
    assert_eq!(w.sim.control().live_grants(), 1, "Fullscript was not told");
    assert!(
        secrets_file(w.dir.path()).contains("pending_revocations"),
        "queued in the secret store"
    );
    // Still down at the next start: kept.
    let again = app.session().unwrap();
    assert_eq!(again.retry_pending_revocations().await, 2);
    // Up again: revoked, and the queue is gone.
    w.sim.control().clear_faults();
    let later = app.session().unwrap();
    assert_eq!(later.retry_pending_revocations().await, 0);
    assert_eq!(w.sim.control().live_grants(), 0);
    assert!(!secrets_file(w.dir.path()).contains("pending_revocations"));
}
