//! Topic setup shared by the benchmarks: create a fresh topic and wait until the broker's
//! metadata shows all its partitions.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::ClientContext;

pub(crate) fn create_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("client.id", "sluice-bench-admin")
        .create()
        .context("creating the admin client")?;
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new()
        .operation_timeout(Some(timeout))
        .request_timeout(Some(timeout));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    let results = rt
        .block_on(async {
            tokio::time::timeout(
                timeout + Duration::from_secs(5),
                admin.create_topics([&new_topic], &opts),
            )
            .await
        })
        .map_err(|_| anyhow!("CreateTopics for {topic} timed out after {timeout:?}"))?
        .with_context(|| format!("CreateTopics for {topic}"))?;
    for result in results {
        match result {
            Ok(name) => eprintln!("created topic {name} with {partitions} partitions"),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => bail!(
                "topic {name} already exists; pass a fresh --topic (the consume check needs an empty topic)"
            ),
            Err((name, code)) => bail!("creating topic {name} failed: {code}"),
        }
    }
    Ok(())
}

/// Waits until the broker's metadata shows the topic with all its partitions, so that
/// explicit-partition sends are not rejected as unknown partitions.
pub(crate) fn wait_for_topic<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        match client.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            Ok(md) => match md.topics().iter().find(|t| t.name() == topic) {
                Some(t) if t.error().is_none() && t.partitions().len() == partitions as usize => {
                    return Ok(());
                }
                Some(t) => {
                    last = format!(
                        "topic error {:?}, {} of {partitions} partitions",
                        t.error(),
                        t.partitions().len()
                    )
                }
                None => last = "topic missing from metadata".to_string(),
            },
            Err(e) => last = format!("metadata request failed: {e}"),
        }
        thread::sleep(Duration::from_millis(200));
    }
    bail!("topic {topic} not ready after {timeout:?}: {last}")
}
