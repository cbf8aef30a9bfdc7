//! The authenticated REST API: clinic, lab orders, lab tests, patients and
//! the lab-order events feed, with Fullscript's pagination conventions.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::NaiveDate;
use serde_json::{json, Value};

use crate::faults::json_error;
use crate::oauth::not_found;
use crate::state::{ClinicAccount, OrdersSort, World};
use crate::Shared;

/// Events older than this are gone (documented: "the past 30 days").
const EVENT_RETENTION_DAYS: i64 = 30;
const DEFAULT_PAGE_SIZE: usize = 20;
const MAX_PAGE_SIZE: usize = 100;

/// Bearer authentication; 401 for a missing, unknown, expired or revoked token.
fn authenticate(world: &mut World, headers: &HeaderMap) -> Result<ClinicAccount, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let problem = match token {
        None => "The access token is missing",
        Some(t) => match world.use_access_token(t) {
            Ok(account) => return Ok(account),
            Err(p) => p.description(),
        },
    };
    let mut resp = json_error(StatusCode::UNAUTHORIZED, problem);
    let challenge = format!(
        "Bearer realm=\"Fullscript\", error=\"invalid_token\", error_description=\"{problem}\""
    );
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    Err(resp)
}

struct Page {
    number: usize,
    size: usize,
}

fn page_of(q: &HashMap<String, String>) -> Page {
    let number = q
        .get("page[number]")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(1);
    let size = q
        .get("page[size]")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(DEFAULT_PAGE_SIZE)
        .min(MAX_PAGE_SIZE);
    Page { number, size }
}

/// Slice `items` and build the documented `meta` block.
fn paginate<T: Clone>(items: &[T], page: &Page) -> (Vec<T>, Value) {
    let total = items.len();
    let total_pages = total.div_ceil(page.size).max(1);
    let start = (page.number - 1).saturating_mul(page.size).min(total);
    let end = (start + page.size).min(total);
    let meta = json!({
        "current_page": page.number,
        "next_page": if page.number < total_pages { json!(page.number + 1) } else { Value::Null },
        "prev_page": if page.number > 1 { json!(page.number - 1) } else { Value::Null },
        "total_pages": total_pages,
        "total_count": total,
    });
    (items[start..end].to_vec(), meta)
}

/// `meta` of a list that says it is complete in one page.
fn one_page(count: usize) -> Value {
    json!({"current_page": 1, "next_page": null, "prev_page": null, "total_pages": 1, "total_count": count})
}

