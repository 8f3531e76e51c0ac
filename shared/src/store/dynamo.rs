//! DynamoDB adapter: one table, partition key `pk`, TTL attribute `expires_at`.
//!
//! Non-secret fields travel as JSON in `data`; tokens and codes are sealed
//! into attributes of their own with the item's key as associated data.

use super::{
    completion_key, connection_key, flows_key, idempotency_key, is_live, pending_key,
    AuthorizationStore, ConnectionStore, IdempotencyRecord, IdempotencyStore, StoreError, Taken,
};
use crate::domain::{
    AuthorizationRequest, Completion, Connection, ConnectionProfile, PendingAuthorization,
};
use crate::identity::AppUser;
use crate::seal::Sealer;
use async_trait::async_trait;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ReturnValue,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;
use std::sync::Arc;

pub const PK: &str = "pk";
pub const TTL_ATTRIBUTE: &str = "expires_at";
const DATA: &str = "data";
const KIND: &str = "kind";
const CODE: &str = "code_sealed";
const CODE_VERIFIER: &str = "code_verifier_sealed";
const FORGOTTEN: &str = "forgotten";
const FLOW_COUNT: &str = "flow_count";
const ACCESS_TOKEN: &str = "access_token_sealed";
const REFRESH_TOKEN: &str = "refresh_token_sealed";
const ACCESS_EXPIRES_AT: &str = "access_expires_at";
const VERSION: &str = "version";
const LEASE_UNTIL: &str = "lease_until";
const LEASE_HOLDER: &str = "lease_holder";
/// The lease holder whose refresh wrote the tokens, so that a retried write
/// recognises its own.
const WRITTEN_BY: &str = "written_by";

type Item = HashMap<String, AttributeValue>;

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    /// None in a function that never reads or writes a secret (auth-start).
    sealer: Option<Arc<Sealer>>,
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
            sealer,
        }
    }

    /// Creates the table as the template does (on-demand, TTL on `expires_at`),
    /// for local runs and tests. An existing table is left as it is.
    pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
        let created = client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(PK)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(PK)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?,
            )
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

    async fn put_new(&self, item: Item) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::Conflict)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Deletes the item if it is there and returns what it held: the one
    /// caller whose condition holds is the only one that ever sees it.
    async fn take(&self, key: &str) -> Result<Option<Item>, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(key.to_string()))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::None)
            .send()
            .await;
        match result {
            Ok(out) => Ok(out.attributes),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), DeleteItemError::ConditionalCheckFailedException(_)) =>
            {
                Ok(None)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// A connection as stored: profile as JSON, tokens sealed, no lease.
    fn connection_item(&self, connection: &Connection) -> Result<Item, StoreError> {
        let key = connection_key(&connection.user);
        let mut item = base_item(
            &key,
            "connection",
            to_json(&connection.profile)?,
            connection.refresh_expires_at,
        );
        item.insert(
            ACCESS_TOKEN.into(),
            self.seal(&key, &connection.access_token)?,
        );
        if let Some(refresh) = &connection.refresh_token {
            item.insert(REFRESH_TOKEN.into(), self.seal(&key, refresh)?);
        }
        if let Some(t) = connection.access_expires_at {
            item.insert(ACCESS_EXPIRES_AT.into(), n(t));
        }
        item.insert(VERSION.into(), n(connection.version as i64));
        Ok(item)
    }

    async fn connection_item_of(&self, user: &AppUser) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(connection_key(user)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.item)
    }

    /// The connection in `item` if it is alive at `now`. One whose tokens no
    /// longer open (their key left the ring) reads as no connection: the user
    /// connects again, rather than meeting a 503 forever.
    fn live_connection(
        &self,
        user: &AppUser,
        item: &Item,
        now: i64,
    ) -> Result<Option<Connection>, StoreError> {
        if !is_live(number(item, TTL_ATTRIBUTE)?, now) {
            return Ok(None);
        }
        match self.connection_from(user, item) {
            Ok(c) => Ok(Some(c)),
            Err(StoreError::Corrupt(reason)) => {
                tracing::warn!(user = %user, %reason, "stored connection does not open; treated as disconnected");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn connection_from(&self, user: &AppUser, item: &Item) -> Result<Connection, StoreError> {
        let key = connection_key(user);
        let refresh_token = match item.contains_key(REFRESH_TOKEN) {
            true => Some(self.open(item, &key, REFRESH_TOKEN)?),
            false => None,
        };
        Ok(Connection {
            user: user.clone(),
            profile: json::<ConnectionProfile>(item)?,
            access_token: self.open(item, &key, ACCESS_TOKEN)?,
            refresh_token,
            access_expires_at: number(item, ACCESS_EXPIRES_AT)?,
            refresh_expires_at: number(item, TTL_ATTRIBUTE)?,
            version: number(item, VERSION)?.unwrap_or_default().max(0) as u64,
            lease_until: number(item, LEASE_UNTIL)?,
        })
    }

    fn open(
        &self,
        item: &Item,
        key: &str,
        attr: &str,
    ) -> Result<crate::secret::Secret, StoreError> {
        let sealed = string(item, attr)?;
        self.sealer()?
            .open(key, &sealed)
            .map_err(|e| StoreError::Corrupt(format!("{attr}: {e}")))
    }

    fn sealer(&self) -> Result<&Sealer, StoreError> {
        self.sealer
            .as_deref()
            .ok_or_else(|| StoreError::Corrupt("no sealing keys configured here".into()))
    }

    fn seal(&self, key: &str, value: &crate::secret::Secret) -> Result<AttributeValue, StoreError> {
        self.sealer()?
            .seal(key, value)
            .map(AttributeValue::S)
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }
}

fn unavailable<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Unavailable(DisplayErrorContext(&e).to_string())
}

/// True if the write happened, false if its condition did not hold.
fn conditional<T, E, R>(result: Result<T, SdkError<E, R>>) -> Result<bool, StoreError>
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
        Err(e) => Err(unavailable(e)),
    }
}

