//! `POST /v2/boards`: Miro's validation, rate limit and bodies, with
//! injectable faults.

use crate::faults::padded_json;
use crate::oauth::authenticate;
use crate::reply::{iso8601, miro_error, status_or, with_headers};
use crate::state::{user_name, RateWindow, Shared, World};
use crate::{BoardFault, BoardRecord, PROJECT_ID, TEAM_ID, TEAM_NAME};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rand::RngCore;
use serde_json::{json, Map, Value};
use std::sync::Arc;

const BOARD_FIELDS: [&str; 5] = ["name", "description", "teamId", "projectId", "policy"];

fn enum_field(obj: &Map<String, Value>, key: &str, allowed: &[&str]) -> Result<(), String> {
    match obj.get(key) {
        None => Ok(()),
        Some(Value::String(s)) if allowed.contains(&s.as_str()) => Ok(()),
        Some(_) => Err(format!("{key} must be one of {}", allowed.join(", "))),
    }
}

fn object<'a>(v: &'a Value, key: &str, allowed: &[&str]) -> Result<&'a Map<String, Value>, String> {
    let Value::Object(obj) = v else {
        return Err(format!("{key} must be an object"));
    };
    if let Some(unknown) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!("Unknown field {unknown}"));
    }
    Ok(obj)
}

/// Miro's rules for `POST /v2/boards` (`docs/miro.md`, "Boards").
fn validate_board(body: &Value) -> Result<(), String> {
    let obj = object(body, "body", &BOARD_FIELDS)?;
    if let Some(name) = obj.get("name") {
        let n = name
            .as_str()
            .ok_or("name must be a string")?
            .chars()
            .count();
        if !(1..=60).contains(&n) {
            return Err("name must be 1 to 60 characters".into());
        }
    }
    if let Some(d) = obj.get("description") {
        if d.as_str()
            .ok_or("description must be a string")?
            .chars()
            .count()
            > 300
        {
            return Err("description must be at most 300 characters".into());
        }
    }
    if let Some(policy) = obj.get("policy") {
        let policy = object(policy, "policy", &["permissionsPolicy", "sharingPolicy"])?;
        if let Some(p) = policy.get("permissionsPolicy") {
            let p = object(
                p,
                "permissionsPolicy",
                &[
                    "collaborationToolsStartAccess",
                    "copyAccess",
                    "sharingAccess",
                ],
            )?;
            enum_field(
                p,
                "collaborationToolsStartAccess",
                &["all_editors", "board_owners_and_coowners"],
            )?;
            enum_field(
                p,
                "copyAccess",
                &["anyone", "team_members", "team_editors", "board_owner"],
            )?;
            enum_field(
                p,
                "sharingAccess",
                &["team_members_with_editing_rights", "owner_and_coowners"],
            )?;
        }
        if let Some(s) = policy.get("sharingPolicy") {
            let s = object(
                s,
                "sharingPolicy",
                &[
                    "access",
                    "inviteToAccountAndBoardLinkAccess",
                    "organizationAccess",
                    "teamAccess",
                ],
            )?;
            enum_field(s, "access", &["private", "view", "edit", "comment"])?;
            enum_field(
                s,
                "inviteToAccountAndBoardLinkAccess",
                &["viewer", "commenter", "editor", "no_access"],
            )?;
            enum_field(
                s,
                "organizationAccess",
                &["private", "view", "comment", "edit"],
            )?;
            enum_field(s, "teamAccess", &["private", "view", "comment", "edit"])?;
        }
    }
    Ok(())
}

pub(crate) async fn create_board(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (mut response, fault) = board_answer(&shared, &headers, &body);
    match fault {
        Some(BoardFault::SlowAfter(ms)) => {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await
        }
        Some(BoardFault::DropAfter) => {
            // Start the body, then fail it: the connection ends mid-answer.
            let (mut parts, _) = response.into_parts();
            parts.headers.remove(header::CONTENT_LENGTH);
            let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(Bytes::from_static(b"{\"id\":")),
                Err(std::io::Error::other("connection dropped")),
            ];
            let body = axum::body::Body::from_stream(futures_util::stream::iter(chunks));
            response = Response::from_parts(parts, body);
        }
        _ => {}
    }
    response
}

