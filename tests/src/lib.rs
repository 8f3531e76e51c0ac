//! A Miro emulator that follows `shared/miro-api.md` strictly, so that the
//! client cannot pass tests that real Miro would fail: the authorize page
//! (Allow/Deny), the token endpoint (codes, expiring tokens with rotation),
//! `POST /v2/boards` with Miro's validation and bodies, token context and
//! revocation, and Miro's error shape everywhere.
//!
//! Serve it alone ([`Emulator::start`]) or nest its [`Emulator::router`]
//! under a path of another server. Tests read what happened through the
//! handle ([`Emulator::boards`], [`Emulator::token_calls`], …).

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::RngCore;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

/// How the emulated Miro app is registered, and how this Miro behaves.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    pub client_id: String,
    pub client_secret: String,
    /// Matched exactly, as Miro does.
    pub redirect_uris: Vec<String>,
    /// `Some(seconds)`: expiring tokens with rotating refresh tokens (Miro's
    /// default is 3599); `None`: non-expiring tokens, no refresh token.
    pub access_token_lifetime: Option<i64>,
    pub code_lifetime: i64,
    /// Miro documents `team_id` both as a string and as a number.
    pub team_id_as_number: bool,
    pub scopes: Vec<String>,
    /// Board creations allowed per fixed window of `.1` seconds (Miro counts
    /// credits per minute; a board is a Level 3 call). `None`: unlimited.
    pub board_rate_limit: Option<(u32, i64)>,
    /// Take token-endpoint parameters from the query string, as real Miro
    /// does. Off by default: this project's client must never send them there.
    pub accept_query_parameters: bool,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            client_id: "3458764600000000001".into(),
            client_secret: "emulator-client-secret".into(),
            redirect_uris: vec![],
            access_token_lifetime: Some(3599),
            code_lifetime: 600,
            team_id_as_number: false,
            scopes: vec!["boards:write".into(), "boards:read".into()],
            board_rate_limit: None,
            accept_query_parameters: false,
        }
    }
}

pub const TEAM_ID: &str = "3458764517517818867";
pub const TEAM_NAME: &str = "Emulated Team";
pub const MIRO_USER_ID: &str = "3458764517517819000";
pub const MIRO_USER_NAME: &str = "Emulated Miro User";
/// Miro's refresh tokens last 60 days.
pub const REFRESH_TOKEN_LIFETIME: i64 = 60 * 86_400;
/// A project (space) that exists in the emulated team.
pub const PROJECT_ID: &str = "3458764517517852417";

#[derive(Debug, Clone)]
struct CodeRecord {
    client_id: String,
    redirect_uri: String,
    issued_at: i64,
    used: bool,
}

#[derive(Debug, Clone)]
struct AccessRecord {
    expires_at: Option<i64>,
    alive: bool,
}

/// A board as the emulator stored it.
#[derive(Debug, Clone)]
pub struct BoardRecord {
    pub id: String,
    pub name: String,
    pub description: String,
    pub team_id: String,
    pub access_token: String,
    pub body: Value,
}

#[derive(Debug, Default)]
struct World {
    codes: HashMap<String, CodeRecord>,
    access: HashMap<String, AccessRecord>,
    /// refresh token → (the access token issued with it, its expiry);
    /// removed on rotation.
    refresh: HashMap<String, (String, i64)>,
    boards: Vec<BoardRecord>,
    token_calls: usize,
    clock_offset: i64,
    /// Every code and token ever issued, for tests that look for leaks.
    issued: Vec<String>,
    faults: Faults,
    rate: RateWindow,
    /// 429s answered.
    rate_limited: usize,
    /// Requests that arrived in a window after it had answered a 429.
    after_limit: usize,
}

/// What the next `POST /v2/boards` suffers, one fault a request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BoardFault {
    /// Answers this 5xx and creates nothing.
    FailBefore(u16),
    /// Creates the board, then answers this 5xx.
    FailAfter(u16),
    /// Creates the board and answers 201 only after this many milliseconds.
    SlowAfter(u64),
    /// Creates the board and drops the connection mid-answer.
    DropAfter,
}

/// The rate-limit window and what happened in it.
#[derive(Debug, Default)]
struct RateWindow {
    start: i64,
    used: u32,
    limited: bool,
}

