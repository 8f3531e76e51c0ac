//! DynamoDB adapter: one table, partition key `pk`, sort key `sk`, TTL
//! attribute `expires_at`. A user's connections share one partition, so that
//! listing them is one Query.
//! The calls and their conditions are here; what an item holds is [`codec`]'s.
//!
//! The connection item's condition expressions implement the predicates of
//! [`crate::token_protocol`] (each is named where it is written); the memory
//! adapter evaluates those predicates themselves, and the store contract
//! tests run the same cases on both, which ties each expression to its
//! predicate.

mod breaker;
mod codec;
mod keys;
mod retired;

use codec::*;
pub use codec::{PK, SEALED_BY, SEALED_INDEX, SK, SWEEP_AT, SWEEP_DAY, SWEEP_INDEX, TTL_ATTRIBUTE};

use super::{
    completion_key, connections_key, flows_key, idempotency_key, pending_key, AuthorizationStore,
    ConnectionList, ConnectionStore, Due, IdempotencyRecord, IdempotencyStore, Retired, StoreError,
    Taken, SWEEP_LOOKBACK_DAYS,
};
use crate::domain::{
    AuthorizationRequest, Completion, Connection, ConnectionKey, PendingAuthorization,
};
use crate::identity::AppUser;
use crate::seal::Sealer;
use async_trait::async_trait;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ReturnValue, ReturnValuesOnConditionCheckFailure,
    ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;
use std::future::Future;
use std::sync::Arc;

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    codec: Codec,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>, sealer: Arc<Sealer>) -> Self {
        Self::with_sealer(client, table, Some(sealer))
    }

    pub fn with_sealer(
        client: Client,
        table: impl Into<String>,
        sealer: Option<Arc<Sealer>>,
    ) -> Self {
        Self {
            client,
            table: table.into(),
            codec: Codec { sealer },
        }
    }

    /// Creates the table as the template does (on-demand, TTL on `expires_at`),
    /// for local runs and tests. An existing table is left as it is.
    pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
        let created = client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .set_attribute_definitions(Some(
                [
                    (PK, ScalarAttributeType::S),
                    (SK, ScalarAttributeType::S),
                    (SWEEP_DAY, ScalarAttributeType::S),
                    (SWEEP_AT, ScalarAttributeType::N),
                    (SEALED_BY, ScalarAttributeType::S),
                ]
                .into_iter()
                .map(|(name, kind)| {
                    AttributeDefinition::builder()
                        .attribute_name(name)
                        .attribute_type(kind)
                        .build()
                })
                .collect::<Result<_, _>>()
                .map_err(|e| StoreError::Unavailable(e.to_string()))?,
            ))
            .set_key_schema(Some(
                [(PK, KeyType::Hash), (SK, KeyType::Range)]
                    .into_iter()
                    .map(|(name, kind)| {
                        KeySchemaElement::builder()
                            .attribute_name(name)
                            .key_type(kind)
                            .build()
                    })
                    .collect::<Result<_, _>>()
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?,
            ))
            .global_secondary_indexes(sweep_index()?)
            .global_secondary_indexes(keys::sealed_index()?)
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(e) if e.code() == Some("ResourceInUseException") => return Ok(()),
            Err(e) => return Err(unavailable(e)),
        }
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(TTL_ATTRIBUTE)
                    .enabled(true)
                    .build()
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?,
            )
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn connection_item_of(&self, key: &ConnectionKey) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(connection_key_of(key)))
            .consistent_read(true)
            .send()
            .timed("GetItem")
            .await
            .map_err(unavailable)?;
        Ok(out.item)
    }

    async fn put_new(&self, item: Item) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .send()
            .timed("PutItem")
            .await;
        match written(result)? {
            Written::Done(_) => Ok(()),
            Written::ConditionFailed(_) => Err(StoreError::Conflict),
        }
    }

    /// Deletes the item if it is there and returns what it held: the one
    /// caller whose condition holds is the only one that ever sees it.
    async fn take(&self, key: &str) -> Result<Option<Item>, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_of(key, SINGLE)))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::None)
            .send()
            .timed("DeleteItem")
            .await;
        match written(result)? {
            Written::Done(out) => Ok(out.attributes),
            Written::ConditionFailed(_) => Ok(None),
        }
    }
}

