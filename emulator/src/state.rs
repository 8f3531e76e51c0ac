//! The emulator's configuration, the names it answers with, and its state:
//! every code, token, board and rate-limit window it holds, behind one lock.

use crate::faults::Faults;
use crate::items::{ConnectorRecord, ItemCall, ItemRecord};
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
    /// Board creations allowed per Miro user per window of `.1` seconds:
    /// shorthand for a budget of `.0` × 500 credits (a board is a Level 3
    /// call), so a copy (2,000 credits) costs four boards' worth. A window
    /// starts at the user's first metered request after the previous window
    /// ended. `None` (and no `credit_rate_limit`): unlimited.
    pub board_rate_limit: Option<(u32, i64)>,
    /// Credits each Miro user may spend per window of `.1` seconds, as Miro
    /// counts them (create and invite 500, copy 2,000). Wins over
    /// `board_rate_limit` when both are set.
    pub credit_rate_limit: Option<(u64, i64)>,
    /// Take token-endpoint parameters from the query string, as real Miro
    /// does. Off by default: this project's client must never send them there.
    pub accept_query_parameters: bool,
}

impl EmulatorConfig {
    /// The credit budget per Miro user and the window length in seconds,
    /// from `credit_rate_limit` or else `board_rate_limit`; `None`: unlimited.
    pub fn credit_budget(&self) -> Option<(u64, i64)> {
        self.credit_rate_limit.or(self
            .board_rate_limit
            .map(|(boards, window)| (u64::from(boards) * CREATE_BOARD_CREDITS, window)))
    }
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
            credit_rate_limit: None,
            accept_query_parameters: false,
        }
    }
}

/// The first of the Miro user's teams: the one picked unless another is.
pub const TEAM_ID: &str = "3458764517517818867";
pub const TEAM_NAME: &str = "Emulated Team";
/// Two more teams of [`MIRO_USER_ID`], for one-connection-per-team tests.
pub const SECOND_TEAM_ID: &str = "3458764517517818868";
pub const SECOND_TEAM_NAME: &str = "Emulated Second Team";
pub const THIRD_TEAM_ID: &str = "3458764517517818869";
pub const THIRD_TEAM_NAME: &str = "Emulated Third Team";
/// The Miro user who signs in at the authorize page; member of all three teams.
pub const MIRO_USER_ID: &str = "3458764517517819000";
pub const MIRO_USER_NAME: &str = "Emulated Miro User";
/// A second Miro user, in [`TEAM_ID`] only, for attack tests: consent given
/// with the authorize page's `miro_user=attacker` is given as this user.
pub const ATTACKER_MIRO_USER_ID: &str = "3458764517517819666";
pub const ATTACKER_MIRO_USER_NAME: &str = "Emulated Attacker";
/// Owner of the boards seeded by [`crate::Emulator::add_template`] and
/// [`crate::Emulator::add_hidden_board`]: somebody else, never a caller.
pub(crate) const TEMPLATE_OWNER_ID: &str = "3458764517517819333";
pub(crate) const TEMPLATE_OWNER_NAME: &str = "Emulated Template Owner";
/// Every invitation to an address at this domain fails at Miro (`failed`
/// with `INVITATION_FAILED` in a 201), whatever the switches say.
pub const FAILING_INVITATION_DOMAIN: &str = "fails.example";
/// What Miro charges per call (its rate-limit levels): creating a board,
/// inviting members and deleting a board are Level 3, copying a board
/// Level 4; board items cost [`ITEM_CREDITS`] each.
pub const CREATE_BOARD_CREDITS: u64 = 500;
pub const COPY_BOARD_CREDITS: u64 = 2_000;
pub const INVITE_MEMBERS_CREDITS: u64 = 500;
pub const DELETE_BOARD_CREDITS: u64 = 500;
/// Per item of a bulk creation, per frame, per connector and per page of a
/// listing (items or connectors).
pub const ITEM_CREDITS: u64 = 100;
/// Miro's refresh tokens last 60 days.
pub const REFRESH_TOKEN_LIFETIME: i64 = 60 * 86_400;
/// A project (space) that exists in [`TEAM_ID`] only.
pub const PROJECT_ID: &str = "3458764517517852417";
/// Padding a test can pass to [`crate::Emulator::pad_board_bodies`] or
/// [`crate::Emulator::pad_token_bodies`]: 2 MiB, far above any sane read cap.
pub const OVERSIZE_PADDING: usize = 2 * 1024 * 1024;

/// Where item and connector ids start: Miro's are int64 (sent as strings).
const FIRST_ITEM_ID: u64 = 3_458_764_600_200_000_000;

const TEAMS: [(&str, &str); 3] = [
    (TEAM_ID, TEAM_NAME),
    (SECOND_TEAM_ID, SECOND_TEAM_NAME),
    (THIRD_TEAM_ID, THIRD_TEAM_NAME),
];

/// The name of a team the emulator knows; `None` for any other id.
pub fn team_name(team_id: &str) -> Option<&'static str> {
    TEAMS
        .iter()
        .find(|(id, _)| *id == team_id)
        .map(|(_, name)| *name)
}

