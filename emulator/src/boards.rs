//! `POST /v2/boards` (create) and `PUT /v2/boards?copy_from=` (copy):
//! Miro's validation, teams and bodies. Credits and faults are
//! [`crate::metered`]'s.

use crate::faults::padded_json;
use crate::metered::{metered, not_installed, Call};
use crate::oauth::{query_map, Caller};
use crate::reply::{iso8601, miro_error};
use crate::state::{team_name, user_name, Shared, World};
use crate::{BoardRecord, PROJECT_ID, TEAM_ID};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use std::sync::Arc;

const BOARD_FIELDS: [&str; 5] = ["name", "description", "teamId", "projectId", "policy"];
/// Miro's copy takes no `projectId` (it is refused by name, below).
const COPY_FIELDS: [&str; 4] = ["name", "description", "teamId", "policy"];

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

/// Miro's rules for the body of a create (`fields`: [`BOARD_FIELDS`]) or a
/// copy ([`COPY_FIELDS`]) (`docs/miro.md`, "Boards").
fn validate_board(body: &Value, fields: &[&str]) -> Result<(), String> {
    let obj = object(body, "body", fields)?;
    for id in ["teamId", "projectId"] {
        // Ids above 2^53: Miro takes them as strings only.
        if obj.get(id).is_some_and(|v| !v.is_string()) {
            return Err(format!("{id} must be a string"));
        }
    }
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
    metered(&shared, &headers, Call::CreateBoard, |world, caller| {
        board_created(world, caller, &body, &shared.base_url)
    })
    .await
}

pub(crate) async fn copy_board(
    State(shared): State<Arc<Shared>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let source = query_map(&raw).remove("copy_from");
    metered(&shared, &headers, Call::CopyBoard, |world, caller| {
        board_copied(world, caller, source.as_deref(), &body, &shared.base_url)
    })
    .await
}

/// The JSON body (an empty one is `{}`), or Miro's 400.
fn json_body(body: &Bytes) -> Result<Value, Box<Response>> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|_| {
        Box::new(miro_error(
            StatusCode::BAD_REQUEST,
            "invalidParameters",
            "Body is not valid JSON.",
        ))
    })
}

fn str_field(body: &Value, key: &str) -> Option<String> {
    body.get(key).and_then(Value::as_str).map(str::to_string)
}

/// The team a call names (`teamId`) or else the token's own: a token works
/// for its own team alone, so another is one where the app is not installed.
fn target_team(body: &Value, caller: &Caller) -> Result<String, Box<Response>> {
    match str_field(body, "teamId") {
        Some(team) if team != caller.team_id => Err(Box::new(not_installed())),
        _ => Ok(caller.team_id.clone()),
    }
}

fn board_created(world: &mut World, caller: &Caller, body: &Bytes, base_url: &str) -> Response {
    let body = match json_body(body) {
        Ok(b) => b,
        Err(refused) => return *refused,
    };
    if let Err(message) = validate_board(&body, &BOARD_FIELDS) {
        return miro_error(StatusCode::BAD_REQUEST, "invalidParameters", &message);
    }
    let team_id = match target_team(&body, caller) {
        Ok(t) => t,
        Err(refused) => return *refused,
    };
    if let Some(project) = str_field(&body, "projectId") {
        // The one project is in the first team.
        if project != PROJECT_ID || team_id != TEAM_ID {
            return miro_error(StatusCode::NOT_FOUND, "notFound", "Project not found.");
        }
    }
    let record = BoardRecord {
        id: world.board_id(),
        name: str_field(&body, "name").unwrap_or_else(|| "Untitled".into()),
        description: str_field(&body, "description").unwrap_or_default(),
        team_id,
        access_token: caller.token.clone(),
        miro_user_id: caller.miro_user_id.clone(),
        body: body.clone(),
        content: None,
        copied_from: None,
    };
    let policy = body.get("policy").cloned().unwrap_or_else(|| json!({}));
    let project = Some(
        body.get("projectId")
            .map_or(Value::Null, |p| json!({ "id": p })),
    );
    let board = board_json(world, &record, policy, project, base_url);
    world.boards.push(record);
    board_answer(world, board)
}

