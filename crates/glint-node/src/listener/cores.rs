//! The data plane's own threads (`--data-plane-threads N`), optionally pinned one to a
//! core (`--data-plane-pin`), and how accepted connections are dealt to them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use super::busy_poll::BusyPoll;

/// A connection to start on a thread, given the thread's busy polling (if it does).
type Job = Box<dyn FnOnce(Option<Arc<BusyPoll>>) + Send>;

/// How the data plane's own threads are laid out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataPlaneThreads {
    /// Threads of the data plane's own, one runtime each; 0 serves it on the node's
    /// shared, work-stealing runtime.
    pub count: usize,
    /// Pin thread i to the i-th core the process may run on, and deal each connection to
    /// the thread on the core its packets arrive on.
    pub pin: bool,
    /// Poll without blocking for this long after a thread's connections last read or
    /// wrote, instead of sleeping until the next packet (see [`super::busy_poll`]);
    /// `None` or zero: never.
    pub busy_poll: Option<Duration>,
}

/// The data plane's threads as `/metrics` reads them. Empty on the shared runtime.
#[derive(Debug, Default)]
pub struct ThreadsLoad {
    threads: std::sync::OnceLock<Vec<ThreadCounters>>,
}

/// What one thread counts, shared with `/metrics`.
#[derive(Debug, Default)]
struct ThreadCounters {
    open: Arc<AtomicUsize>,
    cpu: Option<usize>,
    /// Nanoseconds in busy-poll windows with no read or write (`None`: it does not
    /// busy-poll).
    busy_polled: Option<Arc<AtomicU64>>,
}

/// One data-plane thread, as `/metrics` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadReading {
    /// Connections open on it.
    pub open: usize,
    /// The core it is pinned to (`None`: not pinned).
    pub cpu: Option<usize>,
    /// The time it spent in busy-poll windows with no read or write (`None`: it does
    /// not busy-poll).
    pub busy_polled: Option<Duration>,
}

impl ThreadsLoad {
    /// Each thread's reading, in thread order.
    pub fn read(&self) -> Vec<ThreadReading> {
        self.threads.get().map_or_else(Vec::new, |threads| {
            threads
                .iter()
                .map(|c| ThreadReading {
                    open: c.open.load(Relaxed),
                    cpu: c.cpu,
                    busy_polled: c
                        .busy_polled
                        .as_ref()
                        .map(|ns| Duration::from_nanos(ns.load(Relaxed))),
                })
                .collect()
        })
    }
}

/// The data plane's threads with `--data-plane-threads N`: one current-thread runtime
/// each, and each accepted connection dealt to the thread with the fewest open, where
/// it stays. A request then never leaves its thread: its connection, its guest's
/// instance (the WASI 0.3 workers are kept per thread, see
/// [`glint_runtime::reuse::bind_thread`]) and every wake between them. The price is
/// work stealing: a busy guest delays the other connections of its thread (by at most
/// an epoch tick, when it yields), where tokio's shared runtime would move them.
///
/// Pinned (`--data-plane-pin`), thread i runs only on the i-th core the process may use,
/// and a connection goes to the thread of the core that received its packets
/// (`SO_INCOMING_CPU`) unless that thread has [`STEER_SLACK`] more open connections than
/// the least busy: the kernel then wakes the thread where the packet already is, rather
/// than an idle core (measured on a 2-core VM at 1 connection over loopback: bench/RESULTS.md,
/// "WASI 0.3 at one connection").
pub(super) struct Cores {
    threads: Vec<Core>,
}

struct Core {
    jobs: tokio::sync::mpsc::UnboundedSender<Job>,
    open: Arc<AtomicUsize>,
    cpu: Option<usize>,
}

/// How many more open connections the thread of a connection's own core may have than
/// the least busy thread before the connection goes to the least busy one instead.
const STEER_SLACK: usize = 2;

impl Cores {
    /// The threads `layout` asks for; `None` (served on the shared runtime) if one
    /// cannot be started.
    pub(super) fn start(layout: DataPlaneThreads, load: &ThreadsLoad) -> Option<Self> {
        let cpus = if layout.pin {
            pin_cpus(layout.count)
        } else {
            None
        };
        let mut threads = Vec::with_capacity(layout.count);
        let mut counters = Vec::with_capacity(layout.count);
        for i in 0..layout.count {
            let (jobs, mut rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
            let mut builder = tokio::runtime::Builder::new_current_thread();
            builder.enable_all();
            let busy_poll = layout
                .busy_poll
                .filter(|window| !window.is_zero())
                .map(BusyPoll::new);
            let busy_polled = busy_poll.as_ref().map(|p| p.busy_polled.clone());
            if let Some(poll) = &busy_poll {
                let park = poll.clone();
                builder.on_thread_park(move || park.before_park());
            }
            let runtime = builder.build();
            let runtime = match runtime {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start a data-plane thread's runtime; serving on the shared runtime");
                    return None;
                }
            };
            let cpu = cpus.as_ref().map(|c| c[i]);
            let started = std::thread::Builder::new()
                .name(format!("glint-data-{i}"))
                .spawn(move || {
                    if let Some(cpu) = cpu
                        && let Err(e) = pin_this_thread(cpu)
                    {
                        tracing::warn!(cpu, error = %e, "cannot pin a data-plane thread to its core; it runs unpinned");
                    }
                    glint_runtime::reuse::bind_thread(i + 1);
                    // Ends once the listener has stopped and its connections have
                    // finished (the senders are dropped after the graceful shutdown).
                    runtime.block_on(async move {
                        if let Some(poll) = &busy_poll {
                            tokio::spawn(poll.spinner());
                        }
                        while let Some(job) = rx.recv().await {
                            job(busy_poll.clone());
                        }
                    });
                });
            if let Err(e) = started {
                tracing::warn!(error = %e, "cannot start a data-plane thread; serving on the shared runtime");
                return None;
            }
            let core = Core {
                jobs,
                open: Arc::default(),
                cpu,
            };
            counters.push(ThreadCounters {
                open: core.open.clone(),
                cpu,
                busy_polled,
            });
            threads.push(core);
        }
        let _ = load.threads.set(counters);
        Some(Self { threads })
    }

