//! `tierlog serve`: wires config, dependency probes, ingest and the HTTP server together.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tierlog_cold::{ColdReader, ColdStore, Lifecycle};
use tierlog_core::Config;
use tierlog_core::health::{ComponentState, Health};
use tierlog_core::metrics::Metrics;
use tierlog_hot::HotCatalog;
use tierlog_ingest::{Ingest, IngestOptions};
use tierlog_query::HttpServer;
use tokio::sync::watch;
use tracing::{error, info, warn};

/// How long one probe may take before the dependency counts as unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long start-up waits for the cold tier's checkpoint before it goes on without.
const COLD_CHECKPOINT_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn run(config_path: &Path) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    info!(
        config = %config_path.display(),
        node = %config.node.id,
        streams = config.streams.len(),
        brokers = %config.kafka.brokers,
        cold = %config.cold.url,
        "starting tierlog {}",
        env!("CARGO_PKG_VERSION")
    );
    if config.streams.is_empty() {
        warn!("no [[streams]] configured: nothing will be ingested");
    }
    std::fs::create_dir_all(&config.node.data_dir)
        .with_context(|| format!("cannot create node.data_dir {}", config.node.data_dir.display()))?;

    let health = Health::new();
    let metrics = Metrics::new();
    let catalog = HotCatalog::new();
    let cold = ColdStore::open(&config.cold)?.with_metrics(&metrics);
    let server = HttpServer::bind(config.node.http_addr)
        .await
        .with_context(|| format!("cannot listen on {} (node.http_addr)", config.node.http_addr))?;
    info!(addr = %server.local_addr()?, "http listening");

    let (stop_tx, stop_rx) = watch::channel(false);

    let kafka = config.kafka.clone();
    spawn_probe(&health, "kafka", stop_rx.clone(), move || {
        let kafka = kafka.clone();
        async move {
            let brokers = kafka.brokers.clone();
            match tokio::task::spawn_blocking(move || tierlog_ingest::probe_brokers(&kafka, PROBE_TIMEOUT)).await {
                Ok(Ok(info)) => Ok(format!("{} broker(s) at {brokers}, {} topic(s)", info.num_brokers, info.num_topics)),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(format!("probe task failed: {e}")),
            }
        }
    });
    let (node_id, probe_store) = (config.node.id.clone(), cold.clone());
    spawn_probe(&health, "cold", stop_rx.clone(), move || {
        let (cold, node_id) = (probe_store.clone(), node_id.clone());
        async move {
            cold.probe(&node_id, PROBE_TIMEOUT).await.map_err(|e| e.to_string())?;
            Ok(format!("object store {} writable", cold.url()))
        }
    });

    let mut lifecycle = Lifecycle::new(&config, cold.clone(), catalog.clone(), &metrics);
    let cold_checkpoint = match tokio::time::timeout(COLD_CHECKPOINT_TIMEOUT, lifecycle.checkpoint()).await {
        Ok(Ok(checkpoint)) => checkpoint,
        Ok(Err(e)) => {
            warn!(error = %e, "cannot read the cold tier's checkpoint; partitions without hot data start at the group's offsets");
            Default::default()
        }
        Err(_) => {
            warn!(seconds = COLD_CHECKPOINT_TIMEOUT.as_secs(), "the cold tier's checkpoint did not come in time; partitions without hot data start at the group's offsets");
            Default::default()
        }
    };
    let ingest = {
        let (config, catalog, metrics) = (config.clone(), catalog.clone(), metrics.clone());
        let options = IngestOptions { cold_checkpoint, ..IngestOptions::default() };
        tokio::task::spawn_blocking(move || Ingest::start(&config, catalog, metrics, options))
            .await?
            .context("starting ingest")?
    };

    let explainer = lifecycle.explainer(&config);
    let lifecycle = tokio::spawn(lifecycle.run(stop_rx.clone()));

    let cold_reader = Arc::new(ColdReader::new(cold.clone(), &config.cold, &metrics).context("opening the bundle cache (cold.cache_dir)")?);
    let engine =
        tierlog_query::QueryEngine::new(&config.streams, &config.query, &catalog, Some(cold_reader), &metrics).context("building the SQL catalog")?;
    // Fail at start-up, with the key to change, when the address is taken.
    drop(
        std::net::TcpListener::bind(config.node.pg_addr)
            .with_context(|| format!("cannot listen on {} (node.pg_addr)", config.node.pg_addr))?,
    );
    let access = tierlog_query::Access::new(&config.query);
    if access.is_open() {
        info!("no [[query.users]] configured: HTTP and PostgreSQL queries need no credentials");
    }
    let pg = {
        let (engine, access, metrics, addr) = (engine.clone(), access.clone(), metrics.clone(), config.node.pg_addr);
        tokio::spawn(async move {
            if let Err(e) = tierlog_query::serve_pg(&engine, &access, &metrics, addr).await {
                error!(addr = %addr, error = %e, "postgresql wire server stopped");
            }
        })
    };
    info!(addr = %config.node.pg_addr, "postgresql wire listening");
    let mut http_stop = stop_rx.clone();
    let router = tierlog_query::router(health.clone(), metrics.clone(), engine, access, &config.query, explainer).merge(tierlog_ui::router());
    let http = tokio::spawn(server.serve(router, async move {
        let _ = http_stop.wait_for(|stop| *stop).await;
    }));

    let outcome = tokio::select! {
        signal = shutdown_signal() => {
            info!(signal, "shutting down");
            Ok(())
        }
        _ = wait_finished(&ingest) => Err(anyhow::anyhow!("ingest stopped unexpectedly")),
    };
    let _ = stop_tx.send(true);
    pg.abort();
    let stopped = tokio::task::spawn_blocking(move || ingest.stop()).await?;
    lifecycle.await.context("lifecycle task")?;
    http.await.context("http server task")?.context("http server")?;
    stopped.context("stopping ingest")?;
    outcome?;
    info!("stopped");
    Ok(())
}

async fn wait_finished(ingest: &Ingest) {
    while !ingest.is_finished() {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Checks a dependency now and then, logging each change of state: every 2 s while it
/// is not ready, every 15 s once it is.
fn spawn_probe<F, Fut>(health: &Health, name: &'static str, mut stop: watch::Receiver<bool>, probe: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Result<String, String>> + Send,
{
    health.register(name);
    let health = health.clone();
    tokio::spawn(async move {
        let mut last: Option<Result<(), String>> = None;
        loop {
            let outcome = probe().await;
            let state = outcome.as_ref().map(|_| ()).map_err(Clone::clone);
            if last.as_ref() != Some(&state) {
                match &outcome {
                    Ok(detail) => info!(component = name, detail = %detail, "ready"),
                    Err(reason) => error!(component = name, reason = %reason, "unavailable; retrying"),
                }
            }
            health.set(name, match &state {
                Ok(()) => ComponentState::Ready,
                Err(reason) => ComponentState::Unavailable(reason.clone()),
            });
            let pause = if state.is_ok() { Duration::from_secs(15) } else { Duration::from_secs(2) };
            last = Some(state);
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    });
}

async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("cannot install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}
