//! Fullscript's webhooks, as the relay receives them: the
//! `Fullscript-Signature` check and the event reduced to what a desktop
//! needs (no patient data). Pure functions: no clock, no network.
//!
//! The signature is `t=<unix seconds>,v1=<hex HMAC-SHA256>` over
//! `"{t}.{raw body}"` keyed with the webhook secret (`shared/fullscript-api.md`
//! §6); compared in constant time, within a tolerance of the relay's clock.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

/// Why a webhook was refused; each is a label of the relay's
/// `fsn_relay_webhooks_refused_total` counter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("no Fullscript-Signature header")]
    NoSignature,
    #[error("the Fullscript-Signature header is not `t=…,v1=…`")]
    MalformedSignature,
    #[error("the signature does not match the body")]
    BadSignature,
    #[error("signed {0} s ago, more than the tolerance")]
    Stale(i64),
    #[error("signed {0} s in the future, more than the tolerance")]
    FromTheFuture(i64),
    #[error("the body is not JSON")]
    NotJson,
    #[error("the body holds no event")]
    NoEvent,
}

impl Refused {
    /// The counter's label.
    pub fn reason(&self) -> &'static str {
        match self {
            Refused::NoSignature => "no_signature",
            Refused::MalformedSignature => "malformed_signature",
            Refused::BadSignature => "bad_signature",
            Refused::Stale(_) => "stale",
            Refused::FromTheFuture(_) => "from_the_future",
            Refused::NotJson => "not_json",
            Refused::NoEvent => "no_event",
        }
    }

    /// Every label, for the metrics page (a counter at zero is shown too).
    pub const ALL: [&'static str; 7] = [
        "no_signature",
        "malformed_signature",
        "bad_signature",
        "stale",
        "from_the_future",
        "not_json",
        "no_event",
    ];
}

/// The longest signature header read.
const MAX_SIGNATURE_HEADER: usize = 1024;

/// Check `Fullscript-Signature` against the raw body. Several `v1` values
/// (a secret being rotated) pass when any one matches.
pub fn verify_signature(
    header: Option<&str>,
    body: &[u8],
    secret: &[u8],
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<(), Refused> {
    let header = header.ok_or(Refused::NoSignature)?;
    if header.len() > MAX_SIGNATURE_HEADER {
        return Err(Refused::MalformedSignature);
    }
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            continue;
        };
        match k.trim() {
            "t" => timestamp = v.trim().parse::<i64>().ok(),
            "v1" => {
                if let Ok(bytes) = hex::decode(v.trim()) {
                    signatures.push(bytes);
                }
            }
            _ => {}
        }
    }
    let t = timestamp.ok_or(Refused::MalformedSignature)?;
    if signatures.is_empty() {
        return Err(Refused::MalformedSignature);
    }
    // The signature first: a stale but genuine request is "stale", a
    // forged one is "bad", whatever its timestamp says.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| Refused::BadSignature)?;
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    let matches = signatures.iter().any(|s| {
        use subtle::ConstantTimeEq;
        s.len() == expected.len() && bool::from(s.as_slice().ct_eq(expected.as_slice()))
    });
    if !matches {
        return Err(Refused::BadSignature);
    }
    let age = now_unix.saturating_sub(t);
    if age > tolerance_secs {
        return Err(Refused::Stale(age));
    }
    if -age > tolerance_secs {
        return Err(Refused::FromTheFuture(-age));
    }
    Ok(())
}

/// The signature header for a body (the simulator and the tests sign with it).
pub fn sign(body: &[u8], secret: &[u8], t: i64) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return format!("t={t},v1="),
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// A webhook event as the relay keeps it: what a desktop needs to know
/// which order to check, and nothing about the patient (no name, no email,
/// no patient id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Fullscript's event id (the de-duplication key).
    pub id: String,
    /// `lab_order.updated`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// RFC 3339 (Fullscript's ISO-8601 or epoch read as the app reads it);
    /// absent when missing or unreadable.
    pub created_at: Option<String>,
    pub clinic_id: String,
    pub practitioner_id: Option<String>,
    pub lab_order_id: String,
    /// The status word, normalised (`partial_results`, `results_ready`,
    /// `results_amended`; an unknown one verbatim, capped).
    pub status: Option<String>,
}

