//! In-memory adapter for local runs: one process, nothing persisted.
//!
//! It seals nothing (nothing leaves the process), but it can be told a key
//! ring's ids ([`MemoryStore::set_key_ids`]) and then records which key
//! would have sealed each connection, so that the store contract holds it
//! to the same key rotation as the DynamoDB adapter.

use super::{
    completion_key, connections_key, flows_key, idempotency_key, is_live, pending_key, team_key,
    AuthorizationStore, BreakerState, BreakerStore, ConnectionList, ConnectionStore, Due,
    IdempotencyRecord, IdempotencyStore, Retired, StoreError, Taken,
};
use crate::domain::{Completion, Connection, ConnectionKey, PendingAuthorization};
use crate::identity::AppUser;
use crate::token_protocol::{
    delete_at_allowed, forget_allowed, lease_allowed, release_allowed, tokens_write_allowed,
    ItemState,
};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use super::keys::{KeyCount, KeyStore, KeySummary, Resealed, Sealed, SealedCount};

#[derive(Debug, Clone)]
enum Item {
    Pending(PendingAuthorization),
    Completion(Completion),
    /// The connection (forgotten or not), and its state as the conditions of
    /// the token protocol see it (`crate::token_protocol`): every conditional
    /// write below is decided by the protocol's predicate over that state and
    /// changes it as the protocol's effect says, as DynamoDB's condition
    /// expressions do in the other adapter.
    Connection(Connection, ItemState<String>),
    /// Flows started since the user last had none alive, and when the last ends.
    Flows {
        count: u32,
        until: i64,
    },
    Idempotency(IdempotencyRecord),
    /// The team a user chose as default.
    DefaultTeam(String),
    /// A connection retired in its place, kept until `keep_until`.
    Retired {
        retired: Retired,
        keep_until: i64,
    },
    Breaker(BreakerState),
}

const BREAKER_KEY: &str = "BREAKER";

fn breaker_in(items: &HashMap<String, Item>) -> BreakerState {
    match items.get(BREAKER_KEY) {
        Some(Item::Breaker(state)) => state.clone(),
        _ => BreakerState::default(),
    }
}

fn connection_item_key(key: &ConnectionKey) -> String {
    format!("{}#{}", connections_key(&key.user), team_key(&key.team_id))
}

fn default_team_key(user: &AppUser) -> String {
    format!("{}#DEFAULT", connections_key(user))
}

#[derive(Debug, Default)]
pub struct MemoryStore {
    items: Mutex<HashMap<String, Item>>,
    /// Locked after `items` where both are needed.
    keys: Mutex<MemoryKeys>,
}

/// The key ring's ids (the sealing one first), the key each connection's
/// tokens would be sealed under (by its item key), and the key summary.
#[derive(Debug, Default)]
struct MemoryKeys {
    ring: Vec<String>,
    sealed_by: HashMap<String, (ConnectionKey, String)>,
    summary: KeySummary,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// As a deployment whose key ring changed: writes from now on are
    /// sealed under the first of `ids`, and only `ids` open.
    pub fn set_key_ids(&self, ids: &[&str]) {
        if let Ok(mut keys) = self.keys.lock() {
            keys.ring = ids.iter().map(|id| id.to_string()).collect();
        }
    }

