//! The use cases, written against the store ports and the Miro adapters.
//! Handlers parse, call one of these, and respond.

use crate::clock::{rfc3339, Clock};
use crate::config::Config;
use crate::domain::{
    is_miro_id, AuthorizationRequest, Board, BoardRequest, Completion, Connection,
    ConnectionProfile, ConnectionStatus, PendingAuthorization,
};
use crate::error::Error;
use crate::identity::AppUser;
use crate::miro::{MiroApi, MiroError};
use crate::oauth::{MiroOAuth, OAuthError, TokenGrant};
use crate::secret::{looks_like_random_secret, Secret};
use crate::store::{IdempotencyRecord, IdempotentOutcome, Store, Taken};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use url::Url;

const MAX_RETURN_TO_LEN: usize = 2048;
const MAX_CODE_LEN: usize = 1024;

/// `POST /miro/authorizations`'s optional body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartAuthorization {
    #[serde(default)]
    pub return_to: Option<String>,
    #[serde(default)]
    pub team_id: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct AuthorizationStarted {
    pub authorize_url: String,
    pub expires_at: String,
}

/// Miro's redirect to the callback, as far as it matters here.
#[derive(Debug, Default)]
pub struct CallbackParams {
    pub state: Option<Secret>,
    pub code: Option<Secret>,
    pub error: Option<String>,
}

#[derive(Debug, PartialEq)]
pub enum CallbackOutcome {
    /// Back to the app: with `miro_authorization=<completion id>`, or with
    /// `miro_error=<code>` where the state was known.
    Redirect(Url),
    /// The state was missing or unknown: nowhere safe to send the browser.
    Refused,
}

/// `POST /miro/authorizations/complete`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteAuthorization {
    pub completion: String,
}

#[derive(Debug, Serialize)]
pub struct Completed {
    pub connection: ConnectionStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub board: Option<Board>,
    /// Set when the board asked for before connecting could not be created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub board_error: Option<ErrorBody>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
}

impl From<&Error> for ErrorBody {
    fn from(e: &Error) -> Self {
        Self {
            error: e.code().to_string(),
            message: e.to_string(),
        }
    }
}

pub struct Service {
    pub config: Config,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) oauth: MiroOAuth,
    pub(crate) miro: MiroApi,
    pub(crate) clock: Arc<dyn Clock>,
    rate_gate: RateGate,
}

