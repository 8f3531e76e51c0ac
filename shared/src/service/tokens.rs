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
//! lease runs out, the next refresh gets a 4xx, the connection is removed and
//! the user is asked to connect again (README, "Tokens"). Nothing is left
//! that works for the wrong user, and nothing loops.

use super::{Service, REFRESH_TOKEN_LIFETIME_SECONDS};
use crate::domain::Connection;
use crate::error::Error;
use crate::identity::AppUser;
use crate::oauth::{OAuthError, TokenGrant};
use crate::secret::Secret;
use rand::Rng;
use std::time::Duration;

enum Refreshed {
    /// The stored connection after the refresh (`None`: the grant was dead).
    Done(Option<Box<Connection>>),
    /// Another writer replaced the connection first.
    Superseded,
}

/// Longer than the token endpoint's timeout, so a live refresher keeps it.
pub const LEASE_SECONDS: i64 = 30;
const WAIT_STEP_MS: u64 = 100;
/// Waiting for another refresher: about five seconds at most.
const WAIT_STEPS: u32 = 50;

impl Service {
    /// The user's connection with an access token worth using, refreshing it
    /// if due. `stale_version`: Miro refused the token of that version, so it
    /// is refreshed whatever its expiry says. `None`: the user is not (or no
    /// longer) connected.
    pub(crate) async fn usable_connection(
        &self,
        user: &AppUser,
        stale_version: Option<u64>,
    ) -> Result<Option<Connection>, Error> {
        for _ in 0..WAIT_STEPS {
            let now = self.clock.now();
            let Some(connection) = self.store.get_connection(user, now).await? else {
                return Ok(None);
            };
            let due = match stale_version {
                Some(stale) => connection.version == stale,
                None => self.refresh_due(&connection, now),
            };
            if !due {
                return Ok(Some(connection));
            }
            let Some(refresh_token) = connection.refresh_token.clone() else {
                tracing::warn!(user = %user, "token expired and nothing to refresh it with");
                self.store
                    .delete_connection_at(user, connection.version)
                    .await?;
                return Ok(None);
            };
            let holder = uuid::Uuid::new_v4().to_string();
            let lease_until = now + LEASE_SECONDS;
            if self
                .store
                .try_lease(user, connection.version, &holder, lease_until, now)
                .await?
            {
                match self.refresh(connection, &refresh_token, &holder).await? {
                    Refreshed::Done(connection) => return Ok(connection.map(|c| *c)),
                    // A reconnect or a disconnect won: read what is there now.
                    Refreshed::Superseded => continue,
                }
            }
            // Someone else is refreshing: the old token is good until it expires.
            let still_valid = connection.access_expires_at.is_some_and(|t| now < t);
            if stale_version.is_none() && still_valid {
                return Ok(Some(connection));
            }
            let jitter = rand::thread_rng().gen_range(0..WAIT_STEP_MS / 2);
            tokio::time::sleep(Duration::from_millis(WAIT_STEP_MS + jitter)).await;
        }
        tracing::warn!(user = %user, "gave up waiting for another refresh of this connection");
        Err(Error::MiroUnavailable {
            retry_after_seconds: 2,
        })
    }

    fn refresh_due(&self, connection: &Connection, now: i64) -> bool {
        connection
            .access_expires_at
            .is_some_and(|t| now >= t - self.config.refresh_margin_seconds)
    }

    async fn refresh(
        &self,
        connection: Connection,
        refresh_token: &Secret,
        holder: &str,
    ) -> Result<Refreshed, Error> {
        let user = connection.user.clone();
        match self.oauth.refresh(refresh_token).await {
            Ok(grant) => {
                let renewed = self.renewed(&connection, grant);
                // Written before anything else is done with the new tokens.
                if self
                    .store
                    .replace_tokens(&renewed, connection.version, holder)
                    .await?
                {
                    tracing::info!(user = %user, version = renewed.version, "tokens refreshed");
                    return Ok(Refreshed::Done(Some(Box::new(renewed))));
                }
                // The item moved on under the lease (a reconnect or a
                // disconnect): these tokens belong to a grant nobody keeps.
                tracing::warn!(user = %user, "connection replaced during the refresh; its new tokens revoked");
                if let Err(e) = self.revoke_grant(&renewed).await {
                    tracing::warn!(user = %user, error = %e, "revoking the superseded tokens failed");
                }
                Ok(Refreshed::Superseded)
            }
            Err(OAuthError::Rejected(reason)) => {
                if !self
                    .store
                    .delete_connection_at(&user, connection.version)
                    .await?
                {
                    // A reconnect replaced it meanwhile (and revoked this grant).
                    return Ok(Refreshed::Superseded);
                }
                tracing::warn!(user = %user, %reason, "refresh refused: the grant is dead; connection removed");
                Ok(Refreshed::Done(None))
            }
            // Not a verdict on the grant: keep the tokens, free the lease.
            Err(e) => {
                tracing::warn!(user = %user, error = %e, "token endpoint did not refresh; tokens kept");
                self.store.release_lease(&user, holder).await?;
                Err(match e {
                    OAuthError::RateLimited {
                        retry_after_seconds,
                    } => Error::MiroRateLimited {
                        retry_after_seconds,
                    },
                    _ => Error::MiroUnavailable {
                        retry_after_seconds: 5,
                    },
                })
            }
        }
    }

    fn renewed(&self, old: &Connection, grant: TokenGrant) -> Connection {
        let now = self.clock.now();
        let mut profile = old.profile.clone();
        if !grant.scopes.is_empty() {
            profile.scopes = grant.scopes;
        }
        if grant.team_id.is_some() {
            profile.team_id = grant.team_id;
        }
        let refresh_token = grant.refresh_token.or_else(|| old.refresh_token.clone());
        Connection {
            user: old.user.clone(),
            profile,
            access_token: grant.access_token,
            access_expires_at: grant.expires_in.map(|s| now + s as i64),
            // Each refresh restarts the refresh token's 60 days, and the item's TTL with it.
            refresh_expires_at: refresh_token
                .as_ref()
                .map(|_| now + REFRESH_TOKEN_LIFETIME_SECONDS),
            refresh_token,
            version: old.version + 1,
            lease_until: None,
        }
    }
}