    fn lock_keys(&self) -> Result<MutexGuard<'_, MemoryKeys>, StoreError> {
        self.keys
            .lock()
            .map_err(|_| StoreError::Unavailable("memory store poisoned".into()))
    }

    fn lock(&self) -> Result<MutexGuard<'_, HashMap<String, Item>>, StoreError> {
        self.items
            .lock()
            .map_err(|_| StoreError::Unavailable("memory store poisoned".into()))
    }

    fn insert_new(&self, key: String, item: Item) -> Result<(), StoreError> {
        let mut items = self.lock()?;
        if items.contains_key(&key) {
            return Err(StoreError::Conflict);
        }
        items.insert(key, item);
        Ok(())
    }

    /// Removes and returns the item at `key` if `pick` wants it.
    fn take<T>(
        &self,
        key: &str,
        pick: impl Fn(Item) -> Option<T>,
    ) -> Result<Option<T>, StoreError> {
        let mut items = self.lock()?;
        let wanted = items.get(key).cloned().and_then(&pick).is_some();
        Ok(if wanted {
            items.remove(key).and_then(pick)
        } else {
            None
        })
    }

    /// Runs `change` on the connection item, if any; `None` removes it.
    fn with_connection<T>(
        &self,
        key: &ConnectionKey,
        change: impl FnOnce(Option<(&Connection, &ItemState<String>)>) -> (T, Change),
    ) -> Result<T, StoreError> {
        let mut items = self.lock()?;
        let key = connection_item_key(key);
        let current = match items.get(&key) {
            Some(Item::Connection(c, state)) => Some((c, state)),
            _ => None,
        };
        let (result, change) = change(current);
        match change {
            Change::Keep => {}
            Change::Delete => {
                items.remove(&key);
                self.lock_keys()?.sealed_by.remove(&key);
            }
            Change::Sealed(c, state) => {
                let mut keys = self.lock_keys()?;
                match keys.ring.first().cloned() {
                    Some(current) => {
                        keys.sealed_by.insert(key.clone(), (c.key.clone(), current));
                    }
                    None => {
                        keys.sealed_by.remove(&key);
                    }
                }
                drop(keys);
                let mut c = *c;
                c.version = state.version;
                c.lease_until = state.lease_until;
                items.insert(key, Item::Connection(c, state));
            }
            Change::Put(mut c, state) => {
                // What a read shows of the item comes from its state.
                c.version = state.version;
                c.lease_until = state.lease_until;
                items.insert(key, Item::Connection(*c, state));
            }
        }
        Ok(result)
    }

    /// The connection item as it is.
    fn connection_item(
        &self,
        key: &ConnectionKey,
    ) -> Result<Option<(Connection, bool)>, StoreError> {
        self.with_connection(key, |item| {
            let found = item.map(|(c, state)| (c.clone(), state.forgotten));
            (found, Change::Keep)
        })
    }
}

/// What a conditional write does to the connection item.
enum Change {
    Keep,
    Delete,
    Put(Box<Connection>, ItemState<String>),
    /// A put whose tokens are new (a consent, a refresh): sealed under the
    /// ring's first key, as the DynamoDB adapter seals every such write.
    Sealed(Box<Connection>, ItemState<String>),
}

fn taken<T>(value: Option<T>, expires_at: impl Fn(&T) -> i64, now: i64) -> Taken<T> {
    match value {
        None => Taken::Missing,
        Some(v) if is_live(Some(expires_at(&v)), now) => Taken::Fresh(v),
        Some(v) => Taken::Expired(v),
    }
}

#[async_trait]
impl AuthorizationStore for MemoryStore {
    async fn admit_flow(
        &self,
        user: &AppUser,
        expires_at: i64,
        now: i64,
        max: u32,
    ) -> Result<Option<i64>, StoreError> {
        let mut items = self.lock()?;
        let (count, until) = match items.get(&flows_key(user)) {
            Some(Item::Flows { count, until }) if now < *until => (*count, *until),
            _ => (0, now),
        };
        if count >= max {
            return Ok(Some(until));
        }
        items.insert(
            flows_key(user),
            Item::Flows {
                count: count + 1,
                until: until.max(expires_at),
            },
        );
        Ok(None)
    }

    async fn put_pending(&self, pending: &PendingAuthorization) -> Result<(), StoreError> {
        self.insert_new(
            pending_key(&pending.state_hash),
            Item::Pending(pending.clone()),
        )
    }

    async fn take_pending(
        &self,
        state_hash: &str,
        now: i64,
    ) -> Result<Taken<PendingAuthorization>, StoreError> {
        let value = self.take(&pending_key(state_hash), |item| match item {
            Item::Pending(p) => Some(p),
            _ => None,
        })?;
        Ok(taken(value, |p| p.expires_at, now))
    }

    async fn put_completion(&self, completion: &Completion) -> Result<(), StoreError> {
        self.insert_new(
            completion_key(&completion.completion_hash),
            Item::Completion(completion.clone()),
        )
    }

    async fn take_completion(
        &self,
        completion_hash: &str,
        now: i64,
    ) -> Result<Taken<Completion>, StoreError> {
        let value = self.take(&completion_key(completion_hash), |item| match item {
            Item::Completion(c) => Some(c),
            _ => None,
        })?;
        Ok(taken(value, |c| c.expires_at, now))
    }
}

