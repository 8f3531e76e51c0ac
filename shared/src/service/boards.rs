//! Flow 4: a board, once per idempotency key, through Miro's call loop.

use super::retry::backoff;
use super::{miro_failure, Deadline, Service};
use crate::domain::{Board, BoardRequest, Connection};
use crate::error::Error;
use crate::identity::AppUser;
use crate::miro::MiroError;
use crate::store::{IdempotencyRecord, IdempotentOutcome};
use serde::Serialize;

/// What to do when a board needs a consent the user has not given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Consent {
    /// Start a flow that carries the board as its intent (HTTP: the user is there).
    StartFlow,
    /// Only say so (events: the app asks the user in its own session).
    ReportOnly,
}

impl Service {
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
    pub(crate) async fn create_board_for(
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
}

/// Idempotency records live a day (`docs/architecture.md`, "Data").
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
