//! The bounded stop: calls in flight are counted, and the connections still open when
//! the drain limit passes are cut.
//!
//! tonic's graceful shutdown stops accepting connections, sends each connection an
//! HTTP/2 GOAWAY (no new calls on it) and then waits for every connection to close. A
//! call that never ends keeps its connection open for ever: `Health/Watch`, or a server
//! stream whose client stopped reading (once the client's flow-control window is full,
//! hyper no longer polls the response, so nothing the handler does can end it). tonic
//! serves each connection in a task of its own, so dropping the serve future would leave
//! them running. So every accepted socket is a [`Severable`]: once cut, its reads and
//! writes fail, hyper ends the connection, h2 fails its streams, and the handlers'
//! futures and response streams are dropped.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use caseline_proto::tonic;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::Bytes;
use tonic::transport::server::Connected;

use crate::BoxFuture;

/// The calls open now: each from its request until its response has been sent (or
/// dropped). A tower layer over every service the server routes, health included.
#[derive(Clone, Debug, Default)]
pub(crate) struct Calls(Arc<AtomicUsize>);

impl Calls {
    pub(crate) fn open(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    fn enter(&self) -> Ticket {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ticket(self.clone())
    }
}

/// One open call; dropping it closes the call.
#[derive(Debug)]
struct Ticket(Calls);

impl Drop for Ticket {
    fn drop(&mut self) {
        (self.0).0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<S> tower_layer::Layer<S> for Calls {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            calls: self.clone(),
        }
    }
}

/// A service whose calls are counted in [`Calls`].
#[derive(Clone, Debug)]
pub(crate) struct Counted<S> {
    inner: S,
    calls: Calls,
}

impl<S> tower_service::Service<http::Request<Body>> for Counted<S>
where
    S: tower_service::Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<http::Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let ticket = self.calls.enter();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| {
                Body::new(CountedBody {
                    body,
                    _ticket: ticket,
                })
            }))
        })
    }
}

/// A response body that holds its call open until it is finished or dropped.
#[derive(Debug)]
struct CountedBody {
    body: Body,
    _ticket: Ticket,
}

impl http_body::Body for CountedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Status>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// What cuts every [`Severable`] connection off at once.
#[derive(Clone, Debug, Default)]
pub(crate) struct Cutter {
    // Read on every read and write: an atomic, where the token would take a lock.
    cut: Arc<AtomicBool>,
    // Wakes the connections waiting on their sockets.
    token: CancellationToken,
}

impl Cutter {
    pub(crate) fn cut(&self) {
        self.cut.store(true, Ordering::Release);
        self.token.cancel();
    }

    fn is_cut(&self) -> bool {
        self.cut.load(Ordering::Acquire)
    }
}

/// An accepted connection that fails every read and write once its [`Cutter`] has cut,
/// waking the connection's task so that it notices even while nothing else moves.
#[derive(Debug)]
pub(crate) struct Severable<IO> {
    io: IO,
    cutter: Cutter,
    // One per direction: a future remembers one waker, and hyper may wait on either.
    // Polled only when the socket is not ready, so the hot path takes no lock.
    read_cut: Pin<Box<WaitForCancellationFutureOwned>>,
    write_cut: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl<IO> Severable<IO> {
    pub(crate) fn new(io: IO, cutter: &Cutter) -> Self {
        Self {
            io,
            read_cut: Box::pin(cutter.token.clone().cancelled_owned()),
            write_cut: Box::pin(cutter.token.clone().cancelled_owned()),
            cutter: cutter.clone(),
        }
    }
}

fn cut_off() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection cut off at the drain limit",
    )
}

/// `polled`, unless the connection is cut: checked before, and, when the socket is not
/// ready, waited for with the task's waker (so a cut wakes it).
fn unless_cut<T>(
    cutter: &Cutter,
    cut: &mut Pin<Box<WaitForCancellationFutureOwned>>,
    cx: &mut Context<'_>,
    polled: impl FnOnce(&mut Context<'_>) -> Poll<io::Result<T>>,
) -> Poll<io::Result<T>> {
    if cutter.is_cut() {
        return Poll::Ready(Err(cut_off()));
    }
    match polled(cx) {
        Poll::Pending => cut.as_mut().poll(cx).map(|()| Err(cut_off())),
        ready => ready,
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Severable<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let io = &mut this.io;
        unless_cut(&this.cutter, &mut this.read_cut, cx, |cx| {
            Pin::new(io).poll_read(cx, buf)
        })
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Severable<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let io = &mut this.io;
        unless_cut(&this.cutter, &mut this.write_cut, cx, |cx| {
            Pin::new(io).poll_write(cx, buf)
        })
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let io = &mut this.io;
        unless_cut(&this.cutter, &mut this.write_cut, cx, |cx| {
            Pin::new(io).poll_write_vectored(cx, bufs)
        })
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let io = &mut this.io;
        unless_cut(&this.cutter, &mut this.write_cut, cx, |cx| {
            Pin::new(io).poll_flush(cx)
        })
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Closing is always allowed: it is what cutting leads to.
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl<IO: Connected> Connected for Severable<IO> {
    // The socket's own, so that calls still see their peer's address.
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A bound on what a cut must end at once, so that a broken cut fails, not hangs.
    const ENDS_WITHIN: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn a_cut_fails_a_read_already_waiting() {
        let (client, server) = tokio::io::duplex(64);
        let cutter = Cutter::default();
        let mut server = Severable::new(server, &cutter);
        let reading = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            server.read(&mut buf).await
        });
        // The read waits for data that never comes: only the cut can end it.
        tokio::task::yield_now().await;
        cutter.cut();
        let err = tokio::time::timeout(ENDS_WITHIN, reading)
            .await
            .expect("the cut ends the read")
            .expect("the reading task")
            .expect_err("a cut read fails");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
        drop(client);
    }

    #[tokio::test]
    async fn a_cut_fails_a_write_blocked_on_a_full_buffer() {
        let (client, server) = tokio::io::duplex(8);
        let cutter = Cutter::default();
        let mut server = Severable::new(server, &cutter);
        let writing = tokio::spawn(async move {
            // The peer never reads: the write blocks once 8 bytes are buffered.
            server.write_all(&[0u8; 64]).await
        });
        tokio::task::yield_now().await;
        cutter.cut();
        let err = tokio::time::timeout(ENDS_WITHIN, writing)
            .await
            .expect("the cut ends the write")
            .expect("the writing task")
            .expect_err("a cut write fails");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
        drop(client);
    }

    #[tokio::test]
    async fn an_uncut_connection_passes_bytes_through() {
        let (mut client, server) = tokio::io::duplex(64);
        let cutter = Cutter::default();
        let mut server = Severable::new(server, &cutter);
        client.write_all(b"ping").await.expect("write");
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"ping");
        server.write_all(b"pong").await.expect("write back");
        client.read_exact(&mut buf).await.expect("read back");
        assert_eq!(&buf, b"pong");
    }
}
