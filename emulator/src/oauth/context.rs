//! The bearer token of a REST call, and `GET /v1/oauth-token`: what Miro
//! says about a token (its team, user and scopes).

use crate::reply::miro_error;
use crate::state::{user_name, Shared, World};
use crate::{MIRO_USER_ID, TEAM_ID, TEAM_NAME};
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

/// The access token and its Miro user if Miro would accept it, else Miro's
/// 401 message.
pub(crate) fn authenticate(
    world: &World,
    headers: &HeaderMap,
) -> Result<(String, String), &'static str> {
    let Some(token) = bearer(headers) else {
        return Err("No access token provided.");
    };
    if !world.access_works(&token) {
        return Err("Invalid or expired access token.");
    }
    let user = world
        .access
        .get(&token)
        .map(|a| a.miro_user_id.clone())
        .unwrap_or_else(|| MIRO_USER_ID.to_string());
    Ok((token, user))
}

pub(crate) async fn token_context(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Response {
    let world = shared.world();
    let Ok((_, user_id)) = authenticate(&world, &headers) else {
        return miro_error(
            StatusCode::BAD_REQUEST,
            "invalidToken",
            "Invalid token provided",
        );
    };
    let user = json!({ "id": user_id, "name": user_name(&user_id), "type": "user" });
    Json(json!({
        "type": "user",
        "team": { "id": TEAM_ID, "name": TEAM_NAME, "type": "team" },
        "createdBy": user,
        "user": user,
        "scopes": shared.config.scopes,
    }))
    .into_response()
}
