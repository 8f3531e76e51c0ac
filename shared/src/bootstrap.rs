//! Building the service once per cold start, from the environment.
//!
//! Each function declares what it needs ([`Needs`]); the settings it may read
//! follow from that and nothing else is looked up, so the template can give
//! every function exactly its own environment (checked by a test).

use crate::clock::{Clock, SystemClock};
use crate::config::{AwsLimits, Config, ConfigError, Scope, SETTINGS};
use crate::seal::{SealError, Sealer};
use crate::service::Service;
use crate::store::dynamo::DynamoStore;
use crate::store::Store;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub use crate::config::{EVENT_BUS, SECRET_ARN};

/// What a function needs besides the common settings.
#[derive(Debug, Clone, Copy)]
pub struct Needs {
    /// The client secret and the sealing keys: everything but starting a flow.
    pub secrets: bool,
    /// The bus outcome events are published to.
    pub events: bool,
}

impl Needs {
    /// Every setting this function may read.
    pub fn reads(&self) -> Vec<&'static str> {
        self.names(|scope| match scope {
            Scope::Required | Scope::Optional => true,
            Scope::Secret | Scope::SecretLocation => self.secrets,
            Scope::Events => self.events,
        })
    }

    /// What a deployment on AWS must set for it (secrets from Secrets Manager).
    pub fn required_on_aws(&self) -> Vec<&'static str> {
        self.names(|scope| match scope {
            Scope::Required => true,
            Scope::SecretLocation => self.secrets,
            Scope::Events => self.events,
            Scope::Optional | Scope::Secret => false,
        })
    }

    fn names(&self, wanted: impl Fn(Scope) -> bool) -> Vec<&'static str> {
        SETTINGS
            .iter()
            .filter(|s| wanted(s.scope))
            .map(|s| s.name)
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("reading the secret {0} failed")]
    Secret(String),
    /// The ring lacks a key that still seals connections (or the key
    /// summary could not be read): `Service::check_sealing_keys`.
    #[error(transparent)]
    SealingKeys(#[from] crate::service::reseal::KeyRingError),
}