/// Miro's rate-limit headers for the current window, and whether it still
/// has room for this request. A window starts at the first request after
/// the previous one ended (not at a multiple of its length on the wall
/// clock), so a test never starts at the tail of a window.
fn rate_limit(shared: &Shared, world: &mut World) -> (bool, Vec<(&'static str, String)>) {
    let Some((limit, window)) = shared.config.board_rate_limit else {
        return (true, vec![]);
    };
    let window_ms = window.saturating_mul(1000);
    let now_ms = world.now_ms();
    let ended = world
        .rate
        .start_ms
        .is_none_or(|start| now_ms >= start.saturating_add(window_ms));
    if ended {
        world.rate = RateWindow {
            start_ms: Some(now_ms),
            used: 0,
            limited: false,
        };
    }
    let start_ms = world.rate.start_ms.unwrap_or(now_ms);
    if world.rate.limited {
        world.after_limit += 1;
    }
    let room = world.rate.used < limit;
    if room {
        world.rate.used += 1;
    } else {
        world.rate.limited = true;
        world.rate_limited += 1;
    }
    // Epoch seconds, rounded up: waiting until then always reaches the next window.
    let reset = start_ms
        .saturating_add(window_ms)
        .saturating_add(999)
        .div_euclid(1000);
    let headers = vec![
        ("x-ratelimit-limit", limit.to_string()),
        (
            "x-ratelimit-remaining",
            limit.saturating_sub(world.rate.used).to_string(),
        ),
        ("x-ratelimit-reset", reset.to_string()),
    ];
    (room, headers)
}

fn board_answer(
    shared: &Shared,
    headers: &HeaderMap,
    body: &Bytes,
) -> (Response, Option<BoardFault>) {
    let mut world = shared.world();
    let (room, rate_headers) = rate_limit(shared, &mut world);
    if !room {
        let limited = miro_error(
            StatusCode::TOO_MANY_REQUESTS,
            "tooManyRequests",
            "Request rate limit exceed",
        );
        return (with_headers(limited, rate_headers), None);
    }
    let fault = world.faults.board.pop_front();
    if let Some(BoardFault::FailBefore(status)) = fault {
        let status = status_or(status, StatusCode::INTERNAL_SERVER_ERROR);
        return (
            miro_error(status, "internalError", "Injected fault."),
            fault,
        );
    }
    let mut response = board_created(shared, &mut world, headers, body);
    if let Some(BoardFault::FailAfter(status)) = fault {
        if response.status() == StatusCode::CREATED {
            let status = status_or(status, StatusCode::INTERNAL_SERVER_ERROR);
            response = miro_error(status, "internalError", "Injected fault.");
        }
    }
    (with_headers(response, rate_headers), fault)
}

fn board_created(
    shared: &Shared,
    world: &mut World,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let (token, miro_user_id) = match authenticate(world, headers) {
        Ok(t) => t,
        Err(message) => return miro_error(StatusCode::UNAUTHORIZED, "tokenNotProvided", message),
    };
    if !shared.config.scopes.iter().any(|s| s == "boards:write") {
        return miro_error(
            StatusCode::FORBIDDEN,
            "forbiddenAccess",
            "Missing scope boards:write.",
        );
    }
    let body: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => {
                return miro_error(
                    StatusCode::BAD_REQUEST,
                    "invalidParameters",
                    "Body is not valid JSON.",
                )
            }
        }
    };
    if let Err(message) = validate_board(&body) {
        return miro_error(StatusCode::BAD_REQUEST, "invalidParameters", &message);
    }
    let str_field = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    if let Some(team) = str_field("teamId") {
        if team != TEAM_ID {
            return miro_error(
                StatusCode::FORBIDDEN,
                "forbiddenAccess",
                "No access to this team.",
            );
        }
    }
    if let Some(project) = str_field("projectId") {
        if project != PROJECT_ID {
            return miro_error(StatusCode::NOT_FOUND, "notFound", "Project not found.");
        }
    }
    let id = {
        let mut bytes = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("uX{hex}=")
    };
    let name = str_field("name").unwrap_or_else(|| "Untitled".into());
    let description = str_field("description").unwrap_or_default();
    let created_at = iso8601(world.now());
    world.boards.push(BoardRecord {
        id: id.clone(),
        name: name.clone(),
        description: description.clone(),
        team_id: TEAM_ID.into(),
        access_token: token,
        miro_user_id: miro_user_id.clone(),
        body: body.clone(),
    });
    let user_name = user_name(&miro_user_id);
    let user = json!({ "id": miro_user_id, "name": user_name, "type": "user" });
    let view_link = world
        .faults
        .view_link
        .clone()
        .unwrap_or_else(|| format!("https://miro.com/app/board/{id}"));
    let board = json!({
        "id": id,
        "type": "board",
        "name": name,
        "description": description,
        "viewLink": view_link,
        "team": { "id": TEAM_ID, "name": TEAM_NAME, "type": "team" },
        "project": body.get("projectId").map(|p| json!({ "id": p })),
        "policy": body.get("policy").cloned().unwrap_or_else(|| json!({})),
        "owner": user,
        "createdBy": user,
        "modifiedBy": user,
        "currentUserMembership": { "id": miro_user_id, "name": user_name, "role": "owner", "type": "board_member" },
        "createdAt": created_at,
        "modifiedAt": created_at,
        "links": { "self": format!("https://api.miro.com/v2/boards/{id}"), "related": format!("https://api.miro.com/v2/boards/{id}/members?limit=20&offset=0") },
    });
    match world.faults.board_padding {
        Some(padding) => padded_json(StatusCode::CREATED, board, padding),
        None => (StatusCode::CREATED, Json(board)).into_response(),
    }
}
