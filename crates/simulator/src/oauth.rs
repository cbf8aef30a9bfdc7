//! OAuth 2.0 authorization-code flow, exactly as Fullscript documents it:
//! a consent page, single-use codes that expire after 10 minutes, a JSON token
//! endpoint answering `{"oauth": {…}}`, rotating refresh tokens with the
//! documented grace rule, and revocation.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Form, Json};
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Digest;

use crate::faults::LogNote;
use crate::pages;
use crate::state::{iso, Grant, World};
use crate::Shared;

#[derive(Debug, Deserialize)]
pub struct AuthorizeParams {
    client_id: Option<String>,
    redirect_uri: Option<String>,
    response_type: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

/// The generic 404 Fullscript answers for unknown routes and mismatched redirect URIs.
pub fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"status": 404, "error": "Not Found"})),
    )
        .into_response()
}

fn redirect_with(redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    match url::Url::parse(redirect_uri) {
        Ok(mut url) => {
            {
                let mut q = url.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, v);
                }
            }
            Redirect::to(url.as_str()).into_response()
        }
        Err(_) => not_found(),
    }
}

pub async fn authorize(State(shared): State<Shared>, Query(p): Query<AuthorizeParams>) -> Response {
    let mut world = shared.lock();
    if p.client_id.as_deref() != Some(world.config.client_id.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            Html(pages::error_page(
                "Unknown application",
                "The client_id in this link does not belong to any registered application.",
            )),
        )
            .into_response();
    }
    // Documented: a redirect_uri that does not match the registration exactly is a 404.
    let redirect_uri = match p.redirect_uri {
        Some(r) if r == world.config.redirect_uri => r,
        _ => return not_found(),
    };
    if p.response_type.as_deref() != Some("code") {
        let mut params = vec![("error", "unsupported_response_type")];
        if let Some(s) = p.state.as_deref() {
            params.push(("state", s));
        }
        return redirect_with(&redirect_uri, &params);
    }
    // Only S256 challenges are remembered; anything else is ignored, like a
    // server without PKCE would.
    let challenge = match (p.code_challenge, p.code_challenge_method.as_deref()) {
        (Some(c), Some("S256")) => Some(c),
        _ => None,
    };
    if world.config.auto_approve {
        let code = world.issue_code(&redirect_uri, challenge);
        return approved_redirect(&redirect_uri, &code, p.state.as_deref());
    }
    let request_id = uuid::Uuid::new_v4().to_string();
    world.pending.insert(
        request_id.clone(),
        crate::state::PendingAuthorization {
            redirect_uri,
            state: p.state,
            code_challenge: challenge,
        },
    );
    let clinic = world.clinic_name.clone();
    Html(pages::consent_page(&request_id, &clinic)).into_response()
}

fn approved_redirect(redirect_uri: &str, code: &str, state: Option<&str>) -> Response {
    let mut params = vec![("code", code)];
    if let Some(s) = state {
        params.push(("state", s));
    }
    redirect_with(redirect_uri, &params)
}

#[derive(Debug, Deserialize)]
pub struct Decision {
    request_id: String,
    decision: String,
}

pub async fn decide(State(shared): State<Shared>, Form(d): Form<Decision>) -> Response {
    let mut world = shared.lock();
    let Some(pending) = world.pending.remove(&d.request_id) else {
        return (
            StatusCode::BAD_REQUEST,
            Html(pages::error_page(
                "This request has expired",
                "Start the sign-in again from the application.",
            )),
        )
            .into_response();
    };
    if d.decision == "approve" {
        let code = world.issue_code(&pending.redirect_uri, pending.code_challenge);
        approved_redirect(&pending.redirect_uri, &code, pending.state.as_deref())
    } else {
        let mut params = vec![
            ("error", "access_denied"),
            (
                "error_description",
                "The resource owner or authorization server denied the request.",
            ),
        ];
        if let Some(s) = pending.state.as_deref() {
            params.push(("state", s));
        }
        redirect_with(&pending.redirect_uri, &params)
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

fn invalid_grant() -> Response {
    oauth_error(
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.",
    )
}

fn invalid_client() -> Response {
    oauth_error(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.",
    )
}

/// Parse a JSON object body; the documented format. Anything else is a 400.
fn parse_json_body(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<serde_json::Map<String, Value>, Response> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The request body must be JSON (Content-Type: application/json).",
        ));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The request body is not a valid JSON object.",
        )),
    }
}

