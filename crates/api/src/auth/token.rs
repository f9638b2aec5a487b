//! Making API keys and checking them. Only the SHA-256 of a secret is ever
//! stored; secrets are 43 random alphanumerics (about 256 bits), so a plain
//! hash is enough (no password-stretching needed), and comparison is in
//! constant time.

use accord_model::{ApiKeyId, ApiToken};
use rand::distributions::{Alphanumeric, Distribution, Uniform};
use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const ID_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A fresh key: a random id and secret from the operating system's generator.
pub fn new_token() -> ApiToken {
    let mut rng = rand::rngs::OsRng;
    let letters = Uniform::from(0..ID_ALPHABET.len());
    let id: String = (0..ApiKeyId::LEN)
        .map(|_| char::from(ID_ALPHABET[letters.sample(&mut rng)]))
        .collect();
    let secret: String = (&mut rng)
        .sample_iter(&Alphanumeric)
        .take(ApiToken::SECRET_LEN)
        .map(char::from)
        .collect();
    ApiToken::new(id.parse().expect("generated ids are valid"), secret)
        .expect("generated secrets are valid")
}

/// The stored form of a secret: SHA-256, hex.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether the presented token's secret matches the stored hash, in time
/// that does not depend on where they differ.
pub(crate) fn secret_matches(token: &ApiToken, stored_hash: &str) -> bool {
    let presented = hash_secret(token.secret());
    presented.as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_well_formed_and_verifiable() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a.reveal(), b.reveal());
        assert_eq!(a.reveal().parse::<ApiToken>().unwrap(), a);
        let stored = hash_secret(a.secret());
        assert!(secret_matches(&a, &stored));
        assert!(!secret_matches(&b, &stored));
        assert!(!secret_matches(&a, ""));
        assert!(!stored.contains(a.secret()));
    }
}