/// The teams a Miro user belongs to, first the one Miro picks by default:
/// all three for [`MIRO_USER_ID`], [`TEAM_ID`] alone for the attacker.
pub fn user_teams(miro_user_id: &str) -> &'static [&'static str] {
    match miro_user_id {
        MIRO_USER_ID => &[TEAM_ID, SECOND_TEAM_ID, THIRD_TEAM_ID],
        ATTACKER_MIRO_USER_ID => &[TEAM_ID],
        id if is_crowd_user(id) => &[TEAM_ID],
        _ => &[],
    }
}

/// A Miro user a load test signs in as with `miro_user=<id>` at consent: any
/// numeric id (up to 19 digits) the emulator does not name otherwise. Each
/// is in [`TEAM_ID`] only and has a credit budget of its own.
pub fn is_crowd_user(id: &str) -> bool {
    (1..=19).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_digit())
        && ![MIRO_USER_ID, ATTACKER_MIRO_USER_ID, TEMPLATE_OWNER_ID].contains(&id)
}

/// The display name of a Miro user the emulator knows.
pub(crate) fn user_name(id: &str) -> &'static str {
    match id {
        ATTACKER_MIRO_USER_ID => ATTACKER_MIRO_USER_NAME,
        TEMPLATE_OWNER_ID => TEMPLATE_OWNER_NAME,
        _ => MIRO_USER_NAME,
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
    /// The team picked on the consent page: the tokens are for it alone.
    pub(crate) team_id: String,
    /// The team's install the consent made (see [`World::installs`]).
    pub(crate) install: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct AccessRecord {
    pub(crate) expires_at_ms: Option<i64>,
    pub(crate) alive: bool,
    pub(crate) miro_user_id: String,
    pub(crate) team_id: String,
    pub(crate) install: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct RefreshRecord {
    /// The access token issued with it.
    pub(crate) access_token: String,
    pub(crate) expires_at_ms: i64,
    pub(crate) miro_user_id: String,
    pub(crate) team_id: String,
    pub(crate) install: u64,
}

/// A board as the emulator stored it.
#[derive(Debug, Clone)]
pub struct BoardRecord {
    pub id: String,
    pub name: String,
    pub description: String,
    /// The team it is in: the token's own team.
    pub team_id: String,
    /// The token that created it (empty for seeded boards).
    pub access_token: String,
    /// The Miro user whose token created it (its owner).
    pub miro_user_id: String,
    /// The request's JSON body.
    pub body: Value,
    /// What is on the board: the marker given to
    /// [`crate::Emulator::add_template`], kept by every copy; `None` for a
    /// board created empty.
    pub content: Option<String>,
    /// The board it is a copy of (`PUT /v2/boards?copy_from=`); `None` for
    /// a created board.
    pub copied_from: Option<String>,
}

/// A board seeded by a test, owned by a Miro user who is no caller.
#[derive(Debug, Clone)]
pub(crate) struct SeededBoard {
    pub(crate) record: BoardRecord,
    /// Visible to every member of its team (a template); else to nobody here.
    pub(crate) team_visible: bool,
}

/// A `POST /v2/boards/{board_id}/members` that Miro carried out.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberCall {
    pub board_id: String,
    /// The role asked for (`commenter` when none was).
    pub role: String,
    /// The addresses, as sent.
    pub emails: Vec<String>,
    pub message: Option<String>,
    pub access_token: String,
    pub miro_user_id: String,
    /// The addresses Miro answered in `failed`.
    pub failed: Vec<String>,
}

/// One Miro user's rate-limit window and what happened in it.
#[derive(Debug, Default)]
pub(crate) struct RateWindow {
    /// When the current window started (emulator clock, ms); `None` before
    /// the user's first metered request.
    pub(crate) start_ms: Option<i64>,
    /// Credits spent in it.
    pub(crate) used: u64,
    pub(crate) limited: bool,
}

#[derive(Debug, Default)]
pub(crate) struct World {
    pub(crate) codes: HashMap<String, CodeRecord>,
    pub(crate) access: HashMap<String, AccessRecord>,
    /// Removed on rotation, revocation and uninstall.
    pub(crate) refresh: HashMap<String, RefreshRecord>,
    /// Boards made through the API (created and copied), in order.
    pub(crate) boards: Vec<BoardRecord>,
    pub(crate) seeded: Vec<SeededBoard>,
    /// Invited members per board: (address in lower case, member id, role).
    pub(crate) members: HashMap<String, Vec<(String, u64, String)>>,
    pub(crate) member_calls: Vec<MemberCall>,
    pub(crate) next_member_id: u64,
    /// Per team, how many times the app was uninstalled there: a token
    /// from an earlier install no longer reaches the team's boards.
    pub(crate) installs: HashMap<String, u64>,
    /// Teams the app was uninstalled from and not installed in again.
    pub(crate) uninstalled: Vec<String>,
    pub(crate) token_calls: usize,
    /// The app's client secret as rotated in the developer portal (a
    /// test's `rotate_client_secret`); the configured one until then.
    pub(crate) client_secret: Option<String>,
    /// Added to the wall clock, in ms.
    pub(crate) clock_offset_ms: i64,
    /// Every code and token ever issued, for tests that look for leaks.
    pub(crate) issued: Vec<String>,
    pub(crate) faults: Faults,
    /// Per Miro user, as Miro counts.
    pub(crate) rate: HashMap<String, RateWindow>,
    /// Credits each Miro user spent on answered calls, limit or not.
    pub(crate) credits_spent: HashMap<String, u64>,
    /// 429s answered.
    pub(crate) rate_limited: usize,
    /// Requests that arrived in a window after it had answered a 429.
    pub(crate) after_limit: usize,
    /// Authorize decisions that carried a PKCE challenge.
    pub(crate) pkce_challenges: usize,
    /// Access tokens revoked through `POST /v2/oauth/revoke`, in order.
    pub(crate) revoked: Vec<String>,
    /// Items per board, in creation order (frames among them).
    pub(crate) items: HashMap<String, Vec<ItemRecord>>,
    /// Connectors per board, in creation order.
    pub(crate) connectors: HashMap<String, Vec<ConnectorRecord>>,
    /// Every call of an item route (and `DELETE /v2/boards/{id}`), in order.
    pub(crate) item_calls: Vec<ItemCall>,
    /// Items and connectors made so far: the next id's offset.
    pub(crate) next_item: u64,
    /// Boards deleted through `DELETE /v2/boards/{id}` (made or seeded).
    pub(crate) deleted: Vec<String>,
}

pub(crate) struct Shared {
    pub(crate) config: EmulatorConfig,
    /// Where the routes are reachable (no trailing slash): the base of the
    /// boards' view links.
    pub(crate) base_url: String,
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
    /// Kills the grant of a live access token (expired or not: that kills
    /// its refresh token too). False if there is no such live token.
    pub(crate) fn revoke(&mut self, token: &str) -> bool {
        match self.access.get_mut(token) {
            Some(a) if a.alive => {
                a.alive = false;
                self.refresh.retain(|_, r| r.access_token != token);
                self.revoked.push(token.to_string());
                true
            }
            _ => false,
        }
    }

    /// The client secret Miro takes now.
    pub(crate) fn client_secret<'a>(&'a self, config: &'a EmulatorConfig) -> &'a str {
        self.client_secret
            .as_deref()
            .unwrap_or(&config.client_secret)
    }

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

    /// A new board id, shaped like Miro's (`uXjVN…=`).
    pub(crate) fn board_id(&self) -> String {
        let mut bytes = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("uX{hex}=")
    }

    /// Board `id` if a token of `user` for `team` may see it: the user's own
    /// boards and the templates of the user's teams. A board in another team
    /// is out of the token's reach whoever may see it there, so it is as
    /// unknown as a board nobody can see; so is a deleted board.
    pub(crate) fn visible_board(&self, id: &str, user: &str, team: &str) -> Option<&BoardRecord> {
        self.existing_board(id)
            .filter(|(b, team_visible)| self.may_see(b, *team_visible, user))
            .map(|(b, _)| b)
            .filter(|b| b.team_id == team)
    }

    /// Board `id`, made or seeded and not deleted, whoever may see it, and
    /// whether it is a team-visible seeded one.
    pub(crate) fn existing_board(&self, id: &str) -> Option<(&BoardRecord, bool)> {
        if self.deleted.iter().any(|d| d == id) {
            return None;
        }
        let made = self.boards.iter().find(|b| b.id == id).map(|b| (b, false));
        made.or_else(|| {
            self.seeded
                .iter()
                .find(|s| s.record.id == id)
                .map(|s| (&s.record, s.team_visible))
        })
    }

    /// Whether `user` may see board `b`: its own, or a template of its teams.
    pub(crate) fn may_see(&self, b: &BoardRecord, team_visible: bool, user: &str) -> bool {
        b.miro_user_id == user || (team_visible && user_teams(user).contains(&b.team_id.as_str()))
    }

    /// A new item or connector id, shaped like Miro's (a 19-digit number, as a string).
    pub(crate) fn item_id(&mut self) -> String {
        self.next_item += 1;
        FIRST_ITEM_ID.saturating_add(self.next_item).to_string()
    }

    /// The team's current install.
    pub(crate) fn install(&self, team: &str) -> u64 {
        self.installs.get(team).copied().unwrap_or(0)
    }

    /// Whether a token of `install` in `team` still reaches the team: the
    /// app is installed there, and has not been uninstalled since.
    pub(crate) fn installed(&self, team: &str, install: u64) -> bool {
        !self.uninstalled.iter().any(|t| t == team) && self.install(team) == install
    }

    pub(crate) fn access_works(&self, token: &str) -> bool {
        let now = self.now_ms();
        self.access
            .get(token)
            .is_some_and(|a| a.alive && a.expires_at_ms.is_none_or(|t| now < t))
    }
}
