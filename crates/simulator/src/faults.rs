//! The middleware every request passes through: request id, rate limit,
//! injected faults and the request log.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::state::{iso, RequestLogEntry};
use crate::Shared;

/// One kind of misbehaviour the simulator can be told to show.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer with this HTTP status (500, 503, …) and a JSON error body.
    Status { status: u16 },
    /// Answer 429, with `Retry-After` in seconds (or none when `retry_after_secs` is absent),
    /// or exactly `retry_after_raw` (any string: `1e20`, a date in the past, `-5`, …).
    RateLimited {
        #[serde(default)]
        retry_after_secs: Option<u64>,
        #[serde(default)]
        retry_after_raw: Option<String>,
    },
    /// Answer 200 with a JSON body of this many megabytes, announced in
    /// `Content-Length` or streamed without one.
    HugeBody { megabytes: usize, chunked: bool },
    /// Answer a redirect (`status` 301/302/307/308) to `location`.
    Redirect { status: u16, location: String },
    /// The lab order list answers an empty first (and only) page.
    EmptyList,
    /// The lab order list answers only its first `keep` orders, as one page.
    TruncatedList { keep: usize },
    /// Wait this long before answering normally (longer than the client's timeout to test it).
    Delay { delay_ms: u64 },
    /// Answer 200 with a truncated, unparseable JSON body.
    MalformedJson,
    /// Start a 200 response, then drop the connection mid-body.
    DropConnection,
    /// Answer normally, with a `Date` header this many seconds off the
    /// simulator's clock (one answer from a server whose clock is wrong).
    ServerDate { offset_secs: i64 },
    /// Answer 200 with exactly this JSON text (an answer no simulated
    /// clinic would produce: half a million events on one page).
    Body { json: String },
}

impl FaultKind {
    fn label(&self) -> String {
        match self {
            FaultKind::Status { status } => format!("status:{status}"),
            FaultKind::RateLimited { .. } => "rate_limited".into(),
            FaultKind::EmptyList => "empty_list".into(),
            FaultKind::HugeBody { megabytes, .. } => format!("huge_body:{megabytes}MB"),
            FaultKind::Redirect { status, .. } => format!("redirect:{status}"),
            FaultKind::TruncatedList { keep } => format!("truncated_list:{keep}"),
            FaultKind::Delay { delay_ms } => format!("delay:{delay_ms}ms"),
            FaultKind::MalformedJson => "malformed_json".into(),
            FaultKind::DropConnection => "drop_connection".into(),
            FaultKind::ServerDate { offset_secs } => format!("server_date:{offset_secs}s"),
            FaultKind::Body { json } => format!("body:{}B", json.len()),
        }
    }
}

/// A fault applied to the next `count` matching requests, or to every matching
/// request for `for_secs` seconds (or both: whichever ends first).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultSpec {
    #[serde(flatten)]
    pub kind: FaultKind,
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default)]
    pub for_secs: Option<f64>,
    /// Only requests whose path starts with this. Default: every `/api/` path except OAuth.
    #[serde(default)]
    pub path_prefix: Option<String>,
}

#[derive(Debug, Clone)]
pub struct FaultRule {
    pub kind: FaultKind,
    pub remaining: Option<u32>,
    pub until: Option<Instant>,
    pub path_prefix: Option<String>,
}

impl FaultRule {
    pub fn from_spec(spec: FaultSpec) -> Result<FaultRule, String> {
        if spec.count.is_none() && spec.for_secs.is_none() {
            return Err("a fault needs `count` or `for_secs`".into());
        }
        if let FaultKind::Status { status } = spec.kind {
            if !(400..=599).contains(&status) {
                return Err("status faults must be 4xx or 5xx".into());
            }
        }
        let until = match spec.for_secs {
            Some(s) if s.is_finite() && s > 0.0 => {
                Some(Instant::now() + Duration::from_secs_f64(s))
            }
            Some(_) => return Err("for_secs must be a positive number".into()),
            None => None,
        };
        Ok(FaultRule {
            kind: spec.kind,
            remaining: spec.count,
            until,
            path_prefix: spec.path_prefix,
        })
    }

    fn matches(&self, path: &str) -> bool {
        match &self.path_prefix {
            Some(prefix) => path.starts_with(prefix.as_str()),
            None => path.starts_with("/api/") && !path.starts_with("/api/oauth/"),
        }
    }

    fn live(&self, now: Instant) -> bool {
        self.remaining.is_none_or(|n| n > 0) && self.until.is_none_or(|t| now < t)
    }
}

/// Handlers attach this to a response so the log can say more than the path.
#[derive(Debug, Clone, Default)]
pub struct LogNote {
    pub grant_type: Option<String>,
    pub revoked: Option<String>,
}

/// Take the first live fault matching `path`, consuming one use of it.
fn take_fault(shared: &Shared, path: &str) -> Option<FaultKind> {
    let mut world = shared.lock();
    let now = Instant::now();
    world.faults.retain(|f| f.live(now));
    let rule = world.faults.iter_mut().find(|f| f.matches(path))?;
    if let Some(n) = rule.remaining.as_mut() {
        *n -= 1;
    }
    Some(rule.kind.clone())
}

pub fn json_error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

