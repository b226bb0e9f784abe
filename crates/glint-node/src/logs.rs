//! Guest log lines, from the invocation that printed them to the store.
//!
//! Each invocation gets an [`InvocationLog`] that stamps lines with the function, version,
//! execution id and time and hands them to a bounded channel without blocking. One
//! writer task drains the channel and stores lines in batches, off the request path.
//! Each line also goes, at once, to a broadcast channel that live followers (the SSE
//! endpoint, the dashboard's tail) read. A retention task prunes old lines.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use glint_runtime::{LogSink, LogStream, Usage, UsageSink};
use glint_store::{FunctionName, Level, LogRecord, LogStore, TenantId, VersionId, now_ms};
use tokio::sync::{broadcast, mpsc, watch};

const CHANNEL_CAPACITY: usize = 65_536;
/// Bytes of lines waiting for the writer; beyond it new lines are dropped (and counted),
/// so a flood of output cannot take the node's memory.
const QUEUED_BYTES_MAX: usize = 32 * 1024 * 1024;
const BATCH: usize = 2_048;
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Lines a slow live follower may fall behind by before it skips ahead.
const LIVE_CAPACITY: usize = 4_096;

/// The sending side, shared by every invocation.
#[derive(Clone)]
pub struct LogPipe {
    tx: mpsc::Sender<LogRecord>,
    live: broadcast::Sender<Arc<LogRecord>>,
    pub dropped: Arc<AtomicU64>,
    /// Bytes of the lines in the channel now.
    queued_bytes: Arc<AtomicUsize>,
}

/// What a line weighs in the channel: its text and the fields stored with it.
fn weight(line: &LogRecord) -> usize {
    std::mem::size_of::<LogRecord>() + line.message.len() + line.execution_id.len()
}

impl LogPipe {
    /// Queues a line for the writer unless the queue is full, in lines or in bytes;
    /// a line that does not fit is dropped and counted. Never blocks.
    fn offer(&self, record: LogRecord) -> bool {
        let bytes = weight(&record);
        let queued = self.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
        if queued + bytes > QUEUED_BYTES_MAX || self.tx.try_send(record).is_err() {
            self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Every line from now on, as it is written.
    pub fn follow(&self) -> broadcast::Receiver<Arc<LogRecord>> {
        self.live.subscribe()
    }
}

/// An invocation's id: a UUIDv7 in 32 lowercase hex digits, kept inline so making one
/// allocates nothing.
#[derive(Clone, Copy)]
pub struct ExecutionId([u8; uuid::fmt::Simple::LENGTH]);

impl ExecutionId {
    /// A new id, ordered by time.
    pub fn generate() -> Self {
        let mut id = [0u8; uuid::fmt::Simple::LENGTH];
        uuid::Uuid::now_v7().simple().encode_lower(&mut id);
        Self(id)
    }

    pub fn as_str(&self) -> &str {
        // Hex digits only, as `generate` writes them.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// What every log line of a version carries besides its text, where its lines go, and
/// the meter its invocations count to: all an invocation needs from its version, behind
/// one `Arc`.
pub struct LogContext {
    pub tenant: TenantId,
    pub function: FunctionName,
    pub version: VersionId,
    pub min_level: Level,
    /// Values of the secrets the version can read, masked in its log lines.
    pub secret_values: Vec<String>,
    pub pipe: LogPipe,
    pub meter: Arc<crate::usage::VersionMeter>,
}

/// Shorter values are left alone: masking "1" would mangle every line.
const MIN_MASKED_LEN: usize = 4;

impl LogContext {
    /// Masks secret values the guest printed, so they never reach the log store.
    pub fn redact(&self, mut line: String) -> String {
        for value in &self.secret_values {
            if value.len() >= MIN_MASKED_LEN && line.contains(value.as_str()) {
                line = line.replace(value.as_str(), "[secret]");
            }
        }
        line
    }
}

/// One invocation's log, and where its usage goes.
pub struct InvocationLog {
    pub context: Arc<LogContext>,
    pub execution_id: ExecutionId,
}

impl UsageSink for InvocationLog {
    fn finished(&self, usage: Usage) {
        self.context.meter.guest_finished(&usage);
    }
}

impl LogSink for InvocationLog {
    fn line(&self, stream: LogStream, level: Level, message: String) {
        if stream != LogStream::Host && level < self.context.min_level {
            return;
        }
        let record = LogRecord {
            ts_ms: now_ms(),
            tenant: self.context.tenant.clone(),
            function: self.context.function.clone(),
            version: self.context.version,
            execution_id: self.execution_id.as_str().to_string(),
            level,
            stream: stream.as_str().to_string(),
            message: self.context.redact(message),
            // The node and region are the same for every line: the writer and the live
            // followers stamp them, off the request path.
            node: String::new(),
            region: String::new(),
        };
        if self.context.pipe.live.receiver_count() > 0 {
            let _ = self.context.pipe.live.send(Arc::new(record.clone()));
        }
        self.context.pipe.offer(record);
    }
}

/// Starts the writer. It stops, after storing every queued line, when `shutdown` flips.
pub fn start_writer(
    store: Arc<dyn LogStore>,
    identity: (String, String),
    mut shutdown: watch::Receiver<bool>,
) -> (LogPipe, tokio::task::JoinHandle<()>) {
    let (node, region) = identity;
    let (tx, mut rx) = mpsc::channel::<LogRecord>(CHANNEL_CAPACITY);
    let pipe = LogPipe {
        tx,
        live: broadcast::channel(LIVE_CAPACITY).0,
        dropped: Arc::default(),
        queued_bytes: Arc::default(),
    };
    let queued_bytes = pipe.queued_bytes.clone();
    let handle = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let stopping = tokio::select! {
                n = rx.recv_many(&mut batch, BATCH) => n == 0,
                _ = shutdown.changed() => true,
            };
            if !stopping {
                // Let a burst gather into one transaction.
                tokio::time::sleep(FLUSH_EVERY).await;
            }
            while batch.len() < BATCH * 8 {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            let taken: usize = batch.iter().map(weight).sum();
            queued_bytes.fetch_sub(taken, Ordering::Relaxed);
            for line in &mut batch {
                line.node.clone_from(&node);
                line.region.clone_from(&region);
            }
            if !batch.is_empty()
                && let Err(e) = store.append_logs(std::mem::take(&mut batch)).await
            {
                tracing::error!(error = %e, "cannot store guest log lines");
            }
            if stopping && rx.is_empty() {
                break;
            }
        }
    });
    (pipe, handle)
}

/// How long guest log lines are kept, and how much room they may take, on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    pub max_age: Duration,
    pub max_bytes: u64,
    /// How often old lines are pruned.
    pub every: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: 1024 * 1024 * 1024,
            every: Duration::from_secs(60),
        }
    }
}

