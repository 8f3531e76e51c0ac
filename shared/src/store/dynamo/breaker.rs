//! The refresh breaker's one item (`BREAKER`): the map of rejected
//! connections, and when it opened and until when.

use super::codec::*;
use super::{unavailable, written, DynamoStore, Timed, Written};
use crate::store::{BreakerState, BreakerStore, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use std::collections::HashMap;

const BREAKER_PK: &str = "BREAKER";
const REJECTIONS: &str = "rejections";
const OPENED_AT: &str = "opened_at";
const OPEN_UNTIL: &str = "open_until";

fn breaker_key() -> Item {
    key_of(BREAKER_PK, SINGLE)
}

fn state_of(item: &Item) -> Result<BreakerState, StoreError> {
    let rejections = match item.get(REJECTIONS) {
        Some(AttributeValue::M(map)) => map
            .iter()
            .filter_map(|(k, v)| match v {
                AttributeValue::N(t) => t.parse().ok().map(|t| (k.clone(), t)),
                _ => None,
            })
            .collect(),
        _ => Default::default(),
    };
    Ok(BreakerState {
        rejections,
        opened_at: number(item, OPENED_AT)?,
        open_until: number(item, OPEN_UNTIL)?,
    })
}

#[async_trait]
impl BreakerStore for DynamoStore {
    async fn breaker(&self) -> Result<BreakerState, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(breaker_key()))
            .send()
            .timed("GetItem")
            .await
            .map_err(unavailable)?;
        out.item
            .as_ref()
            .map_or(Ok(BreakerState::default()), state_of)
    }

    async fn breaker_rejected(
        &self,
        connection: &str,
        now: i64,
    ) -> Result<BreakerState, StoreError> {
        // A map entry can be set only in a map that exists: add to it, or
        // make it with this entry; bounded, as two functions may race to make it.
        for _ in 0..3 {
            let into_map = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(breaker_key()))
                .update_expression("SET #r.#c = :now")
                .condition_expression("attribute_exists(#r)")
                .expression_attribute_names("#r", REJECTIONS)
                .expression_attribute_names("#c", connection)
                .expression_attribute_values(":now", n(now))
                .return_values(ReturnValue::AllNew)
                .send()
                .timed("UpdateItem")
                .await;
            if let Written::Done(out) = written(into_map)? {
                return state_of(&out.attributes.unwrap_or_default());
            }
            let new_map = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(breaker_key()))
                .update_expression("SET #r = :map")
                .condition_expression("attribute_not_exists(#r)")
                .expression_attribute_names("#r", REJECTIONS)
                .expression_attribute_values(
                    ":map",
                    AttributeValue::M(HashMap::from([(connection.to_string(), n(now))])),
                )
                .return_values(ReturnValue::AllNew)
                .send()
                .timed("UpdateItem")
                .await;
            if let Written::Done(out) = written(new_map)? {
                return state_of(&out.attributes.unwrap_or_default());
            }
        }
        Err(StoreError::Unavailable(
            "the breaker item kept changing".into(),
        ))
    }

    async fn breaker_open(&self, now: i64, until: i64) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(breaker_key()))
            .update_expression("SET #o = :now, #u = :until")
            .expression_attribute_names("#o", OPENED_AT)
            .expression_attribute_names("#u", OPEN_UNTIL)
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":until", n(until))
            .send()
            .timed("UpdateItem")
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn breaker_clear(&self) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(breaker_key()))
            .send()
            .timed("DeleteItem")
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
