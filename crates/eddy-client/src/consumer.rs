//! An assign-based consumer: the caller names the partitions and where to
//! start; [`Consumer::poll`] fetches from each partition's leader.
//!
//! Every batch's CRC is verified. Control batches (transaction markers) are
//! skipped. Only `read_uncommitted` is implemented. Group membership and
//! offset commits come later.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use eddy_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use eddy_protocol::messages::FetchRequest;
use eddy_protocol::records::{decode_records, BatchIter, Header, RecordError, TimestampType};
use eddy_protocol::{ErrorCode, Uuid};

use crate::admin::{list_offsets, OffsetSpec};
use crate::cluster::Cluster;
use crate::config::{AutoOffsetReset, ConsumerConfig};
use crate::connection::Connection;
use crate::error::{ClientError, KafkaError};
use crate::util::{join_all, ms_i32};

/// Where to start reading a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOffset {
    /// The log start offset.
    Earliest,
    /// The log end offset: only records produced from now on.
    Latest,
    /// This offset (reset per `auto.offset.reset` if out of range).
    Offset(i64),
    /// The first record at or after this time (ms); the end if none.
    Timestamp(i64),
}

/// A consumed record.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub timestamp_type: TimestampType,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

#[derive(Debug, Clone)]
struct Assigned {
    topic: String,
    partition: i32,
    /// The next offset to fetch; `None` until resolved from `reset`.
    position: Option<i64>,
    reset: StartOffset,
    high_watermark: Option<i64>,
}

/// The consumer.
#[derive(Debug)]
pub struct Consumer {
    cluster: Arc<Cluster>,
    config: ConsumerConfig,
    assigned: Vec<Assigned>,
}

/// What happened to one partition in a fetch.
enum FetchOutcome {
    /// Records, the next position and the high watermark (-1 if unknown).
    Records(Vec<ConsumerRecord>, i64, i64),
    OutOfRange,
    Retry(ClientError),
    Fatal(ClientError),
}

impl Consumer {
    pub fn new(config: ConsumerConfig) -> Result<Consumer, ClientError> {
        let cluster = Cluster::new(config.common.clone())?;
        Ok(Self::with_cluster(config, cluster))
    }

    /// A consumer sharing `cluster`'s connections and metadata.
    pub fn with_cluster(config: ConsumerConfig, cluster: Arc<Cluster>) -> Consumer {
        Consumer {
            cluster,
            config,
            assigned: Vec::new(),
        }
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    /// Replaces the assignment and resolves the start positions.
    pub async fn assign(
        &mut self,
        partitions: Vec<(String, i32, StartOffset)>,
    ) -> Result<(), ClientError> {
        self.assigned = partitions
            .into_iter()
            .map(|(topic, partition, start)| Assigned {
                topic,
                partition,
                position: match start {
                    StartOffset::Offset(o) if o >= 0 => Some(o),
                    _ => None,
                },
                reset: start,
                high_watermark: None,
            })
            .collect();
        self.resolve_positions().await
    }

    /// Assigns every partition of `topic`, each starting at `start`.
    pub async fn assign_topic(
        &mut self,
        topic: &str,
        start: StartOffset,
    ) -> Result<(), ClientError> {
        let info = self
            .cluster
            .topic_with_leaders(topic, false, self.config.common.request_timeout)
            .await?;
        let parts = info
            .partitions
            .iter()
            .map(|p| (topic.to_string(), p.partition, start))
            .collect();
        self.assign(parts).await
    }

    /// The assigned partitions.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.assigned
            .iter()
            .map(|a| (a.topic.clone(), a.partition))
            .collect()
    }

