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
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// An `accept` that failed for lack of resources (file descriptors) is retried after this.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

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
struct Counted {
    tcp: TcpStream,
    _slot: Slot,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
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
        let io = TokioIo::new(Counted { tcp, _slot: slot });
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
