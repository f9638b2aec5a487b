//! Bytes both ways between the browser and the target, until both sides
//! are done or nothing has moved for the idle timeout.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Copies between `a` and `b`; returns when both directions reached the end
/// of their stream, when one fails, or when no byte moved for `idle`.
pub(crate) async fn tunnel<A, B>(a: A, b: B, idle: Duration)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let mut a = Tracked {
        inner: a,
        start,
        last: last.clone(),
    };
    let mut b = Tracked {
        inner: b,
        start,
        last: last.clone(),
    };
    tokio::select! {
        result = tokio::io::copy_bidirectional(&mut a, &mut b) => {
            if let Err(err) = result {
                tracing::debug!(error = %err, "tunnel closed by an error");
            }
        }
        () = idle_out(start, &last, idle) => {
            tracing::debug!(idle = ?idle, "tunnel closed after idling");
        }
    }
}

/// Returns once `last` (milliseconds since `start`) is `idle` in the past.
async fn idle_out(start: Instant, last: &AtomicU64, idle: Duration) {
    loop {
        let seen = last.load(Ordering::Relaxed);
        tokio::time::sleep_until(start + Duration::from_millis(seen) + idle).await;
        if last.load(Ordering::Relaxed) == seen {
            return;
        }
    }
}

/// A stream that stamps `last` whenever bytes arrive.
struct Tracked<T> {
    inner: T,
    start: Instant,
    last: Arc<AtomicU64>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.last.store(now, Ordering::Relaxed);
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_idle_tunnel_closes_and_a_busy_one_does_not() {
        let (browser, proxy_side) = tokio::io::duplex(64);
        let (target_side, mut target) = tokio::io::duplex(64);
        let mut browser = browser;
        let idle = Duration::from_secs(30);
        let tunnel = tokio::spawn(tunnel(proxy_side, target_side, idle));
        // Traffic every 20 s keeps it open past the idle timeout...
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(20)).await;
            browser.write_all(b"ping").await.unwrap();
            let mut got = [0; 4];
            target.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"ping");
        }
        assert!(!tunnel.is_finished());
        // ...and silence closes it.
        tokio::time::sleep(Duration::from_secs(31)).await;
        tunnel.await.unwrap();
        let mut rest = Vec::new();
        assert_eq!(target.read_to_end(&mut rest).await.unwrap(), 0);
    }
}
