//! Flows 1–3: start an authorization, take Miro's redirect, complete it for
//! the user (and the browser) that started it.

use super::{ErrorBody, Service, REFRESH_TOKEN_LIFETIME_SECONDS};
use crate::clock::rfc3339;
use crate::domain::{
    default_connection, first_version, is_miro_id, next_sweep, AuthorizationRequest, Board,
    BoardRequest, Completion, Connection, ConnectionKey, ConnectionProfile, ConnectionView,
    ContentSummary, FlowStarted, Invitations, PendingAuthorization,
};
use crate::error::Error;
use crate::events::Lifecycle;
use crate::identity::AppUser;
use crate::oauth::{pkce_verifier, OAuthError, TokenGrant};
use crate::secret::{looks_like_random_secret, Secret};
use crate::service::{Consent, Deadline};
use crate::store::Taken;
use serde::{Deserialize, Serialize};
use url::Url;

const MAX_RETURN_TO_LEN: usize = 2048;
const MAX_CODE_LEN: usize = 1024;

/// `POST /miro/authorizations`'s optional body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartAuthorization {
    #[serde(default)]
    pub return_to: Option<String>,
    #[serde(default)]
    pub team_id: Option<String>,
}

/// `POST /miro/authorizations`' answer.
pub type AuthorizationStarted = FlowStarted;

/// Live flows (pending authorizations) one user may hold.
pub const MAX_LIVE_FLOWS: u32 = 20;

/// Miro's redirect to the callback, as far as it matters here.
#[derive(Debug, Default)]
pub struct CallbackParams {
    pub state: Option<Secret>,
    pub code: Option<Secret>,
    pub error: Option<String>,
}

#[derive(Debug, PartialEq)]
pub enum CallbackOutcome {
    /// Back to the app: with `miro_authorization=<completion id>`, or with
    /// `miro_error=<code>` where the state was known.
    Redirect(Url),
    /// The state was missing or unknown: nowhere safe to send the browser.
    Refused,
}

/// `POST /miro/authorizations/complete`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteAuthorization {
    pub completion: String,
    /// The secret handed out when the flow started. Missing or wrong: the
    /// completion is refused and destroyed.
    #[serde(default)]
    pub flow_secret: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Completed {
    /// The connection this consent made (or renewed), for the team the user
    /// picked on Miro's page.
    pub connection: ConnectionView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub board: Option<Board>,
    /// What became of the board's content, when it carried any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<ContentSummary>,
    /// What became of the board's invitations, when it asked for members.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invitations: Option<Invitations>,
    /// Set when the board asked for before connecting could not be created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub board_error: Option<ErrorBody>,
}

impl Service {
    /// Flow 1: remember who asked and where to return, hand out Miro's URL.
    pub async fn start_authorization(
        &self,
        user: &AppUser,
        start: StartAuthorization,
    ) -> Result<AuthorizationStarted, Error> {
        let return_to = match start.return_to {
            Some(r) => self.vet_return_to(&r)?,
            None => self.config.default_return_to.clone(),
        };
        if let Some(team) = &start.team_id {
            if !is_miro_id(team) {
                return Err(Error::InvalidParameter("team_id"));
            }
        }
        self.pend(user, return_to.to_string(), start.team_id, None, None)
            .await
    }

    /// Stores a pending authorization and hands out Miro's URL and the flow
    /// secret. A user holds at most [`MAX_LIVE_FLOWS`] live ones.
    async fn pend(
        &self,
        user: &AppUser,
        return_to: String,
        team_id: Option<String>,
        intent: Option<BoardRequest>,
        intent_key: Option<&str>,
    ) -> Result<FlowStarted, Error> {
        let now = self.clock.now();
        let expires_at = now + self.config.authorization_ttl_seconds;
        if let Some(until) = self
            .store
            .admit_flow(user, expires_at, now, MAX_LIVE_FLOWS)
            .await?
        {
            tracing::warn!(user = %user, "too many live authorizations");
            return Err(Error::TooManyAuthorizations {
                retry_after_seconds: (until - now).clamp(1, 3600) as u64,
            });
        }
        let state = Secret::random();
        let flow_secret = Secret::random();
        let authorize_url = self.oauth.authorize_url(&state, team_id.as_deref());
        let request = AuthorizationRequest {
            user: user.clone(),
            flow_secret_hash: flow_secret.digest(),
            return_to,
            team_id,
            intent_key: intent.as_ref().and(intent_key).map(str::to_string),
            intent,
        };
        self.store
            .put_pending(&PendingAuthorization {
                state_hash: state.digest(),
                request,
                expires_at,
            })
            .await?;
        tracing::info!(user = %user, "authorization started");
        Ok(FlowStarted {
            authorize_url: authorize_url.to_string(),
            expires_at: rfc3339(expires_at),
            flow_secret: flow_secret.expose().to_string(),
        })
    }

