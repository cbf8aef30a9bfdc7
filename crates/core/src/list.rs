//! The status list as the window asks for it: grouped by what needs
//! attention, filtered and searched here, and only the rows the window
//! draws (plus each group's count). A clinic with 200,000 orders is
//! answered with a few hundred rows, never the whole history at once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::store::OrderRow;

/// The groups, in the order the list shows them.
pub const GROUPS: [&str; 6] = [
    "unseen",
    "results_ready",
    "partial_results",
    "results_amended",
    "in_progress",
    "other",
];

/// Rows a group shows until more are asked for.
pub const ROWS_PER_GROUP: usize = 100;
/// The most rows of one group one answer carries ("Show more" asks again).
pub const MAX_ROWS_PER_GROUP: usize = 5_000;
/// Longest search text considered.
const MAX_QUERY_CHARS: usize = 200;

/// What the window wants to draw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct ListQuery {
    /// `all` (default), `since`, or a group's key.
    pub filter: Option<String>,
    /// Search text (patient, test, lab), case-insensitive.
    pub query: Option<String>,
    /// With `filter = since`: orders whose newest result is at or after this.
    pub since: Option<String>,
    /// Rows wanted per group (default [`ROWS_PER_GROUP`]), by group key.
    pub rows: BTreeMap<String, usize>,
    /// An order that must be among the rows sent (a clicked notification's).
    pub highlighted: Option<String>,
}

/// One group of the answer.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ListGroup {
    pub key: String,
    /// Orders in the group (matching the filter and search).
    pub total: usize,
    /// The newest of them, at most what was asked for.
    pub rows: Vec<OrderRow>,
}

/// The answer: the groups that have orders, and how many orders the list
/// holds in all (to tell "no orders yet" from "none match").
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ListPage {
    pub groups: Vec<ListGroup>,
    pub orders_total: usize,
}

/// The group an order is shown in.
pub fn group_of(o: &OrderRow) -> &'static str {
    if o.unseen {
        "unseen"
    } else {
        o.group
    }
}

struct Matcher {
    filter: String,
    needle: Option<String>,
    since: Option<String>,
}

impl Matcher {
    fn new(q: &ListQuery) -> Matcher {
        let needle = q
            .query
            .as_deref()
            .map(|s| s.trim().chars().take(MAX_QUERY_CHARS).collect::<String>())
            .filter(|s| !s.is_empty())
            .map(|s| s.to_lowercase());
        Matcher {
            filter: q.filter.clone().unwrap_or_else(|| "all".into()),
            needle,
            since: q.since.clone(),
        }
    }

    fn matches(&self, o: &OrderRow) -> bool {
        match self.filter.as_str() {
            "all" => {}
            "since" => {
                // Timestamps are stored in one canonical format, so they compare as text.
                let recent = match (&self.since, &o.last_result_at) {
                    (Some(since), Some(at)) => at >= since,
                    _ => false,
                };
                if !recent {
                    return false;
                }
            }
            // A group: the unseen are in "unseen" and in their state's group.
            f => {
                if group_of(o) != f && !(f != "unseen" && o.group == f) {
                    return false;
                }
            }
        }
        let Some(needle) = &self.needle else {
            return true;
        };
        let hay = [
            o.patient_name
                .as_ref()
                .map(|p| p.expose().to_string())
                .unwrap_or_default(),
            o.title.clone(),
            o.test_names.join(" "),
            o.lab_name.clone().unwrap_or_default(),
        ]
        .join(" ")
        .to_lowercase();
        hay.contains(needle.as_str())
    }
}

/// Builds a [`ListPage`] from the orders, newest change first, one at a
/// time; holds only the rows it will send.
pub struct ListBuilder {
    matcher: Matcher,
    wanted: BTreeMap<String, usize>,
    highlighted: Option<String>,
    groups: BTreeMap<&'static str, ListGroup>,
    orders_total: usize,
}

impl ListBuilder {
    pub fn new(q: &ListQuery) -> ListBuilder {
        ListBuilder {
            matcher: Matcher::new(q),
            wanted: q
                .rows
                .iter()
                .map(|(k, n)| (k.clone(), (*n).clamp(1, MAX_ROWS_PER_GROUP)))
                .collect(),
            highlighted: q.highlighted.clone(),
            groups: BTreeMap::new(),
            orders_total: 0,
        }
    }

