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

/// How often the feed is read when `update_check = "daily"`.
pub const CHECK_EVERY: Duration = Duration::from_secs(24 * 3600);

/// A newer version than this one, as the feed describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UpdateInfo {
    pub version: String,
    pub notes: Option<String>,
    pub pub_date: Option<String>,
    /// This platform's package, for the practitioner to download and
    /// install by hand when the app cannot install it itself.
    #[serde(default)]
    pub download_url: Option<String>,
}

/// The feed's platform keys for this build, most specific first (the Tauri
/// updater's `{os}-{arch}-{installer}` and `{os}-{arch}`).
pub fn platform_keys() -> [String; 2] {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        other => other,
    };
    let installer = match os {
        "linux" => "deb",
        "windows" => "nsis",
        _ => "app",
    };
    let arch = std::env::consts::ARCH;
    [format!("{os}-{arch}-{installer}"), format!("{os}-{arch}")]
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

/// https anywhere, http only to this computer (the rule lives in `urls`).
pub fn check_transport(url: &Url) -> Result<(), UpdateError> {
    crate::urls::check_update_transport(url).map_err(|e| UpdateError::Insecure(e.0))
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

/// Longest version a feed may announce (`1.2.3-rc.4+build.5` is 17).
const MAX_VERSION_CHARS: usize = 64;
/// Most platform entries a feed may list (Tauri's are a dozen).
const MAX_PLATFORMS: usize = 64;

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
    interpret(&body, current, &platform_keys())
}

/// What a feed offers this build: a newer version that has a package for
/// one of `platforms` (a release without one is nothing this copy can
/// install, so it is not announced). Every download link must pass the
/// same transport rule as the feed.
pub fn interpret(
    body: &[u8],
    current: &str,
    platforms: &[String],
) -> Result<Option<UpdateInfo>, UpdateError> {
    let feed: Feed =
        serde_json::from_slice(body).map_err(|e| UpdateError::Malformed(e.to_string()))?;
    if feed.version.len() > MAX_VERSION_CHARS {
        return Err(UpdateError::Malformed(format!(
            "a version of {} characters",
            feed.version.len()
        )));
    }
    if feed.platforms.len() > MAX_PLATFORMS {
        return Err(UpdateError::Malformed(format!(
            "{} platforms",
            feed.platforms.len()
        )));
    }
    for p in feed.platforms.values() {
        if p.url.len() > crate::lab::MAX_URL_CHARS {
            return Err(UpdateError::Malformed("an overlong download link".into()));
        }
        let url = Url::parse(&p.url).map_err(|e| UpdateError::Malformed(e.to_string()))?;
        check_transport(&url)?;
    }
    if !is_newer(&feed.version, current) {
        return Ok(None);
    }
    let Some(ours) = platforms.iter().find_map(|k| feed.platforms.get(k)) else {
        tracing::info!(
            version = %feed.version,
            "a newer version is published, but not for this platform"
        );
        return Ok(None);
    };
    Ok(Some(UpdateInfo {
        version: feed.version.trim().trim_start_matches('v').to_string(),
        notes: feed
            .notes
            .map(|n| crate::lab::display_text(&n))
            .filter(|n| !n.is_empty()),
        pub_date: feed.pub_date,
        download_url: Some(ours.url.clone()),
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

    fn feed(version: &str, platforms: serde_json::Value) -> Vec<u8> {
        serde_json::json!({"version": version, "notes": "Faster <b>checks</b>.", "platforms": platforms})
            .to_string()
            .into_bytes()
    }

    fn linux() -> Vec<String> {
        vec!["linux-x86_64-deb".into(), "linux-x86_64".into()]
    }

    #[test]
    fn a_feed_with_an_overlong_version_or_link_is_refused() {
        let platforms = vec!["linux-x86_64".to_string()];
        let long = format!("0.2.0-{}", "a".repeat(100));
        let body = feed(
            &long,
            serde_json::json!({"linux-x86_64": {"url": "https://example.com/a.deb"}}),
        );
        assert!(matches!(
            interpret(&body, "0.1.0", &platforms),
            Err(UpdateError::Malformed(_))
        ));
        let body = feed(
            "0.2.0",
            serde_json::json!({"linux-x86_64": {"url": format!("https://example.com/{}", "a".repeat(5000))}}),
        );
        assert!(matches!(
            interpret(&body, "0.1.0", &platforms),
            Err(UpdateError::Malformed(_))
        ));
    }

    #[test]
    fn a_newer_version_for_this_platform_is_offered_with_its_package() {
        let body = feed(
            "0.2.0",
            serde_json::json!({
                "windows-x86_64": {"url": "https://u.example/app.exe", "signature": "s"},
                "linux-x86_64-deb": {"url": "https://u.example/app.deb", "signature": "s"},
            }),
        );
        let info = interpret(&body, "0.1.0", &linux()).unwrap().unwrap();
        assert_eq!(info.version, "0.2.0");
        assert_eq!(
            info.download_url.as_deref(),
            Some("https://u.example/app.deb")
        );
        assert_eq!(info.notes.as_deref(), Some("Faster <b>checks</b>."));
    }

    #[test]
    fn a_release_without_a_package_for_this_platform_or_not_newer_is_not_announced() {
        let only_windows = feed(
            "0.2.0",
            serde_json::json!({"windows-x86_64": {"url": "https://u.example/app.exe"}}),
        );
        assert_eq!(interpret(&only_windows, "0.1.0", &linux()).unwrap(), None);
        let same = feed(
            "0.1.0",
            serde_json::json!({"linux-x86_64": {"url": "https://u.example/app.deb"}}),
        );
        assert_eq!(interpret(&same, "0.1.0", &linux()).unwrap(), None);
    }

    #[test]
    fn a_feed_naming_a_plain_http_download_elsewhere_is_refused() {
        let body = feed(
            "0.2.0",
            serde_json::json!({"linux-x86_64": {"url": "http://u.example/app.deb"}}),
        );
        assert!(matches!(
            interpret(&body, "0.1.0", &linux()),
            Err(UpdateError::Insecure(_))
        ));
        assert!(matches!(
            interpret(b"<html>", "0.1.0", &linux()),
            Err(UpdateError::Malformed(_))
        ));
    }

    #[test]
    fn this_build_knows_its_platform_keys() {
        let [specific, general] = platform_keys();
        assert!(specific.starts_with(&general), "{specific} {general}");
        #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
        assert_eq!(specific, "linux-x86_64-deb");
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
