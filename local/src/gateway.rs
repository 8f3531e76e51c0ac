//! What API Gateway does in front of the functions: route, verify the JWT,
//! hand the handler an HTTP API request with the authorizer's claims.

use axum::body::{to_bytes, Body as AxumBody};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use lambda_http::{Body, RequestExt};
use miro_connect::http::add_security_headers;
use miro_connect::http::authorizer_context;
use miro_connect::identity::AppUser;
use miro_connect::routes::{Function, Route, ROUTES};
use miro_connect::secret::Secret;
use miro_connect::Service;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

const ISSUER: &str = "miro-connect-local";
const AUDIENCE: &str = "miro-connect-demo";
const DEMO_PAGE: &str = include_str!("demo.html");
const DEMO_SCRIPT: &str = include_str!("demo.js");
const DEMO_STYLE: &str = include_str!("demo.css");
/// The browser client an app copies (`web/`), as the demo page imports it.
const CLIENT_MODULE: &str = include_str!("../../web/miro-connect.js");
/// Bigger than any valid body, so that the handlers see (and refuse) oversized ones.
const MAX_FORWARDED_BODY: usize = 1024 * 1024;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iss: String,
    aud: String,
    exp: u64,
}

/// Where the API routes go.
pub enum Backend {
    /// The handlers, called in this process.
    InProcess(Box<Service>),
    /// The real Lambda runtime: `cargo lambda watch`'s invoke endpoint, which
    /// takes whole API Gateway events.
    Lambda {
        http: reqwest::Client,
        invoke_base: String,
    },
}

pub struct Gateway {
    backend: Backend,
    /// A fresh signing key per process: demo sign-ins end with the server.
    jwt_key: Secret,
}

impl Gateway {
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            jwt_key: Secret::random(),
        }
    }

    pub fn router(self) -> Router {
        let gw = Arc::new(self);
        let mut router = Router::new()
            .route("/", get(demo_page))
            .route(
                "/demo.js",
                get(|| async { page("text/javascript; charset=utf-8", DEMO_SCRIPT) }),
            )
            .route(
                "/demo.css",
                get(|| async { page("text/css; charset=utf-8", DEMO_STYLE) }),
            )
            .route(
                "/web/miro-connect.js",
                get(|| async { page("text/javascript; charset=utf-8", CLIENT_MODULE) }),
            )
            .route("/demo/sign-in", post(sign_in));
        let mut paths: Vec<&'static str> = ROUTES.iter().map(|r| r.path).collect();
        paths.sort_unstable();
        paths.dedup();
        for path in paths {
            router = router.route(path, any(forward));
        }
        router
            .fallback(|| async {
                gateway_error(StatusCode::NOT_FOUND, "not_found", "no such route")
            })
            .with_state(gw)
    }

    fn issue(&self, sub: &str) -> Result<String, jsonwebtoken::errors::Error> {
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default()
            + 3600;
        let claims = Claims {
            sub: sub.into(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            exp,
        };
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(self.jwt_key.expose().as_bytes()),
        )
    }

    /// The verified `sub`, as API Gateway's JWT authorizer would pass it on.
    fn verify(&self, headers: &axum::http::HeaderMap) -> Option<String> {
        let token = headers
            .get(header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        let key = DecodingKey::from_secret(self.jwt_key.expose().as_bytes());
        decode::<Claims>(token, &key, &validation)
            .ok()
            .map(|d| d.claims.sub)
    }
}

/// The `Host` values this server answers to: its own address only. A page on
/// any other name (DNS rebinding: `evil.example` made to resolve to
/// 127.0.0.1) reaches the socket, but not the handlers, the emulator or the
/// demo sign-in.
#[derive(Clone, Debug)]
pub struct AllowedHosts(Arc<Vec<String>>);

