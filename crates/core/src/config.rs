//! Configuration: where files live, which Fullscript environment to talk to,
//! and the user's settings.
//!
//! One TOML file (platform config directory, or `--config PATH` / `FSN_CONFIG`)
//! holds everything; the settings screen writes back to the same file with
//! `toml_edit`, so comments a person wrote survive. `FSN_CLIENT_ID` and
//! `FSN_CLIENT_SECRET` override the file. Errors name the file, the key and
//! what is wrong.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::lab::LabState;
use crate::schedule::{ClinicHours, ClinicHoursSetting, HoursError};
use crate::secret::Secret;

pub const APP_NAME: &str = "Fullscript Lab Notifier";
/// Directory name under the platform config/data directories, and keychain service name.
pub const APP_DIR: &str = "fullscript-notifier";
pub const DEFAULT_REDIRECT_URI: &str = "http://127.0.0.1:47821/callback";
pub const DEFAULT_POLL_INTERVAL_SECS: u64 = 60;
pub const MIN_POLL_INTERVAL_SECS: u64 = 15;
pub const MAX_POLL_INTERVAL_SECS: u64 = 3600;
/// With results pushed by a relay, the order list is still read this often
/// (for states no webhook announces).
pub const DEFAULT_RELAY_SWEEP_INTERVAL_SECS: u64 = 3600;
pub const MIN_RELAY_SWEEP_INTERVAL_SECS: u64 = 300;
pub const MAX_RELAY_SWEEP_INTERVAL_SECS: u64 = 24 * 3600;

/// The clinic's relay (see `crates/relay`): its endpoints, and how
/// watching changes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relay {
    pub base: Url,
    /// `{relay_url}/oauth/token`: the code exchange and refreshes.
    pub token_url: Url,
    /// `{relay_url}/oauth/revoke`.
    pub revoke_url: Url,
    /// `{relay_url}/v1/events`: Server-Sent Events of the clinic's lab orders.
    pub events_url: Url,
    /// Results are pushed (US environments and custom); Canadian clinics
    /// get no lab webhooks, so there the relay only keeps the secret and
    /// polling stays as it is.
    pub push: bool,
    /// While the push stream is connected, how often the order list is read.
    pub sweep_interval: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Environment {
    UsSandbox,
    CaSandbox,
    UsProduction,
    CaProduction,
    Custom,
}

impl Environment {
    pub const ALL: [Environment; 5] = [
        Environment::UsSandbox,
        Environment::CaSandbox,
        Environment::UsProduction,
        Environment::CaProduction,
        Environment::Custom,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Environment::UsSandbox => "us-sandbox",
            Environment::CaSandbox => "ca-sandbox",
            Environment::UsProduction => "us-production",
            Environment::CaProduction => "ca-production",
            Environment::Custom => "custom",
        }
    }

    /// (API host, practitioner web app host) from Fullscript's newest
    /// integration-environments table (see `shared/fullscript-api.md` §1).
    /// The API's base URL (`https://…/api`); `None` for `custom`.
    pub fn api_base(self) -> Option<String> {
        self.hosts().map(|(api, _)| format!("https://{api}/api"))
    }

    fn hosts(self) -> Option<(&'static str, &'static str)> {
        match self {
            Environment::UsSandbox => Some(("api-us-snd.fullscript.io", "us-snd.fullscript.io")),
            Environment::CaSandbox => Some(("api-ca-snd.fullscript.io", "ca-snd.fullscript.io")),
            Environment::UsProduction => Some(("api-us.fullscript.com", "us.fullscript.com")),
            Environment::CaProduction => Some(("api-ca.fullscript.com", "ca.fullscript.com")),
            Environment::Custom => None,
        }
    }
}

/// Where the clinic's Fullscript account lives, in the words the first
/// screen uses ("United States" / "Canada").
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    Us,
    Ca,
}

impl Environment {
    pub fn region(self) -> Option<Region> {
        match self {
            Environment::UsSandbox | Environment::UsProduction => Some(Region::Us),
            Environment::CaSandbox | Environment::CaProduction => Some(Region::Ca),
            Environment::Custom => None,
        }
    }

    pub fn is_sandbox(self) -> bool {
        matches!(self, Environment::UsSandbox | Environment::CaSandbox)
    }

    /// The same kind of environment (sandbox or production) in `region`: a
    /// registration belongs to one kind, so the first screen's country
    /// choice never moves a sandbox app to production. Custom stays custom.
    pub fn in_region(self, region: Region) -> Environment {
        match (self.is_sandbox(), self, region) {
            (_, Environment::Custom, _) => Environment::Custom,
            (true, _, Region::Us) => Environment::UsSandbox,
            (true, _, Region::Ca) => Environment::CaSandbox,
            (false, _, Region::Us) => Environment::UsProduction,
            (false, _, Region::Ca) => Environment::CaProduction,
        }
    }
}

impl FromStr for Environment {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Environment::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| {
                format!("unknown environment `{s}` (expected us-sandbox, ca-sandbox, us-production, ca-production or custom)")
            })
    }
}

impl std::fmt::Display for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every URL the app talks to or opens.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoints {
    /// e.g. `https://api-us-snd.fullscript.io/api`; paths like `/clinic` are appended.
    pub api_base: Url,
    pub authorize_url: Url,
    pub token_url: Url,
    pub revoke_url: Url,
    /// Template of an order's results page; `{id}` stands for the lab order id.
    pub results_url: String,
    /// Where a summary notification's click goes when there is no window to show.
    pub labs_url: Url,
    /// Extra origins result documents may be opened from (`document_hosts`).
    pub document_hosts: Vec<Url>,
}

impl Endpoints {
    /// The results page of one order.
    pub fn results_url_for(&self, order_id: &str) -> Option<Url> {
        let encoded: String = url::form_urlencoded::byte_serialize(order_id.as_bytes()).collect();
        Url::parse(&self.results_url.replace("{id}", &encoded)).ok()
    }
}

/// Where tokens and the client secret are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenStorageChoice {
    /// The OS keychain when it answers, else a 0600 file (and say so).
    Auto,
    Keychain,
    File,
}

/// How much a notification says (they appear on lock screens and in
/// notification centres, where anyone passing by can read them).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum NotificationDetail {
    /// The patient's name and the test.
    Full,
    /// The test, never the patient (the default).
    #[default]
    Test,
    /// "New lab result", nothing else.
    Generic,
}

impl NotificationDetail {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationDetail::Full => "full",
            NotificationDetail::Test => "test",
            NotificationDetail::Generic => "generic",
        }
    }
}

impl FromStr for NotificationDetail {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(NotificationDetail::Full),
            "test" => Ok(NotificationDetail::Test),
            "generic" => Ok(NotificationDetail::Generic),
            other => Err(format!(
                "`{other}` is not one of full (patient and test), test (test only), generic (\"New lab result\")"
            )),
        }
    }
}

/// Which result states raise a notification.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct NotifyStates {
    pub partial_results: bool,
    pub results_ready: bool,
    pub results_amended: bool,
}

