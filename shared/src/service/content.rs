//! The board's content, exactly once: frames (one call each), then the
//! other items in bulk calls of at most 20 with their frames' Miro ids, then
//! the connectors; a few calls at a time, inside the user's rate gate. Each
//! landed call is recorded before the next phase, so a retry resumes where
//! the last one stopped. Miro takes no idempotency key, so a call whose
//! answer was lost (and a resumed saga, whose last calls may have landed
//! unrecorded) is settled by reading the board, never by sending blindly.

use super::boards::{BoardId, Claim, Claimed, ItemsAdded};
use super::retry::backoff;
use super::{Deadline, Service};
use crate::domain::{
    content_phases, is_miro_id, item_index, layout, Board, Connection, Connector, ContentRequest,
    ContentStep, ContentSummary, Invitations, Item, Placement, TeamRef,
};
use crate::error::Error;
use crate::identity::AppUser;
use crate::miro::{escape_text, plain_text, sent_text, BoardConnector, BoardItem, NewItem};
use crate::miro::{MiroError, LEVEL_2_CREDITS};
use crate::store::{BoardMade, ContentMade, IdempotentOutcome};
use futures_util::future::join_all;
use std::collections::HashSet;

/// Content calls in flight at once for one request.
pub const CALLS_AT_ONCE: usize = 4;
/// Rounds of a phase (send; read back what was lost; send what is absent).
const ROUNDS: u32 = 6;
/// How far a position read back may be from the one sent (Miro answers floats).
const POSITION_TOLERANCE: f64 = 0.5;

/// A request's items and connectors, and where each item goes.
pub(crate) struct Content<'a> {
    pub items: &'a [Item],
    pub connectors: &'a [Connector],
    placements: Vec<Placement>,
}

impl<'a> Content<'a> {
    pub fn new(items: &'a [Item], connectors: &'a [Connector]) -> Self {
        Self {
            items,
            connectors,
            placements: layout(items),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.connectors.is_empty()
    }

    /// True once every item and connector is made or known to be unknown.
    pub fn is_done(&self, made: &ContentMade) -> bool {
        let item_done = |i: usize| made.items.get(i).is_some_and(Option::is_some);
        let line_done = |i: usize| made.connectors.get(i).is_some_and(Option::is_some);
        (0..self.items.len()).all(|i| item_done(i) || made.unknown_items.contains(&i))
            && (0..self.connectors.len())
                .all(|i| line_done(i) || made.unknown_connectors.contains(&i))
    }

    /// The answer's view of what was made.
    pub fn summary(&self, made: &ContentMade) -> ContentSummary {
        let mut summary = ContentSummary {
            created: made.items.iter().chain(&made.connectors).flatten().count(),
            ..ContentSummary::default()
        };
        for (item, id) in self.items.iter().zip(&made.items) {
            if let (Some(reference), Some(id)) = (&item.reference, id) {
                summary.refs.insert(reference.clone(), id.clone());
            }
        }
        let mut unknown_items = made.unknown_items.clone();
        unknown_items.sort_unstable();
        for i in unknown_items {
            summary.unknown.push(
                match self.items.get(i).and_then(|it| it.reference.clone()) {
                    Some(reference) => reference,
                    None => format!("items[{i}]"),
                },
            );
        }
        let mut unknown_lines = made.unknown_connectors.clone();
        unknown_lines.sort_unstable();
        summary.unknown.extend(
            unknown_lines
                .into_iter()
                .map(|i| format!("connectors[{i}]")),
        );
        summary
    }

    fn frame_of(&self, i: usize) -> Option<usize> {
        let reference = self.items[i].frame.as_deref()?;
        item_index(self.items, reference)
    }

    fn endpoints(&self, i: usize) -> (Option<usize>, Option<usize>) {
        let line = &self.connectors[i];
        (
            item_index(self.items, &line.from),
            item_index(self.items, &line.to),
        )
    }
}

/// Where the saga records its progress: the claimed key, and the rest of
/// the request's progress to record with it. None: nowhere (no key).
pub(crate) type Record<'a> = (&'a Claim<'a>, &'a BoardMade);

