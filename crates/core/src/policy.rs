//! Notification policy as data: the core decides *what* to tell the user
//! (one alert or a summary; title, body; which URL "open results" opens),
//! and a [`crate::notifier::Notifier`] only shows it.
//!
//! Notifications appear on lock screens and in notification centres, so the
//! default text names the lab test, never the patient; `notification_detail`
//! chooses between the patient and the test (`full`), the test (`test`, the
//! default) and nothing at all (`generic`). Summaries never name patients or
//! tests. All text is plain: [`plain_text`] escapes markup for daemons that
//! interpret it, drops control characters and caps lengths.

use serde::Serialize;
use url::Url;

use crate::config::{Endpoints, NotificationDetail};
use crate::lab::LabState;
use crate::opener::UrlGuard;
use crate::store::PendingAlert;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NotificationKind {
    /// One order's results; a click opens them and highlights the order.
    Result { order_id: String },
    /// Several at once; a click opens the window on the new results.
    Summary { order_ids: Vec<String> },
    /// What arrived outside clinic hours or during a pause, announced at
    /// the next opening or when the pause ends; a click opens the window on
    /// the new results.
    Digest { order_ids: Vec<String> },
    /// "Send a test notification": shown through the same path as results.
    Test,
    /// Fullscript ended the session.
    SignInAgain,
    /// Something about the app itself (e.g. "still running in the tray").
    Info,
}

impl NotificationKind {
    /// For logs (never the text, which may name a test).
    pub fn label(&self) -> &'static str {
        match self {
            NotificationKind::Result { .. } => "result",
            NotificationKind::Summary { .. } => "summary",
            NotificationKind::Digest { .. } => "digest",
            NotificationKind::Test => "test",
            NotificationKind::SignInAgain => "sign_in_again",
            NotificationKind::Info => "info",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    pub kind: NotificationKind,
    pub title: String,
    pub body: String,
    /// What a click opens in the browser (already checked against the allowed hosts).
    #[serde(skip)]
    pub url: Option<Url>,
    pub alert_ids: Vec<i64>,
    pub sound: bool,
    /// Buttons besides the default click (where the daemon shows them).
    pub actions: Vec<NotificationAction>,
}

/// What the practitioner can do from a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationAction {
    /// The click on the notification itself: open the results.
    Open,
    /// Mark the result reviewed without opening anything.
    MarkReviewed,
}

impl NotificationAction {
    /// The action's key on the wire (freedesktop `ActionInvoked`).
    pub fn key(self) -> &'static str {
        match self {
            NotificationAction::Open => "default",
            NotificationAction::MarkReviewed => "mark-reviewed",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            NotificationAction::Open => "Open results",
            NotificationAction::MarkReviewed => "Mark reviewed",
        }
    }

    pub fn from_key(key: &str) -> Option<NotificationAction> {
        [NotificationAction::Open, NotificationAction::MarkReviewed]
            .into_iter()
            .find(|a| a.key() == key)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub detail: NotificationDetail,
    pub summary_threshold: usize,
    pub sound: bool,
}

/// Longest summary (title) a notification shows, in characters.
pub const MAX_SUMMARY_CHARS: usize = 80;
/// Longest body a notification shows, in characters.
pub const MAX_BODY_CHARS: usize = 240;

/// Text as a notification daemon must show it: control characters become
/// spaces, at most `max` characters (an ellipsis marks a cut), and, for
/// daemons that interpret markup in the body (freedesktop `body-markup`),
/// `&`, `<` and `>` escaped so a test named `CBC w/ Diff & Platelets` shows
/// as written and `<a href>` or `<img src>` from an API answer stays text.
pub fn plain_text(raw: &str, max: usize, escape_markup: bool) -> String {
    let clean: String = raw
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = clean.trim();
    let capped = if clean.chars().count() > max {
        let mut cut: String = clean.chars().take(max.saturating_sub(1)).collect();
        cut = cut.trim_end().to_string();
        cut.push('…');
        cut
    } else {
        clean.to_string()
    };
    if !escape_markup {
        return capped;
    }
    let mut out = String::with_capacity(capped.len());
    for c in capped.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// What a notification daemon does with the text of a body, from its
/// freedesktop capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BodyRules {
    /// `&`, `<`, `>` are read as markup (`body-markup`): escape them.
    pub escape: bool,
    /// Tags may come alive as links or images (`body-hyperlinks`,
    /// `body-images`), or nobody knows what the daemon does: remove every
    /// tag, keeping the words between them.
    pub strip_tags: bool,
}

