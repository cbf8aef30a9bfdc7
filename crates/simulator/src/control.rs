//! The control API under `/_sim/` (for scripts and the demo) and the same
//! operations as plain methods on [`SimControl`] (for in-process tests).

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::faults::{json_error, FaultRule, FaultSpec};
use crate::state::{ApiShape, LabOrder, NewOrder, Patient, RequestLogEntry};
use crate::Shared;

/// In-process handle on a running simulator's world.
#[derive(Clone)]
pub struct SimControl {
    pub(crate) shared: Shared,
}

impl SimControl {
    /// Every webhook delivery attempt so far (with `SimConfig::webhook`).
    pub fn webhook_deliveries(&self) -> Vec<crate::webhooks::Delivery> {
        self.shared.lock().webhook_log.clone()
    }

    /// The event ids of the webhook deliveries the receiver acknowledged,
    /// in the order they were answered (a duplicate delivery counts twice).
    /// Recorded once the answer is read, which may be after the receiver
    /// already passed the event on: wait for what this should hold.
    pub fn acknowledged_webhooks(&self) -> Vec<String> {
        self.shared
            .lock()
            .webhook_log
            .iter()
            .filter(|d| crate::webhooks::acknowledged(d.status))
            .filter_map(|d| d.event_id.clone())
            .collect()
    }

    /// A signed-in practitioner's access token (as a sign-in would give),
    /// for tests of what asks Fullscript with one (the relay's look-up).
    pub fn issue_access_token(&self) -> String {
        self.shared.lock().issue_grant(None).access_token
    }

    pub fn add_patient(&self, first_name: &str, last_name: &str) -> Patient {
        self.shared.lock().add_patient(first_name, last_name)
    }

    pub fn add_order(&self, spec: NewOrder) -> Result<LabOrder, String> {
        self.shared.lock().add_order(spec)
    }

    /// A patient and an order in one step, for tests.
    pub fn add_patient_order(&self, first_name: &str, last_name: &str, state: &str) -> LabOrder {
        let mut world = self.shared.lock();
        let patient = world.add_patient(first_name, last_name);
        world
            .add_order(NewOrder::for_patient(&patient.id).in_state(state))
            .expect("a new patient's order is valid")
    }

    /// Create `count` orders (for the pagination and performance tests).
    pub fn add_bulk_orders(&self, count: usize, state: &str) -> Vec<String> {
        let mut world = self.shared.lock();
        let patient = world.add_patient("Bulk", "Patient");
        (0..count)
            .filter_map(|i| {
                let spec = NewOrder::for_patient(&patient.id)
                    .named(&format!("Panel {i}"), &[])
                    .in_state(state);
                world.add_order(spec).ok().map(|o| o.id)
            })
            .collect()
    }

    pub fn set_state(&self, order_id: &str, state: &str) -> Result<LabOrder, String> {
        self.shared.lock().set_state(order_id, state, false)
    }

    pub fn set_state_with_document(&self, order_id: &str, state: &str) -> Result<LabOrder, String> {
        self.shared.lock().set_state(order_id, state, true)
    }

    /// A new amended report: state `results_amended`, a new result, a new event.
    pub fn amend(&self, order_id: &str) -> Result<LabOrder, String> {
        self.set_state(order_id, "results_amended")
    }

    /// A new event about the order with its results unchanged (an
    /// amendment seen only through the events feed).
    pub fn event_only(&self, order_id: &str) -> Result<(), String> {
        self.shared.lock().event_only(order_id)
    }

    /// Move the newest event's `created_at` by `by` (a feed whose clock
    /// is wrong, or a time misread).
    pub fn shift_newest_event(&self, by: chrono::Duration) {
        let mut world = self.shared.lock();
        if let Some(e) = world.events.last_mut() {
            e.created_at += by;
        }
    }

    pub fn corrupt_order(&self, order_id: &str, raw: Value) -> Result<(), String> {
        self.shared.lock().corrupt_order(order_id, raw)
    }

    /// From now on, sign-ins are for another clinic (a second practitioner's
    /// account) and new orders belong to it; answers its id. Tokens already
    /// issued keep seeing their own clinic.
    pub fn switch_clinic(&self, name: &str) -> String {
        self.shared.lock().switch_clinic(name)
    }

    /// Undo [`SimControl::corrupt_order`]: the order renders normally again.
    pub fn restore_order(&self, order_id: &str) -> Result<(), String> {
        self.shared.lock().restore_order(order_id)
    }

    pub fn remove_order(&self, order_id: &str) -> Result<(), String> {
        self.shared.lock().remove_order(order_id)
    }

    pub fn order(&self, order_id: &str) -> Option<LabOrder> {
        self.shared.lock().order(order_id).cloned()
    }

    pub fn order_ids(&self) -> Vec<String> {
        self.shared
            .lock()
            .orders
            .iter()
            .map(|o| o.id.clone())
            .collect()
    }

