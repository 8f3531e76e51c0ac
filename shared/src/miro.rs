//! Miro's REST API: creating boards (and, with tokens, what a connection needs).

use crate::clock::Clock;
use crate::config::Config;
use crate::domain::{Board, BoardPolicy, BoardRequest, FailedInvitation, InvitationChunk, TeamRef};
use crate::secret::Secret;
use reqwest::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};
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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreateBoardBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    team_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    project_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<&'a BoardPolicy>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BoardWithLinks {
    #[serde(deserialize_with = "required_id")]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    view_link: String,
    #[serde(default)]
    team: Option<TeamBody>,
    #[serde(default)]
    created_at: Option<String>,
}

#[derive(Deserialize)]
struct TeamBody {
    #[serde(default, deserialize_with = "string_or_number")]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

fn required_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    string_or_number(d)?.ok_or_else(|| serde::de::Error::custom("id is null"))
}

pub struct MiroApi {
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    base: Url,
    client_id: String,
    client_secret: Option<Secret>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RevokeBody<'a> {
    access_token: &'a str,
    client_id: &'a str,
    client_secret: &'a str,
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

    /// `POST /v2/oauth/revoke` with a JSON body (the v1 endpoint puts the
    /// token in the URL). 404 means the token was already dead: done.
    pub async fn revoke(&self, access_token: &Secret) -> Result<(), MiroError> {
        let body = RevokeBody {
            access_token: access_token.expose(),
            client_id: &self.client_id,
            client_secret: self
                .client_secret
                .as_ref()
                .map(Secret::expose)
                .unwrap_or_default(),
        };
        let response = self
            .http
            .post(Config::endpoint(&self.base, "/v2/oauth/revoke"))
            .json(&body)
            .send_as("revoke")
            .await
            .map_err(transport)?;
        if response.status().is_success() || response.status() == StatusCode::NOT_FOUND {
            return Ok(());
        }
        Err(failure(response, self.clock.now()).await)
    }

    /// `POST /v2/boards/{board_id}/members`: invites one chunk (one role, at
    /// most 20 emails). Inviting someone twice does no harm at Miro, so a
    /// caller may repeat a chunk whose answer it did not get.
    pub async fn invite(
        &self,
        access_token: &Secret,
        board_id: &str,
        chunk: &InvitationChunk,
        message: Option<&str>,
    ) -> Result<Invited, MiroError> {
        let mut url = Config::endpoint(&self.base, "/v2/boards");
        url.path_segments_mut()
            .map_err(|_| unreadable("API base URL"))?
            .push(board_id)
            .push("members");
        let response = self
            .http
            .post(url)
            .bearer_auth(access_token.expose())
            .json(&InviteBody {
                emails: &chunk.emails,
                role: chunk.role.as_str(),
                message,
            })
            .send_as("invite")
            .await
            .map_err(transport)?;
        if response.status() != StatusCode::CREATED && response.status() != StatusCode::OK {
            return Err(failure(response, self.clock.now()).await);
        }
        let body = read_capped(response)
            .await
            .map_err(|_| unreadable("invitation answer"))?;
        let answer: InviteAnswer =
            serde_json::from_slice(&body).map_err(|_| unreadable("invitation answer"))?;
        Ok(Invited {
            // Only what this chunk asked for: Miro's list is outside input.
            failed: answer
                .failed
                .into_iter()
                .filter(|f| chunk.emails.contains(&f.email))
                .map(|f| FailedInvitation {
                    email: f.email,
                    reason: f
                        .reason
                        .map(|mut r| {
                            r.truncate(r.floor_char_boundary(100));
                            r
                        })
                        .unwrap_or_else(|| "INVITATION_FAILED".into()),
                })
                .collect(),
        })
    }

