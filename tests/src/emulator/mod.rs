//! The emulator's handle, configuration and state; the routes live in
//! [`oauth`] (authorize, token, revoke, token context) and [`boards`].

mod boards;
mod oauth;
#[cfg(test)]
mod tests;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{extract::State, Json, Router};
use rand::RngCore;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
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
    /// Board creations allowed per window of `.1` seconds (Miro counts
    /// credits per minute; a board is a Level 3 call). A window starts at the
    /// first board request after the previous window ended. `None`: unlimited.
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
/// A second Miro user, in the same team, for attack tests: consent given
/// with the authorize page's `miro_user=attacker` is given as this user.
pub const ATTACKER_MIRO_USER_ID: &str = "3458764517517819666";
pub const ATTACKER_MIRO_USER_NAME: &str = "Emulated Attacker";
/// Miro's refresh tokens last 60 days.
pub const REFRESH_TOKEN_LIFETIME: i64 = 60 * 86_400;
/// A project (space) that exists in the emulated team.
pub const PROJECT_ID: &str = "3458764517517852417";
/// Padding a test can pass to [`Emulator::pad_board_bodies`] or
/// [`Emulator::pad_token_bodies`]: 2 MiB, far above any sane read cap.
pub const OVERSIZE_PADDING: usize = 2 * 1024 * 1024;

/// The display name of a Miro user the emulator knows.
pub(crate) fn user_name(id: &str) -> &'static str {
    if id == ATTACKER_MIRO_USER_ID {
        ATTACKER_MIRO_USER_NAME
    } else {
        MIRO_USER_NAME
    }
}

#[derive(Debug, Clone)]
struct CodeRecord {
    client_id: String,
    redirect_uri: String,
    issued_at_ms: i64,
    used: bool,
    /// The PKCE `code_challenge` (S256) the authorization carried.
    challenge: Option<String>,
    miro_user_id: String,
}

#[derive(Debug, Clone)]
struct AccessRecord {
    expires_at_ms: Option<i64>,
    alive: bool,
    miro_user_id: String,
}

#[derive(Debug, Clone)]
struct RefreshRecord {
    /// The access token issued with it.
    access_token: String,
    expires_at_ms: i64,
    miro_user_id: String,
}

/// A board as the emulator stored it.
#[derive(Debug, Clone)]
pub struct BoardRecord {
    pub id: String,
    pub name: String,
    pub description: String,
    pub team_id: String,
    pub access_token: String,
    /// The Miro user whose token created it.
    pub miro_user_id: String,
    pub body: Value,
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

/// What a `POST /v1/oauth/token` call suffers instead of its answer. A
/// faulted call consumes nothing: its code stays unused, its refresh token
/// is not rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFault {
    /// 429 with Miro's body; `Retry-After: retry_after` when given, and
    /// `X-RateLimit-Reset` = the emulator's now + `reset_in` when given
    /// (with `X-RateLimit-Limit` and `X-RateLimit-Remaining: 0`).
    RateLimited {
        retry_after: Option<u64>,
        reset_in: Option<i64>,
    },
    /// 302 to `https://miro.com/login`, empty body.
    Redirect,
    /// 200 `text/html`: a maintenance page.
    HtmlOk,
    /// 200 `application/json` with an empty body.
    EmptyOk,
    /// This status with Miro's JSON error body.
    Status(u16),
    /// This status with an HTML body (a proxy's error page).
    HtmlError(u16),
    /// The answer never comes.
    Stall,
}

/// The rate-limit window and what happened in it.
#[derive(Debug, Default)]
struct RateWindow {
    /// When the current window started (emulator clock, ms); `None` before
    /// the first board request.
    start_ms: Option<i64>,
    used: u32,
    limited: bool,
}

