//! Fullscript OAuth: the authorization-code flow through the system browser
//! and a one-shot loopback listener, and the token, refresh and revoke calls
//! in Fullscript's documented format (JSON bodies carrying `client_id` and
//! `client_secret`; responses wrapped in `oauth`). With a relay the bodies go
//! to it without `client_secret`, and it adds the secret.
//!
//! The `oauth2` crate provides the random `state`, the PKCE S256 pair and the
//! authorize URL. The token calls are made here because Fullscript wants JSON
//! bodies and answers `{"oauth": {…}}`, which the crate's form-encoded,
//! unwrapped exchange cannot speak.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use url::Url;

use crate::http;
use crate::secret::Secret;

/// How far from our clock a server's `created_at` may be before it is
/// distrusted (then expiry counts from when the response arrived).
const MAX_CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(10);
/// A token lifetime longer than this is read as this (Fullscript documents 2 hours).
const MAX_TOKEN_LIFETIME_SECS: f64 = 365.0 * 24.0 * 3600.0;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ResourceOwner {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// An access/refresh token pair and when it expires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenSet {
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    pub token_type: String,
    pub scope: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub obtained_at: DateTime<Utc>,
    pub resource_owner: Option<ResourceOwner>,
    /// This app's name for the sign-in these tokens belong to (kept across
    /// refreshes, new at every sign-in), so two processes sharing a data
    /// directory can tell whether the other signed in anew.
    #[serde(default)]
    pub grant_id: Option<String>,
}

impl TokenSet {
    /// Seconds of validity left (negative when expired); `None` when the server gave no lifetime.
    pub fn remaining(&self, now: DateTime<Utc>) -> Option<chrono::Duration> {
        self.expires_at.map(|e| e - now)
    }

