//! The app user: the `sub` of the app's own JWT. Reading it from a request
//! (only from what API Gateway's JWT authorizer verified) is the edge's job:
//! [`crate::http::app_user`].

use serde::{Deserialize, Serialize};
use std::fmt;

/// A subject no identity provider issues.
#[derive(Debug, thiserror::Error)]
#[error("not a valid user id")]
pub struct InvalidUser;

/// The `sub` claim of the app's own JWT, as verified by the authorizer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(transparent)]
pub struct AppUser(String);

pub const MAX_USER_ID_LEN: usize = 256;

impl AppUser {
    /// Refuses what no identity provider issues as a subject: empty, huge, or
    /// with control characters (which would also corrupt log lines).
    pub fn parse(sub: &str) -> Result<Self, InvalidUser> {
        if sub.is_empty() || sub.len() > MAX_USER_ID_LEN || sub.chars().any(char::is_control) {
            return Err(InvalidUser);
        }
        Ok(Self(sub.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AppUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_odd_subjects() {
        for bad in ["", "a\nb", &"x".repeat(257)] {
            assert!(AppUser::parse(bad).is_err());
        }
    }
}
