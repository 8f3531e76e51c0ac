//! Board members: invitations.

use super::*;
use crate::domain::{FailedInvitation, InvitationChunk};
use serde::{Deserialize, Serialize};

impl MiroApi {
    /// `POST /v2/boards/{board_id}/members`: invites one chunk (one role, at
    /// most 20 emails). Inviting someone twice does no harm at Miro, so a
    /// caller may repeat a chunk whose answer it did not get.
    pub async fn invite(
        &self,
        access_token: &Secret,
        board_id: &str,
        chunk: &InvitationChunk,
        message: Option<&str>,
    ) -> Result<Invited, MiroError> {
        let url = self.board_url(board_id, &["members"])?;
        let response = self
            .http
            .post(url)
            .bearer_auth(access_token.expose())
            .json(&InviteBody {
                emails: &chunk.emails,
                role: chunk.role.as_str(),
                message,
            })
            .send_as("invite")
            .await
            .map_err(transport)?;
        if response.status() != StatusCode::CREATED && response.status() != StatusCode::OK {
            return Err(failure(response, self.clock.now()).await);
        }
        let body = read_capped(response)
            .await
            .map_err(|_| unreadable("invitation answer"))?;
        let answer: InviteAnswer =
            serde_json::from_slice(&body).map_err(|_| unreadable("invitation answer"))?;
        Ok(Invited {
            // Only what this chunk asked for: Miro's list is outside input.
            failed: answer
                .failed
                .into_iter()
                .filter(|f| chunk.emails.contains(&f.email))
                .map(|f| FailedInvitation {
                    email: f.email,
                    reason: f
                        .reason
                        .map(|mut r| {
                            r.truncate(r.floor_char_boundary(100));
                            r
                        })
                        .unwrap_or_else(|| "INVITATION_FAILED".into()),
                })
                .collect(),
        })
    }
}

/// What one invitation call did: Miro answers 201 even when some emails
/// could not be invited, and lists those.
#[derive(Debug, Clone, PartialEq)]
pub struct Invited {
    pub failed: Vec<FailedInvitation>,
}

#[derive(Serialize)]
struct InviteBody<'a> {
    emails: &'a [String],
    role: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
}

#[derive(Deserialize)]
struct InviteAnswer {
    #[serde(default)]
    failed: Vec<FailedBody>,
}

#[derive(Deserialize)]
struct FailedBody {
    #[serde(default)]
    email: String,
    #[serde(default)]
    reason: Option<String>,
}
