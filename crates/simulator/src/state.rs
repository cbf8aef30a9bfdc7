//! The simulator's in-memory world: clinic, patients, lab orders, events,
//! OAuth codes and grants, faults and the request log.
//!
//! Everything lives behind one mutex ([`crate::Shared`]); every operation is a
//! short, synchronous method here so the HTTP handlers, the control API and
//! in-process tests all mutate the world the same way.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use rand::distr::{Alphanumeric, SampleString};
use serde::Serialize;
use serde_json::{json, Value};

use crate::faults::FaultRule;
use crate::SimConfig;

/// The ten lab-order states Fullscript documents, in lifecycle order.
pub const DOCUMENTED_STATES: [&str; 10] = [
    "not_purchased",
    "purchased",
    "schedule_appointment",
    "upcoming_appointment",
    "processing",
    "partial_results",
    "results_ready",
    "results_amended",
    "interpretation_ready",
    "interpretation_shared",
];

/// States that raise a `lab_order.updated` event (documented: result states only).
pub fn is_event_state(state: &str) -> bool {
    matches!(
        state,
        "partial_results" | "results_ready" | "results_amended"
    )
}

/// Webhook/event payloads use the legacy names for two states.
pub fn legacy_name(state: &str) -> &str {
    match state {
        "partial_results" => "results_received",
        "results_ready" => "all_results_received",
        other => other,
    }
}

/// How the simulated API renders lab orders. The real shape is unknown, so
/// tests flip these to prove the client tolerates every documented variant.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ApiShape {
    /// Use the legacy webhook names (`results_received`, `all_results_received`) in REST responses.
    pub legacy_state_names: bool,
    /// Name of the state field in REST responses: `state` (default) or `status`.
    pub state_field: String,
    /// Root key of the lab order list: `lab_orders` (default) or `orders`.
    pub list_root: String,
    /// Root key of the events list: `events` (default) or `lab_order_events`.
    pub events_root: String,
    /// When false, `GET /api/events/lab_orders` answers 403 (e.g. a CA clinic, or a missing scope).
    pub events_enabled: bool,
    /// Include `tests[]`/`results[]` in list items (details always have them).
    pub list_includes_results: bool,
    /// Wrap token responses in `{"oauth": …}` (documented) or answer the standard unwrapped shape.
    pub wrap_token_response: bool,
    /// `created_at` in token responses as ISO-8601 (documented) or epoch seconds.
    pub token_created_at_epoch: bool,
    /// Timestamps of orders, results and events: `iso` (default), `epoch_s`,
    /// `epoch_ms`, `epoch_s_string` (a numeric string) or `none` (left out).
    pub timestamps: String,
    /// The same, for list items only (the detail and events keep `timestamps`).
    pub list_timestamps: Option<String>,
    /// Result document links are pre-signed: a new query string on every answer.
    pub presigned_links: bool,
    /// The events feed answers 400 to any of its optional parameters
    /// (`created_at`, `sort_by`, `order_by`): only pagination is accepted.
    pub events_reject_optional_params: bool,
    /// What the order list does with `sort_by=updated_at&order_by=DESC|ASC`
    /// (not documented for it).
    pub orders_sort: OrdersSort,
}

/// What the simulated order list does with the sort parameters the
/// incremental sweep sends (Fullscript documents them for events only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrdersSort {
    /// Sorted as asked.
    #[default]
    Honour,
    /// Accepted, and answered in creation order all the same.
    Ignore,
    /// Answered 400.
    Refuse,
}

impl Default for ApiShape {
    fn default() -> Self {
        ApiShape {
            legacy_state_names: false,
            state_field: "state".into(),
            list_root: "lab_orders".into(),
            events_root: "events".into(),
            events_enabled: true,
            list_includes_results: true,
            wrap_token_response: true,
            token_created_at_epoch: false,
            timestamps: "iso".into(),
            list_timestamps: None,
            presigned_links: false,
            events_reject_optional_params: false,
            orders_sort: OrdersSort::Honour,
        }
    }
}

