//! Board creation from AWS events: the `Create Miro Board` EventBridge event
//! as it arrives in an SQS message, and the outcome events published back.

use crate::domain::{BoardRequest, Invitations};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub const SOURCE: &str = "miro-connect";
pub const REQUESTED: &str = "Create Miro Board";
pub const CREATED: &str = "Miro Board Created";
pub const FAILED: &str = "Miro Board Creation Failed";
pub const CONNECTED: &str = "Miro Connected";
pub const DISCONNECTED: &str = "Miro Disconnected";
pub const REAUTHORIZATION_REQUIRED: &str = "Miro Reauthorization Required";
pub const CONNECTION_EXPIRING: &str = "Miro Connection Expiring";

/// What happened to a connection, for the app to act on before its user
/// clicks: published on the bus with source `miro-connect`, best effort,
/// never with a token or a consent link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Lifecycle {
    Connected {
        user_id: String,
        team_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        miro_user_id: Option<String>,
    },
    Disconnected {
        user_id: String,
        team_id: String,
        reason: DisconnectReason,
    },
    /// A call needed a consent the user has not given (`team_id`: in that team).
    ReauthorizationRequired {
        user_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        team_id: Option<String>,
    },
    /// The refresh token ends at `expires_at` and nothing will renew it (keep-alive
    /// is off, or it failed).
    ConnectionExpiring {
        user_id: String,
        team_id: String,
        expires_at: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisconnectReason {
    /// The app asked (`DELETE /miro/connections…`).
    UserRequest,
    /// Miro's token context no longer knows the token: revoked or uninstalled at Miro.
    RevokedAtMiro,
    /// Miro refused the refresh token (or a refreshed token): the grant is dead.
    GrantRejected,
    /// The refresh token's 60 days ran out unused.
    ExpiredIdle,
}

impl Lifecycle {
    pub fn detail_type(&self) -> &'static str {
        match self {
            Lifecycle::Connected { .. } => CONNECTED,
            Lifecycle::Disconnected { .. } => DISCONNECTED,
            Lifecycle::ReauthorizationRequired { .. } => REAUTHORIZATION_REQUIRED,
            Lifecycle::ConnectionExpiring { .. } => CONNECTION_EXPIRING,
        }
    }
}

/// Publishes lifecycle events. Best effort: the caller logs and counts a
/// failure and carries on.
#[async_trait]
pub trait LifecyclePublisher: Send + Sync {
    async fn publish_lifecycle(&self, event: &Lifecycle) -> Result<(), PublishError>;
}

/// Where no bus is configured (the local server, most tests): nothing is sent.
pub struct NoBus;

#[async_trait]
impl LifecyclePublisher for NoBus {
    async fn publish_lifecycle(&self, _: &Lifecycle) -> Result<(), PublishError> {
        Ok(())
    }
}

/// The EventBridge envelope (only what is read of it).
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope {
    #[serde(default)]
    pub(crate) id: Option<String>,
    #[serde(rename = "detail-type")]
    pub(crate) detail_type: String,
    pub(crate) detail: BoardRequested,
}

/// `detail` of a `Create Miro Board` event.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardRequested {
    pub user_id: String,
    #[serde(default)]
    pub board: BoardRequest,
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedDetail {
    pub user_id: String,
    pub idempotency_key: String,
    pub board_id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_link: Option<String>,
    /// What became of each invitation, when the event asked for members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invitations: Option<Invitations>,
    /// What became of the board's content, when the event carried some
    /// (boxed: most events carry none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Box<crate::domain::ContentSummary>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedDetail {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub idempotency_key: String,
    /// One of the API's error codes, or `invalid_event`.
    pub reason: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Created(CreatedDetail),
    Failed(FailedDetail),
}

impl Outcome {
    pub fn detail_type(&self) -> &'static str {
        match self {
            Outcome::Created(_) => CREATED,
            Outcome::Failed(_) => FAILED,
        }
    }

    pub fn detail_json(&self) -> Result<String, serde_json::Error> {
        match self {
            Outcome::Created(d) => serde_json::to_string(d),
            Outcome::Failed(d) => serde_json::to_string(d),
        }
    }
}

/// What to do with one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Disposition {
    /// Settled for good (created, or a permanent failure): publish and delete.
    Settled(Outcome),
    /// Worth another delivery (rate limit, outage): hand back to the queue.
    Retry,
}

#[derive(Debug, thiserror::Error)]
#[error("publishing the outcome failed: {0}")]
pub struct PublishError(pub String);

#[async_trait]
pub trait OutcomePublisher: Send + Sync {
    async fn publish(&self, outcome: &Outcome) -> Result<(), PublishError>;
}

pub struct EventBridgePublisher {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridgePublisher {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }
}

#[async_trait]
impl OutcomePublisher for EventBridgePublisher {
    async fn publish(&self, outcome: &Outcome) -> Result<(), PublishError> {
        let detail = outcome
            .detail_json()
            .map_err(|e| PublishError(e.to_string()))?;
        self.put(outcome.detail_type(), detail).await
    }
}

#[async_trait]
impl LifecyclePublisher for EventBridgePublisher {
    async fn publish_lifecycle(&self, event: &Lifecycle) -> Result<(), PublishError> {
        let detail = serde_json::to_string(event).map_err(|e| PublishError(e.to_string()))?;
        self.put(event.detail_type(), detail).await
    }
}

impl EventBridgePublisher {
    async fn put(&self, detail_type: &str, detail: String) -> Result<(), PublishError> {
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(SOURCE)
            .detail_type(detail_type)
            .detail(detail)
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| {
                PublishError(aws_sdk_eventbridge::error::DisplayErrorContext(&e).to_string())
            })?;
        if out.failed_entry_count() > 0 {
            return Err(PublishError("EventBridge refused the entry".into()));
        }
        Ok(())
    }
}
