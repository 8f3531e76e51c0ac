//! Ports: what the use cases need from storage, as small traits. Adapters:
//! [`dynamo`] (production, one table) and [`memory`] (local runs), held to the
//! same contract suite in `tests/`.
//!
//! Rules every adapter keeps: secrets never stored in clear (the DynamoDB
//! adapter seals them; the memory one never leaves the process), single use
//! enforced atomically, and expiry checked on every read, because DynamoDB's
//! TTL deletes expired items up to days late.

pub mod dynamo;
pub mod keys;
pub mod memory;

use crate::domain::{
    Board, Completion, Connection, ConnectionKey, ContentSummary, Invitations, PendingAuthorization,
};
use crate::identity::AppUser;
use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Throttled, unreachable or failing: worth retrying later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// An item that cannot be read back (bad shape, does not unseal).
    #[error("stored item is unreadable: {0}")]
    Corrupt(String),
    /// A write whose condition failed (an id collision).
    #[error("conflicting write")]
    Conflict,
}

impl From<StoreError> for crate::error::Error {
    fn from(e: StoreError) -> Self {
        crate::error::Error::Storage(e.to_string())
    }
}

/// The result of consuming a single-use item.
#[derive(Debug, Clone, PartialEq)]
pub enum Taken<T> {
    /// It was there and had not expired; nobody else can take it now.
    Fresh(T),
    /// It was there but past its expiry; it is gone now too.
    Expired(T),
    /// Never there, or already taken.
    Missing,
}

#[async_trait]
pub trait AuthorizationStore: Send + Sync {
    /// Counts a new flow for `user` that lives until `expires_at`, unless
    /// `max` flows started since the user last had none alive. `None`:
    /// admitted. `Some(t)`: full until `t` (epoch seconds), when all have expired.
    async fn admit_flow(
        &self,
        user: &AppUser,
        expires_at: i64,
        now: i64,
        max: u32,
    ) -> Result<Option<i64>, StoreError>;
    async fn put_pending(&self, pending: &PendingAuthorization) -> Result<(), StoreError>;
    async fn take_pending(
        &self,
        state_hash: &str,
        now: i64,
    ) -> Result<Taken<PendingAuthorization>, StoreError>;
    async fn put_completion(&self, completion: &Completion) -> Result<(), StoreError>;
    async fn take_completion(
        &self,
        completion_hash: &str,
        now: i64,
    ) -> Result<Taken<Completion>, StoreError>;
}

impl ConnectionList {
    /// `live` in the order the API lists it (and the default falls back to):
    /// oldest first, the team id between equals.
    pub fn oldest_first(mut self) -> Self {
        self.live.sort_by(|a, b| {
            (a.profile.connected_at, &a.key.team_id).cmp(&(b.profile.connected_at, &b.key.team_id))
        });
        self
    }
}

/// A connection the sweep should look at, as the index knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    pub key: ConnectionKey,
    pub version: u64,
    pub sweep_at: i64,
    /// The refresh token's end (the item's TTL): past it, the connection lapsed.
    pub refresh_expires_at: Option<i64>,
}

/// Days back the sweep looks for due connections: a connection is due at
/// the latest when its refresh token (60 days) ends, and gone after.
pub const SWEEP_LOOKBACK_DAYS: i64 = 62;

/// A user's connections, as one read finds them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectionList {
    /// Alive and not forgotten, oldest first.
    pub live: Vec<Connection>,
    /// Forgotten, with grants still to be revoked at Miro.
    pub forgotten: Vec<Connection>,
    /// The team the user chose (or was given) as default, connected or not.
    pub default_team: Option<String>,
    /// Teams whose connection is retired (kept for a restore).
    pub retired_teams: Vec<String>,
}

