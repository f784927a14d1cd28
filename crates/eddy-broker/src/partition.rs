//! One partition as the broker sees it: its log behind a lock, and the per-topic settings the
//! produce path checks (read once per config change, not per request).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use eddy_log::{Log, LogConfig, LogError, TailScan};
use eddy_protocol::codec::Uuid;
use eddy_protocol::error_code::ErrorCode;
use eddy_protocol::records::BatchHeader;
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

/// How much of the end of a log is scanned at startup to rebuild the producers' sequence
/// state (the state itself lives only in memory and is not snapshotted).
///
/// Why the tail is enough: the state answers *retries*, and after a crash or a stop the only
/// batches a producer can retry are those it had in flight, i.e. the newest ones. A producer
/// keeps at most `max.in.flight.requests.per.connection` = 5 requests in flight, each at most
/// `max.request.size` (1 MiB by default), so one producer's unacknowledged data on a partition is
/// at most ~5 MiB, and with the default `batch.size` (16 KiB) a producer's last 5 batches are
/// ~80 KiB: 8 MiB covers one producer at its maximum or ~100 concurrent producers at the
/// defaults. Reading 8 MiB of headers is a few milliseconds from the page cache (a SIGKILLed
/// broker's data is still there), which keeps startup fast; 1 GiB segments are never read whole.
/// A producer none of whose batches is in the scanned tail is unknown after the restart and its
/// next batch is accepted with any sequence (as Kafka does for a producer whose state expired).
pub const PRODUCER_STATE_SCAN_BYTES: u64 = 8 * 1024 * 1024;

/// The last sequence of a batch: sequences wrap at i32::MAX back to 0 (Kafka's
/// DefaultRecordBatch.incrementSequence).
pub fn last_sequence(h: &BatchHeader) -> i32 {
    ((i64::from(h.base_sequence) + i64::from(h.last_offset_delta)) % (i64::from(i32::MAX) + 1))
        as i32
}

