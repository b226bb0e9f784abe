//! A TCP proxy of the tests' own for the links between regions (this machine has no
//! `tc netem`): a one-way delay stands for the distance between two regions, and a cut
//! for a partition. Each proxy runs on a thread and a runtime of its own, so it outlives
//! any one test's runtime and needs none from its caller.
//!
//! NATS gateways connect one way (each server dials every other region), and the dialling
//! server names its region in the first line it sends (`CONNECT {..."gateway":"b"...}`).
//! The proxy reads that name, so one proxy in front of a region's gateway port can cut
//! the link from one region while others stay up.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// A delaying, cuttable TCP proxy on a loopback port, stopped when dropped.
pub struct Proxy {
    pub port: u16,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    upstream: SocketAddr,
    /// Added to every chunk in each direction, in microseconds.
    delay_us: AtomicU64,
    /// Every connection refused and none kept.
    cut: AtomicBool,
    /// Connections from these dialling regions refused and none kept.
    cut_regions: Mutex<HashSet<String>>,
    /// Bumped at each cut, so open connections look again whether they may stay.
    cuts: watch::Sender<u64>,
    accepted: AtomicUsize,
}

impl Shared {
    fn refuses(&self, region: Option<&str>) -> bool {
        self.cut.load(Ordering::SeqCst)
            || region.is_some_and(|r| self.cut_regions.lock().unwrap().contains(r))
    }

    fn delay(&self) -> Duration {
        Duration::from_micros(self.delay_us.load(Ordering::SeqCst))
    }
}

