//! Retiring a sealing key: each keep-alive run re-seals, under the ring's
//! first key, a bounded number of connections still sealed under its other
//! keys, then counts what each key still seals and records it in the key
//! summary (README, "Rotating the sealing keys"). Every cold start that
//! seals reads that summary once and refuses to start without a key that
//! still seals connections ([`Service::check_sealing_keys`]): a key taken
//! out too early would leave those users disconnected without a word.
//!
//! Connections are found through the store's sealing-key index, never a
//! Scan. A re-seal is written at the version it was read at and moves
//! neither the version nor the lease (`KeyStore::reseal_connection`), so it
//! never undoes a refresh and never spoils a refresher's lease.

use super::Service;
use crate::clock::rfc3339;
use crate::error::Error;
use crate::store::keys::{KeyCount, Resealed, SealedCount, UNRECORDED};
use crate::store::StoreError;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

/// Index entries read per page of a re-seal pass.
const PAGE: usize = 100;
/// What one pass counts a key that is not the newest up to: exact in any
/// deployment this serves, and a bound on a corrupt one.
const COUNT_LIMIT: u64 = 10_000_000;

/// What one re-seal pass did (part of the keep-alive's log line and answer).
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct ResealReport {
    /// The ring's first key, which everything is re-sealed under.
    pub newest: String,
    pub resealed: usize,
    /// Changed since the index saw it (refreshed, forgotten, reconnected):
    /// found again next run under whatever key seals it then.
    pub moved_on: usize,
    /// No key of the ring opens it: left as it is, and still counted.
    pub unopenable: usize,
    /// Storage failed on it: tried again next run.
    pub errors: usize,
    /// Connections each key other than the newest still seals, after this
    /// run ([`UNRECORDED`]: stored before key ids were recorded).
    pub remaining: BTreeMap<String, u64>,
    /// Of those, the ones under a key the ring does not have: lost unless
    /// that key is put back.
    pub missing: u64,
    /// Stopped for time or at `KEEPALIVE_RESEAL_PER_RUN`, work left.
    pub unfinished: bool,
}

/// A key the ring lacks that still seals connections, as the summary has it.
#[derive(Debug, Clone, PartialEq)]
pub struct RetiredKey {
    pub key_id: String,
    pub count: KeyCount,
}

impl std::fmt::Display for RetiredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let when = rfc3339(self.count.at);
        let connections = |n: u64| match n {
            1 => "1 connection".to_string(),
            n => format!("{n} connections"),
        };
        match self.count.count {
            Some(SealedCount {
                sealed,
                at_least: false,
            }) => write!(
                f,
                "{} ({}, counted {when})",
                self.key_id,
                connections(sealed)
            ),
            Some(SealedCount { sealed, .. }) => write!(
                f,
                "{} (at least {}, counted {when})",
                self.key_id,
                connections(sealed)
            ),
            None => write!(f, "{} (sealing since {when}, not counted yet)", self.key_id),
        }
    }
}

/// Why a cold start refuses to go on.
#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    #[error(
        "TOKEN_SEALING_KEYS lacks a key that still seals connections: {}. Put each back after the newest key, and remove a key only once the keep-alive counts none left under it (README, \"Rotating the sealing keys\")",
        .0.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    StillSealing(Vec<RetiredKey>),
    #[error("the sealing keys' summary could not be read or written: {0}")]
    Storage(#[from] StoreError),
}

impl Service {
    /// The check every cold start that seals makes, once: the ring's first
    /// key is registered in the summary before anything is sealed with it,
    /// and a key the summary says still seals connections (or has not been
    /// counted since it sealed) must be in the ring.
    pub async fn check_sealing_keys(&self) -> Result<(), KeyRingError> {
        let ring = self.store.key_ids();
        let Some(newest) = ring.first() else {
            return Ok(());
        };
        let summary = self.store.key_summary().await?;
        if !summary.keys.contains_key(newest) {
            self.store.register_key(newest, self.clock.now()).await?;
        }
        let retired: Vec<RetiredKey> = summary
            .keys
            .iter()
            .filter(|(id, _)| !ring.contains(id))
            .filter(|(_, count)| count.count.is_none_or(|c| c.sealed > 0))
            .map(|(id, count)| RetiredKey {
                key_id: id.clone(),
                count: *count,
            })
            .collect();
        if retired.is_empty() {
            return Ok(());
        }
        let e = KeyRingError::StillSealing(retired);
        tracing::error!(error = %e, "cold start refused: a sealing key is missing");
        Err(e)
    }

