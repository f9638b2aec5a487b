//! One email delivery attempt over SMTP (lettre), through the egress guard:
//! the SMTP host is resolved once by the guard and refused unless every
//! answer may be reached (public, or named by the operator's allow-list),
//! and the connection dials a vetted address only. TLS (STARTTLS or
//! implicit TLS) verifies the server's certificate against the configured
//! host name, not the address dialled.
//!
//! Each attempt opens its own connection: email targets are few and the
//! address must be vetted again on every attempt anyway.

use std::fmt;
use std::time::{Duration, Instant};

use accord_egress::{Authority, Guard, GuardConfig, TargetHost};
use accord_model::{EgressPolicy, EmailRecipients};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::email::EmailContent;
use crate::send::{Attempt, MAX_EXCERPT_BYTES};

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, required (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a server on loopback (tests, a local relay).
    None,
}

impl SmtpTls {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "starttls" => Some(Self::StartTls),
            "tls" => Some(Self::Tls),
            "none" => Some(Self::None),
            _ => None,
        }
    }

    /// The usual port of each mode.
    pub fn default_port(self) -> u16 {
        match self {
            Self::StartTls => 587,
            Self::Tls => 465,
            Self::None => 25,
        }
    }
}

/// The SMTP server email notifications go through.
#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The `From:` mailbox (`Accord <accord@example.com>` or a bare address).
    pub from: String,
    /// Certificate authorities (PEM) trusted for the server's certificate
    /// besides the public roots: an internal relay's own CA.
    pub ca_pem: Option<Vec<u8>>,
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "..."))
            .field("from", &self.from)
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "..."))
            .finish()
    }
}

/// Why a [`Mailer`] could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum MailerBuildError {
    #[error("the SMTP host {0:?} is not a host name or address")]
    Host(String),
    #[error("the From address {from:?} is not a mailbox: {reason}")]
    From { from: String, reason: String },
    #[error("SMTP without TLS is only allowed to a server on loopback, not {0}")]
    PlainToRemote(String),
    #[error("an SMTP user name needs a password, and a password a user name")]
    HalfCredentials,
    #[error("the SMTP certificate authorities are not PEM certificates: {0}")]
    Ca(String),
    #[error("certificate authorities apply to TLS, and this SMTP server is set to plain SMTP")]
    CaWithoutTls,
}

/// Sends emails through the guard. Cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    config: SmtpConfig,
    /// The extra roots, parsed once.
    roots: Option<Certificate>,
    authority: Authority,
    from: Mailbox,
    guard: Guard,
    timeout: Duration,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The egress rules the mailer connects under (those of the webhooks).
#[derive(Debug, Clone)]
pub struct MailerEgress {
    pub policy: EgressPolicy,
    pub allow: accord_egress::AllowList,
    /// Longest one attempt may take (each SMTP command, and connecting).
    pub timeout: Duration,
}

impl Mailer {
    /// Checks the configuration: the host parses, the From mailbox
    /// parses, plain SMTP goes to loopback only, credentials come in pairs.
    pub fn new(config: SmtpConfig, egress: MailerEgress) -> Result<Self, MailerBuildError> {
        let host = TargetHost::parse(&config.host)
            .map_err(|_| MailerBuildError::Host(config.host.clone()))?;
        if config.tls == SmtpTls::None && !is_loopback(&host) {
            return Err(MailerBuildError::PlainToRemote(config.host.clone()));
        }
        if config.username.is_some() != config.password.is_some() {
            return Err(MailerBuildError::HalfCredentials);
        }
        let roots = match &config.ca_pem {
            Some(_) if config.tls == SmtpTls::None => return Err(MailerBuildError::CaWithoutTls),
            Some(pem) => Some(pem_certificates(pem)?),
            None => None,
        };
        let from: Mailbox = config
            .from
            .parse()
            .map_err(
                |err: lettre::address::AddressError| MailerBuildError::From {
                    from: config.from.clone(),
                    reason: err.to_string(),
                },
            )?;
        let guard = Guard::new(GuardConfig {
            policy: egress.policy,
            allow: egress.allow,
            connect_timeout: egress.timeout,
        });
        Ok(Self {
            roots,
            authority: Authority {
                host,
                port: config.port,
            },
            config,
            from,
            guard,
            timeout: egress.timeout,
        })
    }

