//! Logs: guest stdout and stderr, turned into log lines as the guest writes them.
//!
//! Each complete line goes to the invocation's [`LogSink`] with a level: a prefix such as
//! `ERROR:` or `[warn]` sets it; otherwise stdout is `info` and stderr is `error`. The
//! bytes one invocation may log are capped so a chatty guest cannot flood the store.
//! The streams are WASI's (`wasi:cli/stdout`, linked with the rest of WASI); this
//! capability points them at the log. `[logs] level` filters in the node's log pipe.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use glint_store::Level;
use tokio::io::AsyncWrite;
use wasmtime::component::Linker;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

use super::{Capability, Grant, InstanceSetup, InstanceState, VersionContext};
use crate::guest::GuestState;
use crate::log::{LogSink, LogStream};
use crate::manifest::ManifestError;

pub struct Logs;

/// An instance's stdout and stderr.
struct Output([GuestOutput; 2]);

impl Capability for Logs {
    fn name(&self) -> &'static str {
        "logs"
    }

    fn link(&self, _linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
        Ok(())
    }

    fn prepare(&self, _version: &VersionContext<'_>) -> Result<Grant, ManifestError> {
        Ok(std::sync::Arc::new(()))
    }

    fn instantiate(&self, _grant: &Grant, setup: &mut InstanceSetup<'_>) -> Box<dyn InstanceState> {
        let output = [
            GuestOutput::new(LogStream::Stdout, setup.log.clone()),
            GuestOutput::new(LogStream::Stderr, setup.log.clone()),
        ];
        setup
            .wasi
            .stdout(output[0].clone())
            .stderr(output[1].clone());
        Box::new(Output(output))
    }
}

impl InstanceState for Output {
    /// Points the streams at the next invocation's log.
    fn restart(&mut self, log: &Arc<dyn LogSink>) {
        for out in &self.0 {
            out.restart(log.clone());
        }
    }

    /// Flushes partial lines at the end of an invocation whose instance is kept.
    fn finish(&mut self) {
        for out in &self.0 {
            out.finish();
        }
    }
}

/// Most bytes of output one invocation may log; the rest is dropped with a note.
const MAX_BYTES_PER_INVOCATION: usize = 256 * 1024;
/// Longer lines are cut here.
const MAX_LINE: usize = 16 * 1024;

/// Splits a line's level prefix off: `ERROR: x`, `error: x`, `[WARN] x`.
pub fn parse_level(line: &str, default: Level) -> (Level, &str) {
    let trimmed = line.trim_start();
    let (word, rest) = if let Some(inner) = trimmed.strip_prefix('[') {
        match inner.split_once(']') {
            Some((w, rest)) => (w, rest),
            None => return (default, line),
        }
    } else {
        match trimmed.split_once(':') {
            Some((w, rest)) if w.len() <= 7 => (w, rest),
            _ => return (default, line),
        }
    };
    let level = match word.to_ascii_lowercase().as_str() {
        "trace" => Level::Trace,
        "debug" => Level::Debug,
        "info" => Level::Info,
        "warn" | "warning" => Level::Warn,
        "error" | "fatal" => Level::Error,
        _ => return (default, line),
    };
    (level, rest.trim_start())
}

struct Lines {
    stream: LogStream,
    sink: Arc<dyn LogSink>,
    partial: Vec<u8>,
    logged: usize,
    truncated: bool,
}

impl Lines {
    fn emit(&mut self, raw: &[u8]) {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let cut = &raw[..raw.len().min(MAX_LINE)];
        let text = String::from_utf8_lossy(cut);
        let default = if self.stream == LogStream::Stderr {
            Level::Error
        } else {
            Level::Info
        };
        let (level, message) = parse_level(&text, default);
        self.sink.line(self.stream, level, message.to_string());
    }

    fn write(&mut self, bytes: &[u8]) {
        if self.logged >= MAX_BYTES_PER_INVOCATION {
            if !self.truncated {
                self.truncated = true;
                self.sink.line(
                    LogStream::Host,
                    Level::Warn,
                    format!(
                        "{} output truncated: one invocation may log at most {} KiB",
                        self.stream.as_str(),
                        MAX_BYTES_PER_INVOCATION / 1024
                    ),
                );
            }
            return;
        }
        let take = bytes.len().min(MAX_BYTES_PER_INVOCATION - self.logged);
        self.logged += take;
        let mut rest = &bytes[..take];
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            if self.partial.is_empty() {
                self.emit(&rest[..pos]);
            } else {
                self.partial.extend_from_slice(&rest[..pos]);
                let line = std::mem::take(&mut self.partial);
                self.emit(&line);
            }
            rest = &rest[pos + 1..];
        }
        if self.partial.len() < MAX_LINE {
            self.partial.extend_from_slice(rest);
        }
    }
}

impl Lines {
    fn finish(&mut self) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.emit(&line);
        }
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A guest's stdout or stderr. Clones share one line buffer, so a line written through
/// two handles is still one line; the last part is flushed when the invocation ends.
#[derive(Clone)]
pub struct GuestOutput(Arc<Mutex<Lines>>);

impl GuestOutput {
    pub fn new(stream: LogStream, sink: Arc<dyn LogSink>) -> Self {
        Self(Arc::new(Mutex::new(Lines {
            stream,
            sink,
            partial: Vec::new(),
            logged: 0,
            truncated: false,
        })))
    }

    /// Starts the next invocation's output on a reused instance (the last one's was
    /// flushed by [`GuestOutput::finish`]): its sink, and the byte cap anew.
    fn restart(&self, sink: Arc<dyn LogSink>) {
        if let Ok(mut lines) = self.0.lock() {
            lines.sink = sink;
            lines.logged = 0;
            lines.truncated = false;
        }
    }

    /// Flushes the last partial line, as the end of an invocation does.
    fn finish(&self) {
        if let Ok(mut lines) = self.0.lock() {
            lines.finish();
        }
    }

    fn write_bytes(&self, bytes: &[u8]) {
        if let Ok(mut lines) = self.0.lock() {
            lines.write(bytes);
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.write_bytes(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }
    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

#[async_trait::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect(Mutex<Vec<(LogStream, Level, String)>>);
    impl LogSink for Collect {
        fn line(&self, stream: LogStream, level: Level, message: String) {
            self.0.lock().unwrap().push((stream, level, message));
        }
    }

    #[test]
    fn levels_come_from_prefixes_and_streams() {
        assert_eq!(
            parse_level("ERROR: boom", Level::Info),
            (Level::Error, "boom")
        );
        assert_eq!(
            parse_level("[warn] careful", Level::Info),
            (Level::Warn, "careful")
        );
        assert_eq!(
            parse_level("plain: text here", Level::Info),
            (Level::Info, "plain: text here")
        );
        assert_eq!(
            parse_level("no prefix", Level::Error),
            (Level::Error, "no prefix")
        );
    }

    #[test]
    fn lines_are_split_across_writes_and_flushed_at_the_end() {
        let sink = Arc::new(Collect::default());
        let out = GuestOutput::new(LogStream::Stderr, sink.clone());
        out.write_bytes(b"first li");
        out.write_bytes(b"ne\nsecond\nthi");
        out.clone().write_bytes(b"rd");
        drop(out);
        let got = sink.0.lock().unwrap().clone();
        let messages: Vec<_> = got.iter().map(|(_, l, m)| (*l, m.as_str())).collect();
        assert_eq!(
            messages,
            vec![
                (Level::Error, "first line"),
                (Level::Error, "second"),
                (Level::Error, "third")
            ]
        );
    }
}