impl BodyRules {
    /// Plain text, nothing interpreted (Windows toasts, macOS).
    pub const PLAIN: BodyRules = BodyRules {
        escape: false,
        strip_tags: false,
    };
    /// A daemon whose capabilities are unknown (it did not say, or did not
    /// answer in time): the safest reading of all.
    pub const UNKNOWN: BodyRules = BodyRules {
        escape: true,
        strip_tags: true,
    };

    pub fn for_capabilities(caps: &[String]) -> BodyRules {
        let has = |c: &str| caps.iter().any(|x| x == c);
        BodyRules {
            escape: has("body-markup"),
            strip_tags: has("body-hyperlinks") || has("body-images") || has("body-markup"),
        }
    }
}

/// A body as the daemon described by `rules` must receive it: tags from
/// an API answer removed where they could come alive, then [`plain_text`].
pub fn body_text(raw: &str, max: usize, rules: BodyRules) -> String {
    if rules.strip_tags {
        plain_text(&strip_tags(raw), max, rules.escape)
    } else {
        plain_text(raw, max, rules.escape)
    }
}

/// Remove anything shaped like a markup tag (`<a href=…>`, `</b>`, `<img …/>`,
/// `<!-- … -->`), keeping the text around and between tags. A `<` that
/// starts no tag (`TSH < 4.5`) stays.
pub fn strip_tags(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let starts_tag = after
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '/' || c == '!' || c == '?');
        match after.find('>') {
            Some(end) if starts_tag => {
                rest = &after[end + 1..];
                // Words either side of a removed tag stay apart.
                if !out.ends_with(' ') && !out.is_empty() && !rest.starts_with(' ') {
                    out.push(' ');
                }
            }
            // An unclosed tag: everything after it could still be read as
            // markup by a lenient daemon; drop it.
            None if starts_tag => {
                rest = "";
            }
            _ => {
                out.push('<');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    // (Removed tags leave their spaces behind.)
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub fn title_for(state: &LabState) -> &'static str {
    match state {
        LabState::PartialResults => "Partial lab results received",
        LabState::ResultsReady => "Lab results ready",
        LabState::ResultsAmended => "Lab results amended",
        _ => "Lab order updated",
    }
}

/// The link a click opens: the result document when it is on an allowed
/// host, else the environment's results page for the order.
pub fn results_link(
    guard: &UrlGuard,
    endpoints: &Endpoints,
    order_id: &str,
    document_url: Option<&str>,
) -> Option<Url> {
    if let Some(doc) = document_url.and_then(|d| Url::parse(d).ok()) {
        // A result link only: never the sign-in page or an update package,
        // which the guard admits for their own purposes.
        if guard.allows_result(&doc) {
            return Some(doc);
        }
        tracing::warn!(
            order_id,
            "result document link is not on a Fullscript host; opening the results page instead"
        );
    }
    endpoints
        .results_url_for(order_id)
        .filter(|u| guard.allows_result(u))
}

fn body_for(a: &PendingAlert, detail: NotificationDetail) -> String {
    if detail == NotificationDetail::Generic {
        return String::new();
    }
    let what = crate::lab::display_title(a.title.as_deref(), &a.test_names, None);
    let what = match &a.lab_name {
        Some(lab) if !what.contains(lab.as_str()) => format!("{what} · {lab}"),
        _ => what,
    };
    match (&a.patient_name, detail) {
        (Some(p), NotificationDetail::Full) if !p.is_empty() => format!("{} — {what}", p.expose()),
        _ => what,
    }
}

/// Turn the outbox into notifications: one each, or one summary when more
/// than `summary_threshold` are waiting.
pub fn compose(
    alerts: &[PendingAlert],
    policy: &Policy,
    guard: &UrlGuard,
    endpoints: &Endpoints,
) -> Vec<Notification> {
    if alerts.is_empty() {
        return Vec::new();
    }
    if alerts.len() > policy.summary_threshold {
        let count = |s: LabState| alerts.iter().filter(|a| a.state == s).count();
        let parts: Vec<String> = [
            (count(LabState::ResultsReady), "ready"),
            (count(LabState::PartialResults), "partial"),
            (count(LabState::ResultsAmended), "amended"),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, label)| format!("{n} {label}"))
        .collect();
        let mut order_ids: Vec<String> = alerts.iter().map(|a| a.order_id.clone()).collect();
        order_ids.dedup();
        let body = if policy.detail == NotificationDetail::Generic {
            "Open to review.".to_string()
        } else {
            format!("{}. Open to review.", parts.join(" · "))
        };
        return vec![Notification {
            kind: NotificationKind::Summary { order_ids },
            title: format!("{} new lab results", alerts.len()),
            body,
            url: Some(endpoints.labs_url.clone()).filter(|u| guard.allows(u)),
            alert_ids: alerts.iter().map(|a| a.id).collect(),
            sound: policy.sound,
            actions: Vec::new(),
        }];
    }
    alerts
        .iter()
        .map(|a| Notification {
            kind: NotificationKind::Result {
                order_id: a.order_id.clone(),
            },
            title: if policy.detail == NotificationDetail::Generic {
                "New lab result".to_string()
            } else {
                title_for(&a.state).to_string()
            },
            body: body_for(a, policy.detail),
            url: results_link(guard, endpoints, &a.order_id, a.document_url.as_deref()),
            alert_ids: vec![a.id],
            sound: policy.sound,
            actions: vec![NotificationAction::MarkReviewed],
        })
        .collect()
}

