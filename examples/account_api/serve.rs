//! Serving the router over HTTP/1.1 with bounds on slow clients: hyper's connections with
//! a header read timeout (which also closes idle kept-alive connections), and a graceful
//! shutdown with a deadline, after which the connections still open are dropped.
//!
//! (`axum::serve` has neither: a client that sends half its headers, or a body shorter
//! than its `Content-Length`, would hold its connection, and after a shutdown signal the
//! process, for ever.) The request timeout, body included, is a layer of the router
//! ([`Limits::request_timeout`]).

use std::{future::Future, time::Duration};

use axum::{Router, extract::ConnectInfo};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use tokio::{net::TcpListener, task::JoinSet};
use tower::ServiceExt as _;

use crate::app::Limits;

/// Serves `router` on `listener` until `shutdown` completes, with each request's
/// `ConnectInfo<SocketAddr>` (the client address the throttles count by). Then stops
/// accepting, lets the requests in flight finish for up to `limits.shutdown_grace`, and
/// drops the connections still open.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, remote) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        accept_failed(&e).await;
                        continue;
                    }
                };
                let router = router.clone();
                let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(remote));
                    router.clone().oneshot(request)
                });
                let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                connections.spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, %remote, "connection ended with an error");
                    }
                });
            }
            // Forget the connections that ended.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    while connections.try_join_next().is_some() {}
    let open = connections.len();
    if open > 0 {
        tracing::info!(
            open,
            grace = ?limits.shutdown_grace,
            "waiting for the requests in flight"
        );
    }
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        while connections.try_join_next().is_some() {}
        tracing::warn!(
            open = connections.len(),
            "shutdown grace period over: dropping the connections still open"
        );
    }
    connections.shutdown().await;
    Ok(())
}

/// After a failed `accept`: a connection reset before it was accepted is nothing; out of
/// file descriptors (or another error), wait a little rather than spin.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
