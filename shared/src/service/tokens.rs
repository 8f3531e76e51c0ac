//! Keeping a connection's tokens alive: refresh ahead of expiry, with at most
//! one refresh per connection at a time across every Lambda.
//!
//! Miro rotates on every refresh and kills the old pair at once, so two
//! concurrent refreshes would destroy the connection. The refresher first
//! takes a lease on the connection item (a conditional update on its
//! version); everyone else keeps using the still-valid access token or waits,
//! bounded, for the new version. New tokens are written before they are used.
//!
//! If a refresher dies after Miro rotated but before the write, the new
//! tokens are gone with it and the stored refresh token is dead: once the
//! lease runs out, the next refresh gets a 4xx, the connection is retired and
//! the user is asked to connect again (README, "Tokens"). Nothing is left
//! that works for the wrong user, and nothing loops.
//!
//! A rejection is judged with every function's recent ones first (the
//! breaker, `service::breaker`), and a transient failure leaves a cooldown
//! on the item, so that a sick token endpoint is not asked again by every
//! request.

use super::breaker::{Refreshed, GRANT_REJECTED};
use super::connections::disconnected;
use super::{Service, REFRESH_TOKEN_LIFETIME_SECONDS};
use crate::domain::{next_sweep, Connection, ConnectionKey};
use crate::error::Error;
use crate::events::DisconnectReason;
use crate::metrics::{count, Dimension, Metric};
use crate::oauth::{OAuthError, TokenGrant};
use crate::token_protocol::{Answer, Outcome, Seen, Settings, Step, TokenRefresh, WAIT_ROUNDS};
use rand::Rng;
use std::time::Duration;

pub use crate::token_protocol::LEASE_SECONDS;

const WAIT_STEP_MS: u64 = 100;
const DAY: i64 = 86_400;

impl Service {
    /// The connection with an access token worth using, refreshing it if
    /// due. `stale_version`: Miro refused the token of that version, so it
    /// is refreshed whatever its expiry says. `first_read`: the connection as
    /// a consistent read just found it, which saves the first read. `None`:
    /// the user is not (or no longer) connected in that team.
    ///
    /// Every decision is [`TokenRefresh`]'s (`crate::token_protocol`, the
    /// machine the model check runs); this only does the I/O each step asks for.
    pub(crate) async fn usable_connection(
        &self,
        key: &ConnectionKey,
        stale_version: Option<u64>,
        mut first_read: Option<Connection>,
    ) -> Result<Option<Connection>, Error> {
        let user = &key.user;
        let settings = Settings {
            margin_seconds: self.config.refresh_margin_seconds,
            lease_seconds: LEASE_SECONDS,
            max_rounds: WAIT_ROUNDS,
        };
        let mut machine = TokenRefresh::new(settings, stale_version);
        // The connection read last, and the one a refresh produced.
        let mut read: Option<Connection> = None;
        let mut renewed: Option<Connection> = None;
        let mut holder = String::new();
        let mut transient: Option<OAuthError> = None;
        // Seconds until the breaker lets refreshes through again.
        let mut held_back: Option<i64> = None;
        let mut step = machine.step();
        loop {
            step = match step {
                Step::Read => {
                    let now = self.clock.now();
                    read = match first_read.take() {
                        Some(known) => Some(known),
                        None => self.store.get_connection(key, now).await?,
                    };
                    machine.read(read.as_ref().map(seen), now)
                }
                Step::DeleteExhausted { version } => {
                    tracing::warn!(user = %user, "token expired and nothing to refresh it with");
                    if self.store.delete_connection_at(key, version).await? {
                        self.announce(disconnected(key, DisconnectReason::ExpiredIdle))
                            .await;
                    }
                    machine.exhausted_deleted()
                }
                Step::TryLease {
                    version,
                    until,
                    now,
                } => {
                    holder = uuid::Uuid::new_v4().to_string();
                    let taken = self
                        .store
                        .try_lease(key, version, &holder, until, now)
                        .await?;
                    machine.leased(taken)
                }
                Step::Refresh { .. } => {
                    let Some(connection) = read.as_ref() else {
                        return Ok(None);
                    };
                    let Some(refresh_token) = connection.refresh_token.as_ref() else {
                        return Ok(None);
                    };
                    match self.refresh_through_breaker(key, refresh_token).await {
                        Refreshed::Renewed(grant) => {
                            renewed = Some(self.renewed(connection, grant));
                            machine.refreshed(Answer::Renewed)
                        }
                        Refreshed::Dead => machine.refreshed(Answer::Dead),
                        Refreshed::HeldBack { seconds } => {
                            held_back = Some(seconds);
                            machine.refreshed(Answer::Transient)
                        }
                        Refreshed::Transient(e) => {
                            transient = Some(e);
                            machine.refreshed(Answer::Transient)
                        }
                    }
                }
                Step::WriteTokens { expected, .. } => {
                    let Some(new) = renewed.as_ref() else {
                        return Ok(None);
                    };
                    // Written before anything else is done with the new tokens.
                    let landed = self.store.replace_tokens(new, expected, &holder).await?;
                    machine.tokens_written(landed)
                }
                Step::RevokeRenewed => {
                    // The item moved on under the lease (a reconnect or a
                    // disconnect): these tokens belong to a grant nobody keeps.
                    tracing::warn!(user = %user, "connection replaced during the refresh; its new tokens revoked");
                    if let Some(superseded) = renewed.take() {
                        if let Err(e) = self.revoke_grant(&superseded).await {
                            tracing::warn!(user = %user, error = %e, "revoking the superseded tokens failed");
                        }
                    }
                    machine.renewed_revoked()
                }
                Step::DeleteDead { version } => {
                    // Retired, not erased: a rejection that was the app's
                    // fault (its settings) can be undone (`restore`).
                    // False: a reconnect or a disconnect replaced it meanwhile.
                    let now = self.clock.now();
                    let keep_until = now + self.config.safety.retired_keep_days * DAY;
                    let retired = self
                        .store
                        .retire_connection_at(key, version, GRANT_REJECTED, now, keep_until)
                        .await?;
                    if retired {
                        tracing::warn!(user = %user, "the grant is dead; connection retired");
                        count(Metric::ConnectionsRetired, 1, &[]);
                        self.announce(disconnected(key, DisconnectReason::GrantRejected))
                            .await;
                    }
                    machine.dead_deleted(retired)
                }
                Step::ReleaseLease => {
                    // After a transient failure nobody refreshes this
                    // connection again for a while, a 429 as long as Miro
                    // asks (an open breaker holds every refresh back itself).
                    let cooldown = match &transient {
                        Some(OAuthError::RateLimited {
                            retry_after_seconds,
                        }) => i64::try_from(*retry_after_seconds).unwrap_or(i64::MAX),
                        Some(_) => self.config.safety.refresh_cooldown_seconds,
                        None => 0,
                    };
                    let retry_at =
                        (cooldown > 0).then(|| self.clock.now().saturating_add(cooldown));
                    self.store.release_lease(key, &holder, retry_at).await?;
                    machine.lease_released()
                }
                Step::Wait => {
                    // Someone else is refreshing: read again in a moment.
                    let jitter = rand::thread_rng().gen_range(0..WAIT_STEP_MS / 2);
                    tokio::time::sleep(Duration::from_millis(WAIT_STEP_MS + jitter)).await;
                    machine.waited()
                }
                Step::Done(outcome) => {
                    return match outcome {
                        Outcome::UseRead => Ok(read),
                        Outcome::UseRenewed => {
                            if let Some(new) = &renewed {
                                tracing::info!(user = %user, version = new.version, "tokens refreshed");
                            }
                            Ok(renewed)
                        }
                        Outcome::NotConnected => Ok(None),
                        Outcome::MiroTransient => Err(match (held_back, transient) {
                            (Some(seconds), _) => Error::MiroMisconfigured {
                                retry_after_seconds: seconds.max(1) as u64,
                            },
                            (
                                None,
                                Some(OAuthError::RateLimited {
                                    retry_after_seconds,
                                }),
                            ) => Error::MiroRateLimited {
                                retry_after_seconds,
                            },
                            _ => Error::MiroUnavailable {
                                retry_after_seconds: 5,
                            },
                        }),
                        Outcome::CoolingDown => {
                            count(Metric::RefreshesHeldBack, 1, &[]);
                            let until = read.as_ref().and_then(|c| c.refresh_retry_at);
                            let wait = until.map_or(1, |t| t - self.clock.now()).max(1);
                            Err(Error::MiroUnavailable {
                                retry_after_seconds: wait as u64,
                            })
                        }
                        Outcome::GaveUp => {
                            tracing::warn!(user = %user, "gave up waiting for another refresh of this connection");
                            Err(Error::MiroUnavailable {
                                retry_after_seconds: 2,
                            })
                        }
                    };
                }
            };
        }
    }

