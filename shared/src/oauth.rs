//! Miro's OAuth2 authorization-code flow on the `oauth2` crate: the authorize
//! URL, the code exchange and the refresh, with Miro's own response shapes.
//!
//! `oauth2` runs over this crate's reqwest through [`send`], so that one
//! reqwest is built. The client authenticates with `client_id` and
//! `client_secret` in the form body, never in a URL.

use crate::clock::Clock;
use crate::config::Config;
use crate::miro::{string_or_number, SendMeasured};
use crate::secret::Secret;
use oauth2::basic::{
    BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken,
    RequestTokenError, StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use url::Url;

/// What a token response carries, in our terms.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    pub expires_in: Option<u64>,
    pub miro_user_id: Option<String>,
    pub team_id: Option<String>,
    pub scopes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// A 400 or 401 with Miro's JSON error body (or RFC 6749's): this code or
    /// refresh token is dead. Nothing else is taken as a dead grant.
    #[error("Miro's token endpoint refused the grant: {0}")]
    Rejected(String),
    /// A 429: the grant is still good; try again after this many seconds.
    #[error("Miro's token endpoint is rate limited")]
    RateLimited { retry_after_seconds: u64 },
    /// Anything else (5xx, 3xx, a body that is not JSON, an empty body, a
    /// timeout, no connection): the grant may well still be good.
    #[error("Miro's token endpoint is unavailable: {0}")]
    Unavailable(String),
}

/// Access-token lifetimes above a day are taken as a day: Miro's last an
/// hour, and a huge `expires_in` must neither overflow nor mean "never refresh".
pub const MAX_ACCESS_TOKEN_SECONDS: u64 = 24 * 3600;

/// The PKCE verifier of a flow, derived from its state: nothing extra to
/// store at start (which holds no sealing key), and only the holder of the
/// state (the browser that went through Miro) can present it. A code
/// injected into another flow is exchanged with that flow's verifier and fails.
pub fn pkce_verifier(state: &Secret) -> Secret {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("miro-connect pkce v1\n{}", state.expose()).as_bytes());
    Secret::new(URL_SAFE_NO_PAD.encode(digest))
}

/// Miro's extra fields: `team_id` arrives as a string or as a JSON number.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct MiroTokenFields {
    #[serde(default, deserialize_with = "string_or_number")]
    pub user_id: Option<String>,
    #[serde(default, deserialize_with = "string_or_number")]
    pub team_id: Option<String>,
}
impl ExtraTokenFields for MiroTokenFields {}

pub type MiroTokenResponse = StandardTokenResponse<MiroTokenFields, BasicTokenType>;

/// Miro's error body `{status, code, message, type}`; RFC 6749's fields are
/// read too in case Miro ever sends them. Every field is optional so that any
/// JSON error body parses.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct MiroOAuthError {
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
}

impl fmt::Display for MiroOAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self
            .code
            .as_deref()
            .or(self.error.as_deref())
            .unwrap_or("unknown");
        write!(f, "{code}")?;
        if let Some(status) = self.status {
            write!(f, " ({status})")?;
        }
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        Ok(())
    }
}
impl oauth2::ErrorResponse for MiroOAuthError {}

type MiroClient = oauth2::Client<
    MiroOAuthError,
    MiroTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

pub struct MiroOAuth {
    client: MiroClient,
    http: OAuthHttp,
}

impl MiroOAuth {
    pub fn new(config: &Config, http: reqwest::Client, clock: Arc<dyn Clock>) -> Self {
        let mut client = oauth2::Client::new(ClientId::new(config.miro_client_id.clone()))
            .set_auth_uri(AuthUrl::from_url(Config::endpoint(
                &config.miro_auth_base,
                "/oauth/authorize",
            )))
            .set_token_uri(TokenUrl::from_url(Config::endpoint(
                &config.miro_api_base,
                "/v1/oauth/token",
            )))
            .set_redirect_uri(RedirectUrl::from_url(config.miro_redirect_uri.clone()))
            .set_auth_type(AuthType::RequestBody);
        // Only the functions that exchange or refresh are given the secret.
        if let Some(secret) = &config.miro_client_secret {
            client = client.set_client_secret(ClientSecret::new(secret.expose().to_string()));
        }
        Self {
            client,
            http: OAuthHttp { http, clock },
        }
    }

    /// Where to send the browser, with an S256 PKCE challenge for the state's
    /// verifier. Scopes are set in Miro's app settings, not here.
    pub fn authorize_url(&self, state: &Secret, team_id: Option<&str>) -> Url {
        let verifier = PkceCodeVerifier::new(pkce_verifier(state).expose().to_string());
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&verifier);
        let state = state.expose().to_string();
        let mut request = self
            .client
            .authorize_url(move || CsrfToken::new(state))
            .set_pkce_challenge(challenge);
        if let Some(team) = team_id {
            request = request.add_extra_param("team_id", team.to_string());
        }
        request.url().0
    }

    pub async fn exchange_code(
        &self,
        code: &Secret,
        verifier: &Secret,
    ) -> Result<TokenGrant, OAuthError> {
        let response = self
            .client
            .exchange_code(AuthorizationCode::new(code.expose().to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.expose().to_string()))
            .request_async(&self.http)
            .await;
        grant(response)
    }

    pub async fn refresh(&self, refresh_token: &Secret) -> Result<TokenGrant, OAuthError> {
        let token = RefreshToken::new(refresh_token.expose().to_string());
        let response = self
            .client
            .exchange_refresh_token(&token)
            .request_async(&self.http)
            .await;
        grant(response)
    }
}