/// The one HTTP client for Miro: bounded time, no redirects (a token
/// endpoint that redirects is not followed with a secret in hand), on the
/// process's one TLS configuration.
fn http_client(config: &Config) -> Result<reqwest::Client, BootError> {
    let timeout = Duration::from_millis(config.miro_timeout_ms);
    Ok(crate::https::client_builder()?
        .connect_timeout(timeout.min(Duration::from_secs(3)))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

/// The secret's settings, read once: the client secret and the sealing key
/// ring never sit in the function's environment.
async fn secret_settings(
    aws: &aws_config::SdkConfig,
    secret_id: &str,
) -> Result<HashMap<String, String>, BootError> {
    let client = aws_sdk_secretsmanager::Client::new(aws);
    let fail = || BootError::Secret(secret_id.to_string());
    let value = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| {
            // The one line an operator needs when a cold start fails here.
            tracing::error!(
                error = %aws_sdk_secretsmanager::error::DisplayErrorContext(&e),
                "cold start failed: the secret could not be read from Secrets Manager"
            );
            fail()
        })?;
    let text = value.secret_string().ok_or_else(fail)?;
    let mut settings: HashMap<String, String> = serde_json::from_str(text).map_err(|_| fail())?;
    settings.retain(|k, _| {
        SETTINGS
            .iter()
            .any(|s| s.scope == Scope::Secret && s.name == k.as_str())
    });
    Ok(settings)
}

/// Reads the environment, limited to what `needs` allows.
pub fn env_lookup(needs: Needs) -> impl Fn(&str) -> Option<String> {
    let allowed = needs.reads();
    move |name: &str| {
        if !allowed.contains(&name) {
            return None;
        }
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

/// The production wiring: DynamoDB (endpoint from the SDK's own settings,
/// e.g. `AWS_ENDPOINT_URL_DYNAMODB`), Miro at the configured bases, secrets
/// from Secrets Manager when `MIRO_SECRET_ARN` is set, else from the environment.
pub async fn service_from_env(needs: Needs) -> Result<Service, BootError> {
    Ok(aws_and_service_from_env(needs).await?.1)
}

/// The same, with the AWS configuration for the function's other clients.
/// Refuses to start without a sealing key that still seals connections
/// (one read of the key summary: `Service::check_sealing_keys`).
/// Logs where the cold start's own time went (`cold start` with
/// `aws_config_us`, `secret_us`, `key_check_us`, `service_us`, and from the log setup
/// `main_unix_us`, `log_us`, `since_main_us`): the benchmark reads it.
pub async fn aws_and_service_from_env(
    needs: Needs,
) -> Result<(aws_config::SdkConfig, Service), BootError> {
    let started = std::time::Instant::now();
    let aws = aws_sdk_config(needs).await?;
    let configured = started.elapsed();
    let (secrets, secret_read) = read_secrets(&aws, needs).await?;
    let service = service_with_secrets(&aws, needs, secrets)?;
    let checking = std::time::Instant::now();
    service.check_sealing_keys().await?;
    let key_check = checking.elapsed();
    let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    let (main_unix_us, since_main_us, log_us) = match crate::logging::started() {
        Some(s) => (
            s.at.duration_since(std::time::UNIX_EPOCH)
                .map(micros)
                .unwrap_or_default(),
            micros(s.began.elapsed()),
            micros(s.took),
        ),
        None => (0, 0, 0),
    };
    tracing::info!(
        aws_config_us = micros(configured),
        secret_us = micros(secret_read),
        key_check_us = micros(key_check),
        service_us = micros(
            started
                .elapsed()
                .saturating_sub(configured + secret_read + key_check)
        ),
        main_unix_us,
        since_main_us,
        log_us,
        "cold start"
    );
    Ok((aws, service))
}

/// The AWS configuration every client of a function is built from: the
/// SDK's own settings (region, credentials, endpoints), bounded by
/// [`AwsLimits`] so that no call to AWS can outlast the request.
pub async fn aws_sdk_config(needs: Needs) -> Result<aws_config::SdkConfig, BootError> {
    aws_config_from(env_lookup(needs)).await
}

/// Where a lookup may point the AWS clients (DynamoDB Local, moto): the
/// benchmark, the tools and the tests name them this way. A function's
/// lookup ([`env_lookup`]) never answers them: on Lambda the SDK reads the
/// runtime's own.
pub const AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
pub const AWS_REGION: &str = "AWS_REGION";
pub const AWS_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
pub const AWS_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";

/// The one way an AWS configuration is built (the functions, the local
/// server, the benchmark, the tools, the tests): [`AwsLimits`] and, where
/// `get` names them, the endpoint, region and credentials, over the SDK's
/// own settings; on the project's HTTP client.
pub async fn aws_config_from(
    get: impl Fn(&str) -> Option<String>,
) -> Result<aws_config::SdkConfig, BootError> {
    let limits = AwsLimits::from_lookup(&get)?;
    let mut loader = limits
        .apply(aws_config::defaults(aws_config::BehaviorVersion::latest()))
        .http_client(crate::https::AwsHttpClient::new());
    if let Some(url) = get(AWS_ENDPOINT_URL) {
        loader = loader.endpoint_url(url);
    }
    if let Some(region) = get(AWS_REGION) {
        loader = loader.region(aws_config::Region::new(region));
    }
    if let (Some(id), Some(secret)) = (get(AWS_ACCESS_KEY_ID), get(AWS_SECRET_ACCESS_KEY)) {
        loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            id, secret, None, None, "settings",
        ));
    }
    Ok(loader.load().await)
}

/// The deployment's store: its table on DynamoDB, with the sealing key ring
/// when `sealing` (every function that holds tokens, and the local server).
pub fn dynamo_store(
    aws: &aws_config::SdkConfig,
    config: &Config,
    sealing: bool,
) -> Result<DynamoStore, BootError> {
    if config.table_name.is_empty() {
        return Err(ConfigError::Missing("TABLE_NAME").into());
    }
    let sealer = if sealing {
        let keys = config
            .sealing_keys
            .as_ref()
            .ok_or(ConfigError::Missing("TOKEN_SEALING_KEYS"))?;
        Some(Arc::new(Sealer::from_key_ring(keys)?))
    } else {
        None
    };
    Ok(DynamoStore::with_sealer(
        aws_sdk_dynamodb::Client::new(aws),
        config.table_name.clone(),
        sealer,
    ))
}

/// The same, on an AWS configuration the caller also uses for other clients.
pub async fn service_with_aws(
    aws: &aws_config::SdkConfig,
    needs: Needs,
) -> Result<Service, BootError> {
    let (secrets, _) = read_secrets(aws, needs).await?;
    let service = service_with_secrets(aws, needs, secrets)?;
    service.check_sealing_keys().await?;
    Ok(service)
}

/// The secret's settings when `MIRO_SECRET_ARN` is set (one call to Secrets
/// Manager), and how long reading them took.
async fn read_secrets(
    aws: &aws_config::SdkConfig,
    needs: Needs,
) -> Result<(HashMap<String, String>, Duration), BootError> {
    let started = std::time::Instant::now();
    let secrets = match env_lookup(needs)(SECRET_ARN) {
        Some(id) => secret_settings(aws, &id).await?,
        None => HashMap::new(),
    };
    Ok((secrets, started.elapsed()))
}

fn service_with_secrets(
    aws: &aws_config::SdkConfig,
    needs: Needs,
    secrets: HashMap<String, String>,
) -> Result<Service, BootError> {
    let env = env_lookup(needs);
    let config = Config::from_lookup(|k| secrets.get(k).cloned().or_else(|| env(k)))?;
    if needs.secrets && config.miro_client_secret.is_none() {
        return Err(ConfigError::Missing("MIRO_CLIENT_SECRET").into());
    }
    let store = Arc::new(dynamo_store(aws, &config, needs.secrets)?);
    let service = wire(config, store, Arc::new(SystemClock))?;
    // Lifecycle events go to the stack's bus, where the function has one.
    Ok(match env(EVENT_BUS).filter(|_| needs.events) {
        Some(bus) => service.with_lifecycle(Arc::new(crate::events::EventBridgePublisher::new(
            aws_sdk_eventbridge::Client::new(aws),
            bus,
        ))),
        None => service,
    })
}

/// The one place a [`Service`] is put together: the functions, the local
/// server, the tests and the benchmark all build theirs here.
pub fn wire(
    config: Config,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
) -> Result<Service, BootError> {
    let http = http_client(&config)?;
    Ok(Service::new(config, store, http, clock))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{
        DEFAULT_AWS_ATTEMPT_TIMEOUT_MS, DEFAULT_AWS_MAX_ATTEMPTS, DEFAULT_AWS_OPERATION_TIMEOUT_MS,
    };

    async fn built(settings: &[(&str, &str)]) -> aws_config::SdkConfig {
        let settings: HashMap<String, String> = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        aws_config_from(|k| settings.get(k).cloned())
            .await
            .expect("an AWS configuration")
    }

    fn ms(d: Option<Duration>) -> Option<u128> {
        d.map(|d| d.as_millis())
    }

    #[tokio::test]
    async fn every_aws_configuration_carries_the_functions_bounds() {
        let local = [
            (AWS_ENDPOINT_URL, "http://127.0.0.1:8000"),
            (AWS_REGION, "eu-west-1"),
            (AWS_ACCESS_KEY_ID, "test"),
            (AWS_SECRET_ACCESS_KEY, "test"),
        ];
        let sdk = built(&local).await;
        let timeouts = sdk.timeout_config().expect("timeouts");
        assert_eq!(
            ms(timeouts.operation_timeout()),
            Some(DEFAULT_AWS_OPERATION_TIMEOUT_MS.into())
        );
        assert_eq!(
            ms(timeouts.operation_attempt_timeout()),
            Some(DEFAULT_AWS_ATTEMPT_TIMEOUT_MS.into())
        );
        assert_eq!(
            sdk.retry_config().map(|r| r.max_attempts()),
            Some(DEFAULT_AWS_MAX_ATTEMPTS)
        );
        assert_eq!(sdk.endpoint_url(), Some("http://127.0.0.1:8000"));
        assert_eq!(sdk.region().map(|r| r.as_ref()), Some("eu-west-1"));

        // A lookup's bounds are taken, and refused out of range.
        let mut tight = local.to_vec();
        tight.push(("AWS_OPERATION_TIMEOUT_MS", "1000"));
        let sdk = built(&tight).await;
        assert_eq!(
            ms(sdk.timeout_config().and_then(|t| t.operation_timeout())),
            Some(1000)
        );
        let wrong: HashMap<&str, &str> = HashMap::from([("AWS_MAX_ATTEMPTS", "0")]);
        assert!(matches!(
            aws_config_from(|k| wrong.get(k).map(|v| v.to_string())).await,
            Err(BootError::Config(_))
        ));
    }

    #[test]
    fn a_functions_lookup_leaves_where_aws_is_to_the_sdk() {
        let lookup = env_lookup(Needs {
            secrets: true,
            events: true,
        });
        for name in [
            AWS_ENDPOINT_URL,
            AWS_REGION,
            AWS_ACCESS_KEY_ID,
            AWS_SECRET_ACCESS_KEY,
        ] {
            assert_eq!(lookup(name), None, "{name}");
        }
    }
}
