//! Busy polling on the data plane's own threads (`--data-plane-busy-poll MICROS`).
//!
//! A thread with nothing to do blocks in epoll, and the next packet wakes it. When the
//! core is idle that wake-up is slow: a virtual machine's idle vCPU halts and the host
//! must schedule it again; a physical core leaves a sleep state. At low load every
//! request pays it (measured in bench/RESULTS.md, "WASI 0.3 at one connection"). For a
//! short window after its connections last read or wrote, a busy-polling thread instead
//! polls its sockets and timers without blocking, as Linux's `net.core.busy_poll` does
//! for the NICs that support it (loopback does not). It spends its core's idle time, at
//! most one window after each read or write, for latency: under load a thread is rarely
//! idle and spends the window only in the gaps. A connection that sends something at
//! least once a window keeps its thread polling.
//!
//! How: a thread's connections count their reads and writes ([`TrafficCounted`]).
//! tokio's current-thread scheduler calls the runtime's park hook before it blocks, and
//! if the hook made a task ready it polls the driver without blocking instead (since
//! tokio-rs/tokio#8222, in 1.51.4 and 1.52.4; before it, the driver was skipped, and a
//! thread in a window saw no packets: the workspace asks for tokio 1.54). Within the
//! window since the thread last read or wrote, the hook wakes [`Spinner`], a task that
//! does nothing. Other wakes (timers, guests' own work) do not start a window, so a
//! thread with no traffic sleeps.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// One thread's busy polling: its park hook's state.
pub(super) struct BusyPoll {
    window_ns: u64,
    epoch: Instant,
    /// Reads and writes of the thread's connections.
    traffic: AtomicU64,
    /// `traffic` when the hook last looked.
    seen: AtomicU64,
    /// When the hook last saw `traffic` move (ns since `epoch`; `u64::MAX`: never).
    last_traffic: AtomicU64,
    /// When the hook last made the spinner ready (`u64::MAX`: it did not).
    polling_since: AtomicU64,
    /// Time in windows with no read or write, in ns, for `/metrics`: polling, and
    /// whatever else the thread ran meanwhile (a guest woken by a timer).
    pub(super) busy_polled: Arc<AtomicU64>,
    spinner: AtomicWaker,
}

impl BusyPoll {
    pub(super) fn new(window: Duration) -> Arc<Self> {
        Arc::new(Self {
            window_ns: u64::try_from(window.as_nanos()).unwrap_or(u64::MAX),
            epoch: Instant::now(),
            traffic: AtomicU64::new(0),
            seen: AtomicU64::new(0),
            last_traffic: AtomicU64::new(u64::MAX),
            polling_since: AtomicU64::new(u64::MAX),
            busy_polled: Arc::default(),
            spinner: AtomicWaker::new(),
        })
    }

    /// The park hook: the thread has nothing to do. Within the window since it last
    /// read or wrote, the spinner is made ready, so the scheduler polls without
    /// blocking.
    pub(super) fn before_park(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let traffic = self.traffic.load(Relaxed);
        let moved = self.seen.swap(traffic, Relaxed) != traffic;
        if moved {
            self.last_traffic.store(now, Relaxed);
        }
        let since = self.polling_since.swap(u64::MAX, Relaxed);
        if !moved && since != u64::MAX {
            self.busy_polled
                .fetch_add(now.saturating_sub(since), Relaxed);
        }
        let last = self.last_traffic.load(Relaxed);
        if last != u64::MAX && now.saturating_sub(last) < self.window_ns {
            self.polling_since.store(now, Relaxed);
            self.spinner.wake();
        }
    }

    /// The task the park hook wakes; it runs for as long as its thread's runtime.
    pub(super) fn spinner(self: &Arc<Self>) -> Spinner {
        Spinner(self.clone())
    }

    fn count_traffic(&self) {
        self.traffic.fetch_add(1, Relaxed);
    }
}

/// A task that never ends and, when polled, only registers to be woken again: a ready
/// task the park hook can make, to keep the scheduler from blocking.
pub(super) struct Spinner(Arc<BusyPoll>);

impl Drop for Spinner {
    /// The runtime is shutting down: its waker, kept in the hook's state, would keep
    /// the task and so the runtime's handle (and the hook, and this state) alive.
    fn drop(&mut self) {
        self.0.spinner.take();
    }
}

impl Future for Spinner {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.spinner.register(cx.waker());
        Poll::Pending
    }
}

/// A connection's socket that counts its reads and writes for its thread's busy
/// polling (none counted without it).
pub(super) struct TrafficCounted<S> {
    inner: S,
    poll: Option<Arc<BusyPoll>>,
}

impl<S> TrafficCounted<S> {
    pub(super) fn new(inner: S, poll: Option<Arc<BusyPoll>>) -> Self {
        Self { inner, poll }
    }

    pub(super) fn get_ref(&self) -> &S {
        &self.inner
    }

    fn count<T>(&self, polled: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if let (Some(poll), Poll::Ready(Ok(_))) = (&self.poll, &polled) {
            poll.count_traffic();
        }
        polled
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TrafficCounted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.count(polled)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TrafficCounted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.count(polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.count(polled)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A current-thread runtime with `poll`'s park hook and spinner, as `Cores` makes.
    fn runtime(poll: &Arc<BusyPoll>) -> tokio::runtime::Runtime {
        let park = poll.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .on_thread_park(move || park.before_park())
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            tokio::spawn(poll.spinner());
        });
        runtime
    }

    /// Drives the hook as the scheduler does and reads how long the thread polled.
    #[test]
    fn polls_after_traffic_and_stops_once_the_window_is_over() {
        let poll = BusyPoll::new(Duration::from_millis(20));
        let runtime = runtime(&poll);
        let polled = |ms: u64| {
            runtime.block_on(async { tokio::time::sleep(Duration::from_millis(ms)).await });
            Duration::from_nanos(poll.busy_polled.load(Relaxed))
        };
        // No reads or writes yet: the thread sleeps through a timer.
        assert_eq!(
            polled(50),
            Duration::ZERO,
            "a timer with no traffic must not open a window"
        );
        // A read: the thread polls for the window, then blocks until the timer. Bounds
        // far apart, not a speed claim: a thread that never stopped would poll for the
        // whole second.
        poll.count_traffic();
        let after = polled(1000);
        assert!(
            after >= Duration::from_millis(10) && after < Duration::from_millis(500),
            "after a read the thread should poll for its 20 ms window and then block until the timer, but it polled for {after:?}"
        );
    }

    /// Within a window the thread still sees its timers (and sockets): a 5 ms timer
    /// fires long before a 10 s window ends. On a tokio without #8222 the driver was
    /// skipped while the hook kept a task ready, and the timer would wait out the window.
    #[test]
    fn a_window_does_not_hold_back_timers() {
        let poll = BusyPoll::new(Duration::from_secs(10));
        let runtime = runtime(&poll);
        poll.count_traffic();
        let started = Instant::now();
        runtime.block_on(async { tokio::time::sleep(Duration::from_millis(5)).await });
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(5),
            "a 5 ms timer inside a 10 s busy-poll window fired after {took:?}: the driver is not polled while the thread busy-polls"
        );
        assert!(
            poll.busy_polled.load(Relaxed) > 0,
            "the thread should have polled in its window"
        );
    }
}