    pub fn shape(&self) -> ApiShape {
        self.shared.lock().shape.clone()
    }

    pub fn set_shape(&self, shape: ApiShape) {
        self.shared.lock().shape = shape;
    }

    pub fn update_shape(&self, f: impl FnOnce(&mut ApiShape)) {
        f(&mut self.shared.lock().shape);
    }

    pub fn expire_access_tokens(&self) -> usize {
        self.shared.lock().expire_access_tokens()
    }

    pub fn revoke_all_grants(&self) -> usize {
        self.shared.lock().revoke_all_grants()
    }

    pub fn live_grants(&self) -> usize {
        self.shared.lock().live_grants()
    }

    pub fn advance_clock(&self, by: Duration) {
        let mut world = self.shared.lock();
        world.clock_offset += chrono::Duration::from_std(by).unwrap_or(chrono::Duration::zero());
    }

    pub fn add_fault(&self, spec: FaultSpec) -> Result<(), String> {
        let rule = FaultRule::from_spec(spec)?;
        self.shared.lock().faults.push(rule);
        Ok(())
    }

    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    pub fn requests(&self) -> Vec<RequestLogEntry> {
        self.shared.lock().request_log.clone()
    }

    /// Requests whose path starts with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> Vec<RequestLogEntry> {
        self.shared
            .lock()
            .request_log
            .iter()
            .filter(|r| r.path.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Everything that must never appear in the app's logs or output: the
    /// client secret, every token and code issued, every patient's names
    /// and email (for the end-to-end suite's log scan).
    pub fn sensitive_strings(&self) -> Vec<String> {
        let world = self.shared.lock();
        let mut out = vec![world.config.client_secret.clone()];
        for g in world.grants.values() {
            out.push(g.access_token.clone());
            out.push(g.refresh_token.clone());
        }
        out.extend(world.codes.keys().cloned());
        for p in world.patients.values() {
            out.push(p.first_name.clone());
            out.push(p.last_name.clone());
            out.push(p.email.clone());
        }
        // Very short strings would match anything.
        out.retain(|s| s.chars().count() >= 4);
        out.sort();
        out.dedup();
        out
    }

    /// Requests being answered right now (a delayed one, for instance).
    pub fn in_flight(&self) -> usize {
        self.shared.lock().in_flight
    }

    pub fn clear_requests(&self) {
        self.shared.lock().request_log.clear();
    }

    pub fn event_count(&self) -> usize {
        self.shared.lock().events.len()
    }
}

fn ok_or_400<T: serde::Serialize>(r: Result<T, String>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => json_error(StatusCode::BAD_REQUEST, &e),
    }
}

fn ctl(shared: Shared) -> SimControl {
    SimControl { shared }
}

pub async fn state(State(shared): State<Shared>) -> Response {
    let world = shared.lock();
    let orders: Vec<Value> = world
        .orders
        .iter()
        .map(|o| json!({"id": o.id, "name": o.name, "state": o.state, "patient_id": o.patient_id, "results": o.results.len()}))
        .collect();
    Json(json!({
        "clinic": {"id": world.clinic_id, "name": world.clinic_name},
        "patients": world.patients.values().collect::<Vec<_>>(),
        "orders": orders,
        "events": world.events.len(),
        "live_grants": world.live_grants(),
        "shape": world.shape,
    }))
    .into_response()
}

#[derive(Deserialize)]
pub struct NewPatient {
    first_name: String,
    last_name: String,
}

pub async fn add_patient(State(shared): State<Shared>, Json(p): Json<NewPatient>) -> Response {
    (
        StatusCode::CREATED,
        Json(ctl(shared).add_patient(&p.first_name, &p.last_name)),
    )
        .into_response()
}

pub async fn add_order(State(shared): State<Shared>, Json(spec): Json<NewOrder>) -> Response {
    match ctl(shared).add_order(spec) {
        Ok(o) => (StatusCode::CREATED, Json(o)).into_response(),
        Err(e) => json_error(StatusCode::BAD_REQUEST, &e),
    }
}

#[derive(Deserialize)]
pub struct Bulk {
    count: usize,
    #[serde(default = "purchased")]
    state: String,
}

fn purchased() -> String {
    "purchased".into()
}

pub async fn add_bulk(State(shared): State<Shared>, Json(b): Json<Bulk>) -> Response {
    if b.count > 200_000 {
        return json_error(StatusCode::BAD_REQUEST, "count must be at most 200000");
    }
    let ids = ctl(shared).add_bulk_orders(b.count, &b.state);
    (StatusCode::CREATED, Json(json!({"created": ids.len()}))).into_response()
}

#[derive(Deserialize)]
pub struct StateChange {
    state: String,
    #[serde(default)]
    with_document: bool,
}

