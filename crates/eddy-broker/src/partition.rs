//! One partition as the broker sees it: its log behind a lock, and the per-topic settings the
//! produce path checks (read once per config change, not per request).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use eddy_log::{Log, LogConfig};
use eddy_protocol::codec::Uuid;
use eddy_protocol::error_code::ErrorCode;
use parking_lot::RwLock;

/// Produce-path settings derived from the topic's effective configs.
#[derive(Debug, Clone)]
pub struct PartitionSettings {
    pub max_message_bytes: usize,
    pub log_append_time: bool,
    pub timestamp_before_max_ms: i64,
    pub timestamp_after_max_ms: i64,
    pub min_insync_replicas: i32,
    /// `cleanup.policy` includes `compact`: records must carry a key.
    pub compacted: bool,
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
    /// Idempotent producers' sequence state; only touched with the log's write lock held.
    pub producers: parking_lot::Mutex<HashMap<i64, ProducerState>>,
}

/// How many recent batches of a producer are remembered to answer retried duplicates
/// (Kafka's value: a producer has at most 5 requests in flight with idempotence).
pub const PRODUCER_BATCH_CACHE: usize = 5;

/// What a partition remembers of one idempotent producer.
#[derive(Debug, Clone, Default)]
pub struct ProducerState {
    pub epoch: i16,
    /// (first sequence, last sequence, base offset) of the latest batches, oldest first.
    pub batches: VecDeque<(i32, i32, i64)>,
}

/// The verdict on an idempotent batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Append,
    /// A retry of a batch already appended at this base offset: answer success, append nothing.
    Duplicate(i64),
    /// The producer's epoch is older than one already seen.
    FencedEpoch,
    /// A gap or reordering in the sequence numbers.
    OutOfOrder { expected: i32 },
}

impl ProducerState {
    /// Judges a batch with these producer fields (Kafka's ProducerStateManager rules).
    pub fn check(
        state: Option<&ProducerState>,
        epoch: i16,
        first_seq: i32,
        last_seq: i32,
    ) -> SequenceCheck {
        let Some(s) = state else {
            // Unknown producer (new, or its state was lost by a restart): accept.
            return SequenceCheck::Append;
        };
        if epoch < s.epoch {
            return SequenceCheck::FencedEpoch;
        }
        if epoch > s.epoch {
            return if first_seq == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::OutOfOrder { expected: 0 }
            };
        }
        if let Some(&(_, _, offset)) = s
            .batches
            .iter()
            .find(|(f, l, _)| *f == first_seq && *l == last_seq)
        {
            return SequenceCheck::Duplicate(offset);
        }
        let expected = match s.batches.back() {
            Some(&(_, last, _)) => {
                if last == i32::MAX {
                    0
                } else {
                    last + 1
                }
            }
            None => 0,
        };
        if first_seq == expected || s.batches.is_empty() {
            SequenceCheck::Append
        } else {
            SequenceCheck::OutOfOrder { expected }
        }
    }

    /// Records an appended batch.
    pub fn record(&mut self, epoch: i16, first_seq: i32, last_seq: i32, base_offset: i64) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
        if self.batches.len() == PRODUCER_BATCH_CACHE {
            self.batches.pop_front();
        }
        self.batches.push_back((first_seq, last_seq, base_offset));
    }
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
            producers: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    /// Checks a client's `current_leader_epoch` (-1: not given) against this replica's:
    /// newer is UNKNOWN_LEADER_EPOCH (our metadata is behind), older is FENCED_LEADER_EPOCH.
    pub fn check_leader_epoch(&self, current_leader_epoch: i32) -> Result<(), ErrorCode> {
        match current_leader_epoch {
            e if e < 0 || e == self.leader_epoch => Ok(()),
            e if e > self.leader_epoch => Err(ErrorCode::UnknownLeaderEpoch),
            _ => Err(ErrorCode::FencedLeaderEpoch),
        }
    }

    /// The offset below which records are visible to consumers.
    pub fn high_watermark(&self) -> i64 {
        self.log.read().log_end_offset()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_rules() {
        assert_eq!(ProducerState::check(None, 0, 7, 9), SequenceCheck::Append);
        let mut s = ProducerState::default();
        s.record(0, 0, 4, 100);
        s.record(0, 5, 9, 105);
        assert_eq!(
            ProducerState::check(Some(&s), 0, 10, 12),
            SequenceCheck::Append
        );
        assert_eq!(
            ProducerState::check(Some(&s), 0, 5, 9),
            SequenceCheck::Duplicate(105)
        );
        assert_eq!(
            ProducerState::check(Some(&s), 0, 0, 4),
            SequenceCheck::Duplicate(100)
        );
        assert_eq!(
            ProducerState::check(Some(&s), 0, 12, 13),
            SequenceCheck::OutOfOrder { expected: 10 }
        );
        assert_eq!(
            ProducerState::check(Some(&s), 1, 0, 3),
            SequenceCheck::Append
        );
        assert_eq!(
            ProducerState::check(Some(&s), 1, 5, 6),
            SequenceCheck::OutOfOrder { expected: 0 }
        );
        s.record(1, 0, 3, 110);
        assert_eq!(
            ProducerState::check(Some(&s), 0, 10, 12),
            SequenceCheck::FencedEpoch
        );
        for i in 0..10 {
            s.record(1, 4 + i, 4 + i, 200 + i as i64);
        }
        assert_eq!(s.batches.len(), PRODUCER_BATCH_CACHE);
    }
}
