//! The bytes a worker sends and receives on its connections, counted as
//! they pass, so a run's traffic between machines is measured, not guessed
//! (docs/scale.md).
//!
//! A worker's connections are the ones others open to it: the coordinator
//! sends plans and work, and the coordinator and the other workers read
//! the stage results it serves. What a worker sends is therefore the
//! shuffle it feeds plus the results the coordinator collects; what it
//! receives is plans and requests. Its own reads from other workers are
//! counted by them, as their sending.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

/// Totals over every connection of one worker.
#[derive(Debug, Default)]
pub struct Traffic {
    sent: AtomicU64,
    received: AtomicU64,
    connections: AtomicU64,
}

/// What [`Traffic`] holds at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrafficTotals {
    /// Bytes written to peers.
    pub sent: u64,
    /// Bytes read from peers.
    pub received: u64,
    /// Connections accepted.
    pub connections: u64,
}

impl Traffic {
    /// The totals so far.
    pub fn totals(&self) -> TrafficTotals {
        TrafficTotals {
            sent: self.sent.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
        }
    }

    /// `stream`, counted into these totals from now on.
    pub fn count<S>(self: &Arc<Self>, stream: S) -> Counted<S> {
        self.connections.fetch_add(1, Ordering::Relaxed);
        Counted {
            inner: stream,
            traffic: Arc::clone(self),
        }
    }
}

impl std::fmt::Display for TrafficTotals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sent {} bytes ({}) and received {} bytes ({}) over {} connections \
             (发送 / 接收字节数)",
            self.sent,
            mebibytes(self.sent),
            self.received,
            mebibytes(self.received),
            self.connections
        )
    }
}

fn mebibytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// A connection whose bytes are added to a [`Traffic`] as they pass.
#[derive(Debug)]
pub struct Counted<S> {
    inner: S,
    traffic: Arc<Traffic>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let read = (buf.filled().len() - before) as u64;
            self.traffic.received.fetch_add(read, Ordering::Relaxed);
        }
        polled
    }
}

impl<S> Counted<S> {
    /// Add what a write reports written to the bytes sent.
    fn count_sent(&self, polled: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if let Poll::Ready(Ok(written)) = polled {
            self.traffic
                .sent
                .fetch_add(written as u64, Ordering::Relaxed);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.count_sent(polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.count_sent(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: Connected> Connected for Counted<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn every_byte_each_way_is_counted_once() {
        let traffic = Arc::new(Traffic::default());
        let (near, mut far) = tokio::io::duplex(64);
        let mut counted = traffic.count(near);
        let _second = traffic.count(tokio::io::duplex(8).0);

        counted.write_all(&[7; 40]).await.unwrap();
        let mut got = [0; 40];
        far.read_exact(&mut got).await.unwrap();
        far.write_all(b"plan").await.unwrap();
        drop(far);
        let mut back = Vec::new();
        counted.read_to_end(&mut back).await.unwrap();

        assert_eq!(back, b"plan");
        assert_eq!(
            traffic.totals(),
            TrafficTotals {
                sent: 40,
                received: 4,
                connections: 2
            }
        );
        assert!(traffic.totals().to_string().starts_with(
            "sent 40 bytes (0.0 MiB) and received 4 bytes (0.0 MiB) over 2 connections"
        ));
    }
}
