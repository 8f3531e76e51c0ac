//! Building the service once per cold start, from the environment.

use crate::clock::SystemClock;
use crate::config::{Config, ConfigError};
use crate::seal::{SealError, Sealer};
use crate::service::Service;
use crate::store::dynamo::DynamoStore;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// The one HTTP client for Miro: bounded time, no redirects (a token
/// endpoint that redirects is not followed with a secret in hand).
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// The production wiring: DynamoDB (endpoint from the SDK's own settings,
/// e.g. `AWS_ENDPOINT_URL_DYNAMODB`), Miro at the configured bases.
pub async fn service_from_env() -> Result<Service, BootError> {
    let config = Config::from_env()?;
    if config.table_name.is_empty() {
        return Err(ConfigError::Missing("TABLE_NAME").into());
    }
    let keys = config
        .sealing_keys
        .clone()
        .ok_or(ConfigError::Missing("TOKEN_SEALING_KEYS"))?;
    let sealer = Arc::new(Sealer::from_key_ring(&keys)?);
    let aws = aws_config::load_from_env().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&aws);
    let store = Arc::new(DynamoStore::new(dynamo, config.table_name.clone(), sealer));
    Ok(Service::new(
        config,
        store,
        http_client()?,
        Arc::new(SystemClock),
    ))
}
