//! `POST /v2/boards/{board_id}/members`: Miro's invitations, with its
//! partial failures (a 201 with a `failed` list). Credits and faults are
//! [`crate::metered`]'s.

use crate::metered::{metered, Call};
use crate::oauth::Caller;
use crate::reply::miro_error;
use crate::state::{MemberCall, Shared, World};
use crate::FAILING_INVITATION_DOMAIN;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

const ROLES: [&str; 5] = ["viewer", "commenter", "editor", "coowner", "owner"];
const MAX_EMAILS: usize = 20;
/// Where the emulator's member ids start: Miro's are int64, above 2^53.
const FIRST_MEMBER_ID: u64 = 3_458_764_600_000_100_000;

pub(crate) async fn invite_members(
    State(shared): State<Arc<Shared>>,
    Path(board_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    metered(&shared, &headers, Call::InviteMembers, |world, caller| {
        invited(world, caller, &board_id, &body)
    })
    .await
}

/// What a valid request asks for.
struct Invitation {
    emails: Vec<String>,
    role: String,
    message: Option<String>,
}

fn bad(message: &str) -> Box<Response> {
    Box::new(miro_error(
        StatusCode::BAD_REQUEST,
        "invalidParameters",
        message,
    ))
}

/// Minimal address shape: something, one `@`, a domain with a dot.
fn looks_like_email(e: &str) -> bool {
    match e.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !e.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

fn parse(body: &Bytes) -> Result<Invitation, Box<Response>> {
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) else {
        return Err(bad("Body must be a JSON object."));
    };
    if let Some(unknown) = obj
        .keys()
        .find(|k| !["emails", "role", "message"].contains(&k.as_str()))
    {
        return Err(bad(&format!("Unknown field {unknown}")));
    }
    let Some(Value::Array(list)) = obj.get("emails") else {
        return Err(bad("emails is required and must be an array."));
    };
    if !(1..=MAX_EMAILS).contains(&list.len()) {
        return Err(bad("emails must hold 1 to 20 addresses."));
    }
    let mut emails = Vec::with_capacity(list.len());
    for e in list {
        match e.as_str() {
            Some(e) if looks_like_email(e) => emails.push(e.to_string()),
            _ => return Err(bad("emails must be email addresses.")),
        }
    }
    let role = match obj.get("role") {
        None => "commenter".to_string(),
        Some(Value::String(r)) if ROLES.contains(&r.as_str()) => r.clone(),
        Some(_) => return Err(bad(&format!("role must be one of {}", ROLES.join(", ")))),
    };
    let message = match obj.get("message") {
        None | Some(Value::Null) => None,
        Some(Value::String(m)) => Some(m.clone()),
        Some(_) => return Err(bad("message must be a string.")),
    };
    Ok(Invitation {
        emails,
        role,
        message,
    })
}

fn fails(world: &World, email: &str) -> bool {
    let email = email.to_lowercase();
    let at_failing_domain = email
        .rsplit_once('@')
        .is_some_and(|(_, domain)| domain == FAILING_INVITATION_DOMAIN);
    at_failing_domain || world.faults.failing_invitations.contains(&email)
}

fn invited(world: &mut World, caller: &Caller, board_id: &str, body: &Bytes) -> Response {
    let invitation = match parse(body) {
        Ok(i) => i,
        Err(refused) => return *refused,
    };
    if world
        .visible_board(board_id, &caller.miro_user_id, &caller.team_id)
        .is_none()
    {
        return miro_error(StatusCode::NOT_FOUND, "notFound", "Board not found.");
    }
    let mut successful = Vec::new();
    let mut failed = Vec::new();
    for email in &invitation.emails {
        if fails(world, email) {
            failed.push(email.clone());
            continue;
        }
        let key = email.to_lowercase();
        let next = FIRST_MEMBER_ID.saturating_add(world.next_member_id);
        let members = world.members.entry(board_id.to_string()).or_default();
        // Inviting a member again just succeeds, with the same member id.
        let id = match members.iter().find(|(e, _, _)| *e == key) {
            Some((_, id, _)) => *id,
            None => {
                members.push((key, next, invitation.role.clone()));
                world.next_member_id += 1;
                next
            }
        };
        successful.push(id);
    }
    let answer = json!({
        "successful": successful,
        "failed": failed
            .iter()
            .map(|e| json!({ "email": e, "reason": "INVITATION_FAILED" }))
            .collect::<Vec<_>>(),
    });
    world.member_calls.push(MemberCall {
        board_id: board_id.to_string(),
        role: invitation.role,
        emails: invitation.emails,
        message: invitation.message,
        access_token: caller.token.clone(),
        miro_user_id: caller.miro_user_id.clone(),
        failed,
    });
    (StatusCode::CREATED, Json(answer)).into_response()
}
