//! `sluice-bench sync`: a lone synchronous producer. One record is sent, its
//! acknowledgement awaited, then the next; nothing else runs. This is the latency a
//! request/response service sees when it produces an event per request, and it shows
//! whether acknowledgements wait for a timer or only for their own flush (DESIGN.md
//! section 13: p50 < 10 ms, p99 < 25 ms on a `file://` bucket).
//!
//! With `--spawn` the server's `/metrics` are read before and after, so the report also
//! gives the segment objects written per second (object PUTs, which cost money on `s3://`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, ProducerContext};
use rdkafka::ClientContext;

use crate::scale::pct_ms;
use crate::scale::probe::scrape;
use crate::server::{Server, SpawnOptions};
use crate::topic::create_topic;

#[derive(clap::Args, Debug)]
pub(crate) struct SyncArgs {
    /// Broker to measure (ignored when --spawn is given).
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,

    /// Path to a `sluice` binary to start on ephemeral ports with a temporary data dir.
    #[arg(long, value_name = "PATH")]
    spawn: Option<PathBuf>,

    /// Bucket URL for the spawned server (default: its own, a folder in the data dir).
    #[arg(long, value_name = "URL")]
    bucket_url: Option<String>,

    /// --batch-timeout for the spawned server (its default when omitted).
    #[arg(long, default_value = "250ms")]
    batch_timeout: String,

    /// Extra argument for the spawned server (repeatable).
    #[arg(long = "server-arg", value_name = "ARG", allow_hyphen_values = true)]
    server_args: Vec<String>,

    /// Records to send, one at a time.
    #[arg(long, default_value_t = 1000)]
    records: u64,

    /// Payload bytes of each record.
    #[arg(long, default_value_t = 100)]
    record_bytes: usize,

    /// Idempotent producer (the Java client's default since Kafka 3.0).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    idempotent: bool,

    /// Fail (exit 1) when p50 or p99 exceed these milliseconds (0: report only).
    #[arg(long, default_value_t = 0.0)]
    max_p50_ms: f64,
    #[arg(long, default_value_t = 0.0)]
    max_p99_ms: f64,
}

struct Acks(mpsc::Sender<Result<(), String>>);

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let _ = self
            .0
            .send(result.as_ref().map(|_| ()).map_err(|(e, _)| e.to_string()));
    }
}

pub(crate) fn main(args: &SyncArgs) -> ExitCode {
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("sluice-bench sync: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &SyncArgs) -> Result<bool> {
    let mut server = None;
    let (bootstrap, http) = match &args.spawn {
        Some(path) => {
            let (srv, kafka, http) = Server::spawn(&SpawnOptions {
                path: path.clone(),
                batch_timeout: args.batch_timeout.clone(),
                bucket_url: args.bucket_url.clone(),
                extra_args: args.server_args.clone(),
                forward_log: false,
                keep_data: false,
                startup_timeout: Duration::from_secs(60),
                data_dir: None,
                log_file: None,
            })?;
            server = Some(srv);
            (kafka, http)
        }
        None => (args.bootstrap.clone(), None),
    };
    let topic = format!("sluice-sync-{}", std::process::id());
    create_topic(&bootstrap, &topic, 1, Duration::from_secs(30))?;
    let (tx, rx) = mpsc::channel();
    let producer: BaseProducer<Acks> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("enable.idempotence", args.idempotent.to_string())
        .set("message.timeout.ms", "30000")
        .create_with_context(Acks(tx))
        .context("creating the producer")?;
    let payload = vec![b'x'; args.record_bytes];
    // Warm-up: connections, metadata and the producer id are not part of the figure.
    send_one(&producer, &rx, &topic, &payload)?;
    let before = http.as_deref().and_then(|h| scrape(h).ok());
    let started = Instant::now();
    let mut lat_us = Vec::with_capacity(args.records as usize);
    for _ in 0..args.records {
        let t = Instant::now();
        send_one(&producer, &rx, &topic, &payload)?;
        lat_us.push(t.elapsed().as_micros() as u64);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = http.as_deref().and_then(|h| scrape(h).ok());
    lat_us.sort_unstable();
    let q = |x| pct_ms(&lat_us, x).unwrap_or(f64::NAN);
    let (p50, p99) = (q(0.50), q(0.99));
    println!(
        "sync producer: {} records, one at a time, {:.0} records/s",
        args.records,
        args.records as f64 / elapsed
    );
    println!(
        "ack latency ms: p50 {p50:.2}  p90 {:.2}  p99 {p99:.2}  p99.9 {:.2}  max {:.2}",
        q(0.90),
        q(0.999),
        q(1.0)
    );
    if let (Some(b), Some(a)) = (before, after) {
        if let (Some(s0), Some(s1)) = (b.segments, a.segments) {
            println!(
                "segment objects written: {:.0} ({:.1}/s); commit transactions: {:.0}",
                s1 - s0,
                (s1 - s0) / elapsed,
                a.commit_tx.unwrap_or(0.0) - b.commit_tx.unwrap_or(0.0)
            );
        }
    }
    let mut ok = true;
    if args.max_p50_ms > 0.0 && p50 > args.max_p50_ms {
        println!("FAILED: p50 {p50:.2} ms > {} ms", args.max_p50_ms);
        ok = false;
    }
    if args.max_p99_ms > 0.0 && p99 > args.max_p99_ms {
        println!("FAILED: p99 {p99:.2} ms > {} ms", args.max_p99_ms);
        ok = false;
    }
    if let Some(mut srv) = server {
        srv.stop();
    }
    Ok(ok)
}

fn send_one(
    producer: &BaseProducer<Acks>,
    acks: &mpsc::Receiver<Result<(), String>>,
    topic: &str,
    payload: &[u8],
) -> Result<()> {
    let record = BaseRecord::<(), [u8]>::to(topic).payload(payload);
    if let Err((e, _)) = producer.send(record) {
        bail!("send failed: {e}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        producer.poll(Duration::from_millis(1));
        match acks.try_recv() {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => bail!("delivery failed: {e}"),
            Err(mpsc::TryRecvError::Empty) if Instant::now() < deadline => {}
            Err(_) => bail!("no acknowledgement within 30 s"),
        }
    }
}
