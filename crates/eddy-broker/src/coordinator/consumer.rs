//! KIP-848 consumer groups (ConsumerGroupHeartbeat): server-side assignment.

use std::collections::{BTreeMap, HashSet};

use eddy_protocol::error_code::ErrorCode;

use tokio::time::Instant;

/// Broker settings of consumer groups.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    pub heartbeat_interval_ms: i32,
    pub session_timeout_ms: i32,
    pub max_size: usize,
    /// Short names (`uniform`, `range`), the first is the default.
    pub assignors: Vec<String>,
}

/// A member of a consumer group.
pub struct ConsumerMember {
    pub id: String,
}

/// A consumer group.
pub struct ConsumerGroup {
    pub group_id: String,
    pub members: BTreeMap<String, ConsumerMember>,
    pub empty_since_ms: i64,
}

impl ConsumerGroup {
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else {
            "Stable"
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        None
    }

    pub fn tick(&mut self, _now: Instant, _cfg: &ConsumerSettings) {}

    pub fn validate_offset_commit(&self, _member_id: &str, _epoch: i32) -> Result<(), ErrorCode> {
        Ok(())
    }

    pub fn validate_offset_fetch(&self, _member_id: &str, _epoch: i32) -> Result<(), ErrorCode> {
        Ok(())
    }

    pub fn subscribed_topics(&self) -> HashSet<String> {
        HashSet::new()
    }
}
