//! Typed configuration, read once per cold start from the environment.
//!
//! Every outside address is a setting whose default is the real one, so that a
//! test run and production differ only in settings.

use crate::secret::Secret;
use url::{Origin, Url};

pub const DEFAULT_MIRO_AUTH_BASE: &str = "https://miro.com";
pub const DEFAULT_MIRO_API_BASE: &str = "https://api.miro.com";
/// Pending authorizations and parked codes live about as long as Miro's codes.
pub const DEFAULT_AUTHORIZATION_TTL_SECONDS: i64 = 600;
/// Refresh five minutes ahead of an access token's expiry (Miro's last an hour).
pub const DEFAULT_REFRESH_MARGIN_SECONDS: i64 = 300;
/// Below the refresh lease (30 s), so that a live refresher never outlasts it.
pub const DEFAULT_MIRO_TIMEOUT_MS: u64 = 10_000;

/// Who reads a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every function; no default.
    Required,
    /// Every function; the default is the real Miro or a documented limit.
    Optional,
    /// Functions that exchange, refresh or revoke: from the Secrets Manager
    /// secret on AWS, from the environment locally.
    Secret,
    /// Those same functions, on AWS: where the secret is.
    SecretLocation,
    /// The functions that publish events (board outcomes, lifecycle events).
    Events,
}

#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub name: &'static str,
    pub scope: Scope,
}

const fn setting(name: &'static str, scope: Scope) -> Setting {
    Setting { name, scope }
}

/// Every setting there is: [`Config`] reads only these (a test holds it to
/// that), the functions' environments and the template come from them.
pub const SETTINGS: [Setting; 28] = [
    setting("TABLE_NAME", Scope::Required),
    setting("MIRO_CLIENT_ID", Scope::Required),
    setting("MIRO_REDIRECT_URI", Scope::Required),
    setting("ALLOWED_RETURN_ORIGINS", Scope::Required),
    setting("DEFAULT_RETURN_TO", Scope::Required),
    setting("MIRO_AUTH_BASE_URL", Scope::Optional),
    setting("MIRO_API_BASE_URL", Scope::Optional),
    setting("AUTHORIZATION_TTL_SECONDS", Scope::Optional),
    setting("REFRESH_MARGIN_SECONDS", Scope::Optional),
    setting("MIRO_TIMEOUT_MS", Scope::Optional),
    setting("AWS_ATTEMPT_TIMEOUT_MS", Scope::Optional),
    setting("AWS_OPERATION_TIMEOUT_MS", Scope::Optional),
    setting("AWS_MAX_ATTEMPTS", Scope::Optional),
    setting("REQUEST_TIMEOUT_MS", Scope::Optional),
    setting("RUST_LOG", Scope::Optional),
    setting("KEEPALIVE_REFRESH", Scope::Optional),
    setting("KEEPALIVE_AHEAD_DAYS", Scope::Optional),
    setting("KEEPALIVE_PROBE_DAYS", Scope::Optional),
    setting("BREAKER_REJECTIONS", Scope::Optional),
    setting("BREAKER_WINDOW_SECONDS", Scope::Optional),
    setting("BREAKER_PROBE_SECONDS", Scope::Optional),
    setting("REFRESH_COOLDOWN_SECONDS", Scope::Optional),
    setting("RETIRED_KEEP_DAYS", Scope::Optional),
    setting("KEEPALIVE_RESEAL_PER_RUN", Scope::Optional),
    setting("MIRO_CLIENT_SECRET", Scope::Secret),
    setting("TOKEN_SEALING_KEYS", Scope::Secret),
    setting(SECRET_ARN, Scope::SecretLocation),
    setting(EVENT_BUS, Scope::Events),
];

/// Where the secrets are on AWS (a Secrets Manager secret holding the
/// [`Scope::Secret`] settings).
pub const SECRET_ARN: &str = "MIRO_SECRET_ARN";
/// The bus outcome events go to.
pub const EVENT_BUS: &str = "EVENT_BUS_NAME";

/// Each attempt of an AWS call: DynamoDB answers in milliseconds, so two
/// seconds only passes a service that is frozen or far behind.
pub const DEFAULT_AWS_ATTEMPT_TIMEOUT_MS: u64 = 2_000;
/// All attempts of one AWS call, backoff included: a request makes at most
/// a handful of calls one after another, and must answer well inside its
/// budget below.
pub const DEFAULT_AWS_OPERATION_TIMEOUT_MS: u64 = 5_000;
/// Attempts per AWS call (the SDK's standard retry: throttling and
/// transient errors, jittered backoff capped at a second).
pub const DEFAULT_AWS_MAX_ATTEMPTS: u32 = 3;
/// The whole request: under the template's function timeout (25 s) and API
/// Gateway's 30 s, so the caller gets a 503 with `Retry-After` rather than
/// a function killed mid-way and a bare 5xx.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 20_000;

