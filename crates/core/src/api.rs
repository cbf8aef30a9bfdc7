//! The Fullscript REST client: bearer auth through the [`Session`] (refresh
//! once on a 401), the request budget, and errors classified for the watcher.

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use serde_json::Value;
use url::Url;

use crate::backoff::RequestBudget;
use crate::clock::Clock;
use crate::http;
use crate::lab::{self, BadRecord, LabEvent, LabOrder, PageMeta};
use crate::oauth::{AuthError, ResourceOwner};
use crate::session::Session;

pub const PAGE_SIZE: u32 = 100;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("signed out: {0}")]
    SignedOut(String),
    #[error("rate limited by Fullscript{}", .retry_after.map(|d| format!(" (retry after {}s)", d.as_secs())).unwrap_or_default())]
    RateLimited {
        retry_after: Option<Duration>,
        request_id: Option<String>,
    },
    #[error("Fullscript answered {status} (server error){}", fmt_rid(.request_id))]
    Server {
        status: u16,
        request_id: Option<String>,
    },
    #[error("Fullscript refused the request: {status}{}{}", .message.as_deref().map(|m| format!(" {m}")).unwrap_or_default(), fmt_rid(.request_id))]
    Refused {
        status: u16,
        message: Option<String>,
        request_id: Option<String>,
    },
    #[error("request timed out ({0})")]
    Timeout(String),
    #[error("network: {0}")]
    Network(String),
    #[error("unreadable answer from Fullscript ({what}){}", fmt_rid(.request_id))]
    Malformed {
        what: String,
        request_id: Option<String>,
    },
    #[error("{0}")]
    BadRecord(BadRecord),
    #[error("Fullscript refused a just-renewed sign-in; trying again at the next check")]
    RefusedAfterRefresh,
    #[error("sign-in: {0}")]
    Auth(AuthError),
}

fn fmt_rid(rid: &Option<String>) -> String {
    rid.as_deref()
        .map(|r| format!(", request id {r}"))
        .unwrap_or_default()
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::SignedOut(r) => ApiError::SignedOut(r),
            other => ApiError::Auth(other),
        }
    }
}

impl ApiError {
    /// Fullscript ended the session, or refused the app's registration:
    /// nothing to retry until someone acts.
    pub fn needs_user(&self) -> bool {
        matches!(
            self,
            ApiError::SignedOut(_) | ApiError::Auth(AuthError::NeedsConfiguration(_))
        )
    }

    /// A transport-level failure (not an answer from Fullscript).
    pub fn is_connectivity(&self) -> bool {
        matches!(
            self,
            ApiError::Timeout(_) | ApiError::Network(_) | ApiError::Auth(AuthError::Unreachable(_))
        )
    }
}

#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Clinic {
    pub id: String,
    pub name: String,
}

/// Who is signed in, to which clinic (kept in the database, shown everywhere).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Account {
    pub clinic: Clinic,
    pub resource_owner: Option<ResourceOwner>,
    /// The sign-in (see `TokenSet::grant_id`) this account came with.
    #[serde(default)]
    pub grant_id: Option<String>,
    /// The signed-in practitioner's name (or email), for the header only.
    #[serde(default)]
    pub owner_name: Option<String>,
}

/// One page of lab orders; a bad record is reported, the rest kept.
pub struct OrderPage {
    pub orders: Vec<LabOrder>,
    pub bad: Vec<BadRecord>,
    pub meta: PageMeta,
}

pub struct EventPage {
    /// In the server's order; an unreadable event stays in place as an error
    /// so the cursor never moves past it.
    pub events: Vec<Result<LabEvent, String>>,
    pub meta: PageMeta,
}

pub struct FullscriptClient {
    http: reqwest::Client,
    api_base: Url,
    session: Arc<Session>,
    budget: Arc<RequestBudget>,
    clock: Clock,
    /// Fullscript's clock, from the recent `Date` headers.
    server_clock: std::sync::Mutex<crate::server_clock::ServerClock>,
    bytes_read: std::sync::atomic::AtomicU64,
}

/// Which optional parameters the events query carries: they are guesses
/// from the docs (`created_at`, `sort_by`, `order_by`), so a feed that
/// refuses them is asked again without them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventsQuery {
    Full,
    Minimal,
}

/// `GET /clinic`'s answer: `{"clinic": {…}}` or the bare object; `None`
/// without a usable id (the relay asks the same question of a token).
/// The order list's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderSort {
    /// Whatever Fullscript answers (a full sweep reads every page anyway).
    Any,
    /// `updated_at`, newest first (an incremental sweep).
    NewestUpdateFirst,
}