    /// One pass, stopping before `stop`: re-seals at most
    /// `KEEPALIVE_RESEAL_PER_RUN` connections sealed under the ring's older
    /// keys (the oldest key first), then counts and records what every key
    /// the summary or the ring names still seals.
    pub async fn reseal(&self, stop: Instant) -> Result<ResealReport, Error> {
        let ring = self.store.key_ids();
        let Some(newest) = ring.first().cloned() else {
            return Ok(ResealReport::default());
        };
        let mut report = ResealReport {
            newest,
            ..Default::default()
        };
        let mut budget = self.config.keep_alive.reseal_per_run;
        let mut stopped = false;
        // The ring's older keys, the last (oldest) first, then connections
        // whose key was not recorded: all open with this ring, or not at all.
        let work = ring[1..]
            .iter()
            .rev()
            .map(String::as_str)
            .chain([UNRECORDED]);
        'keys: for key_id in work {
            let mut after = None;
            loop {
                if budget == 0 || Instant::now() >= stop {
                    stopped = true;
                    break 'keys;
                }
                let page = self
                    .store
                    .sealed_under(key_id, after.as_ref(), PAGE.min(budget))
                    .await?;
                let last_page = page.len() < PAGE.min(budget);
                for entry in page {
                    // A page is never more than the budget left.
                    if Instant::now() >= stop {
                        stopped = true;
                        break 'keys;
                    }
                    budget -= 1;
                    match self
                        .store
                        .reseal_connection(&entry.key, entry.version)
                        .await
                    {
                        Ok(Resealed::Done) => report.resealed += 1,
                        Ok(Resealed::MovedOn) => report.moved_on += 1,
                        Ok(Resealed::Current | Resealed::Gone) => {}
                        Ok(Resealed::Unopenable) => {
                            tracing::warn!(user = %entry.key.user, team = %entry.key.team_id, key_id, "re-seal: no key of the ring opens this connection");
                            report.unopenable += 1;
                        }
                        Err(e) => {
                            tracing::warn!(user = %entry.key.user, team = %entry.key.team_id, key_id, error = %e, "re-seal: storage unavailable");
                            report.errors += 1;
                        }
                    }
                    after = Some(entry.key);
                }
                if last_page {
                    break;
                }
            }
        }
        self.count_sealing_keys(&ring, &mut report).await?;
        // Left for the next run: what this ring can still re-seal.
        report.unfinished = stopped
            && report
                .remaining
                .iter()
                .any(|(id, n)| *n > 0 && (id == UNRECORDED || ring[1..].contains(id)));
        Ok(report)
    }

    /// Counts every key the summary or the ring names (the newest only for
    /// whether it seals any: it seals nearly everything, and is in every
    /// ring that follows) and records the counts.
    async fn count_sealing_keys(
        &self,
        ring: &[String],
        report: &mut ResealReport,
    ) -> Result<(), Error> {
        let summary = self.store.key_summary().await?;
        let mut ids: Vec<&str> = summary.keys.keys().map(String::as_str).collect();
        ids.extend(ring.iter().map(String::as_str));
        ids.sort_unstable();
        ids.dedup();
        let mut counts = BTreeMap::new();
        for id in ids {
            let newest = Some(id) == ring.first().map(String::as_str);
            let limit = if newest { 1 } else { COUNT_LIMIT };
            let count = self.store.count_sealed_under(id, limit).await?;
            counts.insert(id.to_string(), count);
            if newest {
                continue;
            }
            let in_ring = ring.iter().any(|k| k == id);
            // A key long retired and empty is counted, not reported.
            if in_ring || count.sealed > 0 {
                report.remaining.insert(id.to_string(), count.sealed);
            }
            if !in_ring && count.sealed > 0 {
                tracing::error!(
                    key_id = id,
                    sealed = count.sealed,
                    "connections are sealed under a key the ring lacks: put it back"
                );
                report.missing += count.sealed;
            }
        }
        let unrecorded = self
            .store
            .count_sealed_under(UNRECORDED, COUNT_LIMIT)
            .await?;
        if unrecorded.sealed > 0 {
            report
                .remaining
                .insert(UNRECORDED.to_string(), unrecorded.sealed);
        }
        self.store
            .record_key_counts(&counts, self.clock.now())
            .await?;
        Ok(())
    }
}

/// One key id as the operator sees it (`miro-connect-admin keys`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyView {
    pub key_id: String,
    /// In this process's ring (`TOKEN_SEALING_KEYS`); the first seals.
    pub in_ring: bool,
    pub sealing: bool,
    /// Connections it sealed at the last count; `None`: not counted yet.
    pub connections: Option<u64>,
    /// The count stopped at its bound: at least that many.
    pub at_least: bool,
    /// When it was counted, or else registered (RFC 3339).
    pub at: String,
}

impl Service {
    /// Every key id the table knows of, with what each still seals: a key
    /// may leave the ring once its count is 0 (README, "Rotating the
    /// sealing keys").
    pub async fn key_counts(&self) -> Result<Vec<KeyView>, Error> {
        let ring = self.store.key_ids();
        let summary = self.store.key_summary().await?;
        let mut ids: Vec<String> = summary.keys.keys().cloned().collect();
        for id in &ring {
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
        Ok(ids
            .into_iter()
            .map(|key_id| {
                let count = summary.keys.get(&key_id).copied().unwrap_or_default();
                KeyView {
                    in_ring: ring.contains(&key_id),
                    sealing: ring.first() == Some(&key_id),
                    connections: count.count.map(|c| c.sealed),
                    at_least: count.count.is_some_and(|c| c.at_least),
                    at: rfc3339(count.at),
                    key_id,
                }
            })
            .collect())
    }
}
