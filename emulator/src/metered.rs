//! What every metered REST call (create, copy, invite) goes through, in
//! Miro's order: the bearer token, the user's credits, the call's injected
//! fault, the scope; then the call itself, and what a fault does to its
//! answer.

use crate::faults::Faults;
use crate::oauth::{authenticate, Caller};
use crate::reply::{miro_error, status_or, with_headers};
use crate::state::{Shared, World};
use crate::{BoardFault, COPY_BOARD_CREDITS, CREATE_BOARD_CREDITS, INVITE_MEMBERS_CREDITS};
use axum::body::Bytes;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use std::collections::VecDeque;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Call {
    CreateBoard,
    CopyBoard,
    InviteMembers,
}

impl Call {
    fn credits(self) -> u64 {
        match self {
            Call::CreateBoard => CREATE_BOARD_CREDITS,
            Call::CopyBoard => COPY_BOARD_CREDITS,
            Call::InviteMembers => INVITE_MEMBERS_CREDITS,
        }
    }

    fn faults(self, faults: &mut Faults) -> &mut VecDeque<BoardFault> {
        match self {
            Call::CreateBoard => &mut faults.board,
            Call::CopyBoard => &mut faults.copy,
            Call::InviteMembers => &mut faults.members,
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
    let (response, fault) = answer(shared, headers, call, act);
    match fault {
        Some(BoardFault::SlowAfter(ms)) => {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            response
        }
        Some(BoardFault::DropAfter) => dropped(response),
        _ => response,
    }
}

fn answer(
    shared: &Shared,
    headers: &HeaderMap,
    call: Call,
    act: impl FnOnce(&mut World, &Caller) -> Response,
) -> (Response, Option<BoardFault>) {
    let mut world = shared.world();
    // Miro charges a user: who calls must be known before anything counts.
    let caller = match authenticate(&world, headers) {
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
        crate::rate::charge(shared, &mut world, &caller.miro_user_id, call.credits());
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
    if !shared.config.scopes.iter().any(|s| s == "boards:write") {
        let refused = miro_error(
            StatusCode::FORBIDDEN,
            "forbiddenAccess",
            "Missing scope boards:write.",
        );
        return (with_headers(refused, rate_headers), fault);
    }
    let mut response = act(&mut world, &caller);
    if let Some(BoardFault::FailAfter(status)) = fault {
        if response.status() == StatusCode::CREATED {
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
