//! Token sealing: AES-256-GCM with a fresh random nonce per seal and the item
//! key as associated data, so a sealed value only opens where it was stored.
//!
//! Sealed form: `<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`. The key id
//! in front lets a new key seal while older items still open under theirs.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use std::collections::HashMap;

use crate::secret::Secret;

const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("key ring is invalid: {0}")]
    InvalidKeyRing(&'static str),
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed value names an unknown key")]
    UnknownKey,
    #[error("sealed value does not open with its key and place")]
    DoesNotOpen,
}

pub struct Sealer {
    current: String,
    keys: HashMap<String, Aes256Gcm>,
    /// The ring's key ids in its order (the sealing one first).
    order: Vec<String>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// `id:base64key[,id:base64key…]`, each key 32 bytes; the first one seals.
    pub fn from_key_ring(ring: &Secret) -> Result<Self, SealError> {
        let mut keys = HashMap::new();
        let mut order = Vec::new();
        let mut current = None;
        for entry in ring
            .expose()
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let (id, key) = entry
                .split_once(':')
                .ok_or(SealError::InvalidKeyRing("an entry is not id:key"))?;
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(SealError::InvalidKeyRing("key ids are letters and digits"));
            }
            let key = STANDARD
                .decode(key)
                .map_err(|_| SealError::InvalidKeyRing("a key is not base64"))?;
            let cipher = Aes256Gcm::new_from_slice(&key)
                .map_err(|_| SealError::InvalidKeyRing("a key is not 32 bytes"))?;
            if keys.insert(id.to_string(), cipher).is_some() {
                return Err(SealError::InvalidKeyRing("a key id is repeated"));
            }
            order.push(id.to_string());
            current.get_or_insert_with(|| id.to_string());
        }
        let current = current.ok_or(SealError::InvalidKeyRing("no key"))?;
        Ok(Self {
            current,
            keys,
            order,
        })
    }

    /// The id of the key new seals use (the ring's first).
    pub fn current_key_id(&self) -> &str {
        &self.current
    }

    /// Every key id of the ring, in its order: the sealing one first.
    pub fn key_ids(&self) -> &[String] {
        &self.order
    }

    /// The id of the key a sealed value names (not whether it opens).
    pub fn key_id_of(sealed: &str) -> Option<&str> {
        sealed.split_once('.').map(|(id, _)| id)
    }

    /// A fresh key ring entry, for setting up a deployment.
    pub fn generate_key_ring_entry(id: &str) -> Secret {
        let key = Aes256Gcm::generate_key(OsRng);
        Secret::new(format!("{id}:{}", STANDARD.encode(key)))
    }

    pub fn seal(&self, place: &str, value: &Secret) -> Result<String, SealError> {
        let cipher = self.keys.get(&self.current).ok_or(SealError::UnknownKey)?;
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: value.expose().as_bytes(),
                    aad: place.as_bytes(),
                },
            )
            .map_err(|_| SealError::DoesNotOpen)?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        Ok(format!("{}.{}", self.current, URL_SAFE_NO_PAD.encode(blob)))
    }

    pub fn open(&self, place: &str, sealed: &str) -> Result<Secret, SealError> {
        let (id, blob) = sealed.split_once('.').ok_or(SealError::Malformed)?;
        let cipher = self.keys.get(id).ok_or(SealError::UnknownKey)?;
        let blob = URL_SAFE_NO_PAD
            .decode(blob)
            .map_err(|_| SealError::Malformed)?;
        if blob.len() < NONCE_LEN + 16 {
            return Err(SealError::Malformed);
        }
        let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
        let plain = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: place.as_bytes(),
                },
            )
            .map_err(|_| SealError::DoesNotOpen)?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| SealError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(entries: &[&str]) -> Sealer {
        let joined: Vec<String> = entries
            .iter()
            .map(|id| Sealer::generate_key_ring_entry(id).expose().to_string())
            .collect();
        Sealer::from_key_ring(&Secret::new(joined.join(","))).expect("ring")
    }

    #[test]
    fn opens_only_at_its_place() {
        let s = ring(&["k1"]);
        let token = Secret::new("access-token-value");
        let sealed = s.seal("CONN#alice", &token).expect("seal");
        assert!(!sealed.contains("access-token-value"));
        assert_eq!(s.open("CONN#alice", &sealed), Ok(token));
        assert_eq!(s.open("CONN#mallory", &sealed), Err(SealError::DoesNotOpen));
    }

    #[test]
    fn nonce_is_fresh_each_time() {
        let s = ring(&["k1"]);
        let t = Secret::new("x");
        assert_ne!(s.seal("p", &t).ok(), s.seal("p", &t).ok());
    }

    #[test]
    fn old_keys_still_open_after_rotation() {
        let old_entry = Sealer::generate_key_ring_entry("k1");
        let old = Sealer::from_key_ring(&old_entry).expect("ring");
        let sealed = old.seal("p", &Secret::new("v")).expect("seal");
        let new_entry = Sealer::generate_key_ring_entry("k2");
        let rotated = Sealer::from_key_ring(&Secret::new(format!(
            "{},{}",
            new_entry.expose(),
            old_entry.expose()
        )))
        .expect("ring");
        assert_eq!(rotated.open("p", &sealed), Ok(Secret::new("v")));
        assert!(rotated
            .seal("p", &Secret::new("v"))
            .expect("seal")
            .starts_with("k2."));
        assert_eq!(rotated.current_key_id(), "k2");
        assert_eq!(rotated.key_ids(), ["k2", "k1"], "the ring's order");
        assert_eq!(Sealer::key_id_of(&sealed), Some("k1"));
    }

    #[test]
    fn garbage_never_panics() {
        let s = ring(&["k1"]);
        for junk in [
            "",
            ".",
            "k1.",
            "k1.@@@",
            "k9.AAAA",
            "k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(s.open("p", junk).is_err(), "{junk}");
        }
        assert!(Sealer::from_key_ring(&Secret::new("k1:AAAA")).is_err());
        assert!(Sealer::from_key_ring(&Secret::new("")).is_err());
    }
}
