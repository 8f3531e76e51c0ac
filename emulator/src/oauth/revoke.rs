//! `POST /v2/oauth/revoke`: client credentials and the access token in a
//! JSON body; revoking an access token kills its refresh token too.

use super::oauth_error;
use crate::faults::injected_error;
use crate::reply::miro_error;
use crate::state::Shared;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::sync::Arc;

pub(crate) async fn revoke(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let mut world = shared.world();
    if let Some(status) = world.faults.revoke_status {
        return injected_error(status, StatusCode::SERVICE_UNAVAILABLE);
    }
    let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(&body) else {
        return miro_error(
            StatusCode::BAD_REQUEST,
            "invalidParameters",
            "Body must be JSON.",
        );
    };
    let field = |k: &str| {
        req.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    if field("clientId") != shared.config.client_id
        || field("clientSecret") != world.client_secret(&shared.config)
    {
        return oauth_error(StatusCode::UNAUTHORIZED, "Invalid client credentials.");
    }
    if world.revoke(&field("accessToken")) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        miro_error(StatusCode::NOT_FOUND, "notFound", "Token not found.")
    }
}
