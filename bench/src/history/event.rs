//! The events of a history file (one JSON object a line) and how files are read.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// One thing a client of a test run saw. See the module documentation for what each means.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum Event {
    Send {
        client: String,
        topic: String,
        partition: i32,
        value: String,
    },
    Ack {
        client: String,
        topic: String,
        partition: i32,
        offset: i64,
        value: String,
    },
    Fail {
        client: String,
        value: String,
        error: String,
    },
    Poll {
        client: String,
        group: String,
        topic: String,
        partition: i32,
        offset: i64,
        value: String,
    },
    Commit {
        client: String,
        group: String,
        topic: String,
        partition: i32,
        /// The next offset to consume, as Kafka commits it.
        offset: i64,
    },
    Assign {
        client: String,
        group: String,
        topic: String,
        partitions: Vec<i32>,
    },
    Read {
        topic: String,
        partition: i32,
        offset: i64,
        value: String,
    },
}

/// A line of a history file: an event and, optionally, when it happened (ms since the Unix
/// epoch). Unknown fields are ignored so that writers may add their own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Line {
    #[serde(flatten)]
    pub(crate) event: Event,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ts_ms: Option<i64>,
}

/// Where an event was read: index into `Input::files` and the 1-based line number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct At {
    pub(crate) file: u32,
    pub(crate) line: u32,
}

/// An event with its place in the input.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) at: At,
    pub(crate) ts_ms: Option<i64>,
    pub(crate) event: Event,
}

/// Every event of a run, file after file, each file in line order.
#[derive(Debug, Default)]
pub(crate) struct Input {
    /// File names, as given, for examples.
    pub(crate) files: Vec<String>,
    pub(crate) entries: Vec<Entry>,
}

impl Input {
    /// Reads the files in the given order. A line that is not a valid event is an error
    /// naming the file and the line; blank lines are skipped.
    pub(crate) fn read_files(paths: &[impl AsRef<Path>]) -> Result<Input> {
        let mut input = Input::default();
        for path in paths {
            let path = path.as_ref();
            let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
            input.add_file(&path.display().to_string(), BufReader::new(file))?;
        }
        Ok(input)
    }

    /// Adds one file's lines; `name` is used in messages and examples.
    pub(crate) fn add_file(&mut self, name: &str, reader: impl BufRead) -> Result<()> {
        let file = u32::try_from(self.files.len()).context("too many history files")?;
        self.files.push(name.to_string());
        for (n, text) in reader.lines().enumerate() {
            let line_no = n + 1;
            let text = text.with_context(|| format!("{name}:{line_no}: reading the line"))?;
            if text.trim().is_empty() {
                continue;
            }
            let line: Line = serde_json::from_str(&text)
                .with_context(|| format!("{name}:{line_no}: not a history event"))?;
            let line_no =
                u32::try_from(line_no).with_context(|| format!("{name}: too many lines"))?;
            self.entries.push(Entry {
                at: At {
                    file,
                    line: line_no,
                },
                ts_ms: line.ts_ms,
                event: line.event,
            });
        }
        Ok(())
    }

    /// `file:line` of an event, for examples.
    pub(crate) fn place(&self, at: At) -> String {
        let name = self
            .files
            .get(at.file as usize)
            .map(String::as_str)
            .unwrap_or("?");
        format!("{name}:{}", at.line)
    }
}