    /// A fresh authorization that carries `intent`, as the 401 that asks for it.
    pub(crate) async fn authorization_required(
        &self,
        user: &AppUser,
        return_to: Option<String>,
        intent: Option<BoardRequest>,
        intent_key: Option<&str>,
    ) -> Error {
        let team_id = intent.as_ref().and_then(|i| i.team_id.clone());
        let return_to = return_to.unwrap_or_else(|| self.config.default_return_to.to_string());
        match self
            .pend(user, return_to, team_id, intent, intent_key)
            .await
        {
            Ok(started) => Error::AuthorizationRequired(Some(Box::new(started))),
            Err(e) => e,
        }
    }

    fn vet_return_to(&self, raw: &str) -> Result<Url, Error> {
        if raw.len() > MAX_RETURN_TO_LEN {
            return Err(Error::ReturnToNotAllowed);
        }
        let url = Url::parse(raw).map_err(|_| Error::ReturnToNotAllowed)?;
        // A planted `miro_error` would let an attacker's completion survive the
        // user's page; a planted `miro_authorization` would be completed by it.
        let planted = url
            .query_pairs()
            .any(|(k, _)| k == "miro_authorization" || k == "miro_error");
        let allowed = matches!(url.scheme(), "https" | "http")
            && !planted
            && url.username().is_empty()
            && url.password().is_none()
            && self.config.allowed_return_origins.contains(&url.origin());
        if !allowed {
            return Err(Error::ReturnToNotAllowed);
        }
        Ok(url)
    }

    /// Flow 2: consume the pending authorization once, park the code under a
    /// fresh completion id and send the browser back to the app.
    pub async fn receive_callback(&self, params: CallbackParams) -> Result<CallbackOutcome, Error> {
        let Some(state) = params
            .state
            .filter(|s| looks_like_random_secret(s.expose()))
        else {
            tracing::warn!("callback without a well-formed state");
            return Ok(CallbackOutcome::Refused);
        };
        let now = self.clock.now();
        let pending = match self.store.take_pending(&state.digest(), now).await? {
            Taken::Fresh(p) => p,
            Taken::Expired(p) => {
                tracing::warn!(user = %p.request.user, "callback for an expired authorization");
                return Ok(back_with(&p.request.return_to, "miro_error", "expired"));
            }
            Taken::Missing => {
                tracing::warn!("callback for an unknown or used state");
                return Ok(CallbackOutcome::Refused);
            }
        };
        let request = pending.request;
        if let Some(error) = params.error {
            let reason = match error.as_str() {
                "access_denied" => "access_denied",
                _ => "authorization_failed",
            };
            tracing::info!(user = %request.user, reason, "Miro did not authorize");
            return Ok(back_with(&request.return_to, "miro_error", reason));
        }
        let Some(code) = params
            .code
            .filter(|c| !c.expose().is_empty() && c.expose().len() <= MAX_CODE_LEN)
        else {
            tracing::warn!(user = %request.user, "callback without a usable code");
            return Ok(back_with(
                &request.return_to,
                "miro_error",
                "authorization_failed",
            ));
        };
        let completion = Secret::random();
        let return_to = request.return_to.clone();
        let user = request.user.clone();
        self.store
            .put_completion(&Completion {
                completion_hash: completion.digest(),
                code,
                code_verifier: pkce_verifier(&state),
                request,
                expires_at: now + self.config.authorization_ttl_seconds,
            })
            .await?;
        tracing::info!(user = %user, "authorization received; waiting for completion");
        Ok(back_with(
            &return_to,
            "miro_authorization",
            completion.expose(),
        ))
    }

