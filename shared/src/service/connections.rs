//! Flow 5: what the app may show of a connection, and disconnecting it.

use super::{miro_failure, Service};
use crate::domain::{Connection, ConnectionStatus};
use crate::error::Error;
use crate::identity::AppUser;
use crate::miro::MiroError;
use crate::oauth::OAuthError;

impl Service {
    /// Flow 5: what the app may show about the connection (never a token).
    pub async fn connection_status(&self, user: &AppUser) -> Result<ConnectionStatus, Error> {
        Ok(
            match self.store.get_connection(user, self.clock.now()).await? {
                Some(c) => ConnectionStatus::from(&c),
                None => ConnectionStatus::disconnected(),
            },
        )
    }

    /// Flow 5: forget at once, then revoke at Miro (which also kills the
    /// refresh token). If Miro cannot be reached, the forgotten connection
    /// keeps its sealed tokens until a later disconnect or a reconnect
    /// revokes them; the user reads as disconnected either way. Idempotent.
    pub async fn disconnect(&self, user: &AppUser) -> Result<(), Error> {
        let now = self.clock.now();
        // Bounded: a refresh may move the version between our read and write.
        let mut gone = false;
        for _ in 0..3 {
            let Some(connection) = self.store.get_connection(user, now).await? else {
                gone = true;
                break;
            };
            if self
                .store
                .forget_connection(user, connection.version)
                .await?
            {
                tracing::info!(user = %user, "Miro disconnected");
                gone = true;
                break;
            }
        }
        if !gone {
            // Never a 204 while the user is still connected.
            return Err(Error::Storage(
                "the connection kept changing while being forgotten".into(),
            ));
        }
        let Some(forgotten) = self.store.forgotten_connection(user, now).await? else {
            return Ok(());
        };
        match self.revoke_grant(&forgotten).await {
            Ok(()) => {
                self.store
                    .delete_connection_at(user, forgotten.version)
                    .await?;
                tracing::info!(user = %user, "grant revoked at Miro");
            }
            Err(e) => {
                tracing::warn!(user = %user, error = %e, "revocation pending; retried by the next disconnect or connect")
            }
        }
        Ok(())
    }

    /// Kills a grant at Miro. An expired access token may no longer be
    /// known to Miro while its refresh token still is: then the grant is
    /// refreshed once and the new access token revoked.
    pub(crate) async fn revoke_grant(&self, connection: &Connection) -> Result<(), Error> {
        let access_live = connection
            .access_expires_at
            .is_none_or(|t| self.clock.now() < t);
        let access_token = match (&connection.refresh_token, access_live) {
            (Some(refresh_token), false) => match self.oauth.refresh(refresh_token).await {
                Ok(grant) => grant.access_token,
                Err(OAuthError::Rejected(_)) => return Ok(()),
                Err(OAuthError::RateLimited {
                    retry_after_seconds,
                }) => {
                    return Err(Error::MiroRateLimited {
                        retry_after_seconds,
                    })
                }
                Err(OAuthError::Unavailable(_)) => {
                    return Err(Error::MiroUnavailable {
                        retry_after_seconds: 2,
                    })
                }
            },
            _ => connection.access_token.clone(),
        };
        match self.miro.revoke(&access_token).await {
            Ok(()) | Err(MiroError::Rejected { .. }) | Err(MiroError::Unauthorized) => Ok(()),
            Err(e) => Err(miro_failure(&connection.user, e)),
        }
    }
}
