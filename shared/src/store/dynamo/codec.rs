//! How the domain's things become DynamoDB items and back: non-secret
//! fields as JSON in `data`, tokens and codes sealed into attributes of their
//! own with the item's key as associated data. No I/O here.

use crate::domain::{Connection, ConnectionKey, ConnectionProfile};
use crate::seal::Sealer;
use crate::store::{connections_key, is_live, team_key, IdempotencyRecord, StoreError, Taken};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;
use std::sync::Arc;

pub const PK: &str = "pk";
/// The sort key: a connection's team within its user's partition, the
/// default choice beside them, [`SINGLE`] for every other item.
pub const SK: &str = "sk";
pub(super) const SINGLE: &str = "-";
pub(super) const DEFAULT_TEAM: &str = "DEFAULT";
pub const TTL_ATTRIBUTE: &str = "expires_at";
pub(super) const DATA: &str = "data";
pub(super) const KIND: &str = "kind";
pub(super) const CODE: &str = "code_sealed";
pub(super) const CODE_VERIFIER: &str = "code_verifier_sealed";
pub(super) const FORGOTTEN: &str = "forgotten";
pub(super) const FLOW_COUNT: &str = "flow_count";
pub(super) const ACCESS_TOKEN: &str = "access_token_sealed";
pub(super) const REFRESH_TOKEN: &str = "refresh_token_sealed";
pub(super) const ACCESS_EXPIRES_AT: &str = "access_expires_at";
pub(super) const VERSION: &str = "version";
pub(super) const LEASE_UNTIL: &str = "lease_until";
pub(super) const LEASE_HOLDER: &str = "lease_holder";
/// The lease holder whose refresh wrote the tokens, so that a retried write
/// recognises its own.
pub(super) const WRITTEN_BY: &str = "written_by";
/// No refresh before this: the last one failed transiently.
pub(super) const REFRESH_RETRY_AT: &str = "refresh_retry_at";
/// A retired connection: why (its presence marks the item), when, and its
/// refresh token's own end (its TTL is the end of the keeping).
pub(super) const RETIRED: &str = "retired_reason";
pub(super) const RETIRED_AT: &str = "retired_at";
pub(super) const RETIRED_REFRESH_EXPIRES_AT: &str = "retired_refresh_expires_at";
/// The sparse sweep index: `SWEEP#<epoch day>` and the second within it.
/// Only connection items carry them.
pub const SWEEP_INDEX: &str = "sweep";
pub const SWEEP_DAY: &str = "sweep_day";
pub const SWEEP_AT: &str = "sweep_at";

/// The sparse sealing-key index (`keys`): `SEALED#<key id>` names the key
/// a connection's tokens are sealed under; only connection items carry it.
pub const SEALED_INDEX: &str = "sealed";
pub const SEALED_BY: &str = "sealed_by";

pub(super) fn sealed_by(key_id: &str) -> AttributeValue {
    AttributeValue::S(format!("SEALED#{key_id}"))
}

pub(super) fn sweep_day(sweep_at: i64) -> AttributeValue {
    AttributeValue::S(format!("SWEEP#{}", sweep_at.div_euclid(86_400)))
}

pub(super) type Item = HashMap<String, AttributeValue>;

/// An item's primary key.
pub(super) fn key_of(pk: &str, sk: &str) -> Item {
    HashMap::from([
        (PK.to_string(), AttributeValue::S(pk.to_string())),
        (SK.to_string(), AttributeValue::S(sk.to_string())),
    ])
}

pub(super) fn connection_key_of(key: &ConnectionKey) -> Item {
    key_of(&connections_key(&key.user), &team_key(&key.team_id))
}

/// What a connection's tokens are sealed to: its whole key, so that a
/// sealed token copied to another user's or team's item does not open.
pub(super) fn sealing_context(key: &ConnectionKey) -> String {
    format!("{}#{}", connections_key(&key.user), team_key(&key.team_id))
}

/// Seals and opens; `None` in a function that never reads or writes a
/// secret (auth-start).
#[derive(Clone)]
pub(super) struct Codec {
    pub(super) sealer: Option<Arc<Sealer>>,
}

impl Codec {
    /// A connection as stored: profile as JSON, tokens sealed, no lease.
    pub(super) fn connection_item(&self, connection: &Connection) -> Result<Item, StoreError> {
        let key = sealing_context(&connection.key);
        let mut item = base_item(
            &connections_key(&connection.key.user),
            "connection",
            to_json(&connection.profile)?,
            connection.refresh_expires_at,
        );
        item.insert(
            SK.into(),
            AttributeValue::S(team_key(&connection.key.team_id)),
        );
        item.insert(
            ACCESS_TOKEN.into(),
            self.seal(&key, &connection.access_token)?,
        );
        if let Some(refresh) = &connection.refresh_token {
            item.insert(REFRESH_TOKEN.into(), self.seal(&key, refresh)?);
        }
        item.insert(SEALED_BY.into(), sealed_by(self.sealer()?.current_key_id()));
        if let Some(t) = connection.access_expires_at {
            item.insert(ACCESS_EXPIRES_AT.into(), n(t));
        }
        item.insert(VERSION.into(), n(connection.version as i64));
        item.insert(SWEEP_DAY.into(), sweep_day(connection.sweep_at));
        item.insert(SWEEP_AT.into(), n(connection.sweep_at));
        Ok(item)
    }

