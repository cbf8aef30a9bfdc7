//! The simulator's protocol behaviour, driven over real HTTP, bad inputs included.

use std::time::Duration;

use fsn_simulator::{FaultKind, FaultSpec, NewOrder, Scenario, SimConfig, Simulator};
use reqwest::redirect::Policy;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

async fn start(config: SimConfig) -> (Simulator, reqwest::Client) {
    (Simulator::start(config).await.unwrap(), client())
}

fn query_param(location: &str, key: &str) -> Option<String> {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn authorize_url(sim: &Simulator, prefix: &str, state: &str) -> String {
    let cfg = SimConfig::default();
    let mut url = url::Url::parse(&format!("{}{prefix}/oauth/authorize", sim.base_url())).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", &cfg.client_id)
        .append_pair("redirect_uri", &cfg.redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("state", state);
    url.to_string()
}

/// Walk the consent page like a browser: read the form, press a button.
async fn consent(
    http: &reqwest::Client,
    sim: &Simulator,
    prefix: &str,
    state: &str,
    decision: &str,
) -> String {
    let page = http
        .get(authorize_url(sim, prefix, state))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("Authorize") && html.contains("Deny"));
    let request_id = html
        .split("name=\"request_id\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_string();
    let resp = http
        .post(format!(
            "{}{prefix}/oauth/authorize/decision",
            sim.base_url()
        ))
        .form(&[("request_id", request_id.as_str()), ("decision", decision)])
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_redirection(), "{}", resp.status());
    resp.headers()["location"].to_str().unwrap().to_string()
}

async fn token_request(
    http: &reqwest::Client,
    sim: &Simulator,
    body: Value,
) -> (StatusCode, Value) {
    let resp = http
        .post(format!("{}/api/oauth/token", sim.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn code_body(code: &str) -> Value {
    let cfg = SimConfig::default();
    json!({
        "grant_type": "authorization_code",
        "client_id": cfg.client_id,
        "client_secret": cfg.client_secret,
        "code": code,
        "redirect_uri": cfg.redirect_uri,
    })
}

fn refresh_body(refresh: &str) -> Value {
    let cfg = SimConfig::default();
    json!({
        "grant_type": "refresh_token",
        "client_id": cfg.client_id,
        "client_secret": cfg.client_secret,
        "refresh_token": refresh,
        "redirect_uri": cfg.redirect_uri,
    })
}

/// Full sign-in; answers (access, refresh).
async fn sign_in(http: &reqwest::Client, sim: &Simulator) -> (String, String) {
    let location = consent(http, sim, "/api", "s1", "approve").await;
    let code = query_param(&location, "code").unwrap();
    let (status, body) = token_request(http, sim, code_body(&code)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (
        body["oauth"]["access_token"].as_str().unwrap().to_string(),
        body["oauth"]["refresh_token"].as_str().unwrap().to_string(),
    )
}

async fn get(
    http: &reqwest::Client,
    sim: &Simulator,
    path: &str,
    token: &str,
) -> (StatusCode, Value) {
    let resp = http
        .get(format!("{}{path}", sim.base_url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers().contains_key("x-request-id"),
        "every response carries X-Request-Id"
    );
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn consent_approve_then_token_exchange_in_the_documented_shape() {
    let (sim, http) = start(SimConfig::default()).await;
    for prefix in ["/api", ""] {
        let location = consent(&http, &sim, prefix, "xyz state", "approve").await;
        assert!(location.starts_with(SimConfig::default().redirect_uri.as_str()));
        assert_eq!(
            query_param(&location, "state").as_deref(),
            Some("xyz state")
        );
        let code = query_param(&location, "code").unwrap();
        let (status, body) = token_request(&http, &sim, code_body(&code)).await;
        assert_eq!(status, StatusCode::OK);
        let oauth = &body["oauth"];
        assert_eq!(oauth["token_type"], "Bearer");
        assert_eq!(oauth["expires_in"], 7200);
        assert_eq!(oauth["resource_owner"]["type"], "Practitioner");
        assert!(oauth["refresh_token"].as_str().unwrap().len() > 20);
        let created = oauth["created_at"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(created).is_ok(),
            "{created}"
        );
    }
}

#[tokio::test]
async fn deny_redirects_with_access_denied_and_state() {
    let (sim, http) = start(SimConfig::default()).await;
    let location = consent(&http, &sim, "/api", "st", "deny").await;
    assert_eq!(
        query_param(&location, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(query_param(&location, "state").as_deref(), Some("st"));
    assert!(query_param(&location, "code").is_none());
}

#[tokio::test]
async fn authorize_rejects_wrong_redirect_and_unknown_client() {
    let (sim, http) = start(SimConfig::default()).await;
    let wrong_redirect = authorize_url(&sim, "/api", "s").replace("47821", "47822");
    let resp = http.get(wrong_redirect).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let wrong_client = authorize_url(&sim, "/api", "s").replace("fsn-demo-client", "someone-else");
    let resp = http.get(wrong_client).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn auto_approve_redirects_at_once() {
    let (sim, http) = start(SimConfig {
        auto_approve: true,
        ..SimConfig::default()
    })
    .await;
    let resp = http
        .get(authorize_url(&sim, "/api", "auto"))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_redirection());
    let location = resp.headers()["location"].to_str().unwrap();
    assert!(query_param(location, "code").is_some());
    assert_eq!(query_param(location, "state").as_deref(), Some("auto"));
}

#[tokio::test]
async fn token_endpoint_rejects_bad_requests() {
    let (sim, http) = start(SimConfig::default()).await;
    let location = consent(&http, &sim, "/api", "s", "approve").await;
    let code = query_param(&location, "code").unwrap();

    // Wrong secret.
    let mut body = code_body(&code);
    body["client_secret"] = json!("nope");
    let (status, err) = token_request(&http, &sim, body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(err["error"], "invalid_client");

    // Malformed JSON and a form body.
    let resp = http
        .post(format!("{}/api/oauth/token", sim.base_url()))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );
    let resp = http
        .post(format!("{}/api/oauth/token", sim.base_url()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    // Wrong redirect URI for the code.
    let mut body = code_body(&code);
    body["redirect_uri"] = json!("http://127.0.0.1:1/other");
    let (status, err) = token_request(&http, &sim, body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"], "invalid_grant");

    // Unsupported grant type.
    let mut body = code_body(&code);
    body["grant_type"] = json!("password");
    let (status, err) = token_request(&http, &sim, body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"], "unsupported_grant_type");

    // The code is still good after those failures; used once it is gone, and
    // a reuse revokes what it issued.
    let (status, first) = token_request(&http, &sim, code_body(&code)).await;
    assert_eq!(status, StatusCode::OK);
    let access = first["oauth"]["access_token"].as_str().unwrap().to_string();
    let (status, err) = token_request(&http, &sim, code_body(&code)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"], "invalid_grant");
    let (status, _) = get(&http, &sim, "/api/clinic", &access).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Unknown code.
    let (status, _) = token_request(&http, &sim, code_body("made-up")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn codes_expire_after_ten_minutes() {
    let (sim, http) = start(SimConfig::default()).await;
    let location = consent(&http, &sim, "/api", "s", "approve").await;
    let code = query_param(&location, "code").unwrap();
    sim.control().advance_clock(Duration::from_secs(601));
    let (status, err) = token_request(&http, &sim, code_body(&code)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"], "invalid_grant");
}

#[tokio::test]
async fn pkce_verifier_is_checked_when_sent() {
    use base64::Engine;
    use sha2::Digest;
    let (sim, http) = start(SimConfig {
        auto_approve: true,
        ..SimConfig::default()
    })
    .await;
    let verifier = "a-long-enough-code-verifier-for-the-s256-method-0123456789";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    let mut codes = Vec::new();
    for _ in 0..2 {
        let url = format!(
            "{}&code_challenge={challenge}&code_challenge_method=S256",
            authorize_url(&sim, "/api", "p")
        );
        let resp = http.get(url).send().await.unwrap();
        codes.push(query_param(resp.headers()["location"].to_str().unwrap(), "code").unwrap());
    }
    let mut body = code_body(&codes[0]);
    body["code_verifier"] = json!("the-wrong-verifier-the-wrong-verifier-the-wrong-verifier");
    assert_eq!(
        token_request(&http, &sim, body).await.0,
        StatusCode::BAD_REQUEST
    );
    let mut body = code_body(&codes[1]);
    body["code_verifier"] = json!(verifier);
    assert_eq!(token_request(&http, &sim, body).await.0, StatusCode::OK);
}

#[tokio::test]
async fn bearer_auth_answers_401_for_missing_expired_and_revoked_tokens() {
    let (sim, http) = start(SimConfig::default()).await;
    let resp = http
        .get(format!("{}/api/clinic", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().contains_key("www-authenticate"));

    let (access, _) = sign_in(&http, &sim).await;
    let (status, clinic) = get(&http, &sim, "/api/clinic", &access).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(clinic["clinic"]["name"], "Maple Grove Integrative Health");

    sim.control().advance_clock(Duration::from_secs(7201));
    let (status, body) = get(&http, &sim, "/api/clinic", &access).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["error"].as_str().unwrap().contains("expired"));

    let (access, _) = sign_in(&http, &sim).await;
    assert!(sim.control().revoke_all_grants() >= 1);
    assert_eq!(
        get(&http, &sim, "/api/clinic", &access).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn refresh_rotates_with_the_documented_grace_rule() {
    let (sim, http) = start(SimConfig::default()).await;
    let (_a1, r1) = sign_in(&http, &sim).await;

    let (status, b2) = token_request(&http, &sim, refresh_body(&r1)).await;
    assert_eq!(status, StatusCode::OK);
    let r2 = b2["oauth"]["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(r1, r2, "each refresh issues a new refresh token");

    // The response got lost: retrying with the old refresh token is allowed
    // until the new access token is used.
    let (status, b3) = token_request(&http, &sim, refresh_body(&r1)).await;
    assert_eq!(status, StatusCode::OK);
    let a3 = b3["oauth"]["access_token"].as_str().unwrap().to_string();
    let r3 = b3["oauth"]["refresh_token"].as_str().unwrap().to_string();

    assert_eq!(get(&http, &sim, "/api/clinic", &a3).await.0, StatusCode::OK);
    // Now only the newest refresh token is valid.
    let (status, err) = token_request(&http, &sim, refresh_body(&r1)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"], "invalid_grant");
    assert_eq!(
        token_request(&http, &sim, refresh_body(&r3)).await.0,
        StatusCode::OK
    );

    let grant_types: Vec<String> = sim
        .control()
        .requests_to("/api/oauth/token")
        .iter()
        .filter_map(|r| r.grant_type.clone())
        .collect();
    assert_eq!(
        grant_types.iter().filter(|g| *g == "refresh_token").count(),
        4
    );
}

#[tokio::test]
async fn revoke_answers_200_empty_and_kills_the_pair() {
    let (sim, http) = start(SimConfig::default()).await;
    let (access, refresh) = sign_in(&http, &sim).await;
    let cfg = SimConfig::default();
    let revoke = |token: String, secret: String| {
        let http = http.clone();
        let url = format!("{}/api/oauth/revoke", sim.base_url());
        let id = cfg.client_id.clone();
        async move {
            http.post(url)
                .json(&json!({"client_id": id, "client_secret": secret, "token": token}))
                .send()
                .await
                .unwrap()
        }
    };
    let resp = revoke(refresh.clone(), "wrong".into()).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = revoke(refresh.clone(), cfg.client_secret.clone()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.bytes().await.unwrap().is_empty());
    assert_eq!(
        get(&http, &sim, "/api/clinic", &access).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        token_request(&http, &sim, refresh_body(&refresh)).await.0,
        StatusCode::BAD_REQUEST
    );
    let log = sim.control().requests_to("/api/oauth/revoke");
    assert_eq!(log.last().unwrap().revoked.as_deref(), Some("refresh"));
}

#[tokio::test]
async fn lab_orders_paginate_and_filter() {
    let (sim, http) = start(SimConfig::default()).await;
    let (access, _) = sign_in(&http, &sim).await;
    sim.control().add_bulk_orders(250, "processing");
    let special = sim
        .control()
        .add_patient_order("Ada", "Lovelace", "results_ready");

    let mut seen = 0;
    let mut page = 1;
    loop {
        let (status, body) = get(
            &http,
            &sim,
            &format!("/api/clinic/labs/orders?page[number]={page}&page[size]=100"),
            &access,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        seen += body["lab_orders"].as_array().unwrap().len();
        assert_eq!(body["meta"]["total_count"], 251);
        assert_eq!(body["meta"]["total_pages"], 3);
        if body["meta"]["next_page"].is_null() {
            break;
        }
        page += 1;
    }
    assert_eq!((seen, page), (251, 3));

    let (_, body) = get(
        &http,
        &sim,
        "/api/clinic/labs/orders?page[size]=500",
        &access,
    )
    .await;
    assert_eq!(
        body["lab_orders"].as_array().unwrap().len(),
        100,
        "page size capped at 100"
    );

    let (_, body) = get(
        &http,
        &sim,
        &format!("/api/clinic/labs/orders?patient_id={}", special.patient_id),
        &access,
    )
    .await;
    assert_eq!(body["lab_orders"].as_array().unwrap().len(), 1);

    let (status, body) = get(
        &http,
        &sim,
        &format!("/api/clinic/labs/orders/{}", special.id),
        &access,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let order = &body["lab_order"];
    assert_eq!(order["state"], "results_ready");
    assert_eq!(order["first_name"], "Ada");
    assert_eq!(order["results"].as_array().unwrap().len(), 1);
    let test_id = order["tests"][0]["id"].as_str().unwrap().to_string();

    let (status, body) = get(
        &http,
        &sim,
        &format!("/api/clinic/labs/tests/{test_id}"),
        &access,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["lab_test"]["id"], test_id.as_str());
    let (status, body) = get(
        &http,
        &sim,
        &format!("/api/clinic/patients/{}", special.patient_id),
        &access,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["patient"]["last_name"], "Lovelace");
    assert_eq!(
        get(&http, &sim, "/api/clinic/labs/orders/nope", &access)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&http, &sim, "/api/nothing/here", &access).await.0,
        StatusCode::NOT_FOUND
    );

    // The API shape can be switched for client-tolerance tests.
    sim.control().update_shape(|s| {
        s.list_root = "orders".into();
        s.legacy_state_names = true;
        s.state_field = "status".into();
    });
    let (_, body) = get(
        &http,
        &sim,
        &format!("/api/clinic/labs/orders?patient_id={}", special.patient_id),
        &access,
    )
    .await;
    assert_eq!(body["orders"][0]["status"], "all_results_received");
}

#[tokio::test]
async fn events_cover_result_states_only_with_filters_and_window() {
    let (sim, http) = start(SimConfig::default()).await;
    let (access, _) = sign_in(&http, &sim).await;
    let order = sim
        .control()
        .add_patient_order("Grace", "Hopper", "processing");
    let ctl = sim.control();
    ctl.set_state(&order.id, "partial_results").unwrap();
    ctl.set_state(&order.id, "results_ready").unwrap();
    ctl.set_state(&order.id, "interpretation_ready").unwrap(); // no event
    ctl.amend(&order.id).unwrap();

    let (status, body) = get(&http, &sim, "/api/events/lab_orders", &access).await;
    assert_eq!(status, StatusCode::OK);
    let statuses: Vec<&str> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"]["lab_order"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "results_received",
            "all_results_received",
            "results_amended"
        ]
    );
    assert_eq!(body["events"][0]["type"], "lab_order.updated");
    assert_eq!(
        body["events"][0]["data"]["lab_order"]["id"],
        order.id.as_str()
    );

    let (_, body) = get(
        &http,
        &sim,
        "/api/events/lab_orders?sort_by=created_at&order_by=DESC",
        &access,
    )
    .await;
    assert_eq!(
        body["events"][0]["data"]["lab_order"]["status"],
        "results_amended"
    );

    let today = chrono::Utc::now().date_naive();
    let yesterday = today - chrono::Duration::days(1);
    let (_, body) = get(
        &http,
        &sim,
        &format!("/api/events/lab_orders?created_at=>{yesterday}"),
        &access,
    )
    .await;
    assert_eq!(body["events"].as_array().unwrap().len(), 3);
    let (_, body) = get(
        &http,
        &sim,
        &format!("/api/events/lab_orders?created_at=>{today}"),
        &access,
    )
    .await;
    assert_eq!(body["events"].as_array().unwrap().len(), 0);
    assert_eq!(
        get(
            &http,
            &sim,
            "/api/events/lab_orders?created_at=soon",
            &access
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );

    ctl.update_shape(|s| s.events_enabled = false);
    assert_eq!(
        get(&http, &sim, "/api/events/lab_orders", &access).await.0,
        StatusCode::FORBIDDEN
    );
    ctl.update_shape(|s| s.events_enabled = true);

    // 31 days later the events are gone (the token is long expired too: sign in again).
    ctl.advance_clock(Duration::from_secs(31 * 86400));
    let (access, _) = sign_in(&http, &sim).await;
    let (_, body) = get(&http, &sim, "/api/events/lab_orders", &access).await;
    assert_eq!(body["events"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let (sim, http) = start(SimConfig {
        rate_limit: 5,
        ..SimConfig::default()
    })
    .await;
    let (access, _) = sign_in(&http, &sim).await; // one token request
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let resp = http
            .get(format!("{}/api/clinic", sim.base_url()))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap();
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            let retry: u64 = resp.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=300).contains(&retry));
        }
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429]);
}

#[tokio::test]
async fn faults_are_injected_then_recover() {
    let (sim, http) = start(SimConfig::default()).await;
    let (access, _) = sign_in(&http, &sim).await;
    let ctl = sim.control();
    let fault = |kind, count| FaultSpec {
        kind,
        count: Some(count),
        for_secs: None,
        path_prefix: None,
    };

    ctl.add_fault(fault(FaultKind::Status { status: 500 }, 2))
        .unwrap();
    assert_eq!(
        get(&http, &sim, "/api/clinic", &access).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        get(&http, &sim, "/api/clinic", &access).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        get(&http, &sim, "/api/clinic", &access).await.0,
        StatusCode::OK
    );

    ctl.add_fault(fault(
        FaultKind::RateLimited {
            retry_after_secs: Some(7),
            retry_after_raw: None,
        },
        1,
    ))
    .unwrap();
    let resp = http
        .get(format!("{}/api/clinic", sim.base_url()))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "7");

    ctl.add_fault(fault(FaultKind::MalformedJson, 1)).unwrap();
    let resp = http
        .get(format!("{}/api/clinic/labs/orders", sim.base_url()))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.json::<Value>().await.is_err());

    ctl.add_fault(fault(FaultKind::DropConnection, 1)).unwrap();
    let resp = http
        .get(format!("{}/api/clinic/labs/orders", sim.base_url()))
        .bearer_auth(&access)
        .send()
        .await;
    let broken = match resp {
        Err(_) => true,
        Ok(r) => r.bytes().await.is_err(),
    };
    assert!(
        broken,
        "a dropped connection must surface as a transport error"
    );

    ctl.add_fault(fault(FaultKind::Delay { delay_ms: 3_000 }, 1))
        .unwrap();
    let slow = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = slow
        .get(format!("{}/api/clinic", sim.base_url()))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());

    // OAuth is not affected by default faults; a path prefix targets it.
    ctl.add_fault(fault(FaultKind::Status { status: 503 }, 1))
        .unwrap();
    let (status, _) = token_request(&http, &sim, refresh_body("unknown")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    ctl.clear_faults();

    let faults: Vec<String> = ctl
        .requests()
        .iter()
        .filter_map(|r| r.fault.clone())
        .collect();
    assert_eq!(
        faults,
        [
            "status:500",
            "status:500",
            "rate_limited",
            "malformed_json",
            "drop_connection",
            "delay:3000ms"
        ]
    );

    // Bad fault specs are refused.
    assert!(ctl
        .add_fault(FaultSpec {
            kind: FaultKind::MalformedJson,
            count: None,
            for_secs: None,
            path_prefix: None
        })
        .is_err());
}

#[tokio::test]
async fn control_api_over_http_and_results_pages() {
    let (sim, http) = start(SimConfig::default()).await;
    let base = sim.base_url();
    let patient: Value = http
        .post(format!("{base}/_sim/patients"))
        .json(&json!({"first_name": "Rosalind", "last_name": "Franklin"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let order: Value = http
        .post(format!("{base}/_sim/orders"))
        .json(&json!({"patient_id": patient["id"], "name": "Lipid Panel"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = order["id"].as_str().unwrap();
    let resp = http
        .post(format!("{base}/_sim/orders/{id}/state"))
        .json(&json!({"state": "results_ready", "with_document": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let moved: Value = resp.json().await.unwrap();
    assert_eq!(moved["state"], "results_ready");
    assert!(moved["results"][0]["pdf_url"]
        .as_str()
        .unwrap()
        .starts_with(&base));

    let resp = http
        .post(format!("{base}/_sim/orders/{id}/state"))
        .json(&json!({"state": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = http
        .post(format!("{base}/_sim/orders/missing/amend"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    let resp = http
        .post(format!("{base}/_sim/faults"))
        .json(&json!({"kind": "status", "status": 503, "count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);

    let html = http
        .get(format!("{base}/labs/orders/{id}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Lipid Panel") && html.contains("results_ready"));

    let log: Value = http
        .get(format!("{base}/_sim/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["path"] == format!("/labs/orders/{id}")));
}

#[tokio::test]
async fn sample_and_demo_scenarios_seed_a_clinic() {
    let sim = Simulator::start(SimConfig {
        scenario: Scenario::Sample,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let states: Vec<String> = sim
        .control()
        .order_ids()
        .iter()
        .map(|id| sim.control().order(id).unwrap().state)
        .collect();
    assert_eq!(states.len(), 12);
    for s in fsn_simulator::DOCUMENTED_STATES {
        assert!(states.iter().any(|x| x == s), "sample lacks {s}");
    }
    let demo = Simulator::start(SimConfig {
        scenario: Scenario::Demo,
        demo_step: Duration::from_millis(100),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    // The demo moves orders by itself; wait for its first result event.
    for _ in 0..100 {
        if demo.control().event_count() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(demo.control().event_count() > 0);
    let _ = NewOrder::for_patient("x");
}
