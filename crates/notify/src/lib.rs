//! Accord's notifications on the wire: what a message looks like on each
//! channel and how it gets there.
//!
//! - [`sign`]: Standard Webhooks signatures (`webhook-signature: v1,<base64
//!   HMAC-SHA256 of "{id}.{timestamp}.{body}">`), pure;
//! - [`payload`]: the webhook's JSON payload ([`WebhookPayload`]) and the
//!   digest of a run's outcome it carries, pure;
//! - [`chat`]: Slack (Block Kit) and Discord (embeds) messages, pure;
//! - [`email`]: the email of a message (subject, text and HTML), pure;
//! - [`smtp`]: one email attempt over SMTP through the egress guard;
//! - [`send`]: one attempt over HTTP through the egress guard (every hop
//!   and the peer checked), with its status, latency and a bounded excerpt;
//! - [`atom`]: Atom feeds of monitor events, pure;
//! - [`deliver`]: the delivery loop over the store's outbox: claim due
//!   messages with a lease, send, record the attempt with the next retry
//!   (exponential backoff with jitter) or the final state.
//!
//! Deliberately not here: deciding which runs notify whom (the queue does,
//! in the completion's transaction) and SQL (the store's).

pub mod atom;
pub mod chat;
pub mod deliver;
pub mod email;
pub mod payload;
pub mod send;
pub mod sign;
pub mod smtp;

pub use deliver::{Deliverer, DeliveryConfig};
pub use payload::{Digest, WebhookPayload};
pub use send::{Attempt, Sender, SenderConfig};
pub use sign::{sign, signature_header};
pub use smtp::{Mailer, MailerBuildError, MailerEgress, SmtpConfig, SmtpTls};