/// Times one DynamoDB call (retries included) as
/// `metrics::Metric::DynamoDbLatency` under its operation.
trait Timed: Future + Sized + Send {
    fn timed(self, operation: &'static str) -> impl Future<Output = Self::Output> + Send {
        async move {
            use crate::metrics::{since, Dimension, Metric};
            let started = std::time::Instant::now();
            let out = self.await;
            since(
                Metric::DynamoDbLatency,
                started,
                &[(Dimension::Operation, operation)],
            );
            out
        }
    }
}

impl<F: Future + Send> Timed for F {}

/// The sparse index the keep-alive sweep reads, as the template declares it.
fn sweep_index() -> Result<GlobalSecondaryIndex, StoreError> {
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
    };
    GlobalSecondaryIndex::builder()
        .index_name(SWEEP_INDEX)
        .key_schema(
            key(SWEEP_DAY, KeyType::Hash).map_err(|e| StoreError::Unavailable(e.to_string()))?,
        )
        .key_schema(
            key(SWEEP_AT, KeyType::Range).map_err(|e| StoreError::Unavailable(e.to_string()))?,
        )
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::Include)
                .non_key_attributes(VERSION)
                .non_key_attributes(TTL_ATTRIBUTE)
                .build(),
        )
        .build()
        .map_err(|e| StoreError::Unavailable(e.to_string()))
}

/// Pages of one user's partition read at most (a page is up to 1 MB).
const MAX_LIST_PAGES: usize = 10;

fn unavailable<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Unavailable(DisplayErrorContext(&e).to_string())
}

/// A conditional write's outcome: done, or refused by its condition (with
/// the item as it was, where the call asked for it).
enum Written<T> {
    Done(T),
    ConditionFailed(Option<Item>),
}

/// The one place a failed condition is told apart from a failed call.
trait ConditionFailure: Sized {
    fn condition_failed(self) -> Result<Option<Item>, Self>;
}

macro_rules! condition_failure {
    ($($error:ty),*) => {$(
        impl ConditionFailure for $error {
            fn condition_failed(self) -> Result<Option<Item>, Self> {
                match self {
                    Self::ConditionalCheckFailedException(failed) => Ok(failed.item),
                    other => Err(other),
                }
            }
        }
    )*};
}
condition_failure!(PutItemError, UpdateItemError, DeleteItemError);

fn written<T, E, R>(result: Result<T, SdkError<E, R>>) -> Result<Written<T>, StoreError>
where
    E: ConditionFailure + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(out) => Ok(Written::Done(out)),
        Err(SdkError::ServiceError(e)) => match e.into_err().condition_failed() {
            Ok(old) => Ok(Written::ConditionFailed(old)),
            Err(other) => Err(StoreError::Unavailable(
                DisplayErrorContext(&other).to_string(),
            )),
        },
        Err(e) => Err(unavailable(e)),
    }
}

/// True if the write happened, false if its condition did not hold.
fn conditional<T, E, R>(result: Result<T, SdkError<E, R>>) -> Result<bool, StoreError>
where
    E: ConditionFailure + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    Ok(matches!(written(result)?, Written::Done(_)))
}

