//! The end of the run: every partition read from its start to its high watermark through
//! one live agent, each record written as a `read` event. A plain assigned consumer: no
//! group, no commits.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::history::History;

/// Time limit of the read (and of the high-watermark queries).
const READ_TIMEOUT: Duration = Duration::from_secs(90);

#[derive(Debug, Default)]
pub(crate) struct FinalRead {
    pub(crate) records: u64,
    /// High watermark per partition at the start of the read.
    pub(crate) high_watermarks: Vec<i64>,
    /// Offsets below the high watermark that were skipped (no record there).
    pub(crate) gaps: u64,
}

fn reader(bootstrap: &str) -> Result<BaseConsumer> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "sluice-kill-test-final-read")
        .set("client.id", "kill-test-final-read")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .context("creating the final-read consumer")
}

/// High watermark of every partition, as the agent at `bootstrap` reports it.
pub(crate) fn high_watermarks(bootstrap: &str, topic: &str, partitions: i32) -> Result<Vec<i64>> {
    let consumer = reader(bootstrap)?;
    watermarks(&consumer, topic, partitions)
}

fn watermarks(consumer: &BaseConsumer, topic: &str, partitions: i32) -> Result<Vec<i64>> {
    (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(15))
                .map(|(_, high)| high)
                .with_context(|| format!("high watermark of {topic}/{p}"))
        })
        .collect()
}

/// Reads every partition from the start to its high watermark, writing `dir/read.jsonl`.
pub(crate) fn run(bootstrap: &str, topic: &str, partitions: i32, dir: &Path) -> Result<FinalRead> {
    let path = dir.join("read.jsonl");
    let history = History::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let consumer = reader(bootstrap)?;
    let high = watermarks(&consumer, topic, partitions)?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl).context("assigning every partition")?;

    // Next offset expected per partition; a partition is done when it reaches its mark.
    let mut next: BTreeMap<i32, i64> = (0..partitions).map(|p| (p, 0)).collect();
    let mut result = FinalRead {
        high_watermarks: high.clone(),
        ..FinalRead::default()
    };
    let done = |next: &BTreeMap<i32, i64>| next.iter().all(|(&p, &n)| n >= high[p as usize]);
    let deadline = Instant::now() + READ_TIMEOUT;
    let mut errors = 0u32;
    while !done(&next) {
        if Instant::now() > deadline {
            let behind: Vec<String> = next
                .iter()
                .filter(|(&p, &n)| n < high[p as usize])
                .map(|(p, n)| format!("{p}: at {n} of {}", high[*p as usize]))
                .collect();
            bail!(
                "final read incomplete after {READ_TIMEOUT:?} ({} records read; partitions behind: {})",
                result.records,
                behind.join(", ")
            );
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(msg)) => {
                let (p, offset) = (msg.partition(), msg.offset());
                let value = msg
                    .payload()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                let Some(n) = next.get_mut(&p) else {
                    continue;
                };
                if offset < *n {
                    continue; // a re-fetch after a reconnect
                }
                result.gaps += u64::try_from(offset - *n).unwrap_or(0);
                *n = offset + 1;
                if offset >= high[p as usize] {
                    continue; // written after the watermarks were taken: not part of the read
                }
                result.records += 1;
                history
                    .read(topic, p, offset, &value)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Some(Err(e)) => {
                errors += 1;
                if errors <= 5 {
                    eprintln!("kill-test: final read: {e}");
                }
            }
            None => {}
        }
    }
    let file = history
        .into_inner()
        .with_context(|| format!("flushing {}", path.display()))?;
    file.sync_all()
        .with_context(|| format!("syncing {}", path.display()))?;
    Ok(result)
}
