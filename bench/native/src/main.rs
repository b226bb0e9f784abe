//! The benchmark's ceiling: what a plain native hyper server answers on this machine.
//!
//! It answers every request with the hello function's body, `Hello from Glint!\n`, over
//! HTTP/1.1 on a multi-thread tokio runtime, so the gap between it and Glint is the cost
//! of the sandbox and everything Glint does around it.
//!
//! Usage: `glint-bench-native [ADDR]` (default `127.0.0.1:8083`).

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const BODY: &[u8] = b"Hello from Glint!\n";

async fn hello(_req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut resp = Response::new(Full::new(Bytes::from_static(BODY)));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    Ok(resp)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or("127.0.0.1:8083")
        .parse()?;
    let listener = TcpListener::bind(addr).await?;
    eprintln!("native hello listening on http://{addr}");
    loop {
        let (stream, _) = listener.accept().await?;
        // Same as Glint's listener: small responses go out at once, not after Nagle's delay.
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            // A connection that fails (a client gone mid-request) ends only that connection.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(hello))
                .await;
        });
    }
}
