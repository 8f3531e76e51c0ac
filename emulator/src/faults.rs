//! Miro's misbehaviour, injectable: the fault types, the switches on the
//! [`Emulator`] handle that turn them on and off, and what a faulted call
//! answers. Every switch stays until it is switched back (`None`), except
//! the queues ([`Emulator::inject_token_faults`],
//! [`Emulator::inject_board_faults`], [`Emulator::inject_copy_faults`],
//! [`Emulator::inject_member_faults`], [`Emulator::inject_item_faults`]),
//! which are used up one fault a call.

use crate::reply::{html_response, miro_error, status_or, with_headers};
use crate::state::World;
use crate::{Emulator, ItemCallKind};
use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::collections::VecDeque;

/// What the next board call suffers, one fault a request: a creation
/// (`POST /v2/boards`), a copy (`PUT /v2/boards?copy_from=`), an
/// invitation (`POST /v2/boards/{id}/members`) or an item call (see
/// [`Emulator::inject_item_faults`]), each from its own queue. "201" below
/// is the call's success, whatever its status (200 for a listing, 204 for a
/// deletion).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BoardFault {
    /// Answers this 5xx and does nothing.
    FailBefore(u16),
    /// Does the work (creates, copies, invites), then answers this 5xx.
    FailAfter(u16),
    /// Does the work and answers 201 only after this many milliseconds.
    SlowAfter(u64),
    /// Does the work and drops the connection mid-answer. An answer
    /// without a body (a deletion's 204) has nothing to break: it comes whole.
    DropAfter,
    /// No fault: the call is answered as usual. A place holder, to fault a
    /// later call (`[Pass, FailBefore(503)]` faults the second).
    Pass,
}

/// What a `POST /v1/oauth/token` call suffers instead of its answer. A
/// faulted call consumes nothing: its code stays unused, its refresh token
/// is not rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFault {
    /// 429 with Miro's body; `Retry-After: retry_after` when given, and
    /// `X-RateLimit-Reset` = the emulator's now + `reset_in` when given
    /// (with `X-RateLimit-Limit` and `X-RateLimit-Remaining: 0`).
    RateLimited {
        retry_after: Option<u64>,
        reset_in: Option<i64>,
    },
    /// 302 to `https://miro.com/login`, empty body.
    Redirect,
    /// 200 `text/html`: a maintenance page.
    HtmlOk,
    /// 200 `application/json` with an empty body.
    EmptyOk,
    /// This status with Miro's JSON error body.
    Status(u16),
    /// This status with an HTML body (a proxy's error page).
    HtmlError(u16),
    /// The answer never comes.
    Stall,
}

/// Switchable misbehaviour, for tests of what the client does then.
#[derive(Debug, Default, Clone)]
pub(crate) struct Faults {
    pub(crate) board: VecDeque<BoardFault>,
    pub(crate) copy: VecDeque<BoardFault>,
    pub(crate) members: VecDeque<BoardFault>,
    /// `POST /v2/boards/{id}/items/bulk`.
    pub(crate) bulk: VecDeque<BoardFault>,
    /// `POST /v2/boards/{id}/frames`.
    pub(crate) frame: VecDeque<BoardFault>,
    /// `POST /v2/boards/{id}/connectors`.
    pub(crate) connector: VecDeque<BoardFault>,
    /// Both listings, `GET /v2/boards/{id}/items` and `…/connectors`.
    pub(crate) list: VecDeque<BoardFault>,
    /// `DELETE /v2/boards/{id}`.
    pub(crate) delete: VecDeque<BoardFault>,
    /// Addresses (lower case) whose invitations fail at Miro, besides
    /// those at [`crate::FAILING_INVITATION_DOMAIN`].
    pub(crate) failing_invitations: Vec<String>,
    /// Every token-endpoint call answers this status with Miro's error body.
    pub(crate) token_status: Option<u16>,
    /// A refresh rotates the tokens, then its answer never comes.
    pub(crate) stall_refresh: bool,
    /// Refreshes take effect (rotate) at once, but the answer reaches the
    /// client only after this many milliseconds.
    pub(crate) refresh_answer_delay_ms: Option<u64>,
    /// One fault per token call, in order, before `token_fault`.
    pub(crate) token_queue: VecDeque<TokenFault>,
    /// Every token call suffers this until cleared.
    pub(crate) token_fault: Option<TokenFault>,
    /// Revocation answers this status and revokes nothing.
    pub(crate) revoke_status: Option<u16>,
    /// The token response's `expires_in`, whatever the real lifetime.
    pub(crate) expires_in: Option<Value>,
    /// The `viewLink` of created boards.
    pub(crate) view_link: Option<String>,
    /// Bytes of padding in 201 board bodies.
    pub(crate) board_padding: Option<usize>,
    /// Bytes of padding in 200 token bodies.
    pub(crate) token_padding: Option<usize>,
}
impl Faults {
    /// The queue of an item call of `kind`.
    pub(crate) fn item_queue(&mut self, kind: ItemCallKind) -> &mut VecDeque<BoardFault> {
        match kind {
            ItemCallKind::Bulk { .. } => &mut self.bulk,
            ItemCallKind::Frame => &mut self.frame,
            ItemCallKind::Connector => &mut self.connector,
            ItemCallKind::ListItems | ItemCallKind::ListConnectors => &mut self.list,
            ItemCallKind::DeleteBoard => &mut self.delete,
        }
    }
}