    /// Refresh ahead of expiry: 5 minutes before, or a quarter of a short lifetime.
    pub fn needs_refresh(&self, now: DateTime<Utc>) -> bool {
        let Some(expires_at) = self.expires_at else {
            return false;
        };
        let lifetime = expires_at - self.obtained_at;
        let margin = (lifetime / 4).min(chrono::Duration::minutes(5));
        now + margin >= expires_at
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("not configured: {0}")]
    NotConfigured(String),
    #[error("sign-in was denied in the browser{}", .0.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Denied(Option<String>),
    #[error("the browser did not come back within {} minutes; start the sign-in again", .0.as_secs().div_ceil(60))]
    TimedOut(Duration),
    #[error("cannot listen on {addr} for the sign-in redirect: {source}")]
    Listener {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("Fullscript rejected the {what}: {code}{}", .description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Rejected {
        what: &'static str,
        status: u16,
        code: String,
        description: Option<String>,
    },
    #[error("cannot reach Fullscript: {0}")]
    Unreachable(String),
    #[error("Fullscript answered {status} (server error){}", .request_id.as_deref().map(|r| format!(", request id {r}")).unwrap_or_default())]
    Server {
        status: u16,
        request_id: Option<String>,
    },
    #[error("unexpected answer from Fullscript: {0}")]
    Malformed(String),
    #[error("cannot keep the sign-in: {0}")]
    Secrets(#[from] crate::secret_store::SecretStoreError),
    #[error("signed out: {0}")]
    SignedOut(String),
    #[error("needs configuration: {0}")]
    NeedsConfiguration(String),
    #[error("the sign-in was replaced in another window or command; following it")]
    SessionReplaced,
    #[error("renewing the sign-in failed ({last_error}); next try in {}s", .retry_in.as_secs())]
    RefreshBackoff {
        retry_in: Duration,
        last_error: String,
    },
    #[error("Fullscript's {what} endpoint redirected to {location}; sign-in calls never follow redirects (check the configured URLs)")]
    Redirected {
        what: &'static str,
        status: u16,
        location: String,
    },
}

impl AuthError {
    /// Worth retrying later without asking the user to sign in again: all
    /// but a definite "no" (`invalid_grant`, `invalid_client`, a denial) and
    /// a configuration the user must fix.
    pub fn is_transient(&self) -> bool {
        match self {
            AuthError::Unreachable(_)
            | AuthError::Server { .. }
            | AuthError::Secrets(_)
            | AuthError::Malformed(_)
            | AuthError::SessionReplaced
            | AuthError::RefreshBackoff { .. } => true,
            AuthError::Rejected { code, .. } => {
                code != "invalid_grant" && !self.is_client_rejected()
            }
            _ => false,
        }
    }

    /// Fullscript refused the app's own registration (client id or secret).
    pub fn is_client_rejected(&self) -> bool {
        matches!(self, AuthError::Rejected { code, .. } if code == "invalid_client" || code == "unauthorized_client")
    }
}

/// Read a token response: wrapped in `oauth` (documented) or a standard
/// unwrapped one; `created_at` ISO-8601 or epoch seconds; extra fields ignored.
pub fn parse_token_response(body: &Value, now: DateTime<Utc>) -> Result<TokenSet, AuthError> {
    let root = body.get("oauth").filter(|v| v.is_object()).unwrap_or(body);
    let access = root
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| AuthError::Malformed("token response without access_token".into()))?;
    let refresh = root
        .get("refresh_token")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(Secret::new);
    let expires_in = match root.get("expires_in") {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|x| x.is_finite() && *x >= 0.0)
    // Nothing lives longer than a year; an absurd lifetime must not overflow the clock.
    .map(|x| x.min(MAX_TOKEN_LIFETIME_SECS));
    let created_at = root.get("created_at").and_then(crate::timestamp::parse);
    let start = match created_at {
        Some(c) if (c - now).abs() <= MAX_CLOCK_SKEW => c,
        Some(_) => {
            tracing::warn!(
                "token created_at is far from this computer's clock; counting expiry from now"
            );
            now
        }
        None => now,
    };
    let expires_at = expires_in.and_then(|s| {
        chrono::Duration::try_milliseconds((s * 1000.0) as i64)
            .and_then(|d| start.checked_add_signed(d))
    });
    let resource_owner = root.get("resource_owner").and_then(|o| {
        let id = match o.get("id")? {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        Some(ResourceOwner {
            id,
            kind: o
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("Practitioner")
                .to_string(),
        })
    });
    Ok(TokenSet {
        access_token: Secret::new(access),
        refresh_token: refresh,
        token_type: root
            .get("token_type")
            .and_then(Value::as_str)
            .unwrap_or("Bearer")
            .to_string(),
        scope: root
            .get("scope")
            .and_then(Value::as_str)
            .map(str::to_string),
        expires_at,
        obtained_at: now,
        resource_owner,
        grant_id: None,
    })
}

/// The registered application and Fullscript's OAuth endpoints.
#[derive(Clone)]
pub struct OAuthClient {
    http: reqwest::Client,
    pub authorize_url: Url,
    pub token_url: Url,
    pub revoke_url: Url,
    pub client_id: String,
    /// `None` when a relay adds it (the app then never holds it).
    client_secret: Option<Secret>,
    pub redirect_uri: Url,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient")
            .field("token_url", &self.token_url.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .finish()
    }
}

/// A sign-in in progress: the URL to open, and the listener waiting for the redirect.
pub struct PendingLogin {
    pub authorize_url: Url,
    state: oauth2::CsrfToken,
    verifier: oauth2::PkceCodeVerifier,
    /// One per loopback address the redirect may reach (both families for `localhost`).
    listeners: Vec<tokio::net::TcpListener>,
    path: String,
}

/// What came back from the browser.
pub struct AuthorizationCode {
    pub code: Secret,
    verifier: oauth2::PkceCodeVerifier,
}

impl AuthorizationCode {
    /// Rebuild a code (tests replay one to prove the server refuses reuse).
    pub fn from_parts(code: Secret, verifier: String) -> AuthorizationCode {
        AuthorizationCode {
            code,
            verifier: oauth2::PkceCodeVerifier::new(verifier),
        }
    }

    pub fn verifier(&self) -> &str {
        self.verifier.secret()
    }
}

#[derive(Debug, Deserialize)]
struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

type CallbackOutcome = Result<Secret, AuthError>;

#[derive(Clone)]
struct CallbackState {
    expected_state: String,
    tx: mpsc::Sender<CallbackOutcome>,
}

fn callback_page(title: &str, message: &str) -> Html<String> {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}}</style>\
         </head><body><h1>{t}</h1><p>{m}</p></body></html>",
        t = esc(title),
        m = esc(message)
    ))
}

