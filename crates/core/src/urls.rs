//! One home for the URL rules: what may be opened, fetched or trusted.
//! Plain http only to this computer (`is_loopback_host`); the update feed
//! and its packages over https or loopback http (`check_update_transport`);
//! what a click may open (`UrlGuard`): result links on the practitioner web
//! app or a configured document host, never an OAuth page or the update
//! feed's directory; the configured sign-in page (its origin and path) only
//! for signing in; a package only on the update feed's host. The
//! configuration supplies the hosts (`UrlGuard::new(&config)`, in
//! `config.rs`); the rules are here.

use url::Url;

/// 127.0.0.0/8, ::1 or `localhost`: the only hosts plain http is allowed on.
pub fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// An update feed or package over plain http to another computer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("update checks need https (plain http only on this computer): {0}")]
pub struct InsecureTransport(pub String);

/// The update feed's and its packages' transport: https anywhere, http only
/// to this computer.
pub fn check_update_transport(url: &Url) -> Result<(), InsecureTransport> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback_host(url) => Ok(()),
        _ => Err(InsecureTransport(crate::http::describe_location(
            url.as_str(),
        ))),
    }
}

/// A link refused by the guard (its host only: never the full URL).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused to open a link to {0}: not one of the configured Fullscript hosts")]
pub struct NotAllowed(pub String);

/// A path that belongs to an OAuth flow (`/oauth/…`, `/api/oauth/…`).
fn is_oauth_path(url: &Url) -> bool {
    url.path_segments()
        .into_iter()
        .flatten()
        .any(|s| s.eq_ignore_ascii_case("oauth"))
}

/// Which URLs may be opened.
#[derive(Debug, Clone)]
pub struct UrlGuard {
    result_origins: Vec<url::Origin>,
    sign_in: Url,
    allow_loopback_http: bool,
    update_origin: url::Origin,
    update_feed: Url,
}

impl UrlGuard {
    /// The rules for these hosts (`UrlGuard::new(&config)` reads them
    /// from the configuration).
    pub fn from_parts(
        result_origins: Vec<url::Origin>,
        sign_in: Url,
        allow_loopback_http: bool,
        update_feed: Url,
    ) -> UrlGuard {
        UrlGuard {
            result_origins,
            sign_in,
            allow_loopback_http,
            update_origin: update_feed.origin(),
            update_feed,
        }
    }

    fn scheme_ok(&self, url: &Url) -> bool {
        let scheme_ok = match url.scheme() {
            "https" => true,
            "http" => self.allow_loopback_http && is_loopback_host(url),
            _ => false,
        };
        scheme_ok && url.username().is_empty() && url.password().is_none()
    }

    /// A result link (document or results page) that may be opened: on a
    /// result host, never an OAuth page (the sign-in page included) and
    /// never anything on the update feed's host.
    pub fn allows_result(&self, url: &Url) -> bool {
        self.scheme_ok(url)
            && self.result_origins.contains(&url.origin())
            && !is_oauth_path(url)
            && !self.is_sign_in(url)
            && !self.is_update_feed_path(url)
    }

    /// On the update feed's host, in the feed's own directory (the feed and
    /// the packages published beside it).
    fn is_update_feed_path(&self, url: &Url) -> bool {
        let dir = match self.update_feed.path().rfind('/') {
            Some(i) => &self.update_feed.path()[..=i],
            None => "/",
        };
        url.origin() == self.update_origin && url.path().starts_with(dir)
    }

    /// The configured sign-in page (whatever its query).
    pub fn is_sign_in(&self, url: &Url) -> bool {
        self.scheme_ok(url)
            && url.origin() == self.sign_in.origin()
            && url.path() == self.sign_in.path()
    }

    /// A new version's package, on the update feed's own host.
    pub fn allows_update_download(&self, url: &Url) -> bool {
        check_update_transport(url).is_ok()
            && url.username().is_empty()
            && url.password().is_none()
            && url.origin() == self.update_origin
    }

    /// Is this an acceptable link (no logging)?
    pub fn allows(&self, url: &Url) -> bool {
        self.allows_result(url) || self.is_sign_in(url) || self.allows_update_download(url)
    }

    /// `allows`, logging a refusal by host only (never the full URL).
    pub fn check(&self, url: &Url) -> Result<(), NotAllowed> {
        if self.allows(url) {
            return Ok(());
        }
        let host = url.host_str().unwrap_or("(no host)").to_string();
        tracing::warn!(
            scheme = url.scheme(),
            host,
            "refused to open a link outside the configured Fullscript hosts"
        );
        Err(NotAllowed(host))
    }
}
