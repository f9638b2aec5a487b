//! [`SmtpSink`]: a small SMTP server on loopback that accepts every
//! message (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT, STARTTLS; no
//! AUTH) and records it, so tests can read what an SMTP client sent
//! ([`ReceivedMail`]): the envelope, the headers, and the decoded text of
//! each MIME part (base64 and quoted-printable are decoded).
//!
//! [`SmtpSink::start_tls`] serves TLS with a certificate for `127.0.0.1`
//! made for the sink ([`SmtpSink::certificate_pem`], for the client to
//! trust): implicit TLS from the first byte, or STARTTLS, in which mode it
//! refuses `MAIL` until the connection is upgraded, so a message it
//! records ([`ReceivedMail::tls`]) really travelled encrypted.
//!
//! It can refuse the next messages with a transient `451` after DATA
//! ([`SmtpSink::refuse_next`]) or a permanent `550`
//! ([`SmtpSink::reject_next`]), for retry tests. Every connection's reads
//! are bounded (line length, message size) so a broken client cannot make
//! it grow without end.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

/// Longest command line read.
const MAX_LINE: usize = 4_096;
/// Largest message accepted.
const MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// One message the sink accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The envelope sender (MAIL FROM), without the angle brackets.
    pub from: String,
    /// The envelope recipients (RCPT TO), without the angle brackets.
    pub to: Vec<String>,
    /// The message as sent after DATA, dot-unstuffed, CRLF line ends.
    pub data: String,
    /// Whether it came over TLS.
    pub tls: bool,
}

impl ReceivedMail {
    /// A top-level header's value, unfolded (`None` when absent).
    pub fn header(&self, name: &str) -> Option<String> {
        let (head, _) = split_head(&self.data);
        header_in(head, name)
    }

    /// The decoded body of the first MIME part of `content_type`
    /// (`text/plain`, `text/html`), searched through nested multiparts.
    pub fn part(&self, content_type: &str) -> Option<String> {
        find_part(&self.data, content_type)
    }
}

#[derive(Debug, Default)]
struct SinkState {
    received: Vec<ReceivedMail>,
    /// Messages still to answer with `451` (try later).
    refuse: u32,
    /// Messages still to answer with `550` (never).
    reject: u32,
}

/// How a TLS sink protects its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkTls {
    /// TLS from the first byte (port 465 style).
    Implicit,
    /// Plain, upgraded by `STARTTLS`, which the sink requires before `MAIL`.
    StartTls,
}

/// An SMTP server on `127.0.0.1`, stopped when dropped.
#[derive(Debug)]
pub struct SmtpSink {
    addr: SocketAddr,
    state: Arc<Mutex<SinkState>>,
    task: tokio::task::JoinHandle<()>,
    /// The TLS sink's certificate (PEM), self-signed for `127.0.0.1`.
    certificate_pem: Option<String>,
}

/// A TLS acceptor with a fresh self-signed certificate for `127.0.0.1`
/// and `localhost`, and that certificate as PEM.
fn self_signed() -> std::io::Result<(TlsAcceptor, String)> {
    let invalid = |err: &dyn std::fmt::Display| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, err.to_string())
    };
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .map_err(|err| invalid(&err))?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|err| invalid(&err))?
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone()], key)
    .map_err(|err| invalid(&err))?;
    Ok((TlsAcceptor::from(Arc::new(config)), cert.pem()))
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpSink {
    /// A plain sink (no TLS).
    pub async fn start() -> std::io::Result<Self> {
        Self::serve(None).await
    }

    /// A sink that speaks TLS as `mode` says, with its own certificate.
    pub async fn start_tls(mode: SinkTls) -> std::io::Result<Self> {
        let (acceptor, pem) = self_signed()?;
        let mut sink = Self::serve(Some((mode, acceptor))).await?;
        sink.certificate_pem = Some(pem);
        Ok(sink)
    }

    async fn serve(tls: Option<(SinkTls, TlsAcceptor)>) -> std::io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(SinkState::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    // A client that goes away mid-session is not the sink's problem.
                    let _ = session(stream, state, tls).await;
                });
            }
        });
        Ok(Self {
            addr,
            state,
            task,
            certificate_pem: None,
        })
    }

    /// The certificate a TLS sink presents (PEM), for the client to trust.
    pub fn certificate_pem(&self) -> Option<&str> {
        self.certificate_pem.as_deref()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every message accepted so far, oldest first.
    pub fn received(&self) -> Vec<ReceivedMail> {
        self.state.lock().expect("sink state").received.clone()
    }

    /// Answers the next `n` messages with `451` after their DATA (a
    /// transient failure: the client should try again later).
    pub fn refuse_next(&self, n: u32) {
        self.state.lock().expect("sink state").refuse = n;
    }

    /// Answers the next `n` messages with `550` after their DATA (a
    /// permanent failure: trying again cannot help).
    pub fn reject_next(&self, n: u32) {
        self.state.lock().expect("sink state").reject = n;
    }
}

