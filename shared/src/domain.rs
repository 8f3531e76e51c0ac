//! The things this service keeps and hands out.

use crate::identity::AppUser;
use crate::secret::Secret;
use serde::{Deserialize, Serialize};

/// `POST /boards`'s body, and the *intent* kept with a pending authorization.
/// Field rules are Miro's (`docs/miro.md`, "Boards"), checked before any call to Miro.
/// `policy` is Miro's own shape (camelCase), passed through as validated.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BoardRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<BoardPolicy>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BoardPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions_policy: Option<PermissionsPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharing_policy: Option<SharingPolicy>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PermissionsPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collaboration_tools_start_access: Option<CollaborationToolsStartAccess>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_access: Option<CopyAccess>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharing_access: Option<SharingAccess>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SharingPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<AccessLevel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_to_account_and_board_link_access: Option<InviteAccess>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_access: Option<AccessLevel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_access: Option<AccessLevel>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CollaborationToolsStartAccess {
    AllEditors,
    BoardOwnersAndCoowners,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyAccess {
    Anyone,
    TeamMembers,
    TeamEditors,
    BoardOwner,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SharingAccess {
    TeamMembersWithEditingRights,
    OwnerAndCoowners,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessLevel {
    Private,
    View,
    Comment,
    Edit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InviteAccess {
    Viewer,
    Commenter,
    Editor,
    NoAccess,
}

/// A board request Miro would refuse, and why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidBoard(pub String);

pub const BOARD_NAME_MAX: usize = 60;
pub const BOARD_DESCRIPTION_MAX: usize = 300;

impl BoardRequest {
    pub fn validate(&self) -> Result<(), InvalidBoard> {
        if let Some(name) = &self.name {
            let len = name.chars().count();
            if len == 0 || len > BOARD_NAME_MAX {
                return Err(InvalidBoard(format!(
                    "name must be 1 to {BOARD_NAME_MAX} characters"
                )));
            }
        }
        if let Some(description) = &self.description {
            if description.chars().count() > BOARD_DESCRIPTION_MAX {
                return Err(InvalidBoard(format!(
                    "description must be at most {BOARD_DESCRIPTION_MAX} characters"
                )));
            }
        }
        for (field, value) in [("team_id", &self.team_id), ("project_id", &self.project_id)] {
            if let Some(id) = value {
                if !is_miro_id(id) {
                    return Err(InvalidBoard(format!(
                        "{field} must be a Miro id (1 to 64 letters, digits, '-', '_' or '=')"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Miro's ids are digits (teams, users) or short base64 (boards, projects).
pub fn is_miro_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'='))
}

/// A created board, as this API returns it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Board {
    pub id: String,
    pub name: String,
    /// Miro's `viewLink` when it is an https URL; left out otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_link: Option<String>,
    pub team: Option<TeamRef>,
    pub created_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct TeamRef {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

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

/// What is known of a user's Miro connection apart from its tokens.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ConnectionProfile {
    pub miro_user_id: Option<String>,
    pub team_id: Option<String>,
    pub scopes: Vec<String>,
    pub connected_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    pub user: AppUser,
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
pub struct ConnectionStatus {
    pub connected: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub miro_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_at: Option<String>,
    /// When the connection lapses unless used (the refresh token's expiry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

impl ConnectionStatus {
    pub fn disconnected() -> Self {
        Self {
            connected: false,
            miro_user_id: None,
            team_id: None,
            scopes: vec![],
            connected_at: None,
            expires_at: None,
        }
    }
}

impl From<&Connection> for ConnectionStatus {
    fn from(c: &Connection) -> Self {
        Self {
            connected: true,
            miro_user_id: c.profile.miro_user_id.clone(),
            team_id: c.profile.team_id.clone(),
            scopes: c.profile.scopes.clone(),
            connected_at: Some(crate::clock::rfc3339(c.profile.connected_at)),
            expires_at: c.refresh_expires_at.map(crate::clock::rfc3339),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<BoardRequest, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn accepts_miro_policy_shape() {
        let r = parse(
            r#"{"name":"Plan","policy":{"permissionsPolicy":{"copyAccess":"team_editors"},
                "sharingPolicy":{"access":"view","inviteToAccountAndBoardLinkAccess":"no_access"}}}"#,
        )
        .expect("valid");
        assert!(r.validate().is_ok());
    }

    #[test]
    fn refuses_unknown_fields_and_enum_values() {
        assert!(parse(r#"{"nmae":"x"}"#).is_err());
        assert!(parse(r#"{"policy":{"sharingPolicy":{"access":"public"}}}"#).is_err());
    }

    #[test]
    fn name_and_description_lengths_count_characters() {
        let ok = BoardRequest {
            name: Some("é".repeat(60)),
            description: Some("ü".repeat(300)),
            ..Default::default()
        };
        assert!(ok.validate().is_ok());
        for bad in [
            BoardRequest {
                name: Some(String::new()),
                ..Default::default()
            },
            BoardRequest {
                name: Some("x".repeat(61)),
                ..Default::default()
            },
            BoardRequest {
                description: Some("x".repeat(301)),
                ..Default::default()
            },
            BoardRequest {
                team_id: Some("1 OR 1=1".into()),
                ..Default::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