/// What one content call came to.
enum Call {
    /// Landed: the new ids, in the order of the step's items.
    Landed(Vec<String>),
    /// Sent, but its answer was lost: the board says what it did.
    Lost,
    Failed(MiroError),
}

/// What the board says a lost call did.
enum Found {
    /// Everything the step makes is there, once: these ids.
    Made(Vec<String>),
    /// None of it is there: safe to send again.
    Absent,
    /// Some of it, or more than one candidate: not knowable.
    Unknown,
}

/// The board as read back to reconcile.
#[derive(Default)]
struct BoardView {
    items: Option<Vec<BoardItem>>,
    connectors: Option<Vec<BoardConnector>>,
}

impl Service {
    /// Puts the app's content on a board that exists, reached through the
    /// connection of `team_id` (else the default). Under an idempotency key
    /// each landed call is recorded, so a repeat resumes or replays. A board
    /// the connection cannot see (gone, another team's) is
    /// `board_not_found`, and nothing is made.
    pub async fn add_items(
        &self,
        user: &AppUser,
        board_id: &str,
        idempotency_key: Option<&str>,
        request: ContentRequest,
        deadline: Deadline,
    ) -> Result<ItemsAdded, Error> {
        if !is_miro_id(board_id) {
            return Err(Error::InvalidParameter("board_id"));
        }
        request.validate()?;
        let content = Content::new(&request.items, &request.connectors);
        let Some(mut connection) = self
            .connection_for(user, request.team_id.as_deref())
            .await?
        else {
            return Err(self.authorization_required(user, None, None, None).await);
        };
        let answer = |made: &ContentMade, replayed| ItemsAdded {
            board: BoardId {
                id: board_id.to_string(),
            },
            items: content.summary(made),
            replayed,
        };
        let Some(key) = idempotency_key else {
            let mut made = ContentMade::default();
            Box::pin(self.make_content(
                user,
                &mut connection,
                board_id,
                &content,
                &mut made,
                false,
                true,
                deadline,
                None,
            ))
            .await?;
            return Ok(answer(&made, false));
        };
        let mut claim = self.claim_key(user, key, &(board_id, &request)).await?;
        let (mut made, resumed) = match std::mem::replace(&mut claim.earlier, Claimed::Fresh) {
            Claimed::Replay(earlier) => {
                return Ok(ItemsAdded {
                    board: BoardId {
                        id: earlier.board.id,
                    },
                    items: earlier.items.unwrap_or_default(),
                    replayed: true,
                })
            }
            Claimed::Resume(made) => (made, true),
            Claimed::Fresh => (
                BoardMade {
                    board: Board {
                        id: board_id.to_string(),
                        name: String::new(),
                        view_link: None,
                        team: Some(TeamRef {
                            id: connection.key.team_id.clone(),
                            name: None,
                        }),
                        created_at: None,
                    },
                    chunks_done: 0,
                    invitations: Invitations::default(),
                    content: ContentMade::default(),
                },
                false,
            ),
        };
        let mut progress = std::mem::take(&mut made.content);
        let outcome = Box::pin(self.make_content(
            user,
            &mut connection,
            board_id,
            &content,
            &mut progress,
            resumed,
            true,
            deadline,
            Some((&claim, &made)),
        ))
        .await;
        made.content = progress;
        if let Err(e) = outcome {
            if !resumed && !made.content.sent {
                self.store.release(user, key).await?;
            } else {
                claim
                    .settle(self, IdempotentOutcome::Paused { made })
                    .await?;
            }
            return Err(e);
        }
        let added = answer(&made.content, false);
        claim
            .settle(
                self,
                IdempotentOutcome::Created {
                    board: made.board,
                    invitations: None,
                    items: Some(added.items.clone()),
                },
            )
            .await?;
        Ok(added)
    }

