//! Miro's REST API, a file per resource: [`boards`] (create, copy,
//! delete), [`members`] (invitations), [`items`] (content: frames, bulk
//! items, connectors, reading back), [`oauth`] (token context, revocation).
//! What every call shares is here: the errors, reading a capped body, and
//! classifying Miro's answers.

mod boards;
mod items;
mod members;
mod oauth;

pub use boards::parse_board;
pub use items::*;
pub use members::Invited;
pub use oauth::TokenContext;

use crate::clock::Clock;
use crate::config::Config;
use crate::secret::Secret;
use reqwest::StatusCode;
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::sync::Arc;
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum MiroError {
    /// 401: the access token is not (or no longer) valid.
    #[error("Miro refused the access token")]
    Unauthorized,
    /// Miro's `applicationNotInstalled`: the call named a board or team where
    /// the app is not installed, which takes a consent in that team.
    #[error("the app is not installed in that Miro team")]
    NotInstalled,
    #[error("Miro refused the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    /// A content call's `400` naming one of the items it carried (by its
    /// index in the call) and the field.
    #[error("Miro refused an item ({field}): {message}")]
    InvalidItem {
        index: Option<usize>,
        field: String,
        message: String,
    },
    /// `404` on a board: gone, or not one this token can see.
    #[error("Miro knows no such board for this token")]
    BoardNotFound,
    #[error("Miro's rate limit was reached")]
    RateLimited { retry_after_seconds: u64 },
    /// 5xx, a timeout or no answer. `may_have_taken_effect` is false only
    /// where the request cannot have reached Miro (connection refused).
    #[error("Miro is unavailable: {detail}")]
    Unavailable {
        may_have_taken_effect: bool,
        detail: String,
    },
}

/// Miro's price of a call, in credits of the user's rate limit: Level 2
/// (each item created, each connector, a page read back), Level 3 (a
/// board, an invitation call, a deletion), Level 4 (a copy).
pub const LEVEL_2_CREDITS: u64 = 100;
pub const LEVEL_3_CREDITS: u64 = 500;
pub const LEVEL_4_CREDITS: u64 = 2_000;

/// Miro's answers are outside input: no body is read past this size.
pub const MAX_MIRO_BODY_BYTES: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    #[error("the answer is larger than {MAX_MIRO_BODY_BYTES} bytes")]
    TooLarge,
}

/// The whole body, refused as soon as it passes [`MAX_MIRO_BODY_BYTES`].
pub(crate) async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_MIRO_BODY_BYTES as u64)
    {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_MIRO_BODY_BYTES {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Miro's error body: `{status, code, message, type}`.
#[derive(Debug, Default, Deserialize)]
struct MiroErrorBody {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct TeamBody {
    #[serde(default, deserialize_with = "string_or_number")]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

pub(crate) fn required_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    string_or_number(d)?.ok_or_else(|| serde::de::Error::custom("id is null"))
}

pub struct MiroApi {
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    base: Url,
    client_id: String,
    client_secret: Option<Secret>,
}

impl MiroApi {
    pub fn new(config: &Config, http: reqwest::Client, clock: Arc<dyn Clock>) -> Self {
        Self {
            http,
            clock,
            base: config.miro_api_base.clone(),
            client_id: config.miro_client_id.clone(),
            client_secret: config.miro_client_secret.clone(),
        }
    }
}

/// An answer that is not what Miro sends: for a read, safe to ask again.
fn unreadable(what: &str) -> MiroError {
    MiroError::Unavailable {
        may_have_taken_effect: false,
        detail: format!("unreadable {what}"),
    }
}

/// Sends a call to Miro, recording its latency and any 429 under `call`,
/// one of [`crate::metrics::CALLS`].
pub(crate) trait SendMeasured {
    fn send_as(
        self,
        call: &'static str,
    ) -> impl std::future::Future<Output = reqwest::Result<reqwest::Response>> + Send;
}

impl SendMeasured for reqwest::RequestBuilder {
    async fn send_as(self, call: &'static str) -> reqwest::Result<reqwest::Response> {
        use crate::metrics::{count, since, Dimension, Metric};
        let started = std::time::Instant::now();
        let sent = self.send().await;
        let dimensions = [(Dimension::Call, call)];
        since(Metric::MiroLatency, started, &dimensions);
        if sent
            .as_ref()
            .is_ok_and(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        {
            count(Metric::MiroRateLimited, 1, &dimensions);
        }
        sent
    }
}

pub(crate) fn transport(e: reqwest::Error) -> MiroError {
    MiroError::Unavailable {
        may_have_taken_effect: !e.is_connect(),
        detail: if e.is_timeout() {
            "timed out".into()
        } else {
            "no answer".into()
        },
    }
}

/// Seconds to wait after a 429: `Retry-After` if given, else until
/// `X-RateLimit-Reset` (epoch seconds), else a second.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap, now: i64) -> u64 {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok())
    };
    if let Some(seconds) = header("retry-after") {
        return seconds.clamp(0, 3600) as u64;
    }
    if let Some(reset) = header("x-ratelimit-reset") {
        return (reset - now).clamp(1, 3600) as u64;
    }
    1
}

pub(crate) async fn failure(response: reqwest::Response, now: i64) -> MiroError {
    let status = response.status();
    if status == StatusCode::TOO_MANY_REQUESTS {
        return MiroError::RateLimited {
            retry_after_seconds: retry_after(response.headers(), now),
        };
    }
    if status.is_server_error() {
        return MiroError::Unavailable {
            may_have_taken_effect: true,
            detail: format!("status {}", status.as_u16()),
        };
    }
    let body: MiroErrorBody = read_capped(response)
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    // Whatever 4xx carries it: the token is good, only not for that team.
    if body.code.as_deref() == Some("applicationNotInstalled") {
        return MiroError::NotInstalled;
    }
    if status == StatusCode::UNAUTHORIZED {
        return MiroError::Unauthorized;
    }
    let mut message = body
        .message
        .or(body.code)
        .unwrap_or_else(|| "no detail".into());
    message.truncate(message.floor_char_boundary(300));
    MiroError::Rejected {
        status: status.as_u16(),
        message,
    }
}

/// Miro's ids come as strings or as JSON numbers (and exceed 2^53): read both as text.
pub(crate) fn string_or_number<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or an integer id")
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V)
}