/// Switchable misbehaviour, for tests of what the client does then.
#[derive(Debug, Default, Clone)]
struct Faults {
    board: VecDeque<BoardFault>,
    /// Every token-endpoint call answers this status with Miro's error body.
    token_status: Option<u16>,
    /// A refresh rotates the tokens, then its answer never comes.
    stall_refresh: bool,
    /// Refreshes take effect (rotate) at once, but the answer reaches the
    /// client only after this many milliseconds.
    refresh_answer_delay_ms: Option<u64>,
    /// One fault per token call, in order, before `token_fault`.
    token_queue: VecDeque<TokenFault>,
    /// Every token call suffers this until cleared.
    token_fault: Option<TokenFault>,
    /// Revocation answers this status and revokes nothing.
    revoke_status: Option<u16>,
    /// The token response's `expires_in`, whatever the real lifetime.
    expires_in: Option<Value>,
    /// The `viewLink` of created boards.
    view_link: Option<String>,
    /// Bytes of padding in 201 board bodies.
    board_padding: Option<usize>,
    /// Bytes of padding in 200 token bodies.
    token_padding: Option<usize>,
}

#[derive(Debug, Default)]
struct World {
    codes: HashMap<String, CodeRecord>,
    access: HashMap<String, AccessRecord>,
    /// Removed on rotation, revocation and uninstall.
    refresh: HashMap<String, RefreshRecord>,
    boards: Vec<BoardRecord>,
    token_calls: usize,
    /// Added to the wall clock, in ms.
    clock_offset_ms: i64,
    /// Every code and token ever issued, for tests that look for leaks.
    issued: Vec<String>,
    faults: Faults,
    rate: RateWindow,
    /// 429s answered.
    rate_limited: usize,
    /// Requests that arrived in a window after it had answered a 429.
    after_limit: usize,
    /// Authorize decisions that carried a PKCE challenge.
    pkce_challenges: usize,
    /// Access tokens revoked through `POST /v2/oauth/revoke`, in order.
    revoked: Vec<String>,
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
    /// The emulator's clock, in ms: the wall clock moved by `advance_clock`.
    /// Everything that expires is kept in ms, so that a test never sees a
    /// second boundary shorten a lifetime.
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default()
            + self.clock_offset_ms
    }

    /// The emulator's clock in epoch seconds, as Miro's headers carry it.
    fn now(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    fn mint(&mut self, prefix: &str) -> String {
        let mut bytes = [0u8; 18];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let value = format!("{prefix}{hex}");
        self.issued.push(value.clone());
        value
    }

    fn access_works(&self, token: &str) -> bool {
        let now = self.now_ms();
        self.access
            .get(token)
            .is_some_and(|a| a.alive && a.expires_at_ms.is_none_or(|t| now < t))
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
                get(oauth::authorize_page).post(oauth::authorize_decision),
            )
            .route("/v1/oauth/token", post(oauth::token))
            .route("/v1/oauth-token", get(oauth::token_context))
            .route("/v2/oauth/revoke", post(oauth::revoke))
            .route("/v2/boards", post(boards::create_board))
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

    /// Calls that reached `POST /v1/oauth/token`, whatever their outcome
    /// (faulted ones included).
    pub fn token_calls(&self) -> usize {
        self.shared.world().token_calls
    }

    /// Moves the emulator's clock, to expire codes, tokens and rate-limit
    /// windows without waiting.
    pub fn advance_clock(&self, seconds: i64) {
        self.shared.world().clock_offset_ms += seconds.saturating_mul(1000);
    }

    /// Every token-endpoint call answers `status` (e.g. 503) until set to `None`.
    pub fn fail_token_endpoint(&self, status: Option<u16>) {
        self.shared.world().faults.token_status = status;
    }

    /// Refreshes rotate at once (the old pair dies) but are never answered:
    /// what a client sees that freezes right after Miro answered.
    /// Every refresh takes effect at once (it rotates) and is answered
    /// after `ms`: a slow network between the client and Miro.
    pub fn delay_refresh_answers(&self, ms: Option<u64>) {
        self.shared.world().faults.refresh_answer_delay_ms = ms;
    }

    pub fn stall_refreshes(&self, stall: bool) {
        self.shared.world().faults.stall_refresh = stall;
    }

    /// Queues faults for the next token-endpoint calls, one a call, in order
    /// (ahead of [`Emulator::set_token_fault`] and
    /// [`Emulator::fail_token_endpoint`]).
    pub fn inject_token_faults(&self, faults: &[TokenFault]) {
        self.shared
            .world()
            .faults
            .token_queue
            .extend(faults.iter().copied());
    }

    /// Every token-endpoint call suffers `fault` until set to `None`.
    pub fn set_token_fault(&self, fault: Option<TokenFault>) {
        self.shared.world().faults.token_fault = fault;
    }

    /// Successful token responses carry this `expires_in` (any JSON, e.g.
    /// `json!(u64::MAX)`), whatever the tokens' real lifetime; `None`: the truth.
    pub fn override_expires_in(&self, value: Option<Value>) {
        self.shared.world().faults.expires_in = value;
    }

    /// Created boards' 201 bodies carry this `viewLink` (e.g.
    /// `javascript:alert(1)`); `None`: Miro's own link.
    pub fn override_view_link(&self, link: Option<String>) {
        self.shared.world().faults.view_link = link;
    }

    /// 201 board bodies carry an extra `_padding` string of this many bytes
    /// (see [`OVERSIZE_PADDING`]), sent chunked without `Content-Length`.
    /// The board is created all the same.
    pub fn pad_board_bodies(&self, bytes: Option<usize>) {
        self.shared.world().faults.board_padding = bytes;
    }

    /// 200 token bodies carry an extra `_padding` string of this many bytes,
    /// sent chunked without `Content-Length`. The grant happens all the same
    /// (the code is used, the refresh token rotated).
    pub fn pad_token_bodies(&self, bytes: Option<usize>) {
        self.shared.world().faults.token_padding = bytes;
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

    /// Authorize decisions (Allow or Deny) whose request carried a PKCE
    /// `code_challenge` that Miro accepted.
    pub fn pkce_challenges_seen(&self) -> usize {
        self.shared.world().pkce_challenges
    }

    /// Revocation answers `status` with Miro's error body and revokes
    /// nothing, until set to `None`.
    pub fn fail_revoke(&self, status: Option<u16>) {
        self.shared.world().faults.revoke_status = status;
    }

    /// Access tokens revoked through `POST /v2/oauth/revoke`, in order.
    pub fn revoked_tokens(&self) -> Vec<String> {
        self.shared.world().revoked.clone()
    }

    /// Grants Miro would still honour: unexpired refresh tokens that were
    /// neither rotated nor revoked, plus live non-expiring access tokens
    /// (which come without a refresh token).
    pub fn live_grants(&self) -> usize {
        let world = self.shared.world();
        let now = world.now_ms();
        let refresh = world
            .refresh
            .values()
            .filter(|r| now < r.expires_at_ms)
            .count();
        let forever = world
            .access
            .values()
            .filter(|a| a.alive && a.expires_at_ms.is_none())
            .count();
        refresh + forever
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
        self.shared.world().access_works(token)
    }
}

fn miro_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body =
        json!({ "status": status.as_u16(), "code": code, "message": message, "type": "error" });
    (status, Json(body)).into_response()
}

