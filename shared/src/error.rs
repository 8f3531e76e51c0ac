//! Every way a request can fail, as one type. [`crate::http::respond`] maps it
//! to a response (status, `Retry-After`, body) in one place. The core's own
//! small errors (an invalid board, an invalid user) convert into it with `From`;
//! so do the store's (in [`crate::store`]).

use crate::domain::{FlowStarted, InvalidBoard};
use crate::identity::InvalidUser;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("a verified app user is required")]
    Unauthenticated,
    #[error("this route does not take that method")]
    MethodNotAllowed,
    #[error("the body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("the body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("the body is not valid JSON")]
    MalformedJson,
    #[error("the body does not match the schema: {0}")]
    InvalidBody(String),
    #[error("invalid board: {0}")]
    InvalidBoard(String),
    #[error("the template board does not exist or the user cannot see it")]
    TemplateNotFound,
    #[error("invalid {0}")]
    InvalidParameter(&'static str),
    #[error("return_to must be an http(s) URL on an allowed origin")]
    ReturnToNotAllowed,
    #[error("the completion is unknown, used or expired")]
    InvalidCompletion,
    #[error("this completion belongs to another user; it has been destroyed")]
    CompletionForbidden,
    #[error("the user has no Miro connection for that team")]
    NotConnected,
    /// The flow that asks for it, where one was started (HTTP callers);
    /// none for events, whose outcome must not carry a consent link.
    #[error("the user must connect Miro first")]
    AuthorizationRequired(Option<Box<FlowStarted>>),
    #[error("too many Miro authorizations are pending for this user; finish or wait for one")]
    TooManyAuthorizations { retry_after_seconds: u64 },
    #[error("Miro refused the request ({status}): {message}")]
    MiroRejected { status: u16, message: String },
    #[error("Miro's rate limit was reached")]
    MiroRateLimited { retry_after_seconds: u64 },
    #[error("Miro is unavailable")]
    MiroUnavailable { retry_after_seconds: u64 },
    #[error("Miro failed while creating the board: it may or may not exist; check Miro before trying again under a new key")]
    MiroOutcomeUnknown,
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyKeyReused,
    #[error("a request with this Idempotency-Key is still in progress")]
    IdempotencyInProgress,
    /// The store failed (its detail is for the log, never the caller).
    #[error("storage is unavailable")]
    Storage(String),
    #[error("the request could not finish in time; try again")]
    RequestTimeout,
    #[error("internal error")]
    Internal(String),
    /// One item or connector of the content, named by its field; ours, or
    /// Miro's own refusal mapped back to the request.
    #[error("{field}: {message}")]
    InvalidItem { field: String, message: String },
    #[error("the board does not exist or the connection of that team cannot see it")]
    BoardNotFound,
    /// Miro's token endpoint rejects the refreshes of many connections at
    /// once: most likely the app's client id, secret or redirect URI, not
    /// the users' grants, so none is removed meanwhile.
    #[error("Miro rejects this app's token refreshes; the operator must check its Miro settings. Every connection is kept")]
    MiroMisconfigured { retry_after_seconds: u64 },
}

/// Every `error` code the API answers with (`openapi.yaml` lists the same).
pub const CODES: [&str; 27] = [
    "unauthenticated",
    "method_not_allowed",
    "unsupported_media_type",
    "payload_too_large",
    "malformed_json",
    "invalid_body",
    "invalid_board",
    "template_not_found",
    "invalid_parameter",
    "return_to_not_allowed",
    "invalid_completion",
    "completion_forbidden",
    "not_connected",
    "miro_authorization_required",
    "too_many_authorizations",
    "miro_rejected",
    "miro_rate_limited",
    "miro_unavailable",
    "miro_outcome_unknown",
    "idempotency_key_reused",
    "idempotency_in_progress",
    "storage_unavailable",
    "request_timeout",
    "internal_error",
    "invalid_item",
    "board_not_found",
    "miro_misconfigured",
];

impl Error {
    /// Certain that no board was made: a retry (even under the same
    /// idempotency key) may go ahead.
    pub fn made_nothing(&self) -> bool {
        !matches!(
            self,
            Error::MiroOutcomeUnknown | Error::Internal(_) | Error::RequestTimeout
        )
    }

