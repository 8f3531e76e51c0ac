//! Flow 4: a board (empty, or a copy of a template board) and its
//! invitations, once per idempotency key: a small saga recorded step by step
//! under the key, so that a retry resumes at the first step not done and
//! never makes a second board.

use super::connections::disconnected;
use super::content::Content;
use super::retry::backoff;
use super::{miro_failure, Deadline, Service};
use crate::domain::{
    default_connection, Board, BoardRequest, Connection, ConnectionKey, ContentSummary,
    FailedInvitation, InvitationChunk, Invitations,
};
use crate::error::Error;
use crate::events::{DisconnectReason, Lifecycle};
use crate::identity::AppUser;
use crate::miro::{MiroError, LEVEL_3_CREDITS, LEVEL_4_CREDITS};
use crate::store::{BoardMade, ContentMade, IdempotencyRecord, IdempotentOutcome};
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
    /// A caller that may wait (an event) waits for another request holding
    /// the same key to finish and replays its board, for about five seconds
    /// at most; an HTTP caller gets `idempotency_in_progress` at once.
    pub async fn create_board_as(
        &self,
        user: &AppUser,
        idempotency_key: Option<&str>,
        request: BoardRequest,
        deadline: Deadline,
        consent: Consent,
    ) -> Result<BoardCreated, Error> {
        let mut waits = 0;
        loop {
            // Boxed: the saga's state is large, and callers' futures (a
            // test's, a handler's) live on small stacks.
            let outcome = Box::pin(self.create_board_once(
                user,
                idempotency_key,
                request.clone(),
                deadline,
                consent,
                None,
            ))
            .await;
            let wait = backoff(waits);
            match outcome {
                Err(Error::IdempotencyInProgress)
                    if waits < IN_PROGRESS_WAITS && deadline.allows(wait) =>
                {
                    tokio::time::sleep(wait).await;
                    waits += 1;
                }
                outcome => return counted(outcome),
            }
        }
    }

    /// One attempt at the request. `known`: the connection a consent just
    /// stored (the intent's run at completion), else the team's or default.
    pub(crate) async fn create_board_once(
        &self,
        user: &AppUser,
        idempotency_key: Option<&str>,
        request: BoardRequest,
        deadline: Deadline,
        consent: Consent,
        known: Option<Connection>,
    ) -> Result<BoardCreated, Error> {
        request.validate()?;
        let Some(key) = idempotency_key else {
            return self
                .board_and_invitations(user, known, &request, deadline, consent)
                .await;
        };
        let mut claim = self.claim_key(user, key, &request).await?;
        let resumed = match std::mem::replace(&mut claim.earlier, Claimed::Fresh) {
            Claimed::Replay(created) => return Ok(created),
            Claimed::Resume(made) => Some(made),
            Claimed::Fresh => None,
        };
        let (mut made, mut connection, is_resumed) = match resumed {
            Some(made) => {
                tracing::info!(user = %user, board = %made.board.id, done = made.chunks_done, "resuming a board request");
                claim.save(self, Some(&made)).await?;
                (made, None, true)
            }
            None => match self
                .create_board_for(user, known, &request, deadline, consent, Some(key))
                .await
            {
                Ok((board, connection)) => {
                    let made = BoardMade {
                        board,
                        chunks_done: 0,
                        invitations: Invitations::default(),
                        content: ContentMade::default(),
                    };
                    // The board's id is kept before anything else is tried.
                    claim.save(self, Some(&made)).await?;
                    (made, Some(connection), false)
                }
                Err(e) if e.made_nothing() => {
                    self.store.release(user, key).await?;
                    return Err(e);
                }
                Err(e) => {
                    claim.settle(self, IdempotentOutcome::Unknown).await?;
                    return Err(e);
                }
            },
        };
        let content = Content::new(&request.items, &request.connectors);
        if !content.is_done(&made.content) {
            let mut current = self
                .board_connection(user, connection.take(), &request, &made.board)
                .await?;
            let mut progress = std::mem::take(&mut made.content);
            let outcome = self
                .make_content(
                    user,
                    &mut current,
                    &made.board.id,
                    &content,
                    &mut progress,
                    is_resumed,
                    false,
                    deadline,
                    Some((&claim, &made)),
                )
                .await;
            made.content = progress;
            connection = Some(current);
            if let Err(e) = outcome {
                if matches!(e, Error::InvalidItem { .. }) {
                    // All or nothing: the board goes, and the key with it.
                    self.delete_new_board(user, connection.as_ref(), &made.board)
                        .await;
                    self.store.release(user, key).await?;
                } else {
                    tracing::warn!(user = %user, board = %made.board.id, error = %e, "content paused; a retry under the key resumes it");
                    claim
                        .settle(self, IdempotentOutcome::Paused { made })
                        .await?;
                }
                return Err(e);
            }
        }
        let chunks = request.invitation_chunks();
        while let Some(chunk) = chunks.get(made.chunks_done) {
            match self
                .invite(
                    user,
                    &mut connection,
                    &request,
                    &made.board,
                    chunk,
                    deadline,
                )
                .await
            {
                Ok(done) => {
                    merge(&mut made.invitations, chunk, done);
                    made.chunks_done += 1;
                    claim.save(self, Some(&made)).await?;
                }
                Err(e) => {
                    tracing::warn!(user = %user, board = %made.board.id, done = made.chunks_done, error = %e, "invitations paused; a retry under the key resumes them");
                    claim
                        .settle(self, IdempotentOutcome::Paused { made })
                        .await?;
                    return Err(e);
                }
            }
        }
        let invitations = (!chunks.is_empty()).then_some(made.invitations);
        let items = (!content.is_empty()).then(|| content.summary(&made.content));
        claim
            .settle(
                self,
                IdempotentOutcome::Created {
                    board: made.board.clone(),
                    invitations: invitations.clone(),
                    items: items.clone(),
                },
            )
            .await?;
        Ok(BoardCreated {
            board: made.board,
            invitations,
            items,
            replayed: false,
        })
    }

    /// Claims `key` for `request`: a fresh claim, the earlier answer to
    /// replay, or an earlier attempt's progress to resume.
    pub(super) async fn claim_key<'k, R: Serialize>(
        &self,
        user: &'k AppUser,
        key: &'k str,
        request: &R,
    ) -> Result<Claim<'k>, Error> {
        if !is_idempotency_key(key) {
            return Err(Error::InvalidParameter("Idempotency-Key"));
        }
        let request_hash = crate::secret::sha256_hex(
            &serde_json::to_string(request).map_err(|e| Error::Internal(e.to_string()))?,
        );
        let now = self.clock.now();
        let mut claim = Claim {
            user,
            key,
            request_hash,
            claim_id: uuid::Uuid::new_v4().to_string(),
            expires_at: now + IDEMPOTENCY_TTL_SECONDS,
            earlier: Claimed::Fresh,
        };
        let Some(earlier) = self
            .store
            .claim(user, key, &claim.in_progress(None), now)
            .await?
        else {
            return Ok(claim);
        };
        if earlier.request_hash != claim.request_hash {
            return Err(Error::IdempotencyKeyReused);
        }
        // Claimed longer ago than any invocation runs: its holder died.
        let stale = now >= earlier.expires_at - IDEMPOTENCY_TTL_SECONDS + STALE_CLAIM_SECONDS;
        claim.earlier = match earlier.outcome {
            IdempotentOutcome::Created {
                board,
                invitations,
                items,
            } => {
                tracing::info!(user = %user, board = %board.id, "idempotent replay");
                Claimed::Replay(BoardCreated {
                    board,
                    invitations,
                    items,
                    replayed: true,
                })
            }
            // Our own claim, written once already: its answer was lost
            // and the write was sent again. Ours to carry on with.
            IdempotentOutcome::InProgress { claim: id, made } if id == claim.claim_id => {
                made.map_or(Claimed::Fresh, Claimed::Resume)
            }
            IdempotentOutcome::Paused { made } => Claimed::Resume(made),
            // A dead holder that had made the board: finish its work.
            IdempotentOutcome::InProgress {
                made: Some(made), ..
            } if stale => Claimed::Resume(made),
            // A dead holder that may have made a board nobody knows of.
            IdempotentOutcome::InProgress { .. } if stale => return Err(Error::MiroOutcomeUnknown),
            IdempotentOutcome::InProgress { .. } => return Err(Error::IdempotencyInProgress),
            IdempotentOutcome::Unknown => return Err(Error::MiroOutcomeUnknown),
        };
        Ok(claim)
    }

    /// The connection to carry on with on `board`: the one at hand, else
    /// the connection of the team the board is in (the default may have
    /// moved since), else of the request's team.
    async fn board_connection(
        &self,
        user: &AppUser,
        at_hand: Option<Connection>,
        request: &BoardRequest,
        board: &Board,
    ) -> Result<Connection, Error> {
        if let Some(c) = at_hand {
            return Ok(c);
        }
        let team = board.team.as_ref().map(|t| t.id.as_str());
        self.connection_for(user, team.or(request.team_id.as_deref()))
            .await?
            // Never a new flow here: its intent would make a second board.
            .ok_or(Error::AuthorizationRequired(None))
    }

    /// Deletes a board the request made when its content cannot be made
    /// (one call, 500 credits; deleting its items one by one would cost 100
    /// each). Best effort: the request fails either way.
    async fn delete_new_board(
        &self,
        user: &AppUser,
        connection: Option<&Connection>,
        board: &Board,
    ) {
        let Some(connection) = connection else {
            return;
        };
        self.rate_gate.wait(user, Deadline::no_waiting()).await;
        match self
            .miro
            .delete_board(&connection.access_token, &board.id)
            .await
        {
            Ok(()) => {
                tracing::info!(user = %user, board = %board.id, "board deleted: its content could not be made")
            }
            Err(e) => {
                tracing::warn!(user = %user, board = %board.id, error = %e, "board with refused content not deleted")
            }
        }
    }

    /// The board and its invitations without a record to resume from (no
    /// idempotency key): content that cannot be made takes the board with
    /// it (a retry makes a new one), and an invitation chunk that cannot be
    /// sent is reported as failed, since a retry would make a second board.
    pub(crate) async fn board_and_invitations(
        &self,
        user: &AppUser,
        known: Option<Connection>,
        request: &BoardRequest,
        deadline: Deadline,
        consent: Consent,
    ) -> Result<BoardCreated, Error> {
        let (board, mut current) = self
            .create_board_for(user, known, request, deadline, consent, None)
            .await?;
        let content = Content::new(&request.items, &request.connectors);
        let mut made = ContentMade::default();
        if !content.is_empty() {
            let outcome = self
                .make_content(
                    user,
                    &mut current,
                    &board.id,
                    &content,
                    &mut made,
                    false,
                    false,
                    deadline,
                    None,
                )
                .await;
            if let Err(e) = outcome {
                self.delete_new_board(user, Some(&current), &board).await;
                return Err(e);
            }
        }
        let chunks = request.invitation_chunks();
        let mut invitations = Invitations::default();
        let mut connection = Some(current);
        for chunk in &chunks {
            let done = match self
                .invite(user, &mut connection, request, &board, chunk, deadline)
                .await
            {
                Ok(done) => done,
                Err(e) => all_failed(chunk, e.code()),
            };
            merge(&mut invitations, chunk, done);
        }
        Ok(BoardCreated {
            board,
            invitations: (!chunks.is_empty()).then_some(invitations),
            items: (!content.is_empty()).then(|| content.summary(&made)),
            replayed: false,
        })
    }

    /// Sends one invitation chunk, with the token that made the board (or
    /// the team's connection, when resuming). An invitation may be repeated
    /// without harm at Miro, so any failure that leaves it undone is retried
    /// while `deadline` allows; a refusal is reported for the chunk's emails.
    async fn invite(
        &self,
        user: &AppUser,
        connection: &mut Option<Connection>,
        request: &BoardRequest,
        board: &Board,
        chunk: &InvitationChunk,
        deadline: Deadline,
    ) -> Result<Vec<FailedInvitation>, Error> {
        let mut current = self
            .board_connection(user, connection.take(), request, board)
            .await?;
        let message = request.invitation_message.as_deref();
        let mut refreshed = false;
        for attempt in 1..=MAX_ATTEMPTS {
            self.rate_gate.wait(user, deadline).await;
            match self
                .miro
                .invite(&current.access_token, &board.id, chunk, message)
                .await
            {
                Ok(invited) => {
                    *connection = Some(current);
                    return Ok(invited.failed);
                }
                Err(MiroError::Unauthorized) if !refreshed => {
                    refreshed = true;
                    current = self
                        .usable_connection(&current.key, Some(current.version), None)
                        .await?
                        .ok_or(Error::AuthorizationRequired(None))?;
                }
                Err(MiroError::RateLimited {
                    retry_after_seconds,
                }) => {
                    let wait = self.rate_gate.close(user, retry_after_seconds);
                    if !deadline.allows(wait) {
                        return Err(Error::MiroRateLimited {
                            retry_after_seconds,
                        });
                    }
                }
                Err(MiroError::Unavailable { detail, .. }) => {
                    if !deadline.allows(backoff(attempt)) {
                        tracing::warn!(user = %user, %detail, "invitation call failed");
                        return Err(Error::MiroUnavailable {
                            retry_after_seconds: 2,
                        });
                    }
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => {
                    tracing::warn!(user = %user, board = %board.id, error = %e, emails = chunk.emails.len(), "Miro refused an invitation call");
                    *connection = Some(current);
                    return Ok(all_failed(chunk, "miro_rejected"));
                }
            }
        }
        Err(Error::MiroUnavailable {
            retry_after_seconds: 2,
        })
    }

    /// Creates the board with a usable token of the team it names, else of
    /// the user's default connection (`known`: one just stored). A Miro 401
    /// on a token believed valid: one forced refresh, one retry. A 429 or a
    /// refused connection (Miro cannot have created the board) is retried
    /// while `deadline` allows; anything ambiguous never is. No connection
    /// for the team, or Miro's `applicationNotInstalled`: the consent that
    /// installs the app there, with the board as its intent.
    pub(crate) async fn create_board_for(
        &self,
        user: &AppUser,
        known: Option<Connection>,
        request: &BoardRequest,
        deadline: Deadline,
        consent: Consent,
        idempotency_key: Option<&str>,
    ) -> Result<(Board, Connection), Error> {
        let mut connection = match known {
            Some(c) => Some(c),
            None => {
                self.connection_for(user, request.team_id.as_deref())
                    .await?
            }
        };
        let mut refreshed = false;
        let mut attempt = 0u32;
        while let Some(current) = connection.take() {
            attempt += 1;
            self.rate_gate.wait(user, deadline).await;
            let credits = match request.template_board_id {
                Some(_) => LEVEL_4_CREDITS,
                None => LEVEL_3_CREDITS,
            };
            if let Err(wait) = self.rate_gate.spend(user, credits, deadline).await {
                return Err(Error::MiroRateLimited {
                    retry_after_seconds: wait.as_secs().max(1),
                });
            }
            match self.miro.create_board(&current.access_token, request).await {
                // A template the user cannot see (or that is gone).
                Err(MiroError::Rejected { status, .. })
                    if request.template_board_id.is_some() && matches!(status, 403 | 404) =>
                {
                    return Err(Error::TemplateNotFound);
                }
                Ok(board) => {
                    tracing::info!(user = %user, board = %board.id, "board created");
                    return Ok((board, current));
                }
                Err(MiroError::Unauthorized) if !refreshed => {
                    tracing::warn!(user = %user, "Miro refused a token believed valid; forcing a refresh");
                    refreshed = true;
                    connection = self
                        .usable_connection(&current.key, Some(current.version), None)
                        .await?;
                }
                Err(MiroError::Unauthorized) => {
                    tracing::warn!(user = %user, "Miro refused the refreshed token too; connection removed");
                    if self
                        .store
                        .delete_connection_at(&current.key, current.version)
                        .await?
                    {
                        self.announce(disconnected(&current.key, DisconnectReason::GrantRejected))
                            .await;
                    }
                }
                Err(MiroError::NotInstalled) => {
                    // The connection is still good for its own team: kept.
                    tracing::info!(user = %user, "app not installed in the board's team; consent needed there");
                    break;
                }
                Err(MiroError::RateLimited {
                    retry_after_seconds,
                }) => {
                    let wait = self.rate_gate.close(user, retry_after_seconds);
                    if attempt >= MAX_ATTEMPTS || !deadline.allows(wait) {
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
                }) if attempt < MAX_ATTEMPTS && deadline.allows(backoff(attempt)) => {
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
        self.announce(Lifecycle::ReauthorizationRequired {
            user_id: user.to_string(),
            team_id: request.team_id.clone(),
        })
        .await;
        Err(match consent {
            Consent::StartFlow => {
                self.authorization_required(user, None, Some(request.clone()), idempotency_key)
                    .await
            }
            Consent::ReportOnly => Error::AuthorizationRequired(None),
        })
    }

    /// The connection for `team_id`, or the user's default one, with a
    /// usable token; `None` if there is none.
    pub(super) async fn connection_for(
        &self,
        user: &AppUser,
        team_id: Option<&str>,
    ) -> Result<Option<Connection>, Error> {
        if let Some(team_id) = team_id {
            return self
                .usable_connection(&ConnectionKey::new(user, team_id), None, None)
                .await;
        }
        let list = self.store.list_connections(user, self.clock.now()).await?;
        let Some(default) = default_connection(&list.live, list.default_team.as_deref()) else {
            return Ok(None);
        };
        // The list's read is consistent: the token protocol starts from it.
        self.usable_connection(&default.key, None, Some(default.clone()))
            .await
    }
}

/// Idempotency records live a day (`docs/architecture.md`, "Data").
pub const IDEMPOTENCY_TTL_SECONDS: i64 = 24 * 3600;
/// An in-progress claim older than Lambda's longest invocation has no live holder.
const STALE_CLAIM_SECONDS: i64 = 15 * 60;
/// A board POST (or an invitation call) is sent at most this often for one request.
const MAX_ATTEMPTS: u32 = 6;
/// Waits for another request holding the same key (SQS delivers at least
/// once, sometimes to two consumers at once): about five seconds in all.
const IN_PROGRESS_WAITS: u32 = 5;

#[derive(Debug, Serialize)]
pub struct BoardCreated {
    pub board: Board,
    /// What became of the app's content, when it sent any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<ContentSummary>,
    /// What became of each invitation, when members were asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invitations: Option<Invitations>,
    /// The board of an earlier request under the same idempotency key.
    #[serde(skip)]
    pub replayed: bool,
}

/// The answer to content added to an existing board.
#[derive(Debug, Serialize)]
pub struct ItemsAdded {
    pub board: BoardId,
    pub items: ContentSummary,
    /// The answer of an earlier request under the same idempotency key.
    #[serde(skip)]
    pub replayed: bool,
}

#[derive(Debug, Serialize)]
pub struct BoardId {
    pub id: String,
}

/// What an idempotency key held when it was claimed.
pub(crate) enum Claimed {
    /// Nothing: this request is the first.
    Fresh,
    /// A finished request's answer.
    Replay(BoardCreated),
    /// An unfinished request's progress, ours to carry on.
    Resume(BoardMade),
}

/// A claimed idempotency key, and how to record progress under it.
pub(crate) struct Claim<'k> {
    user: &'k AppUser,
    key: &'k str,
    request_hash: String,
    claim_id: String,
    expires_at: i64,
    pub(super) earlier: Claimed,
}

impl Claim<'_> {
    fn record(&self, outcome: IdempotentOutcome) -> IdempotencyRecord {
        IdempotencyRecord {
            request_hash: self.request_hash.clone(),
            outcome,
            expires_at: self.expires_at,
        }
    }

    fn in_progress(&self, made: Option<&BoardMade>) -> IdempotencyRecord {
        self.record(IdempotentOutcome::InProgress {
            claim: self.claim_id.clone(),
            made: made.cloned(),
        })
    }

    /// Records how far the request got; the claim stays ours.
    pub(super) async fn save(
        &self,
        service: &Service,
        made: Option<&BoardMade>,
    ) -> Result<(), Error> {
        Ok(service
            .store
            .settle(self.user, self.key, &self.in_progress(made))
            .await?)
    }

    pub(super) async fn settle(
        &self,
        service: &Service,
        outcome: IdempotentOutcome,
    ) -> Result<(), Error> {
        Ok(service
            .store
            .settle(self.user, self.key, &self.record(outcome))
            .await?)
    }
}

/// Counts a board request's outcome: `BoardsCreated` (a replay made
/// nothing), or `BoardsFailed` under its error code (`crate::metrics`).
pub(crate) fn counted(outcome: Result<BoardCreated, Error>) -> Result<BoardCreated, Error> {
    use crate::metrics::{count, Dimension, Metric};
    match &outcome {
        Ok(created) if !created.replayed => count(Metric::BoardsCreated, 1, &[]),
        Ok(_) => {}
        Err(e) => count(Metric::BoardsFailed, 1, &[(Dimension::Reason, e.code())]),
    }
    outcome
}

/// 1 to 255 visible ASCII characters, as most APIs take them.
pub fn is_idempotency_key(key: &str) -> bool {
    (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

/// Adds a chunk's outcome: every email Miro did not list as failed was invited.
fn merge(invitations: &mut Invitations, chunk: &InvitationChunk, failed: Vec<FailedInvitation>) {
    for email in &chunk.emails {
        if !failed.iter().any(|f| f.email == *email) {
            invitations.invited.push(email.clone());
        }
    }
    invitations.failed.extend(failed);
}

fn all_failed(chunk: &InvitationChunk, reason: &str) -> Vec<FailedInvitation> {
    chunk
        .emails
        .iter()
        .map(|email| FailedInvitation {
            email: email.clone(),
            reason: reason.to_string(),
        })
        .collect()
}
