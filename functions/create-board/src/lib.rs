//! `POST /boards`: a Miro board for the signed-in user, or the 401 that asks
//! them to connect first (and creates the board once they have).

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use miro_connect::domain::BoardRequest;
use miro_connect::{http, identity, Error, Service};

pub async fn handle(service: &Service, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(http::respond(create(service, &req).await))
}

async fn create(service: &Service, req: &Request) -> Result<Response<Body>, Error> {
    http::require_method(req, Method::POST)?;
    let user = identity::app_user(req)?;
    let body: BoardRequest = http::json_body_or_default(req)?;
    let board = service.create_board(&user, body).await?;
    Ok(http::json(
        StatusCode::CREATED,
        &serde_json::json!({ "board": board }),
    ))
}
