//! Safe against the operator's own mistakes: Miro rejects every refresh with
//! its usual 400/401 body when the app's client secret is wrong, exactly as
//! it rejects one dead grant. One user's rejection is taken at its word (the
//! connection is retired, restorable); rejections of several distinct
//! connections in a short window with no success between open the breaker:
//! connections are kept, requests answer `503 miro_misconfigured`, and the
//! ones retired in that window come back at once. A successful refresh (the
//! probe once the open spell ends) closes it.
//!
//! Also here: `restore`, the operator's way back for retired connections
//! (a refresh with the kept token: those Miro honours come back).

use super::tokens::count_refresh;
use super::Service;
use crate::domain::{next_sweep, ConnectionKey};
use crate::error::Error;
use crate::events::Lifecycle;
use crate::identity::AppUser;
use crate::metrics::{count, Metric};
use crate::oauth::{OAuthError, TokenGrant};
use crate::secret::Secret;
use crate::store::{breaker_entry, BreakerState, Retired};

/// Why a connection was retired: Miro's token endpoint rejected its grant.
pub const GRANT_REJECTED: &str = "grant_rejected";
/// Miro's token context no longer knew its token (the keep-alive probe).
pub const REVOKED_AT_MIRO: &str = "revoked_at_miro";

/// A refresh as the breaker lets it through and judges its answer.
pub(crate) enum Refreshed {
    Renewed(TokenGrant),
    /// The grant is dead: retire the connection.
    Dead,
    /// Not sent (the breaker is open), or rejected while many are: the
    /// app's settings, not the grant. Tokens kept; try after `seconds`.
    HeldBack {
        seconds: i64,
    },
    /// No verdict (429, 5xx, timeout): tokens kept.
    Transient(OAuthError),
}

/// What a rejected refresh means, given every function's recent rejections.
enum Rejection {
    Dead,
    Suspect { retry_after: i64 },
}

/// Which retired connections `restore` tries.
#[derive(Debug, Clone, Default)]
pub struct RestoreFilter {
    /// Retired at or after (epoch seconds).
    pub since: Option<i64>,
    /// Retired before.
    pub until: Option<i64>,
    /// `grant_rejected` or `revoked_at_miro`; any when `None`.
    pub reason: Option<String>,
}

/// What `restore` did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RestoreReport {
    /// Retired connections the filter selected.
    pub tried: usize,
    /// Live again: Miro honoured the kept refresh token.
    pub restored: usize,
    /// Miro rejected the kept token again: still retired.
    pub still_rejected: usize,
    /// Miro or the store failed: left retired, worth another run.
    pub failed: usize,
}

/// The breaker for the operator (`miro-connect-admin breaker`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BreakerView {
    pub open: bool,
    /// When it last opened, if no refresh has succeeded since.
    pub opened_at: Option<i64>,
    pub open_until: Option<i64>,
    /// Connections whose refresh Miro rejected since the last success.
    pub rejected_connections: usize,
}

