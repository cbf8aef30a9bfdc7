//! Knowing that a newer version exists: the update feed (`latest.json`, the
//! Tauri updater's format) read once a day, its answer kept in the database
//! so `status` (in any process) and the window can say "Update available:
//! 0.2.0". Installing is the window app's job (the official updater plugin
//! downloads, verifies the signature and installs); the headless build only
//! reports.
//!
//! The feed is fetched over https, or plain http on this computer only
//! (a local update server for tests and self-hosting): never plain http to
//! another host, and the same rule holds for the download link it names.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::config::is_loopback_host;

/// How often the feed is read when `update_check = "daily"`.
pub const CHECK_EVERY: Duration = Duration::from_secs(24 * 3600);

/// A newer version than this one, as the feed describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateInfo {
    pub version: String,
    pub notes: Option<String>,
    pub pub_date: Option<String>,
}

/// What the last check found (kept in the database).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateState {
    pub checked_at: String,
    pub available: Option<UpdateInfo>,
    pub error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("update checks need https (plain http only on this computer): {0}")]
    Insecure(String),
    #[error("the update feed could not be reached: {0}")]
    Network(String),
    #[error("the update feed answered {0}")]
    Status(u16),
    #[error("the update feed is unreadable: {0}")]
    Malformed(String),
}

/// https anywhere, http only to this computer.
pub fn check_transport(url: &Url) -> Result<(), UpdateError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback_host(url) => Ok(()),
        _ => Err(UpdateError::Insecure(crate::http::describe_location(
            url.as_str(),
        ))),
    }
}

/// Is `candidate` newer than `current` (semantic versions; an unreadable
/// version is never newer)?
pub fn is_newer(candidate: &str, current: &str) -> bool {
    let parse = |v: &str| semver::Version::parse(v.trim().trim_start_matches('v')).ok();
    match (parse(candidate), parse(current)) {
        (Some(c), Some(cur)) => c > cur,
        _ => false,
    }
}

#[derive(Deserialize)]
struct Feed {
    version: String,
    #[serde(default)]
    notes: Option<String>,
    #[serde(default)]
    pub_date: Option<String>,
    #[serde(default)]
    platforms: std::collections::BTreeMap<String, FeedPlatform>,
}

#[derive(Deserialize)]
struct FeedPlatform {
    url: String,
}

/// Read the feed; answers the newer version, if there is one.
pub async fn check(
    http: &reqwest::Client,
    feed: &Url,
    current: &str,
) -> Result<Option<UpdateInfo>, UpdateError> {
    check_transport(feed)?;
    let resp = http
        .get(feed.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| UpdateError::Network(crate::http::describe_transport(&e)))?;
    let status = resp.status().as_u16();
    if status == 204 || status == 404 {
        // The conventional "no update" answers.
        return Ok(None);
    }
    if !(200..300).contains(&status) {
        return Err(UpdateError::Status(status));
    }
    let body = crate::http::read_capped(resp)
        .await
        .map_err(|e| UpdateError::Network(e.to_string()))?;
    let feed: Feed =
        serde_json::from_slice(&body).map_err(|e| UpdateError::Malformed(e.to_string()))?;
    for p in feed.platforms.values() {
        let url = Url::parse(&p.url).map_err(|e| UpdateError::Malformed(e.to_string()))?;
        check_transport(&url)?;
    }
    if !is_newer(&feed.version, current) {
        return Ok(None);
    }
    Ok(Some(UpdateInfo {
        version: feed.version.trim().trim_start_matches('v').to_string(),
        notes: feed
            .notes
            .map(|n| crate::lab::display_text(&n))
            .filter(|n| !n.is_empty()),
        pub_date: feed.pub_date,
    }))
}

/// Whether a check is due, given the last one.
pub fn due(last: Option<&UpdateState>, now: DateTime<Utc>) -> bool {
    let Some(last) = last else { return true };
    let Some(at) = crate::timestamp::parse_str(&last.checked_at) else {
        return true;
    };
    chrono::Duration::from_std(CHECK_EVERY)
        .ok()
        .and_then(|d| at.checked_add_signed(d))
        .is_none_or(|next| now >= next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_as_semver() {
        assert!(is_newer("0.2.0", "0.1.0"));
        assert!(is_newer("v0.10.0", "0.9.1"));
        assert!(!is_newer("0.1.0", "0.1.0"));
        assert!(!is_newer("0.1.0-beta", "0.1.0"));
        assert!(!is_newer("latest", "0.1.0"));
    }

    #[test]
    fn plain_http_only_to_this_computer() {
        for ok in [
            "https://updates.example.com/latest.json",
            "http://127.0.0.1:9999/latest.json",
            "http://localhost/latest.json",
        ] {
            assert!(check_transport(&Url::parse(ok).unwrap()).is_ok(), "{ok}");
        }
        for bad in [
            "http://updates.example.com/latest.json",
            "ftp://x/latest.json",
        ] {
            assert!(check_transport(&Url::parse(bad).unwrap()).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_check_is_due_once_a_day() {
        let now = Utc::now();
        assert!(due(None, now));
        let state = |at: DateTime<Utc>| UpdateState {
            checked_at: crate::timestamp::canonical(at),
            available: None,
            error: None,
        };
        assert!(!due(Some(&state(now - chrono::Duration::hours(1))), now));
        assert!(due(Some(&state(now - chrono::Duration::hours(25))), now));
    }
}