fn board_copied(
    world: &mut World,
    caller: &Caller,
    source: Option<&str>,
    body: &Bytes,
    base_url: &str,
) -> Response {
    let Some(source) = source.filter(|s| !s.is_empty()) else {
        return miro_error(
            StatusCode::BAD_REQUEST,
            "invalidParameters",
            "copy_from is required.",
        );
    };
    let body = match json_body(body) {
        Ok(b) => b,
        Err(refused) => return *refused,
    };
    if body.get("projectId").is_some() {
        return miro_error(
            StatusCode::BAD_REQUEST,
            "invalidParameters",
            "projectId is not supported when copying a board.",
        );
    }
    if let Err(message) = validate_board(&body, &COPY_FIELDS) {
        return miro_error(StatusCode::BAD_REQUEST, "invalidParameters", &message);
    }
    let team_id = match target_team(&body, caller) {
        Ok(t) => t,
        Err(refused) => return *refused,
    };
    let Some(original) = world
        .visible_board(source, &caller.miro_user_id, &caller.team_id)
        .cloned()
    else {
        return miro_error(StatusCode::NOT_FOUND, "notFound", "Board not found.");
    };
    let policy = body
        .get("policy")
        .or_else(|| original.body.get("policy"))
        .cloned()
        .unwrap_or_else(|| json!({}));
    let record = BoardRecord {
        id: world.board_id(),
        name: str_field(&body, "name").unwrap_or(original.name),
        description: str_field(&body, "description").unwrap_or(original.description),
        team_id,
        access_token: caller.token.clone(),
        miro_user_id: caller.miro_user_id.clone(),
        body,
        content: original.content,
        copied_from: Some(original.id.clone()),
    };
    let board = board_json(world, &record, policy, None, base_url);
    // A copy has the source's items and connectors, with ids of its own.
    crate::items::copy_content(world, &original.id, &record.id);
    world.boards.push(record);
    board_answer(world, board)
}

/// Miro's board (`BoardWithLinks`) for a board the caller just made and owns.
/// `project`: `None` leaves the key out (a copy has none). Its `viewLink`
/// is the emulator's drawing of it, `{base_url}/app/board/{id}`.
fn board_json(
    world: &World,
    b: &BoardRecord,
    policy: Value,
    project: Option<Value>,
    base_url: &str,
) -> Value {
    let id = &b.id;
    let created_at = iso8601(world.now());
    let user_name = user_name(&b.miro_user_id);
    let user = json!({ "id": b.miro_user_id, "name": user_name, "type": "user" });
    let view_link = world
        .faults
        .view_link
        .clone()
        .unwrap_or_else(|| format!("{base_url}/app/board/{id}"));
    let mut board = json!({
        "id": id,
        "type": "board",
        "name": b.name,
        "description": b.description,
        "viewLink": view_link,
        "team": { "id": b.team_id, "name": team_name(&b.team_id).unwrap_or_default(), "type": "team" },
        "policy": policy,
        "owner": user,
        "createdBy": user,
        "modifiedBy": user,
        "currentUserMembership": { "id": b.miro_user_id, "name": user_name, "role": "owner", "type": "board_member" },
        "createdAt": created_at,
        "modifiedAt": created_at,
        "links": { "self": format!("https://api.miro.com/v2/boards/{id}"), "related": format!("https://api.miro.com/v2/boards/{id}/members?limit=20&offset=0") },
    });
    if let (Some(project), Value::Object(fields)) = (project, &mut board) {
        fields.insert("project".into(), project);
    }
    board
}

fn board_answer(world: &World, board: Value) -> Response {
    match world.faults.board_padding {
        Some(padding) => padded_json(StatusCode::CREATED, board, padding),
        None => (StatusCode::CREATED, Json(board)).into_response(),
    }
}