/// `status` from a test's number; `fallback` when it is no HTTP status.
fn status_or(status: u16, fallback: StatusCode) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(fallback)
}

fn with_headers(mut response: Response, headers: Vec<(&'static str, String)>) -> Response {
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            response.headers_mut().insert(k, v);
        }
    }
    response
}

/// `body` (an object) as JSON with an extra `_padding` string of `padding`
/// bytes first, streamed in chunks without `Content-Length`.
fn padded_json(status: StatusCode, body: Value, padding: usize) -> Response {
    use axum::body::Bytes;
    const CHUNK: usize = 64 * 1024;
    let rest = body.to_string();
    let rest = rest.strip_prefix('{').unwrap_or(&rest);
    let close = if rest == "}" { "\"" } else { "\"," };
    let mut chunks: Vec<Result<Bytes, std::io::Error>> =
        vec![Ok(Bytes::from_static(b"{\"_padding\":\""))];
    let filler = Bytes::from(vec![b'a'; CHUNK.min(padding)]);
    let mut left = padding;
    while left > 0 {
        let n = left.min(CHUNK);
        chunks.push(Ok(filler.slice(..n)));
        left -= n;
    }
    chunks.push(Ok(Bytes::from(format!("{close}{rest}"))));
    let mut response = Response::new(axum::body::Body::from_stream(futures_util::stream::iter(
        chunks,
    )));
    *response.status_mut() = status;
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
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
