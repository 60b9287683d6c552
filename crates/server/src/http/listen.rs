//! The HTTP accept loop, written here rather than taken from `axum::serve` because that one has
//! no connection cap and no timer for hyper, so a client sending its headers a byte at a
//! time would hold a connection forever. Here:
//!
//! - at most [`HttpConfig::max_connections`] connections are served at once; one more is
//!   answered `503` (`Retry-After: 1`) and closed;
//! - a request's headers must arrive within [`HttpConfig::header_timeout`] (hyper's
//!   `header_read_timeout`), a TLS handshake within ten seconds, and a request body within
//!   [`HttpConfig::body_timeout`] (see `routes.rs`);
//! - HTTP/1.1 only (with TLS no ALPN is offered), keep-alive on;
//! - on shutdown, connections finish the request in flight and close.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use super::{HttpConfig, Peer};

const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: text/plain\r\nContent-Length: 23\r\nConnection: close\r\n\r\ntoo many connections.\r\n";

/// Serves `router` on `listener` until `shutdown` completes, then lets the connections end
/// their request in flight (for at most ten seconds).
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    router: Router,
    config: &HttpConfig,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let (stop, stopping) = watch::channel(false);
    let header_timeout = config.header_timeout;
    tokio::pin!(shutdown);
    loop {
        let (socket, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "Accepting an HTTP connection failed.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = socket.set_nodelay(true);
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!("HTTP connection refused: too many connections.");
            let plain = tls.is_none();
            tokio::spawn(async move {
                let mut socket = socket;
                if plain {
                    let _ =
                        tokio::time::timeout(Duration::from_secs(1), socket.write_all(BUSY)).await;
                }
                let _ = socket.shutdown().await;
            });
            continue;
        };
        let router = router.clone();
        let tls = tls.clone();
        let stopping = stopping.clone();
        tokio::spawn(async move {
            match tls {
                None => connection(socket, peer, router, header_timeout, stopping).await,
                Some(acceptor) => {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(socket))
                        .await
                    {
                        Ok(Ok(stream)) => {
                            connection(stream, peer, router, header_timeout, stopping).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed."),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out."),
                    }
                }
            }
            drop(slot);
        });
    }
    let _ = stop.send(true);
    // Wait for the connections to finish (each holds a slot), at most ten seconds.
    let all = u32::try_from(config.max_connections.max(1)).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(Duration::from_secs(10), slots.acquire_many(all)).await;
}

/// One connection: HTTP/1.1 with a deadline for each request's headers.
async fn connection<S>(
    stream: S,
    peer: SocketAddr,
    router: Router,
    header_timeout: Duration,
    mut stopping: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = tower::ServiceExt::map_request(
        router,
        move |mut request: axum::http::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(Peer(peer)));
            request
        },
    );
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    tokio::pin!(conn);
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "HTTP connection ended with an error.");
                }
                return;
            }
            changed = stopping.changed() => {
                if changed.is_err() || *stopping.borrow() {
                    conn.as_mut().graceful_shutdown();
                    // Finish the request in flight, then the loop sees the end.
                    let _ = tokio::time::timeout(Duration::from_secs(10), conn.as_mut()).await;
                    return;
                }
            }
        }
    }
}
