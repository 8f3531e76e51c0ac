//! In-memory adapter for local runs: one process, nothing persisted.

use super::{
    completion_key, connection_key, is_live, pending_key, AuthorizationStore, ConnectionStore,
    StoreError, Taken,
};
use crate::domain::{Completion, Connection, PendingAuthorization};
use crate::identity::AppUser;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Clone)]
enum Item {
    Pending(PendingAuthorization),
    Completion(Completion),
    Connection(Connection),
}

#[derive(Debug, Default)]
pub struct MemoryStore {
    items: Mutex<HashMap<String, Item>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many items are held, expired ones included (as a table would).
    pub fn len(&self) -> usize {
        self.lock().map(|items| items.len()).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Item>>, StoreError> {
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
        let mut items = self.lock()?;
        let key = pending_key(state_hash);
        let value = match items.get(&key) {
            Some(Item::Pending(_)) => match items.remove(&key) {
                Some(Item::Pending(p)) => Some(p),
                _ => None,
            },
            _ => None,
        };
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
        let mut items = self.lock()?;
        let key = completion_key(completion_hash);
        let value = match items.get(&key) {
            Some(Item::Completion(_)) => match items.remove(&key) {
                Some(Item::Completion(c)) => Some(c),
                _ => None,
            },
            _ => None,
        };
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
        let items = self.lock()?;
        Ok(match items.get(&connection_key(user)) {
            Some(Item::Connection(c)) if is_live(c.refresh_expires_at, now) => Some(c.clone()),
            _ => None,
        })
    }

    async fn put_connection(&self, connection: &Connection) -> Result<(), StoreError> {
        self.lock()?.insert(
            connection_key(&connection.user),
            Item::Connection(connection.clone()),
        );
        Ok(())
    }

    async fn delete_connection(&self, user: &AppUser) -> Result<(), StoreError> {
        self.lock()?.remove(&connection_key(user));
        Ok(())
    }
}