impl Service {
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        http: reqwest::Client,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let oauth = MiroOAuth::new(&config, http.clone());
        let miro = MiroApi::new(&config, http);
        Self {
            config,
            store,
            oauth,
            miro,
            clock,
            rate_gate: RateGate::default(),
        }
    }

    /// Flow 1: remember who asked and where to return, hand out Miro's URL.
    pub async fn start_authorization(
        &self,
        user: &AppUser,
        start: StartAuthorization,
    ) -> Result<AuthorizationStarted, Error> {
        let return_to = match start.return_to {
            Some(r) => self.vet_return_to(&r)?,
            None => self.config.default_return_to.clone(),
        };
        if let Some(team) = &start.team_id {
            if !is_miro_id(team) {
                return Err(Error::InvalidParameter("team_id"));
            }
        }
        let request = AuthorizationRequest {
            user: user.clone(),
            return_to: return_to.to_string(),
            team_id: start.team_id,
            intent: None,
        };
        self.pend(request).await
    }

    async fn pend(&self, request: AuthorizationRequest) -> Result<AuthorizationStarted, Error> {
        let state = Secret::random();
        let expires_at = self.clock.now() + self.config.authorization_ttl_seconds;
        let authorize_url = self.oauth.authorize_url(&state, request.team_id.as_deref());
        let user = request.user.clone();
        self.store
            .put_pending(&PendingAuthorization {
                state_hash: state.digest(),
                request,
                expires_at,
            })
            .await?;
        tracing::info!(user = %user, "authorization started");
        Ok(AuthorizationStarted {
            authorize_url: authorize_url.to_string(),
            expires_at: rfc3339(expires_at),
        })
    }

    /// A fresh authorization that carries `intent`, as the 401 that asks for it.
    async fn authorization_required(
        &self,
        user: &AppUser,
        return_to: Option<String>,
        intent: Option<BoardRequest>,
    ) -> Error {
        let team_id = intent.as_ref().and_then(|i| i.team_id.clone());
        let request = AuthorizationRequest {
            user: user.clone(),
            return_to: return_to.unwrap_or_else(|| self.config.default_return_to.to_string()),
            team_id,
            intent,
        };
        match self.pend(request).await {
            Ok(started) => Error::AuthorizationRequired {
                authorize_url: started.authorize_url,
                expires_at: started.expires_at,
            },
            Err(e) => e,
        }
    }

    fn vet_return_to(&self, raw: &str) -> Result<Url, Error> {
        if raw.len() > MAX_RETURN_TO_LEN {
            return Err(Error::ReturnToNotAllowed);
        }
        let url = Url::parse(raw).map_err(|_| Error::ReturnToNotAllowed)?;
        let allowed = matches!(url.scheme(), "https" | "http")
            && url.username().is_empty()
            && url.password().is_none()
            && self.config.allowed_return_origins.contains(&url.origin());
        if !allowed {
            return Err(Error::ReturnToNotAllowed);
        }
        Ok(url)
    }

    /// Flow 2: consume the pending authorization once, park the code under a
    /// fresh completion id and send the browser back to the app.
    pub async fn receive_callback(&self, params: CallbackParams) -> Result<CallbackOutcome, Error> {
        let Some(state) = params
            .state
            .filter(|s| looks_like_random_secret(s.expose()))
        else {
            tracing::warn!("callback without a well-formed state");
            return Ok(CallbackOutcome::Refused);
        };
        let now = self.clock.now();
        let pending = match self.store.take_pending(&state.digest(), now).await? {
            Taken::Fresh(p) => p,
            Taken::Expired(p) => {
                tracing::warn!(user = %p.request.user, "callback for an expired authorization");
                return Ok(back_with(&p.request.return_to, "miro_error", "expired"));
            }
            Taken::Missing => {
                tracing::warn!("callback for an unknown or used state");
                return Ok(CallbackOutcome::Refused);
            }
        };
        let request = pending.request;
        if let Some(error) = params.error {
            let reason = match error.as_str() {
                "access_denied" => "access_denied",
                _ => "authorization_failed",
            };
            tracing::info!(user = %request.user, reason, "Miro did not authorize");
            return Ok(back_with(&request.return_to, "miro_error", reason));
        }
        let Some(code) = params
            .code
            .filter(|c| !c.expose().is_empty() && c.expose().len() <= MAX_CODE_LEN)
        else {
            tracing::warn!(user = %request.user, "callback without a usable code");
            return Ok(back_with(
                &request.return_to,
                "miro_error",
                "authorization_failed",
            ));
        };
        let completion = Secret::random();
        let return_to = request.return_to.clone();
        let user = request.user.clone();
        self.store
            .put_completion(&Completion {
                completion_hash: completion.digest(),
                code,
                request,
                expires_at: now + self.config.authorization_ttl_seconds,
            })
            .await?;
        tracing::info!(user = %user, "authorization received; waiting for completion");
        Ok(back_with(
            &return_to,
            "miro_authorization",
            completion.expose(),
        ))
    }

    /// Flow 3: only the user who started the flow may finish it. Exchanges
    /// the code, stores the connection and runs the intent, once.
    pub async fn complete_authorization(
        &self,
        user: &AppUser,
        completion: &str,
    ) -> Result<Completed, Error> {
        if !looks_like_random_secret(completion) {
            return Err(Error::InvalidCompletion);
        }
        let hash = Secret::new(completion).digest();
        let parked = match self.store.take_completion(&hash, self.clock.now()).await? {
            Taken::Fresh(c) => c,
            Taken::Expired(_) | Taken::Missing => return Err(Error::InvalidCompletion),
        };
        if parked.request.user != *user {
            tracing::warn!(
                user = %user,
                started_by = %parked.request.user,
                "completion presented by another user; destroyed"
            );
            return Err(Error::CompletionForbidden);
        }
        let grant = match self.oauth.exchange_code(&parked.code).await {
            Ok(grant) => grant,
            Err(OAuthError::Rejected(reason)) => {
                tracing::warn!(user = %user, %reason, "code exchange refused");
                let request = parked.request;
                return Err(self
                    .authorization_required(user, Some(request.return_to), request.intent)
                    .await);
            }
            Err(OAuthError::Unavailable(reason)) => {
                // The code is likely still good: park it again so a retry can use it.
                tracing::warn!(user = %user, %reason, "code exchange unavailable");
                self.store.put_completion(&parked).await?;
                return Err(Error::MiroUnavailable {
                    retry_after_seconds: 2,
                });
            }
        };
        let connection = self.connection_from_grant(user, grant);
        self.store.put_connection(&connection).await?;
        tracing::info!(user = %user, "Miro connected");

        let (board, board_error) = match &parked.request.intent {
            None => (None, None),
            Some(intent) => match self
                .create_board_for(user, Some(connection.clone()), intent, Deadline::none())
                .await
            {
                Ok(board) => (Some(board), None),
                Err(e) => (None, Some(ErrorBody::from(&e))),
            },
        };
        Ok(Completed {
            connection: ConnectionStatus::from(&connection),
            board,
            board_error,
        })
    }

    fn connection_from_grant(&self, user: &AppUser, grant: TokenGrant) -> Connection {
        let now = self.clock.now();
        Connection {
            user: user.clone(),
            profile: ConnectionProfile {
                miro_user_id: grant.miro_user_id,
                team_id: grant.team_id,
                scopes: grant.scopes,
                connected_at: now,
            },
            access_token: grant.access_token,
            access_expires_at: grant.expires_in.map(|s| now + s as i64),
            refresh_expires_at: grant
                .refresh_token
                .as_ref()
                .map(|_| now + REFRESH_TOKEN_LIFETIME_SECONDS),
            refresh_token: grant.refresh_token,
            version: 1,
            lease_until: None,
        }
    }

    /// Flow 4: a board for a connected user; otherwise the 401 that asks the
    /// user to connect and keeps the board as the intent. Under an
    /// idempotency key, a repeat returns the first board without calling Miro.
    pub async fn create_board(
        &self,
        user: &AppUser,
        idempotency_key: Option<&str>,
        request: BoardRequest,
        deadline: Deadline,
    ) -> Result<BoardCreated, Error> {
        request.validate()?;
        let Some(key) = idempotency_key else {
            let board = self
                .create_board_for(user, None, &request, deadline)
                .await?;
            return Ok(BoardCreated {
                board,
                replayed: false,
            });
        };
        if !is_idempotency_key(key) {
            return Err(Error::InvalidParameter("Idempotency-Key"));
        }
        let request_hash = crate::secret::sha256_hex(
            &serde_json::to_string(&request).map_err(|e| Error::Internal(e.to_string()))?,
        );
        let now = self.clock.now();
        let claim = IdempotencyRecord {
            request_hash: request_hash.clone(),
            outcome: IdempotentOutcome::InProgress,
            expires_at: now + IDEMPOTENCY_TTL_SECONDS,
        };
        if let Some(earlier) = self.store.claim(user, key, &claim, now).await? {
            if earlier.request_hash != request_hash {
                return Err(Error::IdempotencyKeyReused);
            }
            return match earlier.outcome {
                IdempotentOutcome::Created { board } => {
                    tracing::info!(user = %user, board = %board.id, "idempotent replay");
                    Ok(BoardCreated {
                        board,
                        replayed: true,
                    })
                }
                IdempotentOutcome::InProgress => Err(Error::IdempotencyInProgress),
                IdempotentOutcome::Unknown => Err(Error::MiroOutcomeUnknown),
            };
        }
        match self.create_board_for(user, None, &request, deadline).await {
            Ok(board) => {
                let done = IdempotencyRecord {
                    outcome: IdempotentOutcome::Created {
                        board: board.clone(),
                    },
                    ..claim
                };
                self.store.settle(user, key, &done).await?;
                Ok(BoardCreated {
                    board,
                    replayed: false,
                })
            }
            Err(e) if e.made_nothing() => {
                self.store.release(user, key).await?;
                Err(e)
            }
            Err(e) => {
                let unknown = IdempotencyRecord {
                    outcome: IdempotentOutcome::Unknown,
                    ..claim
                };
                self.store.settle(user, key, &unknown).await?;
                Err(e)
            }
        }
    }

    /// Creates the board with a usable token (`known`: one just stored). A
    /// Miro 401 on a token believed valid: one forced refresh, one retry. A
    /// 429 or a refused connection (Miro cannot have created the board) is
    /// retried while `deadline` allows; anything ambiguous never is.
    async fn create_board_for(
        &self,
        user: &AppUser,
        known: Option<Connection>,
        request: &BoardRequest,
        deadline: Deadline,
    ) -> Result<Board, Error> {
        let mut connection = match known {
            Some(c) => Some(c),
            None => self.usable_connection(user, None).await?,
        };
        let mut refreshed = false;
        let mut attempt = 0u32;
        while let Some(current) = connection.take() {
            attempt += 1;
            self.rate_gate.wait(user, deadline).await;
            match self.miro.create_board(&current.access_token, request).await {
                Ok(board) => {
                    tracing::info!(user = %user, board = %board.id, "board created");
                    return Ok(board);
                }
                Err(MiroError::Unauthorized) if !refreshed => {
                    tracing::warn!(user = %user, "Miro refused a token believed valid; forcing a refresh");
                    refreshed = true;
                    connection = self.usable_connection(user, Some(current.version)).await?;
                }
                Err(MiroError::Unauthorized) => {
                    tracing::warn!(user = %user, "Miro refused the refreshed token too; connection removed");
                    self.store
                        .delete_connection_at(user, current.version)
                        .await?;
                }
                Err(MiroError::RateLimited {
                    retry_after_seconds,
                }) => {
                    let wait = self.rate_gate.close(user, retry_after_seconds);
                    if attempt >= MAX_BOARD_ATTEMPTS || !deadline.allows(wait) {
                        return Err(Error::MiroRateLimited {
                            retry_after_seconds,
                        });
                    }
                    tracing::info!(user = %user, wait_ms = wait.as_millis() as u64, "rate limited; waiting");
                    connection = Some(current);
                }
                Err(MiroError::Unavailable {
                    may_have_taken_effect: false,
                    ..
                }) if attempt < MAX_BOARD_ATTEMPTS && deadline.allows(backoff(attempt)) => {
                    tokio::time::sleep(backoff(attempt)).await;
                    connection = Some(current);
                }
                Err(MiroError::Unavailable {
                    may_have_taken_effect: true,
                    detail,
                }) => {
                    tracing::warn!(user = %user, %detail, "board POST failed ambiguously; not retried");
                    return Err(Error::MiroOutcomeUnknown);
                }
                Err(e) => return Err(miro_failure(user, e)),
            }
        }
        Err(self
            .authorization_required(user, None, Some(request.clone()))
            .await)
    }

    /// Flow 5: what the app may show about the connection (never a token).
    pub async fn connection_status(&self, user: &AppUser) -> Result<ConnectionStatus, Error> {
        Ok(
            match self.store.get_connection(user, self.clock.now()).await? {
                Some(c) => ConnectionStatus::from(&c),
                None => ConnectionStatus::disconnected(),
            },
        )
    }

    /// Flow 5: revoke at Miro (which also kills the refresh token), then
    /// forget. Idempotent; if Miro cannot be reached the connection is kept
    /// so that the disconnect can be retried and really revokes.
    pub async fn disconnect(&self, user: &AppUser) -> Result<(), Error> {
        let Some(connection) = self.usable_connection(user, None).await? else {
            return Ok(());
        };
        match self.miro.revoke(&connection.access_token).await {
            Ok(()) | Err(MiroError::Rejected { .. }) | Err(MiroError::Unauthorized) => {}
            Err(e) => return Err(miro_failure(user, e)),
        }
        self.store.delete_connection(user).await?;
        tracing::info!(user = %user, "Miro disconnected");
        Ok(())
    }
}

