//! Serving HTTP on a listener: HTTP/1.1 and HTTP/2, optional TLS, graceful shutdown.
//!
//! Both the data plane and the admin API go through [`serve`]. TLS handshakes run in the
//! connection's own task with a deadline, so a slow or bad client never holds up the
//! accept loop. A connection's protocol comes from TLS's ALPN or, in cleartext, from its
//! first bytes (HTTP/2's preface, peeked and left for hyper), so each is served by
//! hyper's HTTP/1 or HTTP/2 connection directly; hyper-util's reader is left for the
//! rare client whose first bytes do not tell yet. [`EdgeLimits`] bound what slow or greedy clients can hold: the time to
//! send a request's headers (which is also how long an idle HTTP/1 connection stays
//! open), their size, HTTP/2 liveness pings, and the number of open connections.

use std::error::Error as StdError;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

mod busy_poll;
mod cores;
mod idle;

use busy_poll::TrafficCounted;
use cores::Cores;
pub use cores::{DataPlaneThreads, ThreadReading, ThreadsLoad};

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

type BoxError = Box<dyn StdError + Send + Sync>;

/// A service that can serve a listener's connections: hyper's bounds, named once.
pub trait ConnectionService:
    hyper::service::Service<
        Request<Incoming>,
        Response = Response<Self::Body>,
        Future: Send + 'static,
        Error: Into<BoxError>,
    > + Send
    + 'static
{
    type Body: http_body::Body<Data: Send, Error: Into<BoxError>> + Send + 'static;
}