/// "3 results ready, 1 amended": counts by state, never a name.
fn counts_in_words(alerts: &[PendingAlert]) -> String {
    let count = |s: LabState| alerts.iter().filter(|a| a.state == s).count();
    let ready = count(LabState::ResultsReady);
    let partial = count(LabState::PartialResults);
    let amended = count(LabState::ResultsAmended);
    let mut parts = Vec::new();
    if ready > 0 {
        parts.push(if ready == 1 {
            "1 result ready".to_string()
        } else {
            format!("{ready} results ready")
        });
    }
    if partial > 0 {
        parts.push(format!("{partial} partial"));
    }
    if amended > 0 {
        parts.push(format!("{amended} amended"));
    }
    parts.join(", ")
}

/// What arrived while alerts were held (outside clinic hours, paused), as
/// one notification: "While you were away: 3 results ready, 1 amended".
/// Counts only, whatever `notification_detail` says: a digest can hold
/// many patients.
pub fn digest(
    alerts: &[PendingAlert],
    policy: &Policy,
    guard: &UrlGuard,
    endpoints: &Endpoints,
) -> Option<Notification> {
    if alerts.is_empty() {
        return None;
    }
    let mut order_ids: Vec<String> = alerts.iter().map(|a| a.order_id.clone()).collect();
    order_ids.sort();
    order_ids.dedup();
    Some(Notification {
        kind: NotificationKind::Digest { order_ids },
        title: "While you were away".into(),
        body: format!("{}. Open to review.", counts_in_words(alerts)),
        url: Some(endpoints.labs_url.clone()).filter(|u| guard.allows(u)),
        alert_ids: alerts.iter().map(|a| a.id).collect(),
        sound: policy.sound,
        actions: Vec::new(),
    })
}

