//! The fetcher: the consumer's per-partition positions and a prefetching
//! pipeline of Fetch requests.
//!
//! At most one Fetch is in flight per leader (as in the Java client). A
//! fetch runs in its own task, decodes its records there, and parks them in
//! the partition's buffer; `poll` hands out buffered records and sends the
//! next fetches at once, so the following batch is on its way while the
//! caller processes the current one. A seek, reset or unassignment bumps the
//! partition's epoch: results of fetches sent before are dropped.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use eddy_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use eddy_protocol::messages::fetch_response::AbortedTransaction;
use eddy_protocol::messages::FetchRequest;
use eddy_protocol::records::{decode_records, BatchIter, RecordError};
use eddy_protocol::{ErrorCode, Uuid};
use tokio::sync::mpsc;

use super::{ConsumerRecord, StartOffset};
use crate::cluster::{Cluster, TopicInfo};
use crate::config::{ConsumerConfig, IsolationLevel};
use crate::connection::Connection;
use crate::error::{ClientError, KafkaError};
use crate::membership::TopicPartition;
use crate::util::ms_i32;

/// The consumer's view of one assigned partition.
#[derive(Debug)]
pub(crate) struct PartitionState {
    /// The next offset to return; `None` until resolved from `reset`.
    pub position: Option<i64>,
    /// How to find the position when it is `None`.
    pub reset: StartOffset,
    pub paused: bool,
    pub high_watermark: Option<i64>,
    pub last_stable_offset: Option<i64>,
    pub log_start_offset: Option<i64>,
    /// Fetched records not yet returned, starting at `position`.
    buffered: VecDeque<ConsumerRecord>,
    /// Where the next fetch starts (after the buffered records).
    fetch_position: i64,
    /// Bumped by every seek: older fetch results are dropped.
    epoch: u64,
    /// No fetch before this instant (after a retriable error).
    retry_at: Option<Instant>,
}

impl PartitionState {
    fn new(start: StartOffset) -> Self {
        let mut s = PartitionState {
            position: None,
            reset: start,
            paused: false,
            high_watermark: None,
            last_stable_offset: None,
            log_start_offset: None,
            buffered: VecDeque::new(),
            fetch_position: 0,
            epoch: 0,
            retry_at: None,
        };
        s.seek(start);
        s
    }

    fn seek(&mut self, to: StartOffset) {
        self.reset = to;
        self.buffered.clear();
        self.epoch += 1;
        self.retry_at = None;
        match to {
            StartOffset::Offset(o) if o >= 0 => self.set_position(o),
            _ => self.position = None,
        }
    }

    fn set_position(&mut self, offset: i64) {
        self.position = Some(offset);
        self.fetch_position = offset;
    }

    /// Records that can be returned now.
    fn buffered_len(&self) -> usize {
        self.buffered.len()
    }
}

/// What happened to one partition in a fetch.
#[derive(Debug)]
enum FetchOutcome {
    /// Records and the next fetch offset.
    Records(Vec<ConsumerRecord>, i64),
    OutOfRange,
    Retry(ClientError),
    Fatal(ClientError),
}

#[derive(Debug)]
struct Fetched {
    tp: TopicPartition,
    /// The offset the fetch started at and the partition epoch then.
    offset: i64,
    epoch: u64,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
    outcome: FetchOutcome,
}

type FetchResult = (i32, Vec<FetchJob>, Result<Vec<Fetched>, ClientError>);

#[derive(Debug, Clone)]
struct FetchJob {
    tp: TopicPartition,
    offset: i64,
    epoch: u64,
}

/// Positions, buffers and fetches of the assigned partitions.
#[derive(Debug)]
pub(crate) struct Fetcher {
    cluster: Arc<Cluster>,
    config: Arc<ConsumerConfig>,
    parts: BTreeMap<TopicPartition, PartitionState>,
    /// Leaders with a fetch in flight.
    in_flight: HashSet<i32>,
    tx: mpsc::UnboundedSender<FetchResult>,
    rx: mpsc::UnboundedReceiver<FetchResult>,
    /// Where the next `collect` starts, for fairness between partitions.
    rotation: usize,
}