impl Default for NotifyStates {
    fn default() -> Self {
        NotifyStates {
            partial_results: true,
            results_ready: true,
            results_amended: true,
        }
    }
}

impl NotifyStates {
    pub fn allows(&self, state: &LabState) -> bool {
        match state {
            LabState::PartialResults => self.partial_results,
            LabState::ResultsReady => self.results_ready,
            LabState::ResultsAmended => self.results_amended,
            _ => false,
        }
    }

    pub fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.partial_results {
            v.push("partial_results");
        }
        if self.results_ready {
            v.push("results_ready");
        }
        if self.results_amended {
            v.push("results_amended");
        }
        v
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from (it may not exist yet: then every key is a default).
    pub path: PathBuf,
    pub environment: Environment,
    pub client_id: Option<String>,
    /// From `FSN_CLIENT_SECRET` or the file; otherwise the secret store holds it.
    pub client_secret: Option<Secret>,
    pub redirect_uri: Url,
    pub endpoints: Endpoints,
    pub poll_interval: Duration,
    /// Every N-th cycle is a full sweep of all lab orders.
    pub sweep_every: u32,
    pub notify_states: NotifyStates,
    /// What notifications say; `show_patient_names = true` (older files) means `full`.
    pub notification_detail: NotificationDetail,
    /// `notification_detail == full` (kept for older callers).
    pub show_patient_names: bool,
    pub sound: bool,
    /// More alerts than this at once become one summary notification.
    pub summary_threshold: usize,
    pub request_timeout: Duration,
    /// Client-side ceiling on requests per rolling 5 minutes (Fullscript allows 5000 for the whole app).
    pub request_budget_per_5min: u32,
    pub token_storage: TokenStorageChoice,
    /// How long `login` waits for the browser to come back.
    pub login_timeout: Duration,
    /// The update feed (`latest.json`); https, or http on this computer.
    pub update_url: Url,
    /// Check the feed once a day (`daily`) or never.
    pub update_check: UpdateCheck,
    /// Outside these hours (when enabled) result alerts are held for a digest.
    pub clinic_hours: ClinicHoursSetting,
    /// Unknown keys found in the file (reported, not fatal: a newer version may have written them).
    pub unknown_keys: Vec<String>,
    /// The file itself holds `client_secret` (so it must stay private).
    pub client_secret_in_file: bool,
    /// The computer's defaults file that lies under this one, if any.
    pub defaults_file: Option<PathBuf>,
    /// The clinic's relay (`relay_url`, `FSN_RELAY_URL`, or this build's
    /// `FSN_BUILD_RELAY_URL`): token, refresh and revoke go through it
    /// (it adds the registration's secret, which this app then never
    /// holds), and results are pushed from it.
    pub relay: Option<Relay>,
    /// The client id comes from the defaults file or this build (not the
    /// user's file or `FSN_CLIENT_ID`): the practitioner need not see it.
    pub registration_preset: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("{}: `{key}`: {message}", path.display())]
pub struct ConfigError {
    pub path: PathBuf,
    pub key: String,
    pub message: String,
}

/// The file as written (over the layers beneath it): every key typed by
/// serde, an absent key its default. Each key's check, with the sentence
/// that says what is wrong, is a small method below; [`ConfigFile::check`]
/// puts them together.
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(default)]
struct ConfigFile {
    environment: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    redirect_uri: String,
    api_base: Option<String>,
    authorize_url: Option<String>,
    token_url: Option<String>,
    revoke_url: Option<String>,
    results_url: Option<String>,
    labs_url: Option<String>,
    document_hosts: Vec<String>,
    poll_interval_secs: i64,
    sweep_every: i64,
    notify_states: Option<Vec<String>>,
    notification_detail: Option<String>,
    /// The older name of `notification_detail = "full"`.
    show_patient_names: Option<bool>,
    sound: bool,
    summary_threshold: i64,
    request_timeout_secs: f64,
    request_budget_per_5min: i64,
    token_storage: Option<String>,
    login_timeout_secs: i64,
    update_url: String,
    update_check: Option<String>,
    clinic_hours: Option<ClinicHoursFile>,
    relay_url: Option<String>,
    relay_sweep_interval_secs: i64,
}

impl Default for ConfigFile {
    fn default() -> Self {
        ConfigFile {
            environment: None,
            client_id: None,
            client_secret: None,
            redirect_uri: DEFAULT_REDIRECT_URI.into(),
            api_base: None,
            authorize_url: None,
            token_url: None,
            revoke_url: None,
            results_url: None,
            labs_url: None,
            document_hosts: Vec::new(),
            poll_interval_secs: DEFAULT_POLL_INTERVAL_SECS as i64,
            sweep_every: 10,
            notify_states: None,
            notification_detail: None,
            show_patient_names: None,
            sound: true,
            summary_threshold: 3,
            request_timeout_secs: 20.0,
            request_budget_per_5min: 600,
            token_storage: None,
            login_timeout_secs: 300,
            update_url: DEFAULT_UPDATE_URL.into(),
            update_check: None,
            clinic_hours: None,
            relay_url: None,
            relay_sweep_interval_secs: DEFAULT_RELAY_SWEEP_INTERVAL_SECS as i64,
        }
    }
}

/// `[clinic_hours]`: present means on unless `enabled = false`.
#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct ClinicHoursFile {
    enabled: Option<bool>,
    days: Option<Vec<String>>,
    open: Option<String>,
    close: Option<String>,
}

