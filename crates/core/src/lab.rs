//! Lab orders as the app understands them, parsed tolerantly from whatever
//! Fullscript sends.
//!
//! The real lab-order schema is not published (see `shared/fullscript-api.md`
//! §4.3 and §10), so parsing accepts every documented variant: `state` or
//! `status`, current or legacy state names, list roots `lab_orders` or
//! `orders`, results under `results` or `lab_results`, names at the root or
//! under `patient`. Unknown fields are ignored; an unknown future state is kept
//! verbatim. Only what the status list needs is kept: ids, the patient's
//! display name, order/test names, state, timestamps and a fingerprint of the
//! results (never the results themselves).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::secret::PatientName;
use crate::timestamp;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LabState {
    NotPurchased,
    Purchased,
    ScheduleAppointment,
    UpcomingAppointment,
    Processing,
    PartialResults,
    ResultsReady,
    ResultsAmended,
    InterpretationReady,
    InterpretationShared,
    /// A state this version does not know, kept verbatim: listed, never alerting.
    Other(String),
}

impl LabState {
    /// Normalise an API or legacy webhook name.
    pub fn parse(raw: &str) -> LabState {
        match raw.trim().to_ascii_lowercase().as_str() {
            "not_purchased" => LabState::NotPurchased,
            "purchased" => LabState::Purchased,
            "schedule_appointment" => LabState::ScheduleAppointment,
            "upcoming_appointment" => LabState::UpcomingAppointment,
            "processing" => LabState::Processing,
            "partial_results" | "results_received" => LabState::PartialResults,
            "results_ready" | "all_results_received" => LabState::ResultsReady,
            "results_amended" => LabState::ResultsAmended,
            "interpretation_ready" => LabState::InterpretationReady,
            "interpretation_shared" => LabState::InterpretationShared,
            _ => LabState::Other(raw.trim().chars().take(MAX_STATE_CHARS).collect()),
        }
    }

    /// The canonical name (stored, sent to the UI); unknown states verbatim.
    pub fn as_str(&self) -> &str {
        match self {
            LabState::NotPurchased => "not_purchased",
            LabState::Purchased => "purchased",
            LabState::ScheduleAppointment => "schedule_appointment",
            LabState::UpcomingAppointment => "upcoming_appointment",
            LabState::Processing => "processing",
            LabState::PartialResults => "partial_results",
            LabState::ResultsReady => "results_ready",
            LabState::ResultsAmended => "results_amended",
            LabState::InterpretationReady => "interpretation_ready",
            LabState::InterpretationShared => "interpretation_shared",
            LabState::Other(s) => s,
        }
    }

    /// The three states that mean results for the practitioner.
    pub fn is_result_state(&self) -> bool {
        matches!(
            self,
            LabState::PartialResults | LabState::ResultsReady | LabState::ResultsAmended
        )
    }

    /// Human label for lists and notifications.
    pub fn label(&self) -> &str {
        match self {
            LabState::NotPurchased => "Not purchased",
            LabState::Purchased => "Purchased",
            LabState::ScheduleAppointment => "Schedule appointment",
            LabState::UpcomingAppointment => "Appointment booked",
            LabState::Processing => "Processing",
            LabState::PartialResults => "Partial results",
            LabState::ResultsReady => "Results ready",
            LabState::ResultsAmended => "Results amended",
            LabState::InterpretationReady => "Ready to interpret",
            LabState::InterpretationShared => "Shared with patient",
            LabState::Other(_) => "Other",
        }
    }

    /// The status list's group for this state.
    pub fn group(&self) -> &'static str {
        match self {
            LabState::ResultsReady => "results_ready",
            LabState::PartialResults => "partial_results",
            LabState::ResultsAmended => "results_amended",
            LabState::Purchased
            | LabState::ScheduleAppointment
            | LabState::UpcomingAppointment
            | LabState::Processing => "in_progress",
            _ => "other",
        }
    }
}

impl Serialize for LabState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for LabState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(LabState::parse(&String::deserialize(d)?))
    }
}

/// A state is a string on the wire (Fullscript's own word, or the app's).
impl schemars::JsonSchema for LabState {
    fn schema_name() -> String {
        "LabState".into()
    }

    fn json_schema(gen: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        String::json_schema(gen)
    }
}