#[async_trait]
pub trait ConnectionStore: Send + Sync {
    /// All of a user's connections and their default, in one read (one
    /// DynamoDB Query, never a Scan). Lapsed ones and ones whose tokens no
    /// longer open are left out.
    async fn list_connections(
        &self,
        user: &AppUser,
        now: i64,
    ) -> Result<ConnectionList, StoreError>;
    /// The connection, unless there is none, it has lapsed, it was
    /// forgotten, or its tokens no longer open (its key left the ring).
    async fn get_connection(
        &self,
        key: &ConnectionKey,
        now: i64,
    ) -> Result<Option<Connection>, StoreError>;
    /// Stores a new connection (a fresh consent), replacing any old one for
    /// the same team, and returns the one it replaced (forgotten or not) if
    /// its tokens open: its grant is to be revoked.
    async fn put_connection(
        &self,
        connection: &Connection,
    ) -> Result<Option<Connection>, StoreError>;
    /// Marks the connection at `version` forgotten: it reads as disconnected
    /// at once, its version moves on (no refresh in flight can write it
    /// back), and its tokens stay sealed until their revocation at Miro
    /// succeeds. False if the item moved on.
    async fn forget_connection(
        &self,
        key: &ConnectionKey,
        version: u64,
    ) -> Result<bool, StoreError>;
    /// A forgotten connection whose grant is still to be revoked.
    async fn forgotten_connection(
        &self,
        key: &ConnectionKey,
        now: i64,
    ) -> Result<Option<Connection>, StoreError>;
    /// Idempotent: deleting a missing connection succeeds.
    async fn delete_connection(&self, key: &ConnectionKey) -> Result<(), StoreError>;

    /// Takes the refresh lease on the connection at `version`, unless
    /// another holder's lease is still running at `now`. True if taken (or
    /// already `holder`'s: a lease whose answer was lost and sent again).
    async fn try_lease(
        &self,
        key: &ConnectionKey,
        version: u64,
        holder: &str,
        until: i64,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Gives the lease back, if `holder` still has it; with `retry_at`, after
    /// a transient failure: no refresh of this connection before then.
    async fn release_lease(
        &self,
        key: &ConnectionKey,
        holder: &str,
        retry_at: Option<i64>,
    ) -> Result<(), StoreError>;
    /// Writes refreshed tokens (`connection.version` is the new version) over
    /// `expected_version`, dropping the lease `holder` took. False if the
    /// item moved on. A write that already landed for this `holder` (its
    /// answer lost and the call sent again) counts as done, not as moved on.
    async fn replace_tokens(
        &self,
        connection: &Connection,
        expected_version: u64,
        holder: &str,
    ) -> Result<bool, StoreError>;
    /// Deletes the connection only if it is still at `version`: a dead grant
    /// must not take a newer, good one with it. True if deleted.
    async fn delete_connection_at(
        &self,
        key: &ConnectionKey,
        version: u64,
    ) -> Result<bool, StoreError>;

    /// Retires the connection if it is still at `version` (the condition of
    /// [`Self::delete_connection_at`]): it reads as not connected at once,
    /// its version moves on, and its sealed tokens stay until `keep_until`
    /// (or their own end, if sooner) with `reason` and `now`, for
    /// [`Self::reinstate_connection`]. A new consent replaces it. True if retired.
    async fn retire_connection_at(
        &self,
        key: &ConnectionKey,
        version: u64,
        reason: &str,
        now: i64,
        keep_until: i64,
    ) -> Result<bool, StoreError>;
    /// The retired connection of `key`, if it is still kept at `now`.
    async fn retired_connection(
        &self,
        key: &ConnectionKey,
        now: i64,
    ) -> Result<Option<Retired>, StoreError>;
    /// Every retired connection still kept at `now`: the operator's
    /// `restore` (never a request) reads them, a Scan in DynamoDB.
    async fn retired_connections(&self, now: i64) -> Result<Vec<Retired>, StoreError>;
    /// Erases the retired copy of `key`, if there is one (the user's own
    /// disconnect erases everything). True if one was erased.
    async fn erase_retired(&self, key: &ConnectionKey) -> Result<bool, StoreError>;
    /// Makes `connection` live again over the retired copy at
    /// `retired_version` (`connection.version` is the new version). False if
    /// that copy is gone or was replaced (a reconnect).
    async fn reinstate_connection(
        &self,
        connection: &Connection,
        retired_version: u64,
    ) -> Result<bool, StoreError>;

    /// Connections the keep-alive sweep should look at (`sweep_at` ≤ `now`),
    /// oldest first, at most `limit`: through a sparse index keyed by the
    /// day they fall due, so the cost grows with the due ones only (never a
    /// Scan). Lapsed and forgotten ones are included: the sweep settles them.
    async fn due_connections(&self, now: i64, limit: usize) -> Result<Vec<Due>, StoreError>;
    /// Moves the connection's next sweep to `sweep_at` if it is still at
    /// `version` (a refresh moves it by itself). True if written.
    async fn reschedule_sweep(
        &self,
        key: &ConnectionKey,
        version: u64,
        sweep_at: i64,
    ) -> Result<bool, StoreError>;

    /// Sets the user's default team (`None`: no choice; the oldest
    /// connection serves). With `only_if_unset`, only where none is set yet:
    /// the first connection becomes the default. True if written.
    async fn set_default_team(
        &self,
        user: &AppUser,
        team_id: Option<&str>,
        only_if_unset: bool,
    ) -> Result<bool, StoreError>;
}

/// A connection removed because Miro refused it, kept (sealed) for a while.
#[derive(Debug, Clone, PartialEq)]
pub struct Retired {
    /// As it was retired; its `version` is the retired copy's.
    pub connection: Connection,
    pub retired_at: i64,
    pub reason: String,
}

/// The refresh breaker's shared state (one item): the distinct connections
/// whose refresh Miro rejected since the last success, and whether it is open.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BreakerState {
    /// Connection (`user\nteam`) → when its refresh was last rejected.
    pub rejections: std::collections::BTreeMap<String, i64>,
    /// When it last opened; kept until a refresh succeeds or an operator
    /// resets it, so that one more rejection opens it again at once.
    pub opened_at: Option<i64>,
    /// No refresh is sent before this; after it, the next one is a probe.
    pub open_until: Option<i64>,
}