/// A key's check failed: which key (a nested one as `table.key`), and why.
type Check<T> = Result<T, (&'static str, String)>;

/// The keys this version reads: the fields of [`ConfigFile`] (others are
/// reported, not fatal: a newer version may have written them).
fn known_keys() -> Vec<String> {
    let mut keys: Vec<String> = match serde_json::to_value(ConfigFile::default()) {
        Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    };
    // Longest first, so that a message naming `update_url` is not taken
    // for a shorter key it contains; the same order in every build.
    keys.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    keys
}

impl ConfigFile {
    fn environment(&self) -> Check<Environment> {
        match &self.environment {
            Some(e) => Environment::from_str(e).map_err(|m| ("environment", m)),
            None => Ok(Environment::UsSandbox),
        }
    }

    /// One of the URL keys: https, or plain http on loopback in the
    /// custom environment (the simulator, a local proxy).
    fn url(key: &'static str, value: Option<&str>, custom: bool) -> Check<Option<Url>> {
        let Some(v) = value else { return Ok(None) };
        let url = Url::parse(v).map_err(|e| (key, format!("not a URL ({e}): {v}")))?;
        match url.scheme() {
            "https" => Ok(Some(url)),
            "http" if custom && is_loopback_host(&url) => Ok(Some(url)),
            "http" if custom => Err((
                key,
                "plain http is only allowed for loopback hosts (127.0.0.1, localhost)".into(),
            )),
            _ => Err((
                key,
                "must be an https URL (http only in the custom environment, on loopback)".into(),
            )),
        }
    }

    /// `results_url`: a URL with `{id}` where the lab order id goes.
    fn results_url(&self, custom: bool) -> Check<Option<String>> {
        let Some(t) = &self.results_url else {
            return Ok(None);
        };
        let probe = t.replace("{id}", "00000000-0000-0000-0000-000000000000");
        ConfigFile::url("results_url", Some(&probe), custom)?;
        if !t.contains("{id}") {
            return Err((
                "results_url",
                "must contain {id} where the lab order id goes".into(),
            ));
        }
        Ok(Some(t.clone()))
    }

    /// Fullscript's URLs: the environment's, each overridable; all of them
    /// given for `custom`.
    fn endpoints(&self, environment: Environment) -> Check<Endpoints> {
        let custom = environment == Environment::Custom;
        let url = |key, v: &Option<String>| ConfigFile::url(key, v.as_deref(), custom);
        let api_base = url("api_base", &self.api_base)?;
        let authorize_url = url("authorize_url", &self.authorize_url)?;
        let token_url = url("token_url", &self.token_url)?;
        let revoke_url = url("revoke_url", &self.revoke_url)?;
        let labs_url = url("labs_url", &self.labs_url)?;
        let mut document_hosts = Vec::new();
        for h in &self.document_hosts {
            if let Some(u) = ConfigFile::url("document_hosts", Some(h), custom)? {
                document_hosts.push(u);
            }
        }
        let results_url = self.results_url(custom)?;
        match environment.hosts() {
            Some((api, web)) => {
                let fixed = |s: String| Url::parse(&s).expect("built-in URLs are valid");
                Ok(Endpoints {
                    api_base: api_base.unwrap_or_else(|| fixed(format!("https://{api}/api"))),
                    authorize_url: authorize_url
                        .unwrap_or_else(|| fixed(format!("https://{api}/api/oauth/authorize"))),
                    token_url: token_url
                        .unwrap_or_else(|| fixed(format!("https://{api}/api/oauth/token"))),
                    revoke_url: revoke_url
                        .unwrap_or_else(|| fixed(format!("https://{api}/api/oauth/revoke"))),
                    results_url: results_url
                        .unwrap_or_else(|| format!("https://{web}/labs/orders/{{id}}")),
                    labs_url: labs_url.unwrap_or_else(|| fixed(format!("https://{web}/"))),
                    document_hosts,
                })
            }
            None => {
                let need = |key: &'static str, v: Option<Url>| {
                    v.ok_or((key, "required when environment = \"custom\"".to_string()))
                };
                let results_url = results_url.ok_or((
                    "results_url",
                    "required when environment = \"custom\"".to_string(),
                ))?;
                let labs_url = match labs_url {
                    Some(u) => u,
                    None => {
                        let mut u = Url::parse(&results_url.replace("{id}", "x"))
                            .map_err(|e| ("results_url", e.to_string()))?;
                        u.set_path("/");
                        u.set_query(None);
                        u
                    }
                };
                Ok(Endpoints {
                    api_base: need("api_base", api_base)?,
                    authorize_url: need("authorize_url", authorize_url)?,
                    token_url: need("token_url", token_url)?,
                    revoke_url: need("revoke_url", revoke_url)?,
                    results_url,
                    labs_url,
                    document_hosts,
                })
            }
        }
    }

    /// Where the app listens for Fullscript's redirect: loopback, fixed port.
    fn redirect_uri(&self) -> Check<Url> {
        let raw = &self.redirect_uri;
        let url =
            Url::parse(raw).map_err(|e| ("redirect_uri", format!("not a URL ({e}): {raw}")))?;
        if url.scheme() != "http" || !is_loopback_host(&url) || url.port().is_none() {
            return Err((
                "redirect_uri",
                "must be a loopback URL with a fixed port, e.g. http://127.0.0.1:47821/callback (the app listens there for Fullscript's redirect)".into(),
            ));
        }
        Ok(url)
    }

    fn poll_interval(&self) -> Check<Duration> {
        let poll = self.poll_interval_secs;
        let range = MIN_POLL_INTERVAL_SECS..=MAX_POLL_INTERVAL_SECS;
        match u64::try_from(poll) {
            Ok(secs) if range.contains(&secs) => Ok(Duration::from_secs(secs)),
            _ => Err((
                "poll_interval_secs",
                format!("{poll} is out of range: between {MIN_POLL_INTERVAL_SECS} and {MAX_POLL_INTERVAL_SECS} seconds"),
            )),
        }
    }

    fn sweep_every(&self) -> Check<u32> {
        let n = self.sweep_every;
        u32::try_from(n)
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or((
                "sweep_every",
                format!("{n} is out of range: 1 to 1000 cycles"),
            ))
    }

    fn notify_states(&self) -> Check<NotifyStates> {
        let Some(list) = &self.notify_states else {
            return Ok(NotifyStates::default());
        };
        let mut n = NotifyStates {
            partial_results: false,
            results_ready: false,
            results_amended: false,
        };
        for s in list {
            match LabState::parse(s) {
                LabState::PartialResults => n.partial_results = true,
                LabState::ResultsReady => n.results_ready = true,
                LabState::ResultsAmended => n.results_amended = true,
                _ => {
                    return Err((
                        "notify_states",
                        format!("`{s}` cannot notify (choose from partial_results, results_ready, results_amended)"),
                    ))
                }
            }
        }
        Ok(n)
    }

    /// `notification_detail`, or the older `show_patient_names = true`.
    fn notification_detail(&self) -> Check<NotificationDetail> {
        match (&self.notification_detail, self.show_patient_names) {
            (Some(d), _) => NotificationDetail::from_str(d).map_err(|m| ("notification_detail", m)),
            (None, Some(true)) => Ok(NotificationDetail::Full),
            (None, _) => Ok(NotificationDetail::Test),
        }
    }

    fn summary_threshold(&self) -> Check<usize> {
        usize::try_from(self.summary_threshold)
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or(("summary_threshold", "must be between 1 and 100".into()))
    }

    fn request_timeout(&self) -> Check<Duration> {
        let t = self.request_timeout_secs;
        if t.is_finite() && (0.1..=300.0).contains(&t) {
            Ok(Duration::from_secs_f64(t))
        } else {
            Err((
                "request_timeout_secs",
                "must be between 0.1 and 300 seconds".into(),
            ))
        }
    }

    fn request_budget(&self) -> Check<u32> {
        u32::try_from(self.request_budget_per_5min)
            .ok()
            .filter(|n| (10..=4000).contains(n))
            .ok_or((
                "request_budget_per_5min",
                "must be between 10 and 4000 (Fullscript allows 5000 per 5 minutes for the whole app)".into(),
            ))
    }

    fn token_storage(&self) -> Check<TokenStorageChoice> {
        match self.token_storage.as_deref() {
            None | Some("auto") => Ok(TokenStorageChoice::Auto),
            Some("keychain") => Ok(TokenStorageChoice::Keychain),
            Some("file") => Ok(TokenStorageChoice::File),
            Some(other) => Err((
                "token_storage",
                format!("`{other}` is not one of auto, keychain, file"),
            )),
        }
    }

    fn login_timeout(&self) -> Check<Duration> {
        u64::try_from(self.login_timeout_secs)
            .ok()
            .filter(|n| (1..=3600).contains(n))
            .map(Duration::from_secs)
            .ok_or(("login_timeout_secs", "must be between 1 and 3600".into()))
    }

    /// The update feed: https, or http on this computer.
    fn update_url(&self) -> Check<Url> {
        let raw = &self.update_url;
        let url = Url::parse(raw).map_err(|e| ("update_url", format!("not a URL ({e}): {raw}")))?;
        crate::urls::check_update_transport(&url).map_err(|e| ("update_url", e.to_string()))?;
        Ok(url)
    }

    fn update_check(&self) -> Check<UpdateCheck> {
        match self.update_check.as_deref() {
            None | Some("daily") => Ok(UpdateCheck::Daily),
            Some("never") => Ok(UpdateCheck::Never),
            Some(other) => Err((
                "update_check",
                format!("`{other}` is not one of daily, never"),
            )),
        }
    }

    /// `relay_url` (`FSN_RELAY_URL` wins): https, or plain http on this
    /// computer (a relay run beside the app, the tests).
    fn relay(&self, environment: Environment) -> Check<Option<Relay>> {
        let raw = env_string("FSN_RELAY_URL").or_else(|| {
            self.relay_url
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        });
        let Some(raw) = raw else { return Ok(None) };
        let mut base =
            Url::parse(&raw).map_err(|e| ("relay_url", format!("not a URL ({e}): {raw}")))?;
        match base.scheme() {
            "https" => {}
            "http" if is_loopback_host(&base) => {}
            _ => {
                return Err((
                    "relay_url",
                    "must be an https URL (plain http only on this computer)".into(),
                ))
            }
        }
        if base.query().is_some() || base.fragment().is_some() || base.cannot_be_a_base() {
            return Err((
                "relay_url",
                "must be a plain base URL, without ? or #".into(),
            ));
        }
        // `https://relay.example/` and `https://relay.example` mean the same.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let join = |p: &str| base.join(p).map_err(|e| ("relay_url", e.to_string()));
        let secs = self.relay_sweep_interval_secs;
        let range = MIN_RELAY_SWEEP_INTERVAL_SECS..=MAX_RELAY_SWEEP_INTERVAL_SECS;
        let sweep_interval = match u64::try_from(secs) {
            Ok(s) if range.contains(&s) => Duration::from_secs(s),
            _ => {
                return Err((
                    "relay_sweep_interval_secs",
                    format!("{secs} is out of range: between {MIN_RELAY_SWEEP_INTERVAL_SECS} and {MAX_RELAY_SWEEP_INTERVAL_SECS} seconds"),
                ))
            }
        };
        Ok(Some(Relay {
            token_url: join("oauth/token")?,
            revoke_url: join("oauth/revoke")?,
            events_url: join("v1/events")?,
            // Fullscript sends lab webhooks for US clinics only.
            push: environment.region() != Some(Region::Ca),
            sweep_interval,
            base,
        }))
    }

    /// `[clinic_hours]`: days and times; absent keys are weekdays 8 to 6.
    fn clinic_hours(&self) -> Check<ClinicHoursSetting> {
        let Some(h) = &self.clinic_hours else {
            return Ok(ClinicHoursSetting::default());
        };
        let default = ClinicHours::weekdays();
        let days: Vec<String> = match &h.days {
            Some(d) => d.clone(),
            None => default.day_names().iter().map(|s| s.to_string()).collect(),
        };
        let fmt = |t: chrono::NaiveTime| t.format("%H:%M").to_string();
        let open = h.open.clone().unwrap_or_else(|| fmt(default.open));
        let close = h.close.clone().unwrap_or_else(|| fmt(default.close));
        let hours = ClinicHours::parse(&days, &open, &close).map_err(|e| {
            let key = match e {
                HoursError::Day(_) | HoursError::NoDays => "clinic_hours.days",
                HoursError::Time(ref t) if *t == open.trim() => "clinic_hours.open",
                HoursError::Time(_) => "clinic_hours.close",
            };
            (key, e.to_string())
        })?;
        Ok(ClinicHoursSetting {
            enabled: h.enabled.unwrap_or(true),
            hours,
        })
    }

    /// Every key checked, the environment's overrides applied.
    fn check(self, path: &Path, unknown_keys: Vec<String>, secret_in_file: bool) -> Check<Config> {
        let environment = self.environment()?;
        let notification_detail = self.notification_detail()?;
        let relay = self.relay(environment)?;
        let mut endpoints = self.endpoints(environment)?;
        if let Some(r) = &relay {
            endpoints.token_url = r.token_url.clone();
            endpoints.revoke_url = r.revoke_url.clone();
        }
        Ok(Config {
            path: path.to_path_buf(),
            environment,
            endpoints,
            redirect_uri: self.redirect_uri()?,
            poll_interval: self.poll_interval()?,
            sweep_every: self.sweep_every()?,
            notify_states: self.notify_states()?,
            notification_detail,
            show_patient_names: notification_detail == NotificationDetail::Full,
            sound: self.sound,
            summary_threshold: self.summary_threshold()?,
            request_timeout: self.request_timeout()?,
            request_budget_per_5min: self.request_budget()?,
            token_storage: self.token_storage()?,
            update_url: self.update_url()?,
            update_check: self.update_check()?,
            clinic_hours: self.clinic_hours()?,
            login_timeout: self.login_timeout()?,
            // The environment wins over every file.
            client_id: env_string("FSN_CLIENT_ID")
                .or(self.client_id.filter(|s| !s.trim().is_empty())),
            // With a relay the app holds no secret: one configured anyway is
            // not read (and `App::open` says so).
            client_secret: env_string("FSN_CLIENT_SECRET")
                .or(self.client_secret.filter(|s| !s.trim().is_empty()))
                .filter(|_| relay.is_none())
                .map(Secret::new),
            relay,
            unknown_keys,
            client_secret_in_file: secret_in_file,
            defaults_file: None,
            registration_preset: false,
        })
    }
}