    /// Makes what `made` does not hold yet of `content` on `board_id`,
    /// calling `save` after each landed call (a retry resumes from what was
    /// saved). `resumed`: an earlier attempt may have sent calls it never
    /// recorded, so the board is read before anything is sent. `existing`:
    /// a board the saga did not make, whose own items must never be taken
    /// for the saga's. A Miro `400` on an item is [`Error::InvalidItem`]
    /// naming its field in the request.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn make_content(
        &self,
        user: &AppUser,
        connection: &mut Connection,
        board_id: &str,
        content: &Content<'_>,
        made: &mut ContentMade,
        resumed: bool,
        existing: bool,
        deadline: Deadline,
        record: Option<Record<'_>>,
    ) -> Result<(), Error> {
        let save = |made: &ContentMade| {
            let at = record.map(|(claim, snapshot)| {
                (
                    claim,
                    BoardMade {
                        content: made.clone(),
                        ..snapshot.clone()
                    },
                )
            });
            async move {
                match at {
                    Some((claim, at)) => claim.save(self, Some(&at)).await,
                    None => Ok(()),
                }
            }
        };
        made.items.resize(content.items.len(), None);
        made.connectors.resize(content.connectors.len(), None);
        if existing && !made.surveyed {
            let view = self
                .read_board(connection, board_id, true, false)
                .await
                .map_err(|e| content_failure(user, e))?;
            made.lookalikes = match view.items {
                Some(items) => items
                    .iter()
                    .filter(|b| {
                        (0..content.items.len()).any(|i| looks_like(content, made, i, b, true))
                    })
                    .map(|b| b.id.clone())
                    .collect(),
                None => Vec::new(),
            };
            made.surveyed = true;
            save(made).await?;
        }
        let mut suspect = resumed;
        let mut refreshed = false;
        for phase in content_phases(content.items, content.connectors) {
            let mut rounds = 0;
            loop {
                give_up_what_cannot_be_made(content, made, &phase);
                let pending: Vec<&ContentStep> =
                    phase.iter().filter(|s| !is_settled(made, s)).collect();
                if pending.is_empty() {
                    break;
                }
                rounds += 1;
                if rounds > ROUNDS {
                    return Err(Error::MiroUnavailable {
                        retry_after_seconds: 2,
                    });
                }
                if suspect {
                    self.rate_gate.wait(user, deadline).await;
                    match self
                        .reconcile(connection, board_id, content, made, &pending)
                        .await
                    {
                        Ok(()) => {
                            suspect = false;
                            save(made).await?;
                        }
                        Err(MiroError::RateLimited {
                            retry_after_seconds,
                        }) if deadline.allows(self.rate_gate.close(user, retry_after_seconds)) => {}
                        Err(MiroError::Unavailable { .. }) if deadline.allows(backoff(rounds)) => {
                            tokio::time::sleep(backoff(rounds)).await;
                        }
                        Err(e) => return Err(content_failure(user, e)),
                    }
                    continue;
                }
                made.sent = true;
                let mut failure = None;
                // A few calls at a time, each group recorded as it lands.
                for group in pending.chunks(CALLS_AT_ONCE) {
                    let (current, sent): (&Connection, &ContentMade) = (connection, made);
                    let outcomes = join_all(group.iter().map(|step| {
                        self.content_call(user, current, board_id, content, sent, step, deadline)
                    }))
                    .await;
                    for (step, outcome) in group.iter().zip(outcomes) {
                        match outcome {
                            Call::Landed(ids) => adopt(made, step, ids),
                            Call::Lost => suspect = true,
                            Call::Failed(e) => failure = failure.or(Some((*step, e))),
                        }
                    }
                    save(made).await?;
                    if failure.is_some() {
                        break;
                    }
                }
                match failure {
                    None => {}
                    Some((_, MiroError::Unauthorized)) if !refreshed => {
                        refreshed = true;
                        tracing::warn!(user = %user, "Miro refused a token believed valid; forcing a refresh");
                        *connection = self
                            .usable_connection(&connection.key, Some(connection.version), None)
                            .await?
                            .ok_or(Error::AuthorizationRequired(None))?;
                    }
                    Some((
                        step,
                        MiroError::InvalidItem {
                            index,
                            field,
                            message,
                        },
                    )) => {
                        return Err(Error::InvalidItem {
                            field: request_field(step, index, &field),
                            message: format!("Miro refused it: {message}"),
                        });
                    }
                    Some((_, e)) => return Err(content_failure(user, e)),
                }
            }
        }
        Ok(())
    }

    /// One step's call, retried while nothing can have landed (a 429 the
    /// deadline lets us wait out, a refused connection).
    #[allow(clippy::too_many_arguments)]
    async fn content_call(
        &self,
        user: &AppUser,
        connection: &Connection,
        board_id: &str,
        content: &Content<'_>,
        made: &ContentMade,
        step: &ContentStep,
        deadline: Deadline,
    ) -> Call {
        let token = &connection.access_token;
        let credits = LEVEL_2_CREDITS
            * match step {
                ContentStep::Bulk(indices) => indices.len() as u64,
                _ => 1,
            };
        for attempt in 1..=ROUNDS {
            self.rate_gate.wait(user, deadline).await;
            if let Err(wait) = self.rate_gate.spend(user, credits, deadline).await {
                return Call::Failed(MiroError::RateLimited {
                    retry_after_seconds: wait.as_secs().max(1),
                });
            }
            let sent = match step {
                ContentStep::Frame(i) => self
                    .miro
                    .create_frame(token, board_id, &new_item(content, made, *i))
                    .await
                    .map(|id| vec![id]),
                ContentStep::Bulk(indices) => {
                    let items: Vec<NewItem<'_>> = indices
                        .iter()
                        .map(|i| new_item(content, made, *i))
                        .collect();
                    self.miro.create_items(token, board_id, &items).await
                }
                ContentStep::Connector(i) => {
                    let (from, to) = content.endpoints(*i);
                    let id = |end: Option<usize>| {
                        end.and_then(|e| made.items[e].clone()).unwrap_or_default()
                    };
                    self.miro
                        .create_connector(
                            token,
                            board_id,
                            &content.connectors[*i],
                            &id(from),
                            &id(to),
                        )
                        .await
                        .map(|id| vec![id])
                }
            };
            match sent {
                Ok(ids) => return Call::Landed(ids),
                Err(MiroError::RateLimited {
                    retry_after_seconds,
                }) => {
                    let wait = self.rate_gate.close(user, retry_after_seconds);
                    if !deadline.allows(wait) {
                        return Call::Failed(MiroError::RateLimited {
                            retry_after_seconds,
                        });
                    }
                }
                Err(MiroError::Unavailable {
                    may_have_taken_effect: true,
                    detail,
                }) => {
                    tracing::warn!(user = %user, board = %board_id, %detail, "content call answer lost; the board will tell");
                    return Call::Lost;
                }
                Err(MiroError::Unavailable {
                    may_have_taken_effect: false,
                    detail,
                }) if deadline.allows(backoff(attempt)) => {
                    tracing::info!(user = %user, %detail, "content call not sent; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => return Call::Failed(e),
            }
        }
        Call::Failed(MiroError::Unavailable {
            may_have_taken_effect: false,
            detail: "content call kept failing".into(),
        })
    }

    /// Settles `steps` from the board itself: what is there (once) is
    /// adopted, what is absent stays to be sent, the rest is unknown.
    async fn reconcile(
        &self,
        connection: &Connection,
        board_id: &str,
        content: &Content<'_>,
        made: &mut ContentMade,
        steps: &[&ContentStep],
    ) -> Result<(), MiroError> {
        let wants_items = steps
            .iter()
            .any(|s| !matches!(s, ContentStep::Connector(_)));
        let wants_lines = steps.iter().any(|s| matches!(s, ContentStep::Connector(_)));
        let view = self
            .read_board(connection, board_id, wants_items, wants_lines)
            .await?;
        let mine = connection.profile.miro_user_id.as_deref();
        for step in steps {
            let found = match step {
                ContentStep::Connector(i) => {
                    find_connector(content, made, *i, view.connectors.as_deref())
                }
                ContentStep::Frame(i) => {
                    find_items(content, made, &[*i], view.items.as_deref(), mine)
                }
                ContentStep::Bulk(indices) => {
                    find_items(content, made, indices, view.items.as_deref(), mine)
                }
            };
            match found {
                Found::Made(ids) => adopt(made, step, ids),
                Found::Absent => {}
                Found::Unknown => {
                    tracing::warn!(board = %board_id, "content call outcome not knowable; reported as unknown");
                    mark_unknown(made, step);
                }
            }
        }
        tracing::info!(board = %board_id, steps = steps.len(), "content reconciled against the board");
        Ok(())
    }

    async fn read_board(
        &self,
        connection: &Connection,
        board_id: &str,
        items: bool,
        connectors: bool,
    ) -> Result<BoardView, MiroError> {
        let token = &connection.access_token;
        let mut view = BoardView::default();
        if items {
            view.items = self.miro.board_items(token, board_id).await?;
        }
        if connectors {
            view.connectors = self.miro.board_connectors(token, board_id).await?;
        }
        Ok(view)
    }
}

/// The item as the saga sends it: its frame's Miro id, once known.
fn new_item<'a>(content: &'a Content<'_>, made: &'a ContentMade, i: usize) -> NewItem<'a> {
    NewItem {
        item: &content.items[i],
        placement: content.placements[i],
        parent: content
            .frame_of(i)
            .and_then(|f| made.items.get(f))
            .and_then(|id| id.as_deref()),
    }
}