    /// `GET /v1/oauth-token`: the team (and its name) a token is for. A 400
    /// means Miro no longer knows the token.
    pub async fn token_context(&self, access_token: &Secret) -> Result<TokenContext, MiroError> {
        let response = self
            .http
            .get(Config::endpoint(&self.base, "/v1/oauth-token"))
            .bearer_auth(access_token.expose())
            .send_as("token_context")
            .await
            .map_err(transport)?;
        if response.status() != StatusCode::OK {
            return Err(failure(response, self.clock.now()).await);
        }
        let body = read_capped(response)
            .await
            .map_err(|_| unreadable("token context"))?;
        let context: TokenContextBody =
            serde_json::from_slice(&body).map_err(|_| unreadable("token context"))?;
        Ok(TokenContext {
            team_id: context.team.as_ref().and_then(|t| t.id.clone()),
            team_name: context.team.and_then(|t| t.name),
        })
    }

    /// `POST /v2/boards`, or with `template_board_id` the copy
    /// `PUT /v2/boards?copy_from=…` (which takes no project). Neither is
    /// idempotent at Miro: the caller decides on retries.
    pub async fn create_board(
        &self,
        access_token: &Secret,
        request: &BoardRequest,
    ) -> Result<Board, MiroError> {
        let body = CreateBoardBody {
            name: request.name.as_deref(),
            description: request.description.as_deref(),
            team_id: request.team_id.as_deref(),
            project_id: request.project_id.as_deref(),
            policy: request.policy.as_ref(),
        };
        let call = match &request.template_board_id {
            None => self.http.post(Config::endpoint(&self.base, "/v2/boards")),
            Some(template) => {
                let mut url = Config::endpoint(&self.base, "/v2/boards");
                url.query_pairs_mut().append_pair("copy_from", template);
                self.http.put(url)
            }
        };
        let response = call
            .bearer_auth(access_token.expose())
            .json(&body)
            .send_as("create_board")
            .await
            .map_err(transport)?;
        if response.status() != StatusCode::CREATED && response.status() != StatusCode::OK {
            return Err(failure(response, self.clock.now()).await);
        }
        // A lost or oversized body after a 201 is as ambiguous as a lost answer.
        let body = read_capped(response)
            .await
            .map_err(|_| MiroError::Unavailable {
                may_have_taken_effect: true,
                detail: "unreadable board response".into(),
            })?;
        parse_board(&body).ok_or_else(|| MiroError::Unavailable {
            may_have_taken_effect: true,
            detail: "unreadable board response".into(),
        })
    }
}

/// What one invitation call did: Miro answers 201 even when some emails
/// could not be invited, and lists those.
#[derive(Debug, Clone, PartialEq)]
pub struct Invited {
    pub failed: Vec<FailedInvitation>,
}

#[derive(Serialize)]
struct InviteBody<'a> {
    emails: &'a [String],
    role: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
}

#[derive(Deserialize)]
struct InviteAnswer {
    #[serde(default)]
    failed: Vec<FailedBody>,
}

#[derive(Deserialize)]
struct FailedBody {
    #[serde(default)]
    email: String,
    #[serde(default)]
    reason: Option<String>,
}

/// What Miro's token context says of a token's team.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenContext {
    pub team_id: Option<String>,
    pub team_name: Option<String>,
}

#[derive(Deserialize)]
struct TokenContextBody {
    #[serde(default)]
    team: Option<TeamBody>,
}

/// An answer that is not what Miro sends: for a read, safe to ask again.
fn unreadable(what: &str) -> MiroError {
    MiroError::Unavailable {
        may_have_taken_effect: false,
        detail: format!("unreadable {what}"),
    }
}

/// Miro's 201 body (`BoardWithLinks`) as this API's [`Board`]; `None` if it is not one.
pub fn parse_board(body: &[u8]) -> Option<Board> {
    let board: BoardWithLinks = serde_json::from_slice(body)
        .ok()
        .filter(|b: &BoardWithLinks| !b.id.is_empty())?;
    Some(Board {
        id: board.id,
        name: board.name,
        // Handed to the app as a link: only https, never `javascript:` or the like.
        view_link: Url::parse(&board.view_link)
            .ok()
            .filter(|u| u.scheme() == "https")
            .map(String::from),
        team: board
            .team
            .and_then(|t| t.id.map(|id| TeamRef { id, name: t.name })),
        created_at: board.created_at,
    })
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