/// Where releases are published (the update feed the app reads by default).
pub const DEFAULT_UPDATE_URL: &str =
    "https://example.invalid/fullscript-lab-notifier/releases/latest/download/latest.json";

/// Whether the app looks for updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdateCheck {
    Daily,
    Never,
}

/// Where the config file and the data directory are.
#[derive(Debug, Clone)]
pub struct Paths {
    pub config_file: PathBuf,
    pub data_dir: PathBuf,
}

impl Paths {
    /// `--config`/`--data-dir` (already merged with `FSN_CONFIG`/`FSN_DATA_DIR`
    /// by the CLI) win over the platform directories.
    pub fn resolve(
        config_file: Option<PathBuf>,
        data_dir: Option<PathBuf>,
    ) -> Result<Paths, ConfigError> {
        let config_file = config_file.or_else(|| env_path("FSN_CONFIG"));
        let data_dir = data_dir.or_else(|| env_path("FSN_DATA_DIR"));
        let dirs = directories::ProjectDirs::from("", "", APP_DIR);
        let config_file = match (config_file, &dirs) {
            (Some(p), _) => p,
            (None, Some(d)) => d.config_dir().join("config.toml"),
            (None, None) => {
                return Err(ConfigError {
                    path: PathBuf::from("config.toml"),
                    key: "--config".into(),
                    message: "no home directory found; pass --config PATH or set FSN_CONFIG".into(),
                })
            }
        };
        let data_dir = match (data_dir, &dirs) {
            (Some(p), _) => p,
            (None, Some(d)) => d.data_dir().to_path_buf(),
            (None, None) => {
                return Err(ConfigError {
                    path: config_file.clone(),
                    key: "--data-dir".into(),
                    message: "no home directory found; pass --data-dir PATH or set FSN_DATA_DIR"
                        .into(),
                })
            }
        };
        Ok(Paths {
            config_file,
            data_dir,
        })
    }