/// "Send a test notification": what a result alert looks like, with no
/// patient data, through the same notifier.
pub fn test_notification(sound: bool) -> Notification {
    Notification {
        kind: NotificationKind::Test,
        title: "Test notification".into(),
        body: "Lab result alerts will look like this.".into(),
        url: None,
        alert_ids: Vec::new(),
        sound,
        actions: Vec::new(),
    }
}

/// Fullscript ended the session: say so, without any patient data.
pub fn sign_in_again(sound: bool) -> Notification {
    Notification {
        kind: NotificationKind::SignInAgain,
        title: "Sign in to Fullscript again".into(),
        body: "Lab result alerts are paused until you sign in again.".into(),
        url: None,
        alert_ids: Vec::new(),
        sound,
        actions: Vec::new(),
    }
}

/// The first time the window is closed: the app keeps watching.
pub fn still_running() -> Notification {
    Notification {
        kind: NotificationKind::Info,
        title: "Fullscript Lab Notifier is still running".into(),
        body: "It keeps watching for lab results. Open it again from the tray or your app menu."
            .into(),
        url: None,
        alert_ids: Vec::new(),
        sound: false,
        actions: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::secret::PatientName;
    use std::path::Path;

    fn alert(id: i64, state: LabState, doc: Option<&str>) -> PendingAlert {
        PendingAlert {
            id,
            order_id: format!("order-{id}"),
            state,
            title: Some("Thyroid Panel".into()),
            lab_name: Some("Access Medical Labs".into()),
            test_names: vec!["TSH".into()],
            patient_name: Some(PatientName::new("Priya Raman")),
            document_url: doc.map(str::to_string),
            created_at: String::new(),
            held: false,
        }
    }

    fn setup() -> (Config, UrlGuard) {
        let c = Config::parse(Path::new("c.toml"), "").unwrap();
        let g = UrlGuard::new(&c);
        (c, g)
    }

    #[test]
    fn a_document_link_to_the_sign_in_page_or_the_update_host_opens_the_results_page_instead() {
        let c = Config::parse(
            Path::new("c.toml"),
            "update_url = \"https://us-snd.fullscript.io/downloads/latest.json\"",
        )
        .unwrap();
        let g = UrlGuard::new(&c);
        let page = "https://us-snd.fullscript.io/labs/orders/o-1";
        for doc in [
            // Fullscript's consent page, for another app.
            "https://api-us-snd.fullscript.io/api/oauth/authorize?client_id=other&redirect_uri=x",
            // The update feed's host (here the practitioner web app's own).
            "https://us-snd.fullscript.io/downloads/app.deb",
            "https://us-snd.fullscript.io/downloads/latest.json",
        ] {
            let link = results_link(&g, &c.endpoints, "o-1", Some(doc)).unwrap();
            assert_eq!(link.as_str(), page, "{doc}");
        }
        // A genuine document on the web app is opened as it is.
        let doc = "https://us-snd.fullscript.io/labs/documents/r-1.pdf";
        assert_eq!(
            results_link(&g, &c.endpoints, "o-1", Some(doc))
                .unwrap()
                .as_str(),
            doc
        );
    }

    #[test]
    fn single_alerts_carry_no_patient_name_by_default() {
        let (c, g) = setup();
        let p = Policy {
            detail: NotificationDetail::Test,
            summary_threshold: 3,
            sound: true,
        };
        let n = compose(
            &[alert(1, LabState::ResultsReady, None)],
            &p,
            &g,
            &c.endpoints,
        );
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].title, "Lab results ready");
        assert_eq!(n[0].body, "Thyroid Panel · Access Medical Labs");
        assert!(!n[0].body.contains("Priya"));
        assert_eq!(
            n[0].url.as_ref().unwrap().as_str(),
            "https://us-snd.fullscript.io/labs/orders/order-1"
        );
        let named = compose(
            &[alert(1, LabState::PartialResults, None)],
            &Policy {
                detail: NotificationDetail::Full,
                ..p
            },
            &g,
            &c.endpoints,
        );
        assert_eq!(named[0].title, "Partial lab results received");
        assert_eq!(
            named[0].body,
            "Priya Raman — Thyroid Panel · Access Medical Labs"
        );
    }

    #[test]
    fn generic_detail_says_only_that_a_result_arrived() {
        let (c, g) = setup();
        let p = Policy {
            detail: NotificationDetail::Generic,
            summary_threshold: 3,
            sound: true,
        };
        let n = compose(
            &[alert(1, LabState::ResultsAmended, None)],
            &p,
            &g,
            &c.endpoints,
        );
        assert_eq!(n[0].title, "New lab result");
        assert_eq!(n[0].body, "");
        assert!(n[0].url.is_some(), "a click still opens the results");
    }

    #[test]
    fn tags_from_fullscript_never_reach_a_daemon_that_makes_links_or_images_of_them() {
        let caps = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let name = r#"<a href="https://evil.example/x">CBC</a> <img src="https://evil.example/t.png"> & TSH < 4"#;
        // dunst as shipped: hyperlinks, no body-markup.
        let rules = BodyRules::for_capabilities(&caps(&["body", "body-hyperlinks", "actions"]));
        let body = body_text(name, MAX_BODY_CHARS, rules);
        assert_eq!(body, "CBC & TSH < 4");
        assert!(!body.contains("evil"), "{body}");
        // Images only.
        let rules = BodyRules::for_capabilities(&caps(&["body", "body-images"]));
        assert!(!body_text(name, MAX_BODY_CHARS, rules).contains("evil"));
        // Markup: stripped and escaped.
        let rules = BodyRules::for_capabilities(&caps(&["body", "body-markup"]));
        assert_eq!(
            body_text(name, MAX_BODY_CHARS, rules),
            "CBC &amp; TSH &lt; 4"
        );
        // Unknown capabilities: the same.
        assert_eq!(
            body_text(name, MAX_BODY_CHARS, BodyRules::UNKNOWN),
            "CBC &amp; TSH &lt; 4"
        );
        // A daemon that interprets nothing gets the text as written.
        let rules = BodyRules::for_capabilities(&caps(&["body"]));
        assert_eq!(body_text("A & <b>B</b>", 240, rules), "A & <b>B</b>");
        // An unclosed tag takes nothing live with it.
        assert_eq!(strip_tags("CBC <a href=\"https://evil.example"), "CBC");
        assert_eq!(strip_tags("a<b>c</b>d"), "a c d");
    }

    #[test]
    fn notification_text_is_plain_and_capped() {
        assert_eq!(
            plain_text("CBC w/ Diff & Platelets", 240, true),
            "CBC w/ Diff &amp; Platelets"
        );
        assert_eq!(
            plain_text(
                "<a href=\"https://evil.example\">View</a><img src=x>",
                240,
                true
            ),
            "&lt;a href=\"https://evil.example\"&gt;View&lt;/a&gt;&lt;img src=x&gt;"
        );
        assert_eq!(
            plain_text("A & B", 240, false),
            "A & B",
            "no markup: as written"
        );
        assert_eq!(
            plain_text("line\none\u{7}\u{1b}[31m", 240, false),
            "line one  [31m"
        );
        let long = "x".repeat(500);
        let capped = plain_text(&long, MAX_BODY_CHARS, true);
        assert_eq!(capped.chars().count(), MAX_BODY_CHARS);
        assert!(capped.ends_with('…'));
        // The cap counts characters, not bytes, and escaping happens after it.
        let amps = "&".repeat(100);
        assert_eq!(
            plain_text(&amps, MAX_SUMMARY_CHARS, true)
                .matches("&amp;")
                .count(),
            79
        );
    }

    #[test]
    fn document_links_only_on_allowed_hosts() {
        let (c, g) = setup();
        let p = Policy {
            detail: NotificationDetail::Test,
            summary_threshold: 3,
            sound: false,
        };
        let ok = compose(
            &[alert(
                2,
                LabState::ResultsAmended,
                Some("https://us-snd.fullscript.io/docs/r.pdf"),
            )],
            &p,
            &g,
            &c.endpoints,
        );
        assert_eq!(ok[0].url.as_ref().unwrap().path(), "/docs/r.pdf");
        let foreign = compose(
            &[alert(
                2,
                LabState::ResultsAmended,
                Some("https://evil.example/r.pdf"),
            )],
            &p,
            &g,
            &c.endpoints,
        );
        assert_eq!(
            foreign[0].url.as_ref().unwrap().path(),
            "/labs/orders/order-2"
        );
    }

    #[test]
    fn more_than_the_threshold_becomes_one_summary() {
        let (c, g) = setup();
        let p = Policy {
            detail: NotificationDetail::Full,
            summary_threshold: 3,
            sound: true,
        };
        let alerts: Vec<PendingAlert> = (1..=4)
            .map(|i| {
                alert(
                    i,
                    if i == 4 {
                        LabState::ResultsAmended
                    } else {
                        LabState::ResultsReady
                    },
                    None,
                )
            })
            .collect();
        let n = compose(&alerts, &p, &g, &c.endpoints);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].title, "4 new lab results");
        assert_eq!(n[0].body, "3 ready · 1 amended. Open to review.");
        assert_eq!(n[0].alert_ids, [1, 2, 3, 4]);
        assert!(
            !n[0].body.contains("Priya"),
            "summaries never name patients"
        );
        assert_eq!(compose(&alerts[..3], &p, &g, &c.endpoints).len(), 3);
    }

    #[test]
    fn a_single_result_offers_mark_reviewed_and_a_summary_does_not() {
        let (c, g) = setup();
        let p = Policy {
            detail: NotificationDetail::Test,
            summary_threshold: 3,
            sound: true,
        };
        let one = compose(
            &[alert(1, LabState::ResultsReady, None)],
            &p,
            &g,
            &c.endpoints,
        );
        assert_eq!(one[0].actions, [NotificationAction::MarkReviewed]);
        let many: Vec<_> = (1..=4)
            .map(|i| alert(i, LabState::ResultsReady, None))
            .collect();
        assert!(compose(&many, &p, &g, &c.endpoints)[0].actions.is_empty());
        assert_eq!(
            NotificationAction::from_key("mark-reviewed"),
            Some(NotificationAction::MarkReviewed)
        );
        assert_eq!(
            NotificationAction::from_key("default"),
            Some(NotificationAction::Open)
        );
        assert_eq!(NotificationAction::from_key("other"), None);
    }

    #[test]
    fn a_digest_counts_what_arrived_and_names_no_one() {
        let (c, g) = setup();
        let p = Policy {
            detail: NotificationDetail::Full,
            summary_threshold: 3,
            sound: true,
        };
        let held = [
            alert(1, LabState::ResultsReady, None),
            alert(2, LabState::ResultsReady, None),
            alert(3, LabState::ResultsReady, None),
            alert(4, LabState::ResultsAmended, None),
        ];
        let n = digest(&held, &p, &g, &c.endpoints).unwrap();
        assert_eq!(n.title, "While you were away");
        assert_eq!(n.body, "3 results ready, 1 amended. Open to review.");
        assert_eq!(n.alert_ids, [1, 2, 3, 4]);
        assert!(!n.body.contains("Priya") && !n.body.contains("Thyroid"));
        assert!(
            matches!(n.kind, NotificationKind::Digest { ref order_ids } if order_ids.len() == 4)
        );
        let one = digest(&held[3..], &p, &g, &c.endpoints).unwrap();
        assert_eq!(one.body, "1 amended. Open to review.");
        assert!(digest(&[], &p, &g, &c.endpoints).is_none());
    }
}
