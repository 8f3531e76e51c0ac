//! `POST /boards`: a Miro board for the signed-in user (with the app's own
//! content, when it sends some), or the 401 that asks them to connect first
//! (and creates the board once they have). `POST /boards/{board_id}/items`:
//! content for a board that exists. With an `Idempotency-Key` header, a
//! repeat answers the first request's answer.

use lambda_http::http::{HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use miro_connect::bootstrap::Needs;
use miro_connect::domain::{BoardRequest, ContentRequest};
use miro_connect::service::Deadline;
use miro_connect::{http, Error, Service};

/// Exchanges, refreshes or revokes: the client secret and the sealing keys;
/// tells the app what happened to connections: the bus.
pub const NEEDS: Needs = Needs {
    secrets: true,
    events: true,
};

pub async fn handle(service: &Service, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(http::respond(service.bounded(create(service, &req)).await))
}

async fn create(service: &Service, req: &Request) -> Result<Response<Body>, Error> {
    http::require_method(req, Method::POST)?;
    let user = http::app_user(req)?;
    let key = match req.headers().get("idempotency-key") {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| Error::InvalidParameter("Idempotency-Key"))?,
        ),
        None => None,
    };
    // API Gateway routed the request: `{board_id}` is there exactly on the
    // items route.
    let params = req.path_parameters();
    if let Some(board_id) = params.first("board_id") {
        let body: ContentRequest = http::json_body(req)?;
        let added = service
            .add_items(&user, board_id, key, body, Deadline::no_waiting())
            .await?;
        return Ok(replayed(http::json(StatusCode::OK, &added), added.replayed));
    }
    let body: BoardRequest = http::json_body_or_default(req)?;
    let created = service
        .create_board(&user, key, body, Deadline::no_waiting())
        .await?;
    Ok(replayed(
        http::json(StatusCode::CREATED, &created),
        created.replayed,
    ))
}

fn replayed(mut response: Response<Body>, replayed: bool) -> Response<Body> {
    if replayed {
        response
            .headers_mut()
            .insert("idempotency-replayed", HeaderValue::from_static("true"));
    }
    response
}