#[async_trait]
impl ConnectionStore for MemoryStore {
    async fn list_connections(
        &self,
        user: &AppUser,
        now: i64,
    ) -> Result<ConnectionList, StoreError> {
        let items = self.lock()?;
        let mut list = ConnectionList {
            default_team: match items.get(&default_team_key(user)) {
                Some(Item::DefaultTeam(team)) => Some(team.clone()),
                _ => None,
            },
            ..Default::default()
        };
        for item in items.values() {
            match item {
                Item::Connection(c, state)
                    if c.key.user == *user && is_live(c.refresh_expires_at, now) =>
                {
                    match state.forgotten {
                        true => list.forgotten.push(c.clone()),
                        false => list.live.push(c.clone()),
                    }
                }
                Item::Retired {
                    retired,
                    keep_until,
                } if retired.connection.key.user == *user && now < *keep_until => list
                    .retired_teams
                    .push(retired.connection.key.team_id.clone()),
                _ => {}
            }
        }
        Ok(list.oldest_first())
    }

    async fn get_connection(
        &self,
        key: &ConnectionKey,
        now: i64,
    ) -> Result<Option<Connection>, StoreError> {
        Ok(self
            .connection_item(key)?
            .filter(|(c, forgotten)| !forgotten && is_live(c.refresh_expires_at, now))
            .map(|(c, _)| c))
    }

    async fn put_connection(
        &self,
        connection: &Connection,
    ) -> Result<Option<Connection>, StoreError> {
        self.with_connection(&connection.key, |old| {
            (
                old.map(|(c, _)| c.clone()),
                Change::Sealed(
                    Box::new(connection.clone()),
                    ItemState::connected(connection.version),
                ),
            )
        })
    }

    async fn forget_connection(
        &self,
        key: &ConnectionKey,
        version: u64,
    ) -> Result<bool, StoreError> {
        self.with_connection(key, |item| match item {
            Some((c, state)) if forget_allowed(Some(state), version) => (
                true,
                Change::Put(Box::new(c.clone()), state.clone().forgotten()),
            ),
            _ => (false, Change::Keep),
        })
    }

    async fn forgotten_connection(
        &self,
        key: &ConnectionKey,
        now: i64,
    ) -> Result<Option<Connection>, StoreError> {
        Ok(self
            .connection_item(key)?
            .filter(|(c, forgotten)| *forgotten && is_live(c.refresh_expires_at, now))
            .map(|(c, _)| c))
    }

    async fn delete_connection(&self, key: &ConnectionKey) -> Result<(), StoreError> {
        self.with_connection(key, |_| ((), Change::Delete))
    }

    async fn try_lease(
        &self,
        key: &ConnectionKey,
        version: u64,
        holder: &str,
        until: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let holder = holder.to_string();
        self.with_connection(key, |item| match item {
            Some((c, state)) if lease_allowed(Some(state), version, &holder, now) => (
                true,
                Change::Put(Box::new(c.clone()), state.clone().leased(holder, until)),
            ),
            _ => (false, Change::Keep),
        })
    }

    async fn release_lease(
        &self,
        key: &ConnectionKey,
        holder: &str,
        retry_at: Option<i64>,
    ) -> Result<(), StoreError> {
        let holder = holder.to_string();
        self.with_connection(key, |item| match item {
            Some((c, state)) if release_allowed(Some(state), &holder) => {
                let mut c = c.clone();
                c.refresh_retry_at = retry_at;
                ((), Change::Put(Box::new(c), state.clone().released()))
            }
            _ => ((), Change::Keep),
        })
    }

    async fn replace_tokens(
        &self,
        connection: &Connection,
        expected_version: u64,
        holder: &str,
    ) -> Result<bool, StoreError> {
        let holder = holder.to_string();
        self.with_connection(&connection.key, |item| match item {
            Some((_, state))
                if tokens_write_allowed(
                    Some(state),
                    expected_version,
                    connection.version,
                    &holder,
                ) =>
            {
                let state = state.clone().renewed(connection.version, holder);
                (true, Change::Sealed(Box::new(connection.clone()), state))
            }
            _ => (false, Change::Keep),
        })
    }

    async fn delete_connection_at(
        &self,
        key: &ConnectionKey,
        version: u64,
    ) -> Result<bool, StoreError> {
        self.with_connection(key, |item| {
            if delete_at_allowed(item.map(|(_, state)| state), version) {
                (true, Change::Delete)
            } else {
                (false, Change::Keep)
            }
        })
    }

    async fn retire_connection_at(
        &self,
        key: &ConnectionKey,
        version: u64,
        reason: &str,
        now: i64,
        keep_until: i64,
    ) -> Result<bool, StoreError> {
        let mut items = self.lock()?;
        let item_key = connection_item_key(key);
        let Some(Item::Connection(c, state)) = items.get(&item_key) else {
            return Ok(false);
        };
        if state.forgotten || !delete_at_allowed(Some(state), version) {
            return Ok(false);
        }
        let mut connection = c.clone();
        connection.version = state.version + 1;
        connection.lease_until = None;
        connection.refresh_retry_at = None;
        let keep_until = connection
            .refresh_expires_at
            .map_or(keep_until, |t| t.min(keep_until));
        items.insert(
            item_key,
            Item::Retired {
                retired: Retired {
                    connection,
                    retired_at: now,
                    reason: reason.to_string(),
                },
                keep_until,
            },
        );
        Ok(true)
    }

