//! `POST /boards`: a Miro board for the signed-in user, or the 401 that asks
//! them to connect first (and creates the board once they have). With an
//! `Idempotency-Key` header, a repeat returns the first board.

use lambda_http::http::{HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, Response};
use miro_connect::bootstrap::Needs;
use miro_connect::domain::BoardRequest;
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
    let body: BoardRequest = http::json_body_or_default(req)?;
    let created = service
        .create_board(&user, key, body, Deadline::no_waiting())
        .await?;
    let mut response = http::json(StatusCode::CREATED, &created);
    if created.replayed {
        response
            .headers_mut()
            .insert("idempotency-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}
