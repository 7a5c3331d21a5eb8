//! The accept loop: limits that hold before anything is authenticated. Every
//! TCP connection takes a slot of its source address and of the whole server
//! (over a cap it is closed at once), keeps it until the connection (or the
//! WebSocket it was upgraded to) is gone, and gets HTTP/1 served by hyper with
//! a header-read timeout, so a client dribbling headers, or an idle keep-alive
//! connection, is closed after `CHAT_HEADER_TIMEOUT_MS`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// An `accept` that failed for lack of resources (file descriptors) is retried after this.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Longest wait, after the server closed a connection, for its peer to close
/// it too ([`linger`]).
const LINGER: Duration = Duration::from_secs(2);

/// Connection limits of the listener (`CHAT_MAX_CONNECTIONS`,
/// `CHAT_MAX_CONNECTIONS_PER_ADDRESS`, `CHAT_HEADER_TIMEOUT_MS`).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Open connections in all; 0: no cap.
    pub total: usize,
    /// Open connections of one source address; 0: no cap (behind a proxy).
    pub per_address: usize,
    /// Longest wait for a request's headers, the first or the next one.
    pub header_timeout: Duration,
}

impl ConnectionLimits {
    /// The limits `config` sets.
    pub fn from_config(config: &Config) -> Self {
        Self {
            total: config.max_connections,
            per_address: config.max_connections_per_address,
            header_timeout: Duration::from_millis(config.header_timeout_ms.max(1)),
        }
    }
}

/// Open connections, in all and per source address.
#[derive(Default)]
struct Slots {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// A connection's place in [`Slots`], given back on drop.
struct Slot {
    slots: Arc<Mutex<Slots>>,
    address: IpAddr,
}

impl Slot {
    /// A slot for `address`, unless a cap is reached.
    fn claim(slots: &Arc<Mutex<Slots>>, address: IpAddr, limits: ConnectionLimits) -> Option<Slot> {
        let mut held = slots.lock().unwrap_or_else(|e| e.into_inner());
        let of_address = held.per_address.get(&address).copied().unwrap_or(0);
        if (limits.total > 0 && held.total >= limits.total)
            || (limits.per_address > 0 && of_address >= limits.per_address)
        {
            return None;
        }
        held.total += 1;
        held.per_address.insert(address, of_address + 1);
        Some(Slot {
            slots: slots.clone(),
            address,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        held.total -= 1;
        if let Some(n) = held.per_address.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                held.per_address.remove(&self.address);
            }
        }
    }
}

/// A TCP stream that holds its [`Slot`]: an upgraded WebSocket owns it too.
/// Dropped, it closes with a [`linger`].
struct Counted {
    /// `None` only once dropped.
    tcp: Option<TcpStream>,
    slot: Option<Slot>,
}

impl Counted {
    fn tcp(&mut self) -> Pin<&mut TcpStream> {
        Pin::new(self.tcp.as_mut().expect("a live connection has its stream"))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let (Some(tcp), Ok(runtime)) = (self.tcp.take(), Handle::try_current()) {
            runtime.spawn(linger(tcp, self.slot.take()));
        }
    }
}

/// Closes a connection without losing what was written to it: a FIN after the
/// last byte, then whatever the peer still sends is read and dropped until it
/// closes too, for at most [`LINGER`]. Closing a socket with unread input
/// makes the kernel answer RST and discard the output not yet sent, so a
/// client closed in mid-burst (a flooder, an oversized frame) would lose the
/// answers, `chat:closing` and the disconnect written just before. The
/// connection keeps its slot meanwhile.
async fn linger(mut tcp: TcpStream, slot: Option<Slot>) {
    let _ = tcp.shutdown().await;
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(LINGER, async {
        while let Ok(1..) = tcp.read(&mut sink).await {}
    })
    .await;
    drop(slot);
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.tcp().poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.tcp().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.tcp().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.tcp().poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.tcp().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.as_ref().is_some_and(TcpStream::is_write_vectored)
    }
}

/// Serves `router` on `listener` until `stop` is cancelled, then lets open
/// connections finish (the caller bounds that wait). `tune` sets socket
/// options on each accepted connection.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    tune: impl Fn(&TcpStream),
    stop: CancellationToken,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let slots = Arc::new(Mutex::new(Slots::default()));
    let graceful = GracefulShutdown::new();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let Some(slot) = Slot::claim(&slots, peer.ip(), limits) else {
            metrics::counter!("chat_connections_refused_total").increment(1);
            tracing::debug!(%peer, "connection over the cap closed");
            continue;
        };
        tune(&tcp);
        let io = TokioIo::new(Counted {
            tcp: Some(tcp),
            slot: Some(slot),
        });
        let connection = builder
            .serve_connection_with_upgrades(io, TowerToHyperService::new(router.clone()))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection the server closes while its peer is still sending: the
    /// peer reads every byte written before the close, then an orderly end.
    /// (Dropped plainly, the unread input makes the kernel reset the
    /// connection, and the peer reads an error instead.)
    #[tokio::test]
    async fn a_connection_closed_with_unread_input_delivers_what_was_written() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        // The client's burst, unread by the server when it closes.
        client.write_all(&[b'x'; 64 << 10]).await.unwrap();
        let slots = Arc::new(Mutex::new(Slots::default()));
        let limits = ConnectionLimits {
            total: 0,
            per_address: 0,
            header_timeout: Duration::from_secs(1),
        };
        let mut counted = Counted {
            tcp: Some(server),
            slot: Slot::claim(&slots, peer.ip(), limits),
        };
        let answer = vec![b'a'; 256 << 10];
        let writing = async {
            counted.write_all(&answer).await.unwrap();
            drop(counted);
        };
        let mut received = Vec::new();
        let reading = client.read_to_end(&mut received);
        let (_, read) = tokio::join!(writing, reading);
        read.expect("an orderly end, not a reset");
        assert_eq!(received.len(), answer.len(), "every byte written arrived");
        // Once the client has closed too, the slot is given back.
        drop(client);
        tokio::time::timeout(Duration::from_secs(1), async {
            while slots.lock().unwrap().total > 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the slot is given back when the peer closes");
    }

    #[test]
    fn slots_are_capped_per_address_and_in_all_and_given_back() {
        let slots = Arc::new(Mutex::new(Slots::default()));
        let limits = ConnectionLimits {
            total: 3,
            per_address: 2,
            header_timeout: Duration::from_secs(1),
        };
        let (a, b, c): (IpAddr, IpAddr, IpAddr) = (
            "127.0.0.1".parse().unwrap(),
            "127.0.0.2".parse().unwrap(),
            "127.0.0.3".parse().unwrap(),
        );
        let a1 = Slot::claim(&slots, a, limits).unwrap();
        let _a2 = Slot::claim(&slots, a, limits).unwrap();
        assert!(Slot::claim(&slots, a, limits).is_none(), "per address");
        let _b1 = Slot::claim(&slots, b, limits).unwrap();
        assert!(Slot::claim(&slots, c, limits).is_none(), "in all");
        drop(a1);
        assert!(Slot::claim(&slots, c, limits).is_some(), "given back");
        let open = ConnectionLimits {
            total: 0,
            per_address: 0,
            ..limits
        };
        let many: Vec<_> = (0..10).map(|_| Slot::claim(&slots, a, open)).collect();
        assert!(many.iter().all(Option::is_some), "0 is no cap");
    }
}