impl Emulator {
    /// Every token-endpoint call answers `status` (e.g. 503) with Miro's
    /// error body until set to `None`.
    pub fn fail_token_endpoint(&self, status: Option<u16>) {
        self.shared.world().faults.token_status = status;
    }

    /// Every refresh takes effect at once (it rotates) and is answered
    /// after `ms`: a slow network between the client and Miro.
    pub fn delay_refresh_answers(&self, ms: Option<u64>) {
        self.shared.world().faults.refresh_answer_delay_ms = ms;
    }

    /// Refreshes rotate at once (the old pair dies) but are never answered:
    /// what a client sees that freezes right after Miro answered.
    pub fn stall_refreshes(&self, stall: bool) {
        self.shared.world().faults.stall_refresh = stall;
    }

    /// Queues faults for the next token-endpoint calls, one a call, in order
    /// (ahead of [`Emulator::set_token_fault`] and
    /// [`Emulator::fail_token_endpoint`]).
    pub fn inject_token_faults(&self, faults: &[TokenFault]) {
        self.shared
            .world()
            .faults
            .token_queue
            .extend(faults.iter().copied());
    }

    /// Every token-endpoint call suffers `fault` until set to `None`.
    pub fn set_token_fault(&self, fault: Option<TokenFault>) {
        self.shared.world().faults.token_fault = fault;
    }

    /// Successful token responses carry this `expires_in` (any JSON, e.g.
    /// `json!(u64::MAX)`), whatever the tokens' real lifetime; `None`: the truth.
    pub fn override_expires_in(&self, value: Option<Value>) {
        self.shared.world().faults.expires_in = value;
    }

    /// Created and copied boards' 201 bodies carry this `viewLink` (e.g.
    /// `javascript:alert(1)`); `None`: the emulator's own link,
    /// `{base_url}/app/board/{id}` (the drawn board).
    pub fn override_view_link(&self, link: Option<String>) {
        self.shared.world().faults.view_link = link;
    }

    /// 201 board bodies carry an extra `_padding` string of this many bytes
    /// (see [`crate::OVERSIZE_PADDING`]), sent chunked without `Content-Length`.
    /// The board is created all the same.
    pub fn pad_board_bodies(&self, bytes: Option<usize>) {
        self.shared.world().faults.board_padding = bytes;
    }

    /// 200 token bodies carry an extra `_padding` string of this many bytes,
    /// sent chunked without `Content-Length`. The grant happens all the same
    /// (the code is used, the refresh token rotated).
    pub fn pad_token_bodies(&self, bytes: Option<usize>) {
        self.shared.world().faults.token_padding = bytes;
    }

    /// Queues faults for the next board creations, in order.
    pub fn inject_board_faults(&self, faults: &[BoardFault]) {
        self.shared
            .world()
            .faults
            .board
            .extend(faults.iter().copied());
    }

    /// Queues faults for the next board copies, in order.
    pub fn inject_copy_faults(&self, faults: &[BoardFault]) {
        self.shared
            .world()
            .faults
            .copy
            .extend(faults.iter().copied());
    }

    /// Queues faults for the next member invitations, in order.
    pub fn inject_member_faults(&self, faults: &[BoardFault]) {
        self.shared
            .world()
            .faults
            .members
            .extend(faults.iter().copied());
    }

    /// Queues faults for the next item calls of `kind`, in order, one a
    /// call. The queues: bulk creations (`Bulk { .. }`, whatever its
    /// `items`), frames, connectors, listings (`ListItems` and
    /// `ListConnectors` share one) and board deletions.
    pub fn inject_item_faults(&self, kind: ItemCallKind, faults: &[BoardFault]) {
        let mut world = self.shared.world();
        world.faults.item_queue(kind).extend(faults.iter().copied());
    }

