//! The token broker: `POST /oauth/token` and `POST /oauth/revoke` take what
//! the app would send Fullscript, without the client secret; the relay adds
//! the registration's secret (and id), forwards to Fullscript's endpoint
//! (no redirects followed, bodies capped, a rate limit per client address)
//! and returns Fullscript's answer unchanged. The desktops hold no secret.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::server::Relay;

/// The largest request or answer passed through.
const MAX_BODY: usize = 64 * 1024;
/// How long Fullscript may take to answer.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(20);
/// Token calls per client address per minute (a desktop makes a handful a day).
pub const CALLS_PER_MINUTE: u32 = 30;

/// A fixed-window counter per client address.
#[derive(Default)]
pub struct RateLimit {
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl RateLimit {
    /// May `ip` make one more call now?
    pub fn allow(&self, ip: IpAddr) -> bool {
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if w.len() > 100_000 {
            w.retain(|_, (start, _)| start.elapsed() < Duration::from_secs(60));
        }
        let entry = w.entry(ip).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= Duration::from_secs(60) {
            *entry = (Instant::now(), 0);
        }
        if entry.1 >= CALLS_PER_MINUTE {
            return false;
        }
        entry.1 += 1;
        true
    }
}

#[derive(Clone, Copy)]
pub enum Endpoint {
    Token,
    Revoke,
}

/// The body formats accepted: what the app sends Fullscript today (JSON)
/// and the OAuth form encoding; forwarded in the format it came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Form,
}

impl Format {
    fn of(headers: &HeaderMap) -> Option<Format> {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if ct.starts_with("application/json") {
            Some(Format::Json)
        } else if ct.starts_with("application/x-www-form-urlencoded") {
            Some(Format::Form)
        } else {
            None
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Form => "application/x-www-form-urlencoded",
        }
    }
}

/// Add the registration's credentials to a JSON object body (replacing any
/// the caller sent); `None` when the body is not a JSON object.
pub fn json_with_credentials(
    body: &[u8],
    client_id: Option<&str>,
    client_secret: &str,
) -> Option<Vec<u8>> {
    let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body).ok()?;
    if let Some(id) = client_id {
        v.insert("client_id".into(), id.into());
    }
    v.insert("client_secret".into(), client_secret.into());
    serde_json::to_vec(&v).ok()
}

/// Add the registration's credentials to a form body (replacing any the
/// caller sent: the relay speaks for the registration).
pub fn with_credentials(body: &[u8], client_id: Option<&str>, client_secret: &str) -> Vec<u8> {
    let mut pairs: Vec<(String, String)> = url::form_urlencoded::parse(body)
        .filter(|(k, _)| k != "client_secret" && (client_id.is_none() || k != "client_id"))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if let Some(id) = client_id {
        pairs.push(("client_id".into(), id.into()));
    }
    pairs.push(("client_secret".into(), client_secret.into()));
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
        .into_bytes()
}

pub async fn forward(
    relay: Arc<Relay>,
    endpoint: Endpoint,
    peer: SocketAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !relay.rate_limit.allow(peer.ip()) {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "too many token calls; try again in a minute",
        )
            .into_response();
    }
    let Some(secret) = &relay.config.client_secret else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "this relay has no client secret configured",
        )
            .into_response();
    };
    let Some(format) = Format::of(&headers) else {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a JSON or form body is expected",
        )
            .into_response();
    };
    let url = match endpoint {
        Endpoint::Token => relay.config.token_url.clone(),
        Endpoint::Revoke => relay.config.revoke_url.clone(),
    };
    let id = relay.config.client_id.as_deref();
    let forwarded = match format {
        Format::Form => with_credentials(&body, id, secret.expose()),
        Format::Json => match json_with_credentials(&body, id, secret.expose()) {
            Some(b) => b,
            None => {
                return (StatusCode::BAD_REQUEST, "the body is not a JSON object").into_response()
            }
        },
    };
    let sent = relay
        .http
        .post(url)
        .header(header::CONTENT_TYPE, format.content_type())
        .header(header::ACCEPT, "application/json")
        .timeout(FORWARD_TIMEOUT)
        .body(forwarded)
        .send()
        .await;
    let response = match sent {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e.without_url(), "Fullscript's token endpoint could not be reached");
            return (StatusCode::BAD_GATEWAY, "Fullscript could not be reached").into_response();
        }
    };
    let status =
        StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    let mut answer = Vec::new();
    let mut stream = response.bytes_stream();
    use futures_util::StreamExt;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) if answer.len() + c.len() <= MAX_BODY => answer.extend_from_slice(&c),
            Ok(_) => {
                return (StatusCode::BAD_GATEWAY, "Fullscript's answer was too long")
                    .into_response()
            }
            Err(e) => {
                tracing::warn!(error = %e.without_url(), "Fullscript's token answer was cut off");
                return (StatusCode::BAD_GATEWAY, "Fullscript's answer was cut off")
                    .into_response();
            }
        }
    }
    // Tokens are in the answer: it is passed on, never logged.
    tracing::info!(status = status.as_u16(), "token call forwarded");
    let mut r = (status, answer).into_response();
    if let Some(ct) = content_type {
        r.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

pub async fn token(
    State(relay): State<Arc<Relay>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    forward(relay, Endpoint::Token, peer, headers, body).await
}

pub async fn revoke(
    State(relay): State<Arc<Relay>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    forward(relay, Endpoint::Revoke, peer, headers, body).await
}

/// The request body limit for the broker's routes.
pub const BODY_LIMIT: usize = MAX_BODY;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relay_adds_the_secret_and_replaces_whatever_the_caller_sent() {
        let body = b"grant_type=refresh_token&refresh_token=r1&client_secret=guess&client_id=x";
        let out = String::from_utf8(with_credentials(body, Some("app-id"), "s3cret")).unwrap();
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(out.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        assert!(pairs.contains(&("refresh_token".into(), "r1".into())));
        assert!(pairs.contains(&("client_id".into(), "app-id".into())));
        assert!(pairs.contains(&("client_secret".into(), "s3cret".into())));
        assert_eq!(
            pairs.iter().filter(|(k, _)| k == "client_secret").count(),
            1
        );
        assert!(!out.contains("guess"));
    }

    #[test]
    fn a_json_body_as_the_app_sends_it_gets_the_secret_too() {
        let body = br#"{"grant_type":"authorization_code","code":"c1","client_id":"x","client_secret":"guess"}"#;
        let out = json_with_credentials(body, Some("app-id"), "s3cret").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["client_secret"], "s3cret");
        assert_eq!(v["client_id"], "app-id");
        assert_eq!(v["code"], "c1");
        assert!(json_with_credentials(b"[1]", None, "s").is_none());
    }

    #[test]
    fn an_address_over_its_limit_waits_for_the_next_minute() {
        let limit = RateLimit::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..CALLS_PER_MINUTE {
            assert!(limit.allow(ip));
        }
        assert!(!limit.allow(ip));
        assert!(
            limit.allow("192.0.2.2".parse().unwrap()),
            "others unaffected"
        );
    }
}