    /// Flow 3: only the user who started the flow may finish it. Exchanges
    /// the code, stores the connection and runs the intent, once.
    pub async fn complete_authorization(
        &self,
        user: &AppUser,
        completion: &str,
        flow_secret: Option<&str>,
    ) -> Result<Completed, Error> {
        if !looks_like_random_secret(completion) {
            return Err(Error::InvalidCompletion);
        }
        let hash = Secret::new(completion).digest();
        let parked = match self.store.take_completion(&hash, self.clock.now()).await? {
            Taken::Fresh(c) => c,
            Taken::Expired(_) | Taken::Missing => return Err(Error::InvalidCompletion),
        };
        if parked.request.user != *user {
            tracing::warn!(
                user = %user,
                started_by = %parked.request.user,
                "completion presented by another user; destroyed"
            );
            return Err(Error::CompletionForbidden);
        }
        let secret_matches =
            flow_secret.is_some_and(|s| Secret::new(s).digest() == parked.request.flow_secret_hash);
        if !secret_matches {
            tracing::warn!(user = %user, "completion presented without its flow secret; destroyed");
            return Err(Error::CompletionForbidden);
        }
        let exchanged = self
            .oauth
            .exchange_code(&parked.code, &parked.code_verifier)
            .await;
        let grant = match exchanged {
            Ok(grant) => grant,
            Err(OAuthError::Rejected(reason)) => {
                tracing::warn!(user = %user, %reason, "code exchange refused");
                let request = parked.request;
                return Err(self
                    .authorization_required(
                        user,
                        Some(request.return_to),
                        request.intent,
                        request.intent_key.as_deref(),
                    )
                    .await);
            }
            Err(e) => {
                // The code is likely still good: park it again so a retry can use it.
                tracing::warn!(user = %user, error = %e, "code exchange did not happen; code parked again");
                self.store.put_completion(&parked).await?;
                return Err(match e {
                    OAuthError::RateLimited {
                        retry_after_seconds,
                    } => Error::MiroRateLimited {
                        retry_after_seconds,
                    },
                    _ => Error::MiroUnavailable {
                        retry_after_seconds: 2,
                    },
                });
            }
        };
        let connection = self.connection_from_grant(user, grant).await?;
        let key = &connection.key;
        let default_team = self.default_after_connecting(user, &key.team_id).await;
        let replaced = self.store.put_connection(&connection).await?;
        tracing::info!(user = %user, team = %key.team_id, "Miro connected");
        self.announce(Lifecycle::Connected {
            user_id: user.to_string(),
            team_id: key.team_id.clone(),
            miro_user_id: connection.profile.miro_user_id.clone(),
        })
        .await;
        if let Some(old) = replaced {
            // Best effort: the replaced grant must not live on at Miro.
            match self.revoke_grant(&old).await {
                Ok(()) => tracing::info!(user = %user, "replaced connection revoked"),
                Err(e) => {
                    tracing::warn!(user = %user, error = %e, "replaced connection not revoked")
                }
            }
        }

        let mut completed = Completed {
            connection: ConnectionView::of(&connection, default_team == connection.key.team_id),
            board: None,
            items: None,
            invitations: None,
            board_error: None,
        };
        if let Some(intent) = parked.request.intent {
            // Under the request's own key: the same request repeated after
            // the consent replays this board.
            let outcome = Box::pin(self.create_board_once(
                user,
                parked.request.intent_key.as_deref(),
                intent,
                Deadline::no_waiting(),
                // A flow started here could never be used: its secret
                // would not reach the app.
                Consent::ReportOnly,
                Some(connection.clone()),
            ))
            .await;
            match super::boards::counted(outcome) {
                Ok(created) => {
                    completed.board = Some(created.board);
                    completed.items = created.items;
                    completed.invitations = created.invitations;
                }
                Err(e) => completed.board_error = Some(ErrorBody::from(&e)),
            }
        }
        Ok(completed)
    }