impl Proxy {
    /// Starts a proxy on a free loopback port that forwards to `upstream`.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        Self::start_on(listener, upstream)
    }

    /// Starts a proxy on `listener` (bound already, so its port can go into a config
    /// before the upstream starts) that forwards to `upstream`.
    pub fn start_on(listener: std::net::TcpListener, upstream: SocketAddr) -> Proxy {
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let shared = Arc::new(Shared {
            upstream,
            delay_us: AtomicU64::new(0),
            cut: AtomicBool::new(false),
            cut_regions: Mutex::default(),
            cuts: watch::channel(0).0,
            accepted: AtomicUsize::new(0),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(accept(listener, shared, stopped));
            })
        };
        Proxy {
            port,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Sets the one-way delay added to every chunk in each direction, so a round trip
    /// through the proxy takes at least twice `delay`.
    pub fn set_delay(&self, delay: Duration) {
        self.shared
            .delay_us
            .store(delay.as_micros() as u64, Ordering::SeqCst);
    }

    /// Closes every connection and refuses new ones, until [`Proxy::heal`].
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        self.shared.cuts.send_modify(|n| *n += 1);
    }

    /// Closes the connections dialled from `region` (a NATS gateway's name) and refuses
    /// its new ones, until [`Proxy::heal`].
    pub fn cut_from(&self, region: &str) {
        self.shared
            .cut_regions
            .lock()
            .unwrap()
            .insert(region.to_string());
        self.shared.cuts.send_modify(|n| *n += 1);
    }

    /// Lets every connection through again.
    pub fn heal(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
        self.shared.cut_regions.lock().unwrap().clear();
    }

    /// How many connections the proxy has accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = TcpListener::from_std(listener).unwrap();
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => {
                let Ok((inbound, _)) = accepted else { continue };
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                if shared.refuses(None) {
                    continue; // dropped: the dialler sees the connection close
                }
                connections.spawn(forward(inbound, shared.clone()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Carries one connection both ways until either side closes it or a cut covers it.
async fn forward(inbound: TcpStream, shared: Arc<Shared>) {
    let Ok(outbound) = TcpStream::connect(shared.upstream).await else {
        return;
    };
    let _ = (inbound.set_nodelay(true), outbound.set_nodelay(true));
    let region = Arc::new(Mutex::new(None::<String>));
    let mut cuts = shared.cuts.subscribe();
    let (from_in, to_in) = inbound.into_split();
    let (from_out, to_out) = outbound.into_split();
    let up = pump(from_in, to_out, shared.clone(), Some(region.clone()));
    let down = pump(from_out, to_in, shared.clone(), None);
    tokio::pin!(up, down);
    let mut up_done = false;
    let mut down_done = false;
    loop {
        tokio::select! {
            () = &mut up, if !up_done => up_done = true,
            () = &mut down, if !down_done => down_done = true,
            changed = cuts.changed() => {
                let named = region.lock().unwrap().clone();
                if changed.is_err() || shared.refuses(named.as_deref()) {
                    return; // dropping both halves closes both sockets
                }
            }
        }
        if up_done && down_done {
            return;
        }
    }
}

/// Copies `from` to `to`, each chunk held back until the delay has passed since it was
/// read, so the delay adds no limit to throughput. With `region`, the first chunk's
/// `"gateway":"NAME"` names the dialling region.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    shared: Arc<Shared>,
    region: Option<Arc<Mutex<Option<String>>>>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = {
        let shared = shared.clone();
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            // The dialler's first line, gathered until it is whole: a read may end
            // inside it.
            let mut first_line = region.as_ref().map(|_| Vec::new());
            loop {
                let n = match from.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if let (Some(line), Some(slot)) = (&mut first_line, &region) {
                    line.extend_from_slice(&buf[..n]);
                    if line.contains(&b'\n') || line.len() > 16 * 1024 {
                        *slot.lock().unwrap() = gateway_name(line);
                        first_line = None;
                        if shared.refuses(slot.lock().unwrap().as_deref()) {
                            break;
                        }
                    }
                }
                if tx
                    .send((Instant::now() + shared.delay(), buf[..n].to_vec()))
                    .is_err()
                {
                    break;
                }
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

/// The region a NATS gateway connection comes from, read from its `CONNECT` line.
fn gateway_name(first: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(first).ok()?;
    let line = text.lines().find(|l| l.starts_with("CONNECT "))?;
    let after = line.split_once("\"gateway\":\"")?.1;
    Some(after.split('"').next()?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A server that echoes what it reads, on a thread per connection.
    fn echo_server() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut stream = stream;
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 || stream.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    fn round_trip(stream: &mut std::net::TcpStream, text: &[u8]) -> std::io::Result<Vec<u8>> {
        stream.write_all(text)?;
        let mut back = vec![0u8; text.len()];
        stream.read_exact(&mut back)?;
        Ok(back)
    }

    fn connect(proxy: &Proxy) -> std::net::TcpStream {
        let stream = std::net::TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
    }

    #[test]
    fn delays_each_way_cuts_and_heals() {
        let proxy = Proxy::start(echo_server());
        let mut stream = connect(&proxy);
        assert_eq!(round_trip(&mut stream, b"hello").unwrap(), b"hello");

        // The delay holds each chunk back in each direction: a round trip takes at least
        // twice as long (a lower bound the proxy itself sets, never an upper one).
        proxy.set_delay(Duration::from_millis(40));
        let started = std::time::Instant::now();
        assert_eq!(round_trip(&mut stream, b"far").unwrap(), b"far");
        assert!(started.elapsed() >= Duration::from_millis(80));

        // A cut closes the open connection and refuses new ones.
        proxy.cut();
        let mut buf = [0u8; 1];
        let _ = stream.write_all(b"gone");
        assert!(matches!(stream.read(&mut buf), Ok(0) | Err(_)));
        let mut refused = connect(&proxy);
        let _ = refused.write_all(b"x");
        assert!(matches!(refused.read(&mut buf), Ok(0) | Err(_)));

        proxy.heal();
        proxy.set_delay(Duration::ZERO);
        let mut again = connect(&proxy);
        assert_eq!(round_trip(&mut again, b"back").unwrap(), b"back");
    }

    #[test]
    fn a_cut_from_one_region_leaves_the_others() {
        let proxy = Proxy::start(echo_server());
        let mut from_b = connect(&proxy);
        let mut from_c = connect(&proxy);
        let hello = |region: &str| format!("CONNECT {{\"gateway\":\"{region}\"}}\r\n").into_bytes();
        assert_eq!(round_trip(&mut from_b, &hello("b")).unwrap(), hello("b"));
        assert_eq!(round_trip(&mut from_c, &hello("c")).unwrap(), hello("c"));

        proxy.cut_from("b");
        let mut buf = [0u8; 1];
        assert!(matches!(from_b.read(&mut buf), Ok(0) | Err(_)));
        assert_eq!(round_trip(&mut from_c, b"still").unwrap(), b"still");
        // A new connection from b is closed once it names itself.
        let mut b_again = connect(&proxy);
        let _ = b_again.write_all(&hello("b"));
        assert!(matches!(b_again.read(&mut buf), Ok(0) | Err(_)));

        proxy.heal();
        let mut b_healed = connect(&proxy);
        assert_eq!(round_trip(&mut b_healed, &hello("b")).unwrap(), hello("b"));
        assert_eq!(proxy.accepted(), 4);
    }

    #[test]
    fn gateway_names_come_from_the_connect_line() {
        assert_eq!(
            gateway_name(b"CONNECT {\"echo\":false,\"gateway\":\"region-b\",\"name\":\"x\"}\r\n"),
            Some("region-b".into())
        );
        assert_eq!(gateway_name(b"INFO {}\r\n"), None);
    }
}
