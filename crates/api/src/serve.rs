//! The HTTP server loop: accepts connections within a cap, bounds how long a
//! client may take to send its headers or stay idle, and answers malformed
//! HTTP with the documented JSON error.
//!
//! `axum::serve` has none of these bounds: a client sending half a request
//! line, or nothing, held its connection (and a file descriptor) forever.
//! Here every connection is HTTP/1.1 on hyper with a header-read timeout, a
//! connection that moves no byte either way for the idle timeout is closed,
//! and past `max_connections` a new connection is answered `503` at once
//! and closed. The request-body read timeout lives with the JSON extractor,
//! which reads bodies.
//!
//! Deliberately does not terminate TLS (a proxy in front does) or speak
//! HTTP/2.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::ApiError;

/// Bounds on connections. The defaults suit a server behind a proxy or
/// facing a team; each is configurable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Longest time a client may take to send a request's headers, from
    /// when the server starts waiting for them: on a new connection, or on
    /// a kept-alive one after the previous answer (so it is also how long
    /// an idle keep-alive connection stays open).
    pub header_read_timeout: Duration,
    /// A connection that sends and receives nothing for this long is
    /// closed. Must be longer than the longest claim wait and the event
    /// stream's keep-alive interval.
    pub idle_timeout: Duration,
    /// Most connections open at once; more are answered `503` and closed.
    pub max_connections: usize,
    /// Largest request head (request line and headers); a bigger one is
    /// answered `431`.
    pub max_header_bytes: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            max_header_bytes: 64 * 1024,
        }
    }
}

/// Serves `app` on `listener` until `shutdown`, then lets requests under way
/// finish (idle connections are closed at once).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // hyper's read buffer bounds the head; its floor is 8 KiB.
        .max_buf_size(limits.max_header_bytes.max(8 * 1024))
        .keep_alive(true);
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of descriptors or a connection reset before accept:
                    // neither is fatal, but do not spin on it.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max = limits.max_connections, "connection refused: at the connection limit");
            refuse(&stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service =
            TowerToHyperService::new(tower::service_fn(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                app.clone().oneshot(request.map(axum::body::Body::new))
            }));
        let io = TokioIo::new(GuardedIo::new(stream, limits.idle_timeout));
        let connection = graceful.watch(http.serve_connection(io, service));
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Tells a client over the connection limit so, without waiting on it.
fn refuse(stream: &TcpStream) {
    let error = ApiError::Overloaded;
    let _ = stream.try_write(&raw_response(StatusCode::SERVICE_UNAVAILABLE, &error));
}

/// A whole HTTP/1.1 response carrying `error`'s JSON body; the connection closes after it.
fn raw_response(status: StatusCode, error: &ApiError) -> Vec<u8> {
    let body = serde_json::to_vec(&error.body()).expect("an error body always serializes");
    let mut response = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\ncache-control: no-store\r\nx-content-type-options: nosniff\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(&body);
    response
}

/// hyper's own answer to a request it could not parse: a status line and
/// an empty body. The router never answers an error without a body.
fn canned_error(buf: &[u8]) -> Option<ApiError> {
    const EMPTY: &[u8] = b"\r\ncontent-length: 0\r\n";
    let error = if buf.starts_with(b"HTTP/1.1 400 ") {
        ApiError::MalformedRequest
    } else if buf.starts_with(b"HTTP/1.1 431 ") {
        ApiError::HeadersTooLarge
    } else if buf.starts_with(b"HTTP/1.1 414 ") {
        ApiError::MalformedRequest
    } else {
        return None;
    };
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = &buf[..head_end + 2];
    head.windows(EMPTY.len())
        .any(|w| w.eq_ignore_ascii_case(EMPTY))
        .then_some(error)
}

/// The connection's socket, with the idle timeout and the rewrite of
/// hyper's bodiless parse-error answers into documented JSON errors.
struct GuardedIo {
    inner: TcpStream,
    idle_timeout: Duration,
    /// When a byte last moved either way.
    last_active: Instant,
    /// Fires at the earliest moment the connection can have been idle for
    /// the timeout; re-armed from `last_active` when it fires early. Kept
    /// off the per-read path: traffic only updates `last_active`.
    idle: Pin<Box<Sleep>>,
    /// A replacement response being written, and how much of it is out.
    replacing: Option<(Vec<u8>, usize)>,
}

impl GuardedIo {
    fn new(inner: TcpStream, idle_timeout: Duration) -> Self {
        Self {
            inner,
            idle_timeout,
            last_active: Instant::now(),
            idle: Box::pin(tokio::time::sleep(idle_timeout)),
            replacing: None,
        }
    }

    fn active(&mut self) {
        self.last_active = Instant::now();
    }

    /// Whether the connection has now been idle for the timeout; registers
    /// the waker for the next check when it has not.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.idle.as_mut().poll(cx).is_pending() {
                return false;
            }
            let deadline = self.last_active + self.idle_timeout;
            if Instant::now() >= deadline {
                return true;
            }
            self.idle.as_mut().reset(deadline);
        }
    }
}

impl AsyncRead for GuardedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.active();
                }
                Poll::Ready(result)
            }
            Poll::Pending if self.poll_idle(cx) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle for too long",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.replacing.is_none() {
            if let Some(error) = canned_error(buf) {
                let status = error.status_and_code().0;
                self.replacing = Some((raw_response(status, &error), 0));
            }
        }
        let this = &mut *self;
        if let Some((replacement, written)) = &mut this.replacing {
            while *written < replacement.len() {
                let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &replacement[*written..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                *written += n;
            }
            // hyper's own bytes are consumed in place of the replacement.
            return Poll::Ready(Ok(buf.len()));
        }
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        if n > 0 {
            this.active();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    // One buffer per write, so hyper's error answer arrives whole.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bodiless_parse_errors_are_rewritten() {
        let check = |buf: &[u8], expected: Option<&str>| {
            let got = canned_error(buf).map(|e| e.status_and_code().1);
            assert_eq!(got, expected, "{}", String::from_utf8_lossy(buf));
        };
        check(
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: x\r\n\r\n",
            Some("malformed_request"),
        );
        check(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n",
            Some("headers_too_large"),
        );
        check(
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 57\r\n\r\n{}",
            None,
        );
        check(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", None);
        check(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0", None);
    }

    /// The idle clock counts from the last byte moved: traffic pushes the
    /// deadline back, silence past the timeout ends the connection.
    #[tokio::test(start_paused = true)]
    async fn idle_counts_from_the_last_byte() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let mut guarded = GuardedIo::new(server, Duration::from_secs(10));
        let started = Instant::now();
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(7)).await;
            client.write_all(b"x").await.unwrap();
            // Held open and silent from here on.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(client);
        });
        let mut byte = [0u8; 1];
        guarded.read_exact(&mut byte).await.unwrap();
        let err = guarded.read(&mut byte).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let idle_at = started.elapsed();
        assert!(
            idle_at >= Duration::from_secs(17) && idle_at < Duration::from_secs(18),
            "closed at {idle_at:?}, not 10 s after the byte at 7 s"
        );
        writer.abort();
    }

    #[test]
    fn raw_responses_are_complete() {
        let raw = raw_response(StatusCode::BAD_REQUEST, &ApiError::MalformedRequest);
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], "malformed_request");
    }
}