#[async_trait]
impl AuthorizationStore for DynamoStore {
    async fn admit_flow(
        &self,
        user: &AppUser,
        expires_at: i64,
        now: i64,
        max: u32,
    ) -> Result<Option<i64>, StoreError> {
        let key = flows_key(user);
        // Usually the user has no flow alive: one conditional put starts the count.
        let mut item = base_item(
            &key,
            "flows",
            AttributeValue::S("{}".into()),
            Some(expires_at),
        );
        item.insert(FLOW_COUNT.into(), n(1));
        let started = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk) OR #exp <= :now")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#exp", TTL_ATTRIBUTE)
            .expression_attribute_values(":now", n(now))
            .send()
            .timed("PutItem")
            .await;
        if conditional(started)? {
            return Ok(None);
        }
        // Some are alive: count this one too, while there is room.
        let counted = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&key, SINGLE)))
            .update_expression("SET #count = #count + :one, #exp = :exp")
            .condition_expression("#exp > :now AND #count < :max")
            .expression_attribute_names("#count", FLOW_COUNT)
            .expression_attribute_names("#exp", TTL_ATTRIBUTE)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":exp", n(expires_at))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":max", n(i64::from(max)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .timed("UpdateItem")
            .await;
        match written(counted)? {
            Written::Done(_) => Ok(None),
            Written::ConditionFailed(old) => {
                let until = old.as_ref().map(expires_at_of).transpose()?.flatten();
                // Expired between the two calls: the next attempt starts afresh.
                Ok(Some(until.unwrap_or(now + 1)))
            }
        }
    }

    async fn put_pending(&self, pending: &PendingAuthorization) -> Result<(), StoreError> {
        let key = pending_key(&pending.state_hash);
        let item = base_item(
            &key,
            "pending",
            to_json(&pending.request)?,
            Some(pending.expires_at),
        );
        self.put_new(item).await
    }

    async fn take_pending(
        &self,
        state_hash: &str,
        now: i64,
    ) -> Result<Taken<PendingAuthorization>, StoreError> {
        let Some(item) = self.take(&pending_key(state_hash)).await? else {
            return Ok(Taken::Missing);
        };
        let expires_at = expires_at(&item)?;
        let pending = PendingAuthorization {
            state_hash: state_hash.to_string(),
            request: json::<AuthorizationRequest>(&item)?,
            expires_at,
        };
        Ok(taken(pending, expires_at, now))
    }

    async fn put_completion(&self, completion: &Completion) -> Result<(), StoreError> {
        let key = completion_key(&completion.completion_hash);
        let mut item = base_item(
            &key,
            "completion",
            to_json(&completion.request)?,
            Some(completion.expires_at),
        );
        item.insert(CODE.into(), self.codec.seal(&key, &completion.code)?);
        item.insert(
            CODE_VERIFIER.into(),
            self.codec.seal(&key, &completion.code_verifier)?,
        );
        self.put_new(item).await
    }

    async fn take_completion(
        &self,
        completion_hash: &str,
        now: i64,
    ) -> Result<Taken<Completion>, StoreError> {
        let key = completion_key(completion_hash);
        let Some(item) = self.take(&key).await? else {
            return Ok(Taken::Missing);
        };
        let expires_at = expires_at(&item)?;
        let completion = Completion {
            completion_hash: completion_hash.to_string(),
            code: self.codec.open(&item, &key, CODE)?,
            code_verifier: self.codec.open(&item, &key, CODE_VERIFIER)?,
            request: json::<AuthorizationRequest>(&item)?,
            expires_at,
        };
        Ok(taken(completion, expires_at, now))
    }
}