fn grant(
    response: Result<MiroTokenResponse, RequestTokenError<TransportError, MiroOAuthError>>,
) -> Result<TokenGrant, OAuthError> {
    match response {
        // Not a grant anyone could use, and no verdict on the grant either.
        Ok(token) if token.access_token().secret().is_empty() => Err(OAuthError::Unavailable(
            "a token response without an access token".into(),
        )),
        Ok(token) => Ok(TokenGrant {
            access_token: Secret::new(token.access_token().secret().clone()),
            refresh_token: token
                .refresh_token()
                .map(|t| Secret::new(t.secret().clone())),
            expires_in: token
                .expires_in()
                .map(|d| d.as_secs().min(MAX_ACCESS_TOKEN_SECONDS)),
            miro_user_id: token.extra_fields().user_id.clone(),
            team_id: token.extra_fields().team_id.clone(),
            scopes: token
                .scopes()
                .map(|s| s.iter().map(|s| s.to_string()).collect())
                .unwrap_or_default(),
        }),
        // Only a 400/401 with a JSON error body gets this far (see `send`).
        Err(RequestTokenError::ServerResponse(e)) => Err(OAuthError::Rejected(e.to_string())),
        Err(RequestTokenError::Request(TransportError::RateLimited(seconds))) => {
            Err(OAuthError::RateLimited {
                retry_after_seconds: seconds,
            })
        }
        Err(RequestTokenError::Request(e)) => Err(OAuthError::Unavailable(e.to_string())),
        // A 200 that is not a token response (a proxy's page, an empty body).
        // The body is not repeated: a half-readable success could hold a token.
        Err(RequestTokenError::Parse(_, _)) | Err(RequestTokenError::Other(_)) => Err(
            OAuthError::Unavailable("unreadable token endpoint response".into()),
        ),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    #[error("answered {0}, which is not a verdict on the grant")]
    NotAVerdict(u16),
    #[error("rate limited")]
    RateLimited(u64),
    #[error(transparent)]
    Body(#[from] crate::miro::BodyError),
    #[error("{0}")]
    Build(#[from] http::Error),
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// `oauth2`'s HTTP client port over our reqwest. Only a 200, or a 400/401
/// whose body is a JSON error, reaches `oauth2` as an answer; everything
/// else is a transport error, so that it reads as "try again", never as a
/// dead grant (`docs/miro.md`, "Token endpoint").
struct OAuthHttp {
    http: reqwest::Client,
    /// Reads `X-RateLimit-Reset` against it.
    clock: Arc<dyn Clock>,
}

impl<'c> oauth2::AsyncHttpClient<'c> for OAuthHttp {
    type Error = TransportError;
    type Future = BoxFuture<'c, Result<oauth2::HttpResponse, TransportError>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        send(&self.http, self.clock.now(), request)
    }
}

fn send(
    http: &reqwest::Client,
    now: i64,
    request: oauth2::HttpRequest,
) -> BoxFuture<'_, Result<oauth2::HttpResponse, TransportError>> {
    Box::pin(async move {
        let (parts, body) = request.into_parts();
        let response = http
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .send_as("token")
            .await?;
        let status = response.status();
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(TransportError::RateLimited(crate::miro::retry_after(
                response.headers(),
                now,
            )));
        }
        let verdict = matches!(status.as_u16(), 400 | 401);
        // `oauth2` reads any status but 200 as an error response: another 2xx
        // (`{}` included) would read as a dead grant.
        if status != reqwest::StatusCode::OK && !verdict {
            return Err(TransportError::NotAVerdict(status.as_u16()));
        }
        let headers = response.headers().clone();
        let body = crate::miro::read_capped(response).await?;
        if verdict && !is_json_error(&body) {
            return Err(TransportError::NotAVerdict(status.as_u16()));
        }
        let mut builder = http::Response::builder().status(status);
        for (name, value) in &headers {
            builder = builder.header(name, value);
        }
        Ok(builder.body(body)?)
    })
}

/// Miro's `{status, code, message, type}` or RFC 6749's `{error, …}`: an
/// object (serde would read a struct from an array too) with a `code` or an
/// `error`.
fn is_json_error(body: &[u8]) -> bool {
    matches!(
        serde_json::from_slice::<serde_json::Value>(body),
        Ok(serde_json::Value::Object(_))
    ) && serde_json::from_slice::<MiroOAuthError>(body)
        .is_ok_and(|e| e.code.is_some() || e.error.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_response_accepts_team_id_as_string_or_number() {
        for body in [
            r#"{"user_id":"3458764517517819000","refresh_token":"r","access_token":"a","expires_in":3599,
                "team_id":"3458764517517818867","scope":"boards:write boards:read","token_type":"bearer"}"#,
            r#"{"user_id":"1","access_token":"a","team_id":3074457358607431473,"scope":"boards:write","token_type":"bearer"}"#,
        ] {
            let t: MiroTokenResponse = serde_json::from_str(body).expect("parses");
            assert!(t
                .extra_fields()
                .team_id
                .as_deref()
                .is_some_and(|s| s.len() >= 19));
        }
    }

    #[test]
    fn miro_error_shape_parses() {
        let e: MiroOAuthError = serde_json::from_str(
            r#"{"status":401,"code":"oauthError","message":"Redirect URI mismatch.","type":"error"}"#,
        )
        .expect("parses");
        assert_eq!(e.to_string(), "oauthError (401): Redirect URI mismatch.");
    }
}