fn miro_failure(user: &AppUser, e: MiroError) -> Error {
    match e {
        MiroError::Rejected { status, message } => Error::MiroRejected { status, message },
        MiroError::RateLimited {
            retry_after_seconds,
        } => Error::MiroRateLimited {
            retry_after_seconds,
        },
        MiroError::Unauthorized => Error::MiroRejected {
            status: 401,
            message: "token refused".into(),
        },
        MiroError::Unavailable { detail, .. } => {
            // Only reached for requests that are safe to repeat.
            tracing::warn!(user = %user, %detail, "Miro unavailable");
            Error::MiroUnavailable {
                retry_after_seconds: 2,
            }
        }
    }
}

/// Idempotency records live a day, as DESIGN.md says.
pub const IDEMPOTENCY_TTL_SECONDS: i64 = 24 * 3600;
/// A board POST is sent at most this often for one request.
const MAX_BOARD_ATTEMPTS: u32 = 6;

#[derive(Debug, Serialize)]
pub struct BoardCreated {
    pub board: Board,
    /// The board of an earlier request under the same idempotency key.
    #[serde(skip)]
    pub replayed: bool,
}

/// 1 to 255 visible ASCII characters, as most APIs take them.
pub fn is_idempotency_key(key: &str) -> bool {
    (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

/// How long a caller can wait for Miro: an HTTP request does not wait at all
/// (it answers 429 with `Retry-After`); an event consumer waits while its
/// invocation has time left.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Option<std::time::Instant>);

impl Deadline {
    pub fn none() -> Self {
        Self(None)
    }

    pub fn at(instant: std::time::Instant) -> Self {
        Self(Some(instant))
    }

    pub fn allows(&self, wait: std::time::Duration) -> bool {
        self.0.is_some_and(|d| std::time::Instant::now() + wait < d)
    }
}

/// Per app user, the earliest moment Miro will take another request, learnt
/// from a 429: concurrent work for that user waits instead of hammering.
#[derive(Default)]
struct RateGate(std::sync::Mutex<std::collections::HashMap<AppUser, std::time::Instant>>);

impl RateGate {
    /// Shuts the gate for `seconds` plus jitter; returns how long it stays shut.
    fn close(&self, user: &AppUser, seconds: u64) -> std::time::Duration {
        use rand::Rng;
        let wait = std::time::Duration::from_secs(seconds)
            + std::time::Duration::from_millis(rand::thread_rng().gen_range(50..400));
        let until = std::time::Instant::now() + wait;
        if let Ok(mut gates) = self.0.lock() {
            let gate = gates.entry(user.clone()).or_insert(until);
            *gate = (*gate).max(until);
        }
        wait
    }

    /// Waits while the gate is shut, if the deadline allows; else returns at once.
    async fn wait(&self, user: &AppUser, deadline: Deadline) {
        let until = self.0.lock().ok().and_then(|g| g.get(user).copied());
        if let Some(until) = until {
            let now = std::time::Instant::now();
            if until > now && deadline.allows(until - now) {
                tokio::time::sleep(until - now).await;
            }
        }
    }
}

fn backoff(attempt: u32) -> std::time::Duration {
    use rand::Rng;
    let base = 100u64 << attempt.min(5);
    std::time::Duration::from_millis(base + rand::thread_rng().gen_range(0..base))
}

/// Miro's refresh tokens last 60 days; each refresh restarts them.
pub const REFRESH_TOKEN_LIFETIME_SECONDS: i64 = 60 * 24 * 3600;

fn back_with(return_to: &str, key: &str, value: &str) -> CallbackOutcome {
    match Url::parse(return_to) {
        Ok(mut url) => {
            url.query_pairs_mut().append_pair(key, value);
            CallbackOutcome::Redirect(url)
        }
        Err(_) => CallbackOutcome::Refused,
    }
}
