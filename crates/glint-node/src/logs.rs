//! Guest log lines, from the invocation that printed them to the store.
//!
//! Each invocation gets an [`InvocationLog`] that stamps lines with the function, version,
//! execution id and time and hands them to a bounded channel without blocking. One
//! writer task drains the channel and stores lines in batches, off the request path.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use glint_runtime::{LogSink, LogStream};
use glint_store::{Level, LogRecord, Store, now_ms};
use tokio::sync::{mpsc, watch};

use crate::routes::LogContext;

const CHANNEL_CAPACITY: usize = 65_536;
const BATCH: usize = 2_048;
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// The sending side, shared by every invocation.
#[derive(Clone)]
pub struct LogPipe {
    tx: mpsc::Sender<LogRecord>,
    pub dropped: Arc<AtomicU64>,
}

pub struct InvocationLog {
    pub context: Arc<LogContext>,
    pub execution_id: Arc<str>,
    pub pipe: LogPipe,
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
            execution_id: self.execution_id.to_string(),
            level,
            stream: stream.as_str().to_string(),
            message: self.context.redact(message),
        };
        if self.pipe.tx.try_send(record).is_err() {
            self.pipe.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Starts the writer. It stops, after storing every queued line, when `shutdown` flips.
pub fn start_writer(
    store: Arc<dyn Store>,
    mut shutdown: watch::Receiver<bool>,
) -> (LogPipe, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<LogRecord>(CHANNEL_CAPACITY);
    let pipe = LogPipe {
        tx,
        dropped: Arc::default(),
    };
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