    /// Drops the item-call faults still queued, of every kind.
    pub fn clear_item_faults(&self) {
        let mut world = self.shared.world();
        for kind in [
            ItemCallKind::Bulk { items: 0 },
            ItemCallKind::Frame,
            ItemCallKind::Connector,
            ItemCallKind::ListItems,
            ItemCallKind::DeleteBoard,
        ] {
            world.faults.item_queue(kind).clear();
        }
    }

    /// Drops the member-invitation faults still queued.
    pub fn clear_member_faults(&self) {
        self.shared.world().faults.members.clear();
    }

    /// From now on, invitations to these addresses (any case) fail at Miro:
    /// they come back in the 201's `failed` list, `INVITATION_FAILED`.
    /// Adds to the earlier ones; addresses at
    /// [`crate::FAILING_INVITATION_DOMAIN`] always fail.
    pub fn fail_invitations_for(&self, emails: &[&str]) {
        self.shared
            .world()
            .faults
            .failing_invitations
            .extend(emails.iter().map(|e| e.to_lowercase()));
    }

    /// Revocation answers `status` with Miro's error body and revokes
    /// nothing, until set to `None`.
    pub fn fail_revoke(&self, status: Option<u16>) {
        self.shared.world().faults.revoke_status = status;
    }
}

/// Miro's error body for an injected status.
pub(crate) fn injected_error(status: u16, fallback: StatusCode) -> Response {
    let status = status_or(status, fallback);
    match status.as_u16() {
        429 => miro_error(status, "tooManyRequests", "Request rate limit exceed"),
        400..=499 => miro_error(status, "oauthError", "Injected fault."),
        _ => miro_error(status, "internalError", "Injected fault."),
    }
}

const MAINTENANCE_PAGE: &str = "<!doctype html><html><head><title>Miro is under maintenance</title>\
</head><body><h1>We'll be back soon</h1><p>Miro is undergoing scheduled maintenance.</p></body></html>";

const PROXY_ERROR_PAGE: &str = "<html><head><title>Error</title></head><body>\
<center><h1>Bad request</h1></center><hr><center>cloudfront</center></body></html>";

/// What a faulted token call answers (it consumes nothing), and whether to
/// withhold the answer.
pub(crate) fn token_fault(world: &World, fault: TokenFault) -> (Response, bool) {
    let response = match fault {
        TokenFault::RateLimited {
            retry_after,
            reset_in,
        } => {
            let mut headers = vec![
                ("x-ratelimit-limit", "100000".to_string()),
                ("x-ratelimit-remaining", "0".to_string()),
            ];
            if let Some(seconds) = retry_after {
                headers.push(("retry-after", seconds.to_string()));
            }
            if let Some(seconds) = reset_in {
                headers.push((
                    "x-ratelimit-reset",
                    world.now().saturating_add(seconds).to_string(),
                ));
            }
            with_headers(
                miro_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "tooManyRequests",
                    "Request rate limit exceed",
                ),
                headers,
            )
        }
        TokenFault::Redirect => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::FOUND;
            r.headers_mut().insert(
                header::LOCATION,
                HeaderValue::from_static("https://miro.com/login"),
            );
            r
        }
        TokenFault::HtmlOk => html_response(StatusCode::OK, MAINTENANCE_PAGE),
        TokenFault::EmptyOk => {
            let mut r = Response::new(Body::empty());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
            r
        }
        TokenFault::Status(status) => injected_error(status, StatusCode::SERVICE_UNAVAILABLE),
        TokenFault::HtmlError(status) => {
            html_response(status_or(status, StatusCode::BAD_GATEWAY), PROXY_ERROR_PAGE)
        }
        TokenFault::Stall => return (StatusCode::GATEWAY_TIMEOUT.into_response(), true),
    };
    (response, false)
}

/// `body` (an object) as JSON with an extra `_padding` string of `padding`
/// bytes first, streamed in chunks without `Content-Length`.
pub(crate) fn padded_json(status: StatusCode, body: Value, padding: usize) -> Response {
    use axum::body::Bytes;
    const CHUNK: usize = 64 * 1024;
    let rest = body.to_string();
    let rest = rest.strip_prefix('{').unwrap_or(&rest);
    let close = if rest == "}" { "\"" } else { "\"," };
    let mut chunks: Vec<Result<Bytes, std::io::Error>> =
        vec![Ok(Bytes::from_static(b"{\"_padding\":\""))];
    let filler = Bytes::from(vec![b'a'; CHUNK.min(padding)]);
    let mut left = padding;
    while left > 0 {
        let n = left.min(CHUNK);
        chunks.push(Ok(filler.slice(..n)));
        left -= n;
    }
    chunks.push(Ok(Bytes::from(format!("{close}{rest}"))));
    let mut response = Response::new(axum::body::Body::from_stream(futures_util::stream::iter(
        chunks,
    )));
    *response.status_mut() = status;
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