    /// Builds the message: `From:` the configured mailbox, `To:` every
    /// recipient, a `Message-ID` derived from the outbox message (the same
    /// on every attempt, so mail clients can drop a repeat), text and HTML.
    fn message(
        &self,
        recipients: &EmailRecipients,
        content: &EmailContent,
        message_id: &str,
    ) -> Result<Message, String> {
        let domain = self.from.email.domain();
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(content.subject.clone())
            .message_id(Some(format!("<{message_id}@{domain}>")));
        for address in recipients.addresses() {
            let mailbox: Mailbox = address
                .as_str()
                .parse()
                .map_err(|err| format!("the recipient {address} is not deliverable: {err}"))?;
            builder = builder.to(mailbox);
        }
        builder
            .multipart(MultiPart::alternative_plain_html(
                content.text.clone(),
                content.html.clone(),
            ))
            .map_err(|err| format!("the email could not be built: {err}"))
    }

    fn transport(
        &self,
        ip: std::net::IpAddr,
    ) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
        let tls_for = || {
            let mut builder = TlsParameters::builder(self.config.host.clone());
            if let Some(roots) = &self.roots {
                builder = builder.add_root_certificate(roots.clone());
            }
            builder
                .build()
                .map_err(|err| format!("TLS could not be set up: {err}"))
        };
        let tls = match self.config.tls {
            SmtpTls::StartTls => Tls::Required(tls_for()?),
            SmtpTls::Tls => Tls::Wrapper(tls_for()?),
            SmtpTls::None => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(ip.to_string())
            .port(self.config.port)
            .tls(tls)
            .timeout(Some(self.timeout))
            .hello_name(ClientId::Domain(self.from.email.domain().to_owned()));
        if let (Some(user), Some(password)) = (&self.config.username, &self.config.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(builder.build())
    }

    /// Sends one email to every recipient; delivered when the server
    /// accepts it (2xx after DATA). The attempt's `status` is the SMTP
    /// reply code.
    pub async fn send(
        &self,
        recipients: &EmailRecipients,
        content: &EmailContent,
        message_id: &str,
    ) -> Attempt {
        let started = Instant::now();
        let message = match self.message(recipients, content, message_id) {
            Ok(message) => message,
            Err(error) => return permanent(started, error),
        };
        let vetted = match self.guard.resolve(&self.authority).await {
            Ok(vetted) => vetted,
            Err(blocked) => {
                return permanent(
                    started,
                    format!(
                        "the egress guard refused the SMTP server: {}",
                        blocked.detail()
                    ),
                )
            }
        };
        let mut last = None;
        for addr in vetted.addrs() {
            let transport = match self.transport(addr.ip()) {
                Ok(transport) => transport,
                Err(error) => return permanent(started, error),
            };
            let sent =
                tokio::time::timeout(self.timeout * 3, transport.send(message.clone())).await;
            match sent {
                Ok(Ok(response)) => {
                    return Attempt {
                        status: Some(u16::from(response.code())),
                        latency: started.elapsed(),
                        delivered: true,
                        error: None,
                        excerpt: excerpt(response.message()),
                        permanent: false,
                    }
                }
                Ok(Err(err)) if err.is_response() || err.is_permanent() || err.is_transient() => {
                    // The server answered: another address of it would too.
                    return Attempt {
                        status: err.status().map(u16::from),
                        latency: started.elapsed(),
                        delivered: false,
                        error: Some(format!("the SMTP server refused the email: {err}")),
                        excerpt: None,
                        permanent: err.is_permanent(),
                    };
                }
                Ok(Err(err)) => last = Some(describe(&err)),
                Err(_elapsed) => last = Some("the SMTP server did not answer in time".to_owned()),
            }
        }
        Attempt {
            status: None,
            latency: started.elapsed(),
            delivered: false,
            error: Some(last.unwrap_or_else(|| "no address to connect to".to_owned())),
            excerpt: None,
            permanent: false,
        }
    }
}

/// The certificates of a PEM bundle, as one root set; at least one.
fn pem_certificates(pem: &[u8]) -> Result<Certificate, MailerBuildError> {
    if !pem
        .windows(b"-----BEGIN CERTIFICATE-----".len())
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
    {
        return Err(MailerBuildError::Ca("no certificate found".to_owned()));
    }
    Certificate::from_pem(pem).map_err(|err| MailerBuildError::Ca(err.to_string()))
}

fn describe(err: &lettre::transport::smtp::Error) -> String {
    if err.is_timeout() {
        "the SMTP server did not answer in time".to_owned()
    } else if err.is_tls() {
        format!("the TLS handshake with the SMTP server failed: {err}")
    } else {
        format!("could not talk to the SMTP server: {err}")
    }
}

fn permanent(started: Instant, error: String) -> Attempt {
    Attempt {
        status: None,
        latency: started.elapsed(),
        delivered: false,
        error: Some(error),
        excerpt: None,
        permanent: true,
    }
}

fn excerpt<'a>(lines: impl Iterator<Item = &'a str>) -> Option<String> {
    let text: String = lines.collect::<Vec<_>>().join("\n");
    if text.is_empty() {
        return None;
    }
    let mut end = text.len().min(MAX_EXCERPT_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Some(text[..end].to_owned())
}

fn is_loopback(host: &TargetHost) -> bool {
    match host {
        TargetHost::Ip(ip) => ip.is_loopback(),
        TargetHost::Name(name) => name.is_loopback_name(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(host: &str, tls: SmtpTls) -> SmtpConfig {
        SmtpConfig {
            host: host.to_owned(),
            port: 2525,
            tls,
            username: None,
            password: None,
            from: "Accord <accord@example.com>".to_owned(),
            ca_pem: None,
        }
    }

    fn egress() -> MailerEgress {
        MailerEgress {
            policy: EgressPolicy::PublicOnly,
            allow: accord_egress::AllowList::default(),
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn plain_smtp_is_for_loopback_only() {
        assert!(Mailer::new(config("127.0.0.1", SmtpTls::None), egress()).is_ok());
        assert!(Mailer::new(config("localhost", SmtpTls::None), egress()).is_ok());
        assert!(matches!(
            Mailer::new(config("smtp.example.com", SmtpTls::None), egress()),
            Err(MailerBuildError::PlainToRemote(_))
        ));
        assert!(Mailer::new(config("smtp.example.com", SmtpTls::StartTls), egress()).is_ok());
    }

    #[test]
    fn the_configuration_is_checked() {
        let mut bad_from = config("smtp.example.com", SmtpTls::Tls);
        bad_from.from = "not a mailbox".to_owned();
        assert!(matches!(
            Mailer::new(bad_from, egress()),
            Err(MailerBuildError::From { .. })
        ));
        let mut half = config("smtp.example.com", SmtpTls::Tls);
        half.username = Some("u".to_owned());
        assert!(matches!(
            Mailer::new(half, egress()),
            Err(MailerBuildError::HalfCredentials)
        ));
        let mut secret = config("smtp.example.com", SmtpTls::Tls);
        secret.username = Some("u".to_owned());
        secret.password = Some("hunter2".to_owned());
        assert!(!format!("{secret:?}").contains("hunter2"));
        let mut not_pem = config("smtp.example.com", SmtpTls::Tls);
        not_pem.ca_pem = Some(b"hello".to_vec());
        assert!(matches!(
            Mailer::new(not_pem, egress()),
            Err(MailerBuildError::Ca(_))
        ));
        let mut plain_ca = config("127.0.0.1", SmtpTls::None);
        plain_ca.ca_pem = Some(b"-----BEGIN CERTIFICATE-----".to_vec());
        assert!(matches!(
            Mailer::new(plain_ca, egress()),
            Err(MailerBuildError::CaWithoutTls)
        ));
    }

    fn loopback_egress() -> MailerEgress {
        MailerEgress {
            policy: EgressPolicy::PublicOnly,
            allow: accord_egress::AllowList::parse(["127.0.0.1/32"]).unwrap(),
            timeout: Duration::from_secs(5),
        }
    }

    fn content() -> EmailContent {
        EmailContent {
            subject: "[Accord] shop: changed".to_owned(),
            text: "price: 12\n".to_owned(),
            html: "<p>price: 12</p>\n".to_owned(),
        }
    }

    /// Each reply of the server is one attempt's verdict: 250 delivers,
    /// 451 is worth another try, 550 is not; the reply code is the
    /// attempt's status. Loopback is reached through the allow-list only.
    #[tokio::test]
    async fn the_server_s_reply_decides_the_attempt() {
        let sink = accord_test_support::SmtpSink::start().await.unwrap();
        let mut smtp = config("127.0.0.1", SmtpTls::None);
        smtp.port = sink.addr().port();
        let recipients: EmailRecipients = "a@example.com, b@example.org".parse().unwrap();

        let refused = Mailer::new(smtp.clone(), egress()).unwrap();
        let attempt = refused.send(&recipients, &content(), "msg_0").await;
        assert!(attempt.permanent, "{attempt:?}");
        assert!(attempt.error.unwrap().contains("egress guard refused"));

        let mailer = Mailer::new(smtp, loopback_egress()).unwrap();
        sink.refuse_next(1);
        let later = mailer.send(&recipients, &content(), "msg_1").await;
        assert_eq!(
            (later.status, later.delivered, later.permanent),
            (Some(451), false, false)
        );
        sink.reject_next(1);
        let never = mailer.send(&recipients, &content(), "msg_2").await;
        assert_eq!(
            (never.status, never.delivered, never.permanent),
            (Some(550), false, true)
        );
        let sent = mailer.send(&recipients, &content(), "msg_3").await;
        assert_eq!((sent.status, sent.delivered), (Some(250), true), "{sent:?}");

        let received = sink.received();
        assert_eq!(received.len(), 1);
        let mail = &received[0];
        assert_eq!(mail.to, ["a@example.com", "b@example.org"]);
        assert_eq!(
            mail.header("Message-ID").as_deref(),
            Some("<msg_3@example.com>")
        );
        assert_eq!(
            mail.header("Subject").as_deref(),
            Some("[Accord] shop: changed")
        );
        assert_eq!(mail.part("text/plain").as_deref(), Some("price: 12"));
        assert_eq!(mail.part("text/html").as_deref(), Some("<p>price: 12</p>"));
    }

    /// STARTTLS and implicit TLS against a sink with its own certificate:
    /// trusted through `ca_pem`, the email travels encrypted (the STARTTLS
    /// sink refuses MAIL before the upgrade); without it, the handshake
    /// fails on the certificate and nothing is sent.
    #[tokio::test]
    async fn tls_and_starttls_verify_the_server_certificate() {
        use accord_test_support::SinkTls;
        let recipients: EmailRecipients = "a@example.com".parse().unwrap();
        for (sink_mode, mode) in [
            (SinkTls::StartTls, SmtpTls::StartTls),
            (SinkTls::Implicit, SmtpTls::Tls),
        ] {
            let sink = accord_test_support::SmtpSink::start_tls(sink_mode)
                .await
                .unwrap();
            let mut smtp = config("127.0.0.1", mode);
            smtp.port = sink.addr().port();

            let untrusted = Mailer::new(smtp.clone(), loopback_egress()).unwrap();
            let refused = untrusted.send(&recipients, &content(), "msg_0").await;
            assert!(!refused.delivered, "{mode:?}: {refused:?}");
            let error = refused.error.unwrap_or_default();
            assert!(error.contains("certificate"), "{mode:?}: {error}");
            assert!(sink.received().is_empty());

            smtp.ca_pem = Some(sink.certificate_pem().unwrap().as_bytes().to_vec());
            let trusted = Mailer::new(smtp, loopback_egress()).unwrap();
            let sent = trusted.send(&recipients, &content(), "msg_1").await;
            assert_eq!(
                (sent.status, sent.delivered),
                (Some(250), true),
                "{mode:?}: {sent:?}"
            );
            let received = sink.received();
            assert_eq!(received.len(), 1, "{mode:?}");
            assert!(received[0].tls, "{mode:?}: the email must travel over TLS");
            assert_eq!(received[0].part("text/plain").as_deref(), Some("price: 12"));
        }
    }

    /// The guard decides the SMTP host like any other target: a private
    /// address outside the allow-list is refused before any connection.
    #[tokio::test]
    async fn a_private_smtp_host_is_refused_by_the_guard() {
        let mailer = Mailer::new(config("10.1.2.3", SmtpTls::StartTls), egress()).unwrap();
        let recipients: EmailRecipients = "ops@example.com".parse().unwrap();
        let content = EmailContent {
            subject: "s".to_owned(),
            text: "t".to_owned(),
            html: "<p>h</p>".to_owned(),
        };
        let attempt = mailer.send(&recipients, &content, "msg_1").await;
        assert!(!attempt.delivered);
        assert!(attempt.permanent);
        let error = attempt.error.unwrap();
        assert!(error.contains("egress guard refused"), "{error}");
    }
}