/// A timestamp in one of the formats a real API might use.
pub fn stamp(t: DateTime<Utc>, format: &str) -> Value {
    match format {
        "epoch_s" => json!(t.timestamp()),
        "epoch_ms" => json!(t.timestamp_millis()),
        "epoch_s_string" => json!(t.timestamp().to_string()),
        "none" => Value::Null,
        _ => json!(iso(t)),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Patient {
    pub id: String,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LabTest {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LabResult {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub amended: bool,
    /// A result document link; only present when a test asked for one.
    pub pdf_url: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LabOrder {
    pub id: String,
    pub name: String,
    pub patient_id: String,
    pub lab_company: String,
    pub tests: Vec<LabTest>,
    pub results: Vec<LabResult>,
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The clinic the order belongs to (only its practitioners' tokens see it).
    pub clinic_id: String,
    /// When set, the order is rendered with this raw JSON instead (a "bad record" for tolerance tests).
    #[serde(skip)]
    pub raw_override: Option<Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LabEvent {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub order_id: String,
    pub state: String,
    pub clinic_id: String,
}

#[derive(Debug, Clone)]
pub struct AuthCode {
    pub redirect_uri: String,
    pub created_at: DateTime<Utc>,
    pub used: bool,
    pub code_challenge: Option<String>,
    pub grant_ids: Vec<u64>,
}

/// One issued access/refresh token pair (Doorkeeper keeps both on one record).
#[derive(Debug, Clone)]
pub struct Grant {
    pub id: u64,
    pub access_token: String,
    pub refresh_token: String,
    pub created_at: DateTime<Utc>,
    pub expires_in: i64,
    pub revoked: bool,
    pub access_used: bool,
    /// The grant this one was refreshed from: its refresh token stays valid
    /// until this grant's access token is first used (the documented grace rule).
    pub previous: Option<u64>,
    /// A grant that was refreshed already (its successor).
    pub successor: Option<u64>,
    /// Whose sign-in this is: the clinic and practitioner signing in at the time.
    pub account: ClinicAccount,
}

/// A clinic and the practitioner who signs in for it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ClinicAccount {
    pub clinic_id: String,
    pub clinic_name: String,
    pub practitioner_id: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RequestLogEntry {
    pub seq: u64,
    pub at: String,
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
    pub request_id: String,
    /// For `POST /api/oauth/token`: the grant type asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_type: Option<String>,
    /// For `POST /api/oauth/revoke`: which kind of token was revoked (`access`, `refresh`, `unknown`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
    /// An injected fault applied to this request, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

#[derive(Debug, Clone)]
pub struct PendingAuthorization {
    pub redirect_uri: String,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
}

/// Why a token could not be used or refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    Unknown,
    Expired,
    Revoked,
}

impl TokenProblem {
    pub fn description(self) -> &'static str {
        match self {
            TokenProblem::Unknown => "The access token is invalid",
            TokenProblem::Expired => "The access token expired",
            TokenProblem::Revoked => "The access token was revoked",
        }
    }
}

pub struct World {
    pub config: SimConfig,
    /// `http://127.0.0.1:PORT`, known once the listener is bound.
    pub base_url: String,
    pub shape: ApiShape,
    pub clock_offset: chrono::Duration,
    pub clinic_id: String,
    pub clinic_name: String,
    pub practitioner_id: String,
    /// The practitioner who signs in: (first name, last name, email).
    pub practitioner_name: (String, String, String),
    pub patients: BTreeMap<String, Patient>,
    /// Orders in creation order (the list endpoint's order).
    pub orders: Vec<LabOrder>,
    pub order_index: HashMap<String, usize>,
    pub events: Vec<LabEvent>,
    pub codes: HashMap<String, AuthCode>,
    pub pending: HashMap<String, PendingAuthorization>,
    pub grants: HashMap<u64, Grant>,
    pub access_index: HashMap<String, u64>,
    pub refresh_index: HashMap<String, u64>,
    pub next_grant: u64,
    pub faults: Vec<FaultRule>,
    pub rate_window: VecDeque<Instant>,
    pub request_log: Vec<RequestLogEntry>,
    pub next_seq: u64,
    /// Requests being answered right now.
    pub in_flight: usize,
    /// Webhook deliveries made (with `--webhook-url`).
    pub webhook_log: Vec<crate::webhooks::Delivery>,
}

pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn random_token(len: usize) -> String {
    Alphanumeric
        .sample_string(&mut rand::rng(), len)
        .to_lowercase()
}

impl World {
    pub fn new(config: SimConfig) -> World {
        World {
            config,
            base_url: String::new(),
            shape: ApiShape::default(),
            clock_offset: chrono::Duration::zero(),
            clinic_id: "5b0e8a3c-7d2f-4c1e-9a6b-3f2d1c0e9b8a".into(),
            clinic_name: "Maple Grove Integrative Health".into(),
            practitioner_id: "bad7f9c6-dfd5-4227-9611-aac387331801".into(),
            practitioner_name: (
                "Evelyn".into(),
                "Thorne".into(),
                "e.thorne@maplegrove.example".into(),
            ),
            patients: BTreeMap::new(),
            orders: Vec::new(),
            order_index: HashMap::new(),
            events: Vec::new(),
            codes: HashMap::new(),
            pending: HashMap::new(),
            grants: HashMap::new(),
            access_index: HashMap::new(),
            refresh_index: HashMap::new(),
            next_grant: 1,
            faults: Vec::new(),
            rate_window: VecDeque::new(),
            request_log: Vec::new(),
            next_seq: 1,
            in_flight: 0,
            webhook_log: Vec::new(),
        }
    }

    /// The simulator's notion of now (real time plus any `/_sim/clock/advance`).
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.clock_offset
    }

    // ---------------------------------------------------------------- patients, orders

    pub fn add_patient(&mut self, first_name: &str, last_name: &str) -> Patient {
        let id = uuid::Uuid::new_v4().to_string();
        self.add_patient_with_id(&id, first_name, last_name)
    }

    pub fn add_patient_with_id(&mut self, id: &str, first_name: &str, last_name: &str) -> Patient {
        let patient = Patient {
            id: id.to_string(),
            first_name: first_name.to_string(),
            last_name: last_name.to_string(),
            email: format!(
                "{}.{}@example.invalid",
                first_name.to_lowercase(),
                last_name.to_lowercase()
            ),
        };
        self.patients.insert(patient.id.clone(), patient.clone());
        patient
    }

    pub fn add_order(&mut self, spec: NewOrder) -> Result<LabOrder, String> {
        if !self.patients.contains_key(&spec.patient_id) {
            return Err(format!("unknown patient {}", spec.patient_id));
        }
        let now = self.now();
        let id = spec.id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        if self.order_index.contains_key(&id) {
            return Err(format!("order {id} exists"));
        }
        let test_names = if spec.tests.is_empty() {
            vec![spec.name.clone()]
        } else {
            spec.tests.clone()
        };
        let order = LabOrder {
            id: id.clone(),
            name: spec.name,
            patient_id: spec.patient_id,
            lab_company: spec.lab_company,
            tests: test_names
                .into_iter()
                .map(|name| LabTest {
                    id: uuid::Uuid::new_v4().to_string(),
                    name,
                })
                .collect(),
            results: Vec::new(),
            state: "purchased".into(),
            created_at: now,
            updated_at: now,
            clinic_id: self.clinic_id.clone(),
            raw_override: None,
        };
        self.order_index.insert(id.clone(), self.orders.len());
        self.orders.push(order);
        let state = spec.state.unwrap_or_else(|| "purchased".into());
        if state != "purchased" {
            // Reaching a result state directly still fills in results, but a
            // freshly created order raises no event: it did not *change*.
            self.apply_state(&id, &state, false, false)?;
        }
        Ok(self.orders[self.order_index[&id]].clone())
    }

    pub fn order(&self, id: &str) -> Option<&LabOrder> {
        self.order_index.get(id).map(|i| &self.orders[*i])
    }

    fn order_mut(&mut self, id: &str) -> Result<&mut LabOrder, String> {
        match self.order_index.get(id) {
            Some(i) => Ok(&mut self.orders[*i]),
            None => Err(format!("unknown lab order {id}")),
        }
    }

    /// Move an order to `state`, filling in results the way a lab would, and
    /// raise a `lab_order.updated` event for result states.
    pub fn set_state(
        &mut self,
        id: &str,
        state: &str,
        with_document: bool,
    ) -> Result<LabOrder, String> {
        self.apply_state(id, state, true, with_document)?;
        Ok(self
            .order(id)
            .cloned()
            .expect("order exists after apply_state"))
    }

    fn apply_state(
        &mut self,
        id: &str,
        state: &str,
        raise_event: bool,
        with_document: bool,
    ) -> Result<(), String> {
        if state.is_empty() || state.len() > 64 {
            return Err("state must be 1 to 64 characters".into());
        }
        let now = self.now();
        let base = self.base_url.clone();
        let order = self.order_mut(id)?;
        let doc_link = |result_id: &str| -> Option<String> {
            with_document.then(|| format!("{base}/labs/documents/{result_id}.pdf"))
        };
        match state {
            "partial_results" => {
                // One more test gets its result (at least one).
                let covered = order.results.len();
                let name = order
                    .tests
                    .get(covered)
                    .map(|t| t.name.clone())
                    .unwrap_or_else(|| order.name.clone());
                if covered < order.tests.len().max(1) {
                    let rid = uuid::Uuid::new_v4().to_string();
                    order.results.push(LabResult {
                        pdf_url: doc_link(&rid),
                        id: rid,
                        name,
                        created_at: now,
                        updated_at: now,
                        amended: false,
                    });
                }
            }
            "results_ready" => {
                let have = order.results.len();
                let missing: Vec<String> = order
                    .tests
                    .iter()
                    .skip(have)
                    .map(|t| t.name.clone())
                    .collect();
                for name in missing {
                    let rid = uuid::Uuid::new_v4().to_string();
                    order.results.push(LabResult {
                        pdf_url: doc_link(&rid),
                        id: rid,
                        name,
                        created_at: now,
                        updated_at: now,
                        amended: false,
                    });
                }
                if order.results.is_empty() {
                    let rid = uuid::Uuid::new_v4().to_string();
                    order.results.push(LabResult {
                        pdf_url: doc_link(&rid),
                        id: rid,
                        name: order.name.clone(),
                        created_at: now,
                        updated_at: now,
                        amended: false,
                    });
                }
            }
            "results_amended" => {
                // An amendment publishes a corrected report: a new result.
                let rid = uuid::Uuid::new_v4().to_string();
                let n = order.results.iter().filter(|r| r.amended).count() + 1;
                order.results.push(LabResult {
                    pdf_url: doc_link(&rid),
                    id: rid,
                    name: format!("{} (amended report {n})", order.name),
                    created_at: now,
                    updated_at: now,
                    amended: true,
                });
            }
            _ => {}
        }
        order.state = state.to_string();
        order.updated_at = now;
        if raise_event && is_event_state(state) {
            let clinic_id = order.clinic_id.clone();
            self.events.push(LabEvent {
                id: uuid::Uuid::new_v4().to_string(),
                created_at: now,
                order_id: id.to_string(),
                state: state.to_string(),
                clinic_id,
            });
        }
        Ok(())
    }

    /// A new `lab_order.updated` event for an order in its current state,
    /// with nothing else about it changed but its time (an amendment
    /// Fullscript announces without new results in the response).
    pub fn event_only(&mut self, id: &str) -> Result<(), String> {
        let now = self.now();
        let order = self.order_mut(id)?;
        order.updated_at = now;
        let (state, clinic_id) = (order.state.clone(), order.clinic_id.clone());
        self.events.push(LabEvent {
            id: uuid::Uuid::new_v4().to_string(),
            created_at: now,
            order_id: id.to_string(),
            state,
            clinic_id,
        });
        Ok(())
    }

    /// Replace an order's JSON with something arbitrary (a malformed record).
    pub fn corrupt_order(&mut self, id: &str, raw: Value) -> Result<(), String> {
        self.order_mut(id)?.raw_override = Some(raw);
        Ok(())
    }

    pub fn restore_order(&mut self, id: &str) -> Result<(), String> {
        self.order_mut(id)?.raw_override = None;
        Ok(())
    }

    pub fn remove_order(&mut self, id: &str) -> Result<(), String> {
        let idx = *self
            .order_index
            .get(id)
            .ok_or_else(|| format!("unknown lab order {id}"))?;
        self.orders.remove(idx);
        self.order_index = self
            .orders
            .iter()
            .enumerate()
            .map(|(i, o)| (o.id.clone(), i))
            .collect();
        Ok(())
    }

    // ---------------------------------------------------------------- rendering

    fn state_value(&self, state: &str) -> String {
        if self.shape.legacy_state_names {
            legacy_name(state).to_string()
        } else {
            state.to_string()
        }
    }

    pub fn order_json(&self, order: &LabOrder, full: bool) -> Value {
        if let Some(raw) = &order.raw_override {
            return raw.clone();
        }
        let patient = self.patients.get(&order.patient_id);
        let format = match (&self.shape.list_timestamps, full) {
            (Some(f), false) => f.as_str(),
            _ => self.shape.timestamps.as_str(),
        };
        let mut v = json!({
            "id": order.id,
            "name": order.name,
            "patient_id": order.patient_id,
            "practitioner_id": self.practitioner_id,
            "first_name": patient.map(|p| p.first_name.clone()),
            "last_name": patient.map(|p| p.last_name.clone()),
            "email": patient.map(|p| p.email.clone()),
            "lab_company": { "name": order.lab_company },
            "created_at": stamp(order.created_at, format),
            "updated_at": stamp(order.updated_at, format),
        });
        let field = if self.shape.state_field == "status" {
            "status"
        } else {
            "state"
        };
        v[field] = Value::String(self.state_value(&order.state));
        if full || self.shape.list_includes_results {
            v["tests"] = Value::Array(
                order
                    .tests
                    .iter()
                    .map(|t| json!({"id": t.id, "name": t.name}))
                    .collect(),
            );
            v["results"] = Value::Array(
                order
                    .results
                    .iter()
                    .map(|r| {
                        let mut rv = json!({
                            "id": r.id,
                            "name": r.name,
                            "created_at": stamp(r.created_at, format),
                            "updated_at": stamp(r.updated_at, format),
                            "amended": r.amended,
                        });
                        if let Some(url) = &r.pdf_url {
                            let url = if self.shape.presigned_links {
                                format!(
                                    "{url}?X-Amz-Signature={}&X-Amz-Expires=300",
                                    random_token(24)
                                )
                            } else {
                                url.clone()
                            };
                            rv["pdf_url"] = Value::String(url);
                        }
                        rv
                    })
                    .collect(),
            );
        }
        v
    }

    pub fn event_json(&self, event: &LabEvent) -> Value {
        let order = self.order(&event.order_id);
        let patient = order.and_then(|o| self.patients.get(&o.patient_id));
        json!({
            "id": event.id,
            "type": "lab_order.updated",
            "created_at": stamp(event.created_at, &self.shape.timestamps),
            "clinic_id": event.clinic_id,
            "data": {
                "lab_order": {
                    "id": event.order_id,
                    "practitioner_id": self.practitioner_id,
                    "patient_id": order.map(|o| o.patient_id.clone()),
                    "first_name": patient.map(|p| p.first_name.clone()),
                    "last_name": patient.map(|p| p.last_name.clone()),
                    "email": patient.map(|p| p.email.clone()),
                    // Events carry the legacy webhook names, as documented.
                    "status": legacy_name(&event.state),
                }
            }
        })
    }

    // ---------------------------------------------------------------- OAuth

    pub fn issue_code(&mut self, redirect_uri: &str, code_challenge: Option<String>) -> String {
        let code = random_token(40);
        let created_at = self.now();
        self.codes.insert(
            code.clone(),
            AuthCode {
                redirect_uri: redirect_uri.to_string(),
                created_at,
                used: false,
                code_challenge,
                grant_ids: Vec::new(),
            },
        );
        code
    }

    /// The clinic a new sign-in is for (what the consent page signs in as).
    pub fn current_account(&self) -> ClinicAccount {
        ClinicAccount {
            clinic_id: self.clinic_id.clone(),
            clinic_name: self.clinic_name.clone(),
            practitioner_id: self.practitioner_id.clone(),
        }
    }

    /// From now on, sign-ins are for another clinic (a second practitioner
    /// account); new orders belong to it. Answers its id.
    pub fn switch_clinic(&mut self, name: &str) -> String {
        self.clinic_id = uuid::Uuid::new_v4().to_string();
        self.clinic_name = name.to_string();
        self.practitioner_id = uuid::Uuid::new_v4().to_string();
        self.practitioner_name = (
            "Malik".into(),
            "Osei".into(),
            "m.osei@clinic.example".into(),
        );
        self.clinic_id.clone()
    }

    pub fn issue_grant(&mut self, previous: Option<u64>) -> Grant {
        let account = previous
            .and_then(|p| self.grants.get(&p))
            .map(|g| g.account.clone())
            .unwrap_or_else(|| self.current_account());
        let id = self.next_grant;
        self.next_grant += 1;
        let grant = Grant {
            id,
            access_token: random_token(64),
            refresh_token: random_token(64),
            created_at: self.now(),
            expires_in: self.config.access_token_ttl.as_secs() as i64,
            revoked: false,
            access_used: false,
            previous,
            successor: None,
            account,
        };
        self.access_index.insert(grant.access_token.clone(), id);
        self.refresh_index.insert(grant.refresh_token.clone(), id);
        self.grants.insert(id, grant.clone());
        grant
    }

    fn revoke_grant(&mut self, id: u64) {
        if let Some(g) = self.grants.get_mut(&id) {
            g.revoked = true;
        }
    }

    /// Check a bearer token; on its first use, retire the grant it was
    /// refreshed from. Answers whose sign-in it is.
    pub fn use_access_token(&mut self, token: &str) -> Result<ClinicAccount, TokenProblem> {
        let now = self.now();
        let id = *self.access_index.get(token).ok_or(TokenProblem::Unknown)?;
        let grant = self.grants.get_mut(&id).ok_or(TokenProblem::Unknown)?;
        if grant.revoked {
            return Err(TokenProblem::Revoked);
        }
        if now >= grant.created_at + chrono::Duration::seconds(grant.expires_in) {
            return Err(TokenProblem::Expired);
        }
        let account = grant.account.clone();
        if !grant.access_used {
            grant.access_used = true;
            if let Some(prev) = grant.previous {
                self.revoke_grant(prev);
            }
        }
        Ok(account)
    }

    /// Refresh: a new pair; the old refresh token stays valid until the new access token is used.
    pub fn refresh(&mut self, refresh_token: &str) -> Result<Grant, TokenProblem> {
        let id = *self
            .refresh_index
            .get(refresh_token)
            .ok_or(TokenProblem::Unknown)?;
        let grant = self.grants.get(&id).ok_or(TokenProblem::Unknown)?.clone();
        if grant.revoked {
            return Err(TokenProblem::Revoked);
        }
        // Refreshed before but the successor was never used: the retry the
        // docs allow. The unused successor is dropped in favour of the new one.
        if let Some(succ) = grant.successor {
            self.revoke_grant(succ);
        }
        let new = self.issue_grant(Some(id));
        if let Some(g) = self.grants.get_mut(&id) {
            g.successor = Some(new.id);
        }
        Ok(new)
    }

    /// Revoke by access or refresh token; answers which kind it was.
    pub fn revoke_token(&mut self, token: &str) -> &'static str {
        if let Some(id) = self.access_index.get(token).copied() {
            self.revoke_grant(id);
            "access"
        } else if let Some(id) = self.refresh_index.get(token).copied() {
            self.revoke_grant(id);
            "refresh"
        } else {
            "unknown"
        }
    }

    pub fn expire_access_tokens(&mut self) -> usize {
        let past = self.now() - chrono::Duration::seconds(1);
        let mut n = 0;
        for g in self.grants.values_mut().filter(|g| !g.revoked) {
            g.created_at = past - chrono::Duration::seconds(g.expires_in);
            n += 1;
        }
        n
    }

    pub fn revoke_all_grants(&mut self) -> usize {
        let mut n = 0;
        for g in self.grants.values_mut().filter(|g| !g.revoked) {
            g.revoked = true;
            n += 1;
        }
        n
    }

    pub fn live_grants(&self) -> usize {
        let now = self.now();
        self.grants
            .values()
            .filter(|g| !g.revoked && now < g.created_at + chrono::Duration::seconds(g.expires_in))
            .count()
    }

    // ---------------------------------------------------------------- rate limit, log

    /// Count a request against the rolling window; `Err(retry_after_secs)` when over the limit.
    pub fn rate_check(&mut self) -> Result<(), u64> {
        let now = Instant::now();
        let window = self.config.rate_window;
        while let Some(front) = self.rate_window.front() {
            if now.duration_since(*front) >= window {
                self.rate_window.pop_front();
            } else {
                break;
            }
        }
        if self.rate_window.len() as u32 >= self.config.rate_limit {
            let oldest = self.rate_window.front().copied().unwrap_or(now);
            let wait = window.saturating_sub(now.duration_since(oldest));
            return Err(wait.as_secs().max(1));
        }
        self.rate_window.push_back(now);
        Ok(())
    }

    pub fn log_request(&mut self, mut entry: RequestLogEntry) {
        entry.seq = self.next_seq;
        self.next_seq += 1;
        self.request_log.push(entry);
        // Bounded, so a simulator left running all day stays small.
        if self.request_log.len() > 50_000 {
            self.request_log.drain(..10_000);
        }
    }
}

/// What the control API and tests pass to create an order.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct NewOrder {
    #[serde(default)]
    pub id: Option<String>,
    pub patient_id: String,
    #[serde(default = "default_order_name")]
    pub name: String,
    #[serde(default)]
    pub tests: Vec<String>,
    #[serde(default = "default_lab_company")]
    pub lab_company: String,
    #[serde(default)]
    pub state: Option<String>,
}

fn default_order_name() -> String {
    "Comprehensive Metabolic Panel".into()
}

fn default_lab_company() -> String {
    "Quest Diagnostics".into()
}

impl NewOrder {
    pub fn for_patient(patient_id: &str) -> NewOrder {
        NewOrder {
            id: None,
            patient_id: patient_id.to_string(),
            name: default_order_name(),
            tests: Vec::new(),
            lab_company: default_lab_company(),
            state: None,
        }
    }

    pub fn named(mut self, name: &str, tests: &[&str]) -> NewOrder {
        self.name = name.to_string();
        self.tests = tests.iter().map(|t| t.to_string()).collect();
        self
    }

    pub fn in_state(mut self, state: &str) -> NewOrder {
        self.state = Some(state.to_string());
        self
    }
}

/// Window lengths in the config are plain durations; kept here for `Default`.
pub fn default_rate_window() -> Duration {
    Duration::from_secs(300)
}
