//! Every way a request can fail, as one type. [`crate::http::respond`] maps it
//! to a response in one place.

use crate::domain::FlowStarted;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("a verified app user is required")]
    Unauthenticated,
    #[error("this route does not take that method")]
    MethodNotAllowed,
    #[error("no such route")]
    NotFound,
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
    #[error("invalid {0}")]
    InvalidParameter(&'static str),
    #[error("return_to must be an http(s) URL on an allowed origin")]
    ReturnToNotAllowed,
    #[error("the completion is unknown, used or expired")]
    InvalidCompletion,
    #[error("this completion belongs to another user; it has been destroyed")]
    CompletionForbidden,
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
    #[error("storage is unavailable")]
    Storage(#[from] StoreError),
    #[error("the request could not finish in time; try again")]
    RequestTimeout,
    #[error("internal error")]
    Internal(String),
}

/// Every `error` code the API answers with (`openapi.yaml` lists the same).
pub const CODES: [&str; 23] = [
    "unauthenticated",
    "method_not_allowed",
    "not_found",
    "unsupported_media_type",
    "payload_too_large",
    "malformed_json",
    "invalid_body",
    "invalid_board",
    "invalid_parameter",
    "return_to_not_allowed",
    "invalid_completion",
    "completion_forbidden",
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
            Error::NotFound => "not_found",
            Error::UnsupportedMediaType => "unsupported_media_type",
            Error::PayloadTooLarge(_) => "payload_too_large",
            Error::MalformedJson => "malformed_json",
            Error::InvalidBody(_) => "invalid_body",
            Error::InvalidBoard(_) => "invalid_board",
            Error::InvalidParameter(_) => "invalid_parameter",
            Error::ReturnToNotAllowed => "return_to_not_allowed",
            Error::InvalidCompletion => "invalid_completion",
            Error::CompletionForbidden => "completion_forbidden",
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
        }
    }

    #[cfg_attr(feature = "mutant", allow(unreachable_patterns))]
    pub fn status(&self) -> u16 {
        match self {
            Error::Unauthenticated | Error::AuthorizationRequired(_) => 401,
            Error::CompletionForbidden => 403,
            Error::IdempotencyInProgress => 409,
            Error::MiroOutcomeUnknown => 502,
            Error::NotFound => 404,
            Error::MethodNotAllowed => 405,
            Error::PayloadTooLarge(_) => 413,
            Error::UnsupportedMediaType => 415,
            Error::MalformedJson
            | Error::InvalidParameter(_)
            | Error::ReturnToNotAllowed
            | Error::InvalidCompletion => 400,
            // The one rule the `mutant` feature flips, so that the fuzzers and
            // schemathesis can show that they catch a handler that breaks it.
            #[cfg(feature = "mutant")]
            Error::InvalidBoard(_) => 500,
            Error::InvalidBody(_)
            | Error::InvalidBoard(_)
            | Error::MiroRejected { .. }
            | Error::IdempotencyKeyReused => 422,
            Error::MiroRateLimited { .. } | Error::TooManyAuthorizations { .. } => 429,
            Error::MiroUnavailable { .. } | Error::Storage(_) | Error::RequestTimeout => 503,
            Error::Internal(_) => 500,
        }
    }

    /// Seconds for `Retry-After`, where waiting is the remedy.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Error::MiroRateLimited {
                retry_after_seconds,
            }
            | Error::MiroUnavailable {
                retry_after_seconds,
            }
            | Error::TooManyAuthorizations {
                retry_after_seconds,
            } => Some(*retry_after_seconds),
            Error::Storage(_) | Error::IdempotencyInProgress | Error::RequestTimeout => Some(1),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_a_listed_code_and_a_status() {
        let all = [
            Error::Unauthenticated,
            Error::MethodNotAllowed,
            Error::NotFound,
            Error::UnsupportedMediaType,
            Error::PayloadTooLarge(1),
            Error::MalformedJson,
            Error::InvalidBody(String::new()),
            Error::InvalidBoard(String::new()),
            Error::InvalidParameter("x"),
            Error::ReturnToNotAllowed,
            Error::InvalidCompletion,
            Error::CompletionForbidden,
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
            Error::Storage(StoreError::Conflict),
            Error::RequestTimeout,
            Error::Internal(String::new()),
        ];
        let codes: Vec<&str> = all.iter().map(Error::code).collect();
        assert_eq!(codes, CODES.to_vec());
        // Only faults of Miro or of this service are 5xx; everything else is the caller's to fix.
        for e in &all {
            let server_side = matches!(
                e,
                Error::MiroUnavailable { .. }
                    | Error::MiroOutcomeUnknown
                    | Error::Storage(_)
                    | Error::RequestTimeout
                    | Error::Internal(_)
            );
            assert_eq!(e.status() >= 500, server_side, "{e:?}");
        }
    }
}
