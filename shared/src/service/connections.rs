//! Flow 5: a user's connections (one per Miro team), their default, and
//! disconnecting one or all of them.

use super::{miro_failure, Service};
use crate::domain::{default_connection, Connection, ConnectionKey, ConnectionView, Connections};
use crate::error::Error;
use crate::events::{DisconnectReason, Lifecycle};
use crate::identity::AppUser;
use crate::miro::MiroError;
use crate::oauth::OAuthError;
use crate::store::ConnectionList;

impl Service {
    /// Flow 5: what the app may show of the user's connections (never a token).
    pub async fn connections(&self, user: &AppUser) -> Result<Connections, Error> {
        let list = self.store.list_connections(user, self.clock.now()).await?;
        Ok(views(&list))
    }

    /// Boards asked for without a `team_id` go to `team_id` from now on.
    /// The team must be connected.
    pub async fn choose_default(
        &self,
        user: &AppUser,
        team_id: &str,
    ) -> Result<Connections, Error> {
        let mut list = self.store.list_connections(user, self.clock.now()).await?;
        if !list.live.iter().any(|c| c.key.team_id == team_id) {
            return Err(Error::NotConnected);
        }
        self.store
            .set_default_team(user, Some(team_id), false)
            .await?;
        // A disconnect of that team may have run between the read and the
        // write (and found it not yet the default): never answer a team that
        // is gone as the default.
        let now = self.clock.now();
        let key = ConnectionKey::new(user, team_id);
        if self.store.get_connection(&key, now).await?.is_none() {
            let list = self.store.list_connections(user, now).await?;
            let next = list.live.first().map(|c| c.key.team_id.as_str());
            self.store.set_default_team(user, next, false).await?;
            return Err(Error::NotConnected);
        }
        list.default_team = Some(team_id.to_string());
        Ok(views(&list))
    }

    /// Flow 5 for one team: forget at once, then revoke at Miro (which also
    /// kills the refresh token). If Miro cannot be reached, the forgotten
    /// connection keeps its sealed tokens until a later disconnect or a
    /// reconnect revokes them; it reads as disconnected either way. If it
    /// was the default, the oldest remaining connection takes over.
    /// Idempotent.
    pub async fn disconnect(&self, user: &AppUser, team_id: &str) -> Result<(), Error> {
        let key = ConnectionKey::new(user, team_id);
        self.forget(&key).await?;
        let list = self.store.list_connections(user, self.clock.now()).await?;
        if list.default_team.as_deref() == Some(team_id) {
            let next = list.live.first().map(|c| c.key.team_id.as_str());
            self.store.set_default_team(user, next, false).await?;
        }
        if list.retired_teams.iter().any(|t| t == team_id) {
            self.store.erase_retired(&key).await?;
        }
        if let Some(forgotten) = list.forgotten.iter().find(|c| c.key == key) {
            self.revoke_forgotten(forgotten).await?;
        }
        Ok(())
    }

    /// Flow 5 for every team the user connected. Idempotent.
    pub async fn disconnect_all(&self, user: &AppUser) -> Result<(), Error> {
        let list = self.store.list_connections(user, self.clock.now()).await?;
        for connection in &list.live {
            self.forget(&connection.key).await?;
        }
        for team in &list.retired_teams {
            self.store
                .erase_retired(&ConnectionKey::new(user, team))
                .await?;
        }
        self.store.set_default_team(user, None, false).await?;
        let list = self.store.list_connections(user, self.clock.now()).await?;
        for forgotten in &list.forgotten {
            self.revoke_forgotten(forgotten).await?;
        }
        Ok(())
    }

    /// Marks the connection forgotten, whatever refresh moves its version.
    async fn forget(&self, key: &ConnectionKey) -> Result<(), Error> {
        let now = self.clock.now();
        // Bounded: a refresh may move the version between our read and write.
        for _ in 0..3 {
            let Some(connection) = self.store.get_connection(key, now).await? else {
                return Ok(());
            };
            if self
                .store
                .forget_connection(key, connection.version)
                .await?
            {
                tracing::info!(user = %key.user, team = %key.team_id, "Miro disconnected");
                self.announce(disconnected(key, DisconnectReason::UserRequest))
                    .await;
                return Ok(());
            }
        }
        // Never a 204 while the user is still connected.
        Err(Error::Storage(
            "the connection kept changing while being forgotten".into(),
        ))
    }

    /// Revokes a forgotten connection's grant and deletes it; a failure is
    /// left for the next disconnect or reconnect to retry.
    pub(crate) async fn revoke_forgotten(&self, forgotten: &Connection) -> Result<(), Error> {
        let key = &forgotten.key;
        match self.revoke_grant(forgotten).await {
            Ok(()) => {
                self.store
                    .delete_connection_at(key, forgotten.version)
                    .await?;
                tracing::info!(user = %key.user, team = %key.team_id, "grant revoked at Miro");
            }
            Err(e) => {
                tracing::warn!(user = %key.user, team = %key.team_id, error = %e, "revocation pending; retried by the next disconnect or connect")
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
            Err(e) => Err(miro_failure(&connection.key.user, e)),
        }
    }
}

pub(crate) fn disconnected(key: &ConnectionKey, reason: DisconnectReason) -> Lifecycle {
    Lifecycle::Disconnected {
        user_id: key.user.to_string(),
        team_id: key.team_id.clone(),
        reason,
    }
}

/// The list as the API shows it, the default marked.
fn views(list: &ConnectionList) -> Connections {
    let default = default_connection(&list.live, list.default_team.as_deref());
    Connections {
        connections: list
            .live
            .iter()
            .map(|c| ConnectionView::of(c, default.is_some_and(|d| d.key == c.key)))
            .collect(),
    }
}
