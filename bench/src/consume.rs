//! The consume phase of the throughput benchmark: one consumer reads everything back.

use super::*;

struct ConsumeContext {
    client_errors: AtomicU64,
}

impl ClientContext for ConsumeContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let n = self.client_errors.fetch_add(1, Ordering::Relaxed) + 1;
        if n <= MAX_PRINTED_ERRORS {
            eprintln!("consumer: client error: {error}: {reason}");
        }
    }
}

impl ConsumerContext for ConsumeContext {}

pub(crate) struct ConsumeReport {
    pub(crate) received: u64,
    pub(crate) payload_bytes: u64,
    pub(crate) elapsed: Duration,
    /// Records whose key says they were produced at another position of the partition
    /// (possible, though unlikely, after client-side retries; reported, not fatal).
    pub(crate) order_warnings: u64,
    pub(crate) failures: Vec<String>,
}

pub(crate) fn consume_phase(
    args: &Args,
    bootstrap: &str,
    topic: &str,
    expected_total: u64,
) -> Result<ConsumeReport> {
    let parts = args.partitions as usize;
    let ctx = ConsumeContext {
        client_errors: AtomicU64::new(0),
    };
    // group.id is needed by librdkafka for assign(); no offsets are committed.
    let consumer: BaseConsumer<ConsumeContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("client.id", "sluice-bench-consumer")
        .set("group.id", format!("sluice-bench-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .set("queued.max.messages.kbytes", "262144")
        .set("fetch.wait.max.ms", "100")
        .set("socket.nagle.disable", "true")
        .create_with_context(ctx)
        .context("creating the consumer")?;

    let mut tpl = TopicPartitionList::with_capacity(parts);
    for p in 0..args.partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .with_context(|| format!("adding partition {p} to the assignment"))?;
    }

    // Expected record count per partition (round-robin i % partitions), from what the
    // broker acknowledged; if some deliveries failed we cannot know which, so use the total.
    let mut expected = vec![args.records / parts as u64; parts];
    for (p, e) in expected.iter_mut().enumerate() {
        if (p as u64) < args.records % parts as u64 {
            *e += 1;
        }
    }
    let exact_expectation = expected_total == args.records;

    let start = Instant::now();
    consumer.assign(&tpl).context("assigning partitions")?;
    let deadline = start + Duration::from_secs(args.timeout_secs);

    let mut next_offset = vec![0i64; parts];
    let mut received: u64 = 0;
    let mut payload_bytes: u64 = 0;
    let mut last_message_at = start;
    let mut consume_errors: u64 = 0;
    let mut gaps: u64 = 0;
    let mut misrouted: u64 = 0;
    let mut bad_sizes: u64 = 0;
    let mut order_warnings: u64 = 0;
    let mut failures = Vec::new();
    let mut printed: u64 = 0;
    let mut last_progress = Instant::now();
    let report = |text: String, printed: &mut u64| {
        *printed += 1;
        if *printed <= MAX_PRINTED_ERRORS {
            eprintln!("consume: {text}");
        }
    };

    while received < expected_total {
        if Instant::now() > deadline {
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(e)) => {
                consume_errors += 1;
                report(format!("error: {e}"), &mut printed);
            }
            Some(Ok(m)) => {
                received += 1;
                last_message_at = Instant::now();
                let p = m.partition();
                if p < 0 || p as usize >= parts {
                    misrouted += 1;
                    report(
                        format!("message from unexpected partition {p}"),
                        &mut printed,
                    );
                    continue;
                }
                let pu = p as usize;
                let off = m.offset();
                if off != next_offset[pu] {
                    gaps += 1;
                    report(
                        format!(
                            "partition {p}: expected offset {} but got {off}",
                            next_offset[pu]
                        ),
                        &mut printed,
                    );
                }
                next_offset[pu] = off + 1;
                let len = m.payload().map_or(0, <[u8]>::len);
                payload_bytes += len as u64;
                if len != args.record_bytes {
                    bad_sizes += 1;
                    report(
                        format!(
                            "partition {p} offset {off}: payload of {len} bytes, expected {}",
                            args.record_bytes
                        ),
                        &mut printed,
                    );
                }
                match m.key().and_then(|k| <[u8; 8]>::try_from(k).ok()) {
                    Some(k) => {
                        let i = u64::from_be_bytes(k);
                        if i % parts as u64 != pu as u64 {
                            misrouted += 1;
                            report(
                                format!("partition {p} offset {off}: record {i} belongs to partition {}", i % parts as u64),
                                &mut printed,
                            );
                        } else if (i / parts as u64) as i64 != off {
                            order_warnings += 1;
                        }
                    }
                    None => {
                        misrouted += 1;
                        report(
                            format!("partition {p} offset {off}: missing or malformed key"),
                            &mut printed,
                        );
                    }
                }
            }
        }
        if last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            eprintln!(
                "consume: {received} of {expected_total} records, {:.1}s",
                start.elapsed().as_secs_f64()
            );
        }
    }
    let elapsed = last_message_at
        .duration_since(start)
        .max(Duration::from_micros(1));

    if received < expected_total {
        failures.push(format!(
            "consumed only {received} of {expected_total} records within {}s",
            args.timeout_secs
        ));
    }
    if consume_errors > 0 {
        failures.push(format!("{consume_errors} consumer errors"));
    }
    if gaps > 0 {
        failures.push(format!(
            "{gaps} offset gaps or rewinds (offsets must run contiguously from 0)"
        ));
    }
    if misrouted > 0 {
        failures.push(format!(
            "{misrouted} records in the wrong partition or with a bad key"
        ));
    }
    if bad_sizes > 0 {
        failures.push(format!("{bad_sizes} records with a wrong payload size"));
    }
    if exact_expectation && received == expected_total {
        for (p, (&got, &want)) in next_offset.iter().zip(&expected).enumerate() {
            if got != want as i64 {
                failures.push(format!(
                    "partition {p}: read offsets 0..{got}, expected 0..{want}"
                ));
            }
        }
        // The high watermarks must match too (more records than produced means duplicates).
        for p in 0..args.partitions {
            match consumer.fetch_watermarks(topic, p, Duration::from_secs(10)) {
                Ok((low, high)) => {
                    let want = expected[p as usize] as i64;
                    if low != 0 || high != want {
                        failures.push(format!(
                            "partition {p}: watermarks {low}..{high}, expected 0..{want}"
                        ));
                    }
                }
                Err(e) => failures.push(format!("partition {p}: ListOffsets failed: {e}")),
            }
        }
    }
    let client_errors = consumer.context().client_errors.load(Ordering::Relaxed);
    if client_errors > 0 {
        eprintln!(
            "consume: {client_errors} client-level errors reported by librdkafka (see above)"
        );
    }
    drop(consumer);

    Ok(ConsumeReport {
        received,
        payload_bytes,
        elapsed,
        order_warnings,
        failures,
    })
}

// =========================================================================================
// Reporting
// =========================================================================================
