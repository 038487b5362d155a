//! Records: the message browser's pages through its filters, and producing one record
//! from the console.

use super::*;

/// Records of a topic: one partition, or all of them (`partition` None).
pub async fn messages(
    console: &Console,
    c: &ClusterRef,
    topic: &str,
    partition: Option<i32>,
    from: ReadFrom,
    limit: usize,
) -> Result<Vec<RecordView>, Refusal> {
    let limit = limit.clamp(1, 500);
    Ok(match partition {
        Some(p) => {
            console
                .view
                .read_records(&c.id, topic, p, from, limit)
                .await?
        }
        None => {
            console
                .view
                .read_records_all_partitions(&c.id, topic, from, limit)
                .await?
        }
    })
}

/// One page of the message browser, and how the VRL filter fared on it.
pub struct Browsed {
    pub page: broker::inspect::ScanPage,
    /// Records the filter failed on (they are not shown), and the first error.
    pub filter_errors: Option<(u64, String)>,
}

/// A page of records through the browser's filters (compiled once, run while scanning).
pub async fn browse(
    console: &Console,
    c: &ClusterRef,
    topic: &str,
    partition: Option<i32>,
    start: broker::inspect::ScanStart,
    limit: usize,
    filters: &crate::filter::Filters,
) -> Result<Browsed, Refusal> {
    let compiled = crate::filter::compile(filters)?;
    let page = console
        .view
        .scan_records(
            &c.id,
            topic,
            partition,
            start,
            limit,
            compiled.as_ref().map(|f| f.predicate.clone()),
        )
        .await?;
    let filter_errors = compiled.and_then(|f| {
        let e = f.errors.lock().unwrap_or_else(|p| p.into_inner());
        (e.count > 0).then(|| (e.count, e.first.clone().unwrap_or_default()))
    });
    Ok(Browsed {
        page,
        filter_errors,
    })
}

/// The console's produce form as typed: kept as text so a refused form comes back filled.
#[derive(Debug, Clone, Default)]
pub struct NewRecordForm {
    pub key: String,
    pub value: String,
    /// `name: value` per line.
    pub headers: String,
    /// Empty for "by key".
    pub partition: String,
}

/// The most bytes a record produced from the console may have (key, value and headers).
pub const MAX_CONSOLE_RECORD: usize = 1 << 20;

impl NewRecordForm {
    /// A record's contents, for "duplicate this message" (bytes that are not UTF-8 are
    /// shown lossily: duplicate binary records with a Kafka client).
    pub fn from_record(r: &RecordView) -> Self {
        let text = |b: &Option<Vec<u8>>| {
            b.as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        NewRecordForm {
            key: text(&r.key),
            value: text(&r.value),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| format!("{k}: {}", text(v)))
                .collect::<Vec<_>>()
                .join("\n"),
            partition: r.partition.to_string(),
        }
    }

    pub fn parse(&self) -> Result<broker::inspect::NewRecord, Refusal> {
        let mut headers = Vec::new();
        for line in self
            .headers
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            let Some((k, v)) = line.split_once(':') else {
                return Err(Refusal::bad_request(format!(
                    "'{line}' is not a header: write one name: value per line."
                )));
            };
            headers.push((k.trim().to_string(), Some(v.trim().as_bytes().to_vec())));
        }
        let partition = match self.partition.trim() {
            "" => None,
            p => Some(p.parse::<i32>().map_err(|_| {
                Refusal::bad_request("Partition must be a number, or empty to choose by key.")
            })?),
        };
        Ok(broker::inspect::NewRecord {
            key: (!self.key.is_empty()).then(|| self.key.as_bytes().to_vec()),
            value: Some(self.value.replace("\r\n", "\n").into_bytes()),
            headers,
            partition,
        })
    }
}

/// Produces one record (the acknowledgement comes once it is committed).
pub async fn produce(
    console: &Console,
    actor: &Actor,
    c: &ClusterRef,
    topic: &str,
    record: broker::inspect::NewRecord,
) -> Result<broker::inspect::Produced, Refusal> {
    require_write(actor)?;
    let size = record.key.as_ref().map_or(0, Vec::len)
        + record.value.as_ref().map_or(0, Vec::len)
        + record
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
            .sum::<usize>();
    if size > MAX_CONSOLE_RECORD {
        return Err(Refusal::bad_request(format!(
            "The record has {size} bytes; the console produces records up to {MAX_CONSOLE_RECORD} bytes (use a Kafka client for larger ones)."
        )));
    }
    if record.headers.iter().any(|(k, _)| k.is_empty()) {
        return Err(Refusal::bad_request("A header needs a name."));
    }
    Ok(console.view.produce_record(&c.id, topic, record).await?)
}
