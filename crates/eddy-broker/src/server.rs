//! The listener, the accept loop, background housekeeping, and shutdown.

use std::future::Future;
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