/// What the results of an order look like, without keeping them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultsSummary {
    /// Stable hash of what identifies the results (see [`summarise_results`]):
    /// changes when a result is added or amended, and only then.
    pub fingerprint: String,
    pub count: usize,
    /// The most recent result document link, if the API gives one.
    pub document_url: Option<String>,
}
/// One lab order, reduced to what the app keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct LabOrder {
    pub id: String,
    pub state: LabState,
    pub patient_name: Option<PatientName>,
    /// The order's name, or its tests' names joined, for display.
    pub title: Option<String>,
    pub lab_name: Option<String>,
    pub test_names: Vec<String>,
    /// `None` when the response carried no results field at all (a list item
    /// may omit it): the stored fingerprint is then kept, not reset.
    pub results: Option<ResultsSummary>,
    /// Canonical (see [`timestamp::canonical`]), whatever format Fullscript sent.
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("lab order {id}: {problem}")]
pub struct BadRecord {
    /// The order id when one could be read (safe to log: an opaque UUID).
    pub id: String,
    /// False when the record had no usable id (`id` is then a placeholder).
    pub id_known: bool,
    pub problem: String,
}

/// Display strings (names of patients, orders, tests, labs) are capped, so a
/// hostile or broken answer cannot fill the database, the window or a
/// notification.
pub const MAX_DISPLAY_CHARS: usize = 200;

/// A non-empty string field, trimmed.
fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// A string meant for display: control characters and runs of white space
/// become one space, at most
/// [`MAX_DISPLAY_CHARS`] characters.
pub fn display_text(raw: &str) -> String {
    let spaced: String = raw
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = spaced.split_whitespace().collect::<Vec<_>>().join(" ");
    if clean.chars().count() <= MAX_DISPLAY_CHARS {
        clean.to_string()
    } else {
        let mut cut: String = clean.chars().take(MAX_DISPLAY_CHARS - 1).collect();
        cut.push('…');
        cut
    }
}

fn display_field(v: &Value, key: &str) -> Option<String> {
    str_field(v, key)
        .map(display_text)
        .filter(|s| !s.is_empty())
}

/// Longest id kept: Fullscript's are UUIDs or numbers; anything longer is
/// not an id (and would be stored and compared on every check).
pub const MAX_ID_CHARS: usize = 128;
/// Longest state name kept verbatim (an unknown state is listed as it is).
pub const MAX_STATE_CHARS: usize = 64;
/// Longest document link kept (a longer one is not opened; the results page is).
pub const MAX_URL_CHARS: usize = 4096;

fn id_of(v: &Value) -> Option<String> {
    let id = match v.get("id")? {
        Value::String(s) if !s.trim().is_empty() => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (id.len() <= MAX_ID_CHARS).then_some(id)
}

fn join_name(first: Option<&str>, last: Option<&str>) -> Option<String> {
    let name = [first, last]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    (!name.trim().is_empty()).then(|| display_text(&name))
}

/// Stable 64-bit hash, hex. xxh3 is specified and stable across versions and
/// platforms, so fingerprints survive upgrades.
pub fn fingerprint_bytes(bytes: &[u8]) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(bytes))
}

const DOCUMENT_KEYS: [&str; 5] = ["pdf_url", "document_url", "file_url", "report_url", "url"];

/// A link without its query and fragment: what stays the same when a
/// pre-signed link is signed anew on every response.
pub fn link_identity(link: &str) -> String {
    match url::Url::parse(link) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => link
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

fn flag(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|x| x != 0.0),
        Some(Value::String(s)) => {
            matches!(s.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes")
        }
        _ => false,
    }
}

/// What identifies one result: its id (or name), whether it is amended, its
/// own timestamps (canonical, so ISO and epoch agree) and its document link
/// without the query string. Nothing else: a field that differs between the
/// list and the detail response, or a link signed anew, must not look like
/// an amendment.
fn result_identity(r: &Value) -> String {
    if !r.is_object() {
        // A bare id or name.
        return match r {
            Value::String(s) => s.trim().to_string(),
            other => other.to_string(),
        };
    }
    let id = id_of(r)
        .or_else(|| str_field(r, "name").map(str::to_string))
        .unwrap_or_default();
    // Whole seconds: one response may send epoch seconds where another
    // sends ISO-8601 with milliseconds, for the same instant.
    let stamp = |k: &str| {
        r.get(k)
            .and_then(timestamp::parse)
            .map(|t| t.timestamp().to_string())
            .unwrap_or_default()
    };
    let link = DOCUMENT_KEYS
        .iter()
        .find_map(|k| str_field(r, k))
        .map(link_identity)
        .unwrap_or_default();
    format!(
        "{id}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{link}",
        flag(r.get("amended")),
        stamp("created_at"),
        stamp("updated_at"),
    )
}