fn unbracket(arg: &str) -> String {
    let arg = arg.trim();
    let end = arg.find('>').map_or(arg.len(), |i| i + 1);
    arg[..end]
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned()
}

async fn session(
    stream: TcpStream,
    state: Arc<Mutex<SinkState>>,
    tls: Option<(SinkTls, TlsAcceptor)>,
) -> std::io::Result<()> {
    match tls {
        None => {
            dialogue(stream, &state, Dialogue::Plain).await?;
        }
        Some((SinkTls::Implicit, acceptor)) => {
            let stream = acceptor.accept(stream).await?;
            dialogue(stream, &state, Dialogue::Secured { greet: true }).await?;
        }
        Some((SinkTls::StartTls, acceptor)) => {
            if let Ended::StartTls(plain) = dialogue(stream, &state, Dialogue::OfferTls).await? {
                let stream = acceptor.accept(plain).await?;
                dialogue(stream, &state, Dialogue::Secured { greet: false }).await?;
            }
        }
    }
    Ok(())
}

/// Where a dialogue stands on TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialogue {
    /// No TLS on offer.
    Plain,
    /// Plain, offering STARTTLS and requiring it before MAIL.
    OfferTls,
    /// Over TLS; after STARTTLS the greeting is not sent again.
    Secured { greet: bool },
}

/// How a dialogue ended.
enum Ended<S> {
    Closed,
    /// The client asked for TLS: the plain stream to upgrade.
    StartTls(S),
}

async fn dialogue<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    state: &Mutex<SinkState>,
    mode: Dialogue,
) -> std::io::Result<Ended<S>> {
    // BufReader passes writes through to the stream it reads.
    let mut conn = BufReader::new(stream);
    if mode != (Dialogue::Secured { greet: false }) {
        conn.write_all(b"220 accord-test-sink ESMTP\r\n").await?;
    }
    let secured = matches!(mode, Dialogue::Secured { .. });
    let mut from = String::new();
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        let n = (&mut conn)
            .take(MAX_LINE as u64)
            .read_line(&mut line)
            .await?;
        if n == 0 {
            return Ok(Ended::Closed);
        }
        let command = line.trim_end().to_owned();
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" if mode == Dialogue::OfferTls => {
                b"250-accord-test-sink\r\n250-8BITMIME\r\n250-STARTTLS\r\n250 SMTPUTF8\r\n"
            }
            "EHLO" => b"250-accord-test-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
            "STARTTLS" if mode == Dialogue::OfferTls => {
                conn.write_all(b"220 go ahead\r\n").await?;
                conn.flush().await?;
                return Ok(Ended::StartTls(conn.into_inner()));
            }
            "HELO" | "NOOP" => b"250 OK\r\n",
            "MAIL" if mode == Dialogue::OfferTls => b"530 must issue a STARTTLS command first\r\n",
            "MAIL" => {
                from = unbracket(command.split_once(':').map_or("", |(_, arg)| arg));
                to.clear();
                b"250 OK\r\n"
            }
            "RCPT" => {
                to.push(unbracket(
                    command.split_once(':').map_or("", |(_, arg)| arg),
                ));
                b"250 OK\r\n"
            }
            "RSET" => {
                from.clear();
                to.clear();
                b"250 OK\r\n"
            }
            "DATA" => {
                conn.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let data = read_data(&mut conn).await?;
                let mut state = state.lock().expect("sink state");
                if state.refuse > 0 {
                    state.refuse -= 1;
                    b"451 try again later\r\n"
                } else if state.reject > 0 {
                    state.reject -= 1;
                    b"550 mailbox unavailable\r\n"
                } else {
                    state.received.push(ReceivedMail {
                        from: std::mem::take(&mut from),
                        to: std::mem::take(&mut to),
                        data,
                        tls: secured,
                    });
                    b"250 OK queued\r\n"
                }
            }
            "QUIT" => {
                conn.write_all(b"221 bye\r\n").await?;
                conn.flush().await?;
                return Ok(Ended::Closed);
            }
            _ => b"502 command not implemented\r\n",
        };
        conn.write_all(reply).await?;
        conn.flush().await?;
    }
}