pub async fn clinic(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let mut world = shared.lock();
    let account = match authenticate(&mut world, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    Json(json!({
        "clinic": {
            "id": account.clinic_id,
            "name": account.clinic_name,
            "patient_count": world.patients.len(),
            "practitioner_count": 1,
            "integration_id": null,
        }
    }))
    .into_response()
}

pub async fn list_orders(
    State(shared): State<Shared>,
    headers: HeaderMap,
    fault: Option<axum::Extension<crate::faults::ListFault>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut world = shared.lock();
    let account = match authenticate(&mut world, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let patient = q.get("patient_id");
    let sort = q.get("sort_by").map(String::as_str);
    if sort.is_some() && world.shape.orders_sort == OrdersSort::Refuse {
        return json_error(StatusCode::BAD_REQUEST, "Invalid sort_by");
    }
    let mut matching: Vec<usize> = world
        .orders
        .iter()
        .enumerate()
        .filter(|(_, o)| o.clinic_id == account.clinic_id)
        .filter(|(_, o)| patient.is_none_or(|p| &o.patient_id == p))
        .map(|(i, _)| i)
        .collect();
    if sort == Some("updated_at") && world.shape.orders_sort == OrdersSort::Honour {
        let desc = q
            .get("order_by")
            .is_none_or(|o| o.eq_ignore_ascii_case("desc"));
        // Stable: equal times keep creation order (ids break no ties).
        matching.sort_by(|a, b| {
            let (x, y) = (world.orders[*a].updated_at, world.orders[*b].updated_at);
            if desc {
                y.cmp(&x)
            } else {
                x.cmp(&y)
            }
        });
    }
    let (slice, meta) = match fault.map(|f| f.0) {
        Some(crate::faults::ListFault::Empty) => (Vec::new(), one_page(0)),
        Some(crate::faults::ListFault::Truncated(keep)) => {
            let kept: Vec<usize> = matching.iter().copied().take(keep).collect();
            let n = kept.len();
            (kept, one_page(n))
        }
        None => paginate(&matching, &page_of(&q)),
    };
    let items: Vec<Value> = slice
        .iter()
        .map(|i| world.order_json(&world.orders[*i], false))
        .collect();
    let mut body = serde_json::Map::new();
    body.insert(world.shape.list_root.clone(), Value::Array(items));
    body.insert("meta".into(), meta);
    Json(Value::Object(body)).into_response()
}

pub async fn get_order(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let mut world = shared.lock();
    let account = match authenticate(&mut world, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    match world
        .order(&id)
        .filter(|o| o.clinic_id == account.clinic_id)
    {
        Some(o) => Json(json!({ "lab_order": world.order_json(o, true) })).into_response(),
        None => not_found(),
    }
}

pub async fn get_lab_test(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let mut world = shared.lock();
    if let Err(r) = authenticate(&mut world, &headers) {
        return r;
    }
    let found = world
        .orders
        .iter()
        .flat_map(|o| o.tests.iter().map(move |t| (o, t)))
        .find(|(_, t)| t.id == id);
    match found {
        Some((o, t)) => Json(json!({
            "lab_test": { "id": t.id, "name": t.name, "lab_company": { "name": o.lab_company } }
        }))
        .into_response(),
        None => not_found(),
    }
}

pub async fn get_patient(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let mut world = shared.lock();
    if let Err(r) = authenticate(&mut world, &headers) {
        return r;
    }
    match world.patients.get(&id) {
        Some(p) => Json(json!({
            "patient": {
                "id": p.id, "first_name": p.first_name, "last_name": p.last_name,
                "email": p.email, "archived": false,
            }
        }))
        .into_response(),
        None => not_found(),
    }
}

/// `GET /api/clinic/practitioners/{id}`: the signed-in practitioner (for
/// the header: "Dr Evelyn Thorne"); other ids are not found here.
pub async fn get_practitioner(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let mut world = shared.lock();
    let account = match authenticate(&mut world, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if id != account.practitioner_id {
        return not_found();
    }
    let (first, last, email) = world.practitioner_name.clone();
    Json(json!({
        "practitioner": {
            "id": id, "first_name": first, "last_name": last, "email": email,
            "clinic_id": account.clinic_id,
        }
    }))
    .into_response()
}

/// A documented date filter: `>yyyy-mm-dd`, `<yyyy-mm-dd` or `yyyy-mm-dd..yyyy-mm-dd` (inclusive).
#[derive(Debug, PartialEq)]
pub enum DateFilter {
    After(NaiveDate),
    Before(NaiveDate),
    Between(NaiveDate, NaiveDate),
}

impl DateFilter {
    pub fn parse(s: &str) -> Option<DateFilter> {
        let day = |d: &str| NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").ok();
        if let Some(rest) = s.strip_prefix('>') {
            day(rest).map(DateFilter::After)
        } else if let Some(rest) = s.strip_prefix('<') {
            day(rest).map(DateFilter::Before)
        } else if let Some((a, b)) = s.split_once("..") {
            Some(DateFilter::Between(day(a)?, day(b)?))
        } else {
            None
        }
    }

    fn accepts(&self, d: NaiveDate) -> bool {
        match self {
            DateFilter::After(x) => d > *x,
            DateFilter::Before(x) => d < *x,
            DateFilter::Between(a, b) => *a <= d && d <= *b,
        }
    }
}

pub async fn lab_order_events(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut world = shared.lock();
    let account = match authenticate(&mut world, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if !world.shape.events_enabled {
        return json_error(
            StatusCode::FORBIDDEN,
            "Must have `patients:order_history` scope enabled to access events",
        );
    }
    if world.shape.events_reject_optional_params
        && ["created_at", "sort_by", "order_by"]
            .iter()
            .any(|k| q.contains_key(*k))
    {
        return json_error(StatusCode::BAD_REQUEST, "Unknown parameter");
    }
    let filter = match q.get("created_at") {
        None => None,
        Some(s) => match DateFilter::parse(s) {
            Some(f) => Some(f),
            None => return json_error(StatusCode::BAD_REQUEST, "Invalid created_at filter"),
        },
    };
    if q.get("sort_by").is_some_and(|s| s != "created_at") {
        return json_error(StatusCode::BAD_REQUEST, "Invalid sort_by");
    }
    let descending = match q.get("order_by").map(|s| s.to_ascii_uppercase()) {
        None => false,
        Some(s) if s == "ASC" => false,
        Some(s) if s == "DESC" => true,
        Some(_) => return json_error(StatusCode::BAD_REQUEST, "Invalid order_by"),
    };
    let oldest = world.now() - chrono::Duration::days(EVENT_RETENTION_DAYS);
    let mut events: Vec<usize> = world
        .events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.clinic_id == account.clinic_id)
        .filter(|(_, e)| e.created_at >= oldest)
        .filter(|(_, e)| {
            filter
                .as_ref()
                .is_none_or(|f| f.accepts(e.created_at.date_naive()))
        })
        .map(|(i, _)| i)
        .collect();
    // Stable: equal timestamps keep creation order.
    events.sort_by_key(|i| world.events[*i].created_at);
    if descending {
        events.reverse();
    }
    let (slice, meta) = paginate(&events, &page_of(&q));
    let items: Vec<Value> = slice
        .iter()
        .map(|i| world.event_json(&world.events[*i]))
        .collect();
    let mut body = serde_json::Map::new();
    body.insert(world.shape.events_root.clone(), Value::Array(items));
    body.insert("meta".into(), meta);
    Json(Value::Object(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_filters_parse_and_match() {
        let d = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(
            DateFilter::parse(">2026-01-02"),
            Some(DateFilter::After(d("2026-01-02")))
        );
        assert!(DateFilter::parse(">2026-01-02")
            .unwrap()
            .accepts(d("2026-01-03")));
        assert!(!DateFilter::parse(">2026-01-02")
            .unwrap()
            .accepts(d("2026-01-02")));
        assert!(DateFilter::parse("2026-01-01..2026-01-02")
            .unwrap()
            .accepts(d("2026-01-02")));
        assert!(DateFilter::parse("<2026-01-02")
            .unwrap()
            .accepts(d("2026-01-01")));
        assert_eq!(DateFilter::parse("yesterday"), None);
    }

    #[test]
    fn pagination_meta_follows_the_documented_shape() {
        let items: Vec<u32> = (0..250).collect();
        let (page, meta) = paginate(
            &items,
            &Page {
                number: 3,
                size: 100,
            },
        );
        assert_eq!(page.len(), 50);
        assert_eq!(meta["total_pages"], 3);
        assert_eq!(meta["next_page"], Value::Null);
        assert_eq!(meta["prev_page"], 2);
        assert_eq!(meta["total_count"], 250);
    }
}