/// Prunes log lines by age and size every `retention.every` until `shutdown` flips.
pub fn start_retention(
    store: Arc<dyn LogStore>,
    retention: Retention,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(retention.every);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => break,
            }
            let before = now_ms() - retention.max_age.as_millis() as i64;
            match store.prune_logs(before, retention.max_bytes).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(lines = n, "pruned old log lines"),
                Err(e) => tracing::error!(error = %e, "cannot prune log lines"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(bytes: usize) -> LogRecord {
        LogRecord {
            ts_ms: 0,
            tenant: glint_store::TenantId::default_tenant(),
            function: "f".parse().unwrap(),
            version: glint_store::VersionId(1),
            execution_id: "e".into(),
            level: Level::Info,
            stream: "stdout".into(),
            message: "x".repeat(bytes),
            node: String::new(),
            region: String::new(),
        }
    }

    #[test]
    fn the_queue_is_bounded_in_bytes_not_only_in_lines() {
        let (tx, mut rx) = mpsc::channel(CHANNEL_CAPACITY);
        let pipe = LogPipe {
            tx,
            live: broadcast::channel(1).0,
            dropped: Arc::default(),
            queued_bytes: Arc::default(),
        };
        // 64 lines of 1 MiB fit the line count, not the 32 MiB: the writer is not
        // draining, and about half are dropped.
        let kept = (0..64).filter(|_| pipe.offer(line(1 << 20))).count();
        assert!((30..32).contains(&kept), "{kept} lines of 1 MiB kept");
        assert_eq!(pipe.dropped.load(Ordering::Relaxed), 64 - kept as u64);
        assert!(pipe.queued_bytes.load(Ordering::Relaxed) <= QUEUED_BYTES_MAX);
        // Small lines still pass once the writer takes the big ones.
        while let Ok(taken) = rx.try_recv() {
            pipe.queued_bytes
                .fetch_sub(weight(&taken), Ordering::Relaxed);
        }
        assert_eq!(pipe.queued_bytes.load(Ordering::Relaxed), 0);
        assert!(pipe.offer(line(100)));
    }
}