/// Summarise `results[]`: the fingerprint covers only what identifies the
/// results (order-insensitive), the link is the newest document's.
pub fn summarise_results(results: &[Value]) -> ResultsSummary {
    let mut identities: Vec<String> = results.iter().map(result_identity).collect();
    identities.sort_unstable();
    let canonical = format!("{}\n{}", identities.len(), identities.join("\n"));
    let mut latest: Option<(Option<chrono::DateTime<chrono::Utc>>, String)> = None;
    for r in results {
        let link = DOCUMENT_KEYS
            .iter()
            .find_map(|k| str_field(r, k))
            .filter(|l| l.len() <= MAX_URL_CHARS);
        if let Some(link) = link {
            let stamp = r
                .get("updated_at")
                .and_then(timestamp::parse)
                .or_else(|| r.get("created_at").and_then(timestamp::parse));
            // Later in the list wins ties: lists are usually oldest first.
            if latest.as_ref().is_none_or(|(s, _)| stamp >= *s) {
                latest = Some((stamp, link.to_string()));
            }
        }
    }
    ResultsSummary {
        fingerprint: fingerprint_bytes(canonical.as_bytes()),
        count: results.len(),
        document_url: latest.map(|(_, l)| l),
    }
}

/// More test names than this are not kept (the list shows a handful).
const MAX_TESTS: usize = 50;

impl LabOrder {
    /// Parse one lab order object (already unwrapped from any root key).
    pub fn from_json(v: &Value) -> Result<LabOrder, BadRecord> {
        let id = id_of(v).ok_or_else(|| BadRecord {
            id: "(no id)".into(),
            id_known: false,
            problem: "missing or overlong id".into(),
        })?;
        let bad = |problem: &str| BadRecord {
            id: id.clone(),
            id_known: true,
            problem: problem.to_string(),
        };
        if !v.is_object() {
            return Err(bad("not an object"));
        }
        let state_value = v
            .get("state")
            .or_else(|| v.get("status"))
            .ok_or_else(|| bad("missing state"))?;
        let state = match state_value {
            Value::String(s) if !s.trim().is_empty() => LabState::parse(s),
            _ => return Err(bad("state is not a string")),
        };

        let patient = v.get("patient").filter(|p| p.is_object());
        let patient_name = join_name(str_field(v, "first_name"), str_field(v, "last_name"))
            .or_else(|| {
                patient
                    .and_then(|p| join_name(str_field(p, "first_name"), str_field(p, "last_name")))
            })
            .or_else(|| display_field(v, "patient_name"))
            .or_else(|| patient.and_then(|p| display_field(p, "name")))
            .map(PatientName::new);

        let tests: Vec<String> = match v.get("tests").or_else(|| v.get("lab_tests")) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|t| {
                    display_field(t, "name")
                        .or_else(|| display_field(t, "test_name"))
                        .or_else(|| t.as_str().map(display_text).filter(|s| !s.is_empty()))
                })
                .take(MAX_TESTS)
                .collect(),
            Some(_) => return Err(bad("tests is not a list")),
        };
        let results = match v.get("results").or_else(|| v.get("lab_results")) {
            None => None,
            Some(Value::Null) => Some(summarise_results(&[])),
            Some(Value::Array(items)) => Some(summarise_results(items)),
            Some(_) => return Err(bad("results is not a list")),
        };
        let lab_name = match v.get("lab_company") {
            Some(Value::String(s)) => Some(display_text(s)).filter(|s| !s.is_empty()),
            Some(obj @ Value::Object(_)) => display_field(obj, "name"),
            _ => None,
        }
        .or_else(|| display_field(v, "lab_company_name"));
        let title = display_field(v, "name")
            .or_else(|| display_field(v, "lab_name"))
            .or_else(|| (!tests.is_empty()).then(|| display_text(&tests.join(", "))));

        Ok(LabOrder {
            id,
            state,
            patient_name,
            title,
            lab_name,
            test_names: tests,
            results,
            updated_at: v.get("updated_at").and_then(timestamp::parse_canonical),
        })
    }

    /// The text that names this order in lists and notifications (no patient data).
    pub fn display_title(&self) -> String {
        display_title(
            self.title.as_deref(),
            &self.test_names,
            self.lab_name.as_deref(),
        )
    }
}

