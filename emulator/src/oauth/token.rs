//! `POST /v1/oauth/token`: the code exchange and the refresh, with client
//! authentication, single-use expiring codes, PKCE and rotating refresh
//! tokens; and the token faults, which answer instead and consume nothing.

use super::{oauth_error, query_map, s256};
use crate::faults::{padded_json, token_fault};
use crate::reply::{miro_error, status_or};
use crate::state::{AccessRecord, RefreshRecord, Shared, World};
use crate::REFRESH_TOKEN_LIFETIME;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// RFC 7636 §4.1: 43 to 128 unreserved characters.
fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

pub(crate) async fn token(
    State(shared): State<Arc<Shared>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (response, stall) = token_answer(&shared, raw, &headers, &body);
    if stall {
        std::future::pending::<()>().await;
    }
    let is_refresh =
        url::form_urlencoded::parse(&body).any(|(k, v)| k == "grant_type" && v == "refresh_token");
    let delay = shared.world().faults.refresh_answer_delay_ms;
    if let (Some(ms), true) = (delay, is_refresh) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    response
}

/// The token endpoint's answer, and whether to withhold it (a stall).
fn token_answer(
    shared: &Shared,
    raw: Option<String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> (Response, bool) {
    let mut world = shared.world();
    world.token_calls += 1;
    let queued = world.faults.token_queue.pop_front();
    if let Some(fault) = queued.or(world.faults.token_fault) {
        return token_fault(&world, fault);
    }
    if let Some(status) = world.faults.token_status {
        return (
            miro_error(
                status_or(status, StatusCode::SERVICE_UNAVAILABLE),
                "internalError",
                "Injected fault.",
            ),
            false,
        );
    }
    let stall = world.faults.stall_refresh;
    let response = token_grant(shared, &mut world, raw, headers, body);
    let is_refresh =
        url::form_urlencoded::parse(body).any(|(k, v)| k == "grant_type" && v == "refresh_token");
    (response, stall && is_refresh)
}

fn token_grant(
    shared: &Shared,
    world: &mut World,
    raw: Option<String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let query = query_map(&raw);
    let mut form: HashMap<String, String> =
        url::form_urlencoded::parse(body).into_owned().collect();
    if shared.config.accept_query_parameters {
        // As real Miro does (and as Miro's own Node client sends them).
        form.extend(query);
    } else {
        // Real Miro would take these from the query too; this client must never
        // put a secret in a URL, so the emulator refuses it outright.
        if query.keys().any(|k| {
            k == "client_secret" || k == "code" || k == "refresh_token" || k == "code_verifier"
        }) {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "Secrets must not be sent in the URL.",
            );
        }
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return oauth_error(StatusCode::BAD_REQUEST, "Unsupported content type.");
        }
    }
    let config = &shared.config;
    if form.get("client_id") != Some(&config.client_id)
        || form.get("client_secret").map(String::as_str) != Some(world.client_secret(config))
    {
        return oauth_error(StatusCode::UNAUTHORIZED, "Invalid client credentials.");
    }
    let now_ms = world.now_ms();
    let (first_grant, miro_user_id, team_id, install) =
        match form.get("grant_type").map(String::as_str) {
            Some("authorization_code") => {
                let code = form.get("code").cloned().unwrap_or_default();
                let redirect_uri = form.get("redirect_uri").cloned().unwrap_or_default();
                let Some(record) = world.codes.get_mut(&code) else {
                    return oauth_error(StatusCode::BAD_REQUEST, "Invalid authorization code.");
                };
                if record.used
                    || now_ms >= record.issued_at_ms + config.code_lifetime.saturating_mul(1000)
                {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "Authorization code expired or used.",
                    );
                }
                if record.redirect_uri != redirect_uri || record.client_id != config.client_id {
                    return oauth_error(StatusCode::BAD_REQUEST, "Redirect URI mismatch.");
                }
                if let Some(challenge) = &record.challenge {
                    let verified = form
                        .get("code_verifier")
                        .is_some_and(|v| valid_verifier(v) && s256(v) == *challenge);
                    if !verified {
                        record.used = true;
                        return oauth_error(StatusCode::BAD_REQUEST, "Invalid code verifier.");
                    }
                }
                record.used = true;
                (
                    true,
                    record.miro_user_id.clone(),
                    record.team_id.clone(),
                    record.install,
                )
            }
            Some("refresh_token") => {
                let presented = form.get("refresh_token").cloned().unwrap_or_default();
                // Rotation: the old pair stops working at once; a reuse is refused.
                let Some(old) = world.refresh.remove(&presented) else {
                    return oauth_error(StatusCode::BAD_REQUEST, "Invalid refresh token.");
                };
                if let Some(a) = world.access.get_mut(&old.access_token) {
                    a.alive = false;
                }
                if now_ms >= old.expires_at_ms {
                    return oauth_error(StatusCode::BAD_REQUEST, "Refresh token expired.");
                }
                // A refresh keeps the grant's team: the install is per team.
                (false, old.miro_user_id, old.team_id, old.install)
            }
            _ => return oauth_error(StatusCode::BAD_REQUEST, "Unsupported grant_type."),
        };

    let access_token = world.mint("access-");
    let expires_at_ms = config
        .access_token_lifetime
        .map(|l| now_ms + l.saturating_mul(1000));
    world.access.insert(
        access_token.clone(),
        AccessRecord {
            expires_at_ms,
            alive: true,
            miro_user_id: miro_user_id.clone(),
            team_id: team_id.clone(),
            install,
        },
    );
    let mut body = Map::new();
    body.insert("access_token".into(), json!(access_token));
    body.insert("token_type".into(), json!("bearer"));
    body.insert("scope".into(), json!(config.scopes.join(" ")));
    if let Some(lifetime) = config.access_token_lifetime {
        let refresh_token = world.mint("refresh-");
        world.refresh.insert(
            refresh_token.clone(),
            RefreshRecord {
                access_token: access_token.clone(),
                expires_at_ms: now_ms + REFRESH_TOKEN_LIFETIME * 1000,
                miro_user_id: miro_user_id.clone(),
                team_id: team_id.clone(),
                install,
            },
        );
        body.insert("refresh_token".into(), json!(refresh_token));
        body.insert("expires_in".into(), json!(lifetime));
    }
    if let Some(expires_in) = &world.faults.expires_in {
        body.insert("expires_in".into(), expires_in.clone());
    }
    // Team ids are the emulator's own digits; one that is no number stays a string.
    let team: Value = match team_id.parse::<u64>() {
        Ok(n) if config.team_id_as_number => json!(n),
        _ => json!(team_id),
    };
    body.insert("team_id".into(), team);
    if first_grant {
        body.insert("user_id".into(), json!(miro_user_id));
    }
    match world.faults.token_padding {
        Some(padding) => padded_json(StatusCode::OK, Value::Object(body), padding),
        None => (StatusCode::OK, Json(Value::Object(body))).into_response(),
    }
}