impl BreakerState {
    pub fn is_open(&self, now: i64) -> bool {
        self.open_until.is_some_and(|t| now < t)
    }

    /// Rejections at or after `since`.
    pub fn rejected_since(&self, since: i64) -> impl Iterator<Item = &str> {
        self.rejections
            .iter()
            .filter(move |(_, at)| **at >= since)
            .map(|(c, _)| c.as_str())
    }

    pub fn is_clear(&self) -> bool {
        *self == Self::default()
    }
}

/// The name of a connection in [`BreakerState::rejections`].
pub fn breaker_entry(key: &ConnectionKey) -> String {
    format!("{}\n{}", key.user, key.team_id)
}

/// The refresh breaker's item, seen by every function (`service::tokens`).
#[async_trait]
pub trait BreakerStore: Send + Sync {
    /// The state as it is (eventually consistent: it steers, it does not guard).
    async fn breaker(&self) -> Result<BreakerState, StoreError>;
    /// Records that the refresh of `connection` was rejected at `now`, and
    /// returns the state after.
    async fn breaker_rejected(
        &self,
        connection: &str,
        now: i64,
    ) -> Result<BreakerState, StoreError>;
    /// Opens it at `now` until `until`.
    async fn breaker_open(&self, now: i64, until: i64) -> Result<(), StoreError>;
    /// A refresh succeeded, or the operator reset it: closed, nothing counted.
    async fn breaker_clear(&self) -> Result<(), StoreError>;
}

/// What became of a board request made under an idempotency key: a small
/// saga (the board, then its invitation chunks), recorded step by step so
/// that a retry resumes at the first step not done.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum IdempotentOutcome {
    /// Someone is working on it now: the claim id of that request, so that a
    /// claim whose answer was lost (and that the SDK sent again) knows
    /// itself; and how far it got, once the board exists.
    InProgress {
        #[serde(default)]
        claim: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        made: Option<BoardMade>,
    },
    /// The board exists but a later step failed and nobody works on it: the
    /// next request under the key resumes it.
    Paused { made: BoardMade },
    Created {
        board: Board,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        invitations: Option<Invitations>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        items: Option<ContentSummary>,
    },
    /// Miro may or may not have created it (a 5xx or a lost answer to the POST).
    Unknown,
}

