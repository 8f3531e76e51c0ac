//! A board's content: items in bulk (`POST /v2/boards/{id}/items/bulk`),
//! frames, connectors, their listings, `DELETE /v2/boards/{id}`, and the
//! drawn board at `/app/board/{id}` (its view link). Field rules are
//! [`rules`] (markup in [`markup`]), the drawing [`draw`], what is kept
//! [`records`], the handle's test API `handle`. Credits and faults are
//! [`crate::metered`]'s.

mod draw;
mod handle;
mod markup;
mod records;
mod rules;

pub use records::{ConnectorRecord, ItemCall, ItemCallKind, ItemRecord};

use crate::metered::{metered_on_board, not_installed, Call};
use crate::oauth::{query_map, Caller};
use crate::reply::{iso8601, miro_error, with_headers};
use crate::state::{Shared, World};
use crate::BoardRecord;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use records::{connector_json, item_json};
use rules::{FieldError, NewItem};
use serde_json::{json, Value};
use std::sync::Arc;

/// Items a bulk call takes at most.
const MAX_BULK: usize = 20;
/// A listing's page size: Miro's bounds and default.
const LIMITS: std::ops::RangeInclusive<u64> = 10..=50;
const DEFAULT_LIMIT: u64 = 10;
/// The types `GET /v2/boards/{id}/items?type=` takes (Miro's item types).
const LIST_TYPES: [&str; 10] = [
    "app_card",
    "card",
    "document",
    "embed",
    "frame",
    "image",
    "preview",
    "shape",
    "sticky_note",
    "text",
];

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v2/boards/{board_id}", delete(delete_board))
        .route("/v2/boards/{board_id}/items/bulk", post(create_bulk))
        .route("/v2/boards/{board_id}/items", get(list_items))
        .route("/v2/boards/{board_id}/frames", post(create_frame))
        .route(
            "/v2/boards/{board_id}/connectors",
            post(create_connector).get(list_connectors),
        )
        .route("/app/board/{board_id}", get(drawn_board))
        .route("/app/board/{board_id}/", get(drawn_board))
}

fn bad(message: &str) -> Response {
    miro_error(StatusCode::BAD_REQUEST, "invalidParameters", message)
}

fn not_found() -> Response {
    miro_error(StatusCode::NOT_FOUND, "notFound", "Board not found.")
}

/// Miro's 400 for a broken field: `context.fields` names it.
fn field_error(e: &FieldError) -> Response {
    let body = json!({
        "status": 400,
        "code": "invalidParameters",
        "message": format!("Invalid parameter {}: {}", e.field, e.message),
        "context": { "fields": [{ "field": e.field, "message": e.message }] },
        "type": "error",
    });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

fn json_body(body: &Bytes) -> Option<Value> {
    serde_json::from_slice(body).ok()
}

/// Board `id` if the caller reaches it: it exists (made or seeded, not
/// deleted), is in the token's team (else `403 applicationNotInstalled`)
/// and is the caller's own or a template of its team (else `404`).
fn reach<'a>(
    world: &'a World,
    id: &str,
    caller: &Caller,
) -> Result<&'a BoardRecord, Box<Response>> {
    let Some((board, team_visible)) = world.existing_board(id) else {
        return Err(Box::new(not_found()));
    };
    if board.team_id != caller.team_id {
        return Err(Box::new(not_installed()));
    }
    if !world.may_see(board, team_visible, &caller.miro_user_id) {
        return Err(Box::new(not_found()));
    }
    Ok(board)
}

/// Stores `new` on `board_id`, placed (a child from its frame's top-left
/// corner, which the caller checked is a frame there).
fn place(world: &mut World, board_id: &str, new: NewItem, created_by: &str) -> ItemRecord {
    let (x, y) = new.position.unwrap_or((0.0, 0.0));
    let (w, h) = new.geometry;
    let origin = new
        .parent
        .as_ref()
        .and_then(|p| frame_on(world, board_id, p))
        .map_or((0.0, 0.0), |f| (f.bounds.0, f.bounds.1));
    let (cx, cy) = (origin.0 + x, origin.1 + y);
    let record = ItemRecord {
        id: world.item_id(),
        kind: new.kind.to_string(),
        data: new.data,
        style: new.style,
        position: new.position,
        geometry: new.geometry,
        parent: new.parent,
        bounds: (cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0),
        created_by: created_by.to_string(),
        created_at: iso8601(world.now()),
    };
    world
        .items
        .entry(board_id.to_string())
        .or_default()
        .push(record.clone());
    record
}

