//! The process's one TLS configuration, and the HTTP clients built on it:
//! Miro's ([`reqwest`]) and the AWS SDK's ([`AwsHttpClient`], the SDK's
//! `HttpClient` over reqwest), so that a cold start builds one rustls
//! configuration and loads its roots once, not once per client.
//!
//! Roots: Mozilla's root program as `webpki-roots` compiles it in, the same
//! list Amazon Linux's `ca-certificates` (the bundle on Lambda) is made
//! from. They are already parsed trust anchors: no file to read, nothing to
//! parse at a cold start (the system bundle cost ~3 ms a load here, and was
//! loaded twice). They change with a rebuild (`cargo update`), not with the
//! runtime's patches; every endpoint called is Miro's or AWS's, both under
//! public roots of that list (BENCHMARKS.md, "Decisions").

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The one TLS configuration: TLS 1.2 and 1.3 on aws-lc-rs, Mozilla's roots.
/// reqwest takes a configuration by value; every clone shares its
/// verifier, root store, crypto provider and session cache (all `Arc`s).
pub fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    static TLS: OnceLock<Result<rustls::ClientConfig, rustls::Error>> = OnceLock::new();
    TLS.get_or_init(|| {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth())
    })
    .clone()
}

/// A reqwest client builder on the one TLS configuration.
pub fn client_builder() -> Result<reqwest::ClientBuilder, rustls::Error> {
    Ok(reqwest::Client::builder().tls_backend_preconfigured(tls_config()?))
}

/// The AWS SDK's HTTP client, on the one TLS configuration: one reqwest
/// client per set of connector settings (the SDK asks with its timeouts),
/// made when a client first calls, and shared by every SDK client built
/// from the same `SdkConfig`.
#[derive(Debug, Default, Clone)]
pub struct AwsHttpClient {
    clients: Arc<Mutex<HashMap<Timeouts, SharedHttpConnector>>>,
}

/// The connector settings a client is built for: connect and read timeouts.
type Timeouts = (Option<Duration>, Option<Duration>);

impl AwsHttpClient {
    pub fn new() -> Self {
        Self::default()
    }
}

impl HttpClient for AwsHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        let mut clients = match self.clients.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        clients
            .entry(key)
            .or_insert_with(|| {
                let built = client_builder().map_err(|e| e.to_string()).and_then(|b| {
                    let b = match key.0 {
                        Some(t) => b.connect_timeout(t),
                        None => b,
                    };
                    let b = match key.1 {
                        Some(t) => b.read_timeout(t),
                        None => b,
                    };
                    // AWS answers where it is asked; never follow a redirect.
                    b.redirect(reqwest::redirect::Policy::none())
                        .build()
                        .map_err(|e| e.to_string())
                });
                SharedHttpConnector::new(AwsConnector(built))
            })
            .clone()
    }
}

/// One reqwest client as an SDK connector (or why it could not be built:
/// every call then fails with that, and the SDK reports it).
#[derive(Debug)]
struct AwsConnector(Result<reqwest::Client, String>);

impl HttpConnector for AwsConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.0.clone();
        HttpConnectorFuture::new(async move {
            let client = client.map_err(|e| ConnectorError::other(e.into(), None))?;
            let request = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::user(e.into()))?;
            let (parts, body) = request.into_parts();
            // DynamoDB, Secrets Manager and EventBridge send bodies in memory.
            let Some(bytes) = body.bytes().map(<[u8]>::to_vec) else {
                return Err(ConnectorError::user("a streaming request body".into()));
            };
            let request = reqwest::Request::try_from(http::Request::from_parts(parts, bytes))
                .map_err(|e| ConnectorError::user(e.into()))?;
            let answer = client.execute(request).await.map_err(connector_error)?;
            let mut response = http::Response::builder().status(answer.status());
            if let Some(headers) = response.headers_mut() {
                *headers = answer.headers().clone();
            }
            let body = answer.bytes().await.map_err(connector_error)?;
            let response = response
                .body(SdkBody::from(body))
                .map_err(|e| ConnectorError::other(e.into(), None))?;
            HttpResponse::try_from(response).map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// As the SDK's own client classifies its errors: timeouts and failed
/// connections or exchanges are transient (the SDK retries them).
fn connector_error(e: reqwest::Error) -> ConnectorError {
    if e.is_timeout() {
        ConnectorError::timeout(e.into())
    } else if e.is_connect() || e.is_request() || e.is_body() || e.is_decode() {
        ConnectorError::io(e.into())
    } else {
        ConnectorError::other(e.into(), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_configuration_for_every_client() {
        let (a, b) = (tls_config(), tls_config());
        let (Ok(a), Ok(b)) = (a, b) else {
            panic!("no TLS configuration");
        };
        assert!(Arc::ptr_eq(a.crypto_provider(), b.crypto_provider()));
        assert!(!webpki_roots::TLS_SERVER_ROOTS.is_empty());
    }
}
