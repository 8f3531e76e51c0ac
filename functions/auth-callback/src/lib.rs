//! `GET /miro/callback` (Miro's redirect, no JWT) and
//! `POST /miro/authorizations/complete` (the app user's JWT).

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use miro_connect::bootstrap::Needs;
use miro_connect::secret::Secret;
use miro_connect::service::{CallbackOutcome, CallbackParams, CompleteAuthorization};
use miro_connect::{http, Error, Service};

/// Exchanges, refreshes or revokes: the client secret and the sealing keys;
/// tells the app what happened to connections: the bus.
pub const NEEDS: Needs = Needs {
    secrets: true,
    events: true,
};

pub async fn handle(service: &Service, req: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(match *req.method() {
        Method::GET => callback(service, &req).await,
        Method::POST => http::respond(service.bounded(complete(service, &req)).await),
        _ => http::error(&Error::MethodNotAllowed),
    })
}

/// Always a redirect or the static error page: this is a browser navigation.
async fn callback(service: &Service, req: &Request) -> Response<Body> {
    let Ok(pairs) = http::query_pairs(req) else {
        return http::error_page(StatusCode::BAD_REQUEST);
    };
    let mut params = CallbackParams::default();
    for (key, value) in pairs {
        match key.as_str() {
            "state" => params.state = Some(Secret::new(value)),
            "code" => params.code = Some(Secret::new(value)),
            "error" => params.error = Some(value),
            _ => {}
        }
    }
    match service.bounded(service.receive_callback(params)).await {
        Ok(CallbackOutcome::Redirect(to)) => http::see_other(&to),
        Ok(CallbackOutcome::Refused) => http::error_page(StatusCode::BAD_REQUEST),
        Err(e) => {
            lambda_http::tracing::error!(error = %e, code = e.code(), "callback failed");
            http::unavailable_page(&e)
        }
    }
}

async fn complete(service: &Service, req: &Request) -> Result<Response<Body>, Error> {
    let user = http::app_user(req)?;
    let body: CompleteAuthorization = http::json_body(req)?;
    let completed = service
        .complete_authorization(&user, &body.completion, body.flow_secret.as_deref())
        .await?;
    Ok(http::json(StatusCode::OK, &completed))
}