/// The one way an order is named in the list and in notifications: its
/// name, else its tests, else its lab, else "Lab order". Never the patient.
pub fn display_title(title: Option<&str>, test_names: &[String], lab_name: Option<&str>) -> String {
    title
        .map(str::to_string)
        .or_else(|| (!test_names.is_empty()).then(|| display_text(&test_names.join(", "))))
        .or_else(|| lab_name.map(str::to_string))
        .unwrap_or_else(|| "Lab order".to_string())
}

/// Unwrap a detail response: `{"lab_order": {…}}`, `{"order": {…}}`, `{"data": {…}}` or the bare object.
pub fn unwrap_order(body: &Value) -> &Value {
    for key in ["lab_order", "order", "data"] {
        if let Some(inner) = body.get(key).filter(|v| v.is_object()) {
            return inner;
        }
    }
    body
}

/// The items of a list response, whichever root key it uses.
pub fn list_items<'a>(body: &'a Value, roots: &[&str]) -> Option<&'a Vec<Value>> {
    if let Some(items) = body.as_array() {
        return Some(items);
    }
    roots
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_array))
}

pub const ORDER_LIST_ROOTS: [&str; 4] = ["lab_orders", "orders", "data", "items"];
pub const EVENT_LIST_ROOTS: [&str; 4] = ["events", "lab_order_events", "data", "items"];

/// Pagination `meta`; absent means a single page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageMeta {
    pub next_page: Option<u32>,
    pub total_pages: Option<u32>,
}

