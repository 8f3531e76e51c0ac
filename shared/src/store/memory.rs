//! In-memory adapter for local runs: one process, nothing persisted.

use super::{
    completion_key, connection_key, flows_key, idempotency_key, is_live, pending_key,
    AuthorizationStore, ConnectionStore, IdempotencyRecord, IdempotencyStore, StoreError, Taken,
};
use crate::domain::{Completion, Connection, PendingAuthorization};
use crate::identity::AppUser;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

#[derive(Debug, Clone)]
enum Item {
    Pending(PendingAuthorization),
    Completion(Completion),
    /// The connection and who holds its refresh lease, if anyone.
    Connection(Connection, Option<String>),
    /// Disconnected; its grant still to be revoked at Miro.
    Forgotten(Connection),
    /// Flows started since the user last had none alive, and when the last ends.
    Flows {
        count: u32,
        until: i64,
    },
    Idempotency(IdempotencyRecord),
}

#[derive(Debug, Default)]
pub struct MemoryStore {
    items: Mutex<HashMap<String, Item>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
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

    /// Runs `change` on the user's connection and lease holder, if any.
    fn with_connection<T>(
        &self,
        user: &AppUser,
        change: impl FnOnce(&mut Connection, &mut Option<String>) -> T,
    ) -> Result<Option<T>, StoreError> {
        let mut items = self.lock()?;
        Ok(match items.get_mut(&connection_key(user)) {
            Some(Item::Connection(c, holder)) => Some(change(c, holder)),
            _ => None,
        })
    }
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
    async fn get_connection(
        &self,
        user: &AppUser,
        now: i64,
    ) -> Result<Option<Connection>, StoreError> {
        Ok(self
            .with_connection(user, |c, _| c.clone())?
            .filter(|c| is_live(c.refresh_expires_at, now)))
    }

    async fn put_connection(
        &self,
        connection: &Connection,
    ) -> Result<Option<Connection>, StoreError> {
        let mut stored = connection.clone();
        stored.lease_until = None;
        let old = self.lock()?.insert(
            connection_key(&connection.user),
            Item::Connection(stored, None),
        );
        Ok(match old {
            Some(Item::Connection(c, _) | Item::Forgotten(c)) => Some(c),
            _ => None,
        })
    }

    async fn forget_connection(&self, user: &AppUser, version: u64) -> Result<bool, StoreError> {
        let mut items = self.lock()?;
        let key = connection_key(user);
        match items.get(&key) {
            Some(Item::Connection(c, _)) if c.version == version => {
                let mut forgotten = c.clone();
                forgotten.version += 1;
                forgotten.lease_until = None;
                items.insert(key, Item::Forgotten(forgotten));
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn forgotten_connection(
        &self,
        user: &AppUser,
        now: i64,
    ) -> Result<Option<Connection>, StoreError> {
        Ok(match self.lock()?.get(&connection_key(user)) {
            Some(Item::Forgotten(c)) if is_live(c.refresh_expires_at, now) => Some(c.clone()),
            _ => None,
        })
    }

    async fn delete_connection(&self, user: &AppUser) -> Result<(), StoreError> {
        self.lock()?.remove(&connection_key(user));
        Ok(())
    }

    async fn try_lease(
        &self,
        user: &AppUser,
        version: u64,
        holder: &str,
        until: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let taken = self.with_connection(user, |c, lease_holder| {
            let free = c.version == version
                && (c.lease_until.is_none_or(|t| now >= t)
                    || lease_holder.as_deref() == Some(holder));
            if free {
                c.lease_until = Some(until);
                *lease_holder = Some(holder.to_string());
            }
            free
        })?;
        Ok(taken.unwrap_or(false))
    }

    async fn release_lease(&self, user: &AppUser, holder: &str) -> Result<(), StoreError> {
        self.with_connection(user, |c, lease_holder| {
            if lease_holder.as_deref() == Some(holder) {
                c.lease_until = None;
                *lease_holder = None;
            }
        })?;
        Ok(())
    }

    async fn replace_tokens(
        &self,
        connection: &Connection,
        expected_version: u64,
        _holder: &str,
    ) -> Result<bool, StoreError> {
        let replaced = self.with_connection(&connection.user, |c, lease_holder| {
            if c.version != expected_version {
                return false;
            }
            *c = Connection {
                lease_until: None,
                ..connection.clone()
            };
            *lease_holder = None;
            true
        })?;
        Ok(replaced.unwrap_or(false))
    }

    async fn delete_connection_at(&self, user: &AppUser, version: u64) -> Result<bool, StoreError> {
        let deleted = self.take(&connection_key(user), |item| match item {
            Item::Connection(c, _) | Item::Forgotten(c) if c.version == version => Some(()),
            _ => None,
        })?;
        Ok(deleted.is_some())
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