/// The saga's progress once the board exists.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BoardMade {
    pub board: Board,
    /// Invitation chunks done, in the order of
    /// [`crate::domain::BoardRequest::invitation_chunks`].
    pub chunks_done: usize,
    pub invitations: Invitations,
    /// How far the board's content got (nothing, for a board without any).
    #[serde(default, skip_serializing_if = "ContentMade::is_empty")]
    pub content: ContentMade,
}

/// The content saga's progress (`crate::service::content`): Miro's id of
/// each item and connector whose call landed, by its index in the request.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ContentMade {
    #[serde(default)]
    pub items: Vec<Option<String>>,
    #[serde(default)]
    pub connectors: Vec<Option<String>>,
    /// Indices of items (and connectors) whose call may have landed but
    /// could not be confirmed on the board: never sent again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown_items: Vec<usize>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown_connectors: Vec<usize>,
    /// Items that were on an existing board before the saga began and look
    /// like some it makes: never taken for its own when reconciling.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lookalikes: Vec<String>,
    /// The existing board was read for lookalikes (a new board has none).
    #[serde(default)]
    pub surveyed: bool,
    /// This attempt sent a content call (kept in memory only): a key may be
    /// given back on failure only if nothing was sent.
    #[serde(skip)]
    pub sent: bool,
}

impl ContentMade {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IdempotencyRecord {
    /// SHA-256 of the request it was first used for.
    pub request_hash: String,
    pub outcome: IdempotentOutcome,
    pub expires_at: i64,
}

#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `(user, key)` with an in-progress record. `None`: claimed, go
    /// ahead. `Some(record)`: the key is taken (and alive at `now`).
    async fn claim(
        &self,
        user: &AppUser,
        key: &str,
        record: &IdempotencyRecord,
        now: i64,
    ) -> Result<Option<IdempotencyRecord>, StoreError>;
    /// Records the outcome of a claimed key.
    async fn settle(
        &self,
        user: &AppUser,
        key: &str,
        record: &IdempotencyRecord,
    ) -> Result<(), StoreError>;
    /// Gives a claimed key back: nothing was created, a retry may go ahead.
    async fn release(&self, user: &AppUser, key: &str) -> Result<(), StoreError>;
}

pub trait Store:
    AuthorizationStore + ConnectionStore + IdempotencyStore + BreakerStore + keys::KeyStore
{
}
impl<T> Store for T where
    T: AuthorizationStore + ConnectionStore + IdempotencyStore + BreakerStore + keys::KeyStore
{
}

pub fn pending_key(state_hash: &str) -> String {
    format!("AUTHZ#{state_hash}")
}

pub fn completion_key(completion_hash: &str) -> String {
    format!("DONE#{completion_hash}")
}

/// The count of a user's live flows, for [`AuthorizationStore::admit_flow`].
pub fn flows_key(user: &AppUser) -> String {
    format!("FLOWS#{user}")
}

/// The partition of a user's connections (and of their default choice).
pub fn connections_key(user: &AppUser) -> String {
    format!("CONN#{user}")
}

/// A connection within [`connections_key`]'s partition.
pub fn team_key(team_id: &str) -> String {
    format!("TEAM#{team_id}")
}

/// One item per (user, key); hashed so that neither can collide with the other's separator.
pub fn idempotency_key(user: &AppUser, key: &str) -> String {
    format!(
        "IDEM#{}",
        crate::secret::sha256_hex(&format!("{user}\n{key}"))
    )
}

/// Expiry as every read applies it: an item is alive strictly before `expires_at`.
pub fn is_live(expires_at: Option<i64>, now: i64) -> bool {
    expires_at.is_none_or(|t| now < t)
}