    /// Which team boards without one go to once a connection for `team` is
    /// stored: the one they went to so far (a choice whose connection is
    /// gone gives way to the connection that served in its place, so a
    /// reconnect never takes the default back), else `team`, the first.
    /// Best effort: the code is spent, so nothing here may fail the connect.
    async fn default_after_connecting(&self, user: &AppUser, team: &str) -> String {
        let list = match self.store.list_connections(user, self.clock.now()).await {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!(user = %user, error = %e, "connections not listed; the default left as it is");
                return String::new();
            }
        };
        if let Some(other) = list.default_team.as_deref().filter(|d| *d != team) {
            if !list.live.iter().any(|c| c.key.team_id == other) {
                // Another team's, whose connection is not (or not yet: a
                // connect at this very moment) there: left as it is.
                return other.to_string();
            }
        }
        let chosen = default_connection(&list.live, list.default_team.as_deref())
            .map_or(team, |c| c.key.team_id.as_str())
            .to_string();
        if list.default_team.as_deref() == Some(chosen.as_str()) {
            return chosen;
        }
        // With none set yet, only if still none: two first connects at once
        // must not both answer `default: true`.
        let first = list.default_team.is_none();
        match self
            .store
            .set_default_team(user, Some(&chosen), first)
            .await
        {
            Ok(true) => chosen,
            // Another connect set it first: that one stands.
            Ok(false) => match self.store.list_connections(user, self.clock.now()).await {
                Ok(list) => list.default_team.unwrap_or(chosen),
                Err(e) => {
                    tracing::warn!(user = %user, error = %e, "connections not listed again");
                    String::new()
                }
            },
            Err(e) => {
                tracing::warn!(user = %user, error = %e, "default team not recorded");
                chosen
            }
        }
    }

    /// The connection a grant makes: keyed by the team Miro named in the
    /// token response. Miro's token context adds the team's name (best
    /// effort), and the team itself should the token response lack it.
    async fn connection_from_grant(
        &self,
        user: &AppUser,
        grant: TokenGrant,
    ) -> Result<Connection, Error> {
        let now = self.clock.now();
        let context = match self.miro.token_context(&grant.access_token).await {
            Ok(context) => Some(context),
            Err(e) => {
                tracing::warn!(user = %user, error = %e, "token context unavailable; team name unknown");
                None
            }
        };
        let team_id = grant
            .team_id
            .or_else(|| context.as_ref().and_then(|c| c.team_id.clone()))
            .filter(|t| is_miro_id(t));
        let Some(team_id) = team_id else {
            // Nowhere to keep it: it must not live on at Miro either.
            tracing::error!(user = %user, "Miro named no team for the grant; revoking it");
            if let Err(e) = self.miro.revoke(&grant.access_token).await {
                tracing::warn!(user = %user, error = %e, "revoking the teamless grant failed");
            }
            return Err(Error::MiroUnavailable {
                retry_after_seconds: 2,
            });
        };
        let refresh_expires_at = grant
            .refresh_token
            .as_ref()
            .map(|_| now + REFRESH_TOKEN_LIFETIME_SECONDS);
        Ok(Connection {
            key: ConnectionKey::new(user, &team_id),
            profile: ConnectionProfile {
                miro_user_id: grant.miro_user_id,
                team_name: context.and_then(|c| c.team_name),
                scopes: grant.scopes,
                connected_at: now,
            },
            access_token: grant.access_token,
            access_expires_at: grant.expires_in.map(|s| now + s as i64),
            refresh_expires_at,
            refresh_token: grant.refresh_token,
            version: first_version(),
            lease_until: None,
            refresh_retry_at: None,
            sweep_at: next_sweep(now, refresh_expires_at, self.config.keep_alive),
        })
    }
}

fn back_with(return_to: &str, key: &str, value: &str) -> CallbackOutcome {
    match Url::parse(return_to) {
        Ok(mut url) => {
            url.query_pairs_mut().append_pair(key, value);
            CallbackOutcome::Redirect(url)
        }
        Err(_) => CallbackOutcome::Refused,
    }
}