/// Switchable misbehaviour, for tests of what the client does then.
#[derive(Debug, Default, Clone)]
struct Faults {
    board: std::collections::VecDeque<BoardFault>,
    /// Every token-endpoint call answers this status with Miro's error body.
    token_status: Option<u16>,
    /// A refresh rotates the tokens, then its answer never comes.
    stall_refresh: bool,
}

struct Shared {
    config: EmulatorConfig,
    world: Mutex<World>,
}

impl Shared {
    fn world(&self) -> MutexGuard<'_, World> {
        match self.world.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

impl World {
    fn now(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default()
            + self.clock_offset
    }

    fn mint(&mut self, prefix: &str) -> String {
        let mut bytes = [0u8; 18];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let value = format!("{prefix}{hex}");
        self.issued.push(value.clone());
        value
    }
}

#[derive(Clone)]
pub struct Emulator {
    shared: Arc<Shared>,
    base_url: String,
}

impl Emulator {
    /// Serves the emulator on 127.0.0.1 at a port the OS picks.
    pub async fn start(config: EmulatorConfig) -> std::io::Result<Emulator> {
        Self::serve(config, "127.0.0.1:0").await
    }

    pub async fn serve(config: EmulatorConfig, addr: &str) -> std::io::Result<Emulator> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let (emulator, router) = Self::router(config, base_url);
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(emulator)
    }