#[async_trait]
impl ConnectionStore for DynamoStore {
    async fn list_connections(
        &self,
        user: &AppUser,
        now: i64,
    ) -> Result<ConnectionList, StoreError> {
        let mut list = ConnectionList::default();
        let mut start: Option<Item> = None;
        // A user's partition holds a handful of teams; the bound only keeps
        // a corrupt table from looping us.
        for _ in 0..MAX_LIST_PAGES {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":pk", AttributeValue::S(connections_key(user)))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .timed("Query")
                .await
                .map_err(unavailable)?;
            for item in out.items() {
                if let Some(team) = team_of(item) {
                    let key = ConnectionKey::new(user, team);
                    if item.contains_key(RETIRED) {
                        list.retired_teams.push(team.to_string());
                        continue;
                    }
                    if let Some(c) = self.codec.live_connection(&key, item, now)? {
                        match item.contains_key(FORGOTTEN) {
                            true => list.forgotten.push(c),
                            false => list.live.push(c),
                        }
                    }
                } else if item.get(SK) == Some(&AttributeValue::S(DEFAULT_TEAM.into())) {
                    list.default_team = Some(json::<DefaultTeam>(item)?.team_id);
                }
            }
            match out.last_evaluated_key {
                Some(last) if !last.is_empty() => start = Some(last),
                _ => break,
            }
        }
        Ok(list.oldest_first())
    }

    async fn get_connection(
        &self,
        key: &ConnectionKey,
        now: i64,
    ) -> Result<Option<Connection>, StoreError> {
        let Some(item) = self.connection_item_of(key).await? else {
            return Ok(None);
        };
        if item.contains_key(FORGOTTEN) || item.contains_key(RETIRED) {
            return Ok(None);
        }
        self.codec.live_connection(key, &item, now)
    }

    async fn put_connection(
        &self,
        connection: &Connection,
    ) -> Result<Option<Connection>, StoreError> {
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.codec.connection_item(connection)?))
            // No condition: a consent replaces whatever was there
            // (token_protocol::ItemState::connected).
            .return_values(ReturnValue::AllOld)
            .send()
            .timed("PutItem")
            .await
            .map_err(unavailable)?;
        // A retried put that finds its own first attempt (the answer was
        // lost) replaced nothing: its grant must not be revoked.
        Ok(out
            .attributes
            .and_then(|old| self.codec.connection_from(&connection.key, &old).ok())
            .filter(|old| old.version != connection.version))
    }

    async fn forget_connection(
        &self,
        key: &ConnectionKey,
        version: u64,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(connection_key_of(key)))
            // token_protocol::forget_allowed, and its effect ItemState::forgotten.
            .update_expression("SET #f = :yes, #v = #v + :one REMOVE #lu, #lh")
            .condition_expression("#v = :v AND attribute_not_exists(#f)")
            .expression_attribute_names("#f", FORGOTTEN)
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_names("#lu", LEASE_UNTIL)
            .expression_attribute_names("#lh", LEASE_HOLDER)
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":v", n(version as i64))
            .send()
            .timed("UpdateItem")
            .await;
        conditional(result)
    }

    async fn forgotten_connection(
        &self,
        key: &ConnectionKey,
        now: i64,
    ) -> Result<Option<Connection>, StoreError> {
        match self.connection_item_of(key).await? {
            Some(item) if item.contains_key(FORGOTTEN) => {
                self.codec.live_connection(key, &item, now)
            }
            _ => Ok(None),
        }
    }

    async fn delete_connection(&self, key: &ConnectionKey) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(connection_key_of(key)))
            .send()
            .timed("DeleteItem")
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn try_lease(
        &self,
        key: &ConnectionKey,
        version: u64,
        holder: &str,
        until: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(connection_key_of(key)))
            .update_expression("SET #lu = :until, #lh = :holder")
            // token_protocol::lease_allowed, clause by clause (LeaseClauses):
            // at_version AND (no_lease OR lease_ran_out OR held_by_caller);
            // its effect is ItemState::leased.
            .condition_expression(
                "#v = :v AND (attribute_not_exists(#lu) OR #lu <= :now OR #lh = :holder)",
            )
            .expression_attribute_names("#lu", LEASE_UNTIL)
            .expression_attribute_names("#lh", LEASE_HOLDER)
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_values(":until", n(until))
            .expression_attribute_values(":holder", AttributeValue::S(holder.to_string()))
            .expression_attribute_values(":v", n(version as i64))
            .expression_attribute_values(":now", n(now))
            .send()
            .timed("UpdateItem")
            .await;
        conditional(result)
    }

    async fn release_lease(
        &self,
        key: &ConnectionKey,
        holder: &str,
        retry_at: Option<i64>,
    ) -> Result<(), StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(connection_key_of(key)))
            // token_protocol::release_allowed, and its effect ItemState::released.
            .condition_expression("#lh = :holder")
            .expression_attribute_names("#lu", LEASE_UNTIL)
            .expression_attribute_names("#lh", LEASE_HOLDER)
            .expression_attribute_values(":holder", AttributeValue::S(holder.to_string()));
        let update = match retry_at {
            None => update.update_expression("REMOVE #lu, #lh"),
            Some(t) => update
                .update_expression("SET #rr = :rr REMOVE #lu, #lh")
                .expression_attribute_names("#rr", REFRESH_RETRY_AT)
                .expression_attribute_values(":rr", n(t)),
        };
        conditional(update.send().timed("UpdateItem").await).map(|_| ())
    }

    async fn replace_tokens(
        &self,
        connection: &Connection,
        expected_version: u64,
        holder: &str,
    ) -> Result<bool, StoreError> {
        let mut item = self.codec.connection_item(connection)?;
        item.insert(WRITTEN_BY.into(), AttributeValue::S(holder.to_string()));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            // token_protocol::tokens_write_allowed (the second half: this very
            // write already landed), and its effect ItemState::renewed: the
            // whole item anew, so no lease and no `forgotten`.
            .condition_expression("#v = :v OR (#v = :new AND #wb = :holder)")
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_names("#wb", WRITTEN_BY)
            .expression_attribute_values(":v", n(expected_version as i64))
            .expression_attribute_values(":new", n(connection.version as i64))
            .expression_attribute_values(":holder", AttributeValue::S(holder.to_string()))
            .send()
            .timed("PutItem")
            .await;
        conditional(result)
    }

    async fn delete_connection_at(
        &self,
        key: &ConnectionKey,
        version: u64,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(connection_key_of(key)))
            // token_protocol::delete_at_allowed.
            .condition_expression("#v = :v")
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_values(":v", n(version as i64))
            .send()
            .timed("DeleteItem")
            .await;
        conditional(result)
    }

    async fn retire_connection_at(
        &self,
        key: &ConnectionKey,
        version: u64,
        reason: &str,
        now: i64,
        keep_until: i64,
    ) -> Result<bool, StoreError> {
        self.retire(key, version, reason, now, keep_until).await
    }

    async fn retired_connection(
        &self,
        key: &ConnectionKey,
        now: i64,
    ) -> Result<Option<Retired>, StoreError> {
        self.retired_one(key, now).await
    }

    async fn retired_connections(&self, now: i64) -> Result<Vec<Retired>, StoreError> {
        self.retired_all(now).await
    }

    async fn erase_retired(&self, key: &ConnectionKey) -> Result<bool, StoreError> {
        self.erase_retired_copy(key).await
    }

    async fn reinstate_connection(
        &self,
        connection: &Connection,
        retired_version: u64,
    ) -> Result<bool, StoreError> {
        self.reinstate(connection, retired_version).await
    }

    async fn due_connections(&self, now: i64, limit: usize) -> Result<Vec<Due>, StoreError> {
        let today = now.div_euclid(86_400);
        let mut due = Vec::new();
        for day in today - SWEEP_LOOKBACK_DAYS..=today {
            let mut start: Option<Item> = None;
            // Bounded: `limit` items at most are kept, a page holds many.
            for _ in 0..MAX_LIST_PAGES {
                if due.len() >= limit {
                    return Ok(due);
                }
                let out = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(SWEEP_INDEX)
                    .key_condition_expression("#d = :d AND #at <= :now")
                    .expression_attribute_names("#d", SWEEP_DAY)
                    .expression_attribute_names("#at", SWEEP_AT)
                    .expression_attribute_values(":d", sweep_day(day * 86_400))
                    .expression_attribute_values(":now", n(now))
                    .limit((limit - due.len()).min(1000) as i32)
                    .set_exclusive_start_key(start.take())
                    .send()
                    .timed("Query")
                    .await
                    .map_err(unavailable)?;
                for item in out.items() {
                    let (Some(user), Some(team)) = (user_of(item), team_of(item)) else {
                        continue;
                    };
                    due.push(Due {
                        key: ConnectionKey::new(&user, team),
                        version: number(item, VERSION)?.unwrap_or_default().max(0) as u64,
                        sweep_at: number(item, SWEEP_AT)?.unwrap_or_default(),
                        refresh_expires_at: number(item, TTL_ATTRIBUTE)?,
                    });
                }
                match out.last_evaluated_key {
                    Some(last) if !last.is_empty() => start = Some(last),
                    _ => break,
                }
            }
        }
        Ok(due)
    }

    async fn reschedule_sweep(
        &self,
        key: &ConnectionKey,
        version: u64,
        sweep_at: i64,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(connection_key_of(key)))
            // A connection stored before the sealing key's id was recorded
            // joins the sealing-key index as UNRECORDED here (every
            // connection is rescheduled within KEEPALIVE_PROBE_DAYS), so
            // the re-seal pass finds it without a Scan.
            .update_expression("SET #d = :d, #at = :at, #sb = if_not_exists(#sb, :unrecorded)")
            .condition_expression("#v = :v")
            .expression_attribute_names("#d", SWEEP_DAY)
            .expression_attribute_names("#at", SWEEP_AT)
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_names("#sb", SEALED_BY)
            .expression_attribute_values(":d", sweep_day(sweep_at))
            .expression_attribute_values(":at", n(sweep_at))
            .expression_attribute_values(":v", n(version as i64))
            .expression_attribute_values(":unrecorded", sealed_by(super::keys::UNRECORDED))
            .send()
            .timed("UpdateItem")
            .await;
        conditional(result)
    }

    async fn set_default_team(
        &self,
        user: &AppUser,
        team_id: Option<&str>,
        only_if_unset: bool,
    ) -> Result<bool, StoreError> {
        let key = connections_key(user);
        let Some(team_id) = team_id else {
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key_of(&key, DEFAULT_TEAM)))
                .send()
                .timed("DeleteItem")
                .await
                .map_err(unavailable)?;
            return Ok(true);
        };
        let mut item = base_item(
            &key,
            "default",
            to_json(&DefaultTeam {
                team_id: team_id.to_string(),
            })?,
            None,
        );
        item.insert(SK.into(), AttributeValue::S(DEFAULT_TEAM.into()));
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let put = match only_if_unset {
            true => put
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK),
            false => put,
        };
        conditional(put.send().timed("PutItem").await)
    }
}