async fn read_data<R: tokio::io::AsyncBufRead + Unpin>(lines: &mut R) -> std::io::Result<String> {
    let mut data = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        let n = (&mut *lines)
            .take(MAX_LINE as u64 * 4)
            .read_line(&mut line)
            .await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let content = line.trim_end_matches(['\r', '\n']);
        if content == "." {
            return Ok(data);
        }
        // RFC 5321 4.5.2: a leading dot was doubled by the client.
        let content = content.strip_prefix('.').unwrap_or(content);
        if data.len() + content.len() > MAX_MESSAGE {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        data.push_str(content);
        data.push_str("\r\n");
    }
}

/// The head and body of a message or part.
fn split_head(text: &str) -> (&str, &str) {
    match text.find("\r\n\r\n") {
        Some(i) => (&text[..i], &text[i + 4..]),
        None => (text, ""),
    }
}

fn header_in(head: &str, name: &str) -> Option<String> {
    let mut found: Option<String> = None;
    let mut current: Option<String> = None;
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(value) = current.as_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some(value) = current.take() {
            found = Some(value);
            break;
        }
        if let Some((key, value)) = line.split_once(':') {
            if key.trim().eq_ignore_ascii_case(name) {
                current = Some(value.trim().to_owned());
            }
        }
    }
    found.or(current)
}

/// The `boundary=` parameter of a Content-Type value.
fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').find_map(|param| {
        let (key, value) = param.trim().split_once('=')?;
        key.eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_owned())
    })
}

fn find_part(entity: &str, wanted: &str) -> Option<String> {
    let (head, body) = split_head(entity);
    let content_type = header_in(head, "Content-Type").unwrap_or_else(|| "text/plain".to_owned());
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media.starts_with("multipart/") {
        let boundary = boundary(&content_type)?;
        let delimiter = format!("--{boundary}");
        return body
            .split(delimiter.as_str())
            .skip(1)
            .take_while(|part| !part.starts_with("--"))
            .find_map(|part| find_part(part.trim_start_matches("\r\n"), wanted));
    }
    if media != wanted {
        return None;
    }
    let encoding = header_in(head, "Content-Transfer-Encoding")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let body = body.trim_end_matches("\r\n");
    let bytes = match encoding.as_str() {
        "base64" => base64::engine::general_purpose::STANDARD
            .decode(body.replace("\r\n", ""))
            .ok()?,
        "quoted-printable" => decode_quoted_printable(body),
        _ => body.as_bytes().to_vec(),
    };
    String::from_utf8(bytes)
        .ok()
        .map(|text| text.replace("\r\n", "\n"))
}

/// RFC 2045 6.7: `=XX` bytes and `=` soft line breaks.
fn decode_quoted_printable(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            if bytes[i + 1..].starts_with(b"\r\n") {
                i += 3;
                continue;
            }
            if let Some(hex) = text.get(i + 1..i + 3) {
                if let Ok(byte) = u8::from_str_radix(hex, 16) {
                    out.push(byte);
                    i += 3;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(data: &str) -> ReceivedMail {
        ReceivedMail {
            from: String::new(),
            to: Vec::new(),
            data: data.replace('\n', "\r\n"),
            tls: false,
        }
    }

    #[test]
    fn headers_are_unfolded_and_parts_decoded() {
        let m = mail(concat!(
            "Subject: a long\n subject\n",
            "Content-Type: multipart/alternative; boundary=\"b1\"\n",
            "\n",
            "--b1\n",
            "Content-Type: text/plain; charset=utf-8\n",
            "Content-Transfer-Encoding: quoted-printable\n",
            "\n",
            "caf=C3=A9 =3D a long=\n line\n",
            "--b1\n",
            "Content-Type: text/html; charset=utf-8\n",
            "Content-Transfer-Encoding: base64\n",
            "\n",
            "PHA+aGk8L3A+\n",
            "--b1--\n",
        ));
        assert_eq!(m.header("subject").as_deref(), Some("a long subject"));
        assert_eq!(m.part("text/plain").as_deref(), Some("café = a long line"));
        assert_eq!(m.part("text/html").as_deref(), Some("<p>hi</p>"));
        assert_eq!(m.part("image/png"), None);
    }
}