fn string(item: &Item, attr: &str) -> Result<String, StoreError> {
    match item.get(attr) {
        Some(AttributeValue::S(s)) => Ok(s.clone()),
        _ => Err(StoreError::Corrupt(format!("{attr} missing"))),
    }
}

fn number(item: &Item, attr: &str) -> Result<Option<i64>, StoreError> {
    match item.get(attr) {
        None => Ok(None),
        Some(AttributeValue::N(n)) => n
            .parse()
            .map(Some)
            .map_err(|_| StoreError::Corrupt(format!("{attr} is not a number"))),
        Some(_) => Err(StoreError::Corrupt(format!("{attr} is not a number"))),
    }
}

fn json<T: serde::de::DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    serde_json::from_str(&string(item, DATA)?).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<AttributeValue, StoreError> {
    serde_json::to_string(value)
        .map(AttributeValue::S)
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn base_item(key: &str, kind: &str, data: AttributeValue, expires_at: Option<i64>) -> Item {
    let mut item = Item::new();
    item.insert(PK.into(), AttributeValue::S(key.to_string()));
    item.insert(KIND.into(), AttributeValue::S(kind.into()));
    item.insert(DATA.into(), data);
    if let Some(t) = expires_at {
        item.insert(TTL_ATTRIBUTE.into(), n(t));
    }
    item
}

fn expires_at_of(item: &Item) -> Result<Option<i64>, StoreError> {
    number(item, TTL_ATTRIBUTE)
}

fn expires_at(item: &Item) -> Result<i64, StoreError> {
    number(item, TTL_ATTRIBUTE)?.ok_or_else(|| StoreError::Corrupt("expires_at missing".into()))
}

fn taken<T>(value: T, expires_at: i64, now: i64) -> Taken<T> {
    if is_live(Some(expires_at), now) {
        Taken::Fresh(value)
    } else {
        Taken::Expired(value)
    }
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
            .await;
        if conditional(started)? {
            return Ok(None);
        }
        // Some are alive: count this one too, while there is room.
        let counted = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(key))
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
            .await;
        match counted {
            Ok(_) => Ok(None),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                let until = match e.into_service_error() {
                    aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(f) => {
                        f.item.as_ref().map(expires_at_of).transpose()?.flatten()
                    }
                    _ => None,
                };
                // Expired between the two calls: the next attempt starts afresh.
                Ok(Some(until.unwrap_or(now + 1)))
            }
            Err(e) => Err(unavailable(e)),
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
        item.insert(CODE.into(), self.seal(&key, &completion.code)?);
        item.insert(
            CODE_VERIFIER.into(),
            self.seal(&key, &completion.code_verifier)?,
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
            code: self.open(&item, &key, CODE)?,
            code_verifier: self.open(&item, &key, CODE_VERIFIER)?,
            request: json::<AuthorizationRequest>(&item)?,
            expires_at,
        };
        Ok(taken(completion, expires_at, now))
    }
}

