//! The bearer token of a REST call, and `GET /v1/oauth-token`: what Miro
//! says about a token (its team, user and scopes).

use crate::reply::miro_error;
use crate::state::{team_name, user_name, Shared, World};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::sync::Arc;

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
}

/// Who makes a REST call: the token, its Miro user and its team.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) token: String,
    pub(crate) miro_user_id: String,
    /// The one team the token works for.
    pub(crate) team_id: String,
    /// The team's install the token came from.
    pub(crate) install: u64,
}

/// The caller if Miro would accept the bearer token, else Miro's 401 message.
pub(crate) fn authenticate(world: &World, headers: &HeaderMap) -> Result<Caller, &'static str> {
    let Some(token) = bearer(headers) else {
        return Err("No access token provided.");
    };
    if !world.access_works(&token) {
        return Err("Invalid or expired access token.");
    }
    let Some(record) = world.access.get(&token) else {
        return Err("Invalid or expired access token.");
    };
    Ok(Caller {
        miro_user_id: record.miro_user_id.clone(),
        team_id: record.team_id.clone(),
        install: record.install,
        token,
    })
}

pub(crate) async fn token_context(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Response {
    let world = shared.world();
    let Ok(caller) = authenticate(&world, &headers) else {
        return miro_error(
            StatusCode::BAD_REQUEST,
            "invalidToken",
            "Invalid token provided",
        );
    };
    let user_id = &caller.miro_user_id;
    let user = json!({ "id": user_id, "name": user_name(user_id), "type": "user" });
    let team = &caller.team_id;
    Json(json!({
        "type": "user",
        "team": { "id": team, "name": team_name(team).unwrap_or_default(), "type": "team" },
        "createdBy": user,
        "user": user,
        "scopes": shared.config.scopes,
    }))
    .into_response()
}
