//! Virtual API keys: generation, parsing, hashing and constant-time verification.
//!
//! A key reads `sk-ac-<id>-<secret>`:
//! - `id` is 12 lowercase alphanumeric characters. It is not secret: it is stored in clear,
//!   shown in listings and used to find the key's row in one indexed lookup.
//! - `secret` is 40 base62 characters from the OS CSPRNG, about 238 bits.
//!
//! Only the SHA-256 of the whole key is stored. A fast, unsalted hash is the right tool here,
//! unlike for passwords: the key is uniformly random with ~238 bits of entropy, so there is no
//! dictionary to try and brute force is hopeless whatever the hash speed, while a slow KDF
//! (argon2, bcrypt) would cost milliseconds of CPU on every single API request.
//!
//! The store (`crate::sqlite`) holds the hash; `crate::authenticate` ties the two together.

use rand::rngs::OsRng;
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Every key starts with this.
pub const KEY_PREFIX: &str = "sk-ac-";
/// Length of the key id.
pub const ID_LEN: usize = 12;
/// Length of the secret part.
pub const SECRET_LEN: usize = 40;

const ID_ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
const SECRET_ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A freshly generated key. `key` is the only copy of the clear key: show it once, store `hash`.
///
/// `Debug` redacts the key (`SecretString` prints `[REDACTED]`).
#[derive(Debug)]
pub struct GeneratedKey {
    /// The non-secret id embedded in the key.
    pub id: String,
    /// The whole clear key, `sk-ac-<id>-<secret>`.
    pub key: SecretString,
    /// SHA-256 hex of the whole key: what the store keeps.
    pub hash: String,
    /// `sk-ac-<id>`, safe to display.
    pub prefix: String,
}

/// Generates a new key from the OS CSPRNG.
pub fn generate() -> GeneratedKey {
    let id = random_string(ID_ALPHABET, ID_LEN);
    let secret = random_string(SECRET_ALPHABET, SECRET_LEN);
    let prefix = format!("{KEY_PREFIX}{id}");
    let clear = format!("{prefix}-{secret}");
    let hash = hash(&clear);
    GeneratedKey {
        id,
        key: SecretString::from(clear),
        hash,
        prefix,
    }
}

/// `gen_range` samples without modulo bias.
fn random_string(alphabet: &[u8], len: usize) -> String {
    (0..len)
        .map(|_| char::from(alphabet[OsRng.gen_range(0..alphabet.len())]))
        .collect()
}

/// Extracts the id from a presented key, or `None` if it is not a well-formed anycloud key.
///
/// The whole shape is checked (prefix, id, separator, secret length and alphabet), so garbage
/// is refused before touching the store.
pub fn parse_id(presented: &str) -> Option<&str> {
    let rest = presented.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('-')?;
    if is_valid_id(id)
        && secret.len() == SECRET_LEN
        // SECRET_ALPHABET is exactly the ASCII alphanumerics: a range check, not a search.
        && secret.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        Some(id)
    } else {
        None
    }
}

/// Whether `id` has the shape of a key id (12 lowercase alphanumeric characters).
pub fn is_valid_id(id: &str) -> bool {
    id.len() == ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

/// Accepts a whole key or a bare key id and returns the id; for commands such as
/// `anycloud keys revoke <key or key id>`.
pub fn id_from_key_or_id(input: &str) -> Option<&str> {
    if is_valid_id(input) {
        Some(input)
    } else {
        parse_id(input)
    }
}

/// SHA-256 of the whole presented key, lowercase hex.
pub fn hash(presented: &str) -> String {
    hex::encode(Sha256::digest(presented.as_bytes()))
}

/// Whether `presented` hashes to `stored_hash`, compared in constant time.
pub fn verify(presented: &str, stored_hash: &str) -> bool {
    let computed = hash(presented);
    computed.as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

/// Convenience for callers holding a `SecretString`.
pub fn verify_secret(presented: &SecretString, stored_hash: &str) -> bool {
    verify(presented.expose_secret(), stored_hash)
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_has_the_documented_shape() {
        let k = generate();
        let clear = k.key.expose_secret();
        assert_eq!(clear.len(), KEY_PREFIX.len() + ID_LEN + 1 + SECRET_LEN);
        assert!(clear.starts_with(&k.prefix));
        assert_eq!(k.prefix, format!("sk-ac-{}", k.id));
        assert_eq!(parse_id(clear), Some(k.id.as_str()));
        assert_eq!(k.hash, hash(clear));
        assert_eq!(k.hash.len(), 64);
        assert!(verify(clear, &k.hash));
    }

    #[test]
    fn keys_are_distinct() {
        let a = generate();
        let b = generate();
        assert_ne!(a.id, b.id);
        assert_ne!(a.hash, b.hash);
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let k = generate();
        let shown = format!("{k:?}");
        let clear = k.key.expose_secret();
        let secret = &clear[clear.len() - SECRET_LEN..];
        assert!(!shown.contains(secret), "{shown}");
        assert!(shown.contains(&k.id));
    }

    #[test]
    fn parse_id_refuses_malformed_keys() {
        let secret = "A".repeat(SECRET_LEN);
        let good = format!("sk-ac-abcdef012345-{secret}");
        assert_eq!(parse_id(&good), Some("abcdef012345"));
        for bad in [
            "",
            "sk-ac-",
            "sk-ac-abcdef012345",
            &format!("sk-xx-abcdef012345-{secret}"),
            &format!("sk-ac-ABCDEF012345-{secret}"),
            &format!("sk-ac-abcdef01234-{secret}"),
            &format!("sk-ac-abcdef012345-{secret}x"),
            &format!("sk-ac-abcdef012345-{}", &secret[1..]),
            &format!("sk-ac-abcdef012345-{}-", &secret[1..]),
            &format!("sk-ac-abcdef012345_{secret}"),
            &format!(" sk-ac-abcdef012345-{secret}"),
        ] {
            assert_eq!(parse_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn id_from_key_or_id_accepts_both() {
        let k = generate();
        assert_eq!(id_from_key_or_id(&k.id), Some(k.id.as_str()));
        assert_eq!(
            id_from_key_or_id(k.key.expose_secret()),
            Some(k.id.as_str())
        );
        assert_eq!(id_from_key_or_id("nope"), None);
    }

    #[test]
    fn verify_refuses_other_keys_and_hashes() {
        let k = generate();
        let other = generate();
        assert!(!verify(other.key.expose_secret(), &k.hash));
        assert!(!verify(k.key.expose_secret(), ""));
        assert!(!verify(k.key.expose_secret(), &k.hash[..63]));
        assert!(verify_secret(&k.key, &k.hash));
    }
}
