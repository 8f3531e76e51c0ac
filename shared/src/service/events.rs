//! Flow 6: a `Create Miro Board` event, through the same use case as
//! `POST /boards`, exactly once per idempotency key.

use super::retry::backoff;
use super::{BoardCreated, Consent, Deadline, Service};
use crate::error::Error;
use crate::events::{CreatedDetail, Disposition, Envelope, FailedDetail, Outcome, REQUESTED};
use crate::identity::AppUser;

/// Waits for another delivery of the same event that holds its key (SQS
/// delivers at least once, sometimes to two consumers at once): about five
/// seconds in all, after which the message goes back to the queue.
const IN_PROGRESS_WAITS: u32 = 5;

fn failed(user: Option<&AppUser>, key: &str, reason: &str, message: String) -> Disposition {
    Disposition::Settled(Outcome::Failed(FailedDetail {
        user_id: user.map(|u| u.to_string()),
        idempotency_key: key.to_string(),
        reason: reason.to_string(),
        message,
    }))
}

impl Service {
    /// One SQS message holding a `Create Miro Board` event, through the same
    /// use case as `POST /boards`, exactly once per idempotency key: the
    /// event's own key, else the EventBridge event id, else the message id.
    pub async fn board_requested(
        &self,
        message_id: &str,
        body: &str,
        deadline: Deadline,
    ) -> Disposition {
        let envelope: Envelope = match serde_json::from_str(body) {
            Ok(e) => e,
            Err(_) => {
                return failed(
                    None,
                    message_id,
                    "invalid_event",
                    "not a Create Miro Board event".into(),
                )
            }
        };
        let key = envelope
            .detail
            .idempotency_key
            .clone()
            .or(envelope.id.clone())
            .unwrap_or_else(|| message_id.to_string());
        if envelope.detail_type != REQUESTED {
            return failed(
                None,
                &key,
                "invalid_event",
                format!("detail-type must be {REQUESTED}"),
            );
        }
        let Ok(user) = AppUser::parse(&envelope.detail.user_id) else {
            return failed(
                None,
                &key,
                "invalid_event",
                "user_id is not a valid user".into(),
            );
        };
        // No flow is started for an event: an authorize URL in an outcome
        // event would hand whoever reads the bus a consent bound to this user.
        // The app starts one in the user's own session instead.
        match self
            .board_once_settled(&user, &key, envelope.detail.board, deadline)
            .await
        {
            Ok(created) => {
                Disposition::Settled(Outcome::Created(created_detail(&user, &key, created)))
            }
            Err(
                e @ (Error::MiroRateLimited { .. }
                | Error::MiroUnavailable { .. }
                | Error::Storage(_)
                | Error::IdempotencyInProgress),
            ) => {
                tracing::warn!(user = %user, error = %e, "board request handed back to the queue");
                Disposition::Retry
            }
            Err(e) => failed(Some(&user), &key, e.code(), e.to_string()),
        }
    }

    /// The board under `key`; while another delivery holds the key, waits
    /// for it to finish and replays its board rather than handing the
    /// message back for a whole visibility timeout.
    async fn board_once_settled(
        &self,
        user: &AppUser,
        key: &str,
        board: crate::domain::BoardRequest,
        deadline: Deadline,
    ) -> Result<BoardCreated, Error> {
        let mut waits = 0;
        loop {
            let outcome = self
                .create_board_as(
                    user,
                    Some(key),
                    board.clone(),
                    deadline,
                    Consent::ReportOnly,
                )
                .await;
            let wait = backoff(waits);
            match outcome {
                Err(Error::IdempotencyInProgress)
                    if waits < IN_PROGRESS_WAITS && deadline.allows(wait) =>
                {
                    tokio::time::sleep(wait).await;
                    waits += 1;
                }
                outcome => return outcome,
            }
        }
    }
}

fn created_detail(user: &AppUser, key: &str, created: BoardCreated) -> CreatedDetail {
    CreatedDetail {
        user_id: user.to_string(),
        idempotency_key: key.to_string(),
        board_id: created.board.id,
        name: created.board.name,
        view_link: created.board.view_link,
        invitations: created.invitations,
    }
}