async fn on_callback(
    State(st): State<CallbackState>,
    Query(p): Query<CallbackParams>,
) -> impl IntoResponse {
    // Unknown parameters (e.g. `iss`) are ignored by the Query extractor.
    if p.state.as_deref() != Some(st.expected_state.as_str()) {
        if p.code.is_none() && p.error.is_none() {
            return (
                axum::http::StatusCode::BAD_REQUEST,
                callback_page(
                    "Nothing to do here",
                    "This address only receives Fullscript's sign-in redirect.",
                ),
            );
        }
        // Not ours (another local program, a stale tab): refused, and the
        // sign-in keeps waiting for the right answer until it times out.
        tracing::warn!("the sign-in listener refused an answer with a wrong state");
        return (
            axum::http::StatusCode::BAD_REQUEST,
            callback_page(
                "Sign-in not accepted",
                "This answer does not belong to the sign-in the app started. Start the sign-in again from Fullscript Lab Notifier.",
            ),
        );
    }
    if let Some(error) = p.error {
        let outcome = if error == "access_denied" {
            AuthError::Denied(p.error_description)
        } else {
            AuthError::Rejected {
                what: "sign-in",
                status: 400,
                code: error,
                description: p.error_description,
            }
        };
        let _ = st.tx.try_send(Err(outcome));
        return (
            axum::http::StatusCode::OK,
            callback_page(
                "Sign-in cancelled",
                "Fullscript Lab Notifier was not given access. You can close this tab.",
            ),
        );
    }
    match p.code.filter(|c| !c.is_empty()) {
        Some(code) => {
            let _ = st.tx.try_send(Ok(Secret::new(code)));
            (
                axum::http::StatusCode::OK,
                callback_page(
                    "Signed in",
                    "Fullscript Lab Notifier is connected. You can close this tab.",
                ),
            )
        }
        None => (
            axum::http::StatusCode::BAD_REQUEST,
            callback_page(
                "Sign-in incomplete",
                "The redirect carried no authorization code.",
            ),
        ),
    }
}

impl PendingLogin {
    /// Wait for the browser's redirect (or give up after `timeout`). The
    /// listener answers the browser with a short page and then closes.
    pub async fn wait(self, timeout: Duration) -> Result<AuthorizationCode, AuthError> {
        let (tx, mut rx) = mpsc::channel::<CallbackOutcome>(4);
        let st = CallbackState {
            expected_state: self.state.secret().clone(),
            tx,
        };
        let app = axum::Router::new()
            .route(&self.path, axum::routing::get(on_callback))
            .with_state(st);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let servers: Vec<_> = self
            .listeners
            .into_iter()
            .map(|listener| {
                let app = app.clone();
                let mut stop = stop_rx.clone();
                tokio::spawn(async move {
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = stop.wait_for(|s| *s).await;
                        })
                        .await;
                })
            })
            .collect();
        drop(app);
        let outcome = tokio::time::timeout(timeout, rx.recv()).await;
        // Let the answer page reach the browser, then close the ports.
        let _ = stop_tx.send(true);
        for server in servers {
            let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
        }
        match outcome {
            Err(_) => Err(AuthError::TimedOut(timeout)),
            Ok(None) => Err(AuthError::TimedOut(timeout)),
            Ok(Some(Err(e))) => Err(e),
            Ok(Some(Ok(code))) => Ok(AuthorizationCode {
                code,
                verifier: self.verifier,
            }),
        }
    }
}

/// Where the OAuth call failed, mapped to an [`AuthError`].
async fn token_call_error(what: &'static str, resp: reqwest::Response) -> AuthError {
    let status = resp.status().as_u16();
    let request_id = http::request_id(resp.headers());
    let body = http::read_capped(resp).await.unwrap_or_default();
    if status >= 500 {
        return AuthError::Server { status, request_id };
    }
    let code = http::oauth_error_code(&body).unwrap_or_else(|| format!("HTTP {status}"));
    // The one mistake people make when setting up: say it plainly.
    let what = if code == "invalid_client" {
        "client id or secret"
    } else {
        what
    };
    AuthError::Rejected {
        what,
        status,
        code,
        description: http::error_message(&body).filter(|d| !d.is_empty()),
    }
}