/// What a body holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// An event to store and push.
    Event(StoredEvent),
    /// An event the relay cannot route to any desktop (no clinic, no lab
    /// order): acknowledged (a retry would not make it readable, and
    /// failing deliveries get the whole endpoint disabled), counted and
    /// logged without its contents.
    Unroutable {
        id: Option<String>,
        why: &'static str,
    },
}

/// The longest id or word kept.
const MAX_FIELD_CHARS: usize = 200;

fn text(v: Option<&Value>) -> Option<String> {
    let s = match v? {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!s.is_empty() && s.chars().count() <= MAX_FIELD_CHARS).then_some(s)
}

/// Read a webhook body: `{"event_payload": {"event": …}}` or `{"event": …}`
/// (the documentation shows both), every field tolerated missing or of
/// another type.
pub fn parse_event(body: &[u8]) -> Result<Parsed, Refused> {
    let v: Value = serde_json::from_slice(body).map_err(|_| Refused::NotJson)?;
    let event = v
        .get("event_payload")
        .and_then(|p| p.get("event"))
        .or_else(|| v.get("event"))
        .filter(|e| e.is_object())
        .ok_or(Refused::NoEvent)?;
    // The event's id, order and time exactly as the app's own events-feed
    // parser reads them (ids as strings or numbers, the order under
    // `data.lab_order` or beside it, ISO-8601 or epoch times).
    let read = match fsn_core::lab::LabEvent::from_json(event) {
        Ok(e) => e,
        Err(_) => {
            return Ok(Parsed::Unroutable {
                id: text(event.get("id")),
                why: "no usable event id or lab order id",
            })
        }
    };
    let data = event.get("data");
    let order = data.and_then(|d| d.get("lab_order"));
    let clinic_id = text(event.get("clinic_id"))
        .or_else(|| text(order.and_then(|o| o.get("clinic_id"))))
        .or_else(|| text(data.and_then(|d| d.get("clinic_id"))));
    let Some(clinic_id) = clinic_id else {
        return Ok(Parsed::Unroutable {
            id: Some(read.id),
            why: "no clinic id",
        });
    };
    let status = text(order.and_then(|o| o.get("status").or_else(|| o.get("state"))))
        .map(|s| fsn_core::lab::LabState::parse(&s).as_str().to_string());
    Ok(Parsed::Event(StoredEvent {
        id: read.id,
        kind: text(event.get("type")).unwrap_or_else(|| "lab_order.updated".into()),
        created_at: read
            .created_at
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        clinic_id,
        practitioner_id: text(order.and_then(|o| o.get("practitioner_id"))),
        lab_order_id: read.order_id,
        status,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test";
    const NOW: i64 = 1_800_000_000;

    fn documented_body() -> Vec<u8> {
        serde_json::json!({"event_payload": {"event": {
            "id": "evt-1",
            "type": "lab_order.updated",
            "created_at": "2025-01-01T05:00:00.000Z",
            "clinic_id": "clinic-a",
            "data": {"lab_order": {
                "id": "order-9",
                "practitioner_id": "prac-1",
                "patient_id": "patient-5",
                "first_name": "John",
                "last_name": "Doe",
                "email": "john.doe@mail.com",
                "status": "all_results_received"
            }}
        }}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_genuine_signature_within_five_minutes_passes() {
        let body = documented_body();
        let header = sign(&body, SECRET, NOW - 60);
        assert_eq!(
            verify_signature(Some(&header), &body, SECRET, NOW, 300),
            Ok(())
        );
    }

    #[test]
    fn a_forged_stale_future_or_malformed_signature_is_refused_with_its_reason() {
        let body = documented_body();
        let other = sign(&body, b"another secret", NOW);
        assert_eq!(
            verify_signature(Some(&other), &body, SECRET, NOW, 300),
            Err(Refused::BadSignature)
        );
        let tampered = sign(b"{}", SECRET, NOW);
        assert_eq!(
            verify_signature(Some(&tampered), &body, SECRET, NOW, 300),
            Err(Refused::BadSignature)
        );
        let old = sign(&body, SECRET, NOW - 360);
        assert_eq!(
            verify_signature(Some(&old), &body, SECRET, NOW, 300),
            Err(Refused::Stale(360))
        );
        let future = sign(&body, SECRET, NOW + 3600);
        assert_eq!(
            verify_signature(Some(&future), &body, SECRET, NOW, 300),
            Err(Refused::FromTheFuture(3600))
        );
        for bad in ["", "v1=abc", "t=now,v1=00", "t=1", "x"] {
            assert_eq!(
                verify_signature(Some(bad), &body, SECRET, NOW, 300),
                Err(Refused::MalformedSignature),
                "{bad}"
            );
        }
        assert_eq!(
            verify_signature(None, &body, SECRET, NOW, 300),
            Err(Refused::NoSignature)
        );
    }

    #[test]
    fn a_rotated_secret_passes_when_any_v1_matches() {
        let body = documented_body();
        let good = sign(&body, SECRET, NOW);
        let v1 = good.split("v1=").nth(1).unwrap();
        let header = format!("t={NOW},v1={},v1={v1}", "00".repeat(32));
        assert_eq!(
            verify_signature(Some(&header), &body, SECRET, NOW, 300),
            Ok(())
        );
    }

    #[test]
    fn the_stored_event_keeps_no_patient_data() {
        let Parsed::Event(e) = parse_event(&documented_body()).unwrap() else {
            panic!("an event");
        };
        assert_eq!(e.id, "evt-1");
        assert_eq!(e.clinic_id, "clinic-a");
        assert_eq!(e.lab_order_id, "order-9");
        assert_eq!(e.practitioner_id.as_deref(), Some("prac-1"));
        assert_eq!(
            e.status.as_deref(),
            Some("results_ready"),
            "both vocabularies"
        );
        let stored = serde_json::to_string(&e).unwrap();
        for patient in ["John", "Doe", "john.doe", "patient-5"] {
            assert!(!stored.contains(patient), "{patient} kept: {stored}");
        }
    }

    #[test]
    fn both_body_roots_and_odd_fields_are_read() {
        let bare = serde_json::json!({"event": {"id": 42, "clinic_id": "c",
            "created_at": 1_764_756_000,
            "data": {"lab_order": {"id": 7, "status": "results_received"}}}});
        let Parsed::Event(e) = parse_event(bare.to_string().as_bytes()).unwrap() else {
            panic!("an event");
        };
        assert_eq!((e.id.as_str(), e.lab_order_id.as_str()), ("42", "7"));
        assert_eq!(e.status.as_deref(), Some("partial_results"));
        assert_eq!(e.kind, "lab_order.updated");
        assert_eq!(
            e.created_at.as_deref(),
            Some("2025-12-03T10:00:00.000Z"),
            "an epoch time is read as a time"
        );
        assert_eq!(parse_event(b"not json"), Err(Refused::NotJson));
        let odd_time = serde_json::json!({"event": {"id": "e", "clinic_id": "c", "created_at": {"x": 1},
            "data": {"lab_order": {"id": "o"}}}});
        let Parsed::Event(e) = parse_event(odd_time.to_string().as_bytes()).unwrap() else {
            panic!("an unreadable time does not make the event unreadable");
        };
        assert_eq!(e.created_at, None);
        assert_eq!(parse_event(b"{\"hello\": 1}"), Err(Refused::NoEvent));
        let no_clinic =
            serde_json::json!({"event": {"id": "e", "data": {"lab_order": {"id": "o"}}}});
        assert_eq!(
            parse_event(no_clinic.to_string().as_bytes()),
            Ok(Parsed::Unroutable {
                id: Some("e".into()),
                why: "no clinic id"
            })
        );
        let no_order = serde_json::json!({"event": {"id": "e", "clinic_id": "c", "data": {}}});
        assert_eq!(
            parse_event(no_order.to_string().as_bytes()),
            Ok(Parsed::Unroutable {
                id: Some("e".into()),
                why: "no usable event id or lab order id"
            })
        );
    }
}