    pub fn log_dir(&self) -> PathBuf {
        self.data_dir.join("logs")
    }

    pub fn database(&self) -> PathBuf {
        self.data_dir.join("lab-notifier.sqlite3")
    }

    /// Create the data directory readable only by the user (0700).
    pub fn ensure_data_dir(&self) -> std::io::Result<()> {
        crate::files::ensure_private_dir(&self.data_dir)
    }
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn env_string(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

pub use crate::urls::is_loopback_host;

impl crate::urls::UrlGuard {
    /// The link rules for this configuration's hosts.
    pub fn new(config: &Config) -> crate::urls::UrlGuard {
        crate::urls::UrlGuard::from_parts(
            config.result_origins(),
            config.endpoints.authorize_url.clone(),
            config.environment == Environment::Custom,
            config.update_url.clone(),
        )
    }
}

/// Where a clinic's IT (or whoever packaged the app) sets the registration
/// once for every user of the computer: `FSN_DEFAULTS`, else
/// `/etc/fullscript-notifier/defaults.toml` (Linux),
/// `/Library/Application Support/fullscript-notifier/defaults.toml` (macOS),
/// `%PROGRAMDATA%\fullscript-notifier\defaults.toml` (Windows).
pub fn defaults_file() -> Option<PathBuf> {
    if let Some(p) = env_path("FSN_DEFAULTS") {
        return Some(p);
    }
    if cfg!(target_os = "windows") {
        return env_path("PROGRAMDATA").map(|d| d.join(APP_DIR).join("defaults.toml"));
    }
    if cfg!(target_os = "macos") {
        return Some(
            Path::new("/Library/Application Support")
                .join(APP_DIR)
                .join("defaults.toml"),
        );
    }
    Some(Path::new("/etc").join(APP_DIR).join("defaults.toml"))
}

/// What lies under the user's config file, lowest first: values compiled
/// into this build (`FSN_BUILD_CLIENT_ID`, `FSN_BUILD_ENVIRONMENT`,
/// `FSN_BUILD_CLIENT_SECRET` at build time), then the defaults file. The
/// user's file, then `FSN_CLIENT_ID`/`FSN_CLIENT_SECRET`, win over both.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    table: toml::Table,
    /// The defaults file that was read, if one exists.
    pub defaults_file: Option<PathBuf>,
}

impl Layers {
    /// Nothing under the user's file (tests).
    pub fn none() -> Layers {
        Layers::default()
    }

    /// What this build and this computer provide. A defaults file that
    /// cannot be read or is wrong is an error naming that file: the IT
    /// person who wrote it is the one who can fix it.
    pub fn system() -> Result<Layers, ConfigError> {
        Layers::read(defaults_file().as_deref())
    }

    pub fn read(defaults: Option<&Path>) -> Result<Layers, ConfigError> {
        // A build that talks through a relay must not carry the secret the
        // relay exists to keep off desktops.
        const _: () = assert!(
            !(option_env!("FSN_BUILD_RELAY_URL").is_some()
                && option_env!("FSN_BUILD_CLIENT_SECRET").is_some()),
            "FSN_BUILD_RELAY_URL and FSN_BUILD_CLIENT_SECRET exclude each other: with a relay the app holds no client secret"
        );
        let mut table = toml::Table::new();
        for (key, value) in [
            ("client_id", option_env!("FSN_BUILD_CLIENT_ID")),
            ("environment", option_env!("FSN_BUILD_ENVIRONMENT")),
            ("client_secret", option_env!("FSN_BUILD_CLIENT_SECRET")),
            ("relay_url", option_env!("FSN_BUILD_RELAY_URL")),
        ] {
            if let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) {
                table.insert(key.into(), toml::Value::String(v.into()));
            }
        }
        let mut defaults_file = None;
        if let Some(path) = defaults {
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    let file = parse_table(path, &text)?;
                    table.extend(file);
                    // Checked on its own, so its mistakes name it.
                    Config::from_table(path, table.clone(), false)?;
                    defaults_file = Some(path.to_path_buf());
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(ConfigError {
                        path: path.to_path_buf(),
                        key: "(file)".into(),
                        message: format!("cannot read the defaults file: {e}"),
                    })
                }
            }
        }
        Ok(Layers {
            table,
            defaults_file,
        })
    }

    /// The value a key has before the user's file (for not copying it there).
    fn get_str(&self, key: &str) -> Option<&str> {
        self.table.get(key).and_then(|v| v.as_str())
    }
}

/// The key a type error is about: the one the message names, else the
/// first that does not read on its own.
fn wrong_type_key(table: &toml::Table, known: &[String], message: &str) -> String {
    let present = || known.iter().filter(|k| table.contains_key(k.as_str()));
    present()
        .find(|k| message.contains(k.as_str()))
        .or_else(|| {
            present().find(|k| {
                table.get(k.as_str()).is_some_and(|v| {
                    toml::Value::Table(toml::Table::from_iter([(k.to_string(), v.clone())]))
                        .try_into::<ConfigFile>()
                        .is_err()
                })
            })
        })
        .cloned()
        .unwrap_or_else(|| "(value)".into())
}

fn parse_table(path: &Path, text: &str) -> Result<toml::Table, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let span = e
            .span()
            .map(|s| format!(" (at byte {})", s.start))
            .unwrap_or_default();
        ConfigError {
            path: path.to_path_buf(),
            key: "(syntax)".into(),
            message: format!("{}{span}", e.message()),
        }
    })
}

