//! The emulator's configuration, the names it answers with, and its state:
//! every code, token, board and rate-limit window it holds, behind one lock.

use crate::faults::Faults;
use rand::RngCore;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
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
/// Padding a test can pass to [`crate::Emulator::pad_board_bodies`] or
/// [`crate::Emulator::pad_token_bodies`]: 2 MiB, far above any sane read cap.
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
pub(crate) struct CodeRecord {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) issued_at_ms: i64,
    pub(crate) used: bool,
    /// The PKCE `code_challenge` (S256) the authorization carried.
    pub(crate) challenge: Option<String>,
    pub(crate) miro_user_id: String,
}

#[derive(Debug, Clone)]
pub(crate) struct AccessRecord {
    pub(crate) expires_at_ms: Option<i64>,
    pub(crate) alive: bool,
    pub(crate) miro_user_id: String,
}

#[derive(Debug, Clone)]
pub(crate) struct RefreshRecord {
    /// The access token issued with it.
    pub(crate) access_token: String,
    pub(crate) expires_at_ms: i64,
    pub(crate) miro_user_id: String,
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

/// The rate-limit window and what happened in it.
#[derive(Debug, Default)]
pub(crate) struct RateWindow {
    /// When the current window started (emulator clock, ms); `None` before
    /// the first board request.
    pub(crate) start_ms: Option<i64>,
    pub(crate) used: u32,
    pub(crate) limited: bool,
}

#[derive(Debug, Default)]
pub(crate) struct World {
    pub(crate) codes: HashMap<String, CodeRecord>,
    pub(crate) access: HashMap<String, AccessRecord>,
    /// Removed on rotation, revocation and uninstall.
    pub(crate) refresh: HashMap<String, RefreshRecord>,
    pub(crate) boards: Vec<BoardRecord>,
    pub(crate) token_calls: usize,
    /// Added to the wall clock, in ms.
    pub(crate) clock_offset_ms: i64,
    /// Every code and token ever issued, for tests that look for leaks.
    pub(crate) issued: Vec<String>,
    pub(crate) faults: Faults,
    pub(crate) rate: RateWindow,
    /// 429s answered.
    pub(crate) rate_limited: usize,
    /// Requests that arrived in a window after it had answered a 429.
    pub(crate) after_limit: usize,
    /// Authorize decisions that carried a PKCE challenge.
    pub(crate) pkce_challenges: usize,
    /// Access tokens revoked through `POST /v2/oauth/revoke`, in order.
    pub(crate) revoked: Vec<String>,
}

pub(crate) struct Shared {
    pub(crate) config: EmulatorConfig,
    pub(crate) world: Mutex<World>,
}

impl Shared {
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
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
    pub(crate) fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default()
            + self.clock_offset_ms
    }

    /// The emulator's clock in epoch seconds, as Miro's headers carry it.
    pub(crate) fn now(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    pub(crate) fn mint(&mut self, prefix: &str) -> String {
        let mut bytes = [0u8; 18];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let value = format!("{prefix}{hex}");
        self.issued.push(value.clone());
        value
    }

    pub(crate) fn access_works(&self, token: &str) -> bool {
        let now = self.now_ms();
        self.access
            .get(token)
            .is_some_and(|a| a.alive && a.expires_at_ms.is_none_or(|t| now < t))
    }
}
