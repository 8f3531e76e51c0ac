//! The use cases, written against the store ports and the Miro adapters.
//! Handlers parse, call one of these, and respond.

use crate::clock::{rfc3339, Clock};
use crate::config::Config;
use crate::domain::{
    first_version, is_miro_id, AuthorizationRequest, Board, BoardRequest, Completion, Connection,
    ConnectionProfile, ConnectionStatus, FlowStarted, PendingAuthorization,
};
use crate::error::Error;
use crate::identity::AppUser;
use crate::miro::{MiroApi, MiroError};
use crate::oauth::{pkce_verifier, MiroOAuth, OAuthError, TokenGrant};
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

/// `POST /miro/authorizations`' answer.
pub type AuthorizationStarted = FlowStarted;

/// What to do when a board needs a consent the user has not given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Consent {
    /// Start a flow that carries the board as its intent (HTTP: the user is there).
    StartFlow,
    /// Only say so (events: the app asks the user in its own session).
    ReportOnly,
}

/// Live flows (pending authorizations) one user may hold.
pub const MAX_LIVE_FLOWS: u32 = 20;

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
    /// The secret handed out when the flow started. Missing or wrong: the
    /// completion is refused and destroyed.
    #[serde(default)]
    pub flow_secret: Option<String>,
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

    /// Runs one request's work within its budget (`REQUEST_TIMEOUT_MS`):
    /// whatever the services below do, the caller gets an answer (a 503 with
    /// `Retry-After` at worst) before the function's own timeout.
    pub async fn bounded<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let budget = std::time::Duration::from_millis(self.config.request_timeout_ms);
        match tokio::time::timeout(budget, work).await {
            Ok(outcome) => outcome,
            Err(_) => {
                tracing::error!(
                    budget_ms = self.config.request_timeout_ms,
                    "request budget spent"
                );
                Err(Error::RequestTimeout)
            }
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
        self.pend(user, return_to.to_string(), start.team_id, None)
            .await
    }

    /// Stores a pending authorization and hands out Miro's URL and the flow
    /// secret. A user holds at most [`MAX_LIVE_FLOWS`] live ones.
    async fn pend(
        &self,
        user: &AppUser,
        return_to: String,
        team_id: Option<String>,
        intent: Option<BoardRequest>,
    ) -> Result<FlowStarted, Error> {
        let now = self.clock.now();
        let expires_at = now + self.config.authorization_ttl_seconds;
        if let Some(until) = self
            .store
            .admit_flow(user, expires_at, now, MAX_LIVE_FLOWS)
            .await?
        {
            tracing::warn!(user = %user, "too many live authorizations");
            return Err(Error::TooManyAuthorizations {
                retry_after_seconds: (until - now).clamp(1, 3600) as u64,
            });
        }
        let state = Secret::random();
        let flow_secret = Secret::random();
        let authorize_url = self.oauth.authorize_url(&state, team_id.as_deref());
        let request = AuthorizationRequest {
            user: user.clone(),
            flow_secret_hash: flow_secret.digest(),
            return_to,
            team_id,
            intent,
        };
        self.store
            .put_pending(&PendingAuthorization {
                state_hash: state.digest(),
                request,
                expires_at,
            })
            .await?;
        tracing::info!(user = %user, "authorization started");
        Ok(FlowStarted {
            authorize_url: authorize_url.to_string(),
            expires_at: rfc3339(expires_at),
            flow_secret: flow_secret.expose().to_string(),
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
        let return_to = return_to.unwrap_or_else(|| self.config.default_return_to.to_string());
        match self.pend(user, return_to, team_id, intent).await {
            Ok(started) => Error::AuthorizationRequired(Some(Box::new(started))),
            Err(e) => e,
        }
    }

    fn vet_return_to(&self, raw: &str) -> Result<Url, Error> {
        if raw.len() > MAX_RETURN_TO_LEN {
            return Err(Error::ReturnToNotAllowed);
        }
        let url = Url::parse(raw).map_err(|_| Error::ReturnToNotAllowed)?;
        // A planted `miro_error` would let an attacker's completion survive the
        // user's page; a planted `miro_authorization` would be completed by it.
        let planted = url
            .query_pairs()
            .any(|(k, _)| k == "miro_authorization" || k == "miro_error");
        let allowed = matches!(url.scheme(), "https" | "http")
            && !planted
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
                code_verifier: pkce_verifier(&state),
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
        flow_secret: Option<&str>,
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
        let secret_matches =
            flow_secret.is_some_and(|s| Secret::new(s).digest() == parked.request.flow_secret_hash);
        if !secret_matches {
            tracing::warn!(user = %user, "completion presented without its flow secret; destroyed");
            return Err(Error::CompletionForbidden);
        }
        let exchanged = self
            .oauth
            .exchange_code(&parked.code, &parked.code_verifier)
            .await;
        let grant = match exchanged {
            Ok(grant) => grant,
            Err(OAuthError::Rejected(reason)) => {
                tracing::warn!(user = %user, %reason, "code exchange refused");
                let request = parked.request;
                return Err(self
                    .authorization_required(user, Some(request.return_to), request.intent)
                    .await);
            }
            Err(e) => {
                // The code is likely still good: park it again so a retry can use it.
                tracing::warn!(user = %user, error = %e, "code exchange did not happen; code parked again");
                self.store.put_completion(&parked).await?;
                return Err(match e {
                    OAuthError::RateLimited {
                        retry_after_seconds,
                    } => Error::MiroRateLimited {
                        retry_after_seconds,
                    },
                    _ => Error::MiroUnavailable {
                        retry_after_seconds: 2,
                    },
                });
            }
        };
        let connection = self.connection_from_grant(user, grant);
        let replaced = self.store.put_connection(&connection).await?;
        tracing::info!(user = %user, "Miro connected");
        if let Some(old) = replaced {
            // Best effort: the replaced grant must not live on at Miro.
            match self.revoke_grant(&old).await {
                Ok(()) => tracing::info!(user = %user, "replaced connection revoked"),
                Err(e) => {
                    tracing::warn!(user = %user, error = %e, "replaced connection not revoked")
                }
            }
        }

        let (board, board_error) = match &parked.request.intent {
            None => (None, None),
            Some(intent) => match self
                .create_board_for(
                    user,
                    Some(connection.clone()),
                    intent,
                    Deadline::none(),
                    Consent::StartFlow,
                )
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
            version: first_version(),
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
        self.create_board_as(user, idempotency_key, request, deadline, Consent::StartFlow)
            .await
    }

    /// [`Service::create_board`], saying what to do if a consent is missing.
    pub async fn create_board_as(
        &self,
        user: &AppUser,
        idempotency_key: Option<&str>,
        request: BoardRequest,
        deadline: Deadline,
        consent: Consent,
    ) -> Result<BoardCreated, Error> {
        request.validate()?;
        let Some(key) = idempotency_key else {
            let board = self
                .create_board_for(user, None, &request, deadline, consent)
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
        let claim_id = uuid::Uuid::new_v4().to_string();
        let claim = IdempotencyRecord {
            request_hash: request_hash.clone(),
            outcome: IdempotentOutcome::InProgress {
                claim: claim_id.clone(),
            },
            expires_at: now + IDEMPOTENCY_TTL_SECONDS,
        };
        if let Some(earlier) = self.store.claim(user, key, &claim, now).await? {
            if earlier.request_hash != request_hash {
                return Err(Error::IdempotencyKeyReused);
            }
            match earlier.outcome {
                IdempotentOutcome::Created { board } => {
                    tracing::info!(user = %user, board = %board.id, "idempotent replay");
                    return Ok(BoardCreated {
                        board,
                        replayed: true,
                    });
                }
                // Our own claim, written once already: its answer was lost
                // and the write was sent again. Ours to carry on with.
                IdempotentOutcome::InProgress { claim } if claim == claim_id => {}
                // Claimed longer ago than any invocation runs: its holder died
                // somewhere, perhaps after Miro made the board.
                IdempotentOutcome::InProgress { .. }
                    if now
                        >= earlier.expires_at - IDEMPOTENCY_TTL_SECONDS + STALE_CLAIM_SECONDS =>
                {
                    return Err(Error::MiroOutcomeUnknown)
                }
                IdempotentOutcome::InProgress { .. } => return Err(Error::IdempotencyInProgress),
                IdempotentOutcome::Unknown => return Err(Error::MiroOutcomeUnknown),
            }
        }
        match self
            .create_board_for(user, None, &request, deadline, consent)
            .await
        {
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
        consent: Consent,
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
        Err(match consent {
            Consent::StartFlow => {
                self.authorization_required(user, None, Some(request.clone()))
                    .await
            }
            Consent::ReportOnly => Error::AuthorizationRequired(None),
        })
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

    /// Flow 5: forget at once, then revoke at Miro (which also kills the
    /// refresh token). If Miro cannot be reached, the forgotten connection
    /// keeps its sealed tokens until a later disconnect or a reconnect
    /// revokes them; the user reads as disconnected either way. Idempotent.
    pub async fn disconnect(&self, user: &AppUser) -> Result<(), Error> {
        let now = self.clock.now();
        // Bounded: a refresh may move the version between our read and write.
        for _ in 0..3 {
            let Some(connection) = self.store.get_connection(user, now).await? else {
                break;
            };
            if self
                .store
                .forget_connection(user, connection.version)
                .await?
            {
                tracing::info!(user = %user, "Miro disconnected");
                break;
            }
        }
        let Some(forgotten) = self.store.forgotten_connection(user, now).await? else {
            return Ok(());
        };
        match self.revoke_grant(&forgotten).await {
            Ok(()) => {
                self.store
                    .delete_connection_at(user, forgotten.version)
                    .await?;
                tracing::info!(user = %user, "grant revoked at Miro");
            }
            Err(e) => {
                tracing::warn!(user = %user, error = %e, "revocation pending; retried by the next disconnect or connect")
            }
        }
        Ok(())
    }

    /// Kills a grant at Miro. An expired access token may no longer be
    /// known to Miro while its refresh token still is: then the grant is
    /// refreshed once and the new access token revoked.
    pub(crate) async fn revoke_grant(&self, connection: &Connection) -> Result<(), Error> {
        let access_live = connection
            .access_expires_at
            .is_none_or(|t| self.clock.now() < t);
        let access_token = match (&connection.refresh_token, access_live) {
            (Some(refresh_token), false) => match self.oauth.refresh(refresh_token).await {
                Ok(grant) => grant.access_token,
                Err(OAuthError::Rejected(_)) => return Ok(()),
                Err(OAuthError::RateLimited {
                    retry_after_seconds,
                }) => {
                    return Err(Error::MiroRateLimited {
                        retry_after_seconds,
                    })
                }
                Err(OAuthError::Unavailable(_)) => {
                    return Err(Error::MiroUnavailable {
                        retry_after_seconds: 2,
                    })
                }
            },
            _ => connection.access_token.clone(),
        };
        match self.miro.revoke(&access_token).await {
            Ok(()) | Err(MiroError::Rejected { .. }) | Err(MiroError::Unauthorized) => Ok(()),
            Err(e) => Err(miro_failure(&connection.user, e)),
        }
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
/// An in-progress claim older than Lambda's longest invocation has no live holder.
const STALE_CLAIM_SECONDS: i64 = 15 * 60;
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

    pub fn instant(&self) -> Option<std::time::Instant> {
        self.0
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
