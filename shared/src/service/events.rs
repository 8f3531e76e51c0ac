//! Flow 6: a `Create Miro Board` event, through the same use case as
//! `POST /boards`, exactly once per idempotency key.

use super::{BoardCreated, Consent, Deadline, Service};
use crate::error::Error;
use crate::events::{CreatedDetail, Disposition, Envelope, FailedDetail, Outcome, REQUESTED};
use crate::identity::AppUser;

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
            .create_board_as(
                &user,
                Some(&key),
                envelope.detail.board,
                deadline,
                Consent::ReportOnly,
            )
            .await
        {
            Ok(created) => {
                Disposition::Settled(Outcome::Created(created_detail(&user, &key, created)))
            }
            Err(
                e @ (Error::MiroRateLimited { .. }
                | Error::MiroUnavailable { .. }
                | Error::MiroMisconfigured { .. }
                | Error::Storage(_)
                | Error::IdempotencyInProgress),
            ) => {
                tracing::warn!(user = %user, error = %e, "board request handed back to the queue");
                Disposition::Retry
            }
            Err(e) => failed(Some(&user), &key, e.code(), e.to_string()),
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
        items: created.items.map(Box::new),
    }
}
