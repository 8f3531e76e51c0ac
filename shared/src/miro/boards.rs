//! Boards: create, copy (a template) and delete.

use super::*;
use crate::domain::{Board, BoardPolicy, BoardRequest, TeamRef};
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreateBoardBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    team_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    project_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<&'a BoardPolicy>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BoardWithLinks {
    #[serde(deserialize_with = "required_id")]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    view_link: String,
    #[serde(default)]
    team: Option<TeamBody>,
    #[serde(default)]
    created_at: Option<String>,
}

impl MiroApi {
    /// `DELETE /v2/boards/{board_id}`: one call takes a board and all its
    /// content back (deleting items one by one costs as much each). A
    /// board already gone counts as deleted.
    pub async fn delete_board(
        &self,
        access_token: &Secret,
        board_id: &str,
    ) -> Result<(), MiroError> {
        let response = self
            .http
            .delete(self.board_url(board_id, &[])?)
            .bearer_auth(access_token.expose())
            .send_as("delete_board")
            .await
            .map_err(transport)?;
        if response.status().is_success() || response.status() == StatusCode::NOT_FOUND {
            return Ok(());
        }
        Err(failure(response, self.clock.now()).await)
    }

    /// `{base}/v2/boards/{board_id}/{rest…}`, the id as one path segment.
    pub(crate) fn board_url(&self, board_id: &str, rest: &[&str]) -> Result<Url, MiroError> {
        let mut url = Config::endpoint(&self.base, "/v2/boards");
        url.path_segments_mut()
            .map_err(|_| unreadable("API base URL"))?
            .push(board_id)
            .extend(rest);
        Ok(url)
    }

    /// `POST /v2/boards`, or with `template_board_id` the copy
    /// `PUT /v2/boards?copy_from=…` (which takes no project). Neither is
    /// idempotent at Miro: the caller decides on retries.
    pub async fn create_board(
        &self,
        access_token: &Secret,
        request: &BoardRequest,
    ) -> Result<Board, MiroError> {
        let body = CreateBoardBody {
            name: request.name.as_deref(),
            description: request.description.as_deref(),
            team_id: request.team_id.as_deref(),
            project_id: request.project_id.as_deref(),
            policy: request.policy.as_ref(),
        };
        let call = match &request.template_board_id {
            None => self.http.post(Config::endpoint(&self.base, "/v2/boards")),
            Some(template) => {
                let mut url = Config::endpoint(&self.base, "/v2/boards");
                url.query_pairs_mut().append_pair("copy_from", template);
                self.http.put(url)
            }
        };
        let response = call
            .bearer_auth(access_token.expose())
            .json(&body)
            .send_as("create_board")
            .await
            .map_err(transport)?;
        if response.status() != StatusCode::CREATED && response.status() != StatusCode::OK {
            return Err(failure(response, self.clock.now()).await);
        }
        // A lost or oversized body after a 201 is as ambiguous as a lost answer.
        let body = read_capped(response)
            .await
            .map_err(|_| MiroError::Unavailable {
                may_have_taken_effect: true,
                detail: "unreadable board response".into(),
            })?;
        parse_board(&body, Some(&self.base)).ok_or_else(|| MiroError::Unavailable {
            may_have_taken_effect: true,
            detail: "unreadable board response".into(),
        })
    }
}

/// Miro's 201 body (`BoardWithLinks`) as this API's [`Board`]; `None` if it is not one.
/// `miro_base`: the configured Miro API, whose own origin a view link may
/// also have (the emulator draws its boards there, over plain http).
pub fn parse_board(body: &[u8], miro_base: Option<&Url>) -> Option<Board> {
    let board: BoardWithLinks = serde_json::from_slice(body)
        .ok()
        .filter(|b: &BoardWithLinks| !b.id.is_empty())?;
    Some(Board {
        id: board.id,
        name: board.name,
        // Handed to the app as a link: only https (or Miro's own configured
        // origin), never `javascript:` or the like.
        view_link: Url::parse(&board.view_link)
            .ok()
            .filter(|u| {
                u.scheme() == "https" || miro_base.is_some_and(|b| b.origin() == u.origin())
            })
            .map(String::from),
        team: board
            .team
            .and_then(|t| t.id.map(|id| TeamRef { id, name: t.name })),
        created_at: board.created_at,
    })
}
