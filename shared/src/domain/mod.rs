//! The things this service keeps and hands out.

mod board;
mod content;
mod layout;

pub use board::*;
pub use content::*;
pub use layout::*;

use crate::identity::AppUser;
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
/// What the app asked for when it started an authorization: kept, under the
/// hash of the state, until Miro's redirect consumes it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct AuthorizationRequest {
    pub user: AppUser,
    /// SHA-256 of the flow secret handed to the app that started the flow:
    /// completing takes the secret itself, so a completion link opened in
    /// another browser completes nothing.
    pub flow_secret_hash: String,
    pub return_to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<BoardRequest>,
    /// The `Idempotency-Key` the intent came with: the board made at
    /// completion is recorded under it, so the request repeated replays it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PendingAuthorization {
    /// SHA-256 of the state; the state itself is never stored.
    pub state_hash: String,
    pub request: AuthorizationRequest,
    pub expires_at: i64,
}

/// Miro's code, parked after the callback until the app user who started the
/// flow presents the completion id.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// SHA-256 of the completion id.
    pub completion_hash: String,
    pub code: Secret,
    /// The PKCE verifier that goes with the code (derived from the state).
    pub code_verifier: Secret,
    pub request: AuthorizationRequest,
    pub expires_at: i64,
}

/// Which connection: Miro installs an app per team and a token works in its
/// own team only, so a user holds one connection per Miro team.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnectionKey {
    pub user: AppUser,
    /// The team Miro named in the token response (the user picks it on
    /// Miro's consent page; it may differ from the one asked for).
    pub team_id: String,
}

impl ConnectionKey {
    pub fn new(user: &AppUser, team_id: &str) -> Self {
        Self {
            user: user.clone(),
            team_id: team_id.to_string(),
        }
    }
}

/// What is known of a connection apart from its tokens.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ConnectionProfile {
    pub miro_user_id: Option<String>,
    /// From Miro's token context, when it answered at connect time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_name: Option<String>,
    pub scopes: Vec<String>,
    pub connected_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    pub key: ConnectionKey,
    pub profile: ConnectionProfile,
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    /// None: Miro issued a non-expiring token.
    pub access_expires_at: Option<i64>,
    /// None: no refresh token, nothing expires; also the item's TTL.
    pub refresh_expires_at: Option<i64>,
    /// Bumped by every token write, so that concurrent writers can be detected.
    pub version: u64,
    /// Until when a refresh is under way somewhere (epoch seconds); read-only
    /// here: only [`crate::store::ConnectionStore::try_lease`] sets it.
    pub lease_until: Option<i64>,
    /// No refresh before this (epoch seconds): the last one failed
    /// transiently. Read-only here, like `lease_until`.
    pub refresh_retry_at: Option<i64>,
    /// When the keep-alive sweep should look at it next (epoch seconds):
    /// found through a sparse index by that day, never by a Scan.
    pub sweep_at: i64,
}

/// When the sweep should next look at a connection written at `now`: once
/// nobody has used it for `probe_days`, or `ahead_days` before its refresh
/// token ends, whichever comes first (and not before the next minute).
pub fn next_sweep(
    now: i64,
    refresh_expires_at: Option<i64>,
    keep_alive: crate::config::KeepAlive,
) -> i64 {
    const DAY: i64 = 86_400;
    let probe = now + keep_alive.probe_days * DAY;
    let ahead = refresh_expires_at.map_or(probe, |t| t - keep_alive.ahead_days * DAY);
    probe.min(ahead).max(now + 60)
}

/// A flow just started: where to send the browser, and the flow secret the
/// app keeps (in the starting tab) to complete it. Never put in a URL.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowStarted {
    pub authorize_url: String,
    pub expires_at: String,
    pub flow_secret: String,
}

/// A connection's first version: random, so that versions never repeat for a
/// key across a disconnect and a reconnect (a refresher holding a lease on
/// the old connection can never match the new one). 52 bits: exact as JSON.
pub fn first_version() -> u64 {
    (rand::random::<u64>() >> 12).max(1)
}

/// A connection as the API shows it: never a token.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ConnectionView {
    pub team_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub miro_user_id: Option<String>,
    pub scopes: Vec<String>,
    pub connected_at: String,
    /// When the connection lapses unless used (the refresh token's expiry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Boards asked for without a `team_id` go to this one.
    pub default: bool,
}

impl ConnectionView {
    pub fn of(c: &Connection, default: bool) -> Self {
        Self {
            team_id: c.key.team_id.clone(),
            team_name: c.profile.team_name.clone(),
            miro_user_id: c.profile.miro_user_id.clone(),
            scopes: c.profile.scopes.clone(),
            connected_at: crate::clock::rfc3339(c.profile.connected_at),
            expires_at: c.refresh_expires_at.map(crate::clock::rfc3339),
            default,
        }
    }
}

/// `GET /miro/connections`' answer: the user's connections, oldest first.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Connections {
    pub connections: Vec<ConnectionView>,
}

/// The connection boards without a `team_id` go to: the one the user chose
/// if it is still connected, else the one connected first. `live` is
/// oldest first.
pub fn default_connection<'a>(
    live: &'a [Connection],
    chosen: Option<&str>,
) -> Option<&'a Connection> {
    chosen
        .and_then(|team| live.iter().find(|c| c.key.team_id == team))
        .or_else(|| live.first())
}