impl Service {
    /// Refreshes at Miro unless the breaker is open, and judges a rejection
    /// with every function's recent ones.
    pub(crate) async fn refresh_through_breaker(
        &self,
        key: &ConnectionKey,
        refresh_token: &Secret,
    ) -> Refreshed {
        let user = &key.user;
        let breaker = self.breaker_state().await;
        let now = self.clock.now();
        if let Some(until) = breaker.open_until.filter(|t| now < *t) {
            count(Metric::RefreshesHeldBack, 1, &[]);
            return Refreshed::HeldBack {
                seconds: until - now,
            };
        }
        let refreshed = self.oauth.refresh(refresh_token).await;
        count_refresh(&refreshed);
        match refreshed {
            Ok(grant) => {
                if !breaker.is_clear() {
                    self.close_breaker().await;
                }
                Refreshed::Renewed(grant)
            }
            Err(OAuthError::Rejected(reason)) => {
                match self.judge_rejection(key, self.clock.now()).await {
                    Rejection::Dead => {
                        tracing::warn!(user = %user, %reason, "refresh refused: the grant is dead");
                        Refreshed::Dead
                    }
                    Rejection::Suspect { retry_after } => {
                        tracing::warn!(user = %user, %reason, "refresh refused while the breaker is open; connection kept");
                        Refreshed::HeldBack {
                            seconds: retry_after,
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(user = %user, error = %e, "token endpoint did not refresh; tokens kept");
                Refreshed::Transient(e)
            }
        }
    }

    /// The breaker as the store has it; one that cannot be read counts as
    /// closed (a store that fails will refuse the refresh's writes anyway).
    async fn breaker_state(&self) -> BreakerState {
        match self.store.breaker().await {
            Ok(state) => state,
            Err(e) => {
                tracing::warn!(error = %e, "refresh breaker unreadable; taken as closed");
                BreakerState::default()
            }
        }
    }

    /// A refresh succeeded: the token endpoint takes the app's settings.
    async fn close_breaker(&self) {
        match self.store.breaker_clear().await {
            Ok(()) => tracing::info!("refresh breaker closed: Miro accepted a refresh"),
            Err(e) => tracing::warn!(error = %e, "refresh breaker could not be closed"),
        }
    }

    /// Counts the rejection of `key`'s refresh and judges it.
    async fn judge_rejection(&self, key: &ConnectionKey, now: i64) -> Rejection {
        let safety = self.config.safety;
        if safety.breaker_rejections == 0 {
            return Rejection::Dead;
        }
        let state = match self.store.breaker_rejected(&breaker_entry(key), now).await {
            Ok(state) => state,
            Err(e) => {
                // Unsure, and the store failing: keep the connection.
                tracing::warn!(error = %e, "refresh breaker not recorded; connection kept");
                return Rejection::Suspect { retry_after: 5 };
            }
        };
        let since = now - safety.breaker_window_seconds;
        let distinct = state.rejected_since(since).count();
        // Opened before and no refresh has succeeded since: still the app's fault.
        let reopening = state.opened_at.is_some();
        if !reopening && distinct < safety.breaker_rejections as usize {
            return Rejection::Dead;
        }
        let until = state
            .open_until
            .filter(|t| now < *t)
            .unwrap_or(now + safety.breaker_probe_seconds);
        if !state.is_open(now) {
            if let Err(e) = self.store.breaker_open(now, until).await {
                tracing::warn!(error = %e, "refresh breaker could not be opened");
            }
            if reopening {
                tracing::warn!(
                    "refresh breaker open again: Miro still rejects this app's refreshes"
                );
            } else {
                count(Metric::RefreshBreakerOpened, 1, &[]);
                tracing::error!(
                    rejected = distinct,
                    window_seconds = safety.breaker_window_seconds,
                    client_id = %self.config.miro_client_id,
                    redirect_uri = %self.config.miro_redirect_uri,
                    "REFRESH BREAKER OPEN: Miro rejected the token refreshes of several connections \
                     and accepted none. This is almost always the app's own settings, not its users: \
                     check that MIRO_CLIENT_ID and MIRO_CLIENT_SECRET (in the stack's secret) match the \
                     Miro app's credentials and that MIRO_REDIRECT_URI is registered there. Every \
                     connection is kept; requests answer 503 miro_misconfigured until a refresh succeeds."
                );
            }
            // Those retired in this window were rejected for the same reason.
            for entry in state.rejected_since(since) {
                if entry != breaker_entry(key) {
                    self.reinstate_suspect(entry, since, now).await;
                }
            }
        }
        Rejection::Suspect {
            retry_after: until - now,
        }
    }

    /// Puts back, as it was, a connection retired in the breaker's window.
    async fn reinstate_suspect(&self, entry: &str, since: i64, now: i64) {
        let Some(key) = entry
            .split_once('\n')
            .and_then(|(user, team)| Some(ConnectionKey::new(&AppUser::parse(user).ok()?, team)))
        else {
            return;
        };
        let retired = match self.store.retired_connection(&key, now).await {
            Ok(Some(r)) if r.reason == GRANT_REJECTED && r.retired_at >= since => r,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(user = %key.user, error = %e, "retired connection not read back");
                return;
            }
        };
        let mut connection = retired.connection.clone();
        connection.version += 1;
        connection.lease_until = None;
        connection.refresh_retry_at = None;
        connection.sweep_at = now + 60;
        match self
            .store
            .reinstate_connection(&connection, retired.connection.version)
            .await
        {
            Ok(true) => {
                tracing::info!(user = %key.user, team = %key.team_id, "connection kept after all: the breaker opened");
                self.announce_restored(&connection.key, &retired).await;
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(user = %key.user, error = %e, "retired connection not put back")
            }
        }
    }

    /// The operator's `restore`: each retired connection the filter selects
    /// is tried with its kept refresh token; those Miro honours are live
    /// again (with the new tokens), the rest stay retired.
    pub async fn restore(&self, filter: &RestoreFilter) -> Result<RestoreReport, Error> {
        let now = self.clock.now();
        let mut report = RestoreReport::default();
        for retired in self.store.retired_connections(now).await? {
            let selected = filter.since.is_none_or(|t| retired.retired_at >= t)
                && filter.until.is_none_or(|t| retired.retired_at < t)
                && filter.reason.as_ref().is_none_or(|r| *r == retired.reason);
            if !selected {
                continue;
            }
            report.tried += 1;
            let key = &retired.connection.key;
            let Some(refresh_token) = retired.connection.refresh_token.as_ref() else {
                report.still_rejected += 1;
                continue;
            };
            let grant = match self.oauth.refresh(refresh_token).await {
                Ok(grant) => grant,
                Err(OAuthError::Rejected(_)) => {
                    report.still_rejected += 1;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(user = %key.user, error = %e, "restore: token endpoint failed");
                    report.failed += 1;
                    continue;
                }
            };
            let connection = self.renewed(&retired.connection, grant);
            let connection = crate::domain::Connection {
                sweep_at: next_sweep(now, connection.refresh_expires_at, self.config.keep_alive),
                ..connection
            };
            match self
                .store
                .reinstate_connection(&connection, retired.connection.version)
                .await
            {
                Ok(true) => {
                    report.restored += 1;
                    self.announce_restored(key, &retired).await;
                }
                Ok(false) => {
                    // Reconnected meanwhile: the new tokens belong to nobody.
                    let _ = self.revoke_grant(&connection).await;
                }
                Err(e) => {
                    tracing::warn!(user = %key.user, error = %e, "restore: not written");
                    report.failed += 1;
                }
            }
        }
        tracing::info!(
            tried = report.tried,
            restored = report.restored,
            still_rejected = report.still_rejected,
            failed = report.failed,
            "restore done"
        );
        Ok(report)
    }

    /// The breaker as the operator sees it.
    pub async fn breaker(&self) -> Result<BreakerView, Error> {
        let state = self.store.breaker().await?;
        Ok(BreakerView {
            open: state.is_open(self.clock.now()),
            opened_at: state.opened_at,
            open_until: state.open_until,
            rejected_connections: state.rejections.len(),
        })
    }

    /// The operator closes it by hand (the settings are fixed).
    pub async fn reset_breaker(&self) -> Result<(), Error> {
        Ok(self.store.breaker_clear().await?)
    }

    async fn announce_restored(&self, key: &ConnectionKey, retired: &Retired) {
        count(Metric::ConnectionsRestored, 1, &[]);
        self.announce(Lifecycle::Connected {
            user_id: key.user.to_string(),
            team_id: key.team_id.clone(),
            miro_user_id: retired.connection.profile.miro_user_id.clone(),
        })
        .await;
    }
}
