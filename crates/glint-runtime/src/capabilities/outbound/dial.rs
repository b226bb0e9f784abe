//! Sending what the outbound guard let through, to the addresses it checked.
//!
//! A name is resolved once, by the node's [`NameResolver`]; the guard vets those
//! addresses, and [`send`] connects to one of them. Nothing resolves the name again, so a
//! DNS answer that changes between the check and the connection (DNS rebinding) cannot
//! steer a guest to an internal host. The request keeps its `Host` header, and TLS still
//! verifies the certificate for the name the guest asked for.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

/// A response and the future that drives its connection, as `WasiHttpHooks` wants them.
pub(crate) type SendResult = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
);

/// The node's DNS resolver for guests' outbound requests: the system's configuration
/// (`/etc/resolv.conf`, `/etc/hosts`) or the servers given with `--dns-server`.
#[derive(Clone)]
pub struct NameResolver(Arc<TokioResolver>);

impl std::fmt::Debug for NameResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NameResolver")
    }
}

impl NameResolver {
    /// The system's resolver when `servers` is empty, else those servers (UDP and TCP).
    pub fn new(servers: &[SocketAddr]) -> anyhow::Result<Self> {
        let provider = hickory_resolver::net::runtime::TokioRuntimeProvider::default();
        let builder = if servers.is_empty() {
            match TokioResolver::builder(provider.clone()) {
                Ok(builder) => builder,
                Err(e) => {
                    // The node still serves; only guests' calls to names fail.
                    tracing::warn!(error = %e, "cannot read the system's DNS configuration; guests' outbound calls to names will fail until the node is started with --dns-server ADDR");
                    TokioResolver::builder_with_config(
                        ResolverConfig::from_name_servers(Vec::new()),
                        provider,
                    )
                }
            }
        } else {
            let name_servers = servers
                .iter()
                .map(|addr| {
                    let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                    for connection in &mut server.connections {
                        connection.port = addr.port();
                    }
                    server
                })
                .collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(name_servers),
                provider,
            )
        };
        let resolver = builder
            .build()
            .map_err(|e| anyhow::anyhow!("cannot set up the DNS resolver: {e}"))?;
        Ok(Self(Arc::new(resolver)))
    }

    /// The addresses of `host` (a name or an IP literal), each with `port`.
    pub async fn lookup(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, HttpError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let found = self.0.lookup_ip(host).await.map_err(|e| {
            tracing::debug!(host, error = %e, "outbound name lookup failed");
            HttpError::DnsError {
                rcode: None,
                info_code: None,
            }
        })?;
        let addrs: Vec<SocketAddr> = found.iter().map(|ip| SocketAddr::new(ip, port)).collect();
        if addrs.is_empty() {
            return Err(HttpError::DestinationNotFound);
        }
        Ok(addrs)
    }
}

/// The root certificates every outbound TLS connection trusts: the Mozilla set, built in,
/// so a guest's TLS does not depend on what the machine has installed.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| b.with_root_certificates(roots).with_no_client_auth())
                .unwrap_or_else(|_| {
                    // The ring provider supports the safe defaults: unreachable in practice.
                    rustls::ClientConfig::builder()
                        .with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth()
                });
            Arc::new(config)
        })
        .clone()
}

/// The first of `addrs` that accepts a connection within `timeout`.
async fn connect(addrs: &[SocketAddr], timeout: Duration) -> Result<TcpStream, HttpError> {
    let mut last = HttpError::DestinationUnavailable;
    for addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                last = HttpError::ConnectionRefused
            }
            Ok(Err(e)) => last = HttpError::Connect(e),
            Err(_) => last = HttpError::ConnectionTimeout,
        }
    }
    Err(last)
}

/// Sends `request` over HTTP/1.1 to one of `addrs` (already vetted), with TLS for
/// `https` verified against `host`. The timeouts are the options' (the guard fills all
/// three).
pub(crate) async fn send(
    mut request: http::Request<WasiBody>,
    addrs: Vec<SocketAddr>,
    host: String,
    tls: bool,
    options: RequestOptions,
) -> Result<SendResult, HttpError> {
    let limit = |t: Option<Duration>| t.unwrap_or(Duration::from_secs(30));
    let (connect_timeout, first_byte, between_bytes) = (
        limit(options.connect_timeout),
        limit(options.first_byte_timeout),
        limit(options.between_bytes_timeout),
    );
    let tcp = connect(&addrs, connect_timeout).await?;
    let stream: Box<dyn Stream> = if tls {
        let name = match host.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => {
                ServerName::try_from(host.clone()).map_err(|_| HttpError::HttpRequestUriInvalid)?
            }
        };
        let connector = tokio_rustls::TlsConnector::from(tls_config());
        match tokio::time::timeout(connect_timeout, connector.connect(name, tcp)).await {
            Ok(Ok(stream)) => Box::new(stream),
            Ok(Err(e)) => return Err(HttpError::Tls(e)),
            Err(_) => return Err(HttpError::ConnectionTimeout),
        }
    } else {
        Box::new(tcp)
    };
    let (mut sender, connection) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| HttpError::ConnectionTimeout)??;
    // The connection runs in its own task, aborted when the returned future is dropped
    // (wasmtime drops it with the response).
    let driver = wasmtime_wasi::runtime::spawn(connection);

    // On the wire an HTTP/1.1 request carries only the path; the authority is in `Host`.
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    *request.uri_mut() = http::Uri::try_from(path).map_err(|_| HttpError::HttpRequestUriInvalid)?;

    let response = tokio::time::timeout(first_byte, sender.send_request(request))
        .await
        .map_err(|_| HttpError::ConnectionReadTimeout)??;
    let response = response.map(|incoming| {
        BetweenBytes {
            inner: incoming,
            idle: between_bytes,
            deadline: Box::pin(tokio::time::sleep(between_bytes)),
        }
        .boxed_unsync()
    });
    let io = async move {
        match driver.await {
            Ok(()) => Ok(()),
            Err(e) => Err(HttpError::from(e)),
        }
    };
    Ok((response, Box::new(io)))
}

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Stream for T {}

/// A response body that fails when the upstream sends nothing for `idle`.
struct BetweenBytes {
    inner: hyper::body::Incoming,
    idle: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl Body for BetweenBytes {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = tokio::time::Instant::now() + self.idle;
                self.deadline.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(HttpError::from(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
