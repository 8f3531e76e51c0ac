//! Miro's OAuth: the authorize page, the token endpoint, the token context
//! and revocation.

use super::{
    html_escape, miro_error, padded_json, status_or, user_name, with_headers, AccessRecord,
    CodeRecord, RefreshRecord, Shared, TokenFault, World, MIRO_USER_ID, REFRESH_TOKEN_LIFETIME,
    TEAM_ID, TEAM_NAME,
};
use super::{ATTACKER_MIRO_USER_ID, MIRO_USER_NAME};
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Json;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

fn query_map(raw: &Option<String>) -> HashMap<String, String> {
    url::form_urlencoded::parse(raw.as_deref().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// Miro's own error page for a bad authorize request: it does not redirect.
fn authorize_refusal(message: &str) -> Response {
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Miro</title></head>\
         <body><h1>Something went wrong</h1><p id=\"error\">{}</p></body></html>",
        html_escape(message)
    );
    (StatusCode::BAD_REQUEST, Html(page)).into_response()
}

/// A valid authorize request.
struct Authorize {
    redirect_uri: String,
    /// The PKCE S256 challenge, when one came.
    challenge: Option<String>,
}

/// RFC 7636 §4.2: an S256 challenge is BASE64URL-NOPAD of a SHA-256 hash.
fn valid_s256_challenge(c: &str) -> bool {
    c.len() == 43
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// RFC 7636 §4.1: 43 to 128 unreserved characters.
fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

pub(super) fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn check_authorize(
    shared: &Shared,
    q: &HashMap<String, String>,
) -> Result<Authorize, &'static str> {
    if q.get("response_type").map(String::as_str) != Some("code") {
        return Err("response_type must be code");
    }
    if q.get("client_id") != Some(&shared.config.client_id) {
        return Err("Unknown client_id");
    }
    let Some(redirect_uri) = q.get("redirect_uri") else {
        return Err("redirect_uri is required");
    };
    if !shared
        .config
        .redirect_uris
        .iter()
        .any(|r| r == redirect_uri)
    {
        return Err("Redirect URI mismatch.");
    }
    let challenge = match (q.get("code_challenge"), q.get("code_challenge_method")) {
        (None, None) => None,
        (None, Some(_)) => return Err("code_challenge is required."),
        // An absent method means `plain` (RFC 7636), which Miro refuses.
        (Some(_), m) if m.map(String::as_str) != Some("S256") => {
            return Err("code_challenge_method must be S256.")
        }
        (Some(c), _) if !valid_s256_challenge(c) => return Err("Invalid code_challenge."),
        (Some(c), _) => Some(c.clone()),
    };
    Ok(Authorize {
        redirect_uri: redirect_uri.clone(),
        challenge,
    })
}

pub(super) async fn authorize_page(
    State(shared): State<Arc<Shared>>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = query_map(&raw);
    if let Err(message) = check_authorize(&shared, &q) {
        return authorize_refusal(message);
    }
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>Miro emulator: authorize app</title></head>\
<body style=\"font-family:sans-serif;max-width:32rem;margin:3rem auto\">\
<h1>Install app and authorize access</h1>\
<p>Signed in to Miro (emulated) as <strong>{user}</strong>, team <strong>{team}</strong>.</p>\
<p>The app asks for: {scopes}.</p>\
<form method=\"post\">\
<button name=\"decision\" value=\"allow\" id=\"allow\">Allow</button> \
<button name=\"decision\" value=\"deny\" id=\"deny\">Deny</button> \
<button name=\"miro_user\" value=\"attacker\" id=\"allow-as-attacker\">Allow as {attacker}</button>\
</form></body></html>",
        user = MIRO_USER_NAME,
        team = TEAM_NAME,
        attacker = user_name(ATTACKER_MIRO_USER_ID),
        scopes = html_escape(&shared.config.scopes.join(", ")),
    );
    no_store(Html(page).into_response())
}