fn is_settled(made: &ContentMade, step: &ContentStep) -> bool {
    let item = |i: &usize| made.items[*i].is_some() || made.unknown_items.contains(i);
    match step {
        ContentStep::Frame(i) => item(i),
        ContentStep::Bulk(indices) => indices.iter().all(item),
        ContentStep::Connector(i) => {
            made.connectors[*i].is_some() || made.unknown_connectors.contains(i)
        }
    }
}

fn adopt(made: &mut ContentMade, step: &ContentStep, ids: Vec<String>) {
    match step {
        ContentStep::Frame(i) | ContentStep::Connector(i) => {
            let slot = match step {
                ContentStep::Frame(_) => &mut made.items[*i],
                _ => &mut made.connectors[*i],
            };
            *slot = ids.into_iter().next();
        }
        ContentStep::Bulk(indices) => {
            for (i, id) in indices.iter().zip(ids) {
                made.items[*i] = Some(id);
            }
        }
    }
}

fn mark_unknown(made: &mut ContentMade, step: &ContentStep) {
    match step {
        ContentStep::Frame(i) => made.unknown_items.push(*i),
        ContentStep::Bulk(indices) => made.unknown_items.extend(indices),
        ContentStep::Connector(i) => made.unknown_connectors.push(*i),
    }
}

