//! Building the service once per cold start, from the environment.

use crate::clock::SystemClock;
use crate::config::{Config, ConfigError};
use crate::seal::{SealError, Sealer};
use crate::service::Service;
use crate::store::dynamo::DynamoStore;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Names the Secrets Manager secret may hold, as a JSON object of strings.
pub const SECRET_SETTINGS: [&str; 2] = ["MIRO_CLIENT_SECRET", "TOKEN_SEALING_KEYS"];

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("reading the secret {0} failed")]
    Secret(String),
}

/// The one HTTP client for Miro: bounded time, no redirects (a token
/// endpoint that redirects is not followed with a secret in hand).
pub fn http_client(config: &Config) -> Result<reqwest::Client, reqwest::Error> {
    let timeout = Duration::from_millis(config.miro_timeout_ms);
    reqwest::Client::builder()
        .connect_timeout(timeout.min(Duration::from_secs(3)))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// The secret's settings (`MIRO_SECRET_ARN`), read once: the client secret
/// and the sealing key ring never sit in the function's environment.
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
            tracing::error!(error = %aws_sdk_secretsmanager::error::DisplayErrorContext(&e), "GetSecretValue failed");
            fail()
        })?;
    let text = value.secret_string().ok_or_else(fail)?;
    let mut settings: HashMap<String, String> = serde_json::from_str(text).map_err(|_| fail())?;
    settings.retain(|k, _| SECRET_SETTINGS.contains(&k.as_str()));
    Ok(settings)
}

/// The production wiring: DynamoDB (endpoint from the SDK's own settings,
/// e.g. `AWS_ENDPOINT_URL_DYNAMODB`), Miro at the configured bases, secrets
/// from Secrets Manager when `MIRO_SECRET_ARN` is set, else from the environment.
pub async fn service_from_env() -> Result<Service, BootError> {
    service_with_aws(&aws_config::load_from_env().await).await
}

/// The same, on an AWS configuration the caller also uses for other clients.
pub async fn service_with_aws(aws: &aws_config::SdkConfig) -> Result<Service, BootError> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let secrets = match env("MIRO_SECRET_ARN") {
        Some(id) => secret_settings(aws, &id).await?,
        None => HashMap::new(),
    };
    let config = Config::from_lookup(|k| secrets.get(k).cloned().or_else(|| env(k)))?;
    if config.table_name.is_empty() {
        return Err(ConfigError::Missing("TABLE_NAME").into());
    }
    let keys = config
        .sealing_keys
        .clone()
        .ok_or(ConfigError::Missing("TOKEN_SEALING_KEYS"))?;
    let sealer = Arc::new(Sealer::from_key_ring(&keys)?);
    let dynamo = aws_sdk_dynamodb::Client::new(aws);
    let store = Arc::new(DynamoStore::new(dynamo, config.table_name.clone(), sealer));
    let http = http_client(&config)?;
    Ok(Service::new(config, store, http, Arc::new(SystemClock)))
}