pub fn parse_clinic(body: &Value) -> Option<Clinic> {
    let c = body.get("clinic").filter(|v| v.is_object()).unwrap_or(body);
    let id = match c.get("id") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return None,
    };
    let name = c
        .get("name")
        .and_then(Value::as_str)
        .map(lab::display_text)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "Your clinic".to_string());
    Some(Clinic { id, name })
}

impl FullscriptClient {
    pub fn new(
        http: reqwest::Client,
        api_base: Url,
        session: Arc<Session>,
        budget: Arc<RequestBudget>,
    ) -> Self {
        FullscriptClient {
            http,
            api_base,
            session,
            budget,
            clock: Clock::system(),
            server_clock: std::sync::Mutex::new(Default::default()),
            bytes_read: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    fn server_clock(&self) -> std::sync::MutexGuard<'_, crate::server_clock::ServerClock> {
        self.server_clock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fullscript's "now": the recent `Date` headers' median, moved on by
    /// the time elapsed since (so a computer clock a year off does not move
    /// cursors or prune events, and neither does one odd answer); this
    /// computer's clock before any answer.
    pub fn server_now(&self) -> chrono::DateTime<Utc> {
        self.server_clock()
            .estimate(std::time::Instant::now())
            .unwrap_or_else(|| self.clock.now())
    }

    /// Has a response told us Fullscript's time yet?
    pub fn knows_server_time(&self) -> bool {
        self.server_clock().known()
    }

    /// Do enough answers agree on Fullscript's time to prune by it?
    pub fn server_time_confirmed(&self) -> bool {
        self.server_clock().confirmed()
    }

    /// Is an event time from Fullscript plausible (at most a day past its
    /// own now)? An implausible one (a misread epoch, a wrong clock) is
    /// treated as unknown: it may neither move the cursor nor decide news.
    pub fn plausible_time(&self, t: chrono::DateTime<Utc>) -> bool {
        self.server_clock()
            .plausible(t, std::time::Instant::now(), self.clock.now())
    }

    fn note_server_time(&self, headers: &reqwest::header::HeaderMap) {
        if let Some(date) = http::server_date(headers) {
            self.server_clock().observe(date, std::time::Instant::now());
        }
    }

    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    pub fn budget(&self) -> &Arc<RequestBudget> {
        &self.budget
    }

    fn url(&self, path: &str) -> Result<Url, ApiError> {
        let joined = format!("{}{}", self.api_base.as_str().trim_end_matches('/'), path);
        Url::parse(&joined).map_err(|e| ApiError::Malformed {
            what: format!("URL {path}: {e}"),
            request_id: None,
        })
    }

    async fn send(
        &self,
        url: &Url,
        token: &crate::secret::Secret,
    ) -> Result<reqwest::Response, ApiError> {
        self.budget.acquire().await;
        self.http
            .get(url.clone())
            .bearer_auth(token.expose())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    ApiError::Timeout(http::describe_transport(&e))
                } else {
                    ApiError::Network(http::describe_transport(&e))
                }
            })
    }

    /// GET a JSON body: 401 → refresh once and retry; a 401 to the renewed
    /// token is reported (twice in a row ends the session).
    pub async fn get_json(&self, path: &str, query: &[(&str, String)]) -> Result<Value, ApiError> {
        let mut url = self.url(path)?;
        if !query.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        let token = self.session.access_token().await?;
        let mut resp = self.send(&url, &token).await?;
        if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
            tracing::info!(path, "access token refused; refreshing once");
            let fresh = self.session.refresh_after_unauthorized(&token).await?;
            resp = self.send(&url, &fresh).await?;
            if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
                return Err(if self.session.refused_after_refresh().await {
                    ApiError::SignedOut(
                        "Fullscript refused the renewed sign-in twice; sign in again".into(),
                    )
                } else {
                    ApiError::RefusedAfterRefresh
                });
            }
        }
        let status = resp.status().as_u16();
        let request_id = http::request_id(resp.headers());
        self.note_server_time(resp.headers());
        if status == 429 {
            let retry_after = http::retry_after(resp.headers(), Utc::now());
            return Err(ApiError::RateLimited {
                retry_after,
                request_id,
            });
        }
        if status >= 500 {
            return Err(ApiError::Server { status, request_id });
        }
        if !(200..300).contains(&status) {
            let body = http::read_capped(resp).await.unwrap_or_default();
            return Err(ApiError::Refused {
                status,
                message: http::error_message(&body),
                request_id,
            });
        }
        self.session.accepted();
        let bytes = http::read_capped(resp).await.map_err(|e| match e {
            http::BodyError::TooLarge => ApiError::Malformed {
                what: format!("{path}: {e}"),
                request_id: request_id.clone(),
            },
            http::BodyError::Transport(text, true) => ApiError::Timeout(text),
            http::BodyError::Transport(text, false) => ApiError::Network(text),
        })?;
        self.bytes_read.fetch_add(
            u64::try_from(bytes.len()).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
        serde_json::from_slice(&bytes).map_err(|e| ApiError::Malformed {
            what: format!("{path}: {e}"),
            request_id,
        })
    }

    /// Response bytes read so far (a sweep's ceiling is counted with it).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub async fn clinic(&self) -> Result<Clinic, ApiError> {
        let body = self.get_json("/clinic", &[]).await?;
        parse_clinic(&body).ok_or_else(|| ApiError::Malformed {
            what: "clinic without id".into(),
            request_id: None,
        })
    }

    /// The signed-in practitioner's (or staff member's) name for the
    /// header: "First Last", else the email, else nothing. Best effort: the
    /// record may be missing, refused or shaped otherwise.
    pub async fn owner_name(&self, owner: &crate::oauth::ResourceOwner) -> Option<String> {
        let (path, wrapper) = if owner.kind.eq_ignore_ascii_case("staff") {
            ("staff", "staff")
        } else {
            ("practitioners", "practitioner")
        };
        let id: String = url::form_urlencoded::byte_serialize(owner.id.as_bytes()).collect();
        let body = match self.get_json(&format!("/clinic/{path}/{id}"), &[]).await {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(error = %e, "could not read the signed-in user's name");
                return None;
            }
        };
        let p = body.get(wrapper).filter(|v| v.is_object()).unwrap_or(&body);
        let text = |k: &str| {
            p.get(k)
                .and_then(Value::as_str)
                .map(lab::display_text)
                .filter(|s| !s.is_empty())
        };
        let name = [text("first_name"), text("last_name")]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        if !name.is_empty() {
            return Some(name);
        }
        text("email")
    }

    pub async fn orders_page(&self, page: u32) -> Result<OrderPage, ApiError> {
        self.orders_page_in(page, OrderSort::Any).await
    }

    /// A page of the order list in `sort` order. The sort parameters are
    /// the events query's guess (`sort_by`/`order_by`, not documented for
    /// this list): the caller checks that the answer really is sorted.
    pub async fn orders_page_in(&self, page: u32, sort: OrderSort) -> Result<OrderPage, ApiError> {
        let mut params = vec![
            ("page[number]", page.to_string()),
            ("page[size]", PAGE_SIZE.to_string()),
        ];
        if sort == OrderSort::NewestUpdateFirst {
            params.extend([
                ("sort_by", "updated_at".to_string()),
                ("order_by", "DESC".to_string()),
            ]);
        }
        let body = self.get_json("/clinic/labs/orders", &params).await?;
        let items =
            lab::list_items(&body, &lab::ORDER_LIST_ROOTS).ok_or_else(|| ApiError::Malformed {
                what: "lab order list without a list of orders".into(),
                request_id: None,
            })?;
        let mut orders = Vec::with_capacity(items.len());
        let mut bad = Vec::new();
        for item in items {
            match LabOrder::from_json(item) {
                Ok(o) => orders.push(o),
                Err(b) => bad.push(b),
            }
        }
        Ok(OrderPage {
            orders,
            bad,
            meta: lab::page_meta(&body),
        })
    }

    pub async fn order(&self, id: &str) -> Result<LabOrder, ApiError> {
        let encoded: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
        let body = self
            .get_json(&format!("/clinic/labs/orders/{encoded}"), &[])
            .await?;
        LabOrder::from_json(lab::unwrap_order(&body)).map_err(ApiError::BadRecord)
    }

    /// Events created on or after `from_day` (the filter works on whole days,
    /// so the caller de-duplicates by event id), oldest first. With
    /// [`EventsQuery::Minimal`] only the page is asked for: every event of
    /// the last 30 days, in whatever order.
    pub async fn events_page(
        &self,
        from_day: NaiveDate,
        page: u32,
        query: EventsQuery,
    ) -> Result<EventPage, ApiError> {
        let after = from_day.pred_opt().unwrap_or(from_day);
        let mut params = vec![
            ("page[number]", page.to_string()),
            ("page[size]", PAGE_SIZE.to_string()),
        ];
        if query == EventsQuery::Full {
            params.extend([
                ("created_at", format!(">{}", after.format("%Y-%m-%d"))),
                ("sort_by", "created_at".into()),
                ("order_by", "ASC".into()),
            ]);
        }
        let body = self.get_json("/events/lab_orders", &params).await?;
        let items =
            lab::list_items(&body, &lab::EVENT_LIST_ROOTS).ok_or_else(|| ApiError::Malformed {
                what: "event list without a list of events".into(),
                request_id: None,
            })?;
        Ok(EventPage {
            events: items.iter().map(LabEvent::from_json).collect(),
            meta: lab::page_meta(&body),
        })
    }
}