pub async fn set_state(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    Json(c): Json<StateChange>,
) -> Response {
    let control = ctl(shared);
    ok_or_400(if c.with_document {
        control.set_state_with_document(&id, &c.state)
    } else {
        control.set_state(&id, &c.state)
    })
}

#[derive(Deserialize, Default)]
pub struct Amend {
    #[serde(default)]
    with_document: bool,
}

pub async fn amend(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    body: Option<Json<Amend>>,
) -> Response {
    let with_document = body.map(|Json(a)| a.with_document).unwrap_or(false);
    ok_or_400(
        shared
            .lock()
            .set_state(&id, "results_amended", with_document),
    )
}

#[derive(Deserialize, Default)]
pub struct Corrupt {
    #[serde(default)]
    raw: Option<Value>,
}

pub async fn corrupt(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    body: Option<Json<Corrupt>>,
) -> Response {
    let raw = body.and_then(|Json(c)| c.raw).unwrap_or_else(
        || json!({"id": id, "state": {"unexpected": true}, "results": "not-a-list"}),
    );
    ok_or_400(
        ctl(shared)
            .corrupt_order(&id, raw)
            .map(|_| json!({"corrupted": id})),
    )
}

pub async fn remove_order(State(shared): State<Shared>, Path(id): Path<String>) -> Response {
    ok_or_400(
        ctl(shared)
            .remove_order(&id)
            .map(|_| json!({"removed": id})),
    )
}

pub async fn put_shape(State(shared): State<Shared>, Json(shape): Json<ApiShape>) -> Response {
    ctl(shared.clone()).set_shape(shape);
    Json(shared.lock().shape.clone()).into_response()
}

pub async fn expire_tokens(State(shared): State<Shared>) -> Response {
    Json(json!({"expired": ctl(shared).expire_access_tokens()})).into_response()
}

pub async fn revoke_all(State(shared): State<Shared>) -> Response {
    Json(json!({"revoked": ctl(shared).revoke_all_grants()})).into_response()
}

pub async fn tokens(State(shared): State<Shared>) -> Response {
    let world = shared.lock();
    let now = world.now();
    let grants: Vec<Value> = world
        .grants
        .values()
        .map(|g| {
            json!({
                "id": g.id,
                "revoked": g.revoked,
                "access_used": g.access_used,
                "expired": now >= g.created_at + chrono::Duration::seconds(g.expires_in),
                "refreshed_from": g.previous,
            })
        })
        .collect();
    Json(json!({"live": world.live_grants(), "grants": grants})).into_response()
}

#[derive(Deserialize)]
pub struct Advance {
    secs: u64,
}

pub async fn advance_clock(State(shared): State<Shared>, Json(a): Json<Advance>) -> Response {
    ctl(shared.clone()).advance_clock(Duration::from_secs(a.secs));
    let now = shared.lock().now();
    Json(json!({"now": crate::state::iso(now)})).into_response()
}

pub async fn add_fault(State(shared): State<Shared>, Json(spec): Json<FaultSpec>) -> Response {
    match ctl(shared).add_fault(spec) {
        Ok(()) => (StatusCode::CREATED, Json(json!({"ok": true}))).into_response(),
        Err(e) => json_error(StatusCode::BAD_REQUEST, &e),
    }
}

pub async fn list_faults(State(shared): State<Shared>) -> Response {
    let world = shared.lock();
    let faults: Vec<Value> = world
        .faults
        .iter()
        .map(|f| json!({"kind": f.kind, "remaining": f.remaining, "path_prefix": f.path_prefix}))
        .collect();
    Json(json!({"faults": faults})).into_response()
}

pub async fn clear_faults(State(shared): State<Shared>) -> Response {
    ctl(shared).clear_faults();
    StatusCode::NO_CONTENT.into_response()
}

pub async fn requests(
    State(shared): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let since: u64 = q.get("since").and_then(|s| s.parse().ok()).unwrap_or(0);
    let world = shared.lock();
    let entries: Vec<&RequestLogEntry> =
        world.request_log.iter().filter(|r| r.seq > since).collect();
    Json(json!({"requests": entries})).into_response()
}

pub async fn clear_requests(State(shared): State<Shared>) -> Response {
    ctl(shared).clear_requests();
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /_sim/webhooks`: every webhook delivery attempt made so far.
pub async fn webhooks(State(shared): State<Shared>) -> Json<Vec<crate::webhooks::Delivery>> {
    Json(shared.lock().webhook_log.clone())
}

/// `POST /_sim/tokens/issue`: a practitioner's access token, as a sign-in
/// gives (scripts/relay-dev.sh subscribes to the relay with it).
pub async fn issue_token(State(shared): State<Shared>) -> Json<Value> {
    let token = shared.lock().issue_grant(None).access_token;
    Json(json!({ "access_token": token }))
}
