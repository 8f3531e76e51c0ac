//! The handle a test or a server holds: start or nest the emulator, read
//! what happened at Miro, and make what a Miro user does happen (time
//! passing, an uninstall). The fault switches are in [`crate::faults`].

use crate::boards;
use crate::oauth;
use crate::state::{Shared, World};
use crate::{BoardRecord, EmulatorConfig};
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
    pub(crate) base_url: String,
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

    /// Where it is reachable, e.g. `http://127.0.0.1:41234` (no trailing slash):
    /// the base of both Miro's authorize page and its REST API.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn config(&self) -> &EmulatorConfig {
        &self.shared.config
    }

    /// Every board created so far, in order.
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

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    let world = shared.world();
    Json(json!({
        "boards": world.boards.len(),
        "board_names": world.boards.iter().map(|b| b.name.clone()).collect::<Vec<_>>(),
        "token_calls": world.token_calls,
    }))
    .into_response()
}