fn item_on<'a>(world: &'a World, board_id: &str, id: &str) -> Option<&'a ItemRecord> {
    world.items.get(board_id)?.iter().find(|i| i.id == id)
}

fn frame_on<'a>(world: &'a World, board_id: &str, id: &str) -> Option<&'a ItemRecord> {
    item_on(world, board_id, id).filter(|i| i.kind == "frame")
}

async fn create_bulk(
    State(shared): State<Arc<Shared>>,
    Path(board_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = json_body(&body);
    // Charged per item sent; a body that is no list is charged as one.
    let sent = match &body {
        Some(Value::Array(list)) => list.len().max(1),
        _ => 1,
    };
    let call = Call::Items(u64::try_from(sent).unwrap_or(u64::MAX));
    metered_on_board(&shared, &headers, call, &board_id, |world, caller| {
        bulk_created(world, caller, &board_id, body)
    })
    .await
}

fn bulk_created(
    world: &mut World,
    caller: &Caller,
    board_id: &str,
    body: Option<Value>,
) -> Response {
    let Some(Value::Array(list)) = body else {
        return bad("Body must be a JSON array of items.");
    };
    if !(1..=MAX_BULK).contains(&list.len()) {
        return bad("A bulk creation takes 1 to 20 items.");
    }
    let mut checked = Vec::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        match rules::bulk_item(v) {
            Ok(item) => checked.push(item),
            Err(e) => return field_error(&e.at(i)),
        }
    }
    if let Err(refused) = reach(world, board_id, caller) {
        return *refused;
    }
    // All or nothing: every parent is checked before anything is made.
    for (i, item) in checked.iter().enumerate() {
        if let Some(parent) = &item.parent {
            if frame_on(world, board_id, parent).is_none() {
                let e = FieldError::new("parent.id", "must be the id of a frame on this board");
                return field_error(&e.at(i));
            }
        }
    }
    let data: Vec<Value> = checked
        .into_iter()
        .map(|item| {
            item_json(
                board_id,
                &place(world, board_id, item, &caller.miro_user_id),
            )
        })
        .collect();
    (
        StatusCode::CREATED,
        Json(json!({ "type": "bulk-list", "data": data })),
    )
        .into_response()
}