fn field<'a>(map: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn client_ok(world: &World, map: &serde_json::Map<String, Value>) -> bool {
    field(map, "client_id") == Some(world.config.client_id.as_str())
        && field(map, "client_secret") == Some(world.config.client_secret.as_str())
}

fn token_response(world: &World, grant: &Grant) -> Value {
    let created_at = if world.shape.token_created_at_epoch {
        json!(grant.created_at.timestamp())
    } else {
        json!(iso(grant.created_at))
    };
    let body = json!({
        "access_token": grant.access_token,
        "token_type": "Bearer",
        "expires_in": grant.expires_in,
        "refresh_token": grant.refresh_token,
        "scope": "clinic:read patients:read patients:order_history",
        "created_at": created_at,
        "resource_owner": { "id": grant.account.practitioner_id, "type": "Practitioner" },
    });
    if world.shape.wrap_token_response {
        json!({ "oauth": body })
    } else {
        body
    }
}

fn with_note(mut resp: Response, note: LogNote) -> Response {
    resp.extensions_mut().insert(note);
    resp
}

pub async fn token(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let map = match parse_json_body(&headers, &body) {
        Ok(m) => m,
        Err(resp) => return resp,
    };
    let grant_type = field(&map, "grant_type").map(str::to_string);
    let note = LogNote {
        grant_type: grant_type.clone(),
        revoked: None,
    };
    let resp = token_inner(&shared, &map, grant_type.as_deref());
    with_note(resp, note)
}

fn token_inner(
    shared: &Shared,
    map: &serde_json::Map<String, Value>,
    grant_type: Option<&str>,
) -> Response {
    let mut world = shared.lock();
    match grant_type {
        Some("authorization_code") | Some("refresh_token") => {}
        Some(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "The authorization grant type is not supported by the authorization server.",
            )
        }
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Missing required parameter: grant_type.",
            )
        }
    }
    if !client_ok(&world, map) {
        return invalid_client();
    }
    if grant_type == Some("refresh_token") {
        let Some(refresh) = field(map, "refresh_token") else {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Missing required parameter: refresh_token.",
            );
        };
        return match world.refresh(refresh) {
            Ok(grant) => Json(token_response(&world, &grant)).into_response(),
            Err(_) => invalid_grant(),
        };
    }

    let Some(code) = field(map, "code").map(str::to_string) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing required parameter: code.",
        );
    };
    let now = world.now();
    let code_ttl =
        chrono::Duration::from_std(world.config.code_ttl).unwrap_or(chrono::Duration::minutes(10));
    let Some(entry) = world.codes.get(&code).cloned() else {
        return invalid_grant();
    };
    if entry.used {
        // RFC 6749 §4.1.2: a reused code should revoke what it issued.
        for id in &entry.grant_ids {
            if let Some(g) = world.grants.get_mut(id) {
                g.revoked = true;
            }
        }
        return invalid_grant();
    }
    if now >= entry.created_at + code_ttl {
        return invalid_grant();
    }
    if field(map, "redirect_uri") != Some(entry.redirect_uri.as_str()) {
        return invalid_grant();
    }
    if let (Some(challenge), Some(verifier)) = (&entry.code_challenge, field(map, "code_verifier"))
    {
        let digest = sha2::Sha256::digest(verifier.as_bytes());
        let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
        if &computed != challenge {
            return invalid_grant();
        }
    }
    let grant = world.issue_grant(None);
    if let Some(c) = world.codes.get_mut(&code) {
        c.used = true;
        c.grant_ids.push(grant.id);
    }
    Json(token_response(&world, &grant)).into_response()
}

pub async fn revoke(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let map = match parse_json_body(&headers, &body) {
        Ok(m) => m,
        Err(resp) => return resp,
    };
    let mut world = shared.lock();
    if !client_ok(&world, &map) {
        return invalid_client();
    }
    let Some(token) = field(&map, "token") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing required parameter: token.",
        );
    };
    let kind = world.revoke_token(token);
    with_note(
        StatusCode::OK.into_response(),
        LogNote {
            grant_type: None,
            revoked: Some(kind.to_string()),
        },
    )
}
