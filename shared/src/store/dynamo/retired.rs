//! Retired connections: the connection item itself, marked with why and
//! when, its version moved on, off the sweep index, its TTL the end of the
//! keeping. Every read of a live connection skips the mark.

use super::codec::*;
use super::{conditional, unavailable, DynamoStore, Timed};
use crate::domain::ConnectionKey;
use crate::store::{Retired, StoreError};
use aws_sdk_dynamodb::types::AttributeValue;

/// Pages an operator's scan for retired connections reads at most.
const MAX_SCAN_PAGES: usize = 10_000;

impl DynamoStore {
    pub(super) async fn retire(
        &self,
        key: &ConnectionKey,
        version: u64,
        reason: &str,
        now: i64,
        keep_until: i64,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(connection_key_of(key)))
            // token_protocol::delete_at_allowed (the version), and never a
            // forgotten one: its revocation is pending.
            .update_expression(
                "SET #ret = :reason, #rat = :now, #rexp = if_not_exists(#ttl, :keep), \
                 #ttl = :keep, #v = #v + :one REMOVE #lu, #lh, #rr, #sd, #sa",
            )
            .condition_expression("#v = :v AND attribute_not_exists(#f)")
            .expression_attribute_names("#ret", RETIRED)
            .expression_attribute_names("#rat", RETIRED_AT)
            .expression_attribute_names("#rexp", RETIRED_REFRESH_EXPIRES_AT)
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_names("#lu", LEASE_UNTIL)
            .expression_attribute_names("#lh", LEASE_HOLDER)
            .expression_attribute_names("#rr", REFRESH_RETRY_AT)
            .expression_attribute_names("#sd", SWEEP_DAY)
            .expression_attribute_names("#sa", SWEEP_AT)
            .expression_attribute_names("#f", FORGOTTEN)
            .expression_attribute_values(":reason", AttributeValue::S(reason.to_string()))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":keep", n(keep_until))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":v", n(version as i64))
            .send()
            .timed("UpdateItem")
            .await;
        conditional(result)
    }

    pub(super) async fn retired_one(
        &self,
        key: &ConnectionKey,
        now: i64,
    ) -> Result<Option<Retired>, StoreError> {
        match self.connection_item_of(key).await? {
            Some(item) => self.retired_from(key, &item, now),
            None => Ok(None),
        }
    }

    /// Every retired connection: a Scan, for the operator's `restore` only.
    pub(super) async fn retired_all(&self, now: i64) -> Result<Vec<Retired>, StoreError> {
        let mut all = Vec::new();
        let mut start = None;
        for _ in 0..MAX_SCAN_PAGES {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("attribute_exists(#ret)")
                .expression_attribute_names("#ret", RETIRED)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .timed("Scan")
                .await
                .map_err(unavailable)?;
            for item in out.items() {
                let Some(key) = connection_key_in(item) else {
                    continue;
                };
                match self.retired_from(&key, item, now) {
                    Ok(Some(retired)) => all.push(retired),
                    Ok(None) => {}
                    // Its tokens no longer open: nothing to restore with.
                    Err(e) => {
                        tracing::warn!(user = %key.user, team = %key.team_id, error = %e, "retired connection unreadable")
                    }
                }
            }
            match out.last_evaluated_key {
                Some(last) if !last.is_empty() => start = Some(last),
                _ => break,
            }
        }
        all.sort_by_key(|r| r.retired_at);
        Ok(all)
    }

    pub(super) async fn reinstate(
        &self,
        connection: &crate::domain::Connection,
        retired_version: u64,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.codec.connection_item(connection)?))
            .condition_expression("#v = :v AND attribute_exists(#ret)")
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_names("#ret", RETIRED)
            .expression_attribute_values(":v", n(retired_version as i64))
            .send()
            .timed("PutItem")
            .await;
        conditional(result)
    }

    pub(super) async fn erase_retired_copy(&self, key: &ConnectionKey) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(connection_key_of(key)))
            .condition_expression("attribute_exists(#ret)")
            .expression_attribute_names("#ret", RETIRED)
            .send()
            .timed("DeleteItem")
            .await;
        conditional(result)
    }

    fn retired_from(
        &self,
        key: &ConnectionKey,
        item: &Item,
        now: i64,
    ) -> Result<Option<Retired>, StoreError> {
        let Some(AttributeValue::S(reason)) = item.get(RETIRED) else {
            return Ok(None);
        };
        if !crate::store::is_live(number(item, TTL_ATTRIBUTE)?, now) {
            return Ok(None);
        }
        let mut connection = self.codec.connection_from(key, item)?;
        // Its TTL is now the end of the keeping; the token's own end is kept apart.
        if let Some(t) = number(item, RETIRED_REFRESH_EXPIRES_AT)? {
            connection.refresh_expires_at = Some(t);
        }
        Ok(Some(Retired {
            connection,
            retired_at: number(item, RETIRED_AT)?.unwrap_or_default(),
            reason: reason.clone(),
        }))
    }
}