    /// The emulator's routes, for nesting; `base_url` is where they are reachable.
    pub fn router(config: EmulatorConfig, base_url: String) -> (Emulator, Router) {
        let shared = Arc::new(Shared {
            config,
            world: Mutex::new(World::default()),
        });
        let router = Router::new()
            .route(
                "/oauth/authorize",
                get(authorize_page).post(authorize_decision),
            )
            .route("/v1/oauth/token", post(token))
            .route("/v1/oauth-token", get(token_context))
            .route("/v2/oauth/revoke", post(revoke))
            .route("/v2/boards", post(create_board))
            .route("/_emulator/stats", get(stats))
            .with_state(shared.clone());
        (Emulator { shared, base_url }, router)
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn config(&self) -> &EmulatorConfig {
        &self.shared.config
    }

    pub fn boards(&self) -> Vec<BoardRecord> {
        self.shared.world().boards.clone()
    }

    /// Calls that reached `POST /v1/oauth/token`, whatever their outcome.
    pub fn token_calls(&self) -> usize {
        self.shared.world().token_calls
    }

    /// Moves the emulator's clock, to expire codes and tokens without waiting.
    pub fn advance_clock(&self, seconds: i64) {
        self.shared.world().clock_offset += seconds;
    }

    /// Every token-endpoint call answers `status` (e.g. 503) until set to `None`.
    pub fn fail_token_endpoint(&self, status: Option<u16>) {
        self.shared.world().faults.token_status = status;
    }

    /// Refreshes rotate at once (the old pair dies) but are never answered:
    /// what a client sees that freezes right after Miro answered.
    pub fn stall_refreshes(&self, stall: bool) {
        self.shared.world().faults.stall_refresh = stall;
    }

    /// Queues faults for the next board creations, in order.
    pub fn inject_board_faults(&self, faults: &[BoardFault]) {
        self.shared
            .world()
            .faults
            .board
            .extend(faults.iter().copied());
    }

    /// (429s answered, requests that came in a window after its 429).
    pub fn rate_limit_stats(&self) -> (usize, usize) {
        let world = self.shared.world();
        (world.rate_limited, world.after_limit)
    }

    /// Every token issued so far stops working (the user uninstalled the app).
    pub fn kill_all_grants(&self) {
        let mut world = self.shared.world();
        world.refresh.clear();
        for a in world.access.values_mut() {
            a.alive = false;
        }
    }

    /// The settings a deployment of miro-connect needs to talk to this emulator.
    pub fn deployment_settings(
        &self,
        table: &str,
        redirect_uri: &str,
        app_origin: &str,
        return_to: &str,
    ) -> HashMap<String, String> {
        let c = &self.shared.config;
        [
            ("MIRO_CLIENT_ID", c.client_id.as_str()),
            ("MIRO_CLIENT_SECRET", c.client_secret.as_str()),
            ("MIRO_REDIRECT_URI", redirect_uri),
            ("MIRO_AUTH_BASE_URL", self.base_url.as_str()),
            ("MIRO_API_BASE_URL", self.base_url.as_str()),
            ("TABLE_NAME", table),
            ("ALLOWED_RETURN_ORIGINS", app_origin),
            ("DEFAULT_RETURN_TO", return_to),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Every code and token it ever issued.
    pub fn issued_secrets(&self) -> Vec<String> {
        self.shared.world().issued.clone()
    }

    /// Whether Miro would accept this access token now.
    pub fn access_token_works(&self, token: &str) -> bool {
        let world = self.shared.world();
        let now = world.now();
        world
            .access
            .get(token)
            .is_some_and(|a| a.alive && a.expires_at.is_none_or(|t| now < t))
    }
}

fn miro_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body =
        json!({ "status": status.as_u16(), "code": code, "message": message, "type": "error" });
    (status, Json(body)).into_response()
}

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

fn check_authorize(shared: &Shared, q: &HashMap<String, String>) -> Result<String, &'static str> {
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
    Ok(redirect_uri.clone())
}

async fn authorize_page(State(shared): State<Arc<Shared>>, RawQuery(raw): RawQuery) -> Response {
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
<button name=\"decision\" value=\"deny\" id=\"deny\">Deny</button>\
</form></body></html>",
        user = MIRO_USER_NAME,
        team = TEAM_NAME,
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

async fn authorize_decision(
    State(shared): State<Arc<Shared>>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let q = query_map(&raw);
    let redirect_uri = match check_authorize(&shared, &q) {
        Ok(r) => r,
        Err(message) => return authorize_refusal(message),
    };
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let Ok(mut target) = url::Url::parse(&redirect_uri) else {
        return authorize_refusal("Redirect URI mismatch.");
    };
    {
        let mut pairs = target.query_pairs_mut();
        if form.get("decision").map(String::as_str) == Some("allow") {
            let mut world = shared.world();
            let code = world.mint("code-");
            let issued_at = world.now();
            world.codes.insert(
                code.clone(),
                CodeRecord {
                    client_id: shared.config.client_id.clone(),
                    redirect_uri: redirect_uri.clone(),
                    issued_at,
                    used: false,
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

async fn token(
    State(shared): State<Arc<Shared>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (response, stall) = token_answer(&shared, raw, &headers, &body);
    if stall {
        std::future::pending::<()>().await;
    }
    response
}

/// The token endpoint's answer, and whether to withhold it (a stalled refresh).
fn token_answer(
    shared: &Shared,
    raw: Option<String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> (Response, bool) {
    let mut world = shared.world();
    world.token_calls += 1;
    if let Some(status) = world.faults.token_status {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return (
            miro_error(status, "internalError", "Injected fault."),
            false,
        );
    }
    let stall = world.faults.stall_refresh;
    let response = token_grant(shared, &mut world, raw, headers, body);
    let is_refresh =
        url::form_urlencoded::parse(body).any(|(k, v)| k == "grant_type" && v == "refresh_token");
    (response, stall && is_refresh)
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
        if query
            .keys()
            .any(|k| k == "client_secret" || k == "code" || k == "refresh_token")
        {
            return miro_error(
                StatusCode::BAD_REQUEST,
                "oauthError",
                "Secrets must not be sent in the URL.",
            );
        }
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return miro_error(
                StatusCode::BAD_REQUEST,
                "oauthError",
                "Unsupported content type.",
            );
        }
    }
    let config = &shared.config;
    if form.get("client_id") != Some(&config.client_id)
        || form.get("client_secret") != Some(&config.client_secret)
    {
        return miro_error(
            StatusCode::UNAUTHORIZED,
            "oauthError",
            "Invalid client credentials.",
        );
    }
    let now = world.now();
    let first_grant = match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let code = form.get("code").cloned().unwrap_or_default();
            let redirect_uri = form.get("redirect_uri").cloned().unwrap_or_default();
            let Some(record) = world.codes.get_mut(&code) else {
                return miro_error(
                    StatusCode::BAD_REQUEST,
                    "oauthError",
                    "Invalid authorization code.",
                );
            };
            if record.used || now >= record.issued_at + config.code_lifetime {
                return miro_error(
                    StatusCode::BAD_REQUEST,
                    "oauthError",
                    "Authorization code expired or used.",
                );
            }
            if record.redirect_uri != redirect_uri || record.client_id != config.client_id {
                return miro_error(
                    StatusCode::BAD_REQUEST,
                    "oauthError",
                    "Redirect URI mismatch.",
                );
            }
            record.used = true;
            true
        }
        Some("refresh_token") => {
            let presented = form.get("refresh_token").cloned().unwrap_or_default();
            // Rotation: the old pair stops working at once; a reuse is refused.
            let Some((old_access, expires_at)) = world.refresh.remove(&presented) else {
                return miro_error(
                    StatusCode::BAD_REQUEST,
                    "oauthError",
                    "Invalid refresh token.",
                );
            };
            if let Some(a) = world.access.get_mut(&old_access) {
                a.alive = false;
            }
            if now >= expires_at {
                return miro_error(
                    StatusCode::BAD_REQUEST,
                    "oauthError",
                    "Refresh token expired.",
                );
            }
            false
        }
        _ => {
            return miro_error(
                StatusCode::BAD_REQUEST,
                "oauthError",
                "Unsupported grant_type.",
            )
        }
    };

    let access_token = world.mint("access-");
    let expires_at = config.access_token_lifetime.map(|l| now + l);
    world.access.insert(
        access_token.clone(),
        AccessRecord {
            expires_at,
            alive: true,
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
            (access_token.clone(), now + REFRESH_TOKEN_LIFETIME),
        );
        body.insert("refresh_token".into(), json!(refresh_token));
        body.insert("expires_in".into(), json!(lifetime));
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
        body.insert("user_id".into(), json!(MIRO_USER_ID));
    }
    (StatusCode::OK, Json(Value::Object(body))).into_response()
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
}

/// The access token if Miro would accept it, else Miro's 401.
fn authenticate(world: &World, headers: &HeaderMap) -> Result<String, &'static str> {
    let Some(token) = bearer(headers) else {
        return Err("No access token provided.");
    };
    let now = world.now();
    match world.access.get(&token) {
        Some(a) if a.alive && a.expires_at.is_none_or(|t| now < t) => Ok(token),
        _ => Err("Invalid or expired access token."),
    }
}

async fn token_context(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let world = shared.world();
    if authenticate(&world, &headers).is_err() {
        return miro_error(
            StatusCode::BAD_REQUEST,
            "invalidToken",
            "Invalid token provided",
        );
    }
    Json(json!({
        "type": "user",
        "team": { "id": TEAM_ID, "name": TEAM_NAME, "type": "team" },
        "createdBy": { "id": MIRO_USER_ID, "name": MIRO_USER_NAME, "type": "user" },
        "user": { "id": MIRO_USER_ID, "name": MIRO_USER_NAME, "type": "user" },
        "scopes": shared.config.scopes,
    }))
    .into_response()
}

async fn revoke(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
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
        return miro_error(
            StatusCode::UNAUTHORIZED,
            "oauthError",
            "Invalid client credentials.",
        );
    }
    let token = field("accessToken");
    let mut world = shared.world();
    match world.access.get_mut(&token) {
        Some(a) if a.alive => {
            a.alive = false;
            world.refresh.retain(|_, (access, _)| *access != token);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => miro_error(StatusCode::NOT_FOUND, "notFound", "Token not found."),
    }
}

const BOARD_FIELDS: [&str; 5] = ["name", "description", "teamId", "projectId", "policy"];

fn enum_field(obj: &Map<String, Value>, key: &str, allowed: &[&str]) -> Result<(), String> {
    match obj.get(key) {
        None => Ok(()),
        Some(Value::String(s)) if allowed.contains(&s.as_str()) => Ok(()),
        Some(_) => Err(format!("{key} must be one of {}", allowed.join(", "))),
    }
}

fn object<'a>(v: &'a Value, key: &str, allowed: &[&str]) -> Result<&'a Map<String, Value>, String> {
    let Value::Object(obj) = v else {
        return Err(format!("{key} must be an object"));
    };
    if let Some(unknown) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!("Unknown field {unknown}"));
    }
    Ok(obj)
}

