//! Standard Webhooks signatures: `v1,` and the base64 of
//! HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}"), where the
//! key is the base64 after the secret's `whsec_` prefix. While a rotated
//! secret is in its grace period the header carries one signature per
//! secret, separated by spaces; a receiver accepts the message when any
//! of them verifies.

use accord_model::WebhookSecret;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The signature of one message under one secret: `v1,<base64>`.
pub fn sign(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(&secret.key()).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// The `webhook-signature` header: a signature per secret, space-separated.
pub fn signature_header(
    secrets: &[&WebhookSecret],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|secret| sign(secret, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(secret: &str, id: &str, timestamp: i64, body: &str, expected: &str) {
        let secret: WebhookSecret = secret.parse().unwrap();
        assert_eq!(sign(&secret, id, timestamp, body.as_bytes()), expected);
    }

    /// The test vector of the Standard Webhooks specification (also in the
    /// README, for receivers).
    #[test]
    fn the_standard_webhooks_test_vector_verifies() {
        check(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            r#"{"test": 2432232314}"#,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        );
    }

    #[test]
    fn every_secret_signs_during_a_rotation() {
        let old: WebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse().unwrap();
        let new = WebhookSecret::from_key(b"another key");
        let header = signature_header(&[&new, &old], "msg_1", 1, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], sign(&new, "msg_1", 1, b"{}"));
        assert_eq!(parts[1], sign(&old, "msg_1", 1, b"{}"));
    }
}
