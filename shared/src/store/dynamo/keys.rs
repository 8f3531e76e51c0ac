//! The sealing-key port on DynamoDB: the sparse `sealed` index (partition
//! `sealed_by` = `SEALED#<key id>`, sort `pk`; only connection items carry
//! it, each codec write sets it to the key that sealed its tokens), and one
//! summary item, `KEYRING#summary`, holding a `key_<id>` map per key id.
//!
//! Why an index rather than a paginated Scan with a cursor: a pass then
//! reads only the connections of the keys it re-seals, and its count is a
//! Query of one partition whose entries are a few dozen bytes, so a
//! deployment that is not rotating pays nothing but the index's writes.
//! The sort key lets DynamoDB spread one key id's many entries over
//! partitions (all connections share the newest key's id).

use super::codec::*;
use super::{conditional, unavailable, DynamoStore, Timed};
use crate::domain::ConnectionKey;
use crate::store::keys::{KeyCount, KeyStore, KeySummary, Resealed, Sealed, SealedCount};
use crate::store::StoreError;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeValue, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    Select,
};
use std::collections::{BTreeMap, HashMap};

/// The summary item's partition key.
const SUMMARY: &str = "KEYRING#summary";
/// A key id's attribute in the summary item.
const KEY_PREFIX: &str = "key_";
/// Pages one count reads at most (a page is up to 1 MB, some 10,000
/// entries): the bound only keeps a corrupt table from looping us.
const MAX_COUNT_PAGES: usize = 500;

/// The index as the template declares it.
pub(super) fn sealed_index() -> Result<GlobalSecondaryIndex, StoreError> {
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    };
    GlobalSecondaryIndex::builder()
        .index_name(SEALED_INDEX)
        .key_schema(key(SEALED_BY, KeyType::Hash)?)
        .key_schema(key(PK, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::Include)
                .non_key_attributes(VERSION)
                .build(),
        )
        .build()
        .map_err(|e| StoreError::Unavailable(e.to_string()))
}

fn summary_key() -> Item {
    key_of(SUMMARY, SINGLE)
}

fn count_value(count: &SealedCount, now: i64) -> AttributeValue {
    AttributeValue::M(HashMap::from([
        ("sealed".to_string(), n(count.sealed as i64)),
        ("at_least".to_string(), AttributeValue::Bool(count.at_least)),
        ("at".to_string(), n(now)),
    ]))
}

fn key_count(value: &AttributeValue) -> Result<KeyCount, StoreError> {
    let AttributeValue::M(map) = value else {
        return Err(StoreError::Corrupt("a key count is not a map".into()));
    };
    let at = number(map, "at")?.unwrap_or_default();
    let count = number(map, "sealed")?.map(|sealed| SealedCount {
        sealed: sealed.max(0) as u64,
        at_least: matches!(map.get("at_least"), Some(AttributeValue::Bool(true))),
    });
    Ok(KeyCount { count, at })
}

impl DynamoStore {
    /// The connections `key_id` seals, through the sealing-key index.
    fn sealed_query(
        &self,
        key_id: &str,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .index_name(SEALED_INDEX)
            .key_condition_expression("#sb = :sb")
            .expression_attribute_names("#sb", SEALED_BY)
            .expression_attribute_values(":sb", sealed_by(key_id))
    }
}

#[async_trait]
impl KeyStore for DynamoStore {
    fn key_ids(&self) -> Vec<String> {
        self.codec
            .sealer
            .as_deref()
            .map(|s| s.key_ids().to_vec())
            .unwrap_or_default()
    }

    async fn sealed_under(
        &self,
        key_id: &str,
        after: Option<&ConnectionKey>,
        limit: usize,
    ) -> Result<Vec<Sealed>, StoreError> {
        let start = after.map(|key| {
            let mut start = connection_key_of(key);
            start.insert(SEALED_BY.into(), sealed_by(key_id));
            start
        });
        let out = self
            .sealed_query(key_id)
            .limit(limit.clamp(1, 1000) as i32)
            .set_exclusive_start_key(start)
            .send()
            .timed("Query")
            .await
            .map_err(unavailable)?;
        let mut found = Vec::new();
        for item in out.items() {
            let Some(key) = connection_key_in(item) else {
                continue;
            };
            found.push(Sealed {
                key,
                version: number(item, VERSION)?.unwrap_or_default().max(0) as u64,
            });
        }
        Ok(found)
    }

    async fn count_sealed_under(
        &self,
        key_id: &str,
        limit: u64,
    ) -> Result<SealedCount, StoreError> {
        let mut counted = SealedCount::default();
        let mut start: Option<Item> = None;
        for _ in 0..MAX_COUNT_PAGES {
            let left = limit.saturating_sub(counted.sealed);
            // A small bound (is there any?) reads no more than it needs.
            let page_limit = (left < 10_000).then_some(left.max(1) as i32);
            let out = self
                .sealed_query(key_id)
                .select(Select::Count)
                .set_limit(page_limit)
                .set_exclusive_start_key(start.take())
                .send()
                .timed("Query")
                .await
                .map_err(unavailable)?;
            counted.sealed += out.count.max(0) as u64;
            match out.last_evaluated_key {
                Some(last) if !last.is_empty() => {
                    if counted.sealed >= limit {
                        counted.at_least = true;
                        return Ok(counted);
                    }
                    start = Some(last);
                }
                _ => return Ok(counted),
            }
        }
        counted.at_least = true;
        Ok(counted)
    }