impl AllowedHosts {
    /// The bound address; `localhost:PORT` (and the loopback addresses) when
    /// it is a loopback or wildcard bind; and the authority of `public_url`
    /// (with and without its scheme's default port).
    pub fn new(bound: SocketAddr, public_url: &str) -> Result<Self, String> {
        let port = bound.port();
        let mut hosts = vec![bound.to_string()];
        if bound.ip().is_loopback() || bound.ip().is_unspecified() {
            hosts.push(format!("localhost:{port}"));
        }
        if bound.ip().is_unspecified() {
            hosts.push(format!("127.0.0.1:{port}"));
            hosts.push(format!("[::1]:{port}"));
        }
        let uri: http::Uri = public_url
            .parse()
            .map_err(|_| format!("PUBLIC_URL is not a URL: {public_url}"))?;
        let default_port = match uri.scheme_str() {
            Some("http") => 80,
            Some("https") => 443,
            _ => return Err(format!("PUBLIC_URL must be an http(s) URL: {public_url}")),
        };
        let Some(host) = uri.host().filter(|h| !h.is_empty()) else {
            return Err(format!("PUBLIC_URL has no host: {public_url}"));
        };
        match uri.port_u16() {
            Some(p) if p != default_port => hosts.push(format!("{host}:{p}")),
            _ => {
                hosts.push(host.to_string());
                hosts.push(format!("{host}:{default_port}"));
            }
        }
        for h in &mut hosts {
            h.make_ascii_lowercase();
        }
        hosts.sort_unstable();
        hosts.dedup();
        Ok(Self(Arc::new(hosts)))
    }

    pub fn allows(&self, host: &str) -> bool {
        self.0.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    pub fn list(&self) -> &[String] {
        &self.0
    }
}

/// Puts the `Host` check in front of everything `router` serves.
pub fn only_for(router: Router, hosts: AllowedHosts) -> Router {
    router.layer(axum::middleware::from_fn_with_state(hosts, check_host))
}

async fn check_host(
    State(hosts): State<AllowedHosts>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let host = match request.headers().get(header::HOST) {
        Some(value) => value.to_str().ok(),
        // HTTP/2 carries it in the request target instead.
        None => request.uri().authority().map(|a| a.as_str()),
    };
    if host.is_some_and(|h| hosts.allows(h)) {
        return next.run(request).await;
    }
    gateway_error(
        StatusCode::MISDIRECTED_REQUEST,
        "host_not_allowed",
        "this server answers only to its own address (set PUBLIC_URL to the address you use)",
    )
}

fn gateway_error(status: StatusCode, code: &str, message: &str) -> Response {
    let mut response = (
        status,
        Json(serde_json::json!({ "error": code, "message": message })),
    )
        .into_response();
    add_security_headers(response.headers_mut());
    response
}

fn page(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let h = response.headers_mut();
    add_security_headers(h);
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    );
    response
}

async fn demo_page() -> Response {
    page("text/html; charset=utf-8", DEMO_PAGE)
}

#[derive(Deserialize)]
struct SignIn {
    user: String,
}

/// The demo app's own sign-in: any name becomes a user with a signed JWT.
async fn sign_in(State(gw): State<Arc<Gateway>>, body: axum::body::Bytes) -> Response {
    let Ok(SignIn { user }) = serde_json::from_slice::<SignIn>(&body) else {
        return gateway_error(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "expected {\"user\": \"name\"}",
        );
    };
    if AppUser::parse(&user).is_err() || user.len() > 64 {
        return gateway_error(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "user must be 1 to 64 characters",
        );
    }
    match gw.issue(&user) {
        Ok(token) => {
            // A bearer token: not cached, not sniffed, no Referer onward.
            let mut response =
                Json(serde_json::json!({ "token": token, "user": user })).into_response();
            add_security_headers(response.headers_mut());
            response
        }
        Err(_) => gateway_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "could not sign",
        ),
    }
}