impl Fetcher {
    pub fn new(cluster: Arc<Cluster>, config: Arc<ConsumerConfig>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Fetcher {
            cluster,
            config,
            parts: BTreeMap::new(),
            in_flight: HashSet::new(),
            tx,
            rx,
            rotation: 0,
        }
    }

    pub fn assigned(&self) -> impl Iterator<Item = &TopicPartition> {
        self.parts.keys()
    }

    pub fn contains(&self, tp: &TopicPartition) -> bool {
        self.parts.contains_key(tp)
    }

    pub fn state(&self, tp: &TopicPartition) -> Option<&PartitionState> {
        self.parts.get(tp)
    }

    /// Adds a partition (or restarts it) at `start`.
    pub fn add(&mut self, tp: TopicPartition, start: StartOffset) {
        match self.parts.get_mut(&tp) {
            Some(s) => s.seek(start),
            None => {
                self.parts.insert(tp, PartitionState::new(start));
            }
        }
    }

    pub fn remove(&mut self, tp: &TopicPartition) {
        self.parts.remove(tp);
    }

    pub fn clear(&mut self) {
        self.parts.clear();
    }

    /// Moves a partition; false if it is not assigned.
    pub fn seek(&mut self, tp: &TopicPartition, to: StartOffset) -> bool {
        match self.parts.get_mut(tp) {
            Some(s) => {
                s.seek(to);
                true
            }
            None => false,
        }
    }

    pub fn set_paused(&mut self, tp: &TopicPartition, paused: bool) -> bool {
        match self.parts.get_mut(tp) {
            Some(s) => {
                s.paused = paused;
                true
            }
            None => false,
        }
    }

    /// Whether some partition has no position yet.
    pub fn has_unresolved(&self) -> bool {
        self.parts.values().any(|s| s.position.is_none())
    }

    /// Partitions without a position, with how to find it.
    pub fn unresolved(&self) -> Vec<(TopicPartition, StartOffset)> {
        self.parts
            .iter()
            .filter(|(_, s)| s.position.is_none())
            .map(|(tp, s)| (tp.clone(), s.reset))
            .collect()
    }

    /// Sets a resolved position (ignored if the partition was seeked or
    /// unassigned meanwhile, i.e. it has a position already).
    pub fn resolve(&mut self, tp: &TopicPartition, offset: i64) {
        if let Some(s) = self.parts.get_mut(tp) {
            if s.position.is_none() {
                s.set_position(offset);
            }
        }
    }

    /// Sets the reset strategy of an unresolved partition.
    pub fn set_reset(&mut self, tp: &TopicPartition, reset: StartOffset) {
        if let Some(s) = self.parts.get_mut(tp) {
            if s.position.is_none() {
                s.reset = reset;
            }
        }
    }

    /// Whether records are ready to be returned.
    pub fn has_buffered(&self) -> bool {
        self.parts
            .values()
            .any(|s| !s.paused && s.buffered_len() > 0)
    }

    /// Takes up to `max` buffered records, partition by partition, starting
    /// after the partition served first last time.
    pub fn collect(&mut self, max: usize) -> Vec<ConsumerRecord> {
        let mut out = Vec::new();
        let n = self.parts.len();
        if n == 0 {
            return out;
        }
        let start = self.rotation % n;
        let mut first_served = None;
        let mut states: Vec<&mut PartitionState> = self.parts.values_mut().collect();
        states.rotate_left(start);
        for (j, s) in states.into_iter().enumerate() {
            if out.len() >= max {
                break;
            }
            if s.paused || s.buffered.is_empty() {
                continue;
            }
            first_served.get_or_insert((j + start) % n);
            let take = (max - out.len()).min(s.buffered.len());
            out.extend(s.buffered.drain(..take));
            s.position = Some(match s.buffered.front() {
                Some(r) => r.offset,
                None => s.fetch_position,
            });
        }
        if let Some(i) = first_served {
            self.rotation = i + 1;
        }
        out
    }