pub fn page_meta(body: &Value) -> PageMeta {
    let meta = body.get("meta");
    let num = |k: &str| -> Option<u32> {
        meta.and_then(|m| m.get(k)).and_then(|v| match v {
            Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
    };
    PageMeta {
        next_page: num("next_page"),
        total_pages: num("total_pages"),
    }
}

/// A `lab_order.updated` event, reduced to what polling needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabEvent {
    pub id: String,
    /// `None` when missing or unreadable: the event is still processed (its
    /// id de-duplicates it); it only cannot move the cursor.
    pub created_at: Option<DateTime<Utc>>,
    pub order_id: String,
}

impl LabEvent {
    pub fn from_json(v: &Value) -> Result<LabEvent, String> {
        let id = id_of(v).ok_or("event without a usable id")?;
        let created_at = v.get("created_at").and_then(timestamp::parse);
        let data = v.get("data");
        let order_id = data
            .and_then(|d| d.get("lab_order"))
            .and_then(id_of)
            .or_else(|| {
                data.and_then(|d| str_field(d, "lab_order_id"))
                    .map(str::to_string)
            })
            .or_else(|| str_field(v, "lab_order_id").map(str::to_string))
            .or_else(|| v.get("lab_order").and_then(id_of))
            .filter(|o| o.len() <= MAX_ID_CHARS)
            .ok_or_else(|| format!("event {id} names no lab order"))?;
        Ok(LabEvent {
            id,
            created_at,
            order_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn states_normalise_api_and_legacy_names() {
        assert_eq!(
            LabState::parse("results_received"),
            LabState::PartialResults
        );
        assert_eq!(
            LabState::parse("all_results_received"),
            LabState::ResultsReady
        );
        assert_eq!(LabState::parse("Results_Ready"), LabState::ResultsReady);
        assert_eq!(
            LabState::parse("specimen_lost"),
            LabState::Other("specimen_lost".into())
        );
        assert!(!LabState::parse("specimen_lost").is_result_state());
        assert!(!LabState::InterpretationReady.is_result_state());
        assert_eq!(LabState::Processing.group(), "in_progress");
    }

    #[test]
    fn parses_the_simulator_shape() {
        let v = json!({
            "id": "o-1", "state": "results_ready", "name": "Thyroid Panel",
            "first_name": "Priya", "last_name": "Raman",
            "lab_company": {"name": "Access Medical Labs"},
            "tests": [{"id": "t1", "name": "TSH"}, {"id": "t2", "name": "Free T4"}],
            "results": [
                {"id": "r1", "updated_at": "2026-01-01T00:00:00Z", "pdf_url": "https://x/old.pdf"},
                {"id": "r2", "updated_at": "2026-01-02T00:00:00Z", "pdf_url": "https://x/new.pdf"}
            ],
            "updated_at": "2026-01-02T00:00:00Z",
            "some_future_field": {"nested": true}
        });
        let o = LabOrder::from_json(&v).unwrap();
        assert_eq!(o.state, LabState::ResultsReady);
        assert_eq!(o.patient_name.unwrap().expose(), "Priya Raman");
        assert_eq!(o.test_names, ["TSH", "Free T4"]);
        assert_eq!(o.lab_name.as_deref(), Some("Access Medical Labs"));
        let r = o.results.unwrap();
        assert_eq!(r.count, 2);
        assert_eq!(r.document_url.as_deref(), Some("https://x/new.pdf"));
    }

    #[test]
    fn tolerates_variants() {
        let v = json!({"id": 42, "status": "results_received", "patient": {"first_name": "A", "last_name": "B"}});
        let o = LabOrder::from_json(&v).unwrap();
        assert_eq!(o.id, "42");
        assert_eq!(o.state, LabState::PartialResults);
        assert_eq!(o.patient_name.as_ref().unwrap().expose(), "A B");
        assert!(
            o.results.is_none(),
            "no results field: keep the stored fingerprint"
        );
        assert_eq!(o.display_title(), "Lab order");

        let bad = LabOrder::from_json(&json!({"id": "z", "state": {"x": 1}})).unwrap_err();
        assert_eq!(bad.id, "z");
        assert!(
            LabOrder::from_json(&json!({"id": "z", "state": "processing", "results": "no"}))
                .is_err()
        );
        assert!(LabOrder::from_json(&json!({"state": "processing"})).is_err());
    }

    #[test]
    fn fingerprint_changes_with_results_only() {
        let a = LabOrder::from_json(
            &json!({"id": "1", "state": "results_ready", "results": [{"id": "r1"}]}),
        )
        .unwrap();
        let b = LabOrder::from_json(
            &json!({"id": "1", "state": "results_ready", "results": [{"id": "r1"}], "x": 1}),
        )
        .unwrap();
        let c = LabOrder::from_json(
            &json!({"id": "1", "state": "results_ready", "results": [{"id": "r1"}, {"id": "r2"}]}),
        )
        .unwrap();
        assert_eq!(a.results, b.results);
        assert_ne!(
            a.results.unwrap().fingerprint,
            c.results.unwrap().fingerprint
        );
        // Stable across versions: pinned value.
        assert_eq!(
            fingerprint_bytes(b"[]"),
            format!("{:016x}", xxhash_rust::xxh3::xxh3_64(b"[]"))
        );
    }

    #[test]
    fn events_and_lists_in_every_shape() {
        let e = LabEvent::from_json(&json!({
            "id": "e1", "type": "lab_order.updated", "created_at": "2026-01-01T00:00:00Z",
            "data": {"lab_order": {"id": "o1", "status": "results_received"}}
        }))
        .unwrap();
        assert_eq!(e.order_id, "o1");
        let e = LabEvent::from_json(
            &json!({"id": "e2", "created_at": "2026-01-01", "lab_order_id": "o2"}),
        )
        .unwrap();
        assert_eq!(e.order_id, "o2");
        assert!(LabEvent::from_json(&json!({"id": "e3", "created_at": "x"})).is_err());

        let body = json!({"orders": [{"id": "1"}], "meta": {"next_page": 2, "total_pages": "3"}});
        assert_eq!(list_items(&body, &ORDER_LIST_ROOTS).unwrap().len(), 1);
        assert_eq!(
            page_meta(&body),
            PageMeta {
                next_page: Some(2),
                total_pages: Some(3)
            }
        );
        assert_eq!(page_meta(&json!({"lab_orders": []})).next_page, None);
        assert_eq!(unwrap_order(&json!({"lab_order": {"id": "x"}}))["id"], "x");
        assert_eq!(unwrap_order(&json!({"id": "y"}))["id"], "y");
    }

    #[test]
    fn list_and_detail_shapes_of_the_same_order_fingerprint_the_same() {
        // The list: epoch seconds, a freshly signed link, extra fields.
        let list = json!({"id": "o", "state": "results_amended", "results": [
            {"id": "r1", "amended": false, "created_at": 1_795_774_530, "updated_at": 1_795_774_530,
             "pdf_url": "https://files.example/r1.pdf?X-Amz-Signature=aaa&X-Amz-Expires=300"},
            {"id": "r2", "amended": true, "created_at": 1_795_778_130,
             "pdf_url": "https://files.example/r2.pdf?X-Amz-Signature=bbb", "summary": "list only"}
        ]});
        // The detail: ISO strings, another signature, another order, more fields.
        let detail = json!({"lab_order": {"id": "o", "state": "results_amended", "results": [
            {"id": "r2", "amended": "true", "created_at": "2026-11-27T11:15:30.250Z",
             "pdf_url": "https://files.example/r2.pdf?X-Amz-Signature=ccc", "name": "Report",
             "interpretation": {"text": "detail only"}},
            {"id": "r1", "amended": false, "created_at": "2026-11-27T10:15:30Z",
             "updated_at": "2026-11-27T10:15:30.000Z",
             "pdf_url": "https://files.example/r1.pdf?X-Amz-Signature=ddd&X-Amz-Expires=300"}
        ]}});
        let a = LabOrder::from_json(&list).unwrap().results.unwrap();
        let b = LabOrder::from_json(unwrap_order(&detail))
            .unwrap()
            .results
            .unwrap();
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_eq!(a.count, 2);
        // The newest document is chosen, with its (current) signature kept for opening.
        assert_eq!(
            a.document_url.as_deref(),
            Some("https://files.example/r2.pdf?X-Amz-Signature=bbb")
        );

        // What does identify a result still changes it.
        let mut amended_again = list.clone();
        amended_again["results"][0]["amended"] = json!(true);
        let c = LabOrder::from_json(&amended_again)
            .unwrap()
            .results
            .unwrap();
        assert_ne!(a.fingerprint, c.fingerprint);
        let mut new_result = list.clone();
        new_result["results"]
            .as_array_mut()
            .unwrap()
            .push(json!({"id": "r3"}));
        let d = LabOrder::from_json(&new_result).unwrap().results.unwrap();
        assert_ne!(a.fingerprint, d.fingerprint);
        let mut moved = list;
        moved["results"][1]["pdf_url"] = json!("https://files.example/r2-corrected.pdf?sig=1");
        let e = LabOrder::from_json(&moved).unwrap().results.unwrap();
        assert_ne!(a.fingerprint, e.fingerprint);
    }

    #[test]
    fn timestamps_in_any_format_never_make_a_record_unreadable() {
        for stamp in [
            json!(1_795_774_530),
            json!("1795774530000"),
            json!("2026-11-27T10:15:30+00:00"),
            json!("next tuesday"),
            json!(null),
            json!({"weird": true}),
        ] {
            let o = LabOrder::from_json(&json!({
                "id": "o", "state": "results_ready", "updated_at": stamp, "created_at": stamp,
                "results": [{"id": "r", "created_at": stamp}]
            }))
            .unwrap();
            assert_eq!(o.state, LabState::ResultsReady, "{stamp}");
            let e =
                LabEvent::from_json(&json!({"id": "e", "created_at": stamp, "lab_order_id": "o"}))
                    .unwrap();
            assert_eq!(e.order_id, "o");
        }
        let o = LabOrder::from_json(
            &json!({"id": "o", "state": "processing", "updated_at": 1_795_774_530}),
        )
        .unwrap();
        assert_eq!(o.updated_at.as_deref(), Some("2026-11-27T10:15:30.000Z"));
    }

    #[test]
    fn display_strings_are_capped_and_stripped_of_control_characters() {
        let long = "A".repeat(5000);
        let o = LabOrder::from_json(&json!({
            "id": "o", "state": "processing", "name": long, "first_name": "Ada\u{7}\n",
            "last_name": "L", "tests": [{"name": "x".repeat(300)}]
        }))
        .unwrap();
        assert_eq!(o.title.as_ref().unwrap().chars().count(), MAX_DISPLAY_CHARS);
        assert!(o.title.unwrap().ends_with('…'));
        assert_eq!(o.test_names[0].chars().count(), MAX_DISPLAY_CHARS);
        assert_eq!(o.patient_name.unwrap().expose(), "Ada L");
    }
}