    /// The next offset to be returned for a partition.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.find(topic, partition).and_then(|a| a.position)
    }

    /// The partition's high watermark as of the last fetch.
    pub fn high_watermark(&self, topic: &str, partition: i32) -> Option<i64> {
        self.find(topic, partition).and_then(|a| a.high_watermark)
    }

    fn find(&self, topic: &str, partition: i32) -> Option<&Assigned> {
        self.assigned
            .iter()
            .find(|a| a.topic == topic && a.partition == partition)
    }

    /// Moves an assigned partition.
    pub async fn seek(
        &mut self,
        topic: &str,
        partition: i32,
        to: StartOffset,
    ) -> Result<(), ClientError> {
        let a = self
            .assigned
            .iter_mut()
            .find(|a| a.topic == topic && a.partition == partition)
            .ok_or_else(|| {
                ClientError::InvalidArgument(format!(
                    "topic '{topic}' partition {partition} is not assigned"
                ))
            })?;
        a.reset = to;
        a.position = match to {
            StartOffset::Offset(o) if o >= 0 => Some(o),
            _ => None,
        };
        self.resolve_positions().await
    }

    /// Looks up positions of partitions that have none (ListOffsets).
    async fn resolve_positions(&mut self) -> Result<(), ClientError> {
        let todo: Vec<usize> = (0..self.assigned.len())
            .filter(|&i| self.assigned[i].position.is_none())
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        let specs: Vec<(String, i32, OffsetSpec)> = todo
            .iter()
            .map(|&i| {
                let a = &self.assigned[i];
                let spec = match a.reset {
                    StartOffset::Earliest => OffsetSpec::Earliest,
                    StartOffset::Latest => OffsetSpec::Latest,
                    StartOffset::Timestamp(t) => OffsetSpec::Timestamp(t),
                    StartOffset::Offset(_) => match self.config.auto_offset_reset {
                        AutoOffsetReset::Earliest => OffsetSpec::Earliest,
                        _ => OffsetSpec::Latest,
                    },
                };
                (a.topic.clone(), a.partition, spec)
            })
            .collect();
        let results = list_offsets(&self.cluster, &specs).await?;
        let mut late = Vec::new();
        for (&i, r) in todo.iter().zip(results) {
            let listed = r?;
            if listed.offset >= 0 {
                self.assigned[i].position = Some(listed.offset);
            } else {
                // No record at or after the timestamp: start at the end.
                late.push(i);
            }
        }
        if !late.is_empty() {
            let specs: Vec<_> = late
                .iter()
                .map(|&i| {
                    (
                        self.assigned[i].topic.clone(),
                        self.assigned[i].partition,
                        OffsetSpec::Latest,
                    )
                })
                .collect();
            for (&i, r) in late.iter().zip(list_offsets(&self.cluster, &specs).await?) {
                self.assigned[i].position = Some(r?.offset);
            }
        }
        Ok(())
    }

    /// Fetches records, waiting up to `timeout` for some to arrive. Returns
    /// an empty vector if none did.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.resolve_positions().await?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            let records = self
                .fetch_once(remaining.min(self.config.fetch_max_wait))
                .await?;
            if !records.is_empty() || Instant::now() >= deadline {
                return Ok(records);
            }
        }
    }

    /// One round of Fetch requests, one per leader, concurrently.
    async fn fetch_once(&mut self, max_wait: Duration) -> Result<Vec<ConsumerRecord>, ClientError> {
        let mut by_leader: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
        let mut topic_ids: HashMap<String, Uuid> = HashMap::new();
        let mut missing_leader = false;
        for (i, a) in self.assigned.iter().enumerate() {
            if a.position.is_none() {
                continue;
            }
            let info = match self.cluster.topic(&a.topic, false).await {
                Ok(info) => info,
                // E.g. LEADER_NOT_AVAILABLE while a leader is elected: later.
                Err(e)
                    if e.is_retriable() && e.code() != Some(ErrorCode::UnknownTopicOrPartition) =>
                {
                    tracing::debug!(topic = %a.topic, error = %e, "metadata not ready");
                    missing_leader = true;
                    continue;
                }
                Err(e) => return Err(e),
            };
            topic_ids.insert(a.topic.clone(), info.topic_id);
            let p = info.partition(a.partition).ok_or_else(|| {
                ClientError::from(
                    KafkaError::new(ErrorCode::UnknownTopicOrPartition)
                        .with_partition(&a.topic, a.partition),
                )
            })?;
            match p.leader {
                Some(l) => by_leader.entry(l).or_default().push(i),
                None => {
                    self.cluster.invalidate(&a.topic);
                    missing_leader = true;
                }
            }
        }
        if by_leader.is_empty() {
            // Nothing fetchable now (no assignment or no leaders): wait a little.
            let pause = if missing_leader {
                self.config.common.retry_backoff
            } else {
                max_wait
            };
            tokio::time::sleep(pause.min(max_wait.max(Duration::from_millis(1)))).await;
            return Ok(Vec::new());
        }
        let assigned = &self.assigned;
        let cluster = &self.cluster;
        let config = &self.config;
        let topic_ids = &topic_ids;
        let futs = by_leader.into_iter().map(|(leader, idx)| async move {
            let res = async {
                let conn = cluster.connection(leader).await?;
                fetch_from(&conn, config, assigned, &idx, topic_ids, max_wait).await
            }
            .await;
            (idx, res)
        });
        let mut out = Vec::new();
        let mut fatal = None;
        let mut updates: Vec<(usize, FetchOutcome)> = Vec::new();
        for (idx, res) in join_all(futs.collect()).await {
            match res {
                Ok(v) => updates.extend(v),
                Err(e) if e.is_retriable() => {
                    tracing::debug!(error = %e, "fetch failed, will retry");
                    for i in idx {
                        updates.push((i, FetchOutcome::Retry(e.clone())));
                    }
                }
                Err(e) => fatal = Some(e),
            }
        }
        let mut retry_pause = false;
        for (i, outcome) in updates {
            let a = &mut self.assigned[i];
            match outcome {
                FetchOutcome::Records(records, next, hw) => {
                    if next > a.position.unwrap_or(-1) {
                        a.position = Some(next);
                    }
                    if hw >= 0 {
                        a.high_watermark = Some(hw);
                    }
                    out.extend(records);
                }
                FetchOutcome::OutOfRange => match self.config.auto_offset_reset {
                    AutoOffsetReset::None => {
                        fatal.get_or_insert_with(|| {
                            KafkaError::new(ErrorCode::OffsetOutOfRange)
                                .with_message(Some(format!(
                                    "offset {} is out of range and auto.offset.reset is none",
                                    a.position.unwrap_or(-1)
                                )))
                                .with_partition(&a.topic, a.partition)
                                .into()
                        });
                    }
                    reset => {
                        tracing::debug!(topic = %a.topic, partition = a.partition, ?reset, "offset out of range, resetting");
                        a.reset = if reset == AutoOffsetReset::Earliest {
                            StartOffset::Earliest
                        } else {
                            StartOffset::Latest
                        };
                        a.position = None;
                    }
                },
                FetchOutcome::Retry(e) => {
                    if e.invalidates_metadata() {
                        self.cluster.invalidate(&a.topic);
                    }
                    retry_pause = true;
                }
                FetchOutcome::Fatal(e) => {
                    fatal.get_or_insert(e);
                }
            }
        }
        if let Some(e) = fatal {
            return Err(e);
        }
        if out.is_empty() && retry_pause {
            tokio::time::sleep(self.config.common.retry_backoff).await;
        }
        Ok(out)
    }
}

