//! `GET /miro/connection` (status, never a token) and `DELETE /miro/connection`
//! (revoke at Miro, then forget; idempotent).

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use miro_connect::bootstrap::Needs;
use miro_connect::{http, Error, Service};

/// Exchanges, refreshes or revokes: the client secret and the sealing keys.
pub const NEEDS: Needs = Needs {
    secrets: true,
    events: false,
};

pub async fn handle(service: &Service, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(http::respond(
        service.bounded(connection(service, &req)).await,
    ))
}

async fn connection(service: &Service, req: &Request) -> Result<Response<Body>, Error> {
    let user = http::app_user(req)?;
    match *req.method() {
        Method::GET => {
            let status = service.connection_status(&user).await?;
            Ok(http::json(StatusCode::OK, &status))
        }
        Method::DELETE => {
            service.disconnect(&user).await?;
            Ok(http::no_content())
        }
        _ => Err(Error::MethodNotAllowed),
    }
}