/// Miro's rules for `POST /v2/boards` (miro-api.md, "Create a board").
fn validate_board(body: &Value) -> Result<(), String> {
    let obj = object(body, "body", &BOARD_FIELDS)?;
    if let Some(name) = obj.get("name") {
        let n = name
            .as_str()
            .ok_or("name must be a string")?
            .chars()
            .count();
        if !(1..=60).contains(&n) {
            return Err("name must be 1 to 60 characters".into());
        }
    }
    if let Some(d) = obj.get("description") {
        if d.as_str()
            .ok_or("description must be a string")?
            .chars()
            .count()
            > 300
        {
            return Err("description must be at most 300 characters".into());
        }
    }
    if let Some(policy) = obj.get("policy") {
        let policy = object(policy, "policy", &["permissionsPolicy", "sharingPolicy"])?;
        if let Some(p) = policy.get("permissionsPolicy") {
            let p = object(
                p,
                "permissionsPolicy",
                &[
                    "collaborationToolsStartAccess",
                    "copyAccess",
                    "sharingAccess",
                ],
            )?;
            enum_field(
                p,
                "collaborationToolsStartAccess",
                &["all_editors", "board_owners_and_coowners"],
            )?;
            enum_field(
                p,
                "copyAccess",
                &["anyone", "team_members", "team_editors", "board_owner"],
            )?;
            enum_field(
                p,
                "sharingAccess",
                &["team_members_with_editing_rights", "owner_and_coowners"],
            )?;
        }
        if let Some(s) = policy.get("sharingPolicy") {
            let s = object(
                s,
                "sharingPolicy",
                &[
                    "access",
                    "inviteToAccountAndBoardLinkAccess",
                    "organizationAccess",
                    "teamAccess",
                ],
            )?;
            enum_field(s, "access", &["private", "view", "edit", "comment"])?;
            enum_field(
                s,
                "inviteToAccountAndBoardLinkAccess",
                &["viewer", "commenter", "editor", "no_access"],
            )?;
            enum_field(
                s,
                "organizationAccess",
                &["private", "view", "comment", "edit"],
            )?;
            enum_field(s, "teamAccess", &["private", "view", "comment", "edit"])?;
        }
    }
    Ok(())
}

