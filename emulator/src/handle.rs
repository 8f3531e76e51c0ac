//! The handle a test or a server holds: start or nest the emulator, read
//! what happened at Miro, and make what a Miro user does happen (time
//! passing, an uninstall). The fault switches are in [`crate::faults`].

use crate::boards;
use crate::items;
use crate::members;
use crate::oauth;
use crate::state::{SeededBoard, Shared, World, TEMPLATE_OWNER_ID};
use crate::{BoardRecord, EmulatorConfig, MemberCall};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{extract::State, Json, Router};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A running emulated Miro. Cloning it gives another handle on the same Miro.
#[derive(Clone)]
pub struct Emulator {
    pub(crate) shared: Arc<Shared>,
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

    /// The emulator's routes, for nesting; `base_url` is where they are
    /// reachable (boards' view links are `{base_url}/app/board/{id}`).
    pub fn router(config: EmulatorConfig, base_url: String) -> (Emulator, Router) {
        let shared = Arc::new(Shared {
            config,
            base_url: base_url.trim_end_matches('/').to_string(),
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
            .route(
                "/v2/boards",
                post(boards::create_board).put(boards::copy_board),
            )
            .route(
                "/v2/boards/{board_id}/members",
                post(members::invite_members),
            )
            .route("/_emulator/stats", get(stats))
            .merge(items::routes())
            .with_state(shared.clone());
        (Emulator { shared }, router)
    }

    /// Where it is reachable, e.g. `http://127.0.0.1:41234` (no trailing slash):
    /// the base of both Miro's authorize page and its REST API.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    pub fn config(&self) -> &EmulatorConfig {
        &self.shared.config
    }

    /// Every board made through the API so far, created or copied, in
    /// order (copies have `copied_from`), deleted ones too
    /// ([`Emulator::board_deleted`]); seeded boards are not among them.
    pub fn boards(&self) -> Vec<BoardRecord> {
        self.shared.world().boards.clone()
    }

    /// The team an access token was issued for (alive or not); `None` for a
    /// token Miro never issued.
    pub fn token_team(&self, access_token: &str) -> Option<String> {
        let world = self.shared.world();
        world.access.get(access_token).map(|a| a.team_id.clone())
    }

    /// Seeds a template: a board in `team_id` owned by another Miro user
    /// and visible to every member of that team (so to [`crate::MIRO_USER_ID`]
    /// in any of the three teams, to the attacker in [`crate::TEAM_ID`]).
    /// `content` marks what is on it; copies keep the mark. Returns its id.
    pub fn add_template(&self, team_id: &str, name: &str, content: &str) -> String {
        self.seed(team_id, name, content, true)
    }

    /// Seeds a board in `team_id` that nobody here may see: copying it, or
    /// inviting to it, is `404`, as for a board that does not exist.
    pub fn add_hidden_board(&self, team_id: &str, name: &str, content: &str) -> String {
        self.seed(team_id, name, content, false)
    }

    fn seed(&self, team_id: &str, name: &str, content: &str, team_visible: bool) -> String {
        let mut world = self.shared.world();
        let id = world.board_id();
        let record = BoardRecord {
            id: id.clone(),
            name: name.to_string(),
            description: String::new(),
            team_id: team_id.to_string(),
            access_token: String::new(),
            miro_user_id: TEMPLATE_OWNER_ID.to_string(),
            body: json!({}),
            content: Some(content.to_string()),
            copied_from: None,
        };
        world.seeded.push(SeededBoard {
            record,
            team_visible,
        });
        id
    }

    /// Every `POST /v2/boards/{board_id}/members` Miro carried out (a 201,
    /// or a fault after the work), in order; refused and `FailBefore` calls
    /// are not among them.
    pub fn member_calls(&self) -> Vec<MemberCall> {
        self.shared.world().member_calls.clone()
    }

    /// A board's invited members, in invitation order: (address in lower
    /// case, role of the first invitation). Failed invitations are not members.
    pub fn board_members(&self, board_id: &str) -> Vec<(String, String)> {
        let world = self.shared.world();
        world
            .members
            .get(board_id)
            .map(|m| m.iter().map(|(e, _, r)| (e.clone(), r.clone())).collect())
            .unwrap_or_default()
    }

    /// Credits a Miro user spent on metered calls that were let through
    /// (create, invite and delete 500, copy 2,000, 100 per item of a bulk
    /// call, per frame, connector and listed page), limit or not.
    pub fn credits_spent(&self, miro_user_id: &str) -> u64 {
        let world = self.shared.world();
        world.credits_spent.get(miro_user_id).copied().unwrap_or(0)
    }

    /// Calls that reached `POST /v1/oauth/token`, whatever their outcome
    /// (faulted ones included).
    pub fn token_calls(&self) -> usize {
        self.shared.world().token_calls
    }

    /// The user revokes the app's grant at Miro (their profile's apps
    /// settings): the grant of `access_token` dies, refresh token included.
    pub fn revoke_grant(&self, access_token: &str) -> bool {
        self.shared.world().revoke(access_token)
    }

    /// The app's client secret changes, as when an operator rotates it in
    /// Miro's developer portal: from now on only `secret` is accepted.
    pub fn rotate_client_secret(&self, secret: &str) {
        self.shared.world().client_secret = Some(secret.to_string());
    }

    /// Moves the emulator's clock, to expire codes, tokens and rate-limit
    /// windows without waiting.
    pub fn advance_clock(&self, seconds: i64) {
        self.shared.world().clock_offset_ms += seconds.saturating_mul(1000);
    }

    /// (429s answered, requests that came in a window after its 429), over
    /// every Miro user's windows.
    pub fn rate_limit_stats(&self) -> (usize, usize) {
        let world = self.shared.world();
        (world.rate_limited, world.after_limit)
    }

    /// Authorize decisions (Allow or Deny) whose request carried a PKCE
    /// `code_challenge` that Miro accepted.
    pub fn pkce_challenges_seen(&self) -> usize {
        self.shared.world().pkce_challenges
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

    /// An admin removes the app from `team_id`. Miro tells nobody: the
    /// team's tokens still authenticate and refresh, but every board call
    /// with one answers `403 applicationNotInstalled`, for good. A new
    /// consent in that team installs the app again, and only the tokens it
    /// gives work there.
    pub fn uninstall_app(&self, team_id: &str) {
        let mut world = self.shared.world();
        *world.installs.entry(team_id.to_string()).or_default() += 1;
        if !world.uninstalled.iter().any(|t| t == team_id) {
            world.uninstalled.push(team_id.to_string());
        }
    }

    /// False from [`Emulator::uninstall_app`] on that team until the next
    /// consent there; true before.
    pub fn app_installed(&self, team_id: &str) -> bool {
        let world = self.shared.world();
        !world.uninstalled.iter().any(|t| t == team_id)
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
            ("MIRO_AUTH_BASE_URL", self.base_url()),
            ("MIRO_API_BASE_URL", self.base_url()),
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

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    let world = shared.world();
    Json(json!({
        "boards": world.boards.len(),
        "board_names": world.boards.iter().map(|b| b.name.clone()).collect::<Vec<_>>(),
        "copies": world.boards.iter().filter(|b| b.copied_from.is_some()).count(),
        "member_calls": world.member_calls.len(),
        "items": world.items.values().map(Vec::len).sum::<usize>(),
        "connectors": world.connectors.values().map(Vec::len).sum::<usize>(),
        "token_calls": world.token_calls,
    }))
    .into_response()
}