impl Config {
    /// Read the file (a missing file means all defaults) over what this
    /// build and the computer's defaults file provide, and the environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with(path, &Layers::system()?)
    }

    pub fn load_with(path: &Path, layers: &Layers) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                return Err(ConfigError {
                    path: path.to_path_buf(),
                    key: "(file)".into(),
                    message: format!("cannot read the file: {e}"),
                })
            }
        };
        Config::parse_with(path, &text, layers)
    }

    /// The user's file alone (tests, and checks of a file's own text).
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        Config::parse_with(path, text, &Layers::none())
    }

    pub fn parse_with(path: &Path, text: &str, layers: &Layers) -> Result<Config, ConfigError> {
        let user = parse_table(path, text)?;
        let secret_in_file = user
            .get("client_secret")
            .and_then(|v| v.as_str())
            .is_some_and(|s| !s.trim().is_empty());
        let preset = layers.table.contains_key("client_id")
            && !user.contains_key("client_id")
            && env_string("FSN_CLIENT_ID").is_none();
        let mut table = layers.table.clone();
        table.extend(user);
        let mut config = Config::from_table(path, table, secret_in_file)?;
        config.defaults_file = layers.defaults_file.clone();
        config.registration_preset = preset;
        Ok(config)
    }

    /// The merged layers read into the typed file, then checked key by
    /// key; every error names the file and the key.
    fn from_table(
        path: &Path,
        table: toml::Table,
        client_secret_in_file: bool,
    ) -> Result<Config, ConfigError> {
        let err = |key: &str, message: String| ConfigError {
            path: path.to_path_buf(),
            key: key.to_string(),
            message,
        };
        let known = known_keys();
        let unknown_keys: Vec<String> = table
            .keys()
            .filter(|k| !known.contains(k))
            .cloned()
            .collect();
        let file: ConfigFile =
            toml::Value::Table(table.clone())
                .try_into()
                .map_err(|e: toml::de::Error| {
                    let key = wrong_type_key(&table, &known, e.message());
                    err(&key, format!("wrong type: {}", e.message()))
                })?;
        file.check(path, unknown_keys, client_secret_in_file)
            .map_err(|(key, message)| err(key, message))
    }

    /// Origins (scheme, host, port) result links may be opened on: the
    /// practitioner web app (results pages, the labs page) and the document
    /// hosts configured in `document_hosts`. Never the API or OAuth host as
    /// such: a result link there could be a consent page for another app.
    pub fn result_origins(&self) -> Vec<url::Origin> {
        let e = &self.endpoints;
        let mut origins = vec![e.labs_url.origin()];
        if let Some(u) = e.results_url_for("x") {
            origins.push(u.origin());
        }
        if let Some((_, web)) = self.environment.hosts() {
            if let Ok(u) = Url::parse(&format!("https://{web}/")) {
                origins.push(u.origin());
            }
        }
        origins.extend(e.document_hosts.iter().map(Url::origin));
        origins.dedup();
        origins
    }
}

/// A change the settings screen or the sign-in screen makes to the file.
#[derive(Debug, Clone, Default)]
pub struct SettingsUpdate {
    pub environment: Option<Environment>,
    pub client_id: Option<String>,
    pub poll_interval_secs: Option<u64>,
    pub notify_states: Option<NotifyStates>,
    pub notification_detail: Option<NotificationDetail>,
    pub sound: Option<bool>,
    pub clinic_hours: Option<ClinicHoursSetting>,
}

/// Write `update` into the config file, keeping everything else (comments
/// included), then re-read it so the result is validated like any config.
pub fn write_settings(path: &Path, update: &SettingsUpdate) -> Result<Config, ConfigError> {
    write_settings_with(path, update, &Layers::system()?)
}

/// [`write_settings`] over the given layers.
pub fn write_settings_with(
    path: &Path,
    update: &SettingsUpdate,
    layers: &Layers,
) -> Result<Config, ConfigError> {
    let err = |key: &str, message: String| ConfigError {
        path: path.to_path_buf(),
        key: key.to_string(),
        message,
    };
    if let Some(p) = update.poll_interval_secs {
        if !(MIN_POLL_INTERVAL_SECS..=MAX_POLL_INTERVAL_SECS).contains(&p) {
            return Err(err(
                "poll_interval_secs",
                format!("{p} is out of range: between {MIN_POLL_INTERVAL_SECS} and {MAX_POLL_INTERVAL_SECS} seconds"),
            ));
        }
    }
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(err("(file)", format!("cannot read the file: {e}"))),
    };
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| err("(syntax)", e.message().to_string()))?;
    // What the computer's defaults (or this build) already say is not
    // copied into the user's file, so a registration IT changes later is
    // followed.
    let set_unless_default = |doc: &mut toml_edit::DocumentMut, key: &str, value: &str| {
        if doc.contains_key(key) || layers.get_str(key) != Some(value) {
            doc[key] = toml_edit::value(value);
        }
    };
    if let Some(e) = update.environment {
        set_unless_default(&mut doc, "environment", e.as_str());
    }
    if let Some(id) = &update.client_id {
        set_unless_default(&mut doc, "client_id", id.trim());
    }
    if let Some(p) = update.poll_interval_secs {
        doc["poll_interval_secs"] = toml_edit::value(p as i64);
    }
    if let Some(n) = update.notify_states {
        let mut arr = toml_edit::Array::new();
        for s in n.names() {
            arr.push(s);
        }
        doc["notify_states"] = toml_edit::value(arr);
    }
    if let Some(d) = update.notification_detail {
        doc["notification_detail"] = toml_edit::value(d.as_str());
        // One source of truth: the older key, if the file has it, agrees.
        if doc.contains_key("show_patient_names") {
            doc["show_patient_names"] = toml_edit::value(d == NotificationDetail::Full);
        }
    }
    if let Some(b) = update.sound {
        doc["sound"] = toml_edit::value(b);
    }
    if let Some(h) = update.clinic_hours {
        let mut days = toml_edit::Array::new();
        for d in h.hours.day_names() {
            days.push(d);
        }
        let table = doc
            .entry("clinic_hours")
            .or_insert(toml_edit::table())
            .as_table_mut()
            .ok_or_else(|| err("clinic_hours", "must be a table ([clinic_hours])".into()))?;
        table["enabled"] = toml_edit::value(h.enabled);
        table["days"] = toml_edit::value(days);
        table["open"] = toml_edit::value(h.hours.open.format("%H:%M").to_string());
        table["close"] = toml_edit::value(h.hours.close.format("%H:%M").to_string());
    }
    let new_text = doc.to_string();
    // Validate before touching the file.
    let parsed = Config::parse_with(path, &new_text, layers)?;
    write_config_file(path, new_text.as_bytes(), parsed.client_secret_in_file)
        .map_err(|e| err("(file)", format!("cannot write the file: {e}")))?;
    Config::load_with(path, layers)
}