async fn create_board(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (mut response, fault) = board_answer(&shared, &headers, &body);
    match fault {
        Some(BoardFault::SlowAfter(ms)) => {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await
        }
        Some(BoardFault::DropAfter) => {
            // Start the body, then fail it: the connection ends mid-answer.
            let (mut parts, _) = response.into_parts();
            parts.headers.remove(header::CONTENT_LENGTH);
            let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(Bytes::from_static(b"{\"id\":")),
                Err(std::io::Error::other("connection dropped")),
            ];
            let body = axum::body::Body::from_stream(futures_util::stream::iter(chunks));
            response = Response::from_parts(parts, body);
        }
        _ => {}
    }
    response
}

/// Miro's rate-limit headers for the current window, and whether it still
/// has room for this request.
fn rate_limit(shared: &Shared, world: &mut World) -> (bool, Vec<(&'static str, String)>) {
    let Some((limit, window)) = shared.config.board_rate_limit else {
        return (true, vec![]);
    };
    let now = world.now();
    let start = now - now.rem_euclid(window);
    if world.rate.start != start {
        world.rate = RateWindow {
            start,
            used: 0,
            limited: false,
        };
    }
    if world.rate.limited {
        world.after_limit += 1;
    }
    let room = world.rate.used < limit;
    if room {
        world.rate.used += 1;
    } else {
        world.rate.limited = true;
        world.rate_limited += 1;
    }
    let headers = vec![
        ("x-ratelimit-limit", limit.to_string()),
        (
            "x-ratelimit-remaining",
            (limit - world.rate.used).to_string(),
        ),
        ("x-ratelimit-reset", (start + window).to_string()),
    ];
    (room, headers)
}

fn with_headers(mut response: Response, headers: Vec<(&'static str, String)>) -> Response {
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            response.headers_mut().insert(k, v);
        }
    }
    response
}