/// Children of an unknown frame and connectors touching an unknown item
/// cannot be made (their Miro ids are not known): unknown too.
fn give_up_what_cannot_be_made(
    content: &Content<'_>,
    made: &mut ContentMade,
    phase: &[ContentStep],
) {
    for step in phase {
        match step {
            ContentStep::Frame(_) => {}
            ContentStep::Bulk(indices) => {
                for &i in indices {
                    let orphan = content
                        .frame_of(i)
                        .is_some_and(|f| made.unknown_items.contains(&f));
                    if orphan && made.items[i].is_none() && !made.unknown_items.contains(&i) {
                        made.unknown_items.push(i);
                    }
                }
            }
            ContentStep::Connector(i) => {
                let (from, to) = content.endpoints(*i);
                let cut = [from, to]
                    .iter()
                    .any(|end| end.is_none_or(|e| made.items[e].is_none()));
                if cut && made.connectors[*i].is_none() && !made.unknown_connectors.contains(i) {
                    made.unknown_connectors.push(*i);
                }
            }
        }
    }
}

/// The request's name for a field Miro refused in `step`'s call.
fn request_field(step: &ContentStep, index: Option<usize>, field: &str) -> String {
    let at = match step {
        ContentStep::Frame(i) => format!("items[{i}]"),
        ContentStep::Connector(i) => format!("connectors[{i}]"),
        ContentStep::Bulk(indices) => match index.and_then(|j| indices.get(j)) {
            Some(i) => format!("items[{i}]"),
            None => "items".into(),
        },
    };
    if field.is_empty() {
        at
    } else {
        format!("{at}.{field}")
    }
}