impl<S, B> ConnectionService for S
where
    S: hyper::service::Service<
            Request<Incoming>,
            Response = Response<B>,
            Future: Send + 'static,
            Error: Into<BoxError>,
        > + Send
        + 'static,
    B: http_body::Body<Data: Send, Error: Into<BoxError>> + Send + 'static,
{
    type Body = B;
}

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
/// With `threads.count` > 0 the connections are served on that many threads of their
/// own (see [`Cores`]), whose open connections `load` reports; with 0, on the shared
/// runtime.
pub async fn serve<M, S>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    limits: EdgeLimits,
    service: M,
    mut stop: watch::Receiver<bool>,
    (threads, load): (DataPlaneThreads, Arc<ThreadsLoad>),
) where
    M: Fn(Connection) -> S,
    S: ConnectionService,
{
    let graceful = GracefulShutdown::new();
    let builders = Arc::new(Builders::new(&limits));
    let open = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut last_refusal_logged: Option<std::time::Instant> = None;
    let cores = (threads.count > 0)
        .then(|| Cores::start(threads, &load))
        .flatten();
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
        let (service, builders, tls, watcher) = (
            service(connection),
            builders.clone(),
            tls.clone(),
            graceful.watcher(),
        );
        if let Some(cores) = &cores {
            let cpu = cores
                .steers()
                .then(|| cores::incoming_cpu(&stream))
                .flatten();
            // The socket moves to the thread's own reactor, so its wakes stay there.
            let Ok(std_stream) = stream.into_std() else {
                continue;
            };
            cores.deal(cpu, move |busy_poll| async move {
                let _slot = slot;
                if let Ok(stream) = TcpStream::from_std(std_stream) {
                    let stream = TrafficCounted::new(stream, busy_poll);
                    serve_connection(stream, tls, builders, service, watcher).await;
                }
            });
            continue;
        }
        tokio::spawn(async move {
            let _slot = slot;
            let stream = TrafficCounted::new(stream, None);
            serve_connection(stream, tls, builders, service, watcher).await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// One accepted connection, from its protocol (TLS's ALPN, or its first bytes) to its
/// end.
async fn serve_connection<S: ConnectionService>(
    stream: TrafficCounted<TcpStream>,
    tls: Option<TlsAcceptor>,
    builders: Arc<Builders>,
    service: S,
    watcher: Watcher,
) {
    let header_time = builders.header_read_timeout;
    match tls {
        None => {
            // What the client speaks, from its first bytes; one that sends
            // none within the header time is closed.
            let Ok(Ok(protocol)) =
                tokio::time::timeout(header_time, Protocol::sniff(stream.get_ref())).await
            else {
                return;
            };
            builders.serve(protocol, stream, service, watcher).await;
        }
        Some(acceptor) => {
            let Ok(Ok(stream)) =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
            else {
                return;
            };
            let protocol = Protocol::negotiated(stream.get_ref().1.alpn_protocol());
            builders.serve(protocol, stream, service, watcher).await;
        }
    }
}

/// The HTTP version a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
    /// Not known yet (the first bytes are the start of HTTP/2's preface, or TLS agreed
    /// on no protocol): hyper-util's reader tells once more bytes are in.
    Either,
}

/// What an HTTP/2 client sends first, prior knowledge or not.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

impl Protocol {
    /// From the bytes a cleartext client has sent so far, left unread for hyper.
    async fn sniff(stream: &TcpStream) -> std::io::Result<Self> {
        let mut head = [0u8; H2_PREFACE.len()];
        let n = stream.peek(&mut head).await?;
        Ok(Self::of_first_bytes(&head[..n]))
    }

    fn of_first_bytes(head: &[u8]) -> Self {
        if head.is_empty() || !H2_PREFACE.starts_with(head) {
            // Closed (hyper sees the end and stops), or not HTTP/2's preface.
            Self::Http1
        } else if head.len() == H2_PREFACE.len() {
            Self::Http2
        } else {
            Self::Either
        }
    }

    /// From the protocol a TLS handshake agreed on (ALPN).
    fn negotiated(alpn: Option<&[u8]>) -> Self {
        match alpn {
            Some(b"h2") => Self::Http2,
            Some(b"http/1.1") => Self::Http1,
            _ => Self::Either,
        }
    }
}

/// The connection builders of one listener.
struct Builders {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    either: auto::Builder<TokioExecutor>,
    header_read_timeout: Duration,
}

impl Builders {
    fn new(limits: &EdgeLimits) -> Self {
        let mut http1 = http1::Builder::new();
        // The head's size, checked as it arrives (431 beyond it), and hyper's read
        // buffer, whose floor is 8 KiB. The header time is kept by [`idle::Activity`],
        // not by a timer per request. Writes are flattened: a small response's head and
        // body go out in one send, not a writev of their pieces (measured on bench/wasi03's
        // shared function: 1.36 writes a request instead of 1.52); the price is one more
        // copy of a large body's chunks, into hyper's write buffer.
        http1
            .max_header_size(limits.max_header_bytes)
            .max_buf_size(limits.max_header_bytes.max(8192))
            .writev(false);
        let max_header_list = u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX);
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_header_list_size(max_header_list)
            .keep_alive_interval(limits.h2_keep_alive)
            .keep_alive_timeout(limits.h2_keep_alive);
        let mut either = auto::Builder::new(TokioExecutor::new());
        either
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(limits.max_header_bytes.max(8192))
            .writev(false);
        either
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(max_header_list)
            .keep_alive_interval(limits.h2_keep_alive)
            .keep_alive_timeout(limits.h2_keep_alive);
        Self {
            http1,
            http2,
            either,
            header_read_timeout: limits.header_read_timeout,
        }
    }

    /// Serves one connection until it ends, the client idles past the header time
    /// (HTTP/1), or a graceful shutdown finishes it.
    async fn serve<I, S>(&self, protocol: Protocol, io: I, service: S, watcher: Watcher)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
        S: ConnectionService,
    {
        let io = TokioIo::new(io);
        match protocol {
            Protocol::Http1 => {
                let activity = idle::Activity::new();
                let service = idle::Watched {
                    inner: service,
                    activity: activity.clone(),
                };
                let conn = watcher.watch(self.http1.serve_connection(io, service));
                tokio::select! {
                    biased;
                    _ = conn => {}
                    () = activity.idle_for(self.header_read_timeout) => {}
                }
            }
            Protocol::Http2 => {
                let _ = watcher
                    .watch(self.http2.serve_connection(io, service))
                    .await;
            }
            Protocol::Either => {
                let conn = self.either.serve_connection(io, service).into_owned();
                let _ = watcher.watch(conn).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_bytes_tell_http2_prior_knowledge_from_http1() {
        assert_eq!(Protocol::of_first_bytes(H2_PREFACE), Protocol::Http2);
        assert_eq!(Protocol::of_first_bytes(b"PRI * HT"), Protocol::Either);
        assert_eq!(
            Protocol::of_first_bytes(b"GET / HTTP/1.1\r\n"),
            Protocol::Http1
        );
        assert_eq!(Protocol::of_first_bytes(b"PRIX"), Protocol::Http1);
        assert_eq!(Protocol::of_first_bytes(b""), Protocol::Http1);
        assert_eq!(Protocol::negotiated(Some(b"h2")), Protocol::Http2);
        assert_eq!(Protocol::negotiated(Some(b"http/1.1")), Protocol::Http1);
        assert_eq!(Protocol::negotiated(None), Protocol::Either);
    }
}