fn board_answer(
    shared: &Shared,
    headers: &HeaderMap,
    body: &Bytes,
) -> (Response, Option<BoardFault>) {
    let mut world = shared.world();
    let (room, rate_headers) = rate_limit(shared, &mut world);
    if !room {
        let limited = miro_error(
            StatusCode::TOO_MANY_REQUESTS,
            "tooManyRequests",
            "Request rate limit exceed",
        );
        return (with_headers(limited, rate_headers), None);
    }
    let fault = world.faults.board.pop_front();
    if let Some(BoardFault::FailBefore(status)) = fault {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (
            miro_error(status, "internalError", "Injected fault."),
            fault,
        );
    }
    let mut response = board_created(shared, &mut world, headers, body);
    if let Some(BoardFault::FailAfter(status)) = fault {
        if response.status() == StatusCode::CREATED {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            response = miro_error(status, "internalError", "Injected fault.");
        }
    }
    (with_headers(response, rate_headers), fault)
}

fn board_created(
    shared: &Shared,
    world: &mut World,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let token = match authenticate(world, headers) {
        Ok(t) => t,
        Err(message) => return miro_error(StatusCode::UNAUTHORIZED, "tokenNotProvided", message),
    };
    if !shared.config.scopes.iter().any(|s| s == "boards:write") {
        return miro_error(
            StatusCode::FORBIDDEN,
            "forbiddenAccess",
            "Missing scope boards:write.",
        );
    }
    let body: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => {
                return miro_error(
                    StatusCode::BAD_REQUEST,
                    "invalidParameters",
                    "Body is not valid JSON.",
                )
            }
        }
    };
    if let Err(message) = validate_board(&body) {
        return miro_error(StatusCode::BAD_REQUEST, "invalidParameters", &message);
    }
    let str_field = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    if let Some(team) = str_field("teamId") {
        if team != TEAM_ID {
            return miro_error(
                StatusCode::FORBIDDEN,
                "forbiddenAccess",
                "No access to this team.",
            );
        }
    }
    if let Some(project) = str_field("projectId") {
        if project != PROJECT_ID {
            return miro_error(StatusCode::NOT_FOUND, "notFound", "Project not found.");
        }
    }
    let id = {
        let mut bytes = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("uX{hex}=")
    };
    let name = str_field("name").unwrap_or_else(|| "Untitled".into());
    let description = str_field("description").unwrap_or_default();
    let now = world.now();
    let created_at = iso8601(now);
    world.boards.push(BoardRecord {
        id: id.clone(),
        name: name.clone(),
        description: description.clone(),
        team_id: TEAM_ID.into(),
        access_token: token,
        body: body.clone(),
    });
    let user = json!({ "id": MIRO_USER_ID, "name": MIRO_USER_NAME, "type": "user" });
    let view_link = format!("https://miro.com/app/board/{id}");
    let board = json!({
        "id": id,
        "type": "board",
        "name": name,
        "description": description,
        "viewLink": view_link,
        "team": { "id": TEAM_ID, "name": TEAM_NAME, "type": "team" },
        "project": body.get("projectId").map(|p| json!({ "id": p })),
        "policy": body.get("policy").cloned().unwrap_or_else(|| json!({})),
        "owner": user,
        "createdBy": user,
        "modifiedBy": user,
        "currentUserMembership": { "id": MIRO_USER_ID, "name": MIRO_USER_NAME, "role": "owner", "type": "board_member" },
        "createdAt": created_at,
        "modifiedAt": created_at,
        "links": { "self": format!("https://api.miro.com/v2/boards/{id}"), "related": format!("https://api.miro.com/v2/boards/{id}/members?limit=20&offset=0") },
    });
    (StatusCode::CREATED, Json(board)).into_response()
}

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    let world = shared.world();
    Json(json!({
        "boards": world.boards.len(),
        "board_names": world.boards.iter().map(|b| b.name.clone()).collect::<Vec<_>>(),
        "token_calls": world.token_calls,
    }))
    .into_response()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// ISO-8601 UTC, as Miro writes `createdAt`.
fn iso8601(epoch: i64) -> String {
    use aws_smithy_types::date_time::{DateTime, Format};
    DateTime::from_secs(epoch)
        .fmt(Format::DateTime)
        .unwrap_or_default()
}