async fn forward(State(gw): State<Arc<Gateway>>, request: Request) -> Response {
    // As API Gateway: one route per method and path; its authorizer runs first.
    let path = request.uri().path().to_string();
    let route = ROUTES.iter().find_map(|r| {
        (r.method == request.method().as_str())
            .then(|| r.matches(&path).map(|params| (r, params)))
            .flatten()
    });
    let Some((route, params)) = route else {
        let allowed: Vec<&str> = ROUTES
            .iter()
            .filter(|r| r.matches(&path).is_some())
            .map(|r| r.method)
            .collect();
        if allowed.is_empty() {
            return gateway_error(StatusCode::NOT_FOUND, "not_found", "no such route");
        }
        let mut response = gateway_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this path does not take that method",
        );
        if let Ok(allow) = HeaderValue::from_str(&allowed.join(", ")) {
            response.headers_mut().insert(header::ALLOW, allow);
        }
        return response;
    };
    let sub = if route.authorized {
        match gw.verify(request.headers()) {
            Some(sub) => Some(sub),
            // API Gateway's own answer to a missing or bad JWT.
            None => {
                return gateway_error(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "a valid JWT is required",
                )
            }
        }
    } else {
        None
    };
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_FORWARDED_BODY).await else {
        return gateway_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the body is too large",
        );
    };
    let params: HashMap<String, String> = params
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect();
    match &gw.backend {
        Backend::InProcess(service) => {
            in_process(service, route.function, parts, bytes.to_vec(), sub, params).await
        }
        Backend::Lambda { http, invoke_base } => {
            let event = api_gateway_event(route, &parts, &bytes, sub.as_deref(), &params);
            match invoke(http, invoke_base, route.function, &event).await {
                Some(response) => response,
                None => gateway_error(
                    StatusCode::BAD_GATEWAY,
                    "bad_gateway",
                    "the function did not answer",
                ),
            }
        }
    }
}

async fn in_process(
    service: &Service,
    function: Function,
    parts: axum::http::request::Parts,
    bytes: Vec<u8>,
    sub: Option<String>,
    params: HashMap<String, String>,
) -> Response {
    let body = if bytes.is_empty() {
        Body::Empty
    } else {
        Body::Binary(bytes)
    };
    let mut lambda_request =
        lambda_http::Request::from_parts(parts, body).with_path_parameters(params);
    if let Some(sub) = sub {
        lambda_request = lambda_request.with_request_context(authorizer_context(&sub));
    }
    // No wildcard: a function added to `Function` must be placed here.
    let outcome = match function {
        Function::AuthStart => auth_start::handle(service, lambda_request).await,
        Function::AuthCallback => auth_callback::handle(service, lambda_request).await,
        Function::CreateBoard => create_board::handle(service, lambda_request).await,
        Function::Connection => connection::handle(service, lambda_request).await,
        // Behind no route: an SQS consumer and a scheduled sweep.
        Function::BoardEvents | Function::KeepAlive => {
            return gateway_error(StatusCode::NOT_FOUND, "not_found", "no such function")
        }
    };
    match outcome {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            Response::from_parts(parts, AxumBody::from(body_bytes(body)))
        }
        Err(_) => gateway_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the function failed",
        ),
    }
}

fn body_bytes(body: Body) -> Vec<u8> {
    match body {
        Body::Empty => Vec::new(),
        Body::Text(t) => t.into_bytes(),
        Body::Binary(b) => b,
        _ => Vec::new(),
    }
}