/// Rebuilds the idempotent producers' state from the last `max_bytes` of `log` (see
/// [`PRODUCER_STATE_SCAN_BYTES`]): every batch with a producer id and a sequence, in log order,
/// as if it had just been appended. Control batches carry no data sequence and are skipped.
pub fn restore_producers(
    log: &Log,
    max_bytes: u64,
) -> Result<(HashMap<i64, ProducerState>, TailScan), LogError> {
    let mut producers: HashMap<i64, ProducerState> = HashMap::new();
    let scan = log.scan_tail(max_bytes, |h| {
        if h.producer_id < 0 || h.base_sequence < 0 || h.producer_epoch < 0 || h.is_control() {
            return;
        }
        producers.entry(h.producer_id).or_default().record(
            h.producer_epoch,
            h.base_sequence,
            last_sequence(h),
            h.base_offset,
        );
    })?;
    Ok((producers, scan))
}

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
            // Unknown producer: new, or none of its batches is in the log tail scanned at startup
            // (or all were deleted). Any sequence is accepted, as Kafka does since KIP-360 for a
            // producer without an entry (ProducerAppendInfo.checkSequence: a current epoch of
            // NO_PRODUCER_EPOCH accepts any sequence): a producer whose state expired must be
            // able to go on. Retries after a restart are covered by the tail scan.
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
        let producers = match restore_producers(&log, PRODUCER_STATE_SCAN_BYTES) {
            Ok((producers, scan)) => {
                if !producers.is_empty() {
                    tracing::info!(
                        topic = %topic,
                        partition = index,
                        producers = producers.len(),
                        scanned_batches = scan.batches,
                        scanned_bytes = scan.bytes,
                        from_offset = scan.from_offset,
                        "restored idempotent producer state from the log tail"
                    );
                } else if scan.batches > 0 {
                    tracing::debug!(
                        topic = %topic,
                        partition = index,
                        scanned_batches = scan.batches,
                        scanned_bytes = scan.bytes,
                        "no idempotent producer in the log tail"
                    );
                }
                producers
            }
            Err(e) => {
                // The log opened, so this is an I/O error on a re-read: serve the partition
                // without the state (retries of in-flight batches may then be duplicated).
                tracing::warn!(topic = %topic, partition = index, error = %e, "cannot restore idempotent producer state");
                HashMap::new()
            }
        };
        Partition {
            topic,
            index,
            topic_id,
            leader_epoch: 0,
            log: RwLock::new(log),
            settings: RwLock::new(settings),
            producers: parking_lot::Mutex::new(producers),
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

    fn idempotent_batch(
        pid: i64,
        epoch: i16,
        seq: i32,
        records: usize,
        control: bool,
    ) -> bytes::BytesMut {
        use eddy_protocol::records::{Compression, RecordBatchBuilder};
        let mut b = RecordBatchBuilder::new(Compression::None, 1000)
            .producer(pid, epoch, seq)
            .control(control);
        for i in 0..records {
            b.append(1000 + i as i64, None, Some(b"value"), &[]);
        }
        bytes::BytesMut::from(&b.build().expect("build")[..])
    }

    fn settings() -> PartitionSettings {
        PartitionSettings {
            max_message_bytes: 1 << 20,
            log_append_time: false,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: i64::MAX,
            min_insync_replicas: 1,
            compacted: false,
        }
    }

    #[test]
    fn producer_state_is_restored_from_the_log_tail_on_open() {
        let d = tempfile::tempdir().unwrap();
        let mut log = Log::open(d.path(), LogConfig::default()).unwrap();
        let mut append = |mut b: bytes::BytesMut| log.append(&mut b, Some(0), None).unwrap();
        // Producer 7: seq 0..=2 at 0, 3..=4 at 3; producer 9: epoch 0 then epoch 1.
        assert_eq!(append(idempotent_batch(7, 0, 0, 3, false)).first_offset, 0);
        append(idempotent_batch(9, 0, 0, 1, false)); // 3
        append(idempotent_batch(-1, -1, -1, 2, false)); // 4..=5, not idempotent
        assert_eq!(append(idempotent_batch(7, 0, 3, 2, false)).first_offset, 6);
        append(idempotent_batch(9, 1, 0, 2, false)); // 8..=9
        append(idempotent_batch(9, 1, 0, 1, true)); // 10, a control batch: no sequence
        for i in 0..7 {
            // Producer 11: seven batches, only the last five are remembered.
            append(idempotent_batch(11, 0, i, 1, false)); // 11..=17
        }
        log.close().unwrap();

        let log = Log::open(d.path(), LogConfig::default()).unwrap();
        let p = Partition::new("t".into(), 0, Uuid::ZERO, log, settings());
        let producers = p.producers.lock();
        assert_eq!(producers.len(), 3);
        let check = |pid: i64, epoch, first, last| {
            ProducerState::check(producers.get(&pid), epoch, first, last)
        };
        // Retries are answered with their original offsets, nothing is appended twice.
        assert_eq!(check(7, 0, 3, 4), SequenceCheck::Duplicate(6));
        assert_eq!(check(7, 0, 0, 2), SequenceCheck::Duplicate(0));
        assert_eq!(check(7, 0, 5, 9), SequenceCheck::Append);
        assert_eq!(check(7, 0, 6, 6), SequenceCheck::OutOfOrder { expected: 5 });
        // Producer 9 is at epoch 1; the control batch did not count.
        assert_eq!(check(9, 0, 1, 1), SequenceCheck::FencedEpoch);
        assert_eq!(check(9, 1, 0, 1), SequenceCheck::Duplicate(8));
        assert_eq!(check(9, 1, 2, 2), SequenceCheck::Append);
        // Producer 11: the last five batches.
        assert_eq!(producers[&11].batches.len(), PRODUCER_BATCH_CACHE);
        assert_eq!(check(11, 0, 6, 6), SequenceCheck::Duplicate(17));
        assert_eq!(check(11, 0, 2, 2), SequenceCheck::Duplicate(13));
        assert_eq!(
            check(11, 0, 1, 1),
            SequenceCheck::OutOfOrder { expected: 7 }
        );
        assert_eq!(check(11, 0, 7, 7), SequenceCheck::Append);
    }

    #[test]
    fn producer_state_restore_reads_only_the_tail() {
        let d = tempfile::tempdir().unwrap();
        let mut log = Log::open(d.path(), LogConfig::default()).unwrap();
        for seq in 0..100 {
            log.append(&mut idempotent_batch(3, 0, seq, 1, false), None, None)
                .unwrap();
        }
        // A producer appearing only in the first batches is beyond a small budget.
        let mut early = idempotent_batch(4, 0, 0, 1, false);
        let size = early.len() as u64;
        let mut log2 = log;
        log2.append(&mut early, None, None).unwrap();
        for seq in 100..200 {
            log2.append(&mut idempotent_batch(3, 0, seq, 1, false), None, None)
                .unwrap();
        }
        let (producers, scan) = restore_producers(&log2, 10 * size).unwrap();
        assert!(scan.bytes < 60 * size, "{scan:?}");
        assert!(!producers.contains_key(&4));
        assert_eq!(
            ProducerState::check(producers.get(&3), 0, 199, 199),
            SequenceCheck::Duplicate(200)
        );
        let (producers, _) = restore_producers(&log2, u64::MAX).unwrap();
        assert!(producers.contains_key(&4));
    }
}