/// Whether the board's `b` is what the saga sends for item `i`. With
/// `any_parent` (surveying an existing board, before frames exist), the
/// frame is not compared.
fn looks_like(
    content: &Content<'_>,
    made: &ContentMade,
    i: usize,
    b: &BoardItem,
    any_parent: bool,
) -> bool {
    let item = &content.items[i];
    let p = &content.placements[i];
    let text = sent_text(item).map(|t| plain_text(&t)).unwrap_or_default();
    let parent_matches = any_parent || {
        let frame = content.frame_of(i).and_then(|f| made.items[f].as_deref());
        b.parent.as_deref() == frame
    };
    b.kind == item.kind.as_str()
        && b.text == text
        && (b.x - p.x).abs() <= POSITION_TOLERANCE
        && (b.y - p.y).abs() <= POSITION_TOLERANCE
        && parent_matches
}

/// A step's items on the board: each must have exactly one candidate (not
/// already the saga's, not a lookalike from before, made by this user).
fn find_items(
    content: &Content<'_>,
    made: &ContentMade,
    indices: &[usize],
    board: Option<&[BoardItem]>,
    mine: Option<&str>,
) -> Found {
    let Some(board) = board else {
        return Found::Unknown;
    };
    let taken: HashSet<&str> = made
        .items
        .iter()
        .flatten()
        .map(String::as_str)
        .chain(made.lookalikes.iter().map(String::as_str))
        .collect();
    let mut ids = Vec::with_capacity(indices.len());
    let mut missing = 0;
    for &i in indices {
        let candidates: Vec<&BoardItem> = board
            .iter()
            .filter(|b| !taken.contains(b.id.as_str()))
            .filter(|b| mine.is_none() || b.created_by.as_deref() == mine)
            .filter(|b| looks_like(content, made, i, b, false))
            .collect();
        match candidates.as_slice() {
            [] => missing += 1,
            [one] => ids.push(one.id.clone()),
            _ => return Found::Unknown,
        }
    }
    // A bulk call is all or nothing at Miro: half of one is someone else's.
    match missing {
        0 => Found::Made(ids),
        m if m == indices.len() => Found::Absent,
        _ => Found::Unknown,
    }
}

fn find_connector(
    content: &Content<'_>,
    made: &ContentMade,
    i: usize,
    board: Option<&[BoardConnector]>,
) -> Found {
    let Some(board) = board else {
        return Found::Unknown;
    };
    let (from, to) = content.endpoints(i);
    let id = |end: Option<usize>| end.and_then(|e| made.items[e].as_deref());
    let caption = content.connectors[i]
        .caption
        .as_deref()
        .map(|c| plain_text(&escape_text(c)))
        .unwrap_or_default();
    let taken: HashSet<&str> = made
        .connectors
        .iter()
        .flatten()
        .map(String::as_str)
        .collect();
    let candidates: Vec<&BoardConnector> = board
        .iter()
        .filter(|c| !taken.contains(c.id.as_str()))
        .filter(|c| Some(c.start.as_str()) == id(from) && Some(c.end.as_str()) == id(to))
        .filter(|c| c.caption == caption)
        .collect();
    match candidates.as_slice() {
        [] => Found::Absent,
        [one] => Found::Made(vec![one.id.clone()]),
        _ => Found::Unknown,
    }
}

/// A content failure as the caller sees it: a board the token cannot reach
/// (gone, or in a team where the app is not installed) is `board_not_found`.
fn content_failure(user: &AppUser, e: MiroError) -> Error {
    match e {
        MiroError::NotInstalled | MiroError::BoardNotFound => Error::BoardNotFound,
        e => super::miro_failure(user, e),
    }
}
