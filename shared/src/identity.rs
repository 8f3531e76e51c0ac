//! The app user, read only from what API Gateway's JWT authorizer verified.

use crate::error::Error;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The `sub` claim of the app's own JWT, as verified by the authorizer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(transparent)]
pub struct AppUser(String);

pub const MAX_USER_ID_LEN: usize = 256;

impl AppUser {
    /// Refuses what no identity provider issues as a subject: empty, huge, or
    /// with control characters (which would also corrupt log lines).
    pub fn parse(sub: &str) -> Result<Self, Error> {
        if sub.is_empty() || sub.len() > MAX_USER_ID_LEN || sub.chars().any(char::is_control) {
            return Err(Error::Unauthenticated);
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

/// The user from the request context's JWT claims. Nothing in the body, the
/// query or a header is ever taken as the user.
pub fn app_user(req: &Request) -> Result<AppUser, Error> {
    let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref() else {
        return Err(Error::Unauthenticated);
    };
    let sub = ctx
        .authorizer
        .as_ref()
        .and_then(|a| a.jwt.as_ref())
        .and_then(|jwt| jwt.claims.get("sub"))
        .ok_or(Error::Unauthenticated)?;
    AppUser::parse(sub)
}

/// The request context API Gateway's JWT authorizer produces for `sub`: what
/// the local server and the tests hand a handler after verifying a JWT.
pub fn authorizer_context(sub: &str) -> RequestContext {
    use lambda_http::aws_lambda_events::apigw::{
        ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription,
        ApiGatewayV2httpRequestContext,
    };
    let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
    jwt.claims.insert("sub".to_string(), sub.to_string());
    let mut authorizer = ApiGatewayRequestAuthorizer::default();
    authorizer.jwt = Some(jwt);
    let mut ctx = ApiGatewayV2httpRequestContext::default();
    ctx.authorizer = Some(authorizer);
    RequestContext::ApiGatewayV2(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sub_from_authorizer_claims_only() {
        let req = Request::default().with_request_context(authorizer_context("user-1"));
        assert_eq!(app_user(&req).expect("user").as_str(), "user-1");

        let mut spoofed = Request::default();
        spoofed
            .headers_mut()
            .insert("x-user-id", http::HeaderValue::from_static("user-1"));
        assert!(matches!(app_user(&spoofed), Err(Error::Unauthenticated)));
    }

    #[test]
    fn refuses_odd_subjects() {
        for bad in ["", "a\nb", &"x".repeat(257)] {
            assert!(AppUser::parse(bad).is_err());
        }
    }
}
