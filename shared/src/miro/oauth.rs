//! What a connection needs of Miro besides tokens: the token context, revocation.

use super::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RevokeBody<'a> {
    access_token: &'a str,
    client_id: &'a str,
    client_secret: &'a str,
}

impl MiroApi {
    /// `POST /v2/oauth/revoke` with a JSON body (the v1 endpoint puts the
    /// token in the URL). 404 means the token was already dead: done.
    pub async fn revoke(&self, access_token: &Secret) -> Result<(), MiroError> {
        let body = RevokeBody {
            access_token: access_token.expose(),
            client_id: &self.client_id,
            client_secret: self
                .client_secret
                .as_ref()
                .map(Secret::expose)
                .unwrap_or_default(),
        };
        let response = self
            .http
            .post(Config::endpoint(&self.base, "/v2/oauth/revoke"))
            .json(&body)
            .send_as("revoke")
            .await
            .map_err(transport)?;
        if response.status().is_success() || response.status() == StatusCode::NOT_FOUND {
            return Ok(());
        }
        Err(failure(response, self.clock.now()).await)
    }

    /// `GET /v1/oauth-token`: the team (and its name) a token is for. A 400
    /// means Miro no longer knows the token.
    pub async fn token_context(&self, access_token: &Secret) -> Result<TokenContext, MiroError> {
        let response = self
            .http
            .get(Config::endpoint(&self.base, "/v1/oauth-token"))
            .bearer_auth(access_token.expose())
            .send_as("token_context")
            .await
            .map_err(transport)?;
        if response.status() != StatusCode::OK {
            return Err(failure(response, self.clock.now()).await);
        }
        let body = read_capped(response)
            .await
            .map_err(|_| unreadable("token context"))?;
        let context: TokenContextBody =
            serde_json::from_slice(&body).map_err(|_| unreadable("token context"))?;
        Ok(TokenContext {
            team_id: context.team.as_ref().and_then(|t| t.id.clone()),
            team_name: context.team.and_then(|t| t.name),
        })
    }
}

/// What Miro's token context says of a token's team.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenContext {
    pub team_id: Option<String>,
    pub team_name: Option<String>,
}

#[derive(Deserialize)]
struct TokenContextBody {
    #[serde(default)]
    team: Option<TeamBody>,
}