    /// The stable machine-readable code in `{"error": …}`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Unauthenticated => "unauthenticated",
            Error::MethodNotAllowed => "method_not_allowed",
            Error::UnsupportedMediaType => "unsupported_media_type",
            Error::PayloadTooLarge(_) => "payload_too_large",
            Error::MalformedJson => "malformed_json",
            Error::InvalidBody(_) => "invalid_body",
            Error::InvalidBoard(_) => "invalid_board",
            Error::TemplateNotFound => "template_not_found",
            Error::InvalidParameter(_) => "invalid_parameter",
            Error::ReturnToNotAllowed => "return_to_not_allowed",
            Error::InvalidCompletion => "invalid_completion",
            Error::CompletionForbidden => "completion_forbidden",
            Error::NotConnected => "not_connected",
            Error::AuthorizationRequired(_) => "miro_authorization_required",
            Error::TooManyAuthorizations { .. } => "too_many_authorizations",
            Error::MiroRejected { .. } => "miro_rejected",
            Error::MiroRateLimited { .. } => "miro_rate_limited",
            Error::MiroUnavailable { .. } => "miro_unavailable",
            Error::MiroOutcomeUnknown => "miro_outcome_unknown",
            Error::IdempotencyKeyReused => "idempotency_key_reused",
            Error::IdempotencyInProgress => "idempotency_in_progress",
            Error::Storage(_) => "storage_unavailable",
            Error::RequestTimeout => "request_timeout",
            Error::Internal(_) => "internal_error",
            Error::InvalidItem { .. } => "invalid_item",
            Error::BoardNotFound => "board_not_found",
            Error::MiroMisconfigured { .. } => "miro_misconfigured",
        }
    }
}

impl From<InvalidBoard> for Error {
    fn from(e: InvalidBoard) -> Self {
        match e {
            InvalidBoard::Rule(message) => Error::InvalidBoard(message),
            InvalidBoard::Combination(fields) => Error::InvalidParameter(fields),
            InvalidBoard::Item(item) => Error::InvalidItem {
                field: item.field,
                message: item.message,
            },
        }
    }
}

impl From<InvalidUser> for Error {
    fn from(_: InvalidUser) -> Self {
        Error::Unauthenticated
    }
}

/// Codes the edge answers (API Gateway, or the local server in its place)
/// for a path that no function serves.
pub const EDGE_CODES: [&str; 1] = ["not_found"];

/// One error of each kind, in the order of [`CODES`].
#[cfg(test)]
pub(crate) fn examples() -> Vec<Error> {
    vec![
        Error::Unauthenticated,
        Error::MethodNotAllowed,
        Error::UnsupportedMediaType,
        Error::PayloadTooLarge(1),
        Error::MalformedJson,
        Error::InvalidBody(String::new()),
        Error::InvalidBoard(String::new()),
        Error::TemplateNotFound,
        Error::InvalidParameter("x"),
        Error::ReturnToNotAllowed,
        Error::InvalidCompletion,
        Error::CompletionForbidden,
        Error::NotConnected,
        Error::AuthorizationRequired(None),
        Error::TooManyAuthorizations {
            retry_after_seconds: 1,
        },
        Error::MiroRejected {
            status: 400,
            message: String::new(),
        },
        Error::MiroRateLimited {
            retry_after_seconds: 1,
        },
        Error::MiroUnavailable {
            retry_after_seconds: 1,
        },
        Error::MiroOutcomeUnknown,
        Error::IdempotencyKeyReused,
        Error::IdempotencyInProgress,
        Error::Storage(String::new()),
        Error::RequestTimeout,
        Error::Internal(String::new()),
        Error::InvalidItem {
            field: String::new(),
            message: String::new(),
        },
        Error::BoardNotFound,
        Error::MiroMisconfigured {
            retry_after_seconds: 1,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_a_listed_code() {
        let codes: Vec<&str> = examples().iter().map(Error::code).collect();
        assert_eq!(codes, CODES.to_vec());
    }
}