    pub(crate) fn renewed(&self, old: &Connection, grant: TokenGrant) -> Connection {
        let now = self.clock.now();
        let mut profile = old.profile.clone();
        if !grant.scopes.is_empty() {
            profile.scopes = grant.scopes;
        }
        let refresh_token = grant.refresh_token.or_else(|| old.refresh_token.clone());
        // Each refresh restarts the refresh token's 60 days, and the item's TTL with it.
        let refresh_expires_at = refresh_token
            .as_ref()
            .map(|_| now + REFRESH_TOKEN_LIFETIME_SECONDS);
        Connection {
            // A refresh keeps the connection's team whatever the answer says:
            // the team is the item's key.
            key: old.key.clone(),
            profile,
            access_token: grant.access_token,
            access_expires_at: grant.expires_in.map(|s| now + s as i64),
            refresh_expires_at,
            refresh_token,
            version: old.version + 1,
            lease_until: None,
            refresh_retry_at: None,
            sweep_at: next_sweep(now, refresh_expires_at, self.config.keep_alive),
        }
    }
}

/// `TokenRefreshes`, and `TokenRefreshFailures` by whether the grant is
/// dead or may still be good (`crate::metrics`).
pub(crate) fn count_refresh(refreshed: &Result<TokenGrant, OAuthError>) {
    count(Metric::TokenRefreshes, 1, &[]);
    let reason = match refreshed {
        Ok(_) => return,
        Err(OAuthError::Rejected(_)) => "dead",
        Err(_) => "transient",
    };
    count(
        Metric::TokenRefreshFailures,
        1,
        &[(Dimension::Reason, reason)],
    );
}

/// What the protocol needs to know of a connection read.
fn seen(connection: &Connection) -> Seen {
    Seen {
        version: connection.version,
        access_expires_at: connection.access_expires_at,
        has_refresh_token: connection.refresh_token.is_some(),
        retry_at: connection.refresh_retry_at,
    }
}