    /// Whether a connection's core decides its thread (so the accept loop asks for it).
    pub(super) fn steers(&self) -> bool {
        self.threads.iter().any(|core| core.cpu.is_some())
    }

    /// Runs `connection` on the thread of core `cpu` (the core that received its
    /// packets), or on the thread with the fewest open connections; it counts as open
    /// there until it ends.
    pub(super) fn deal<F>(
        &self,
        cpu: Option<usize>,
        connection: impl FnOnce(Option<Arc<BusyPoll>>) -> F + Send + 'static,
    ) where
        F: Future<Output = ()> + Send + 'static,
    {
        let Some(least) = self.threads.iter().min_by_key(|c| c.open.load(Relaxed)) else {
            return;
        };
        let fewest = least.open.load(Relaxed);
        let core = cpu
            .and_then(|cpu| self.threads.iter().find(|c| c.cpu == Some(cpu)))
            .filter(|own| own.open.load(Relaxed) <= fewest + STEER_SLACK)
            .unwrap_or(least);
        let open = Open::count(&core.open);
        let _ = core.jobs.send(Box::new(move |busy_poll| {
            let running = connection(busy_poll);
            tokio::spawn(async move {
                let _open = open;
                running.await;
            });
        }));
    }
}

/// A connection counted as open on its thread until it ends, however it ends (a
/// connection task that panics, or a job its thread never ran, still leaves the count).
struct Open(Arc<AtomicUsize>);

impl Open {
    fn count(open: &Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Relaxed);
        Self(open.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// The cores `n` pinned threads go to: the first `n` the process may run on. `None`,
/// with a warning, when it may run on fewer (nodes sharing a machine pass their own
/// `taskset` or cgroup set, so they do not pile onto the same cores).
fn pin_cpus(n: usize) -> Option<Vec<usize>> {
    let allowed = allowed_cpus();
    if allowed.len() < n {
        tracing::warn!(
            threads = n,
            cores = allowed.len(),
            "--data-plane-pin needs a core for each data-plane thread; the threads run unpinned (lower --data-plane-threads, or give the node more cores)"
        );
        return None;
    }
    Some(allowed[..n].to_vec())
}

/// The core that received a connection's packets, as the kernel last saw it.
pub(super) fn incoming_cpu(stream: &tokio::net::TcpStream) -> Option<usize> {
    incoming_cpu_of(std::os::fd::AsRawFd::as_raw_fd(stream))
}

#[cfg(target_os = "linux")]
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set, and sched_getaffinity writes at
    // most its size into it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    if unsafe { libc::sched_getaffinity(0, size, &mut set) } != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, the set's size.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

#[cfg(target_os = "linux")]
fn pin_this_thread(cpu: usize) -> std::io::Result<()> {
    // SAFETY: as in `allowed_cpus`; `cpu` came from the allowed set, below CPU_SETSIZE.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    unsafe { libc::CPU_SET(cpu, &mut set) };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: pid 0 is the calling thread; the set is valid for `size` bytes.
    if unsafe { libc::sched_setaffinity(0, size, &set) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(target_os = "linux")]
fn incoming_cpu_of(fd: std::os::fd::RawFd) -> Option<usize> {
    let mut cpu: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `fd` is an open socket borrowed from its stream; `cpu` and `len` are valid
    // for the int getsockopt writes.
    let got = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_INCOMING_CPU,
            (&raw mut cpu).cast(),
            &mut len,
        )
    };
    (got == 0)
        .then_some(cpu)
        .and_then(|c| usize::try_from(c).ok())
}

#[cfg(not(target_os = "linux"))]
fn allowed_cpus() -> Vec<usize> {
    Vec::new()
}

#[cfg(not(target_os = "linux"))]
fn pin_this_thread(_cpu: usize) -> std::io::Result<()> {
    Err(std::io::Error::other("pinning threads needs Linux"))
}

#[cfg(not(target_os = "linux"))]
fn incoming_cpu_of(_fd: std::os::fd::RawFd) -> Option<usize> {
    None
}
