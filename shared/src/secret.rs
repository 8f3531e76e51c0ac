//! Values that must never reach a log line, a debug print or a response by accident.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;

/// A token, code, state, completion id or client secret. `Debug` never shows it;
/// reading it takes an explicit [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// 256 random bits from the OS, URL-safe base64 without padding (43 characters).
    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What is stored in place of the value: its SHA-256, hex.
    pub fn digest(&self) -> String {
        sha256_hex(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

pub fn sha256_hex(value: &str) -> String {
    format!("{:x}", Sha256::digest(value.as_bytes()))
}

/// True for a value shaped like [`Secret::random`]'s output. Anything else cannot
/// be one of ours, so it is refused before it reaches the store.
pub fn looks_like_random_secret(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_secrets_are_256_bits_and_distinct() {
        let a = Secret::random();
        let b = Secret::random();
        assert_ne!(a, b);
        assert!(looks_like_random_secret(a.expose()));
        assert_eq!(
            URL_SAFE_NO_PAD.decode(a.expose()).map(|v| v.len()).ok(),
            Some(32)
        );
    }

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn digest_is_sha256_hex() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