    /// Sends a Fetch to every leader that has fetchable partitions and no
    /// fetch in flight.
    pub async fn send_fetches(&mut self) -> Result<(), ClientError> {
        let now = Instant::now();
        let mut by_leader: BTreeMap<i32, Vec<FetchJob>> = BTreeMap::new();
        let mut topic_ids: HashMap<String, Uuid> = HashMap::new();
        let mut unknown_leader = Vec::new();
        let mut current: Option<(&str, Arc<TopicInfo>)> = None;
        for (tp, s) in &self.parts {
            if s.paused
                || s.position.is_none()
                || !s.buffered.is_empty()
                || s.retry_at.is_some_and(|t| t > now)
            {
                continue;
            }
            // Partitions are sorted by topic: one metadata lookup per topic.
            let info = match &current {
                Some((name, info)) if *name == tp.0.as_str() => info.clone(),
                _ => match self.cluster.topic(&tp.0, false).await {
                    Ok(info) => {
                        topic_ids.insert(tp.0.clone(), info.topic_id);
                        current = Some((tp.0.as_str(), info.clone()));
                        info
                    }
                    Err(e) if e.is_retriable() => {
                        tracing::debug!(topic = %tp.0, error = %e, "metadata not ready");
                        unknown_leader.push(tp.clone());
                        continue;
                    }
                    Err(e) => return Err(e),
                },
            };
            let leader = info.partition(tp.1).and_then(|p| p.leader);
            match leader {
                Some(l) if !self.in_flight.contains(&l) => {
                    by_leader.entry(l).or_default().push(FetchJob {
                        tp: tp.clone(),
                        offset: s.fetch_position,
                        epoch: s.epoch,
                    })
                }
                Some(_) => {}
                None => unknown_leader.push(tp.clone()),
            }
        }
        for tp in unknown_leader {
            self.cluster.invalidate(&tp.0);
            if let Some(s) = self.parts.get_mut(&tp) {
                s.retry_at = Some(now + self.config.common.retry_backoff);
            }
        }
        for (leader, jobs) in by_leader {
            self.in_flight.insert(leader);
            let cluster = self.cluster.clone();
            let config = self.config.clone();
            let ids = topic_ids.clone();
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let res = async {
                    let conn = cluster.fetch_connection(leader).await?;
                    fetch_from(&conn, &config, &jobs, &ids).await
                }
                .await;
                let _ = tx.send((leader, jobs, res));
            });
        }
        Ok(())
    }

    /// When the earliest partition waiting after an error may be fetched.
    pub fn next_retry(&self) -> Option<Instant> {
        self.parts
            .values()
            .filter(|s| !s.paused && s.position.is_some())
            .filter_map(|s| s.retry_at)
            .min()
    }

    pub fn has_in_flight(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// Waits for the next fetch to complete and applies it. Cancel-safe.
    /// Returns an error the caller must report (fatal partition error,
    /// out of range with `auto.offset.reset=none`).
    pub async fn complete_one(&mut self) -> Result<(), ClientError> {
        let Some((leader, jobs, res)) = self.rx.recv().await else {
            return Ok(());
        };
        self.in_flight.remove(&leader);
        match res {
            Ok(fetched) => self.apply(fetched),
            Err(e) => {
                tracing::debug!(leader, error = %e, "fetch failed, will retry");
                let retriable = e.is_retriable();
                let retry_at = Instant::now() + self.config.common.retry_backoff;
                for j in &jobs {
                    self.cluster.invalidate(&j.tp.0);
                    if let Some(s) = self.parts.get_mut(&j.tp) {
                        s.retry_at = Some(retry_at);
                    }
                }
                if retriable {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    fn apply(&mut self, fetched: Vec<Fetched>) -> Result<(), ClientError> {
        let mut fatal = None;
        for f in fetched {
            let Some(s) = self.parts.get_mut(&f.tp) else {
                continue;
            };
            if f.high_watermark >= 0 {
                s.high_watermark = Some(f.high_watermark);
            }
            if f.last_stable_offset >= 0 {
                s.last_stable_offset = Some(f.last_stable_offset);
            }
            if f.log_start_offset >= 0 {
                s.log_start_offset = Some(f.log_start_offset);
            }
            if s.epoch != f.epoch || s.fetch_position != f.offset || !s.buffered.is_empty() {
                continue; // seeked meanwhile
            }
            match f.outcome {
                FetchOutcome::Records(records, next) => {
                    if next > s.fetch_position {
                        s.fetch_position = next;
                    }
                    s.buffered = records.into();
                    if s.buffered.is_empty() {
                        s.position = Some(s.fetch_position);
                    }
                }
                FetchOutcome::OutOfRange => match self.config.auto_offset_reset {
                    crate::config::AutoOffsetReset::None => {
                        fatal.get_or_insert_with(|| {
                            KafkaError::new(ErrorCode::OffsetOutOfRange)
                                .with_message(Some(format!(
                                    "offset {} is out of range and auto.offset.reset is none",
                                    f.offset
                                )))
                                .with_partition(&f.tp.0, f.tp.1)
                                .into()
                        });
                    }
                    reset => {
                        tracing::debug!(topic = %f.tp.0, partition = f.tp.1, ?reset, "offset out of range, resetting");
                        s.seek(if reset == crate::config::AutoOffsetReset::Earliest {
                            StartOffset::Earliest
                        } else {
                            StartOffset::Latest
                        });
                    }
                },
                FetchOutcome::Retry(e) => {
                    if e.invalidates_metadata() {
                        self.cluster.invalidate(&f.tp.0);
                    }
                    s.retry_at = Some(Instant::now() + self.config.common.retry_backoff);
                }
                FetchOutcome::Fatal(e) => {
                    fatal.get_or_insert(e);
                }
            }
        }
        match fatal {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Sends one Fetch to a leader for `jobs`.
async fn fetch_from(
    conn: &Connection,
    config: &ConsumerConfig,
    jobs: &[FetchJob],
    topic_ids: &HashMap<String, Uuid>,
) -> Result<Vec<Fetched>, ClientError> {
    let mut version = conn.version::<FetchRequest>()?;
    // Topic ids (v13+) are needed; without them (old metadata) use v12.
    let use_ids = version >= 13
        && jobs
            .iter()
            .all(|j| topic_ids.get(&j.tp.0).is_some_and(|id| !id.is_zero()));
    if version >= 13 && !use_ids {
        version = 12;
    }
    let mut topics: Vec<FetchTopic> = Vec::new();
    for j in jobs {
        let part = FetchPartition {
            partition: j.tp.1,
            current_leader_epoch: -1,
            fetch_offset: j.offset,
            last_fetched_epoch: -1,
            log_start_offset: -1,
            partition_max_bytes: config.max_partition_fetch_bytes,
            replica_directory_id: Uuid::ZERO,
        };
        match topics.iter_mut().find(|t| t.topic == j.tp.0) {
            Some(t) => t.partitions.push(part),
            None => topics.push(FetchTopic {
                topic: j.tp.0.clone(),
                topic_id: topic_ids.get(&j.tp.0).copied().unwrap_or(Uuid::ZERO),
                partitions: vec![part],
            }),
        }
    }
    let req = FetchRequest {
        cluster_id: None,
        replica_id: -1,
        max_wait_ms: ms_i32(config.fetch_max_wait),
        min_bytes: config.fetch_min_bytes,
        max_bytes: config.fetch_max_bytes,
        isolation_level: config.isolation_level.as_i8(),
        session_id: 0,
        session_epoch: -1,
        topics,
        ..Default::default()
    };
    let resp = conn.send_version(&req, version).await?;
    if resp.error_code != 0 {
        return Err(KafkaError::new(ErrorCode::from_code_or_unknown(resp.error_code)).into());
    }
    let by_id: HashMap<Uuid, &str> = topic_ids.iter().map(|(n, id)| (*id, n.as_str())).collect();
    let mut data = HashMap::new();
    for t in resp.responses {
        let name = if use_ids {
            by_id.get(&t.topic_id).map(|s| s.to_string())
        } else {
            Some(t.topic.clone())
        };
        let Some(name) = name else { continue };
        for p in t.partitions {
            data.insert((name.clone(), p.partition_index), p);
        }
    }
    let max_decompressed = config.common.max_response_size;
    let read_committed = config.isolation_level == IsolationLevel::ReadCommitted;
    Ok(jobs
        .iter()
        .map(|j| {
            let (tp, offset) = (&j.tp, j.offset);
            let mut fetched = Fetched {
                tp: tp.clone(),
                offset,
                epoch: j.epoch,
                high_watermark: -1,
                last_stable_offset: -1,
                log_start_offset: -1,
                // Not in the response (e.g. the size limit was reached): later.
                outcome: FetchOutcome::Records(Vec::new(), offset),
            };
            let Some(p) = data.remove(tp) else {
                return fetched;
            };
            fetched.high_watermark = p.high_watermark;
            fetched.last_stable_offset = p.last_stable_offset;
            fetched.log_start_offset = p.log_start_offset;
            fetched.outcome = match ErrorCode::from_code_or_unknown(p.error_code) {
                ErrorCode::None => {
                    let aborted = if read_committed {
                        p.aborted_transactions.unwrap_or_default()
                    } else {
                        Vec::new()
                    };
                    match parse_records(
                        &tp.0,
                        tp.1,
                        p.records.unwrap_or_default(),
                        offset,
                        max_decompressed,
                        &aborted,
                    ) {
                        Ok((records, next)) => FetchOutcome::Records(records, next),
                        Err(e) => FetchOutcome::Fatal(e),
                    }
                }
                ErrorCode::OffsetOutOfRange => FetchOutcome::OutOfRange,
                code => {
                    let e: ClientError = KafkaError::new(code).with_partition(&tp.0, tp.1).into();
                    if e.is_retriable() || e.invalidates_metadata() {
                        FetchOutcome::Retry(e)
                    } else {
                        FetchOutcome::Fatal(e)
                    }
                }
            };
            fetched
        })
        .collect())
}

/// Control record types (the control record key: version i16, type i16).
const CONTROL_ABORT: i16 = 0;

/// Decodes the record batches of one partition's fetch data, dropping
/// records before `position` (a fetch returns whole batches), control
/// batches, and (read_committed) batches of `aborted` transactions. Returns
/// the records and the next fetch offset. A truncated last batch (cut by the
/// fetch size limit) is left for the next fetch.
pub(crate) fn parse_records(
    topic: &str,
    partition: i32,
    data: Bytes,
    position: i64,
    max_decompressed: usize,
    aborted: &[AbortedTransaction],
) -> Result<(Vec<ConsumerRecord>, i64), ClientError> {
    let mut out = Vec::new();
    let mut next = position;
    let mut pending_aborts: Vec<&AbortedTransaction> = aborted.iter().collect();
    pending_aborts.sort_by_key(|a| a.first_offset);
    let mut pending_aborts: VecDeque<&AbortedTransaction> = pending_aborts.into();
    let mut aborting: HashSet<i64> = HashSet::new();
    for item in BatchIter::headers_only(&data) {
        let (header, range) = match item {
            Ok(x) => x,
            Err(RecordError::Truncated { .. }) => break,
            Err(e) => return Err(corrupt(topic, partition, next, e)),
        };
        // Transactions aborted at or before this batch start applying.
        while pending_aborts
            .front()
            .is_some_and(|a| a.first_offset <= header.last_offset())
        {
            if let Some(a) = pending_aborts.pop_front() {
                aborting.insert(a.producer_id);
            }
        }
        if header.next_offset() <= next {
            continue;
        }
        if header.is_control() {
            if header.is_transactional() && aborting.contains(&header.producer_id) {
                let batch = data.slice(range);
                let (_, records) = decode_records(&batch, max_decompressed)
                    .map_err(|e| corrupt(topic, partition, next, e))?;
                let is_abort = records
                    .first()
                    .and_then(|r| r.key.as_ref())
                    .is_some_and(|k| {
                        k.len() >= 4 && i16::from_be_bytes([k[2], k[3]]) == CONTROL_ABORT
                    });
                if is_abort {
                    aborting.remove(&header.producer_id);
                }
            }
            next = header.next_offset();
            continue;
        }
        if header.is_transactional() && aborting.contains(&header.producer_id) {
            next = header.next_offset();
            continue;
        }
        let batch = data.slice(range);
        let (header, records) = decode_records(&batch, max_decompressed)
            .map_err(|e| corrupt(topic, partition, next, e))?;
        let timestamp_type = header.timestamp_type();
        out.reserve(records.len());
        for r in records {
            if r.offset < next {
                continue;
            }
            out.push(ConsumerRecord {
                topic: topic.to_string(),
                partition,
                offset: r.offset,
                timestamp: r.timestamp,
                timestamp_type,
                key: r.key,
                value: r.value,
                headers: r.headers,
            });
        }
        next = header.next_offset();
    }
    Ok((out, next))
}

fn corrupt(topic: &str, partition: i32, offset: i64, e: RecordError) -> ClientError {
    KafkaError::new(ErrorCode::CorruptMessage)
        .with_message(Some(format!(
            "record batch at offset {offset} is invalid: {e}"
        )))
        .with_partition(topic, partition)
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_protocol::records::{Compression, RecordBatchBuilder, TimestampType};

    fn batch(base: i64, values: &[&str], compression: Compression) -> Bytes {
        let mut b = RecordBatchBuilder::new(compression, 1000).base_offset(base);
        for (i, v) in values.iter().enumerate() {
            b.append(1000 + i as i64, Some(b"k"), Some(v.as_bytes()), &[]);
        }
        b.build().unwrap()
    }

    fn txn_batch(base: i64, pid: i64, values: &[&str]) -> Bytes {
        let mut b = RecordBatchBuilder::new(Compression::None, 1000)
            .base_offset(base)
            .producer(pid, 0, 0)
            .transactional(true);
        for v in values {
            b.append(1000, None, Some(v.as_bytes()), &[]);
        }
        b.build().unwrap()
    }

    fn marker(base: i64, pid: i64, kind: i16) -> Bytes {
        let mut c = RecordBatchBuilder::new(Compression::None, 0)
            .base_offset(base)
            .producer(pid, 0, -1)
            .transactional(true)
            .control(true);
        let key = [0, 0, (kind >> 8) as u8, kind as u8];
        c.append(0, Some(&key), Some(&[0, 0, 0, 0, 0, 0]), &[]);
        c.build().unwrap()
    }

    fn concat(parts: &[Bytes]) -> Bytes {
        let mut v = Vec::new();
        for p in parts {
            v.extend_from_slice(p);
        }
        Bytes::from(v)
    }

    fn parse(data: Bytes, position: i64) -> (Vec<ConsumerRecord>, i64) {
        parse_records("t", 0, data, position, 1 << 20, &[]).unwrap()
    }

    #[test]
    fn skips_records_before_the_position() {
        let data = concat(&[
            batch(0, &["a", "b", "c"], Compression::None),
            batch(3, &["d", "e"], Compression::Lz4),
        ]);
        let (recs, next) = parse(data.clone(), 1);
        let vals: Vec<_> = recs.iter().map(|r| r.value.clone().unwrap()).collect();
        assert_eq!(vals, vec!["b", "c", "d", "e"]);
        assert_eq!(recs[0].offset, 1);
        assert_eq!(recs[0].timestamp, 1001);
        assert_eq!(recs[0].timestamp_type, TimestampType::CreateTime);
        assert_eq!(next, 5);
        // A position past the first batch skips it entirely.
        let (recs, next) = parse(data, 4);
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].offset, 4);
        assert_eq!(next, 5);
    }

    #[test]
    fn truncated_last_batch_is_left_for_later() {
        let full = batch(0, &["a"], Compression::None);
        let second = batch(1, &["b", "c"], Compression::None);
        let data = concat(&[full, second.slice(..second.len() - 3)]);
        let (recs, next) = parse(data, 0);
        assert_eq!(recs.len(), 1);
        assert_eq!(next, 1);
        let (recs, next) = parse(Bytes::new(), 7);
        assert!(recs.is_empty());
        assert_eq!(next, 7);
    }

    #[test]
    fn control_batches_are_skipped_but_advance() {
        let data = concat(&[
            batch(0, &["a", "b"], Compression::None),
            marker(2, 7, 1),
            batch(3, &["c"], Compression::None),
        ]);
        let (recs, next) = parse(data, 0);
        let offsets: Vec<i64> = recs.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![0, 1, 3]);
        assert_eq!(next, 4);
    }

    #[test]
    fn read_committed_drops_aborted_transactions_only() {
        // Producer 7 aborts its transaction (offsets 0-1, marker 4); producer 8
        // commits (offsets 2-3, marker 5); producer 7 then writes again (6).
        let data = concat(&[
            txn_batch(0, 7, &["a0", "a1"]),
            txn_batch(2, 8, &["c0", "c1"]),
            marker(4, 7, CONTROL_ABORT),
            marker(5, 8, 1),
            txn_batch(6, 7, &["a2"]),
        ]);
        let aborted = [AbortedTransaction {
            producer_id: 7,
            first_offset: 0,
        }];
        let (recs, next) = parse_records("t", 0, data.clone(), 0, 1 << 20, &aborted).unwrap();
        let vals: Vec<_> = recs.iter().map(|r| r.value.clone().unwrap()).collect();
        assert_eq!(vals, vec!["c0", "c1", "a2"]);
        assert_eq!(next, 7);
        // read_uncommitted (no aborted list) returns every data record.
        let (recs, _) = parse(data, 0);
        assert_eq!(recs.len(), 5);
    }

    #[test]
    fn corrupt_batch_is_an_error() {
        let b = batch(0, &["a", "b"], Compression::None);
        let mut v = b.to_vec();
        let last = v.len() - 1;
        v[last] ^= 0xff;
        let err = parse_records("t", 3, Bytes::from(v), 0, 1 << 20, &[]).unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::CorruptMessage));
        assert!(err.to_string().contains("topic 't' partition 3"), "{err}");
    }

    fn record(offset: i64) -> ConsumerRecord {
        ConsumerRecord {
            topic: "t".into(),
            partition: 0,
            offset,
            timestamp: 0,
            timestamp_type: TimestampType::CreateTime,
            key: None,
            value: None,
            headers: vec![],
        }
    }

    #[tokio::test]
    async fn collect_respects_max_pause_and_advances_positions() {
        let cluster = Cluster::new(crate::config::CommonConfig::new("127.0.0.1:9")).unwrap();
        let config = Arc::new(ConsumerConfig::new("127.0.0.1:9"));
        let mut f = Fetcher::new(cluster, config);
        let a = ("t".to_string(), 0);
        let b = ("t".to_string(), 1);
        f.add(a.clone(), StartOffset::Offset(10));
        f.add(b.clone(), StartOffset::Offset(0));
        for (tp, offs, next) in [(&a, 10..13, 15), (&b, 0..2, 2)] {
            let s = f.parts.get_mut(tp).unwrap();
            s.buffered = offs.map(record).collect();
            s.fetch_position = next;
        }
        let first = f.collect(2);
        assert_eq!(first.len(), 2);
        // Positions follow what was returned; a drained buffer jumps to the
        // fetch position (records skipped by compaction or markers).
        let got = f.collect(10);
        assert_eq!(first.len() + got.len(), 5);
        assert_eq!(f.state(&a).unwrap().position, Some(15));
        assert_eq!(f.state(&b).unwrap().position, Some(2));
        // Paused partitions keep their records.
        f.parts.get_mut(&a).unwrap().buffered = [record(15)].into();
        f.set_paused(&a, true);
        assert!(!f.has_buffered());
        assert!(f.collect(10).is_empty());
        f.set_paused(&a, false);
        assert_eq!(f.collect(10).len(), 1);
        // A seek drops the buffer and sets both positions.
        f.parts.get_mut(&b).unwrap().buffered = [record(2)].into();
        assert!(f.seek(&b, StartOffset::Offset(0)));
        assert!(!f.has_buffered());
        assert_eq!(f.state(&b).unwrap().position, Some(0));
        assert!(f.seek(&b, StartOffset::Earliest));
        assert_eq!(f.unresolved(), vec![(b.clone(), StartOffset::Earliest)]);
    }
}
