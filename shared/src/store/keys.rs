//! The port key retirement needs (`crate::service::reseal`): which
//! connections each sealing key still seals, re-sealing one under the
//! newest key, and the summary of counts that a cold start reads.
//!
//! Only connections are re-sealed. Parked codes (completions) are sealed
//! too, but live `AUTHORIZATION_TTL_SECONDS` (10 minutes by default) and
//! expire long before an old key may go.

use super::StoreError;
use crate::domain::ConnectionKey;
use async_trait::async_trait;
use std::collections::BTreeMap;

/// What stands for the key of connections stored before the key id was
/// recorded beside their tokens (key ids are letters and digits, so it
/// names no key). They join it when the sweep next reschedules them.
pub const UNRECORDED: &str = "?";

/// A connection as the sealing-key index knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sealed {
    pub key: ConnectionKey,
    /// Its version when the index last saw it (possibly behind the item).
    pub version: u64,
}

/// What became of one re-seal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resealed {
    /// The same tokens now sealed under the newest key; version and lease
    /// as they were.
    Done,
    /// Not at the version asked for (refreshed, forgotten, replaced): left
    /// alone, it is found again under whatever key seals it now.
    MovedOn,
    /// Already under the newest key: nothing written.
    Current,
    /// No key of the ring opens it (its key left the ring, or it is
    /// corrupt): left as it is.
    Unopenable,
    /// No such connection.
    Gone,
}

/// Connections counted under one key id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SealedCount {
    pub sealed: u64,
    /// Counting stopped at its bound: there are at least `sealed`.
    pub at_least: bool,
}

/// One key id in the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyCount {
    /// When last counted; `None`: registered by a cold start that seals
    /// with it, not counted yet (it may seal any number).
    pub count: Option<SealedCount>,
    /// When it was counted, or else registered (epoch seconds).
    pub at: i64,
}

/// Every key id that ever sealed a connection here, as far as the store
/// was told: registered by each cold start before it seals anything, and
/// counted by each re-seal pass. An id stays once listed, so a pass keeps
/// counting a key the ring no longer has.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeySummary {
    pub keys: BTreeMap<String, KeyCount>,
}

#[async_trait]
pub trait KeyStore: Send + Sync {
    /// The key ids this store seals and opens with, the sealing one first
    /// (empty where nothing is sealed: auth-start).
    fn key_ids(&self) -> Vec<String>;

    /// Connections sealed under `key_id` (or [`UNRECORDED`]), after
    /// `after` in the index's order, at most `limit`: through a sparse
    /// index keyed by the sealing key's id (never a Scan), so the cost
    /// grows with the connections of that key only.
    async fn sealed_under(
        &self,
        key_id: &str,
        after: Option<&ConnectionKey>,
        limit: usize,
    ) -> Result<Vec<Sealed>, StoreError>;

    /// How many connections `key_id` seals, counting up to about `limit`.
    async fn count_sealed_under(&self, key_id: &str, limit: u64)
        -> Result<SealedCount, StoreError>;

    /// Seals the connection's tokens anew under the newest key, if it is
    /// still at `version` and the ring opens them. Neither its version nor
    /// its lease moves: a refresher that leased it at that version still
    /// writes its new tokens over it (their write replaces these), and a
    /// refresh that landed first makes this one [`Resealed::MovedOn`].
    async fn reseal_connection(
        &self,
        key: &ConnectionKey,
        version: u64,
    ) -> Result<Resealed, StoreError>;

    /// The summary as stored (empty if nothing was registered yet).
    async fn key_summary(&self) -> Result<KeySummary, StoreError>;
    /// Lists `key_id` as one that may seal connections, unless it is listed
    /// already (its count is kept).
    async fn register_key(&self, key_id: &str, now: i64) -> Result<(), StoreError>;
    /// Writes these counts; key ids not named keep theirs.
    async fn record_key_counts(
        &self,
        counts: &BTreeMap<String, SealedCount>,
        now: i64,
    ) -> Result<(), StoreError>;
}
