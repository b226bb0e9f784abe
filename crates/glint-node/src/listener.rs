//! Serving HTTP on a listener: HTTP/1.1 and HTTP/2, optional TLS, graceful shutdown.
//!
//! Both the data plane and the admin API go through [`serve`]. TLS handshakes run in the
//! connection's own task with a deadline, so a slow or bad client never holds up the
//! accept loop. [`EdgeLimits`] bound what slow or greedy clients can hold: the time to
//! send a request's headers (which is also how long an idle HTTP/1 connection stays
//! open), their size, HTTP/2 liveness pings, and the number of open connections.

use std::error::Error as StdError;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The connection requests come on: [`serve`] makes each connection's service with it.
#[derive(Clone, Copy, Debug)]
pub struct Connection {
    /// The client's address.
    pub peer: std::net::SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
}

/// What one listener allows each client.
#[derive(Clone, Copy, Debug)]
pub struct EdgeLimits {
    /// Time to send a request's headers, from the moment the connection waits for them;
    /// an idle HTTP/1 keep-alive connection is closed after it too.
    pub header_read_timeout: Duration,
    /// Request line and headers together, in bytes; beyond it the answer is 431.
    pub max_header_bytes: usize,
    /// Open connections; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Time to send a request's whole body (the data plane reads it before the guest
    /// runs).
    pub body_read_timeout: Duration,
    /// HTTP/2 ping interval; a peer that does not answer within it is dropped.
    pub h2_keep_alive: Duration,
}

impl Default for EdgeLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            max_connections: 10_000,
            body_read_timeout: Duration::from_secs(30),
            h2_keep_alive: Duration::from_secs(20),
        }
    }
}

fn connection_builder(limits: &EdgeLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // hyper's read buffer bounds the head; 8 KiB is its floor.
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(limits.h2_keep_alive)
        .keep_alive_timeout(limits.h2_keep_alive);
    builder
}

type BoxError = Box<dyn StdError + Send + Sync>;

/// A TLS acceptor from PEM files: a certificate chain and its private key.
pub fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| {
            format!(
                "cannot read the TLS certificate {} (PEM expected)",
                cert.display()
            )
        })?;
    anyhow::ensure!(
        !chain.is_empty(),
        "cannot read the TLS certificate {}: it holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
        cert.display()
    );
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| {
        format!(
            "cannot read the TLS private key {} (PEM expected)",
            key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("cannot set up TLS")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the TLS certificate and key do not fit together")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts connections until `stop` flips, then waits for open connections to finish
/// their in-flight requests. `service` makes the service of one connection, knowing it.
pub async fn serve<M, S, B>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    limits: EdgeLimits,
    service: M,
    mut stop: watch::Receiver<bool>,
) where
    M: Fn(Connection) -> S,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let graceful = GracefulShutdown::new();
    let builder = Arc::new(connection_builder(&limits));
    let open = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut last_refusal_logged: Option<std::time::Instant> = None;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let Ok(slot) = open.clone().try_acquire_owned() else {
            // At the cap: closed at once, so the node keeps its memory and descriptors
            // for the connections it has; logged at most once a minute.
            if last_refusal_logged.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                last_refusal_logged = Some(std::time::Instant::now());
                tracing::warn!(
                    max = limits.max_connections,
                    "connection refused: the listener has --max-connections open; raise it or add nodes"
                );
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            peer,
            tls: tls.is_some(),
        };
        let (service, builder, tls, watcher) = (
            service(connection),
            builder.clone(),
            tls.clone(),
            graceful.watcher(),
        );
        tokio::spawn(async move {
            let _slot = slot;
            match tls {
                None => {
                    let conn = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .into_owned();
                    let _ = watcher.watch(conn).await;
                }
                Some(acceptor) => {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    else {
                        return;
                    };
                    let conn = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .into_owned();
                    let _ = watcher.watch(conn).await;
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