#[async_trait]
impl ConnectionStore for DynamoStore {
    async fn get_connection(
        &self,
        user: &AppUser,
        now: i64,
    ) -> Result<Option<Connection>, StoreError> {
        let Some(item) = self.connection_item_of(user).await? else {
            return Ok(None);
        };
        if item.contains_key(FORGOTTEN) {
            return Ok(None);
        }
        self.live_connection(user, &item, now)
    }

    async fn put_connection(
        &self,
        connection: &Connection,
    ) -> Result<Option<Connection>, StoreError> {
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.connection_item(connection)?))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out
            .attributes
            .and_then(|old| self.connection_from(&connection.user, &old).ok()))
    }

    async fn forget_connection(&self, user: &AppUser, version: u64) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(connection_key(user)))
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
            .await;
        conditional(result)
    }

    async fn forgotten_connection(
        &self,
        user: &AppUser,
        now: i64,
    ) -> Result<Option<Connection>, StoreError> {
        match self.connection_item_of(user).await? {
            Some(item) if item.contains_key(FORGOTTEN) => self.live_connection(user, &item, now),
            _ => Ok(None),
        }
    }

    async fn delete_connection(&self, user: &AppUser) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(connection_key(user)))
            .send()
            .await
            .map_err(unavailable)?;
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
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(connection_key(user)))
            .update_expression("SET #lu = :until, #lh = :holder")
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
            .await;
        conditional(result)
    }

    async fn release_lease(&self, user: &AppUser, holder: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(connection_key(user)))
            .update_expression("REMOVE #lu, #lh")
            .condition_expression("#lh = :holder")
            .expression_attribute_names("#lu", LEASE_UNTIL)
            .expression_attribute_names("#lh", LEASE_HOLDER)
            .expression_attribute_values(":holder", AttributeValue::S(holder.to_string()))
            .send()
            .await;
        conditional(result).map(|_| ())
    }

    async fn replace_tokens(
        &self,
        connection: &Connection,
        expected_version: u64,
        holder: &str,
    ) -> Result<bool, StoreError> {
        let mut item = self.connection_item(connection)?;
        item.insert(WRITTEN_BY.into(), AttributeValue::S(holder.to_string()));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("#v = :v OR (#v = :new AND #wb = :holder)")
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_names("#wb", WRITTEN_BY)
            .expression_attribute_values(":v", n(expected_version as i64))
            .expression_attribute_values(":new", n(connection.version as i64))
            .expression_attribute_values(":holder", AttributeValue::S(holder.to_string()))
            .send()
            .await;
        conditional(result)
    }

    async fn delete_connection_at(&self, user: &AppUser, version: u64) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(connection_key(user)))
            .condition_expression("#v = :v")
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_values(":v", n(version as i64))
            .send()
            .await;
        conditional(result)
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct IdempotencyData {
    request_hash: String,
    outcome: super::IdempotentOutcome,
}

impl DynamoStore {
    fn idempotency_item(&self, id: &str, record: &IdempotencyRecord) -> Result<Item, StoreError> {
        let data = IdempotencyData {
            request_hash: record.request_hash.clone(),
            outcome: record.outcome.clone(),
        };
        Ok(base_item(
            id,
            "idempotency",
            to_json(&data)?,
            Some(record.expires_at),
        ))
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
            .set_item(Some(self.idempotency_item(&id, record)?))
            // Free if never used, or used so long ago that it expired (TTL may lag).
            .condition_expression("attribute_not_exists(#pk) OR #exp <= :now")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#exp", TTL_ATTRIBUTE)
            .expression_attribute_values(":now", n(now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(None),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(_)) =>
            {
                let aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(failed) = e.into_err() else {
                    return Err(StoreError::Conflict);
                };
                let item = failed.item.ok_or_else(|| StoreError::Corrupt("no old item returned".into()))?;
                let data: IdempotencyData = json(&item)?;
                Ok(Some(IdempotencyRecord {
                    request_hash: data.request_hash,
                    outcome: data.outcome,
                    expires_at: expires_at(&item)?,
                }))
            }
            Err(e) => Err(unavailable(e)),
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
            .set_item(Some(self.idempotency_item(&id, record)?))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn release(&self, user: &AppUser, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(idempotency_key(user, key)))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