    async fn reseal_connection(
        &self,
        key: &ConnectionKey,
        version: u64,
    ) -> Result<Resealed, StoreError> {
        let Some(item) = self.connection_item_of(key).await? else {
            return Ok(Resealed::Gone);
        };
        if number(&item, VERSION)? != Some(version as i64) {
            return Ok(Resealed::MovedOn);
        }
        let sealer = self.codec.sealer()?;
        let current = sealer.current_key_id();
        let access_read = string(&item, ACCESS_TOKEN)?;
        if item.get(SEALED_BY) == Some(&sealed_by(current))
            && crate::seal::Sealer::key_id_of(&access_read) == Some(current)
        {
            return Ok(Resealed::Current);
        }
        let context = sealing_context(key);
        let Ok(access) = sealer.open(&context, &access_read) else {
            return Ok(Resealed::Unopenable);
        };
        let refresh = match item.contains_key(REFRESH_TOKEN) {
            true => match self.codec.open(&item, &context, REFRESH_TOKEN) {
                Ok(refresh) => Some(refresh),
                Err(_) => return Ok(Resealed::Unopenable),
            },
            false => None,
        };
        let mut set = vec!["#a = :a", "#sb = :sb"];
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(connection_key_of(key)))
            // At the version read, and over the very ciphertext opened: a
            // refresh (or a consent) that wrote meanwhile is never undone.
            // No version bump and no lease change, so a refresher holding
            // the lease at this version still writes its tokens after this.
            .condition_expression("#v = :v AND #a = :read")
            .expression_attribute_names("#a", ACCESS_TOKEN)
            .expression_attribute_names("#sb", SEALED_BY)
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_values(":a", self.codec.seal(&context, &access)?)
            .expression_attribute_values(":sb", sealed_by(current))
            .expression_attribute_values(":v", n(version as i64))
            .expression_attribute_values(":read", AttributeValue::S(access_read));
        if let Some(refresh) = &refresh {
            set.push("#r = :r");
            update = update
                .expression_attribute_names("#r", REFRESH_TOKEN)
                .expression_attribute_values(":r", self.codec.seal(&context, refresh)?);
        }
        let result = update
            .update_expression(format!("SET {}", set.join(", ")))
            .send()
            .timed("UpdateItem")
            .await;
        Ok(match conditional(result)? {
            true => Resealed::Done,
            false => Resealed::MovedOn,
        })
    }

    async fn key_summary(&self) -> Result<KeySummary, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(summary_key()))
            .consistent_read(true)
            .send()
            .timed("GetItem")
            .await
            .map_err(unavailable)?;
        let mut summary = KeySummary::default();
        for (name, value) in out.item.iter().flatten() {
            if let Some(id) = name.strip_prefix(KEY_PREFIX) {
                summary.keys.insert(id.to_string(), key_count(value)?);
            }
        }
        Ok(summary)
    }

    async fn register_key(&self, key_id: &str, now: i64) -> Result<(), StoreError> {
        let registered = AttributeValue::M(HashMap::from([("at".to_string(), n(now))]));
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(summary_key()))
            .update_expression("SET #k = if_not_exists(#k, :registered), #kind = :kind")
            .expression_attribute_names("#k", format!("{KEY_PREFIX}{key_id}"))
            .expression_attribute_names("#kind", KIND)
            .expression_attribute_values(":registered", registered)
            .expression_attribute_values(":kind", AttributeValue::S("keyring".into()))
            .send()
            .timed("UpdateItem")
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn record_key_counts(
        &self,
        counts: &BTreeMap<String, SealedCount>,
        now: i64,
    ) -> Result<(), StoreError> {
        if counts.is_empty() {
            return Ok(());
        }
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(summary_key()))
            .expression_attribute_names("#kind", KIND)
            .expression_attribute_values(":kind", AttributeValue::S("keyring".into()));
        let mut set = vec!["#kind = :kind".to_string()];
        for (i, (id, count)) in counts.iter().enumerate() {
            set.push(format!("#k{i} = :k{i}"));
            update = update
                .expression_attribute_names(format!("#k{i}"), format!("{KEY_PREFIX}{id}"))
                .expression_attribute_values(format!(":k{i}"), count_value(count, now));
        }
        update
            .update_expression(format!("SET {}", set.join(", ")))
            .send()
            .timed("UpdateItem")
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_reads_back_as_written_and_a_registration_as_uncounted() {
        let written = SealedCount {
            sealed: 12,
            at_least: true,
        };
        assert_eq!(
            key_count(&count_value(&written, 77)).expect("count"),
            KeyCount {
                count: Some(written),
                at: 77
            }
        );
        let registered = AttributeValue::M(HashMap::from([("at".to_string(), n(5))]));
        assert_eq!(
            key_count(&registered).expect("count"),
            KeyCount { count: None, at: 5 }
        );
        assert!(key_count(&AttributeValue::S("x".into())).is_err());
    }
}
