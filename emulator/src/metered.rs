//! What every metered REST call (create, copy, invite, the item calls,
//! delete) goes through, in Miro's order: the bearer token, the user's
//! credits, the call's injected fault, the scope; then the call itself, and
//! what a fault does to its answer.

use crate::faults::Faults;
use crate::items::{ItemCall, ItemCallKind};
use crate::oauth::{authenticate, Caller};
use crate::reply::{miro_error, status_or, with_headers};
use crate::state::{Shared, World};
use crate::{
    BoardFault, COPY_BOARD_CREDITS, CREATE_BOARD_CREDITS, DELETE_BOARD_CREDITS,
    INVITE_MEMBERS_CREDITS, ITEM_CREDITS,
};
use axum::body::Bytes;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use std::collections::VecDeque;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Call {
    CreateBoard,
    CopyBoard,
    InviteMembers,
    /// A bulk creation of this many items (as sent).
    Items(u64),
    Frame,
    Connector,
    ListItems,
    ListConnectors,
    DeleteBoard,
}

impl Call {
    fn credits(self) -> u64 {
        match self {
            Call::CreateBoard => CREATE_BOARD_CREDITS,
            Call::CopyBoard => COPY_BOARD_CREDITS,
            Call::InviteMembers => INVITE_MEMBERS_CREDITS,
            Call::Items(n) => ITEM_CREDITS.saturating_mul(n),
            Call::Frame | Call::Connector | Call::ListItems | Call::ListConnectors => ITEM_CREDITS,
            Call::DeleteBoard => DELETE_BOARD_CREDITS,
        }
    }

    /// The call as the handle records it; `None` for the board calls,
    /// which have records of their own.
    fn item_kind(self) -> Option<ItemCallKind> {
        Some(match self {
            Call::CreateBoard | Call::CopyBoard | Call::InviteMembers => return None,
            Call::Items(n) => ItemCallKind::Bulk {
                items: usize::try_from(n).unwrap_or(usize::MAX),
            },
            Call::Frame => ItemCallKind::Frame,
            Call::Connector => ItemCallKind::Connector,
            Call::ListItems => ItemCallKind::ListItems,
            Call::ListConnectors => ItemCallKind::ListConnectors,
            Call::DeleteBoard => ItemCallKind::DeleteBoard,
        })
    }

    fn faults(self, faults: &mut Faults) -> &mut VecDeque<BoardFault> {
        match self {
            Call::CreateBoard => &mut faults.board,
            Call::CopyBoard => &mut faults.copy,
            Call::InviteMembers => &mut faults.members,
            Call::Items(_) => &mut faults.bulk,
            Call::Frame => &mut faults.frame,
            Call::Connector => &mut faults.connector,
            Call::ListItems | Call::ListConnectors => &mut faults.list,
            Call::DeleteBoard => &mut faults.delete,
        }
    }

    /// Reading needs `boards:read`, everything else `boards:write`.
    fn scope(self) -> &'static str {
        match self {
            Call::ListItems | Call::ListConnectors => "boards:read",
            _ => "boards:write",
        }
    }
}

/// Answers a metered call: `act` runs, under the lock, once the caller is
/// known, charged and allowed; then the call's fault, if any, shapes the
/// answer.
pub(crate) async fn metered(
    shared: &Shared,
    headers: &HeaderMap,
    call: Call,
    act: impl FnOnce(&mut World, &Caller) -> Response,
) -> Response {
    let (response, fault) = answer(shared, &mut shared.world(), headers, call, act);
    shaped(response, fault).await
}

/// [`metered`] for a call naming board `board_id`, recorded (whatever its
/// answer) in [`World::item_calls`] under the same lock, so that the record
/// is in the order Miro did the work.
pub(crate) async fn metered_on_board(
    shared: &Shared,
    headers: &HeaderMap,
    call: Call,
    board_id: &str,
    act: impl FnOnce(&mut World, &Caller) -> Response,
) -> Response {
    let (response, fault) = {
        let mut world = shared.world();
        let (response, fault) = answer(shared, &mut world, headers, call, act);
        if let Some(kind) = call.item_kind() {
            world.item_calls.push(ItemCall {
                kind,
                board_id: board_id.to_string(),
                status: response.status().as_u16(),
            });
        }
        (response, fault)
    };
    shaped(response, fault).await
}

/// What a fault after the work does to the answer on its way out.
async fn shaped(response: Response, fault: Option<BoardFault>) -> Response {
    match fault {
        Some(BoardFault::SlowAfter(ms)) => {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            response
        }
        // A 204 has no body to break off.
        Some(BoardFault::DropAfter) if response.status() != StatusCode::NO_CONTENT => {
            dropped(response)
        }
        _ => response,
    }
}

fn answer(
    shared: &Shared,
    world: &mut World,
    headers: &HeaderMap,
    call: Call,
    act: impl FnOnce(&mut World, &Caller) -> Response,
) -> (Response, Option<BoardFault>) {
    // Miro charges a user: who calls must be known before anything counts.
    let caller = match authenticate(world, headers) {
        Ok(c) => c,
        Err(message) => {
            return (
                miro_error(StatusCode::UNAUTHORIZED, "tokenNotProvided", message),
                None,
            )
        }
    };
    // Uninstalled since the token was issued: Miro said nothing then, and
    // says it now.
    if !world.installed(&caller.team_id, caller.install) {
        return (not_installed(), None);
    }
    let (room, rate_headers) =
        crate::rate::charge(shared, world, &caller.miro_user_id, call.credits());
    if !room {
        let limited = miro_error(
            StatusCode::TOO_MANY_REQUESTS,
            "tooManyRequests",
            "Request rate limit exceed",
        );
        return (with_headers(limited, rate_headers), None);
    }
    let fault = call.faults(&mut world.faults).pop_front();
    if let Some(BoardFault::FailBefore(status)) = fault {
        let failed = injected(status);
        return (with_headers(failed, rate_headers), fault);
    }
    let scope = call.scope();
    if !shared.config.scopes.iter().any(|s| s == scope) {
        let refused = miro_error(
            StatusCode::FORBIDDEN,
            "forbiddenAccess",
            &format!("Missing scope {scope}."),
        );
        return (with_headers(refused, rate_headers), fault);
    }
    let mut response = act(world, &caller);
    if let Some(BoardFault::FailAfter(status)) = fault {
        if response.status().is_success() {
            response = injected(status);
        }
    }
    (with_headers(response, rate_headers), fault)
}

/// Miro's answer to a call for a team where the app is not installed.
pub(crate) fn not_installed() -> Response {
    miro_error(
        StatusCode::FORBIDDEN,
        "applicationNotInstalled",
        "The application is not installed in this team. Install it to continue.",
    )
}

fn injected(status: u16) -> Response {
    miro_error(
        status_or(status, StatusCode::INTERNAL_SERVER_ERROR),
        "internalError",
        "Injected fault.",
    )
}

/// The answer's head, then a body that breaks off: the connection ends
/// mid-answer, after Miro did the work.
fn dropped(response: Response) -> Response {
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from_static(b"{\"id\":")),
        Err(std::io::Error::other("connection dropped")),
    ];
    let body = axum::body::Body::from_stream(futures_util::stream::iter(chunks));
    Response::from_parts(parts, body)
}
