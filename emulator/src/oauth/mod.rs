//! Miro's OAuth: the authorize page and its decision ([`authorize`]), the
//! token endpoint ([`token`]), the token context ([`context`]) and
//! revocation ([`revoke`]).

mod authorize;
mod context;
mod revoke;
mod token;

pub(crate) use authorize::{authorize_decision, authorize_page};
pub(crate) use context::{authenticate, token_context, Caller};
pub(crate) use revoke::revoke;
pub(crate) use token::token;

use crate::reply::miro_error;
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

pub(crate) fn query_map(raw: &Option<String>) -> HashMap<String, String> {
    url::form_urlencoded::parse(raw.as_deref().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// BASE64URL-NOPAD(SHA-256(verifier)): the S256 challenge of a PKCE verifier.
pub(crate) fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

pub(crate) fn oauth_error(status: StatusCode, message: &str) -> Response {
    miro_error(status, "oauthError", message)
}
