//! One partition as the broker sees it: its log behind a lock, and the per-topic settings the
//! produce path checks (read once per config change, not per request).

use std::sync::Arc;

use eddy_log::{Log, LogConfig};
use eddy_protocol::codec::Uuid;
use parking_lot::RwLock;

/// Produce-path settings derived from the topic's effective configs.
#[derive(Debug, Clone)]
pub struct PartitionSettings {
    pub max_message_bytes: usize,
    pub log_append_time: bool,
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
    pub min_insync_replicas: i32,
}

/// A partition hosted by this broker. In the single-node broker it is always the leader and
/// its high watermark is its log end offset.
pub struct Partition {
    pub topic: Arc<str>,
    pub index: i32,
    pub topic_id: Uuid,
    /// The leader epoch of this replica (0 until replication arrives).
    pub leader_epoch: i32,
    pub log: RwLock<Log>,
    pub settings: RwLock<PartitionSettings>,
}

impl Partition {
    pub fn new(
        topic: Arc<str>,
        index: i32,
        topic_id: Uuid,
        log: Log,
        settings: PartitionSettings,
    ) -> Self {
        Partition {
            topic,
            index,
            topic_id,
            leader_epoch: 0,
            log: RwLock::new(log),
            settings: RwLock::new(settings),
        }
    }

    /// The offset below which records are visible to consumers.
    pub fn high_watermark(&self) -> i64 {
        self.log.read().log_end_offset()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log.read().log_start_offset()
    }

    /// Applies a new config to the log and to the produce-path settings.
    pub fn reconfigure(&self, log_config: LogConfig, settings: PartitionSettings) {
        self.log.write().set_config(log_config);
        *self.settings.write() = settings;
    }
}

/// A topic hosted by this broker.
pub struct TopicState {
    pub name: Arc<str>,
    pub id: Uuid,
    pub internal: bool,
    pub partitions: Vec<Arc<Partition>>,
}

impl TopicState {
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
    }
}
