//! The use cases, written against the store ports and the Miro adapters.
//! Handlers parse, call one of these, and respond.
//!
//! One use case a file, each adding its methods to [`Service`]:
//! [`authorization`] (start, callback, complete), [`boards`] (idempotency and
//! the Miro call loop), [`connections`] (status, disconnect, revocation),
//! [`content`] (a board's items, exactly once), [`tokens`] (refresh under
//! the lease), [`events`] (the board-request
//! consumer), [`keepalive`] (the scheduled sweep), [`reseal`] (retiring a
//! sealing key); [`retry`] holds the waiting and backoff they share.

pub mod authorization;
pub mod boards;
pub mod breaker;
pub mod connections;
pub mod content;
pub mod events;
pub mod keepalive;
pub mod reseal;
pub mod retry;
pub mod tokens;

pub use authorization::{
    AuthorizationStarted, CallbackOutcome, CallbackParams, CompleteAuthorization, Completed,
    StartAuthorization, MAX_LIVE_FLOWS,
};
pub use boards::{is_idempotency_key, BoardCreated, Consent, ItemsAdded, IDEMPOTENCY_TTL_SECONDS};
pub use retry::Deadline;

use crate::clock::Clock;
use crate::config::Config;
use crate::error::Error;
use crate::events::{Lifecycle, LifecyclePublisher, NoBus};
use crate::identity::AppUser;
use crate::miro::{MiroApi, MiroError};
use crate::oauth::MiroOAuth;
use crate::store::Store;
use retry::RateGate;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// An error as the API shows it, where it is part of an answer (a board
/// asked for before connecting that could not be made).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
}

impl From<&Error> for ErrorBody {
    fn from(e: &Error) -> Self {
        Self {
            error: e.code().to_string(),
            message: e.to_string(),
        }
    }
}

pub struct Service {
    pub config: Config,
    pub(crate) store: Arc<dyn Store>,
    /// Where lifecycle events go ([`crate::events::NoBus`] unless wired).
    pub(crate) lifecycle: Arc<dyn LifecyclePublisher>,
    pub(crate) oauth: MiroOAuth,
    pub(crate) miro: MiroApi,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) rate_gate: RateGate,
}

impl Service {
    /// Built by [`crate::bootstrap::wire`], and only there.
    pub(crate) fn new(
        config: Config,
        store: Arc<dyn Store>,
        http: reqwest::Client,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let oauth = MiroOAuth::new(&config, http.clone(), clock.clone());
        let miro = MiroApi::new(&config, http, clock.clone());
        Self {
            config,
            store,
            lifecycle: Arc::new(NoBus),
            oauth,
            miro,
            clock,
            rate_gate: RateGate::default(),
        }
    }

    /// Publishes lifecycle events to `publisher` from now on.
    pub fn with_lifecycle(mut self, publisher: Arc<dyn LifecyclePublisher>) -> Self {
        self.lifecycle = publisher;
        self
    }

    /// Tells the app what happened to a connection. Best effort: a failure
    /// is logged and never fails the request that caused it.
    pub(crate) async fn announce(&self, event: Lifecycle) {
        match self.lifecycle.publish_lifecycle(&event).await {
            Ok(()) => crate::metrics::count(crate::metrics::Metric::LifecyclePublished, 1, &[]),
            Err(e) => {
                tracing::warn!(event = event.detail_type(), error = %e, "lifecycle event not published");
                crate::metrics::count(crate::metrics::Metric::LifecyclePublishFailed, 1, &[]);
            }
        }
    }

    /// Runs one request's work within its budget (`REQUEST_TIMEOUT_MS`):
    /// whatever the services below do, the caller gets an answer (a 503 with
    /// `Retry-After` at worst) before the function's own timeout.
    pub async fn bounded<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let budget = std::time::Duration::from_millis(self.config.request_timeout_ms);
        match tokio::time::timeout(budget, work).await {
            Ok(outcome) => outcome,
            Err(_) => {
                tracing::error!(
                    budget_ms = self.config.request_timeout_ms,
                    "request budget spent"
                );
                Err(Error::RequestTimeout)
            }
        }
    }
}

fn miro_failure(user: &AppUser, e: MiroError) -> Error {
    match e {
        MiroError::Rejected { status, message } => Error::MiroRejected { status, message },
        MiroError::RateLimited {
            retry_after_seconds,
        } => Error::MiroRateLimited {
            retry_after_seconds,
        },
        MiroError::Unauthorized => Error::MiroRejected {
            status: 401,
            message: "token refused".into(),
        },
        MiroError::NotInstalled => Error::MiroRejected {
            status: 403,
            message: "the app is not installed in that team".into(),
        },
        MiroError::InvalidItem { field, message, .. } => Error::MiroRejected {
            status: 400,
            message: format!("{field}: {message}"),
        },
        MiroError::BoardNotFound => Error::BoardNotFound,
        MiroError::Unavailable { detail, .. } => {
            // Only reached for requests that are safe to repeat.
            tracing::warn!(user = %user, %detail, "Miro unavailable");
            Error::MiroUnavailable {
                retry_after_seconds: 2,
            }
        }
    }
}

/// Miro's refresh tokens last 60 days; each refresh restarts them.
pub const REFRESH_TOKEN_LIFETIME_SECONDS: i64 = 60 * 24 * 3600;
