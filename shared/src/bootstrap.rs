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
    let limits = AwsLimits::from_lookup(env_lookup(needs))?;
    Ok(limits
        .apply(aws_config::defaults(aws_config::BehaviorVersion::latest()))
        .http_client(crate::https::AwsHttpClient::new())
        .load()
        .await)
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
    if config.table_name.is_empty() {
        return Err(ConfigError::Missing("TABLE_NAME").into());
    }
    let sealer = if needs.secrets {
        if config.miro_client_secret.is_none() {
            return Err(ConfigError::Missing("MIRO_CLIENT_SECRET").into());
        }
        let keys = config
            .sealing_keys
            .clone()
            .ok_or(ConfigError::Missing("TOKEN_SEALING_KEYS"))?;
        Some(Arc::new(Sealer::from_key_ring(&keys)?))
    } else {
        None
    };
    let dynamo = aws_sdk_dynamodb::Client::new(aws);
    let store = Arc::new(DynamoStore::with_sealer(
        dynamo,
        config.table_name.clone(),
        sealer,
    ));
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
