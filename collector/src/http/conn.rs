//! What a connection holds and how long it may hold it: the byte-activity clock behind the idle
//! timeout, the count of requests in progress (a response being streamed included), the answer
//! given beyond `max_connections`, and the descriptor limit.
//!
//! Invariants: a connection is idle only when no request is in progress and no byte moved for
//! the whole `idle_timeout`; a connection refused for the cap holds no slot and is closed within
//! [`REFUSAL_WRITE_TIMEOUT`].

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Descriptors kept free for files, Kinesis connections and the like when the connection cap is
/// held under the descriptor limit.
pub const RESERVED_DESCRIPTORS: u64 = 128;
/// How long a refused connection may take to receive its 503.
pub const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// The answer beyond `max_connections` (plain HTTP; a TLS connection is just closed).
pub const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: text/plain\r\nContent-Length: 29\r\nConnection: close\r\n\r\ntoo many connections, retry\r\n";

/// The activity of one connection.
#[derive(Clone)]
pub struct Activity {
    origin: Instant,
    /// Milliseconds since `origin` when a byte last moved.
    last: Arc<AtomicU64>,
    in_flight: Arc<AtomicUsize>,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            origin: Instant::now(),
            last: Arc::new(AtomicU64::new(0)),
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl Activity {
    fn touch(&self) {
        self.last
            .store(self.origin.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Idle for at least `d`: nothing in progress and no byte moved.
    pub fn idle_for(&self, d: Duration) -> bool {
        let since = self.origin.elapsed().as_millis() as u64 - self.last.load(Ordering::Relaxed);
        self.in_flight.load(Ordering::Acquire) == 0 && since >= d.as_millis() as u64
    }

    /// Marks a request in progress until the guard (held by its response body) is dropped.
    pub fn request(&self) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.touch();
        InFlight(self.clone())
    }
}

/// A request in progress.
pub struct InFlight(Activity);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.touch();
    }
}

/// A stream that records when bytes move.
pub struct Tracked<S> {
    inner: S,
    activity: Activity,
}

impl<S> Tracked<S> {
    pub fn new(inner: S, activity: Activity) -> Self {
        activity.touch();
        Tracked { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A response body that keeps its request counted as in progress until it is sent or dropped.
pub struct Guarded {
    inner: axum::body::Body,
    _request: InFlight,
}

impl Guarded {
    pub fn new(inner: axum::body::Body, request: InFlight) -> Self {
        Guarded {
            inner,
            _request: request,
        }
    }
}

impl HttpBody for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Answers a connection beyond the cap with a 503 and closes it.
pub async fn refuse(mut stream: tokio::net::TcpStream, plain_http: bool) {
    if plain_http {
        let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
            let _ = stream.write_all(REFUSAL).await;
            let _ = stream.shutdown().await;
        })
        .await;
    }
}

/// Raises the descriptor limit to its hard limit; returns (before, after) soft limits.
pub fn raise_descriptor_limit() -> std::io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Ok((before, before));
        }
    }
    Ok((before, lim.rlim_cur))
}

/// The connection cap in force: the configured one, held under the descriptor limit.
pub fn connection_cap(configured: usize, descriptor_limit: u64) -> usize {
    let room = descriptor_limit.saturating_sub(RESERVED_DESCRIPTORS).max(1);
    configured.min(usize::try_from(room).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_means_nothing_in_progress_and_no_bytes_for_the_whole_time() {
        let a = Activity::default();
        a.touch();
        assert!(a.idle_for(Duration::ZERO));
        assert!(!a.idle_for(Duration::from_secs(3600)));
        let r = a.request();
        assert!(!a.idle_for(Duration::ZERO), "a request in progress");
        drop(r);
        assert!(a.idle_for(Duration::ZERO));
    }

    #[test]
    fn the_cap_stays_under_the_descriptor_limit() {
        assert_eq!(connection_cap(10_000, 1024), 896);
        assert_eq!(connection_cap(100, 1024), 100);
        assert_eq!(connection_cap(100, 10), 1);
        let (before, after) = raise_descriptor_limit().expect("rlimit");
        assert!(after >= before);
    }
}
