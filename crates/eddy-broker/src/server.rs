//! The listener, the accept loop, background housekeeping, and shutdown.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::broker::{Broker, BrokerError};
use crate::config::{BrokerConfig, BrokerConfigError};
use crate::connection;

/// Why the broker stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] BrokerConfigError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Runs a broker until `shutdown` completes, then closes every log cleanly.
pub async fn run(
    config: BrokerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    config.validate()?;
    for key in config.unknown_keys() {
        tracing::warn!(key, "unknown config key ignored");
    }
    let started = std::time::Instant::now();
    let listen = config.listen;
    let broker = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || Broker::open(config))
            .await
            .map_err(|e| BrokerError::DataDir {
                path: Default::default(),
                source: std::io::Error::other(e.to_string()),
            })??
    };
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: listen,
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: listen,
        source,
    })?;
    broker.set_advertised_port(bound.port());
    let housekeeping = tokio::spawn(housekeeping(broker.clone()));
    let (cleaner, cleaner_stop) = match log_cleaner_of(&broker) {
        Some(c) => {
            let stop = c.abort_handle();
            (
                Some(tokio::spawn(log_cleaner(broker.clone(), c))),
                Some(stop),
            )
        }
        None => (None, None),
    };
    tracing::info!(
        node_id = broker.node_id(),
        cluster_id = %broker.cluster_id(),
        data_dir = %config.data_dir.display(),
        topics = broker.all_topics().len(),
        startup_ms = started.elapsed().as_millis() as u64,
        "eddy broker ready on {bound}"
    );
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(connection::serve(broker.clone(), stream));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = &mut shutdown => break,
        }
    }
    tracing::info!("shutting down");
    housekeeping.abort();
    if let Some(stop) = cleaner_stop {
        stop.store(true, Ordering::Relaxed);
    }
    if let Some(c) = cleaner {
        c.abort();
    }
    drop(listener);
    let b = broker.clone();
    let _ = tokio::task::spawn_blocking(move || b.close()).await;
    tracing::info!("eddy broker stopped");
    Ok(())
}

/// Retention every `log.retention.check.interval.ms`; time-based rolls and flushes every
/// `log.flush.scheduler.interval.ms`.
async fn housekeeping(broker: Arc<Broker>) {
    let tick_ms = broker
        .broker_i64("log.flush.scheduler.interval.ms", 1000)
        .clamp(10, 60_000) as u64;
    let mut since_retention_ms = 0u64;
    let mut ticker = tokio::time::interval(Duration::from_millis(tick_ms));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let retention_ms = broker
            .broker_i64("log.retention.check.interval.ms", 300_000)
            .max(1) as u64;
        since_retention_ms += tick_ms;
        let b = broker.clone();
        let run_retention = since_retention_ms >= retention_ms;
        if run_retention {
            since_retention_ms = 0;
        }
        let _ = tokio::task::spawn_blocking(move || {
            b.tick();
            if run_retention {
                b.apply_retention();
            }
        })
        .await;
    }
}

/// The log cleaner of the broker configs, None if `log.cleaner.enable=false` or
/// `log.cleaner.threads=0`. Eddy runs one cleaner thread; the dedupe buffer is divided by
/// `log.cleaner.threads` as Kafka does.
fn log_cleaner_of(broker: &Broker) -> Option<eddy_log::Cleaner> {
    let threads = broker.broker_i64("log.cleaner.threads", 1);
    if !broker.broker_bool("log.cleaner.enable", true) || threads < 1 {
        tracing::info!("log cleaner disabled");
        return None;
    }
    let buffer = broker
        .broker_i64("log.cleaner.dedupe.buffer.size", 134_217_728)
        .max(1)
        / threads;
    let rate = broker
        .broker_value("log.cleaner.io.max.bytes.per.second")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(f64::MAX);
    Some(eddy_log::Cleaner::new(eddy_log::CleanerConfig {
        dedupe_buffer_size: usize::try_from(buffer).unwrap_or(usize::MAX),
        io_max_bytes_per_second: rate,
    }))
}

/// Runs one cleaning at a time on a blocking thread; sleeps `log.cleaner.backoff.ms` when no
/// log needed cleaning. Stopped by its abort flag (checked between batches) and task abort.
async fn log_cleaner(broker: Arc<Broker>, mut cleaner: eddy_log::Cleaner) {
    let stop: Arc<AtomicBool> = cleaner.abort_handle();
    loop {
        let b = broker.clone();
        let Ok((c, cleaned)) = tokio::task::spawn_blocking(move || {
            let cleaned = b.clean_filthiest_log(&mut cleaner);
            (cleaner, cleaned)
        })
        .await
        else {
            return;
        };
        cleaner = c;
        if stop.load(Ordering::Relaxed) {
            return;
        }
        if !cleaned {
            let backoff = broker
                .broker_i64("log.cleaner.backoff.ms", 15_000)
                .clamp(1, 3_600_000) as u64;
            tokio::time::sleep(Duration::from_millis(backoff)).await;
        }
    }
}