impl OAuthClient {
    pub fn new(
        http: reqwest::Client,
        authorize_url: Url,
        token_url: Url,
        revoke_url: Url,
        client_id: String,
        client_secret: Option<Secret>,
        redirect_uri: Url,
    ) -> OAuthClient {
        OAuthClient {
            http,
            authorize_url,
            token_url,
            revoke_url,
            client_id,
            client_secret,
            redirect_uri,
        }
    }

    /// Bind the loopback listener (first, so a busy port fails before a
    /// browser opens) and build the authorize URL with `state` and PKCE.
    pub async fn begin_login(&self) -> Result<PendingLogin, AuthError> {
        let port = self
            .redirect_uri
            .port()
            .ok_or_else(|| AuthError::NotConfigured("redirect_uri has no port".into()))?;
        // Loopback only, never a public interface. A browser may resolve
        // `localhost` to either family, and another local user could be
        // listening on the one left free: listen on both (IPv6 is skipped
        // only where this computer has none).
        let (primary, also_v6) = match self.redirect_uri.host() {
            Some(url::Host::Ipv6(ip)) => (IpAddr::V6(ip), false),
            Some(url::Host::Ipv4(ip)) if ip.is_loopback() => (IpAddr::V4(ip), false),
            Some(url::Host::Domain(_)) => (IpAddr::V4(Ipv4Addr::LOCALHOST), true),
            _ => (IpAddr::V4(Ipv4Addr::LOCALHOST), false),
        };
        let addr = SocketAddr::new(primary, port);
        let mut listeners = vec![tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| AuthError::Listener { addr, source })?];
        if also_v6 {
            let v6 = SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), port);
            match tokio::net::TcpListener::bind(v6).await {
                Ok(l) => listeners.push(l),
                Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
                    tracing::debug!("no IPv6 loopback here; listening on IPv4 only");
                }
                Err(source) => return Err(AuthError::Listener { addr: v6, source }),
            }
        }

        let client = oauth2::basic::BasicClient::new(oauth2::ClientId::new(self.client_id.clone()))
            .set_auth_uri(oauth2::AuthUrl::from_url(self.authorize_url.clone()))
            .set_redirect_uri(oauth2::RedirectUrl::from_url(self.redirect_uri.clone()));
        let (challenge, verifier) = oauth2::PkceCodeChallenge::new_random_sha256();
        let (authorize_url, state) = client
            .authorize_url(oauth2::CsrfToken::new_random)
            .set_pkce_challenge(challenge)
            .url();
        let path = match self.redirect_uri.path() {
            "" => "/".to_string(),
            p => p.to_string(),
        };
        Ok(PendingLogin {
            authorize_url,
            state,
            verifier,
            listeners,
            path,
        })
    }

    /// The body with the registration's credentials: the client id, and
    /// the secret unless a relay adds it.
    fn with_client(&self, mut body: Value) -> Value {
        if let Some(map) = body.as_object_mut() {
            map.insert("client_id".into(), Value::String(self.client_id.clone()));
            if let Some(secret) = &self.client_secret {
                map.insert(
                    "client_secret".into(),
                    Value::String(secret.expose().to_string()),
                );
            }
        }
        body
    }

    async fn post_json(
        &self,
        url: &Url,
        body: &Value,
        what: &'static str,
    ) -> Result<reqwest::Response, AuthError> {
        let body = &self.with_client(body.clone());
        let resp = self
            .http
            .post(url.clone())
            .json(body)
            .send()
            .await
            .map_err(|e| AuthError::Unreachable(http::describe_transport(&e)))?;
        let status = resp.status();
        if status.is_success() {
            Ok(resp)
        } else if status.is_redirection() {
            // The client never follows redirects (see `http::oauth_client`):
            // following one would re-send the secret to wherever it points.
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(http::describe_location)
                .unwrap_or_else(|| "(no location)".into());
            Err(AuthError::Redirected {
                what,
                status: status.as_u16(),
                location,
            })
        } else {
            Err(token_call_error(what, resp).await)
        }
    }

    async fn read_tokens(resp: reqwest::Response) -> Result<TokenSet, AuthError> {
        let bytes = http::read_capped(resp)
            .await
            .map_err(|e| AuthError::Malformed(format!("token response: {e}")))?;
        let body: Value = serde_json::from_slice(&bytes)
            .map_err(|e| AuthError::Malformed(format!("token response: {e}")))?;
        parse_token_response(&body, Utc::now())
    }

    /// Exchange the authorization code (PKCE verifier included).
    pub async fn exchange_code(&self, code: AuthorizationCode) -> Result<TokenSet, AuthError> {
        let body = json!({
            "grant_type": "authorization_code",
            "code": code.code.expose(),
            "redirect_uri": self.redirect_uri.as_str(),
            "code_verifier": code.verifier.secret(),
        });
        let resp = self.post_json(&self.token_url, &body, "sign-in").await?;
        Self::read_tokens(resp).await
    }

    /// One refresh call (retries and single flight live in the session).
    pub async fn refresh(&self, refresh_token: &Secret) -> Result<TokenSet, AuthError> {
        let body = json!({
            "grant_type": "refresh_token",
            "refresh_token": refresh_token.expose(),
            "redirect_uri": self.redirect_uri.as_str(),
        });
        let resp = self
            .post_json(&self.token_url, &body, "saved sign-in")
            .await?;
        let mut tokens = Self::read_tokens(resp).await?;
        if tokens.refresh_token.is_none() {
            // A server that does not rotate keeps the old refresh token valid.
            tokens.refresh_token = Some(refresh_token.clone());
        }
        Ok(tokens)
    }

    /// Revoke one token (documented: 200 with an empty body).
    pub async fn revoke(&self, token: &Secret) -> Result<(), AuthError> {
        let body = json!({
            "token": token.expose(),
        });
        self.post_json(&self.revoke_url, &body, "revocation")
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-27T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn wrapped_documented_response() {
        let body = json!({"oauth": {
            "access_token": "a", "token_type": "Bearer", "expires_in": 7200, "refresh_token": "r",
            "scope": "clinic:read patients:read", "created_at": "2026-11-27T09:59:00.000Z",
            "resource_owner": {"id": "p-1", "type": "Practitioner"}
        }});
        let t = parse_token_response(&body, now()).unwrap();
        assert_eq!(t.access_token.expose(), "a");
        assert_eq!(t.refresh_token.as_ref().unwrap().expose(), "r");
        assert_eq!(
            t.expires_at.unwrap(),
            DateTime::parse_from_rfc3339("2026-11-27T11:59:00Z").unwrap()
        );
        assert_eq!(t.resource_owner.unwrap().id, "p-1");
    }

    #[test]
    fn unwrapped_epoch_and_extra_fields() {
        let created = now().timestamp();
        let body = json!({"access_token": "a", "expires_in": "60", "created_at": created, "id_token": "x"});
        let t = parse_token_response(&body, now()).unwrap();
        assert_eq!(t.expires_at.unwrap(), now() + chrono::Duration::seconds(60));
        assert!(t.refresh_token.is_none());
        assert!(t.scope.is_none());
        assert!(parse_token_response(&json!({"oauth": {}}), now()).is_err());
    }

    #[test]
    fn skewed_created_at_counts_from_now() {
        let body =
            json!({"access_token": "a", "expires_in": 7200, "created_at": "2020-01-01T00:00:00Z"});
        let t = parse_token_response(&body, now()).unwrap();
        assert_eq!(
            t.expires_at.unwrap(),
            now() + chrono::Duration::seconds(7200)
        );
    }

    #[test]
    fn refresh_margin() {
        let t =
            parse_token_response(&json!({"access_token": "a", "expires_in": 7200}), now()).unwrap();
        assert!(!t.needs_refresh(now()));
        assert!(!t.needs_refresh(now() + chrono::Duration::minutes(114)));
        assert!(t.needs_refresh(now() + chrono::Duration::minutes(116)));
        let short =
            parse_token_response(&json!({"access_token": "a", "expires_in": 8}), now()).unwrap();
        assert!(!short.needs_refresh(now() + chrono::Duration::seconds(5)));
        assert!(short.needs_refresh(now() + chrono::Duration::seconds(7)));
    }
}
