//! The keep-alive sweep: Miro says nothing when a user revokes the app or
//! lets 60 days pass without a refresh, so a scheduled run looks at the
//! connections that fall due (found through the sparse sweep index, never a
//! Scan), refreshes those whose refresh token ends soon, probes those nobody
//! used for a while, and tells the app what it found. Every refresh takes
//! the same lease as every other caller (`tokens`).

use super::breaker::REVOKED_AT_MIRO;
use super::connections::disconnected;
use super::Service;
use crate::clock::rfc3339;
use crate::domain::{next_sweep, Connection, ConnectionKey};
use crate::error::Error;
use crate::events::{DisconnectReason, Lifecycle};
use crate::miro::MiroError;
use crate::store::Due;
use serde::Serialize;
use std::time::Instant;

/// Due connections read per batch; the sweep reads batches until it runs
/// out of work or of time.
const BATCH: usize = 100;
/// A connection the sweep could not settle is looked at again this much later.
const RETRY_SECONDS: i64 = 6 * 3600;
const DAY: i64 = 86_400;

/// What one sweep did (also its log line and the function's answer).
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct SweepReport {
    /// Due connections looked at.
    pub due: usize,
    pub refreshed: usize,
    /// Probed at Miro and found alive.
    pub probed: usize,
    /// Found revoked at Miro (or its grant dead), removed and announced.
    pub revoked: usize,
    /// Lapsed unused, removed and announced.
    pub expired: usize,
    /// Announced as expiring (keep-alive off, or it failed).
    pub expiring: usize,
    /// Could not be settled now (Miro or storage unavailable): retried later.
    pub errors: usize,
    /// Stopped for time with due connections left: the next run goes on.
    pub unfinished: bool,
}

impl Service {
    /// One sweep, stopping before `stop` (the invocation's deadline less a
    /// margin); what is left is due at the next run.
    pub async fn sweep(&self, stop: Instant) -> Result<SweepReport, Error> {
        let mut report = SweepReport::default();
        loop {
            let now = self.clock.now();
            let due = self.store.due_connections(now, BATCH).await?;
            let full = due.len() == BATCH;
            let mut settled_any = false;
            for entry in due {
                if Instant::now() >= stop {
                    report.unfinished = true;
                    return Ok(report);
                }
                report.due += 1;
                settled_any |= self.settle_due(&entry, &mut report).await;
            }
            // A full batch that settled nothing would come back the same.
            if !full || !settled_any {
                return Ok(report);
            }
        }
    }

    /// Settles one due connection; true if it is no longer due now.
    async fn settle_due(&self, due: &Due, report: &mut SweepReport) -> bool {
        let key = &due.key;
        let now = self.clock.now();
        let read = match self.store.get_connection(key, now).await {
            Ok(read) => read,
            Err(e) => {
                tracing::warn!(user = %key.user, team = %key.team_id, error = %e, "sweep: storage unavailable");
                report.errors += 1;
                return false;
            }
        };
        let Some(connection) = read else {
            return self.settle_unreadable(due, report).await;
        };
        if !self.config.keep_alive.refresh {
            // Announced once, then looked at again when it lapses.
            let next = match self.announce_if_expiring(&connection, report).await {
                Some(ends) => ends,
                None => next_sweep(now, connection.refresh_expires_at, self.config.keep_alive),
            };
            return self
                .store
                .reschedule_sweep(key, connection.version, next)
                .await
                .unwrap_or(false);
        }
        let ending = connection
            .refresh_expires_at
            .is_some_and(|t| t - now <= self.config.keep_alive.ahead_days * DAY);
        // A refresh token that ends soon is refreshed whatever the access
        // token's expiry says; otherwise the usual rule (refresh when due).
        let stale = ending.then_some(connection.version);
        let usable = self
            .usable_connection(key, stale, Some(connection.clone()))
            .await;
        let current = match usable {
            Ok(Some(current)) => current,
            // The grant was dead: removed and announced by the refresh.
            Ok(None) => {
                report.revoked += 1;
                return true;
            }
            Err(e) => {
                tracing::warn!(user = %key.user, team = %key.team_id, error = %e, "sweep: could not refresh");
                return self.failed(&connection, report).await;
            }
        };
        let refreshed = current.version != connection.version;
        if refreshed {
            report.refreshed += 1;
        }
        match self.miro.token_context(&current.access_token).await {
            Ok(_) => {
                report.probed += 1;
                if !refreshed {
                    // Alive and unchanged: look again after another idle spell.
                    let next = next_sweep(now, current.refresh_expires_at, self.config.keep_alive);
                    if let Err(e) = self
                        .store
                        .reschedule_sweep(key, current.version, next)
                        .await
                    {
                        tracing::warn!(user = %key.user, error = %e, "sweep: not rescheduled");
                    }
                }
                true
            }
            // Miro no longer knows the token: revoked, or the app uninstalled.
            Err(MiroError::Rejected { status: 400, .. }) | Err(MiroError::Unauthorized) => {
                self.remove(
                    key,
                    current.version,
                    DisconnectReason::RevokedAtMiro,
                    report,
                )
                .await
            }
            Err(e) => {
                tracing::warn!(user = %key.user, team = %key.team_id, error = %e, "sweep: probe failed");
                self.failed(&current, report).await
            }
        }
    }

