//! A board request: Miro's board fields, invitations, and the content
//! (`content`) that goes on it.

use super::{validate_content, Connector, InvalidItem, Item};
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
    /// Copy this board (a template) instead of creating an empty one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_board_id: Option<String>,
    /// People to invite once the board exists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<Member>,
    /// The text of Miro's invitation email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invitation_message: Option<String>,
    /// The app's own content for the board (`super::content`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<Item>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connectors: Vec<Connector>,
}

/// Someone to invite to the new board, with the role they get.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub email: String,
    pub role: MemberRole,
}

/// Miro's board roles for an invitation (`owner` is left out: Miro treats
/// it as `coowner`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    Viewer,
    Commenter,
    Editor,
    Coowner,
}

impl MemberRole {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberRole::Viewer => "viewer",
            MemberRole::Commenter => "commenter",
            MemberRole::Editor => "editor",
            MemberRole::Coowner => "coowner",
        }
    }
}

/// One invitation call to Miro: one role, at most [`EMAILS_PER_INVITATION`] emails.
#[derive(Debug, Clone, PartialEq)]
pub struct InvitationChunk {
    pub role: MemberRole,
    pub emails: Vec<String>,
}

/// What became of a board's invitations.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Invitations {
    pub invited: Vec<String>,
    pub failed: Vec<FailedInvitation>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct FailedInvitation {
    pub email: String,
    /// Miro's reason (e.g. `INVITATION_FAILED`).
    pub reason: String,
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
pub enum InvalidBoard {
    /// A field breaks Miro's rules.
    #[error("{0}")]
    Rule(String),
    /// Two fields that cannot go together (a malformed request, not a board
    /// Miro would refuse).
    #[error("{0}")]
    Combination(&'static str),
    /// One of the content's items or connectors, named by its field.
    #[error(transparent)]
    Item(#[from] InvalidItem),
}

pub const BOARD_NAME_MAX: usize = 60;
pub const BOARD_DESCRIPTION_MAX: usize = 300;
/// People one request may invite: a bound on the calls one request makes.
pub const MEMBERS_MAX: usize = 100;
/// Miro takes at most this many emails per invitation call.
pub const EMAILS_PER_INVITATION: usize = 20;
/// Miro documents no limit; this keeps an email's text sane.
pub const INVITATION_MESSAGE_MAX: usize = 1000;
/// RFC 5321's limit on an address.
const EMAIL_MAX: usize = 254;

impl BoardRequest {
    pub fn validate(&self) -> Result<(), InvalidBoard> {
        if let Some(name) = &self.name {
            let len = name.chars().count();
            if len == 0 || len > BOARD_NAME_MAX {
                return Err(InvalidBoard::Rule(format!(
                    "name must be 1 to {BOARD_NAME_MAX} characters"
                )));
            }
        }
        if let Some(description) = &self.description {
            if description.chars().count() > BOARD_DESCRIPTION_MAX {
                return Err(InvalidBoard::Rule(format!(
                    "description must be at most {BOARD_DESCRIPTION_MAX} characters"
                )));
            }
        }
        for (field, value) in [
            ("team_id", &self.team_id),
            ("project_id", &self.project_id),
            ("template_board_id", &self.template_board_id),
        ] {
            if let Some(id) = value {
                if !is_miro_id(id) {
                    return Err(InvalidBoard::Rule(format!(
                        "{field} must be a Miro id (1 to 64 letters, digits, '-', '_' or '=')"
                    )));
                }
            }
        }
        if self.template_board_id.is_some() && self.project_id.is_some() {
            return Err(InvalidBoard::Combination(
                "project_id with template_board_id: Miro's copy of a board takes no project",
            ));
        }
        if self.members.len() > MEMBERS_MAX {
            return Err(InvalidBoard::Rule(format!(
                "at most {MEMBERS_MAX} members per request"
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for member in &self.members {
            if !is_email(&member.email) {
                return Err(InvalidBoard::Rule(format!(
                    "members[].email must be an email address (at most {EMAIL_MAX} characters)"
                )));
            }
            if !seen.insert(member.email.to_ascii_lowercase()) {
                return Err(InvalidBoard::Rule(
                    "each email may appear once in members".into(),
                ));
            }
        }
        if let Some(message) = &self.invitation_message {
            if self.members.is_empty() {
                return Err(InvalidBoard::Rule(
                    "invitation_message needs members to invite".into(),
                ));
            }
            if message.chars().count() > INVITATION_MESSAGE_MAX {
                return Err(InvalidBoard::Rule(format!(
                    "invitation_message must be at most {INVITATION_MESSAGE_MAX} characters"
                )));
            }
        }
        validate_content(&self.items, &self.connectors)?;
        Ok(())
    }

    /// The invitation calls the members take: grouped by role (in the order
    /// the roles first appear), at most [`EMAILS_PER_INVITATION`] emails a
    /// call. The same request always gives the same chunks, so a retry can
    /// resume at the first one not done.
    pub fn invitation_chunks(&self) -> Vec<InvitationChunk> {
        let mut roles: Vec<MemberRole> = Vec::new();
        for m in &self.members {
            if !roles.contains(&m.role) {
                roles.push(m.role);
            }
        }
        let mut chunks = Vec::new();
        for role in roles {
            let emails: Vec<String> = self
                .members
                .iter()
                .filter(|m| m.role == role)
                .map(|m| m.email.clone())
                .collect();
            for part in emails.chunks(EMAILS_PER_INVITATION) {
                chunks.push(InvitationChunk {
                    role,
                    emails: part.to_vec(),
                });
            }
        }
        chunks
    }
}

/// A plausible email address: what Miro could send an invitation to. Miro
/// has the last word (an address it cannot invite comes back as failed).
fn is_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    email.len() <= EMAIL_MAX
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && email.chars().all(|c| {
            c.is_ascii_graphic()
                && !matches!(
                    c,
                    '<' | '>' | '(' | ')' | ',' | ';' | ':' | '\\' | '"' | '[' | ']'
                )
        })
        && !local.contains('@')
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

/// The app's content for a board that exists (`POST /boards/{id}/items`),
/// reached through the connection of `team_id`, else the default one.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ContentRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    #[serde(default)]
    pub items: Vec<Item>,
    #[serde(default)]
    pub connectors: Vec<Connector>,
}

impl ContentRequest {
    pub fn validate(&self) -> Result<(), InvalidBoard> {
        if self.team_id.as_deref().is_some_and(|t| !is_miro_id(t)) {
            return Err(InvalidBoard::Rule(
                "team_id must be a Miro id (1 to 64 letters, digits, '-', '_' or '=')".into(),
            ));
        }
        if self.items.is_empty() {
            return Err(InvalidBoard::Item(InvalidItem {
                field: "items".into(),
                message: "at least one item".into(),
            }));
        }
        Ok(validate_content(&self.items, &self.connectors)?)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct TeamRef {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
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

    fn member(email: &str, role: MemberRole) -> Member {
        Member {
            email: email.into(),
            role,
        }
    }

    #[test]
    fn members_go_in_chunks_of_twenty_one_role_each() {
        let mut members: Vec<Member> = (0..25)
            .map(|i| member(&format!("e{i}@example.com"), MemberRole::Editor))
            .collect();
        members.insert(3, member("v@example.com", MemberRole::Viewer));
        let request = BoardRequest {
            members,
            ..Default::default()
        };
        assert!(request.validate().is_ok());
        let chunks = request.invitation_chunks();
        let shape: Vec<(MemberRole, usize)> =
            chunks.iter().map(|c| (c.role, c.emails.len())).collect();
        assert_eq!(
            shape,
            vec![
                (MemberRole::Editor, 20),
                (MemberRole::Editor, 5),
                (MemberRole::Viewer, 1)
            ]
        );
    }

    #[test]
    fn templates_members_and_messages_are_checked_before_miro() {
        let template = |project: Option<&str>| BoardRequest {
            template_board_id: Some("uXjVOtemplate=".into()),
            project_id: project.map(str::to_string),
            ..Default::default()
        };
        assert!(template(None).validate().is_ok());
        assert!(template(Some("123")).validate().is_err());
        for bad in [
            "",
            "no-at",
            "a@b",
            "a b@example.com",
            "@example.com",
            "a@.com",
        ] {
            let r = BoardRequest {
                members: vec![member(bad, MemberRole::Viewer)],
                ..Default::default()
            };
            assert!(r.validate().is_err(), "{bad:?}");
        }
        let twice = BoardRequest {
            members: vec![
                member("a@example.com", MemberRole::Viewer),
                member("A@example.com", MemberRole::Editor),
            ],
            ..Default::default()
        };
        assert!(twice.validate().is_err());
        let too_many = BoardRequest {
            members: (0..=MEMBERS_MAX)
                .map(|i| member(&format!("p{i}@example.com"), MemberRole::Viewer))
                .collect(),
            ..Default::default()
        };
        assert!(too_many.validate().is_err());
        let lonely_message = BoardRequest {
            invitation_message: Some("hi".into()),
            ..Default::default()
        };
        assert!(lonely_message.validate().is_err());
        assert!(parse(r#"{"members":[{"email":"a@example.com","role":"owner"}]}"#).is_err());
    }
}
