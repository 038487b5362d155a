//! The `sluice` binary: parses the configuration, starts the broker and the HTTP server,
//! and shuts them down in order on SIGINT/SIGTERM.

mod admin;
mod cli;
mod http;

use std::io::Write;

use anyhow::Context;
use clap::Parser;
use cli::{Cli, Command, ServeArgs};
use tokio_util::sync::CancellationToken;

/// Keeps request frames that claim absurd element counts from aborting the process.
#[global_allocator]
static ALLOC: broker::alloc_guard::GuardedAlloc = broker::alloc_guard::GuardedAlloc;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: a log file, journald or `docker logs` gets text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve(args) => runtime.block_on(serve(*args)),
        Command::Clusters(cmd) => runtime.block_on(admin::clusters(cmd)),
        Command::ApiKeys(cmd) => runtime.block_on(admin::api_keys(cmd)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn broker_config(args: &ServeArgs) -> anyhow::Result<broker::BrokerConfig> {
    let data_dir = &args.data_dir;
    let needs_dir = args.database_url.is_none() || args.bucket_url.is_none();
    if needs_dir {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating data dir {}", data_dir.display()))?;
    }
    let abs = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.clone());
    let memory_limit = args
        .memory_limit
        .unwrap_or_else(broker::limits::default_memory_limit);
    let budget = broker::limits::Budget::from_limit(memory_limit);
    tracing::info!(
        memory_limit_mib = memory_limit >> 20,
        read_cache_mib = args.read_cache_bytes.unwrap_or(budget.read_cache) >> 20,
        produce_inflight_mib = args
            .max_produce_inflight_bytes
            .unwrap_or(budget.produce_inflight)
            >> 20,
        fetch_inflight_mib = args
            .max_fetch_inflight_bytes
            .unwrap_or(budget.fetch_inflight)
            >> 20,
        "memory budget"
    );
    Ok(broker::BrokerConfig {
        kafka_auth: match args.kafka_auth {
            cli::KafkaAuthArg::None => broker::config::KafkaAuth::None,
            cli::KafkaAuthArg::Sasl => broker::config::KafkaAuth::Sasl,
        },
        database_url: args
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", abs.join("meta.db").display())),
        bucket_url: args
            .bucket_url
            .clone()
            .unwrap_or_else(|| format!("file://{}", abs.join("bucket").display())),
        kafka_addr: args.kafka_addr.0,
        advertised_kafka_addr: args.advertised_kafka_addr.clone(),
        kafka_tls_addr: args.kafka_tls_addr,
        advertised_kafka_tls_addr: args.advertised_kafka_tls_addr.clone(),
        tls: args.tls_files().map_err(anyhow::Error::msg)?,
        batch_timeout: args.batch_timeout,
        batch_min_interval: args.batch_min_interval.0,
        max_file_bytes: args.max_file_bytes as usize,
        auto_create_topics: args.auto_create_topics,
        default_partitions: args.default_partitions,
        max_frame_bytes: args.max_frame_bytes as usize,
        read_cache_bytes: args.read_cache_bytes.unwrap_or(budget.read_cache),
        produce_inflight_bytes: args
            .max_produce_inflight_bytes
            .unwrap_or(budget.produce_inflight),
        fetch_inflight_bytes: args
            .max_fetch_inflight_bytes
            .unwrap_or(budget.fetch_inflight),
        request_inflight_bytes: budget.request_inflight,
        max_connections: args.max_connections.max(1),
        sasl_max_receive_bytes: args.sasl_max_receive_bytes.clamp(64, 1 << 30) as usize,
        connections_max_idle: args.connections_max_idle,
        group_max_size: args.group_max_size as usize,
        // Memory is bounded by the gates; this only caps bookkeeping per connection. Produce
        // requests wait up to --batch-timeout, so pipelining depth is what gives throughput.
        max_inflight_per_connection: 1024,
        node_id: args.node_id,
        rack: args.rack.clone(),
        agent_group: args.agent_group.clone(),
        roles: args.roles.clone(),
        agent_session_timeout: args.agent_session_timeout,
        group_initial_rebalance_delay: args.group_initial_rebalance_delay,
        group_initial_rebalance_quiet: args.group_initial_rebalance_quiet,
        lag_interval: args.lag_interval,
        retention_interval: args.retention_interval,
        segment_delete_grace: args.segment_delete_grace,
        compaction_target_size: args.compaction_target_size,
        compaction_interval: args.compaction_interval,
        transaction_max_timeout: args.transaction_max_timeout,
        transaction_abort_interval: args.transaction_abort_interval,
    })
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = broker_config(&args)?;
    let tls_files = config.tls.clone();
    // The console's accounts live with the cluster metadata unless told otherwise.
    let platform_url = args
        .platform_database_url
        .clone()
        .unwrap_or_else(|| config.database_url.clone());
    let cancel = CancellationToken::new();
    let running = broker::start(config, broker::Metrics::new(), cancel.clone()).await?;
    let http_listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("binding HTTP listener on {}", args.http_addr))?;
    let http_addr = http_listener.local_addr()?;
    let https = match (args.https_addr, &tls_files) {
        (Some(addr), Some(files)) => {
            // The same certificate as the Kafka listener, without client certificates.
            let tls = std::sync::Arc::new(
                broker::tls::ServerTls::load(files.clone(), false, vec![b"http/1.1".to_vec()])
                    .context("loading the TLS certificate for HTTPS")?,
            );
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding HTTPS listener on {addr}"))?;
            Some((listener, tls))
        }
        _ => None,
    };
    let https_addr = https.as_ref().map(|(l, _)| l.local_addr()).transpose()?;
    let platform = app::store::Platform::connect(&platform_url)
        .await
        .with_context(|| {
            format!(
                "opening platform database {}",
                broker::agent::redact(&platform_url)
            )
        })?;
    let console = app::Console::new(
        broker::inspect::ClusterView::new(running.broker.clone()),
        platform,
        app::Settings {
            secure_cookies: args.console_secure_cookies,
            open_signup: args.console_open_signup,
            default_cluster_open: args.kafka_auth == cli::KafkaAuthArg::None,
            ..app::Settings::default()
        },
    );
    let cleaner = console.clone();
    running.spawn_job("session cleaner", move |cancel| {
        app::clean_sessions(cleaner, cancel)
    });
    if args.metrics_closed() {
        tracing::warn!("/metrics is closed (--kafka-auth sasl): set --metrics-token, or --metrics-public to open it");
    }
    let routes = http::router(running.broker.clone(), args.metrics_token_required()).merge(
        app::router(console)
            .await
            .context("starting the console (session store)")?,
    );
    let limits = http::Limits {
        header_timeout: args.http_header_timeout,
        body_timeout: args.http_body_timeout,
    };
    if let Some((_, tls)) = &https {
        let tls = tls.clone();
        running.spawn_job("https tls reload", move |cancel| tls.watch(cancel));
    }
    let http = tokio::spawn(http::serve(
        http_listener,
        https,
        routes,
        limits,
        args.http_max_connections,
        cancel.clone(),
    ));
    // Machine-readable readiness line (tests and benchmarks read it); logs go to stderr.
    // kafka=none when the plaintext listener is off; the TLS ports only when configured.
    let plaintext = match args.kafka_addr.0 {
        Some(_) => running.kafka_addr.to_string(),
        None => "none".to_string(),
    };
    let mut line = format!("sluice listening kafka={plaintext} http={http_addr}");
    if let Some(a) = running.kafka_tls_addr {
        line.push_str(&format!(" kafka_tls={a}"));
    }
    if let Some(a) = https_addr {
        line.push_str(&format!(" https={a}"));
    }
    println!("{line}");
    let _ = std::io::stdout().flush();
    tracing::info!(kafka = %plaintext, http = %http_addr, kafka_tls = ?running.kafka_tls_addr, https = ?https_addr, "sluice is ready");

    shutdown_signal().await;
    tracing::info!("shutting down: closing listeners, flushing buffered produce data");
    cancel.cancel();
    running.shutdown().await;
    if let Err(e) = http.await {
        tracing::warn!(error = %e, "http server task failed");
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
