//! Where an invocation's log lines go: the [`LogSink`] the node hands each request, and
//! the [`LogStream`] a line came from. Guests' stdout and stderr reach it through the
//! logs capability; the runtime writes host lines (a
//! trap, a timeout) and capabilities write theirs (a denied call).

use glint_store::Level;

/// Where an invocation's log lines go. The node's sink stamps them with the function,
/// version and execution id.
pub trait LogSink: Send + Sync {
    fn line(&self, stream: LogStream, level: Level, message: String);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
    /// Written by Glint about the invocation (a trap, a timeout, a denied call).
    Host,
}

impl LogStream {
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
            LogStream::Host => "host",
        }
    }
}