/// Write the config file atomically. Its directory is private (0700); the
/// file keeps its mode, and is 0600 whenever it holds a client secret (a new
/// file is 0600 too: it may be given one later).
fn write_config_file(path: &Path, bytes: &[u8], holds_secret: bool) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            crate::files::ensure_private_dir(parent)?;
        }
    }
    let mode = match crate::files::mode_of(path) {
        Some(m) if !holds_secret => m,
        Some(m) => m & 0o700,
        None => 0o600,
    };
    crate::files::write_atomic(path, bytes, mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/fsn/config.toml"), text)
    }

    #[test]
    fn a_relay_takes_the_token_calls_and_the_secret_is_never_read_with_it() {
        let c = parse(
            "environment = \"us-production\"\nclient_id = \"app\"\nclient_secret = \"left-over\"\nrelay_url = \"https://relay.clinic.example/fsn\"\n",
        )
        .unwrap();
        let relay = c.relay.as_ref().unwrap();
        assert_eq!(
            c.endpoints.token_url.as_str(),
            "https://relay.clinic.example/fsn/oauth/token"
        );
        assert_eq!(
            c.endpoints.revoke_url.as_str(),
            "https://relay.clinic.example/fsn/oauth/revoke"
        );
        assert_eq!(
            relay.events_url.as_str(),
            "https://relay.clinic.example/fsn/v1/events"
        );
        // The browser still signs in at Fullscript itself.
        assert_eq!(
            c.endpoints.authorize_url.as_str(),
            "https://api-us.fullscript.com/api/oauth/authorize"
        );
        assert!(relay.push);
        assert_eq!(relay.sweep_interval, Duration::from_secs(3600));
        assert!(c.client_secret.is_none(), "a relay keeps the secret");

        // Canadian clinics get no lab webhooks: the relay keeps the secret only.
        let ca =
            parse("environment = \"ca-sandbox\"\nrelay_url = \"https://r.example/\"\n").unwrap();
        assert!(!ca.relay.unwrap().push);
    }

    #[test]
    fn a_relay_url_must_be_https_or_on_this_computer_and_its_sweep_in_range() {
        for (text, key) in [
            ("relay_url = \"http://relay.example/\"", "relay_url"),
            ("relay_url = \"https://r.example/?x=1\"", "relay_url"),
            ("relay_url = \"not a url\"", "relay_url"),
            (
                "relay_url = \"https://r.example\"\nrelay_sweep_interval_secs = 10",
                "relay_sweep_interval_secs",
            ),
        ] {
            assert_eq!(parse(text).unwrap_err().key, key, "{text}");
        }
        let local = parse("relay_url = \"http://127.0.0.1:8787\"\nrelay_sweep_interval_secs = 900")
            .unwrap();
        let relay = local.relay.unwrap();
        assert_eq!(relay.base.as_str(), "http://127.0.0.1:8787/");
        assert_eq!(relay.sweep_interval, Duration::from_secs(900));
        assert!(parse("").unwrap().relay.is_none());
    }

    #[test]
    fn the_country_choice_keeps_sandbox_or_production() {
        assert_eq!(
            Environment::UsSandbox.in_region(Region::Ca),
            Environment::CaSandbox
        );
        assert_eq!(
            Environment::CaProduction.in_region(Region::Us),
            Environment::UsProduction
        );
        assert_eq!(
            Environment::Custom.in_region(Region::Ca),
            Environment::Custom
        );
        assert_eq!(Environment::CaSandbox.region(), Some(Region::Ca));
        assert_eq!(Environment::Custom.region(), None);
    }

    #[test]
    fn a_defaults_file_lies_under_the_users_file_and_names_itself_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let defaults = dir.path().join("defaults.toml");
        std::fs::write(
            &defaults,
            "environment = \"ca-production\"\nclient_id = \"clinic-app\"\nclient_secret = \"clinic-secret\"\n",
        )
        .unwrap();
        let layers = Layers::read(Some(&defaults)).unwrap();
        assert_eq!(layers.defaults_file.as_deref(), Some(defaults.as_path()));
        let user = dir.path().join("config.toml");
        let c = Config::parse_with(&user, "poll_interval_secs = 120\n", &layers).unwrap();
        assert_eq!(c.environment, Environment::CaProduction);
        assert_eq!(c.client_id.as_deref(), Some("clinic-app"));
        assert_eq!(
            c.client_secret.as_ref().map(|s| s.expose()),
            Some("clinic-secret")
        );
        assert!(!c.client_secret_in_file, "the user's file holds no secret");
        assert_eq!(c.poll_interval.as_secs(), 120);
        // The user's file wins.
        let c = Config::parse_with(&user, "environment = \"us-production\"\n", &layers).unwrap();
        assert_eq!(c.environment, Environment::UsProduction);
        assert_eq!(c.client_id.as_deref(), Some("clinic-app"));
        // A mistake in the defaults file names that file.
        std::fs::write(&defaults, "environment = \"mars\"\n").unwrap();
        let e = Layers::read(Some(&defaults)).unwrap_err();
        assert_eq!(e.path, defaults);
        assert_eq!(e.key, "environment");
        // No defaults file: nothing under the user's file.
        let none = Layers::read(Some(&dir.path().join("absent.toml"))).unwrap();
        assert!(none.defaults_file.is_none());
    }

    #[test]
    fn sign_in_does_not_copy_the_defaults_into_the_users_file() {
        let dir = tempfile::tempdir().unwrap();
        let defaults = dir.path().join("defaults.toml");
        std::fs::write(
            &defaults,
            "environment = \"us-production\"\nclient_id = \"clinic-app\"\n",
        )
        .unwrap();
        let layers = Layers::read(Some(&defaults)).unwrap();
        let user = dir.path().join("config.toml");
        let c = write_settings_with(
            &user,
            &SettingsUpdate {
                environment: Some(Environment::UsProduction),
                client_id: Some("clinic-app".into()),
                sound: Some(false),
                ..Default::default()
            },
            &layers,
        )
        .unwrap();
        let text = std::fs::read_to_string(&user).unwrap();
        assert!(
            !text.contains("client_id") && !text.contains("environment"),
            "{text}"
        );
        assert!(text.contains("sound = false"));
        assert_eq!(c.client_id.as_deref(), Some("clinic-app"));
    }

    #[test]
    fn clinic_hours_are_a_table_kept_when_switched_off() {
        let c = parse(
            "[clinic_hours]\ndays = [\"mon\", \"fri\"]\nopen = \"07:30\"\nclose = \"16:00\"\n",
        )
        .unwrap();
        let h = c.clinic_hours.active().unwrap();
        assert_eq!(h.day_names(), ["mon", "fri"]);
        assert_eq!(h.open.format("%H:%M").to_string(), "07:30");
        let off = parse("[clinic_hours]\nenabled = false\nopen = \"09:00\"\n").unwrap();
        assert!(off.clinic_hours.active().is_none());
        assert_eq!(
            off.clinic_hours.hours.open.format("%H:%M").to_string(),
            "09:00"
        );
        assert!(
            parse("").unwrap().clinic_hours.active().is_none(),
            "off by default"
        );
        let e = parse("[clinic_hours]\nopen = \"8am\"\n").unwrap_err();
        assert_eq!(e.key, "clinic_hours.open");
        let e = parse("[clinic_hours]\ndays = [\"caturday\"]\n").unwrap_err();
        assert_eq!(e.key, "clinic_hours.days");
        let e = parse("[clinic_hours]\nopens = \"08:00\"\n").unwrap_err();
        assert_eq!(e.key, "clinic_hours");

        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("config.toml");
        std::fs::write(&user, "# mine\nsound = true\n").unwrap();
        let mut setting = crate::schedule::ClinicHoursSetting {
            enabled: true,
            hours: crate::schedule::ClinicHours::parse(&["tue", "thu"], "10:00", "14:00").unwrap(),
        };
        let none = Layers::none();
        let update = |s| SettingsUpdate {
            clinic_hours: Some(s),
            ..Default::default()
        };
        let c = write_settings_with(&user, &update(setting), &none).unwrap();
        assert_eq!(c.clinic_hours, setting);
        setting.enabled = false;
        let c = write_settings_with(&user, &update(setting), &none).unwrap();
        assert_eq!(c.clinic_hours, setting, "switched off, hours kept");
        let text = std::fs::read_to_string(&user).unwrap();
        assert!(text.starts_with("# mine"), "{text}");
    }

    #[test]
    fn defaults_are_the_us_sandbox() {
        let c = parse("").unwrap();
        assert_eq!(c.environment, Environment::UsSandbox);
        assert_eq!(
            c.endpoints.api_base.as_str(),
            "https://api-us-snd.fullscript.io/api"
        );
        assert_eq!(
            c.endpoints.token_url.as_str(),
            "https://api-us-snd.fullscript.io/api/oauth/token"
        );
        assert_eq!(c.redirect_uri.as_str(), DEFAULT_REDIRECT_URI);
        assert_eq!(c.poll_interval, Duration::from_secs(60));
        assert!(!c.show_patient_names);
        assert_eq!(c.notify_states, NotifyStates::default());
    }

    #[test]
    fn production_and_authorize_override() {
        let c = parse(
            "environment = \"ca-production\"\nauthorize_url = \"https://api-ca.fullscript.io/oauth/authorize\"\n",
        )
        .unwrap();
        assert_eq!(
            c.endpoints.api_base.as_str(),
            "https://api-ca.fullscript.com/api"
        );
        assert_eq!(
            c.endpoints.authorize_url.host_str(),
            Some("api-ca.fullscript.io")
        );
    }

    #[test]
    fn custom_needs_every_url_and_allows_loopback_http() {
        let e = parse("environment = \"custom\"\n").unwrap_err();
        assert_eq!(e.key, "results_url");
        let c = parse(
            r#"environment = "custom"
api_base = "http://127.0.0.1:4010/api"
authorize_url = "http://127.0.0.1:4010/api/oauth/authorize"
token_url = "http://127.0.0.1:4010/api/oauth/token"
revoke_url = "http://127.0.0.1:4010/api/oauth/revoke"
results_url = "http://127.0.0.1:4010/labs/orders/{id}"
"#,
        )
        .unwrap();
        assert_eq!(
            c.endpoints.results_url_for("ab-1").unwrap().as_str(),
            "http://127.0.0.1:4010/labs/orders/ab-1"
        );
        assert_eq!(c.endpoints.labs_url.as_str(), "http://127.0.0.1:4010/");
        let e = parse(
            r#"environment = "custom"
api_base = "http://example.com/api"
"#,
        )
        .unwrap_err();
        assert_eq!(e.key, "api_base");
    }

    #[test]
    fn errors_name_the_file_the_key_and_the_problem() {
        let e = parse("poll_interval_secs = 5").unwrap_err();
        assert_eq!(e.key, "poll_interval_secs");
        let text = e.to_string();
        assert!(
            text.starts_with("/etc/fsn/config.toml: `poll_interval_secs`: 5 is out of range"),
            "{text}"
        );

        let e = parse("environment = \"mars\"").unwrap_err();
        assert_eq!(e.key, "environment");
        let e = parse("show_patient_names = \"yes\"").unwrap_err();
        assert_eq!(e.key, "show_patient_names");
        let e = parse("api_base = \"http://api-us-snd.fullscript.io/api\"").unwrap_err();
        assert_eq!(e.key, "api_base");
        let e = parse("redirect_uri = \"https://example.com/cb\"").unwrap_err();
        assert_eq!(e.key, "redirect_uri");
        let e = parse("notify_states = [\"processing\"]").unwrap_err();
        assert_eq!(e.key, "notify_states");
        let e = parse("environment = ").unwrap_err();
        assert_eq!(e.key, "(syntax)");
        let c = parse("future_key = 1").unwrap();
        assert_eq!(c.unknown_keys, vec!["future_key".to_string()]);
    }

    #[test]
    fn notification_detail_defaults_to_the_test_and_reads_the_older_key() {
        assert_eq!(
            parse("").unwrap().notification_detail,
            NotificationDetail::Test
        );
        assert_eq!(
            parse("show_patient_names = true")
                .unwrap()
                .notification_detail,
            NotificationDetail::Full
        );
        assert_eq!(
            parse("show_patient_names = true\nnotification_detail = \"generic\"")
                .unwrap()
                .notification_detail,
            NotificationDetail::Generic
        );
        assert_eq!(
            parse("notification_detail = \"everything\"")
                .unwrap_err()
                .key,
            "notification_detail"
        );
    }

    #[test]
    fn update_feeds_need_https_except_on_this_computer() {
        assert_eq!(parse("").unwrap().update_url.as_str(), DEFAULT_UPDATE_URL);
        assert_eq!(parse("").unwrap().update_check, UpdateCheck::Daily);
        assert!(parse("update_url = \"http://127.0.0.1:8080/latest.json\"").is_ok());
        let e = parse("update_url = \"http://updates.example.com/latest.json\"").unwrap_err();
        assert_eq!(e.key, "update_url");
        assert_eq!(
            parse("update_check = \"weekly\"").unwrap_err().key,
            "update_check"
        );
    }

    #[test]
    fn the_config_file_stays_private_when_it_holds_a_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("conf").join("config.toml");
        write_settings(
            &path,
            &SettingsUpdate {
                sound: Some(false),
                ..Default::default()
            },
        )
        .unwrap();
        #[cfg(unix)]
        {
            assert_eq!(crate::files::mode_of(&path), Some(0o600), "new: private");
            assert_eq!(
                crate::files::mode_of(path.parent().unwrap()),
                Some(0o700),
                "its directory too"
            );
            // A person made it readable; with no secret in it, that is kept.
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
                .unwrap();
            write_settings(
                &path,
                &SettingsUpdate {
                    sound: Some(true),
                    ..Default::default()
                },
            )
            .unwrap();
            assert_eq!(crate::files::mode_of(&path), Some(0o644));
            // With a secret in it, never readable by others.
            let text = std::fs::read_to_string(&path).unwrap() + "client_secret = \"s\"\n";
            std::fs::write(&path, text).unwrap();
            write_settings(
                &path,
                &SettingsUpdate {
                    sound: Some(false),
                    ..Default::default()
                },
            )
            .unwrap();
            assert_eq!(crate::files::mode_of(&path), Some(0o600));
        }
    }

    #[test]
    fn settings_are_written_back_keeping_comments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "# my clinic's settings\nsound = true\n").unwrap();
        let c = write_settings(
            &path,
            &SettingsUpdate {
                poll_interval_secs: Some(120),
                notify_states: Some(NotifyStates {
                    partial_results: false,
                    results_ready: true,
                    results_amended: true,
                }),
                notification_detail: Some(NotificationDetail::Full),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(c.poll_interval, Duration::from_secs(120));
        assert!(!c.notify_states.partial_results);
        assert!(c.show_patient_names);
        assert_eq!(c.notification_detail, NotificationDetail::Full);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# my clinic's settings"));
        assert!(write_settings(
            &path,
            &SettingsUpdate {
                poll_interval_secs: Some(1),
                ..Default::default()
            }
        )
        .is_err());
    }
}