    pub fn add(&mut self, o: OrderRow) {
        self.orders_total = self.orders_total.saturating_add(1);
        if !self.matcher.matches(&o) {
            return;
        }
        let key = group_of(&o);
        let wanted = self.wanted.get(key).copied().unwrap_or(ROWS_PER_GROUP);
        let g = self.groups.entry(key).or_insert_with(|| ListGroup {
            key: key.to_string(),
            total: 0,
            rows: Vec::new(),
        });
        g.total = g.total.saturating_add(1);
        let is_highlighted = self.highlighted.as_deref() == Some(o.id.as_str());
        if g.rows.len() < wanted || is_highlighted {
            g.rows.push(o);
        }
    }

    pub fn finish(mut self) -> ListPage {
        let groups = GROUPS
            .iter()
            .filter_map(|k| self.groups.remove(k))
            .collect();
        ListPage {
            groups,
            orders_total: self.orders_total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::LabState;
    use crate::secret::PatientName;

    fn row(id: &str, state: LabState, unseen: bool, patient: &str) -> OrderRow {
        OrderRow {
            id: id.into(),
            patient_name: Some(PatientName::new(patient.to_string())),
            title: "Thyroid Panel".into(),
            lab_name: Some("Access".into()),
            test_names: vec!["TSH".into()],
            state_label: state.label().to_string(),
            group: state.group(),
            state,
            changed_at: "2026-12-01T10:00:00.000Z".into(),
            unseen,
            results_count: 1,
            last_result_at: Some(format!("2026-12-01T10:00:{:02}.000Z", id.len() % 60)),
        }
    }

    #[test]
    fn a_long_history_is_answered_with_the_rows_drawn_and_every_groups_count() {
        let mut b = ListBuilder::new(&ListQuery {
            highlighted: Some("r-150000".into()),
            ..Default::default()
        });
        for i in 0..200_000 {
            let state = if i % 2 == 0 {
                LabState::ResultsReady
            } else {
                LabState::Processing
            };
            b.add(row(&format!("r-{i}"), state, i < 3, "Ada Lovelace"));
        }
        let page = b.finish();
        assert_eq!(page.orders_total, 200_000);
        let keys: Vec<&str> = page.groups.iter().map(|g| g.key.as_str()).collect();
        assert_eq!(keys, ["unseen", "results_ready", "in_progress"]);
        let ready = &page.groups[1];
        assert_eq!(ready.total, 99_998);
        assert_eq!(
            ready.rows.len(),
            ROWS_PER_GROUP + 1,
            "plus the highlighted one"
        );
        assert!(ready.rows.iter().any(|r| r.id == "r-150000"));
        assert_eq!(page.groups[0].rows.len(), 3);
    }

    #[test]
    fn filters_and_search_choose_the_rows_and_more_can_be_asked_for() {
        let orders = || {
            vec![
                row("a", LabState::ResultsReady, true, "Grace Hopper"),
                row("b", LabState::ResultsReady, false, "Alan Turing"),
                row("c", LabState::Processing, false, "Grace Kelly"),
            ]
        };
        let page = |q: ListQuery| {
            let mut b = ListBuilder::new(&q);
            for o in orders() {
                b.add(o);
            }
            b.finish()
        };
        let ids = |p: &ListPage| {
            p.groups
                .iter()
                .flat_map(|g| g.rows.iter().map(|r| r.id.clone()))
                .collect::<Vec<_>>()
        };
        let p = page(ListQuery {
            query: Some("  GRACE ".into()),
            ..Default::default()
        });
        assert_eq!(ids(&p), ["a", "c"]);
        // The ready group holds the unseen ready one too.
        let p = page(ListQuery {
            filter: Some("results_ready".into()),
            ..Default::default()
        });
        assert_eq!(ids(&p), ["a", "b"]);
        let p = page(ListQuery {
            filter: Some("unseen".into()),
            ..Default::default()
        });
        assert_eq!(ids(&p), ["a"]);
        let p = page(ListQuery {
            rows: BTreeMap::from([("results_ready".to_string(), 0)]),
            ..Default::default()
        });
        assert_eq!(p.groups[1].rows.len(), 1, "at least one row");
        assert_eq!(p.groups[1].total, 1);
        let p = page(ListQuery {
            filter: Some("since".into()),
            since: Some("2026-12-01T10:00:01.000Z".into()),
            ..Default::default()
        });
        assert_eq!(ids(&p), ["a", "b", "c"]);
    }
}
