//! HTTP plumbing shared by the OAuth and API clients: one configured client,
//! and tolerant reading of Fullscript's (mostly undocumented) error bodies.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub fn user_agent() -> String {
    format!("fullscript-lab-notifier/{}", env!("CARGO_PKG_VERSION"))
}

/// Responses larger than this are refused (a lab-order page is kilobytes).
pub const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

fn builder(timeout: Duration) -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
        .user_agent(user_agent())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
}

/// The API client: per-request timeout, rustls, no cookies; redirects are
/// followed only within the origin they started from (at most 5), so a
/// bearer token never travels to another host.
pub fn api_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    builder(timeout)
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            let same_origin = attempt
                .previous()
                .first()
                .is_some_and(|first| first.origin() == attempt.url().origin());
            if attempt.previous().len() > 5 {
                attempt.error("too many redirects")
            } else if same_origin {
                attempt.follow()
            } else {
                attempt.stop()
            }
        }))
        .build()
}

/// The OAuth client (token, refresh, revoke): never follows a redirect. A
/// 307/308 would re-send the body (client secret, refresh token, code) to
/// wherever it points; a redirect is reported as an error instead.
pub fn oauth_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    builder(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// A redirect target for messages: scheme, host and path, never the query
/// (which may carry a code or a token).
pub fn describe_location(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(u) => {
            format!(
                "{}://{}{}",
                u.scheme(),
                u.host_str().unwrap_or(""),
                u.port().map(|p| format!(":{p}")).unwrap_or_default()
            ) + u.path()
        }
        Err(_) => raw
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the response is larger than {} MB; refused", MAX_RESPONSE_BYTES / (1024 * 1024))]
    TooLarge,
    #[error("{0}")]
    Transport(String, bool),
}

/// Read a body up to `MAX_RESPONSE_BYTES` (checked against `Content-Length`
/// first, then while streaming).
pub async fn read_capped(mut resp: reqwest::Response) -> Result<Vec<u8>, BodyError> {
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
    {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len().saturating_add(chunk.len()) > MAX_RESPONSE_BYTES {
                    return Err(BodyError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(BodyError::Transport(describe_transport(&e), e.is_timeout())),
        }
    }
}

/// The server's clock, from its `Date` header.
pub fn server_date(headers: &reqwest::header::HeaderMap) -> Option<DateTime<Utc>> {
    let raw = headers.get(reqwest::header::DATE)?.to_str().ok()?;
    DateTime::parse_from_rfc2822(raw.trim())
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// rustls' `ring` provider for the whole process (once; later calls are no-ops).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The human part of an error body, whatever its shape: `{"error": "text"}`,
/// `{"error": {...}}`, `{"errors": [...]}`, OAuth's `error_description`, an
/// HTML page or nothing. Truncated: bodies are logged.
pub fn error_message(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return None;
    }
    let msg = match serde_json::from_str::<Value>(trimmed) {
        Ok(v) => message_from_json(&v),
        // An HTML error page says nothing useful; a short plain text might.
        Err(_) if trimmed.starts_with('<') => None,
        Err(_) => Some(trimmed.to_string()),
    }?;
    let mut msg: String = msg.chars().filter(|c| !c.is_control()).collect();
    if msg.chars().count() > 200 {
        msg = msg.chars().take(200).collect::<String>() + "…";
    }
    Some(msg)
}

fn message_from_json(v: &Value) -> Option<String> {
    let describe = |e: &Value| -> Option<String> {
        match e {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o
                .get("message")
                .or_else(|| o.get("detail"))
                .or_else(|| o.get("description"))
                .or_else(|| o.get("code"))
                .and_then(Value::as_str)
                .map(str::to_string),
            _ => None,
        }
    };
    if let Some(d) = v.get("error_description").and_then(Value::as_str) {
        return Some(d.to_string());
    }
    if let Some(e) = v.get("error") {
        if let Some(m) = describe(e) {
            return Some(m);
        }
    }
    if let Some(Value::Array(errors)) = v.get("errors") {
        let parts: Vec<String> = errors.iter().filter_map(describe).collect();
        if !parts.is_empty() {
            return Some(parts.join("; "));
        }
    }
    v.get("message").and_then(Value::as_str).map(str::to_string)
}

/// The OAuth `error` code of a body (`invalid_grant`, …), if it has one.
pub fn oauth_error_code(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("error").and_then(Value::as_str).map(str::to_string)
}

/// `Retry-After` as seconds or an HTTP date, whatever number it holds: a
/// date in the past is zero, an absurd number is capped at a day (the
/// watcher clamps further), nothing here can overflow.
pub fn retry_after(headers: &reqwest::header::HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    const CAP: Duration = Duration::from_secs(24 * 3600);
    let raw = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(CAP));
    }
    if let Ok(secs) = raw.parse::<f64>() {
        if secs.is_nan() {
            return None;
        }
        return Some(
            Duration::try_from_secs_f64(secs.max(0.0))
                .unwrap_or(CAP)
                .min(CAP),
        );
    }
    let when = DateTime::parse_from_rfc2822(raw).ok()?.with_timezone(&Utc);
    Some(
        when.signed_duration_since(now)
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(CAP),
    )
}

/// Fullscript's request id, for logs and support.
pub fn request_id(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(64).collect())
}

/// A transport failure described without the URL's query (which could carry ids).
pub fn describe_transport(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "connection dropped while reading the response"
    } else if e.is_request() {
        "request failed"
    } else {
        "network error"
    };
    match e.url().and_then(|u| u.host_str()) {
        Some(host) => format!("{kind} ({host})"),
        None => kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_in_every_shape() {
        assert_eq!(
            error_message(br#"{"error":"Not Found","status":404}"#).as_deref(),
            Some("Not Found")
        );
        assert_eq!(
            error_message(br#"{"error":{"message":"bad"}}"#).as_deref(),
            Some("bad")
        );
        assert_eq!(
            error_message(br#"{"errors":[{"code":"x","message":"one"},"two"]}"#).as_deref(),
            Some("one; two")
        );
        assert_eq!(
            error_message(br#"{"error":"invalid_grant","error_description":"expired"}"#).as_deref(),
            Some("expired")
        );
        assert_eq!(error_message(b"<html><body>oops</body></html>"), None);
        assert_eq!(error_message(b""), None);
        assert_eq!(error_message(b"plain").as_deref(), Some("plain"));
        assert_eq!(
            oauth_error_code(br#"{"error":"invalid_grant"}"#).as_deref(),
            Some("invalid_grant")
        );
    }

    #[test]
    fn retry_after_seconds_or_date() {
        let mut h = reqwest::header::HeaderMap::new();
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        h.insert(
            "retry-after",
            "Thu, 01 Jan 2026 00:00:30 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&h, now), None);
        // Numbers from a server having a bad day: never a panic, never forever.
        for (raw, want) in [
            ("1e20", Some(Duration::from_secs(86400))),
            ("18446744073709551616", Some(Duration::from_secs(86400))),
            ("-5", Some(Duration::ZERO)),
            ("inf", Some(Duration::from_secs(86400))),
            ("0", Some(Duration::ZERO)),
            ("Wed, 01 Jan 2020 00:00:00 GMT", Some(Duration::ZERO)),
            (
                "Fri, 01 Jan 9999 00:00:00 GMT",
                Some(Duration::from_secs(86400)),
            ),
        ] {
            h.insert("retry-after", raw.parse().unwrap());
            assert_eq!(retry_after(&h, now), want, "{raw}");
        }
    }
}