/// The authorize step's answers: not cached, and no `Referer` onward.
fn no_store(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

pub(super) async fn authorize_decision(
    State(shared): State<Arc<Shared>>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let q = query_map(&raw);
    let request = match check_authorize(&shared, &q) {
        Ok(r) => r,
        Err(message) => return authorize_refusal(message),
    };
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let Ok(mut target) = url::Url::parse(&request.redirect_uri) else {
        return authorize_refusal("Redirect URI mismatch.");
    };
    let as_attacker = form.get("miro_user").map(String::as_str) == Some("attacker");
    // The attacker's button carries no `decision`: pressing it allows.
    let allow = match form.get("decision").map(String::as_str) {
        Some(decision) => decision == "allow",
        None => as_attacker,
    };
    let miro_user_id = if as_attacker {
        ATTACKER_MIRO_USER_ID
    } else {
        MIRO_USER_ID
    };
    let mut world = shared.world();
    if request.challenge.is_some() {
        world.pkce_challenges += 1;
    }
    {
        let mut pairs = target.query_pairs_mut();
        if allow {
            let code = world.mint("code-");
            let issued_at_ms = world.now_ms();
            world.codes.insert(
                code.clone(),
                CodeRecord {
                    client_id: shared.config.client_id.clone(),
                    redirect_uri: request.redirect_uri.clone(),
                    issued_at_ms,
                    used: false,
                    challenge: request.challenge.clone(),
                    miro_user_id: miro_user_id.to_string(),
                },
            );
            pairs.append_pair("code", &code);
            if let Some(state) = q.get("state") {
                pairs.append_pair("state", state);
            }
            pairs.append_pair("client_id", &shared.config.client_id);
            pairs.append_pair("team_id", TEAM_ID);
        } else {
            pairs.append_pair("error", "access_denied");
            pairs.append_pair("error_description", "The user has denied access");
            if let Some(state) = q.get("state") {
                pairs.append_pair("state", state);
            }
        }
    }
    no_store(Redirect::to(target.as_str()).into_response())
}

pub(super) async fn token(
    State(shared): State<Arc<Shared>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (response, stall) = token_answer(&shared, raw, &headers, &body);
    if stall {
        std::future::pending::<()>().await;
    }
    let is_refresh =
        url::form_urlencoded::parse(&body).any(|(k, v)| k == "grant_type" && v == "refresh_token");
    let delay = shared.world().faults.refresh_answer_delay_ms;
    if let (Some(ms), true) = (delay, is_refresh) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    response
}

/// Miro's error body for an injected status.
pub(super) fn injected_error(status: u16, fallback: StatusCode) -> Response {
    let status = status_or(status, fallback);
    match status.as_u16() {
        429 => miro_error(status, "tooManyRequests", "Request rate limit exceed"),
        400..=499 => miro_error(status, "oauthError", "Injected fault."),
        _ => miro_error(status, "internalError", "Injected fault."),
    }
}

fn html_response(status: StatusCode, page: &'static str) -> Response {
    (status, Html(page)).into_response()
}

const MAINTENANCE_PAGE: &str = "<!doctype html><html><head><title>Miro is under maintenance</title>\
</head><body><h1>We'll be back soon</h1><p>Miro is undergoing scheduled maintenance.</p></body></html>";

const PROXY_ERROR_PAGE: &str = "<html><head><title>Error</title></head><body>\
<center><h1>Bad request</h1></center><hr><center>cloudfront</center></body></html>";

/// What a faulted token call answers (it consumes nothing), and whether to
/// withhold the answer.
fn token_fault(world: &World, fault: TokenFault) -> (Response, bool) {
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

/// The token endpoint's answer, and whether to withhold it (a stall).
fn token_answer(
    shared: &Shared,
    raw: Option<String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> (Response, bool) {
    let mut world = shared.world();
    world.token_calls += 1;
    let queued = world.faults.token_queue.pop_front();
    if let Some(fault) = queued.or(world.faults.token_fault) {
        return token_fault(&world, fault);
    }
    if let Some(status) = world.faults.token_status {
        return (
            miro_error(
                status_or(status, StatusCode::SERVICE_UNAVAILABLE),
                "internalError",
                "Injected fault.",
            ),
            false,
        );
    }
    let stall = world.faults.stall_refresh;
    let response = token_grant(shared, &mut world, raw, headers, body);
    let is_refresh =
        url::form_urlencoded::parse(body).any(|(k, v)| k == "grant_type" && v == "refresh_token");
    (response, stall && is_refresh)
}

fn oauth_error(status: StatusCode, message: &str) -> Response {
    miro_error(status, "oauthError", message)
}

fn token_grant(
    shared: &Shared,
    world: &mut World,
    raw: Option<String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let query = query_map(&raw);
    let mut form: HashMap<String, String> =
        url::form_urlencoded::parse(body).into_owned().collect();
    if shared.config.accept_query_parameters {
        // As real Miro does (and as Miro's own Node client sends them).
        form.extend(query);
    } else {
        // Real Miro would take these from the query too; this client must never
        // put a secret in a URL, so the emulator refuses it outright.
        if query.keys().any(|k| {
            k == "client_secret" || k == "code" || k == "refresh_token" || k == "code_verifier"
        }) {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "Secrets must not be sent in the URL.",
            );
        }
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return oauth_error(StatusCode::BAD_REQUEST, "Unsupported content type.");
        }
    }
    let config = &shared.config;
    if form.get("client_id") != Some(&config.client_id)
        || form.get("client_secret") != Some(&config.client_secret)
    {
        return oauth_error(StatusCode::UNAUTHORIZED, "Invalid client credentials.");
    }
    let now_ms = world.now_ms();
    let (first_grant, miro_user_id) = match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let code = form.get("code").cloned().unwrap_or_default();
            let redirect_uri = form.get("redirect_uri").cloned().unwrap_or_default();
            let Some(record) = world.codes.get_mut(&code) else {
                return oauth_error(StatusCode::BAD_REQUEST, "Invalid authorization code.");
            };
            if record.used
                || now_ms >= record.issued_at_ms + config.code_lifetime.saturating_mul(1000)
            {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "Authorization code expired or used.",
                );
            }
            if record.redirect_uri != redirect_uri || record.client_id != config.client_id {
                return oauth_error(StatusCode::BAD_REQUEST, "Redirect URI mismatch.");
            }
            if let Some(challenge) = &record.challenge {
                let verified = form
                    .get("code_verifier")
                    .is_some_and(|v| valid_verifier(v) && s256(v) == *challenge);
                if !verified {
                    record.used = true;
                    return oauth_error(StatusCode::BAD_REQUEST, "Invalid code verifier.");
                }
            }
            record.used = true;
            (true, record.miro_user_id.clone())
        }
        Some("refresh_token") => {
            let presented = form.get("refresh_token").cloned().unwrap_or_default();
            // Rotation: the old pair stops working at once; a reuse is refused.
            let Some(old) = world.refresh.remove(&presented) else {
                return oauth_error(StatusCode::BAD_REQUEST, "Invalid refresh token.");
            };
            if let Some(a) = world.access.get_mut(&old.access_token) {
                a.alive = false;
            }
            if now_ms >= old.expires_at_ms {
                return oauth_error(StatusCode::BAD_REQUEST, "Refresh token expired.");
            }
            (false, old.miro_user_id)
        }
        _ => return oauth_error(StatusCode::BAD_REQUEST, "Unsupported grant_type."),
    };

    let access_token = world.mint("access-");
    let expires_at_ms = config
        .access_token_lifetime
        .map(|l| now_ms + l.saturating_mul(1000));
    world.access.insert(
        access_token.clone(),
        AccessRecord {
            expires_at_ms,
            alive: true,
            miro_user_id: miro_user_id.clone(),
        },
    );
    let mut body = Map::new();
    body.insert("access_token".into(), json!(access_token));
    body.insert("token_type".into(), json!("bearer"));
    body.insert("scope".into(), json!(config.scopes.join(" ")));
    if let Some(lifetime) = config.access_token_lifetime {
        let refresh_token = world.mint("refresh-");
        world.refresh.insert(
            refresh_token.clone(),
            RefreshRecord {
                access_token: access_token.clone(),
                expires_at_ms: now_ms + REFRESH_TOKEN_LIFETIME * 1000,
                miro_user_id: miro_user_id.clone(),
            },
        );
        body.insert("refresh_token".into(), json!(refresh_token));
        body.insert("expires_in".into(), json!(lifetime));
    }
    if let Some(expires_in) = &world.faults.expires_in {
        body.insert("expires_in".into(), expires_in.clone());
    }
    let team: Value = if config.team_id_as_number {
        Value::Number(
            TEAM_ID
                .parse::<u64>()
                .map(Into::into)
                .unwrap_or_else(|_| 0u64.into()),
        )
    } else {
        json!(TEAM_ID)
    };
    body.insert("team_id".into(), team);
    if first_grant {
        body.insert("user_id".into(), json!(miro_user_id));
    }
    match world.faults.token_padding {
        Some(padding) => padded_json(StatusCode::OK, Value::Object(body), padding),
        None => (StatusCode::OK, Json(Value::Object(body))).into_response(),
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
}

