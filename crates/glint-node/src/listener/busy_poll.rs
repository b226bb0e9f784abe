//! Busy polling on the data plane's own threads (`--data-plane-busy-poll MICROS`).
//!
//! A thread with nothing to do blocks in epoll, and the next packet wakes it. When the
//! core is idle that wake-up is slow: a virtual machine's idle vCPU halts and the host
//! must schedule it again; a physical core leaves a sleep state. At low load every
//! request pays it (measured in bench/RESULTS.md, "WASI 0.3 at one connection"). For a
//! short window after its last work, a busy-polling thread instead polls its sockets
//! and timers without blocking, as Linux's `net.core.busy_poll` does for the NICs that
//! support it (loopback and most virtual NICs do not). It spends its core's idle time,
//! at most one window after each piece of work, for latency: under load a thread is
//! rarely idle and spends the window only in the gaps.
//!
//! How: a thread's connections count their reads and writes ([`Marked`]). tokio's
//! current-thread scheduler calls the runtime's park hook before it blocks, and polls
//! without blocking instead if the hook made a task ready; within the window since the
//! thread last read or wrote, the hook wakes [`Spinner`], a task that does nothing.
//! Other wakes (timers, guests' own work) do not start a window, so a thread with no
//! traffic sleeps.

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
    io: AtomicU64,
    /// `io` when the hook last looked.
    seen: AtomicU64,
    /// When the hook last saw the count move (ns since `epoch`; `u64::MAX`: never).
    active: AtomicU64,
    /// When the hook last made the spinner ready (`u64::MAX`: it did not).
    polling_since: AtomicU64,
    /// Time spent polling with nothing to do, in ns (for `/metrics`).
    spent: Arc<AtomicU64>,
    spinner: AtomicWaker,
}

impl BusyPoll {
    pub(super) fn new(window: Duration, spent: Arc<AtomicU64>) -> Arc<Self> {
        Arc::new(Self {
            window_ns: u64::try_from(window.as_nanos()).unwrap_or(u64::MAX),
            epoch: Instant::now(),
            io: AtomicU64::new(0),
            seen: AtomicU64::new(0),
            active: AtomicU64::new(u64::MAX),
            polling_since: AtomicU64::new(u64::MAX),
            spent,
            spinner: AtomicWaker::new(),
        })
    }

    /// The park hook: the thread has nothing to do. Within the window since it last
    /// read or wrote, the spinner is made ready, so the scheduler polls without
    /// blocking.
    pub(super) fn before_park(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let io = self.io.load(Relaxed);
        let worked = self.seen.swap(io, Relaxed) != io;
        if worked {
            self.active.store(now, Relaxed);
        }
        let since = self.polling_since.swap(u64::MAX, Relaxed);
        if !worked && since != u64::MAX {
            self.spent.fetch_add(now.saturating_sub(since), Relaxed);
        }
        let active = self.active.load(Relaxed);
        if active != u64::MAX && now.saturating_sub(active) < self.window_ns {
            self.polling_since.store(now, Relaxed);
            self.spinner.wake();
        }
    }

    /// The task the park hook wakes; it runs for as long as its thread's runtime.
    pub(super) fn spinner(self: &Arc<Self>) -> Spinner {
        Spinner(self.clone())
    }

    fn mark(&self) {
        self.io.fetch_add(1, Relaxed);
    }
}

/// A task that never ends and does nothing when polled but wait to be woken again: a
/// ready task the park hook can make, to keep the scheduler from blocking.
pub(super) struct Spinner(Arc<BusyPoll>);

impl Future for Spinner {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.spinner.register(cx.waker());
        Poll::Pending
    }
}

/// A connection's socket that counts its reads and writes for its thread's busy
/// polling (none counted without it).
pub(super) struct Marked<S> {
    inner: S,
    poll: Option<Arc<BusyPoll>>,
}

impl<S> Marked<S> {
    pub(super) fn new(inner: S, poll: Option<Arc<BusyPoll>>) -> Self {
        Self { inner, poll }
    }

    pub(super) fn get_ref(&self) -> &S {
        &self.inner
    }

    fn count<T>(&self, polled: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if let (Some(poll), Poll::Ready(Ok(_))) = (&self.poll, &polled) {
            poll.mark();
        }
        polled
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Marked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.count(polled)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Marked<S> {
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

    /// Drives the hook as the scheduler does, on a runtime of its own, and reads how
    /// long the thread polled.
    #[test]
    fn polls_after_io_and_stops_once_the_window_is_over() {
        let spent = Arc::new(AtomicU64::new(0));
        let poll = BusyPoll::new(Duration::from_millis(20), spent.clone());
        let park = poll.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .on_thread_park(move || park.before_park())
            .build()
            .expect("a runtime");
        let polled = |ms: u64| {
            runtime.block_on(async {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            });
            Duration::from_nanos(spent.load(Relaxed))
        };
        runtime.block_on(async {
            tokio::spawn(poll.spinner());
        });
        // No reads or writes yet: the thread sleeps through a timer.
        assert_eq!(
            polled(50),
            Duration::ZERO,
            "a thread with no traffic must not poll"
        );
        // A read: the thread polls for the window, then blocks until the timer. Bounds
        // far apart, not a speed claim: a thread that never stopped would poll for the
        // whole second.
        poll.mark();
        let after = polled(1000);
        assert!(
            after >= Duration::from_millis(10) && after < Duration::from_millis(500),
            "after a read the thread should poll for its 20 ms window and then block until the timer, but it polled for {after:?}"
        );
    }
}