#[async_trait]
impl IdempotencyStore for DynamoStore {
    async fn claim(
        &self,
        user: &AppUser,
        key: &str,
        record: &IdempotencyRecord,
        now: i64,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let id = idempotency_key(user, key);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.codec.idempotency_item(&id, record)?))
            // Free if never used, or used so long ago that it expired (TTL may lag).
            .condition_expression("attribute_not_exists(#pk) OR #exp <= :now")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#exp", TTL_ATTRIBUTE)
            .expression_attribute_values(":now", n(now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .timed("PutItem")
            .await;
        match written(result)? {
            Written::Done(_) => Ok(None),
            Written::ConditionFailed(old) => {
                let item = old.ok_or_else(|| StoreError::Corrupt("no old item returned".into()))?;
                let data: IdempotencyData = json(&item)?;
                Ok(Some(IdempotencyRecord {
                    request_hash: data.request_hash,
                    outcome: data.outcome,
                    expires_at: expires_at(&item)?,
                }))
            }
        }
    }

    async fn settle(
        &self,
        user: &AppUser,
        key: &str,
        record: &IdempotencyRecord,
    ) -> Result<(), StoreError> {
        let id = idempotency_key(user, key);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.codec.idempotency_item(&id, record)?))
            .send()
            .timed("PutItem")
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn release(&self, user: &AppUser, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_of(&idempotency_key(user, key), SINGLE)))
            .send()
            .timed("DeleteItem")
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