/// Bounds on every AWS client (DynamoDB, Secrets Manager, EventBridge, SQS).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AwsLimits {
    pub attempt_timeout_ms: u64,
    pub operation_timeout_ms: u64,
    pub max_attempts: u32,
}

impl AwsLimits {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(Self {
            attempt_timeout_ms: ranged(
                &get,
                "AWS_ATTEMPT_TIMEOUT_MS",
                DEFAULT_AWS_ATTEMPT_TIMEOUT_MS,
                50..=30_000,
            )?,
            operation_timeout_ms: ranged(
                &get,
                "AWS_OPERATION_TIMEOUT_MS",
                DEFAULT_AWS_OPERATION_TIMEOUT_MS,
                50..=60_000,
            )?,
            max_attempts: ranged(&get, "AWS_MAX_ATTEMPTS", DEFAULT_AWS_MAX_ATTEMPTS, 1..=10)?,
        })
    }

    /// The SDK configuration loader with these bounds applied.
    pub fn apply(&self, loader: aws_config::ConfigLoader) -> aws_config::ConfigLoader {
        use aws_config::retry::RetryConfig;
        use aws_config::timeout::TimeoutConfig;
        use std::time::Duration;
        let attempt = Duration::from_millis(self.attempt_timeout_ms);
        loader
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(attempt)
                    .operation_attempt_timeout(attempt)
                    .operation_timeout(Duration::from_millis(self.operation_timeout_ms))
                    .build(),
            )
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(self.max_attempts)
                    .with_initial_backoff(Duration::from_millis(50))
                    .with_max_backoff(Duration::from_secs(1)),
            )
    }
}

/// A number setting within `range`, or its default when unset.
fn ranged<T>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    match get(name) {
        None => Ok(default),
        Some(v) => {
            v.parse()
                .ok()
                .filter(|x| range.contains(x))
                .ok_or_else(|| ConfigError::Invalid {
                    name,
                    reason: format!("a number from {} to {}", range.start(), range.end()),
                })
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("setting {0} is required")]
    Missing(&'static str),
    #[error("setting {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

#[derive(Debug, Clone)]
pub struct Config {
    pub miro_client_id: String,
    /// Absent in functions that never talk to Miro's token endpoint.
    pub miro_client_secret: Option<Secret>,
    /// Exactly as registered in the Miro app's settings.
    pub miro_redirect_uri: Url,
    pub miro_auth_base: Url,
    pub miro_api_base: Url,
    pub table_name: String,
    /// Origins that `return_to` may point at.
    pub allowed_return_origins: Vec<Origin>,
    /// Where the browser goes back to when a request names no `return_to`
    /// (the one-click path of `POST /boards`).
    pub default_return_to: Url,
    /// Key ring for sealing tokens: `id:base64key[,id:base64key…]`, first seals.
    pub sealing_keys: Option<Secret>,
    pub authorization_ttl_seconds: i64,
    /// How long before the access token's expiry a refresh is started.
    pub refresh_margin_seconds: i64,
    /// Bound on each call to Miro (connect included).
    pub miro_timeout_ms: u64,
    pub aws_limits: AwsLimits,
    /// Bound on a whole request (see [`DEFAULT_REQUEST_TIMEOUT_MS`]).
    pub request_timeout_ms: u64,
    pub keep_alive: KeepAlive,
    pub safety: Safety,
}

/// What keeps an operator's mistake (a wrong client secret) or a sick token
/// endpoint from costing users their connections (`service::tokens`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Safety {
    /// `BREAKER_REJECTIONS` (default 3; 0 turns the breaker off): refreshes
    /// of this many distinct connections rejected within the window, none
    /// succeeding, open the breaker. One user's dead grant never does.
    pub breaker_rejections: u32,
    /// `BREAKER_WINDOW_SECONDS` (default 600).
    pub breaker_window_seconds: i64,
    /// `BREAKER_PROBE_SECONDS` (default 60): how long an open breaker sends
    /// no refresh at all; then the next refresh is its probe.
    pub breaker_probe_seconds: i64,
    /// `REFRESH_COOLDOWN_SECONDS` (default 30): after a transient refresh
    /// failure, the connection is not refreshed again before this.
    pub refresh_cooldown_seconds: i64,
    /// `RETIRED_KEEP_DAYS` (default 14): a connection whose grant Miro
    /// rejected keeps its sealed tokens this long, for `restore`.
    pub retired_keep_days: i64,
}

/// What the keep-alive sweep does (`service::keepalive`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeepAlive {
    /// Refresh connections whose refresh token ends within `ahead_days`
    /// (`KEEPALIVE_REFRESH`, default on). Off: announce them as expiring.
    pub refresh: bool,
    /// `KEEPALIVE_AHEAD_DAYS` (default 7).
    pub ahead_days: i64,
    /// A connection nobody used for this many days is probed at Miro
    /// (`KEEPALIVE_PROBE_DAYS`, default 7).
    pub probe_days: i64,
    /// Connections re-sealed under the newest key per run at most
    /// (`KEEPALIVE_RESEAL_PER_RUN`, default [`DEFAULT_RESEAL_PER_RUN`]).
    pub reseal_per_run: usize,
}

