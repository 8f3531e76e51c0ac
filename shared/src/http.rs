//! The HTTP edge shared by every handler: JSON bodies in, JSON and redirects
//! out, errors mapped to responses in one place, security headers everywhere.

use crate::error::Error;
use crate::identity::AppUser;
use lambda_http::http::{header, HeaderValue, Method, Response, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

/// Larger bodies are refused before parsing; the biggest valid one is ~2 KiB.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Every response: nothing cached, no `Referer` carrying a code or a state onward.
pub fn add_security_headers(h: &mut lambda_http::http::HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

fn secure(mut response: Response<Body>) -> Response<Body> {
    add_security_headers(response.headers_mut());
    response
}

fn build(status: StatusCode, content_type: &'static str, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    secure(response)
}

pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_string(value) {
        Ok(text) => build(status, "application/json", Body::Text(text)),
        Err(e) => error(&Error::Internal(e.to_string())),
    }
}

pub fn no_content() -> Response<Body> {
    build(StatusCode::NO_CONTENT, "application/json", Body::Empty)
}

/// The HTTP status of an error: 4xx for anything the caller can fix.
#[cfg_attr(feature = "mutant", allow(unreachable_patterns))]
pub fn status(e: &Error) -> StatusCode {
    let code = match e {
        Error::Unauthenticated | Error::AuthorizationRequired(_) => 401,
        Error::CompletionForbidden => 403,
        Error::NotConnected | Error::BoardNotFound => 404,
        Error::IdempotencyInProgress => 409,
        Error::MiroOutcomeUnknown => 502,
        Error::MethodNotAllowed => 405,
        Error::PayloadTooLarge(_) => 413,
        Error::UnsupportedMediaType => 415,
        Error::MalformedJson
        | Error::InvalidParameter(_)
        | Error::ReturnToNotAllowed
        | Error::InvalidCompletion => 400,
        // The one rule the `mutant` feature flips, so that the fuzzers and
        // schemathesis can show that they catch a handler that breaks it.
        #[cfg(feature = "mutant")]
        Error::InvalidBoard(_) => 500,
        Error::InvalidBody(_)
        | Error::InvalidBoard(_)
        | Error::InvalidItem { .. }
        | Error::TemplateNotFound
        | Error::MiroRejected { .. }
        | Error::IdempotencyKeyReused => 422,
        Error::MiroRateLimited { .. } | Error::TooManyAuthorizations { .. } => 429,
        Error::MiroUnavailable { .. }
        | Error::MiroMisconfigured { .. }
        | Error::Storage(_)
        | Error::RequestTimeout => 503,
        Error::Internal(_) => 500,
    };
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Seconds for `Retry-After`, where waiting is the remedy.
pub fn retry_after(e: &Error) -> Option<u64> {
    match e {
        Error::MiroRateLimited {
            retry_after_seconds,
        }
        | Error::MiroUnavailable {
            retry_after_seconds,
        }
        | Error::MiroMisconfigured {
            retry_after_seconds,
        }
        | Error::TooManyAuthorizations {
            retry_after_seconds,
        } => Some(*retry_after_seconds),
        Error::Storage(_) | Error::IdempotencyInProgress | Error::RequestTimeout => Some(1),
        _ => None,
    }
}

/// `{"error": code, "message": …}`, plus what the one-click path needs.
pub fn error(e: &Error) -> Response<Body> {
    let status = status(e);
    let body = match e {
        Error::AuthorizationRequired(Some(flow)) => json!({
            "error": e.code(),
            "message": e.to_string(),
            "authorize_url": flow.authorize_url,
            "expires_at": flow.expires_at,
            "flow_secret": flow.flow_secret,
        }),
        Error::InvalidItem { field, .. } => json!({
            "error": e.code(),
            "message": e.to_string(),
            "field": field,
        }),
        _ => json!({ "error": e.code(), "message": e.to_string() }),
    };
    if status.is_server_error() {
        tracing::error!(error = %e, code = e.code(), "request failed");
    }
    let mut response = build(status, "application/json", Body::Text(body.to_string()));
    if let Some(seconds) = retry_after(e) {
        if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    response
}

/// The one place a handler's outcome becomes a response.
pub fn respond(outcome: Result<Response<Body>, Error>) -> Response<Body> {
    outcome.unwrap_or_else(|e| error(&e))
}

pub fn see_other(location: &url::Url) -> Response<Body> {
    let mut response = build(
        StatusCode::SEE_OTHER,
        "text/plain; charset=utf-8",
        Body::Empty,
    );
    match HeaderValue::from_str(location.as_str()) {
        Ok(v) => {
            response.headers_mut().insert(header::LOCATION, v);
            response
        }
        Err(_) => error_page(StatusCode::BAD_REQUEST),
    }
}

/// A fixed page: it reflects nothing from the request and loads nothing.
pub fn error_page(status: StatusCode) -> Response<Body> {
    const PAGE: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>Miro authorization failed</title></head><body>\
<h1>Miro authorization failed</h1>\
<p>This sign-in link is invalid, expired or was already used. \
Go back to the app and start again.</p></body></html>";
    let mut response = build(status, "text/html; charset=utf-8", Body::Text(PAGE.into()));
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    response
}

/// The callback's answer when storage or Miro failed: the fixed page, as a
/// 503 with `Retry-After` (a browser navigation gets a page, not JSON).
pub fn unavailable_page(e: &Error) -> Response<Body> {
    let mut response = error_page(StatusCode::SERVICE_UNAVAILABLE);
    let seconds = retry_after(e).unwrap_or(1);
    if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

pub fn require_method(req: &Request, method: Method) -> Result<(), Error> {
    if req.method() == method {
        Ok(())
    } else {
        Err(Error::MethodNotAllowed)
    }
}

/// The JSON body, or `T::default()` when there is none.
pub fn json_body_or_default<T: DeserializeOwned + Default>(req: &Request) -> Result<T, Error> {
    if body_bytes(req).is_empty() {
        return Ok(T::default());
    }
    json_body(req)
}

pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, Error> {
    let bytes = body_bytes(req);
    if bytes.len() > MAX_BODY_BYTES {
        return Err(Error::PayloadTooLarge(MAX_BODY_BYTES));
    }
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(Error::UnsupportedMediaType);
    }
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|_| Error::MalformedJson)?;
    if !value.is_object() {
        return Err(Error::InvalidBody("the body must be a JSON object".into()));
    }
    T::deserialize(value).map_err(|e| Error::InvalidBody(data_error_message(&e)))
}

/// serde's message names the field and what was expected; it never quotes
/// more than a field name or an enum value from the input.
fn data_error_message(e: &serde_json::Error) -> String {
    let mut text = e.to_string();
    if let Some(pos) = text.find(" at line ") {
        text.truncate(pos);
    }
    text.truncate(text.floor_char_boundary(200));
    text
}

fn body_bytes(req: &Request) -> &[u8] {
    match req.body() {
        Body::Empty => &[],
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    }
}

/// Query parameters, refusing duplicates (a smuggling vector) by reporting them.
pub fn query_pairs(req: &Request) -> Result<Vec<(String, String)>, Error> {
    let query = req.uri().query().unwrap_or_default();
    if query.len() > 8 * 1024 {
        return Err(Error::InvalidParameter("query"));
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if pairs.iter().any(|(seen, _)| *seen == k) {
            return Err(Error::InvalidParameter("query"));
        }
        pairs.push((k.into_owned(), v.into_owned()));
    }
    Ok(pairs)
}

/// The user from the request context's JWT claims. Nothing in the body, the
/// query or a header is ever taken as the user.
pub fn app_user(req: &Request) -> Result<AppUser, Error> {
    let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref() else {
        return Err(Error::Unauthenticated);
    };
    let sub = ctx
        .authorizer
        .as_ref()
        .and_then(|a| a.jwt.as_ref())
        .and_then(|jwt| jwt.claims.get("sub"))
        .ok_or(Error::Unauthenticated)?;
    Ok(AppUser::parse(sub)?)
}

/// The request context API Gateway's JWT authorizer produces for `sub`: what
/// the local server and the tests hand a handler after verifying a JWT.
pub fn authorizer_context(sub: &str) -> RequestContext {
    use lambda_http::aws_lambda_events::apigw::{
        ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription,
        ApiGatewayV2httpRequestContext,
    };
    let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
    jwt.claims.insert("sub".to_string(), sub.to_string());
    let mut authorizer = ApiGatewayRequestAuthorizer::default();
    authorizer.jwt = Some(jwt);
    let mut ctx = ApiGatewayV2httpRequestContext::default();
    ctx.authorizer = Some(authorizer);
    RequestContext::ApiGatewayV2(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_faults_of_miro_or_of_this_service_are_5xx() {
        for e in crate::error::examples() {
            let server_side = matches!(
                e,
                Error::MiroUnavailable { .. }
                    | Error::MiroMisconfigured { .. }
                    | Error::MiroOutcomeUnknown
                    | Error::Storage(_)
                    | Error::RequestTimeout
                    | Error::Internal(_)
            );
            assert_eq!(status(&e).is_server_error(), server_side, "{e:?}");
        }
    }

    #[test]
    fn reads_sub_from_authorizer_claims_only() {
        let req = Request::default().with_request_context(authorizer_context("user-1"));
        assert_eq!(app_user(&req).expect("user").as_str(), "user-1");

        let mut spoofed = Request::default();
        spoofed
            .headers_mut()
            .insert("x-user-id", HeaderValue::from_static("user-1"));
        assert!(matches!(app_user(&spoofed), Err(Error::Unauthenticated)));
    }
}