    /// Removes a connection Miro no longer honours (revoked, or lapsed
    /// unused) and tells the app; false if the store failed. A connection
    /// replaced meanwhile (a reconnect) is left, with nothing to report.
    async fn remove(
        &self,
        key: &ConnectionKey,
        version: u64,
        reason: DisconnectReason,
        report: &mut SweepReport,
    ) -> bool {
        // Revoked at Miro is retired like a rejected grant (restorable);
        // a lapsed one has nothing left to restore.
        let removed = match reason {
            DisconnectReason::RevokedAtMiro => {
                let now = self.clock.now();
                let keep_until = now + self.config.safety.retired_keep_days * 86_400;
                self.store
                    .retire_connection_at(key, version, REVOKED_AT_MIRO, now, keep_until)
                    .await
            }
            _ => self.store.delete_connection_at(key, version).await,
        };
        match removed {
            Ok(true) => {
                tracing::info!(user = %key.user, team = %key.team_id, ?reason, "sweep: connection removed");
                match reason {
                    DisconnectReason::ExpiredIdle => report.expired += 1,
                    _ => report.revoked += 1,
                }
                self.announce(disconnected(key, reason)).await;
                true
            }
            Ok(false) => true,
            Err(e) => {
                tracing::warn!(user = %key.user, ?reason, error = %e, "sweep: connection not removed");
                report.errors += 1;
                false
            }
        }
    }

    /// A due entry whose connection does not read: forgotten with its
    /// revocation pending (tried again here), lapsed (removed and
    /// announced), gone, or with tokens no key of the ring opens (left to
    /// its TTL, and not looked at again before).
    async fn settle_unreadable(&self, due: &Due, report: &mut SweepReport) -> bool {
        let key = &due.key;
        let now = self.clock.now();
        if let Ok(Some(forgotten)) = self.store.forgotten_connection(key, now).await {
            if self.revoke_forgotten(&forgotten).await.is_err() {
                report.errors += 1;
            }
            let _ = self
                .store
                .reschedule_sweep(key, forgotten.version, now + RETRY_SECONDS)
                .await;
            return true;
        }
        if due.refresh_expires_at.is_some_and(|t| t <= now) {
            return self
                .remove(key, due.version, DisconnectReason::ExpiredIdle, report)
                .await;
        }
        // Alive but unopenable (or gone: then nothing is written). Due again
        // only when it lapses, so it never holds up the others.
        let until = due.refresh_expires_at.unwrap_or(now + RETRY_SECONDS);
        let _ = self.store.reschedule_sweep(key, due.version, until).await;
        true
    }

    /// Keep-alive could not renew it now: if its refresh token ends soon
    /// the app hears so; either way it is looked at again later.
    async fn failed(&self, connection: &Connection, report: &mut SweepReport) -> bool {
        report.errors += 1;
        self.announce_if_expiring(connection, report).await;
        let now = self.clock.now();
        let next = (now + RETRY_SECONDS).min(connection.refresh_expires_at.unwrap_or(i64::MAX));
        self.store
            .reschedule_sweep(&connection.key, connection.version, next.max(now + 60))
            .await
            .unwrap_or(false)
    }

    /// Announces the connection as expiring if its refresh token ends within
    /// the setting's days; the end, if announced.
    async fn announce_if_expiring(
        &self,
        connection: &Connection,
        report: &mut SweepReport,
    ) -> Option<i64> {
        let now = self.clock.now();
        let ends = connection
            .refresh_expires_at
            .filter(|t| t - now <= self.config.keep_alive.ahead_days * DAY)?;
        self.announce(Lifecycle::ConnectionExpiring {
            user_id: connection.key.user.to_string(),
            team_id: connection.key.team_id.clone(),
            expires_at: rfc3339(ends),
        })
        .await;
        report.expiring += 1;
        Some(ends)
    }
}