/// A re-seal is a consistent read and a conditional write, one after the
/// other (about 20 ms): 2,000 take some 40 s of a run's 260, and four runs
/// a day re-seal 100,000 connections in under two weeks. Raise it for more.
pub const DEFAULT_RESEAL_PER_RUN: usize = 2_000;

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &'static str| get(name).ok_or(ConfigError::Missing(name));
        let url = |name: &'static str, value: String| {
            Url::parse(&value).map_err(|e| ConfigError::Invalid {
                name,
                reason: e.to_string(),
            })
        };

        let allowed_return_origins = required("ALLOWED_RETURN_ORIGINS")?
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| url("ALLOWED_RETURN_ORIGINS", s.to_string()).map(|u| u.origin()))
            .collect::<Result<Vec<_>, _>>()?;
        if allowed_return_origins.iter().any(|o| !o.is_tuple()) {
            return Err(ConfigError::Invalid {
                name: "ALLOWED_RETURN_ORIGINS",
                reason: "every entry must be an http(s) origin".into(),
            });
        }
        let default_return_to = url("DEFAULT_RETURN_TO", required("DEFAULT_RETURN_TO")?)?;
        if !allowed_return_origins.contains(&default_return_to.origin()) {
            return Err(ConfigError::Invalid {
                name: "DEFAULT_RETURN_TO",
                reason: "its origin must be in ALLOWED_RETURN_ORIGINS".into(),
            });
        }
        let authorization_ttl_seconds =
            match get("AUTHORIZATION_TTL_SECONDS") {
                None => DEFAULT_AUTHORIZATION_TTL_SECONDS,
                Some(v) => v.parse().ok().filter(|s| (60..=3600).contains(s)).ok_or(
                    ConfigError::Invalid {
                        name: "AUTHORIZATION_TTL_SECONDS",
                        reason: "seconds between 60 and 3600".into(),
                    },
                )?,
            };

        let refresh_margin_seconds =
            match get("REFRESH_MARGIN_SECONDS") {
                None => DEFAULT_REFRESH_MARGIN_SECONDS,
                Some(v) => v.parse().ok().filter(|s| (0..=1800).contains(s)).ok_or(
                    ConfigError::Invalid {
                        name: "REFRESH_MARGIN_SECONDS",
                        reason: "seconds between 0 and 1800".into(),
                    },
                )?,
            };

        let miro_timeout_ms = match get("MIRO_TIMEOUT_MS") {
            None => DEFAULT_MIRO_TIMEOUT_MS,
            Some(v) => v
                .parse()
                .ok()
                // Below half the 30 s refresh lease, so that a live
                // refresher always finishes before its lease can be taken.
                .filter(|ms| (100..=15_000).contains(ms))
                .ok_or(ConfigError::Invalid {
                    name: "MIRO_TIMEOUT_MS",
                    reason: "milliseconds between 100 and 15000".into(),
                })?,
        };

        Ok(Self {
            refresh_margin_seconds,
            miro_timeout_ms,
            aws_limits: AwsLimits::from_lookup(&get)?,
            request_timeout_ms: ranged(
                &get,
                "REQUEST_TIMEOUT_MS",
                DEFAULT_REQUEST_TIMEOUT_MS,
                100..=120_000,
            )?,
            keep_alive: KeepAlive {
                refresh: match get("KEEPALIVE_REFRESH").as_deref() {
                    None | Some("true") => true,
                    Some("false") => false,
                    Some(_) => {
                        return Err(ConfigError::Invalid {
                            name: "KEEPALIVE_REFRESH",
                            reason: "true or false".into(),
                        })
                    }
                },
                ahead_days: ranged(&get, "KEEPALIVE_AHEAD_DAYS", 7, 1..=50)?,
                probe_days: ranged(&get, "KEEPALIVE_PROBE_DAYS", 7, 1..=50)?,
                reseal_per_run: ranged(
                    &get,
                    "KEEPALIVE_RESEAL_PER_RUN",
                    DEFAULT_RESEAL_PER_RUN,
                    1..=100_000,
                )?,
            },
            safety: Safety {
                breaker_rejections: ranged(&get, "BREAKER_REJECTIONS", 3, 0..=1000)?,
                breaker_window_seconds: ranged(&get, "BREAKER_WINDOW_SECONDS", 600, 10..=86_400)?,
                breaker_probe_seconds: ranged(&get, "BREAKER_PROBE_SECONDS", 60, 1..=3600)?,
                refresh_cooldown_seconds: ranged(&get, "REFRESH_COOLDOWN_SECONDS", 30, 0..=3600)?,
                retired_keep_days: ranged(&get, "RETIRED_KEEP_DAYS", 14, 1..=60)?,
            },
            miro_client_id: required("MIRO_CLIENT_ID")?,
            miro_client_secret: get("MIRO_CLIENT_SECRET").map(Secret::new),
            miro_redirect_uri: url("MIRO_REDIRECT_URI", required("MIRO_REDIRECT_URI")?)?,
            miro_auth_base: url(
                "MIRO_AUTH_BASE_URL",
                get("MIRO_AUTH_BASE_URL").unwrap_or_else(|| DEFAULT_MIRO_AUTH_BASE.into()),
            )?,
            miro_api_base: url(
                "MIRO_API_BASE_URL",
                get("MIRO_API_BASE_URL").unwrap_or_else(|| DEFAULT_MIRO_API_BASE.into()),
            )?,
            table_name: get("TABLE_NAME").unwrap_or_default(),
            allowed_return_origins,
            default_return_to,
            sealing_keys: get("TOKEN_SEALING_KEYS").map(Secret::new),
            authorization_ttl_seconds,
        })
    }

    /// An endpoint under one of the Miro bases, keeping any path prefix the base has.
    pub fn endpoint(base: &Url, path: &str) -> Url {
        let mut url = base.clone();
        let joined = format!("{}{}", base.path().trim_end_matches('/'), path);
        url.set_path(&joined);
        url
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut m: HashMap<String, String> = [
            ("MIRO_CLIENT_ID", "id"),
            ("MIRO_CLIENT_SECRET", "secret"),
            ("MIRO_REDIRECT_URI", "https://api.example.com/miro/callback"),
            (
                "ALLOWED_RETURN_ORIGINS",
                "https://app.example.com, http://localhost:3000",
            ),
            ("DEFAULT_RETURN_TO", "https://app.example.com/miro"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            m.insert(k.to_string(), v.to_string());
        }
        m
    }

    #[test]
    fn config_reads_only_listed_settings() {
        let s = settings(&[]);
        let asked = std::cell::RefCell::new(Vec::new());
        Config::from_lookup(|k| {
            asked.borrow_mut().push(k.to_string());
            s.get(k).cloned()
        })
        .expect("config");
        let listed: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
        for name in asked.borrow().iter() {
            assert!(listed.contains(&name.as_str()), "{name} is not in SETTINGS");
        }
        assert!(asked.borrow().len() >= 10, "the lookup was used");
    }

    #[test]
    fn defaults_are_the_real_miro() {
        let s = settings(&[]);
        let c = Config::from_lookup(|k| s.get(k).cloned()).expect("config");
        assert_eq!(c.miro_auth_base.as_str(), "https://miro.com/");
        assert_eq!(c.miro_api_base.as_str(), "https://api.miro.com/");
        assert_eq!(c.allowed_return_origins.len(), 2);
        assert_eq!(
            Config::endpoint(&c.miro_api_base, "/v2/boards").as_str(),
            "https://api.miro.com/v2/boards"
        );
    }

    #[test]
    fn the_reseal_bound_has_a_default_and_a_range() {
        let read = |v: Option<&str>| {
            let mut s = settings(&[]);
            if let Some(v) = v {
                s.insert("KEEPALIVE_RESEAL_PER_RUN".into(), v.into());
            }
            Config::from_lookup(|k| s.get(k).cloned()).map(|c| c.keep_alive.reseal_per_run)
        };
        assert_eq!(read(None).ok(), Some(DEFAULT_RESEAL_PER_RUN));
        assert_eq!(read(Some("5")).ok(), Some(5));
        assert!(read(Some("0")).is_err(), "a run that re-seals nothing");
        assert!(read(Some("many")).is_err());
    }

    #[test]
    fn default_return_must_be_allowed() {
        let s = settings(&[("DEFAULT_RETURN_TO", "https://evil.example.net/")]);
        assert!(Config::from_lookup(|k| s.get(k).cloned()).is_err());
    }

    #[test]
    fn endpoint_keeps_a_base_path() {
        let base = Url::parse("http://127.0.0.1:9/_miro").expect("url");
        assert_eq!(
            Config::endpoint(&base, "/v2/boards").as_str(),
            "http://127.0.0.1:9/_miro/v2/boards"
        );
    }
}