/// Sends one Fetch to a leader for the partitions `idx` of `assigned`.
async fn fetch_from(
    conn: &Connection,
    config: &ConsumerConfig,
    assigned: &[Assigned],
    idx: &[usize],
    topic_ids: &HashMap<String, Uuid>,
    max_wait: Duration,
) -> Result<Vec<(usize, FetchOutcome)>, ClientError> {
    let mut version = conn.version::<FetchRequest>()?;
    // Topic ids (v13+) are needed; without them (old metadata) use v12.
    let use_ids = version >= 13
        && idx.iter().all(|&i| {
            topic_ids
                .get(&assigned[i].topic)
                .is_some_and(|id| !id.is_zero())
        });
    if version >= 13 && !use_ids {
        version = 12;
    }
    let mut topics: Vec<FetchTopic> = Vec::new();
    for &i in idx {
        let a = &assigned[i];
        let part = FetchPartition {
            partition: a.partition,
            current_leader_epoch: -1,
            fetch_offset: a.position.unwrap_or(0),
            last_fetched_epoch: -1,
            log_start_offset: -1,
            partition_max_bytes: config.max_partition_fetch_bytes,
            replica_directory_id: Uuid::ZERO,
        };
        match topics.iter_mut().find(|t| t.topic == a.topic) {
            Some(t) => t.partitions.push(part),
            None => topics.push(FetchTopic {
                topic: a.topic.clone(),
                topic_id: topic_ids.get(&a.topic).copied().unwrap_or(Uuid::ZERO),
                partitions: vec![part],
            }),
        }
    }
    let req = FetchRequest {
        cluster_id: None,
        replica_id: -1,
        max_wait_ms: ms_i32(max_wait),
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
        let e = ClientError::from(KafkaError::new(ErrorCode::from_code_or_unknown(
            resp.error_code,
        )));
        return Err(e);
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
    Ok(idx
        .iter()
        .map(|&i| {
            let a = &assigned[i];
            let outcome = match data.remove(&(a.topic.clone(), a.partition)) {
                // Not in the response (e.g. the fetch limit was reached): try again later.
                None => FetchOutcome::Records(Vec::new(), a.position.unwrap_or(0), -1),
                Some(p) => match ErrorCode::from_code_or_unknown(p.error_code) {
                    ErrorCode::None => {
                        let position = a.position.unwrap_or(0);
                        match parse_records(
                            &a.topic,
                            a.partition,
                            p.records.unwrap_or_default(),
                            position,
                            max_decompressed,
                        ) {
                            Ok((records, next)) => {
                                FetchOutcome::Records(records, next, p.high_watermark)
                            }
                            Err(e) => FetchOutcome::Fatal(e),
                        }
                    }
                    ErrorCode::OffsetOutOfRange => FetchOutcome::OutOfRange,
                    code => {
                        let e: ClientError = KafkaError::new(code)
                            .with_partition(&a.topic, a.partition)
                            .into();
                        if e.is_retriable() || e.invalidates_metadata() {
                            FetchOutcome::Retry(e)
                        } else {
                            FetchOutcome::Fatal(e)
                        }
                    }
                },
            };
            (i, outcome)
        })
        .collect())
}

/// Decodes the record batches of one partition's fetch data, dropping
/// records before `position` (a fetch returns whole batches) and control
/// batches. Returns the records and the next position. A truncated last
/// batch (cut by the fetch size limit) is left for the next fetch.
pub(crate) fn parse_records(
    topic: &str,
    partition: i32,
    data: Bytes,
    position: i64,
    max_decompressed: usize,
) -> Result<(Vec<ConsumerRecord>, i64), ClientError> {
    let mut out = Vec::new();
    let mut next = position;
    for item in BatchIter::headers_only(&data) {
        let (header, range) = match item {
            Ok(x) => x,
            Err(RecordError::Truncated { .. }) => break,
            Err(e) => return Err(corrupt(topic, partition, next, e)),
        };
        if header.next_offset() <= next {
            continue;
        }
        if header.is_control() {
            next = header.next_offset();
            continue;
        }
        let batch = data.slice(range);
        let (header, records) = decode_records(&batch, max_decompressed)
            .map_err(|e| corrupt(topic, partition, next, e))?;
        let timestamp_type = header.timestamp_type();
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
    use eddy_protocol::records::{Compression, RecordBatchBuilder};

    fn batch(base: i64, values: &[&str], compression: Compression) -> Bytes {
        let mut b = RecordBatchBuilder::new(compression, 1000).base_offset(base);
        for (i, v) in values.iter().enumerate() {
            b.append(1000 + i as i64, Some(b"k"), Some(v.as_bytes()), &[]);
        }
        b.build().unwrap()
    }

    fn concat(parts: &[Bytes]) -> Bytes {
        let mut v = Vec::new();
        for p in parts {
            v.extend_from_slice(p);
        }
        Bytes::from(v)
    }

    #[test]
    fn skips_records_before_the_position() {
        let data = concat(&[
            batch(0, &["a", "b", "c"], Compression::None),
            batch(3, &["d", "e"], Compression::Lz4),
        ]);
        let (recs, next) = parse_records("t", 0, data.clone(), 1, 1 << 20).unwrap();
        let vals: Vec<_> = recs.iter().map(|r| r.value.clone().unwrap()).collect();
        assert_eq!(vals, vec!["b", "c", "d", "e"]);
        assert_eq!(recs[0].offset, 1);
        assert_eq!(recs[0].timestamp, 1001);
        assert_eq!(recs[0].timestamp_type, TimestampType::CreateTime);
        assert_eq!(next, 5);
        // A position past the first batch skips it entirely.
        let (recs, next) = parse_records("t", 0, data, 4, 1 << 20).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].offset, 4);
        assert_eq!(next, 5);
    }

    #[test]
    fn truncated_last_batch_is_left_for_later() {
        let full = batch(0, &["a"], Compression::None);
        let second = batch(1, &["b", "c"], Compression::None);
        let data = concat(&[full, second.slice(..second.len() - 3)]);
        let (recs, next) = parse_records("t", 0, data, 0, 1 << 20).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(next, 1);
        let (recs, next) = parse_records("t", 0, Bytes::new(), 7, 1 << 20).unwrap();
        assert!(recs.is_empty());
        assert_eq!(next, 7);
    }

    #[test]
    fn control_batches_are_skipped_but_advance() {
        let mut c = RecordBatchBuilder::new(Compression::None, 0)
            .base_offset(2)
            .control(true);
        c.append(0, Some(&[0, 0, 0, 0]), Some(&[0, 0, 0, 0, 0, 0]), &[]);
        let data = concat(&[
            batch(0, &["a", "b"], Compression::None),
            c.build().unwrap(),
            batch(3, &["c"], Compression::None),
        ]);
        let (recs, next) = parse_records("t", 0, data, 0, 1 << 20).unwrap();
        let offsets: Vec<i64> = recs.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![0, 1, 3]);
        assert_eq!(next, 4);
    }

    #[test]
    fn corrupt_batch_is_an_error() {
        let b = batch(0, &["a", "b"], Compression::None);
        let mut v = b.to_vec();
        let last = v.len() - 1;
        v[last] ^= 0xff;
        let err = parse_records("t", 3, Bytes::from(v), 0, 1 << 20).unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::CorruptMessage));
        assert!(err.to_string().contains("topic 't' partition 3"), "{err}");
    }
}