    /// The connection in `item` if it is alive at `now`. One whose tokens no
    /// longer open (their key left the ring) reads as no connection: the user
    /// connects again, rather than meeting a 503 forever.
    pub(super) fn live_connection(
        &self,
        key: &ConnectionKey,
        item: &Item,
        now: i64,
    ) -> Result<Option<Connection>, StoreError> {
        if !is_live(number(item, TTL_ATTRIBUTE)?, now) {
            return Ok(None);
        }
        match self.connection_from(key, item) {
            Ok(c) => Ok(Some(c)),
            Err(StoreError::Corrupt(reason)) => {
                tracing::warn!(user = %key.user, team = %key.team_id, %reason, "stored connection does not open; treated as disconnected");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    pub(super) fn connection_from(
        &self,
        key: &ConnectionKey,
        item: &Item,
    ) -> Result<Connection, StoreError> {
        let context = sealing_context(key);
        let key = key.clone();
        let refresh_token = match item.contains_key(REFRESH_TOKEN) {
            true => Some(self.open(item, &context, REFRESH_TOKEN)?),
            false => None,
        };
        Ok(Connection {
            key,
            profile: json::<ConnectionProfile>(item)?,
            access_token: self.open(item, &context, ACCESS_TOKEN)?,
            refresh_token,
            access_expires_at: number(item, ACCESS_EXPIRES_AT)?,
            refresh_expires_at: number(item, TTL_ATTRIBUTE)?,
            version: number(item, VERSION)?.unwrap_or_default().max(0) as u64,
            lease_until: number(item, LEASE_UNTIL)?,
            refresh_retry_at: number(item, REFRESH_RETRY_AT)?,
            sweep_at: number(item, SWEEP_AT)?.unwrap_or_default(),
        })
    }

    pub(super) fn open(
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

    pub(super) fn sealer(&self) -> Result<&Sealer, StoreError> {
        self.sealer
            .as_deref()
            .ok_or_else(|| StoreError::Corrupt("no sealing keys configured here".into()))
    }

    pub(super) fn seal(
        &self,
        key: &str,
        value: &crate::secret::Secret,
    ) -> Result<AttributeValue, StoreError> {
        self.sealer()?
            .seal(key, value)
            .map(AttributeValue::S)
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    pub(super) fn idempotency_item(
        &self,
        id: &str,
        record: &IdempotencyRecord,
    ) -> Result<Item, StoreError> {
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

/// The default-choice item's data.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct DefaultTeam {
    pub(super) team_id: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct IdempotencyData {
    pub(super) request_hash: String,
    pub(super) outcome: crate::store::IdempotentOutcome,
}

pub(super) fn string(item: &Item, attr: &str) -> Result<String, StoreError> {
    match item.get(attr) {
        Some(AttributeValue::S(s)) => Ok(s.clone()),
        _ => Err(StoreError::Corrupt(format!("{attr} missing"))),
    }
}

pub(super) fn number(item: &Item, attr: &str) -> Result<Option<i64>, StoreError> {
    match item.get(attr) {
        None => Ok(None),
        Some(AttributeValue::N(n)) => n
            .parse()
            .map(Some)
            .map_err(|_| StoreError::Corrupt(format!("{attr} is not a number"))),
        Some(_) => Err(StoreError::Corrupt(format!("{attr} is not a number"))),
    }
}

pub(super) fn json<T: serde::de::DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    serde_json::from_str(&string(item, DATA)?).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> Result<AttributeValue, StoreError> {
    serde_json::to_string(value)
        .map(AttributeValue::S)
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(super) fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(super) fn base_item(
    key: &str,
    kind: &str,
    data: AttributeValue,
    expires_at: Option<i64>,
) -> Item {
    let mut item = Item::new();
    item.insert(PK.into(), AttributeValue::S(key.to_string()));
    item.insert(SK.into(), AttributeValue::S(SINGLE.into()));
    item.insert(KIND.into(), AttributeValue::S(kind.into()));
    item.insert(DATA.into(), data);
    if let Some(t) = expires_at {
        item.insert(TTL_ATTRIBUTE.into(), n(t));
    }
    item
}

/// The user of a connection item, from its partition key.
pub(super) fn user_of(item: &Item) -> Option<crate::identity::AppUser> {
    match item.get(PK) {
        Some(AttributeValue::S(pk)) => pk
            .strip_prefix("CONN#")
            .and_then(|u| crate::identity::AppUser::parse(u).ok()),
        _ => None,
    }
}

/// The team a connection item in a user's partition is for, from its sort key.
/// The connection a connection item is of, from its key.
pub(super) fn connection_key_in(item: &Item) -> Option<ConnectionKey> {
    Some(ConnectionKey::new(&user_of(item)?, team_of(item)?))
}

pub(super) fn team_of(item: &Item) -> Option<&str> {
    match item.get(SK) {
        Some(AttributeValue::S(sk)) => sk.strip_prefix("TEAM#"),
        _ => None,
    }
}

pub(super) fn expires_at_of(item: &Item) -> Result<Option<i64>, StoreError> {
    number(item, TTL_ATTRIBUTE)
}

pub(super) fn expires_at(item: &Item) -> Result<i64, StoreError> {
    number(item, TTL_ATTRIBUTE)?.ok_or_else(|| StoreError::Corrupt("expires_at missing".into()))
}

pub(super) fn taken<T>(value: T, expires_at: i64, now: i64) -> Taken<T> {
    if is_live(Some(expires_at), now) {
        Taken::Fresh(value)
    } else {
        Taken::Expired(value)
    }
}