async fn create_frame(
    State(shared): State<Arc<Shared>>,
    Path(board_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = json_body(&body);
    metered_on_board(
        &shared,
        &headers,
        Call::Frame,
        &board_id,
        |world, caller| {
            let Some(body) = body else {
                return bad("Body is not valid JSON.");
            };
            let frame = match rules::frame(&body) {
                Ok(f) => f,
                Err(e) => return field_error(&e),
            };
            if let Err(refused) = reach(world, &board_id, caller) {
                return *refused;
            }
            let record = place(world, &board_id, frame, &caller.miro_user_id);
            (StatusCode::CREATED, Json(item_json(&board_id, &record))).into_response()
        },
    )
    .await
}

async fn create_connector(
    State(shared): State<Arc<Shared>>,
    Path(board_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = json_body(&body);
    metered_on_board(
        &shared,
        &headers,
        Call::Connector,
        &board_id,
        |world, caller| connector_created(world, caller, &board_id, body),
    )
    .await
}

fn connector_created(
    world: &mut World,
    caller: &Caller,
    board_id: &str,
    body: Option<Value>,
) -> Response {
    let Some(body) = body else {
        return bad("Body is not valid JSON.");
    };
    let new = match rules::connector(&body) {
        Ok(c) => c,
        Err(e) => return field_error(&e),
    };
    if let Err(refused) = reach(world, board_id, caller) {
        return *refused;
    }
    for (field, id) in [("startItem.id", &new.start), ("endItem.id", &new.end)] {
        match item_on(world, board_id, id) {
            None => {
                return field_error(&FieldError::new(field, "no item with this id on the board"))
            }
            Some(i) if i.kind == "frame" => {
                return field_error(&FieldError::new(field, "a connector cannot join a frame"))
            }
            Some(_) => {}
        }
    }
    let record = ConnectorRecord {
        id: world.item_id(),
        start: new.start,
        end: new.end,
        shape: new.shape,
        captions: new.captions,
        style: new.style,
        created_by: caller.miro_user_id.clone(),
        created_at: iso8601(world.now()),
    };
    world
        .connectors
        .entry(board_id.to_string())
        .or_default()
        .push(record.clone());
    (StatusCode::CREATED, Json(connector_json(board_id, &record))).into_response()
}

/// A listing's query: `limit` (10 to 50, default 10), `cursor`, and for
/// items `type`.
struct Listing {
    limit: u64,
    cursor: Option<String>,
    kind: Option<String>,
}

fn listing(raw: &Option<String>, with_type: bool) -> Result<Listing, Box<Response>> {
    let q = query_map(raw);
    let limit = match q.get("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => match l.parse::<u64>() {
            Ok(l) if LIMITS.contains(&l) => l,
            _ => return Err(Box::new(bad("limit must be an integer from 10 to 50."))),
        },
    };
    let kind = match q.get("type").filter(|_| with_type) {
        Some(t) if !LIST_TYPES.contains(&t.as_str()) => {
            return Err(Box::new(bad(&format!(
                "type must be one of {}.",
                LIST_TYPES.join(", ")
            ))))
        }
        t => t.cloned(),
    };
    Ok(Listing {
        limit,
        cursor: q.get("cursor").filter(|c| !c.is_empty()).cloned(),
        kind,
    })
}

/// Miro's `cursor-list` over `all`: the cursor is the id of the next
/// page's first entry (an unknown one is a 400).
fn cursor_list(path: &str, all: Vec<(String, Value)>, q: &Listing) -> Response {
    let start = match &q.cursor {
        None => 0,
        Some(c) => match all.iter().position(|(id, _)| id == c) {
            Some(at) => at,
            None => return bad("cursor is not valid."),
        },
    };
    let limit = usize::try_from(q.limit).unwrap_or(usize::MAX);
    let end = start.saturating_add(limit).min(all.len());
    let next = all.get(end).map(|(id, _)| id.clone());
    let total = all.len();
    let data: Vec<Value> = all
        .into_iter()
        .skip(start)
        .take(end - start)
        .map(|(_, v)| v)
        .collect();
    let type_query = q
        .kind
        .as_ref()
        .map(|t| format!("&type={t}"))
        .unwrap_or_default();
    let link = |cursor: Option<&str>| {
        let cursor = cursor.map(|c| format!("&cursor={c}")).unwrap_or_default();
        format!(
            "https://api.miro.com{path}?limit={}{type_query}{cursor}",
            q.limit
        )
    };
    let mut links = json!({ "self": link(q.cursor.as_deref()) });
    let mut answer = json!({
        "data": data,
        "total": total,
        "size": end - start,
        "limit": q.limit,
        "type": "cursor-list",
    });
    if let (Some(next), Value::Object(fields), Value::Object(l)) = (&next, &mut answer, &mut links)
    {
        fields.insert("cursor".into(), json!(next));
        l.insert("next".into(), json!(link(Some(next))));
    }
    if let Value::Object(fields) = &mut answer {
        fields.insert("links".into(), links);
    }
    (StatusCode::OK, Json(answer)).into_response()
}

async fn list_items(
    State(shared): State<Arc<Shared>>,
    Path(board_id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    metered_on_board(
        &shared,
        &headers,
        Call::ListItems,
        &board_id,
        |world, caller| {
            let q = match listing(&raw, true) {
                Ok(q) => q,
                Err(refused) => return *refused,
            };
            if let Err(refused) = reach(world, &board_id, caller) {
                return *refused;
            }
            let all = world
                .items
                .get(&board_id)
                .map(|items| {
                    items
                        .iter()
                        .filter(|i| q.kind.as_ref().is_none_or(|k| *k == i.kind))
                        .map(|i| (i.id.clone(), item_json(&board_id, i)))
                        .collect()
                })
                .unwrap_or_default();
            cursor_list(&format!("/v2/boards/{board_id}/items"), all, &q)
        },
    )
    .await
}

async fn list_connectors(
    State(shared): State<Arc<Shared>>,
    Path(board_id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    metered_on_board(
        &shared,
        &headers,
        Call::ListConnectors,
        &board_id,
        |world, caller| {
            let q = match listing(&raw, false) {
                Ok(q) => q,
                Err(refused) => return *refused,
            };
            if let Err(refused) = reach(world, &board_id, caller) {
                return *refused;
            }
            let all = world
                .connectors
                .get(&board_id)
                .map(|list| {
                    list.iter()
                        .map(|c| (c.id.clone(), connector_json(&board_id, c)))
                        .collect()
                })
                .unwrap_or_default();
            cursor_list(&format!("/v2/boards/{board_id}/connectors"), all, &q)
        },
    )
    .await
}

async fn delete_board(
    State(shared): State<Arc<Shared>>,
    Path(board_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    metered_on_board(
        &shared,
        &headers,
        Call::DeleteBoard,
        &board_id,
        |world, caller| {
            let owner = match reach(world, &board_id, caller) {
                Ok(board) => board.miro_user_id.clone(),
                Err(refused) => return *refused,
            };
            // A template is visible to its team, not theirs to delete.
            if owner != caller.miro_user_id {
                return miro_error(
                    StatusCode::FORBIDDEN,
                    "forbiddenAccess",
                    "Only the board owner can delete the board.",
                );
            }
            world.deleted.push(board_id.clone());
            world.items.remove(&board_id);
            world.connectors.remove(&board_id);
            StatusCode::NO_CONTENT.into_response()
        },
    )
    .await
}

/// The view link: no token, as a browser opens it.
async fn drawn_board(State(shared): State<Arc<Shared>>, Path(board_id): Path<String>) -> Response {
    let page = {
        let world = shared.world();
        world.existing_board(&board_id).map(|(board, _)| {
            let items = world
                .items
                .get(&board_id)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let connectors = world
                .connectors
                .get(&board_id)
                .map(Vec::as_slice)
                .unwrap_or_default();
            draw::page(board, items, connectors)
        })
    };
    let (status, page) = match page {
        Some(page) => (StatusCode::OK, page),
        None => (
            StatusCode::NOT_FOUND,
            "<!doctype html><html><head><title>Board not found</title></head>\
<body><h1>Board not found</h1></body></html>"
                .to_string(),
        ),
    };
    with_headers(
        (status, Html(page)).into_response(),
        vec![
            ("content-security-policy", draw::CSP.to_string()),
            ("x-content-type-options", "nosniff".to_string()),
            ("cache-control", "no-store".to_string()),
            ("referrer-policy", "no-referrer".to_string()),
        ],
    )
}

/// A copy's content: every item and connector of `from` on `to`, with new
/// ids (children keep their frame, connectors their ends).
pub(crate) fn copy_content(world: &mut World, from: &str, to: &str) {
    let items = world.items.get(from).cloned().unwrap_or_default();
    let connectors = world.connectors.get(from).cloned().unwrap_or_default();
    let mut ids = std::collections::HashMap::new();
    let mut copied = Vec::with_capacity(items.len());
    for item in items {
        let id = world.item_id();
        ids.insert(item.id.clone(), id.clone());
        copied.push(ItemRecord { id, ..item });
    }
    for item in &mut copied {
        if let Some(new) = item.parent.as_ref().and_then(|p| ids.get(p)) {
            item.parent = Some(new.clone());
        }
    }
    let mut joined = Vec::with_capacity(connectors.len());
    for c in connectors {
        let (Some(start), Some(end)) = (ids.get(&c.start).cloned(), ids.get(&c.end).cloned())
        else {
            continue;
        };
        joined.push(ConnectorRecord {
            id: world.item_id(),
            start,
            end,
            ..c
        });
    }
    if !copied.is_empty() {
        world.items.insert(to.to_string(), copied);
    }
    if !joined.is_empty() {
        world.connectors.insert(to.to_string(), joined);
    }
}
