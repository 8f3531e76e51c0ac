//! `POST /miro/authorizations`: start connecting the signed-in user to Miro.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use miro_connect::bootstrap::Needs;
use miro_connect::service::StartAuthorization;
use miro_connect::{http, Error, Service};

/// Only writes a pending authorization: no client secret, no sealing keys.
pub const NEEDS: Needs = Needs {
    secrets: false,
    events: false,
};

pub async fn handle(service: &Service, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(http::respond(service.bounded(start(service, &req)).await))
}

async fn start(service: &Service, req: &Request) -> Result<Response<Body>, Error> {
    http::require_method(req, Method::POST)?;
    let user = http::app_user(req)?;
    let body: StartAuthorization = http::json_body_or_default(req)?;
    let started = service.start_authorization(&user, body).await?;
    Ok(http::json(StatusCode::CREATED, &started))
}