fn fault_response(kind: &FaultKind) -> Response {
    match kind {
        FaultKind::Status { status } => {
            let code = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            json_error(code, code.canonical_reason().unwrap_or("Error"))
        }
        FaultKind::RateLimited {
            retry_after_secs,
            retry_after_raw,
        } => {
            let mut resp = json_error(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
            let value = retry_after_raw
                .clone()
                .or_else(|| retry_after_secs.map(|s| s.to_string()));
            if let Some(v) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            resp
        }
        FaultKind::HugeBody { megabytes, chunked } => {
            // `{"lab_orders": [], "padding": "xxxx…"}`
            let size = megabytes.saturating_mul(1024 * 1024);
            let head = Bytes::from_static(b"{\"lab_orders\": [], \"padding\": \"");
            let tail = Bytes::from_static(b"\"}");
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            let chunks = size / chunk.len() + 1;
            let total = head.len() + chunks * chunk.len() + tail.len();
            let parts: Vec<Result<Bytes, std::io::Error>> = std::iter::once(head)
                .chain(std::iter::repeat_n(chunk, chunks))
                .chain(std::iter::once(tail))
                .map(Ok)
                .collect();
            let mut builder = Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json");
            if !chunked {
                builder = builder.header(header::CONTENT_LENGTH, total);
            }
            builder
                .body(Body::from_stream(futures_util::stream::iter(parts)))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
        FaultKind::Redirect { status, location } => {
            let code = StatusCode::from_u16(*status).unwrap_or(StatusCode::TEMPORARY_REDIRECT);
            let mut resp = code.into_response();
            if let Ok(v) = HeaderValue::from_str(location) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            resp
        }
        // Handled by the list itself (see `ListFault`).
        FaultKind::EmptyList | FaultKind::TruncatedList { .. } => {
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        FaultKind::Body { json } => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            json.clone(),
        )
            .into_response(),
        FaultKind::MalformedJson => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{\"lab_orders\": [{\"id\": \"trunc",
        )
            .into_response(),
        FaultKind::DropConnection => {
            let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(Bytes::from_static(b"{\"lab_orders\": [")),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "simulated dropped connection",
                )),
            ];
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from_stream(futures_util::stream::iter(chunks)))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
        FaultKind::Delay { .. } | FaultKind::ServerDate { .. } => {
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// A fault the order list applies to its own answer (attached to the request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFault {
    Empty,
    Truncated(usize),
}

/// Writes the request's log line when dropped, so a request whose client
/// gave up mid-way (a timeout during an injected delay) is still logged, with
/// nginx's 499 "client closed request".
struct LogGuard {
    shared: Shared,
    entry: Option<RequestLogEntry>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        let mut world = self.shared.lock();
        world.in_flight = world.in_flight.saturating_sub(1);
        if let Some(entry) = self.entry.take() {
            world.log_request(entry);
        }
    }
}

/// Request id, rate limit, faults and logging, in that order.
pub async fn middleware(State(shared): State<Shared>, mut req: Request, next: Next) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let path = req.uri().path().to_string();
    // Browser pages of the OAuth flow are not API calls.
    let rate_limited_path = path.starts_with("/api/") && !path.starts_with("/api/oauth/authorize");
    shared.lock().in_flight += 1;
    let mut guard = LogGuard {
        shared: shared.clone(),
        entry: Some(RequestLogEntry {
            seq: 0,
            // Real time, not the simulated clock: tests measure waits with it.
            at: iso(chrono::Utc::now()),
            method: req.method().to_string(),
            path: path.clone(),
            query: req.uri().query().unwrap_or("").to_string(),
            status: 499,
            request_id: request_id.clone(),
            grant_type: None,
            revoked: None,
            fault: None,
        }),
    };

    let mut response = None;
    let mut date_offset = chrono::Duration::zero();
    if rate_limited_path {
        let limited = shared.lock().rate_check();
        if let Err(retry_after) = limited {
            let mut resp = json_error(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
            if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            response = Some(resp);
        }
    }
    if response.is_none() {
        if let Some(kind) = take_fault(&shared, &path) {
            if let Some(e) = guard.entry.as_mut() {
                e.fault = Some(kind.label());
            }
            match kind {
                FaultKind::Delay { delay_ms } => {
                    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                }
                FaultKind::EmptyList => {
                    req.extensions_mut().insert(ListFault::Empty);
                }
                FaultKind::TruncatedList { keep } => {
                    req.extensions_mut().insert(ListFault::Truncated(keep));
                }
                FaultKind::ServerDate { offset_secs } => {
                    date_offset = chrono::Duration::try_seconds(offset_secs).unwrap_or_default();
                }
                other => response = Some(fault_response(&other)),
            }
        }
    }
    let mut response = match response {
        Some(r) => r,
        None => next.run(req).await,
    };

    let note = response
        .extensions_mut()
        .remove::<LogNote>()
        .unwrap_or_default();
    if let Some(e) = guard.entry.as_mut() {
        e.status = response.status().as_u16();
        e.grant_type = note.grant_type;
        e.revoked = note.revoked;
    }
    drop(guard);
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", v);
    }
    // The simulator's clock (which tests may advance), as an HTTP date.
    let now = shared.lock().now() + date_offset;
    if let Ok(v) = HeaderValue::from_str(&now.format("%a, %d %b %Y %H:%M:%S GMT").to_string()) {
        response.headers_mut().insert(header::DATE, v);
    }
    response
}
