//! The relay's configuration: a TOML file (`--config PATH` or
//! `FSN_RELAY_CONFIG`), every key also as `FSN_RELAY_<KEY>` (which wins).
//! Errors name the key and what is wrong; secrets are [`Secret`]s, never
//! printed.

use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use fsn_core::config::Environment;
use fsn_core::secret::Secret;
use serde::Deserialize;
use url::Url;

#[derive(Debug, thiserror::Error)]
#[error("relay configuration: `{key}`: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

fn err(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        message: message.into(),
    }
}

/// The file as written; every key optional here, checked below.
#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct File {
    listen: Option<String>,
    public_url: Option<String>,
    environment: Option<String>,
    api_base: Option<String>,
    token_url: Option<String>,
    revoke_url: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    webhook_secret: Option<String>,
    webhook_challenge: Option<String>,
    nats_url: Option<String>,
    log: Option<String>,
    stream_replicas: Option<i64>,
    stream_max_age_days: Option<i64>,
    stream_max_bytes: Option<i64>,
    dedupe_window_hours: Option<i64>,
    signature_tolerance_secs: Option<i64>,
}

/// Every key the file and the environment may set: the fields of [`File`].
pub fn keys() -> Vec<String> {
    match serde_json::to_value(File::default()) {
        Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// Keys whose environment value is a number.
fn numeric(key: &str) -> bool {
    key.starts_with("stream_") || key.ends_with("_hours") || key.ends_with("_secs")
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub public_url: Option<Url>,
    pub environment: Environment,
    pub api_base: Url,
    pub token_url: Url,
    pub revoke_url: Url,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    pub webhook_secret: Secret,
    pub webhook_challenge: Secret,
    pub nats_urls: Vec<String>,
    /// A `tracing` filter (`info`, `fsn_relay=debug`).
    pub log: String,
    pub stream: StreamSettings,
    pub signature_tolerance: Duration,
}

/// The JetStream stream every relay shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    pub replicas: usize,
    pub max_age: Duration,
    pub max_bytes: i64,
    /// Covers Fullscript's whole retry schedule (1 min … 5 h) and more.
    pub dedupe_window: Duration,
}

const HOUR: u64 = 3600;

impl Config {
    /// Read `path` (when given), then the environment over it.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut table = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| err("(file)", format!("cannot read {}: {e}", p.display())))?;
                toml::from_str::<toml::Table>(&text)
                    .map_err(|e| err("(syntax)", e.message().to_string()))?
            }
            None => toml::Table::new(),
        };
        for key in keys() {
            let var = format!("FSN_RELAY_{}", key.to_ascii_uppercase());
            if let Some(v) = std::env::var(&var).ok().filter(|v| !v.trim().is_empty()) {
                let value = match v.trim().parse::<i64>() {
                    Ok(n) if numeric(&key) => toml::Value::Integer(n),
                    _ => toml::Value::String(v),
                };
                table.insert(key, value);
            }
        }
        Config::from_table(table)
    }

    pub fn from_table(table: toml::Table) -> Result<Config, ConfigError> {
        let file: File = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| err("(value)", e.message().to_string()))?;
        let listen = file.listen.as_deref().unwrap_or("127.0.0.1:8787");
        let listen = SocketAddr::from_str(listen)
            .map_err(|e| err("listen", format!("not an address ({e}): {listen}")))?;
        let url = |key: &str, v: &Option<String>| -> Result<Option<Url>, ConfigError> {
            v.as_deref()
                .map(|s| Url::parse(s).map_err(|e| err(key, format!("not a URL ({e}): {s}"))))
                .transpose()
        };
        let public_url = url("public_url", &file.public_url)?;
        let environment = match &file.environment {
            Some(e) => Environment::from_str(e).map_err(|m| err("environment", m))?,
            None => Environment::UsSandbox,
        };
        let (api_base, token_url, revoke_url) = match environment.api_base() {
            Some(base) => {
                let base = Url::parse(&base).map_err(|e| err("environment", e.to_string()))?;
                let join = |p: &str| {
                    Url::parse(&format!("{}{p}", base.as_str().trim_end_matches('/')))
                        .map_err(|e| err("environment", e.to_string()))
                };
                (
                    url("api_base", &file.api_base)?.unwrap_or(base.clone()),
                    url("token_url", &file.token_url)?.map_or_else(|| join("/oauth/token"), Ok)?,
                    url("revoke_url", &file.revoke_url)?
                        .map_or_else(|| join("/oauth/revoke"), Ok)?,
                )
            }
            None => {
                let need = |key: &str, v: &Option<String>| {
                    url(key, v)?.ok_or_else(|| err(key, "required when environment = \"custom\""))
                };
                (
                    need("api_base", &file.api_base)?,
                    need("token_url", &file.token_url)?,
                    need("revoke_url", &file.revoke_url)?,
                )
            }
        };
        let secret = |key: &str, v: Option<String>| {
            v.filter(|s| !s.trim().is_empty())
                .map(Secret::new)
                .ok_or_else(|| err(key, "required"))
        };
        let nats_urls: Vec<String> = file
            .nats_url
            .as_deref()
            .unwrap_or("nats://127.0.0.1:4222")
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if nats_urls.is_empty() {
            return Err(err("nats_url", "names no server"));
        }
        if let Some(bad) = nats_urls
            .iter()
            .find(|u| u.parse::<async_nats::ServerAddr>().is_err())
        {
            return Err(err(
                "nats_url",
                format!("`{bad}` is not a NATS server address"),
            ));
        }
        let ranged = |key: &str, v: Option<i64>, default: i64, lo: i64, hi: i64| {
            let n = v.unwrap_or(default);
            if (lo..=hi).contains(&n) {
                Ok(n)
            } else {
                Err(err(key, format!("{n} is out of range: {lo} to {hi}")))
            }
        };
        let replicas = ranged("stream_replicas", file.stream_replicas, 1, 1, 5)?;
        let max_age_days = ranged("stream_max_age_days", file.stream_max_age_days, 30, 1, 365)?;
        let max_bytes = ranged(
            "stream_max_bytes",
            file.stream_max_bytes,
            8 * 1024 * 1024 * 1024,
            1024 * 1024,
            i64::MAX,
        )?;
        // At least Fullscript's retry schedule (the last retry comes ~6.6 h
        // after the first attempt).
        let dedupe_hours = ranged(
            "dedupe_window_hours",
            file.dedupe_window_hours,
            24,
            7,
            24 * 30,
        )?;
        let tolerance = ranged(
            "signature_tolerance_secs",
            file.signature_tolerance_secs,
            300,
            30,
            3600,
        )?;
        Ok(Config {
            listen,
            public_url,
            environment,
            api_base,
            token_url,
            revoke_url,
            client_id: file.client_id.filter(|s| !s.trim().is_empty()),
            client_secret: file
                .client_secret
                .filter(|s| !s.trim().is_empty())
                .map(Secret::new),
            webhook_secret: secret("webhook_secret", file.webhook_secret)?,
            webhook_challenge: secret("webhook_challenge", file.webhook_challenge)?,
            nats_urls,
            log: file.log.unwrap_or_else(|| "info".into()),
            stream: StreamSettings {
                replicas: replicas as usize,
                max_age: Duration::from_secs(max_age_days as u64 * 24 * HOUR),
                max_bytes,
                dedupe_window: Duration::from_secs(dedupe_hours as u64 * HOUR),
            },
            signature_tolerance: Duration::from_secs(tolerance as u64),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_table(toml::from_str(text).unwrap())
    }

    #[test]
    fn defaults_listen_on_loopback_with_a_day_of_de_duplication() {
        let c = parse("webhook_secret = \"s\"\nwebhook_challenge = \"c\"").unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8787");
        assert_eq!(c.nats_urls, ["nats://127.0.0.1:4222"]);
        assert_eq!(c.stream.dedupe_window, Duration::from_secs(24 * HOUR));
        assert_eq!(c.stream.max_age, Duration::from_secs(30 * 24 * HOUR));
        assert_eq!(
            c.token_url.as_str(),
            "https://api-us-snd.fullscript.io/api/oauth/token"
        );
        assert!(!format!("{c:?}").contains("\"s\""), "secrets redacted");
    }

    #[test]
    fn every_key_of_the_file_can_come_from_the_environment() {
        let keys = keys();
        assert_eq!(keys.len(), 17);
        for k in [
            "listen",
            "webhook_secret",
            "nats_url",
            "dedupe_window_hours",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k}");
        }
    }

    #[test]
    fn errors_name_the_key() {
        assert_eq!(
            parse("webhook_challenge = \"c\"").unwrap_err().key,
            "webhook_secret"
        );
        let e = parse("webhook_secret = \"s\"\nwebhook_challenge = \"c\"\ndedupe_window_hours = 1")
            .unwrap_err();
        assert_eq!(e.key, "dedupe_window_hours");
        let e =
            parse("webhook_secret = \"s\"\nwebhook_challenge = \"c\"\nenvironment = \"custom\"")
                .unwrap_err();
        assert_eq!(e.key, "api_base");
        let c = parse(
            "webhook_secret = \"s\"\nwebhook_challenge = \"c\"\nnats_url = \"nats://a:1, nats://b:2\"",
        )
        .unwrap();
        assert_eq!(c.nats_urls, ["nats://a:1", "nats://b:2"]);
        let e = parse(
            "webhook_secret = \"s\"\nwebhook_challenge = \"c\"\nnats_url = \"nats://a:1, nats://b:port\"",
        )
        .unwrap_err();
        assert_eq!(e.key, "nats_url");
        assert!(e.message.contains("nats://b:port"), "{}", e.message);
    }
}