    async fn retired_connection(
        &self,
        key: &ConnectionKey,
        now: i64,
    ) -> Result<Option<Retired>, StoreError> {
        Ok(match self.lock()?.get(&connection_item_key(key)) {
            Some(Item::Retired {
                retired,
                keep_until,
            }) if now < *keep_until => Some(retired.clone()),
            _ => None,
        })
    }

    async fn retired_connections(&self, now: i64) -> Result<Vec<Retired>, StoreError> {
        let mut all: Vec<Retired> = self
            .lock()?
            .values()
            .filter_map(|item| match item {
                Item::Retired {
                    retired,
                    keep_until,
                } if now < *keep_until => Some(retired.clone()),
                _ => None,
            })
            .collect();
        all.sort_by_key(|r| r.retired_at);
        Ok(all)
    }

    async fn erase_retired(&self, key: &ConnectionKey) -> Result<bool, StoreError> {
        let mut items = self.lock()?;
        let item_key = connection_item_key(key);
        if !matches!(items.get(&item_key), Some(Item::Retired { .. })) {
            return Ok(false);
        }
        items.remove(&item_key);
        Ok(true)
    }

    async fn reinstate_connection(
        &self,
        connection: &Connection,
        retired_version: u64,
    ) -> Result<bool, StoreError> {
        let mut items = self.lock()?;
        let item_key = connection_item_key(&connection.key);
        match items.get(&item_key) {
            Some(Item::Retired { retired, .. })
                if retired.connection.version == retired_version =>
            {
                items.insert(
                    item_key,
                    Item::Connection(connection.clone(), ItemState::connected(connection.version)),
                );
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn due_connections(&self, now: i64, limit: usize) -> Result<Vec<Due>, StoreError> {
        let items = self.lock()?;
        let mut due: Vec<Due> = items
            .values()
            .filter_map(|item| match item {
                Item::Connection(c, state) if c.sweep_at <= now => Some(Due {
                    key: c.key.clone(),
                    version: state.version,
                    sweep_at: c.sweep_at,
                    refresh_expires_at: c.refresh_expires_at,
                }),
                _ => None,
            })
            .collect();
        due.sort_by_key(|d| d.sweep_at);
        due.truncate(limit);
        Ok(due)
    }

    async fn reschedule_sweep(
        &self,
        key: &ConnectionKey,
        version: u64,
        sweep_at: i64,
    ) -> Result<bool, StoreError> {
        self.with_connection(key, |item| match item {
            Some((c, state)) if state.version == version => {
                let mut moved = c.clone();
                moved.sweep_at = sweep_at;
                (true, Change::Put(Box::new(moved), state.clone()))
            }
            _ => (false, Change::Keep),
        })
    }

    async fn set_default_team(
        &self,
        user: &AppUser,
        team_id: Option<&str>,
        only_if_unset: bool,
    ) -> Result<bool, StoreError> {
        let mut items = self.lock()?;
        let key = default_team_key(user);
        match team_id {
            None => {
                items.remove(&key);
            }
            Some(_) if only_if_unset && items.contains_key(&key) => return Ok(false),
            Some(team) => {
                items.insert(key, Item::DefaultTeam(team.to_string()));
            }
        }
        Ok(true)
    }
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn claim(
        &self,
        user: &AppUser,
        key: &str,
        record: &IdempotencyRecord,
        now: i64,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let mut items = self.lock()?;
        let id = idempotency_key(user, key);
        if let Some(Item::Idempotency(existing)) = items.get(&id) {
            if is_live(Some(existing.expires_at), now) {
                return Ok(Some(existing.clone()));
            }
        }
        items.insert(id, Item::Idempotency(record.clone()));
        Ok(None)
    }

    async fn settle(
        &self,
        user: &AppUser,
        key: &str,
        record: &IdempotencyRecord,
    ) -> Result<(), StoreError> {
        self.lock()?.insert(
            idempotency_key(user, key),
            Item::Idempotency(record.clone()),
        );
        Ok(())
    }

    async fn release(&self, user: &AppUser, key: &str) -> Result<(), StoreError> {
        self.lock()?.remove(&idempotency_key(user, key));
        Ok(())
    }
}

#[async_trait]
impl BreakerStore for MemoryStore {
    async fn breaker(&self) -> Result<BreakerState, StoreError> {
        Ok(breaker_in(&*self.lock()?))
    }

    async fn breaker_rejected(
        &self,
        connection: &str,
        now: i64,
    ) -> Result<BreakerState, StoreError> {
        let mut items = self.lock()?;
        let mut state = breaker_in(&items);
        state.rejections.insert(connection.to_string(), now);
        items.insert(BREAKER_KEY.into(), Item::Breaker(state.clone()));
        Ok(state)
    }

    async fn breaker_open(&self, now: i64, until: i64) -> Result<(), StoreError> {
        let mut items = self.lock()?;
        let mut state = breaker_in(&items);
        state.opened_at = Some(now);
        state.open_until = Some(until);
        items.insert(BREAKER_KEY.into(), Item::Breaker(state));
        Ok(())
    }

    async fn breaker_clear(&self) -> Result<(), StoreError> {
        self.lock()?.remove(BREAKER_KEY);
        Ok(())
    }
}

/// A connection's place in the sealing-key index's order (user, then team).
fn index_order(key: &ConnectionKey) -> (String, String) {
    (connections_key(&key.user), team_key(&key.team_id))
}

#[async_trait]
impl KeyStore for MemoryStore {
    fn key_ids(&self) -> Vec<String> {
        self.lock_keys().map(|k| k.ring.clone()).unwrap_or_default()
    }

    async fn sealed_under(
        &self,
        key_id: &str,
        after: Option<&ConnectionKey>,
        limit: usize,
    ) -> Result<Vec<Sealed>, StoreError> {
        let items = self.lock()?;
        let keys = self.lock_keys()?;
        let mut found: Vec<Sealed> = keys
            .sealed_by
            .iter()
            .filter(|(_, (_, id))| id == key_id)
            .filter_map(|(item_key, (key, _))| match items.get(item_key) {
                Some(Item::Connection(_, state)) => Some(Sealed {
                    key: key.clone(),
                    version: state.version,
                }),
                _ => None,
            })
            .filter(|s| after.is_none_or(|a| index_order(&s.key) > index_order(a)))
            .collect();
        found.sort_by_key(|s| index_order(&s.key));
        found.truncate(limit);
        Ok(found)
    }

    async fn count_sealed_under(
        &self,
        key_id: &str,
        limit: u64,
    ) -> Result<SealedCount, StoreError> {
        let all = self
            .lock_keys()?
            .sealed_by
            .values()
            .filter(|(_, id)| id == key_id)
            .count() as u64;
        Ok(SealedCount {
            sealed: all.min(limit),
            at_least: all > limit,
        })
    }

    async fn reseal_connection(
        &self,
        key: &ConnectionKey,
        version: u64,
    ) -> Result<Resealed, StoreError> {
        let items = self.lock()?;
        let mut keys = self.lock_keys()?;
        let item_key = connection_item_key(key);
        let Some(Item::Connection(_, state)) = items.get(&item_key) else {
            return Ok(Resealed::Gone);
        };
        // The same condition as the DynamoDB adapter's: at the version read.
        if state.version != version {
            return Ok(Resealed::MovedOn);
        }
        let Some(current) = keys.ring.first().cloned() else {
            return Ok(Resealed::Unopenable);
        };
        let sealed_under = keys.sealed_by.get(&item_key).map(|(_, id)| id.clone());
        match sealed_under {
            Some(id) if id == current => Ok(Resealed::Current),
            Some(id) if keys.ring.contains(&id) => {
                keys.sealed_by.insert(item_key, (key.clone(), current));
                Ok(Resealed::Done)
            }
            _ => Ok(Resealed::Unopenable),
        }
    }

    async fn key_summary(&self) -> Result<KeySummary, StoreError> {
        Ok(self.lock_keys()?.summary.clone())
    }

    async fn register_key(&self, key_id: &str, now: i64) -> Result<(), StoreError> {
        self.lock_keys()?
            .summary
            .keys
            .entry(key_id.to_string())
            .or_insert(KeyCount {
                count: None,
                at: now,
            });
        Ok(())
    }

    async fn record_key_counts(
        &self,
        counts: &BTreeMap<String, SealedCount>,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut keys = self.lock_keys()?;
        for (id, count) in counts {
            keys.summary.keys.insert(
                id.clone(),
                KeyCount {
                    count: Some(*count),
                    at: now,
                },
            );
        }
        Ok(())
    }
}
