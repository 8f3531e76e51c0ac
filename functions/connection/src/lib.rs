//! A user's Miro connections, one per team: `GET /miro/connections` (never a
//! token), `DELETE /miro/connections[/{team_id}]` (revoke at Miro, then
//! forget; idempotent), `PUT /miro/connections/{team_id}/default`.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use miro_connect::bootstrap::Needs;
use miro_connect::domain::is_miro_id;
use miro_connect::{http, Error, Service};

/// Exchanges, refreshes or revokes: the client secret and the sealing keys;
/// tells the app what happened to connections: the bus.
pub const NEEDS: Needs = Needs {
    secrets: true,
    events: true,
};

pub async fn handle(service: &Service, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(http::respond(
        service.bounded(connections(service, &req)).await,
    ))
}

async fn connections(service: &Service, req: &Request) -> Result<Response<Body>, Error> {
    let user = http::app_user(req)?;
    // API Gateway routed the request: `{team_id}` is there exactly on the
    // routes that name a team.
    let params = req.path_parameters();
    let team = match params.first("team_id") {
        Some(t) if is_miro_id(t) => Some(t),
        Some(_) => return Err(Error::InvalidParameter("team_id")),
        None => None,
    };
    match (req.method().clone(), team) {
        (Method::GET, None) => Ok(http::json(
            StatusCode::OK,
            &service.connections(&user).await?,
        )),
        (Method::DELETE, None) => {
            service.disconnect_all(&user).await?;
            Ok(http::no_content())
        }
        (Method::DELETE, Some(team)) => {
            service.disconnect(&user, team).await?;
            Ok(http::no_content())
        }
        (Method::PUT, Some(team)) => Ok(http::json(
            StatusCode::OK,
            &service.choose_default(&user, team).await?,
        )),
        _ => Err(Error::MethodNotAllowed),
    }
}
