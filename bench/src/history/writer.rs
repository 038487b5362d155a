//! Writing a history: what the clients of a kill test call as things happen.
//!
//! Each call appends one JSON line stamped with the wall clock (`ts_ms`), which the checker
//! uses to put the commits and polls of different clients on one time line. The stamp is
//! taken under the lock, so the times in one file never go backwards unless the clock does.
//! Lines are buffered; the buffer is flushed by `flush` and when the `History` is dropped. A
//! killed test driver loses its unflushed tail: call `flush` at points that matter.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use super::event::{Event, Line};

/// A history file being written. Shared by threads as `&History` (or `Arc<History>`).
pub(crate) struct History<W: Write = File> {
    /// `None` once `into_inner` took the writer.
    out: Mutex<Option<BufWriter<W>>>,
}

impl History<File> {
    /// Creates (or truncates) `path`.
    pub(crate) fn create(path: &Path) -> io::Result<History<File>> {
        Ok(History::new(File::create(path)?))
    }
}

impl<W: Write> History<W> {
    pub(crate) fn new(writer: W) -> History<W> {
        History {
            out: Mutex::new(Some(BufWriter::new(writer))),
        }
    }

    /// A producer is about to send `value`.
    pub(crate) fn send(
        &self,
        client: &str,
        topic: &str,
        partition: i32,
        value: &str,
    ) -> io::Result<()> {
        self.append(Event::Send {
            client: client.into(),
            topic: topic.into(),
            partition,
            value: value.into(),
        })
    }

    /// The broker acknowledged `value` at `offset`.
    pub(crate) fn ack(
        &self,
        client: &str,
        topic: &str,
        partition: i32,
        offset: i64,
        value: &str,
    ) -> io::Result<()> {
        self.append(Event::Ack {
            client: client.into(),
            topic: topic.into(),
            partition,
            offset,
            value: value.into(),
        })
    }

    /// `value` was definitely not written. Only for errors that guarantee it; when in
    /// doubt (a timeout, a lost connection) write nothing: the send stays indeterminate.
    pub(crate) fn fail(&self, client: &str, value: &str, error: &str) -> io::Result<()> {
        self.append(Event::Fail {
            client: client.into(),
            value: value.into(),
            error: error.into(),
        })
    }

    /// A consumer of `group` received `value` at `offset`.
    pub(crate) fn poll(
        &self,
        client: &str,
        group: &str,
        topic: &str,
        partition: i32,
        offset: i64,
        value: &str,
    ) -> io::Result<()> {
        self.append(Event::Poll {
            client: client.into(),
            group: group.into(),
            topic: topic.into(),
            partition,
            offset,
            value: value.into(),
        })
    }

    /// The broker confirmed that `group` committed next offset `offset`.
    pub(crate) fn commit(
        &self,
        client: &str,
        group: &str,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> io::Result<()> {
        self.append(Event::Commit {
            client: client.into(),
            group: group.into(),
            topic: topic.into(),
            partition,
            offset,
        })
    }

    /// A rebalance gave this consumer `partitions` of `topic` (its whole assignment).
    pub(crate) fn assign(
        &self,
        client: &str,
        group: &str,
        topic: &str,
        partitions: &[i32],
    ) -> io::Result<()> {
        self.append(Event::Assign {
            client: client.into(),
            group: group.into(),
            topic: topic.into(),
            partitions: partitions.to_vec(),
        })
    }

    /// The final read of the run found `value` at `offset`.
    pub(crate) fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        value: &str,
    ) -> io::Result<()> {
        self.append(Event::Read {
            topic: topic.into(),
            partition,
            offset,
            value: value.into(),
        })
    }

    pub(crate) fn flush(&self) -> io::Result<()> {
        match self.lock()?.as_mut() {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }

    /// Flushes and hands back the writer.
    pub(crate) fn into_inner(self) -> io::Result<W> {
        let out = self.lock()?.take();
        match out {
            Some(out) => out.into_inner().map_err(|e| e.into_error()),
            None => Err(io::Error::other("the history writer was already taken")),
        }
    }

    fn lock(&self) -> io::Result<std::sync::MutexGuard<'_, Option<BufWriter<W>>>> {
        self.out
            .lock()
            .map_err(|_| io::Error::other("a thread panicked while writing the history"))
    }

    fn append(&self, event: Event) -> io::Result<()> {
        let mut guard = self.lock()?;
        let Some(out) = guard.as_mut() else {
            return Err(io::Error::other("the history writer was already taken"));
        };
        let line = Line {
            event,
            ts_ms: Some(now_ms()),
        };
        serde_json::to_writer(&mut *out, &line).map_err(io::Error::other)?;
        out.write_all(b"\n")
    }
}

impl<W: Write> Drop for History<W> {
    fn drop(&mut self) {
        // Whatever was written before a panic elsewhere is still worth keeping.
        let mut guard = self
            .out
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(out) = guard.as_mut() {
            if let Err(e) = out.flush() {
                eprintln!("history: flushing on drop failed: {e}");
            }
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
