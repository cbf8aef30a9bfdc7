//! Opening results in the browser, safely. Three kinds of URL are ever
//! opened: the configured sign-in page (exactly its origin and path), result
//! links on the practitioner web app or a configured document host, never
//! on an OAuth path (a hostile `pdf_url` could otherwise open a genuine
//! consent page for another app), and a new version's package on the update
//! feed's own host (when the app cannot install it itself). Only https (and,
//! in the custom environment, plain http on loopback; for the update feed's
//! host, the feed's own transport rule). Anything else is refused and
//! logged by host.

use url::Url;

pub use crate::urls::UrlGuard;

impl From<crate::urls::NotAllowed> for OpenError {
    fn from(e: crate::urls::NotAllowed) -> OpenError {
        OpenError::NotAllowed(e.0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("refused to open a link to {0}: not one of the configured Fullscript hosts")]
    NotAllowed(String),
    #[error("could not start a web browser: {0}")]
    Browser(String),
}

/// Opening a URL for the practitioner: the system browser in the app,
/// a recording in tests.
pub trait Opener: Send + Sync {
    fn open(&self, url: &Url) -> Result<(), OpenError>;
}

/// The system's default browser, after the guard's check. `$BROWSER` is
/// honoured on every platform (a program given the URL as its argument), so
/// tests and unusual setups can capture or redirect what is opened.
pub struct BrowserOpener {
    guard: UrlGuard,
}

impl BrowserOpener {
    pub fn new(guard: UrlGuard) -> BrowserOpener {
        BrowserOpener { guard }
    }
}

impl Opener for BrowserOpener {
    fn open(&self, url: &Url) -> Result<(), OpenError> {
        self.guard.check(url)?;
        if let Some(browser) = std::env::var_os("BROWSER").filter(|b| !b.is_empty()) {
            #[cfg(not(target_os = "linux"))]
            {
                return std::process::Command::new(&browser)
                    .arg(url.as_str())
                    .status()
                    .map_err(|e| OpenError::Browser(e.to_string()))
                    .and_then(|s| {
                        s.success()
                            .then_some(())
                            .ok_or_else(|| OpenError::Browser(format!("$BROWSER exited with {s}")))
                    });
            }
            // On Linux the webbrowser crate already honours $BROWSER (with its `%s` forms).
            #[cfg(target_os = "linux")]
            let _ = browser;
        }
        webbrowser::open(url.as_str()).map_err(|e| OpenError::Browser(e.to_string()))
    }
}

/// Records what would have been opened (after the guard's check).
#[derive(Clone)]
pub struct RecordingOpener {
    guard: UrlGuard,
    pub opened: std::sync::Arc<std::sync::Mutex<Vec<Url>>>,
}

impl RecordingOpener {
    pub fn new(guard: UrlGuard) -> RecordingOpener {
        RecordingOpener {
            guard,
            opened: Default::default(),
        }
    }

    pub fn taken(&self) -> Vec<Url> {
        std::mem::take(&mut *self.opened.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Opener for RecordingOpener {
    fn open(&self, url: &Url) -> Result<(), OpenError> {
        self.guard.check(url)?;
        self.opened
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(url.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    #[test]
    fn only_configured_https_hosts() {
        let c = Config::parse(Path::new("c.toml"), "").unwrap();
        let g = UrlGuard::new(&c);
        assert!(g.allows(&Url::parse("https://us-snd.fullscript.io/labs/orders/1").unwrap()));
        assert!(
            g.allows(
                &Url::parse("https://api-us-snd.fullscript.io/api/oauth/authorize?client_id=x")
                    .unwrap()
            ),
            "the sign-in page itself"
        );
        for bad in [
            // Not a document host: the API, and OAuth pages anywhere.
            "https://api-us-snd.fullscript.io/x.pdf",
            "https://api-us-snd.fullscript.io/api/oauth/authorize/other",
            "https://us-snd.fullscript.io/oauth/authorize?client_id=someone-else",
            "https://us-snd.fullscript.io/api/OAuth/authorize",
            "http://us-snd.fullscript.io/labs",
            "https://evil.example/labs",
            "https://us-snd.fullscript.io.evil.example/",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "https://user@us-snd.fullscript.io/",
            "http://127.0.0.1:4010/labs",
        ] {
            assert!(!g.allows(&Url::parse(bad).unwrap()), "{bad}");
            assert!(g.check(&Url::parse(bad).unwrap()).is_err());
        }
    }

    #[test]
    fn configured_document_hosts_are_allowed_for_results_only() {
        let c = Config::parse(
            Path::new("c.toml"),
            "document_hosts = [\"https://files.example.com\"]",
        )
        .unwrap();
        let g = UrlGuard::new(&c);
        assert!(g.allows(&Url::parse("https://files.example.com/r/1.pdf?sig=x").unwrap()));
        assert!(!g.allows(&Url::parse("https://files.example.com/oauth/authorize").unwrap()));
        assert!(Config::parse(
            Path::new("c.toml"),
            "document_hosts = [\"http://files.example.com\"]"
        )
        .is_err());
    }

    #[test]
    fn custom_environment_allows_its_loopback_host_only() {
        let c = Config::parse(
            Path::new("c.toml"),
            r#"environment = "custom"
api_base = "http://127.0.0.1:4010/api"
authorize_url = "http://127.0.0.1:4010/api/oauth/authorize"
token_url = "http://127.0.0.1:4010/api/oauth/token"
revoke_url = "http://127.0.0.1:4010/api/oauth/revoke"
results_url = "http://127.0.0.1:4010/labs/orders/{id}"
"#,
        )
        .unwrap();
        let g = UrlGuard::new(&c);
        assert!(g.allows(&Url::parse("http://127.0.0.1:4010/labs/orders/1").unwrap()));
        assert!(!g.allows(&Url::parse("http://127.0.0.1:4011/labs/orders/1").unwrap()));
        assert!(!g.allows(&Url::parse("https://us-snd.fullscript.io/").unwrap()));
    }
}
