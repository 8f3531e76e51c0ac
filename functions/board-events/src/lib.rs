//! The SQS consumer behind the `Create Miro Board` EventBridge rule: each
//! message through the board use case, a bounded number at once, outcomes
//! published to EventBridge, and only the messages worth retrying handed
//! back (SQS partial batch response).

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures_util::stream::{self, StreamExt};
use lambda_runtime::{Error, LambdaEvent};
use miro_connect::bootstrap::Needs;
use miro_connect::events::{Disposition, OutcomePublisher};
use miro_connect::service::Deadline;
use miro_connect::Service;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Messages of one batch handled at once (Miro's per-user limits are tight).
pub const CONCURRENCY: usize = 4;
/// Time kept back from the invocation's deadline to answer in.
const SAFETY_MARGIN: Duration = Duration::from_secs(3);
/// Time kept back from a message's waits (for Miro's rate limit, between
/// retries) to record how far it got: a message cut off mid-way leaves its
/// idempotency record claimed until the claim goes stale.
const RECORD_MARGIN: Duration = Duration::from_millis(1500);

/// Creates boards (secrets) and publishes outcomes (the bus).
pub const NEEDS: Needs = Needs {
    secrets: true,
    events: true,
};

pub struct App {
    pub service: Service,
    pub publisher: Box<dyn OutcomePublisher>,
}

pub async fn handle(app: &App, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
    let deadline = deadline(event.context.deadline);
    let failures: Vec<BatchItemFailure> = stream::iter(event.payload.records)
        .map(|message| process(app, message, deadline))
        .buffer_unordered(CONCURRENCY)
        .filter_map(|failed| async move { failed })
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect()
        .await;
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures;
    Ok(response)
}

/// The message id if the message should come back. A message that cannot
/// settle before the invocation's deadline (storage or Miro hanging) is
/// handed back rather than cut off when the function is killed.
async fn process(app: &App, message: SqsMessage, deadline: Deadline) -> Option<String> {
    let id = message.message_id?;
    let body = message.body.unwrap_or_default();
    let work = settle(app, &id, &body, deadline.sooner_by(RECORD_MARGIN));
    let settled = match deadline.instant() {
        Some(at) => tokio::time::timeout_at(at.into(), work).await.ok(),
        None => Some(work.await),
    };
    match settled {
        Some(true) => None,
        Some(false) => Some(id),
        None => {
            lambda_runtime::tracing::warn!("message not settled before the deadline; handed back");
            Some(id)
        }
    }
}

/// True once the message is done with for good.
async fn settle(app: &App, id: &str, body: &str, deadline: Deadline) -> bool {
    match app.service.board_requested(id, body, deadline).await {
        Disposition::Retry => false,
        // A failed publish comes back too: the idempotency record replays the
        // board, so the redelivery publishes without a second one.
        Disposition::Settled(outcome) => match app.publisher.publish(&outcome).await {
            Ok(()) => true,
            Err(e) => {
                lambda_runtime::tracing::warn!(error = %e, "outcome not published; message handed back");
                false
            }
        },
    }
}

/// The invocation's deadline (epoch milliseconds) as an `Instant`, less a margin.
fn deadline(epoch_ms: u64) -> Deadline {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    let left = Duration::from_millis(epoch_ms.saturating_sub(now_ms)).saturating_sub(SAFETY_MARGIN);
    Deadline::at(Instant::now() + left)
}