/// The access token and its Miro user if Miro would accept it, else Miro's
/// 401 message.
pub(super) fn authenticate(
    world: &World,
    headers: &HeaderMap,
) -> Result<(String, String), &'static str> {
    let Some(token) = bearer(headers) else {
        return Err("No access token provided.");
    };
    if !world.access_works(&token) {
        return Err("Invalid or expired access token.");
    }
    let user = world
        .access
        .get(&token)
        .map(|a| a.miro_user_id.clone())
        .unwrap_or_else(|| MIRO_USER_ID.to_string());
    Ok((token, user))
}

pub(super) async fn token_context(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Response {
    let world = shared.world();
    let Ok((_, user_id)) = authenticate(&world, &headers) else {
        return miro_error(
            StatusCode::BAD_REQUEST,
            "invalidToken",
            "Invalid token provided",
        );
    };
    let user = json!({ "id": user_id, "name": user_name(&user_id), "type": "user" });
    Json(json!({
        "type": "user",
        "team": { "id": TEAM_ID, "name": TEAM_NAME, "type": "team" },
        "createdBy": user,
        "user": user,
        "scopes": shared.config.scopes,
    }))
    .into_response()
}

pub(super) async fn revoke(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let mut world = shared.world();
    if let Some(status) = world.faults.revoke_status {
        return injected_error(status, StatusCode::SERVICE_UNAVAILABLE);
    }
    let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(&body) else {
        return miro_error(
            StatusCode::BAD_REQUEST,
            "invalidParameters",
            "Body must be JSON.",
        );
    };
    let field = |k: &str| {
        req.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    if field("clientId") != shared.config.client_id
        || field("clientSecret") != shared.config.client_secret
    {
        return oauth_error(StatusCode::UNAUTHORIZED, "Invalid client credentials.");
    }
    let token = field("accessToken");
    match world.access.get_mut(&token) {
        // An expired access token can still be revoked: that kills its refresh token.
        Some(a) if a.alive => {
            a.alive = false;
            world.refresh.retain(|_, r| r.access_token != token);
            world.revoked.push(token);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => miro_error(StatusCode::NOT_FOUND, "notFound", "Token not found."),
    }
}