/// The HTTP API (payload 2.0) event API Gateway would send, with the JWT
/// authorizer's claims where the route has one.
fn api_gateway_event(
    route: &Route,
    parts: &axum::http::request::Parts,
    body: &[u8],
    sub: Option<&str>,
    params: &HashMap<String, String>,
) -> serde_json::Value {
    use base64::Engine;
    let method = parts.method.as_str();
    let path = parts.uri.path();
    let mut headers = serde_json::Map::new();
    for (name, value) in &parts.headers {
        if let Ok(value) = value.to_str() {
            let joined = match headers.get(name.as_str()).and_then(|v| v.as_str()) {
                Some(earlier) => format!("{earlier},{value}"),
                None => value.to_string(),
            };
            headers.insert(name.as_str().to_string(), serde_json::Value::String(joined));
        }
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    let mut context = serde_json::json!({
        "accountId": "000000000000",
        "apiId": "local",
        "domainName": parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost"),
        "http": { "method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "" },
        "requestId": uuid::Uuid::new_v4().to_string(),
        "routeKey": format!("{method} {}", route.path),
        "stage": "$default",
        "timeEpoch": now_ms,
    });
    if let Some(sub) = sub {
        context["authorizer"] =
            serde_json::json!({ "jwt": { "claims": { "sub": sub }, "scopes": null } });
    }
    serde_json::json!({
        "version": "2.0",
        "routeKey": format!("{method} {}", route.path),
        "rawPath": path,
        "pathParameters": (!params.is_empty()).then_some(params),
        "rawQueryString": parts.uri.query().unwrap_or_default(),
        "headers": headers,
        "requestContext": context,
        "body": (!body.is_empty()).then(|| base64::engine::general_purpose::STANDARD.encode(body)),
        "isBase64Encoded": !body.is_empty(),
    })
}

/// Invokes `function` through the Lambda invoke API and turns its API
/// Gateway response back into HTTP.
async fn invoke(
    http: &reqwest::Client,
    base: &str,
    function: Function,
    event: &serde_json::Value,
) -> Option<Response> {
    use base64::Engine;
    use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpResponse;
    let url = format!("{base}/2015-03-31/functions/{function}/invocations");
    let answer = http.post(url).json(event).send().await.ok()?;
    let reply: ApiGatewayV2httpResponse = answer.json().await.ok()?;
    let bytes = match reply.body {
        Some(Body::Text(t)) if reply.is_base64_encoded => {
            base64::engine::general_purpose::STANDARD.decode(t).ok()?
        }
        Some(body) => body_bytes(body),
        None => Vec::new(),
    };
    let mut response = Response::new(AxumBody::from(bytes));
    *response.status_mut() = StatusCode::from_u16(u16::try_from(reply.status_code).ok()?).ok()?;
    *response.headers_mut() = reply.headers;
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::AllowedHosts;

    #[test]
    fn a_loopback_bind_answers_to_its_address_localhost_and_the_public_url() {
        let hosts = AllowedHosts::new(
            "127.0.0.1:3000".parse().unwrap(),
            "http://Demo.Example:8080",
        )
        .unwrap();
        for ok in [
            "127.0.0.1:3000",
            "localhost:3000",
            "LOCALHOST:3000",
            "demo.example:8080",
        ] {
            assert!(hosts.allows(ok), "{ok}");
        }
        for refused in [
            "evil.example",
            "evil.example:3000",
            "127.0.0.1",
            "127.0.0.1:3001",
            "localhost",
            "[::1]:3000",
            "demo.example",
            "",
        ] {
            assert!(!hosts.allows(refused), "{refused}");
        }
    }

    #[test]
    fn a_public_url_on_its_default_port_is_allowed_with_and_without_it() {
        let hosts =
            AllowedHosts::new("0.0.0.0:3000".parse().unwrap(), "https://demo.example/").unwrap();
        for ok in [
            "demo.example",
            "demo.example:443",
            "127.0.0.1:3000",
            "localhost:3000",
            "0.0.0.0:3000",
        ] {
            assert!(hosts.allows(ok), "{ok}");
        }
        assert!(!hosts.allows("demo.example:80"));
        assert!(!hosts.allows("other.example"));
    }

    #[test]
    fn a_public_url_that_is_not_http_is_refused() {
        let bound = "127.0.0.1:3000".parse().unwrap();
        assert!(AllowedHosts::new(bound, "ftp://x.example").is_err());
        assert!(AllowedHosts::new(bound, "not a url").is_err());
        assert!(AllowedHosts::new(bound, "/relative").is_err());
    }
}
