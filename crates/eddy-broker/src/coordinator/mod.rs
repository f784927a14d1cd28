//! The group coordinator: consumer groups (classic protocol and KIP-848), committed offsets,
//! and their persistence in the internal compacted topic `__consumer_offsets`.
//!
//! * The coordinator of a group is the leader of partition
//!   `abs(javaHashCode(group.id)) % partitions` of `__consumer_offsets`; on one node that is
//!   always this broker, but the partition still decides where the group's records go.
//! * Every committed offset and every change of a classic group's generation is written as a
//!   record (Kafka's key/value schemas, see [`records`]) to that partition before it is
//!   acknowledged; [`GroupCoordinator::load`] replays the topic at startup.
//! * Each group sits behind its own mutex; records of a group are appended while its lock is
//!   held, so the log order is the order of the state changes. Locks are never held across an
//!   `.await`: requests that wait (JoinGroup, SyncGroup) park a oneshot sender in the group.
//! * A ticker task fires the groups' timers (sessions, join phases) every 100 ms and expires
//!   offsets per `offsets.retention.minutes`.

pub mod assignor;
pub mod classic;
pub mod consumer;
pub mod consumer_protocol;
pub mod records;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use bytes::{Bytes, BytesMut};
use eddy_log::LogError;
use eddy_protocol::error_code::ErrorCode;
use eddy_protocol::records::{decode_records, BatchIter, Compression, RecordBatchBuilder};
use parking_lot::Mutex;
use tokio::time::{Duration, Instant};

use crate::broker::{now_ms, Broker, BrokerError};
use crate::partition::{Partition, TopicState};
use classic::{ClassicGroup, ClassicSettings, Effects};
use consumer::ConsumerGroup;
use records::{OffsetValue, RecordKey};

/// The internal topic of the group coordinator.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Largest decompressed batch accepted on replay.
const MAX_REPLAY_BATCH: usize = 64 << 20;

/// Java's `String.hashCode()`: `s[0]*31^(n-1) + ... + s[n-1]` over UTF-16 code units,
/// wrapping in 32 bits.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The partition of `__consumer_offsets` that holds a group: Kafka's
/// `Utils.abs(groupId.hashCode()) % partitions` (where `abs(Integer.MIN_VALUE)` is 0).
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    let h = java_string_hash(group_id);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    /// Set by OffsetCommit v1-v4 `retention_time_ms` (or v1's per-partition timestamp).
    pub expire_timestamp: Option<i64>,
}

impl CommittedOffset {
    pub fn to_record_value(&self) -> OffsetValue {
        OffsetValue {
            offset: self.offset,
            leader_epoch: self.leader_epoch,
            metadata: self.metadata.clone(),
            commit_timestamp: self.commit_timestamp,
            expire_timestamp: self.expire_timestamp.unwrap_or(-1),
        }
    }

    fn from_value(v: OffsetValue) -> Self {
        CommittedOffset {
            offset: v.offset,
            leader_epoch: v.leader_epoch,
            metadata: v.metadata,
            commit_timestamp: v.commit_timestamp,
            expire_timestamp: (v.expire_timestamp >= 0).then_some(v.expire_timestamp),
        }
    }
}

/// The membership protocol of a group.
// Groups live behind an `Arc<Mutex<_>>` each: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum GroupKind {
    Classic(ClassicGroup),
    Consumer(ConsumerGroup),
}

/// A group: its membership and its committed offsets.
pub struct Group {
    pub id: String,
    pub kind: GroupKind,
    /// topic → partition → offset.
    pub offsets: BTreeMap<String, BTreeMap<i32, CommittedOffset>>,
    /// Deleted (DeleteGroups): requests that still hold it must not use it.
    pub deleted: bool,
}

impl Group {
    fn new_classic(id: &str) -> Group {
        Group {
            id: id.to_string(),
            kind: GroupKind::Classic(ClassicGroup::new(id, now_ms())),
            offsets: BTreeMap::new(),
            deleted: false,
        }
    }

    /// `classic` or `consumer` (ListGroups v5 `group_type`).
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            GroupKind::Classic(_) => "classic",
            GroupKind::Consumer(_) => "consumer",
        }
    }

    /// The state name Kafka reports.
    pub fn state_name(&self) -> &'static str {
        match &self.kind {
            GroupKind::Classic(c) => c.state.name(),
            GroupKind::Consumer(c) => c.state_name(),
        }
    }

    pub fn protocol_type(&self) -> String {
        match &self.kind {
            GroupKind::Classic(c) => c.protocol_type.clone().unwrap_or_default(),
            GroupKind::Consumer(_) => "consumer".to_string(),
        }
    }

    /// True when no member is in the group.
    pub fn is_empty(&self) -> bool {
        match &self.kind {
            GroupKind::Classic(c) => c.is_empty(),
            GroupKind::Consumer(c) => c.members.is_empty(),
        }
    }
}

/// Why the coordinator could not append to `__consumer_offsets`.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error("cannot create {OFFSETS_TOPIC}: {0}")]
    CreateTopic(#[from] BrokerError),
    #[error("{OFFSETS_TOPIC} is not available")]
    TopicUnavailable,
    #[error("cannot encode a record: {0}")]
    Schema(#[from] records::RecordSchemaError),
    #[error("cannot build a record batch: {0}")]
    Batch(#[from] eddy_protocol::records::RecordError),
    #[error("cannot append to {OFFSETS_TOPIC}-{partition}: {source}")]
    Append { partition: i32, source: LogError },
}

impl CoordinatorError {
    /// The error code a client gets (Kafka's `appendGroupMetadataErrorToResponseError`).
    pub fn code(&self) -> ErrorCode {
        match self {
            CoordinatorError::CreateTopic(_) | CoordinatorError::TopicUnavailable => {
                ErrorCode::CoordinatorNotAvailable
            }
            CoordinatorError::Append {
                source: LogError::RecordTooLarge { .. },
                ..
            } => ErrorCode::UnknownServerError,
            CoordinatorError::Append { .. } => ErrorCode::NotCoordinator,
            CoordinatorError::Schema(_) | CoordinatorError::Batch(_) => {
                ErrorCode::UnknownServerError
            }
        }
    }
}

/// A key and value (None: tombstone) for `__consumer_offsets`.
pub type CoordRecord = (Bytes, Option<Bytes>);

/// Group settings read from the broker config.
#[derive(Debug, Clone)]
pub struct GroupSettings {
    pub classic: ClassicSettings,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub offset_metadata_max_bytes: usize,
    pub offsets_retention_ms: i64,
    pub offsets_retention_check_interval_ms: i64,
    pub consumer: consumer::ConsumerSettings,
}

impl GroupSettings {
    pub fn from_broker(b: &Broker) -> Self {
        let int = |n: &str, d: i64| b.broker_i64(n, d);
        let assignors = b
            .broker_value("group.consumer.assignors")
            .unwrap_or_else(|| "uniform,range".to_string());
        let assignors: Vec<String> = assignors
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .map(|s| assignor::short_name(&s).to_string())
            .collect();
        GroupSettings {
            classic: ClassicSettings {
                initial_rebalance_delay: Duration::from_millis(
                    int("group.initial.rebalance.delay.ms", 3000).max(0) as u64,
                ),
                max_size: int("group.max.size", i32::MAX as i64).max(1) as usize,
                new_member_join_timeout: classic::NEW_MEMBER_JOIN_TIMEOUT,
            },
            min_session_timeout_ms: int("group.min.session.timeout.ms", 6000) as i32,
            max_session_timeout_ms: int("group.max.session.timeout.ms", 1_800_000) as i32,
            offset_metadata_max_bytes: int("offset.metadata.max.bytes", 4096).max(0) as usize,
            offsets_retention_ms: int("offsets.retention.minutes", 10080).saturating_mul(60_000),
            offsets_retention_check_interval_ms: int(
                "offsets.retention.check.interval.ms",
                600_000,
            )
            .max(1),
            consumer: consumer::ConsumerSettings {
                heartbeat_interval_ms: int("group.consumer.heartbeat.interval.ms", 5000) as i32,
                session_timeout_ms: int("group.consumer.session.timeout.ms", 45_000) as i32,
                max_size: int("group.consumer.max.size", i32::MAX as i64).max(1) as usize,
                assignors: if assignors.is_empty() {
                    vec!["uniform".to_string(), "range".to_string()]
                } else {
                    assignors
                },
            },
        }
    }
}

/// The group coordinator of this broker.
#[derive(Default)]
pub struct GroupCoordinator {
    groups: Mutex<HashMap<String, Arc<Mutex<Group>>>>,
    ticker_started: AtomicBool,
}

impl GroupCoordinator {
    pub fn new() -> Self {
        Self::default()
    }

    // ---- groups ---------------------------------------------------------------------------

    pub fn group(&self, id: &str) -> Option<Arc<Mutex<Group>>> {
        self.groups.lock().get(id).cloned()
    }

    /// The group, created as an empty classic group if it does not exist.
    pub fn group_or_create(&self, id: &str) -> Arc<Mutex<Group>> {
        self.groups
            .lock()
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(Mutex::new(Group::new_classic(id))))
            .clone()
    }

    /// Every group (a snapshot of the map).
    pub fn all_groups(&self) -> Vec<Arc<Mutex<Group>>> {
        let mut v: Vec<(String, Arc<Mutex<Group>>)> = self
            .groups
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.into_iter().map(|(_, g)| g).collect()
    }

    /// Forgets a group (it was deleted, or it is empty and has no offsets left).
    pub fn remove_group(&self, id: &str, group: &Arc<Mutex<Group>>) {
        let mut map = self.groups.lock();
        if map.get(id).is_some_and(|g| Arc::ptr_eq(g, group)) {
            map.remove(id);
        }
    }

    // ---- the offsets topic ----------------------------------------------------------------

    /// `__consumer_offsets`, created on first use as a compacted internal topic with
    /// `offsets.topic.num.partitions` partitions.
    pub fn offsets_topic(&self, broker: &Broker) -> Result<Arc<TopicState>, CoordinatorError> {
        if let Some(t) = broker.topic(OFFSETS_TOPIC) {
            return Ok(t);
        }
        let partitions = broker
            .broker_i64("offsets.topic.num.partitions", 50)
            .clamp(1, 100_000) as i32;
        let segment_bytes = broker
            .broker_i64("offsets.topic.segment.bytes", 104_857_600)
            .max(1)
            .to_string();
        let configs: BTreeMap<String, String> = [
            ("cleanup.policy", "compact"),
            ("compression.type", "producer"),
            ("segment.bytes", segment_bytes.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        match broker.create_topic(OFFSETS_TOPIC, partitions, configs, false, true) {
            Ok(_) => {
                tracing::info!(partitions, "created {OFFSETS_TOPIC}");
            }
            Err(e) => {
                // Another request may have created it meanwhile.
                if broker.topic(OFFSETS_TOPIC).is_none() {
                    tracing::warn!(error = %e, "cannot create {OFFSETS_TOPIC}");
                    return Err(e.into());
                }
            }
        }
        broker
            .topic(OFFSETS_TOPIC)
            .ok_or(CoordinatorError::TopicUnavailable)
    }

    /// The partition of `__consumer_offsets` of a group (creating the topic if needed).
    pub fn partition_of(&self, broker: &Broker, group_id: &str) -> Result<i32, CoordinatorError> {
        let t = self.offsets_topic(broker)?;
        Ok(partition_for(group_id, t.partitions.len() as i32))
    }

    /// Appends records of one group to its partition, as one batch. Returns after the write.
    pub fn append(
        &self,
        broker: &Broker,
        group_id: &str,
        records: &[CoordRecord],
    ) -> Result<(), CoordinatorError> {
        if records.is_empty() {
            return Ok(());
        }
        let topic = self.offsets_topic(broker)?;
        let index = partition_for(group_id, topic.partitions.len() as i32);
        let p = topic
            .partition(index)
            .ok_or(CoordinatorError::TopicUnavailable)?;
        let now = now_ms();
        let mut b = RecordBatchBuilder::new(Compression::None, now);
        for (k, v) in records {
            b.append(now, Some(k), v.as_deref(), &[]);
        }
        let batch = b.build()?;
        let mut buf = BytesMut::from(&batch[..]);
        p.log
            .write()
            .append(&mut buf, Some(p.leader_epoch), None)
            .map_err(|source| CoordinatorError::Append {
                partition: index,
                source,
            })?;
        broker.data_appended.notify_waiters();
        Ok(())
    }

    // ---- replay ---------------------------------------------------------------------------

    /// Rebuilds groups and committed offsets from `__consumer_offsets` (startup).
    pub fn load(&self, broker: &Broker) {
        let Some(topic) = broker.topic(OFFSETS_TOPIC) else {
            return;
        };
        let started = std::time::Instant::now();
        let mut groups: HashMap<String, Group> = HashMap::new();
        let mut count = 0usize;
        for p in &topic.partitions {
            count += replay_partition(p, &mut groups);
        }
        let now = Instant::now();
        let mut map = self.groups.lock();
        let n = groups.len();
        for (id, mut g) in groups {
            // Members restored from the log get a full session to heartbeat again.
            if let GroupKind::Classic(c) = &mut g.kind {
                for m in c.members.values_mut() {
                    m.deadline = now + Duration::from_millis(m.session_timeout_ms.max(0) as u64);
                }
            }
            map.insert(id, Arc::new(Mutex::new(g)));
        }
        tracing::info!(
            groups = n,
            records = count,
            ms = started.elapsed().as_millis() as u64,
            "loaded consumer groups from {OFFSETS_TOPIC}"
        );
    }

    // ---- timers ---------------------------------------------------------------------------

    /// Starts the ticker task once (needs a tokio runtime; a no-op outside one).
    pub fn ensure_ticker(&self, broker: &Arc<Broker>) {
        if self.ticker_started.load(Ordering::Acquire) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.ticker_started.swap(true, Ordering::AcqRel) {
            return;
        }
        handle.spawn(ticker(Arc::downgrade(broker)));
    }

    /// Fires due timers of every group.
    pub fn tick(&self, broker: &Broker, cfg: &GroupSettings) {
        let now = Instant::now();
        let wall = now_ms();
        for g in self.all_groups() {
            let mut g = g.lock();
            if g.deleted {
                continue;
            }
            let due = match &g.kind {
                GroupKind::Classic(c) => c.next_deadline().is_some_and(|d| d <= now),
                GroupKind::Consumer(c) => c.next_deadline().is_some_and(|d| d <= now),
            };
            if !due {
                continue;
            }
            let g = &mut *g;
            match &mut g.kind {
                GroupKind::Classic(c) => {
                    let mut fx = Effects::default();
                    c.tick(now, wall, &cfg.classic, &mut fx);
                    self.finish_classic(broker, &g.id, c, fx, cfg);
                }
                GroupKind::Consumer(c) => c.tick(now, wall),
            }
        }
    }

    /// Persists the group if the effects ask for it, then answers the parked requests (with
    /// an error if the group could not be persisted).
    pub fn finish_classic(
        &self,
        broker: &Broker,
        group_id: &str,
        c: &mut ClassicGroup,
        mut fx: Effects,
        cfg: &GroupSettings,
    ) {
        if fx.persist_group {
            let rec = records::group_key(group_id)
                .and_then(|k| records::encode_group_value(&c.to_value()).map(|v| (k, Some(v))));
            let result = match rec {
                Ok(r) => self.append(broker, group_id, &[r]),
                Err(e) => Err(e.into()),
            };
            if let Err(e) = result {
                tracing::warn!(group = group_id, error = %e, "cannot persist the group");
                fx.fail(e.code());
                let mut again = Effects::default();
                c.on_persist_failed(Instant::now(), now_ms(), &cfg.classic, &mut again);
                again.deliver();
            }
        }
        fx.deliver();
    }

    /// Kafka's `onPartitionsDeleted`: the committed offsets of a deleted topic are removed
    /// (with tombstones), so that a new topic of the same name starts without them.
    pub fn remove_offsets_of_topic(&self, broker: &Broker, topic: &str) {
        if topic == OFFSETS_TOPIC {
            return;
        }
        for ga in self.all_groups() {
            let mut g = ga.lock();
            let Some(parts) = g.offsets.get(topic) else {
                continue;
            };
            let recs: Result<Vec<CoordRecord>, _> = parts
                .keys()
                .map(|p| records::offset_key(&g.id, topic, *p).map(|k| (k, None)))
                .collect();
            let written = match recs {
                Ok(r) => self.append(broker, &g.id, &r),
                Err(e) => Err(e.into()),
            };
            if let Err(e) = written {
                tracing::warn!(group = %g.id, topic, error = %e, "cannot write offset tombstones of a deleted topic");
            }
            g.offsets.remove(topic);
        }
    }

    /// Removes offsets past retention: of empty groups (from the time they became empty) and
    /// of groups without a protocol (simple consumers, from their commit time); forgets
    /// groups left with neither members nor offsets. Tombstones are written for each.
    pub fn expire_offsets(&self, broker: &Broker, cfg: &GroupSettings) {
        let wall = now_ms();
        for ga in self.all_groups() {
            let mut g = ga.lock();
            if g.deleted {
                continue;
            }
            let base: Option<Option<i64>> = match &g.kind {
                GroupKind::Classic(c) if c.protocol_type.is_none() => Some(None),
                GroupKind::Classic(c) if c.is_empty() => Some(Some(c.state_timestamp_ms)),
                GroupKind::Consumer(c) if c.members.is_empty() => Some(Some(c.empty_since_ms)),
                _ => None,
            };
            let Some(base) = base else { continue };
            let mut doomed: Vec<(String, i32)> = Vec::new();
            for (t, parts) in &g.offsets {
                for (p, o) in parts {
                    let expired = match o.expire_timestamp {
                        Some(e) => wall >= e,
                        None => {
                            let from = base.unwrap_or(o.commit_timestamp);
                            wall.saturating_sub(from) >= cfg.offsets_retention_ms
                        }
                    };
                    if expired {
                        doomed.push((t.clone(), *p));
                    }
                }
            }
            if !doomed.is_empty() {
                let recs: Result<Vec<CoordRecord>, _> = doomed
                    .iter()
                    .map(|(t, p)| records::offset_key(&g.id, t, *p).map(|k| (k, None)))
                    .collect();
                let ok = match recs {
                    Ok(r) => self.append(broker, &g.id, &r),
                    Err(e) => Err(e.into()),
                };
                if let Err(e) = ok {
                    tracing::warn!(group = %g.id, error = %e, "cannot write offset tombstones");
                    continue;
                }
                for (t, p) in &doomed {
                    if let Some(parts) = g.offsets.get_mut(t) {
                        parts.remove(p);
                        if parts.is_empty() {
                            g.offsets.remove(t);
                        }
                    }
                }
                tracing::info!(group = %g.id, offsets = doomed.len(), "expired committed offsets");
            }
            let pending = match &g.kind {
                GroupKind::Classic(c) => c.pending_member_count() > 0,
                GroupKind::Consumer(_) => false,
            };
            if g.is_empty() && g.offsets.is_empty() && !pending {
                // Kafka deletes such a group with a tombstone of its metadata.
                if let Ok(k) = records::group_key(&g.id) {
                    if self.append(broker, &g.id, &[(k, None)]).is_ok() {
                        g.deleted = true;
                        let id = g.id.clone();
                        drop(g);
                        self.remove_group(&id, &ga);
                    }
                }
            }
        }
    }
}

async fn ticker(broker: Weak<Broker>) {
    let mut interval = tokio::time::interval(Duration::from_millis(100));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut since_expiry_ms = 0i64;
    loop {
        interval.tick().await;
        let Some(b) = broker.upgrade() else { return };
        let cfg = GroupSettings::from_broker(&b);
        b.coordinator().tick(&b, &cfg);
        since_expiry_ms += 100;
        if since_expiry_ms >= cfg.offsets_retention_check_interval_ms {
            since_expiry_ms = 0;
            let b2 = b.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let cfg = GroupSettings::from_broker(&b2);
                b2.coordinator().expire_offsets(&b2, &cfg);
            })
            .await;
        }
    }
}

/// Applies every record of one partition of `__consumer_offsets`; returns the record count.
fn replay_partition(p: &Partition, groups: &mut HashMap<String, Group>) -> usize {
    let log = p.log.read();
    let end = log.log_end_offset();
    let mut offset = log.log_start_offset();
    let mut count = 0;
    while offset < end {
        let data = match log.read(offset, 1 << 20, end) {
            Ok(r) => r.data,
            Err(e) => {
                tracing::warn!(partition = p.index, offset, error = %e, "cannot read {OFFSETS_TOPIC}");
                break;
            }
        };
        if data.is_empty() {
            break;
        }
        let before = offset;
        for item in BatchIter::new(&data) {
            let (header, range) = match item {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(partition = p.index, offset, error = %e, "bad batch in {OFFSETS_TOPIC}");
                    break;
                }
            };
            let next = header.next_offset();
            if header.next_offset() <= offset {
                continue;
            }
            offset = next;
            if header.is_control() {
                continue;
            }
            let batch = data.slice(range);
            match decode_records(&batch, MAX_REPLAY_BATCH) {
                Ok((_, recs)) => {
                    for r in recs {
                        count += 1;
                        if let Some(key) = r.key {
                            apply_record(groups, key, r.value);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(partition = p.index, offset, error = %e, "undecodable batch in {OFFSETS_TOPIC}");
                }
            }
        }
        if offset <= before {
            break;
        }
    }
    count
}

fn apply_record(groups: &mut HashMap<String, Group>, key: Bytes, value: Option<Bytes>) {
    let key = match records::decode_key(key) {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(error = %e, "skipping a record of {OFFSETS_TOPIC}");
            return;
        }
    };
    match key {
        RecordKey::Offset {
            group,
            topic,
            partition,
        } => match value {
            Some(v) => match records::decode_offset_value(v) {
                Ok(v) => {
                    groups
                        .entry(group.clone())
                        .or_insert_with(|| Group::new_classic(&group))
                        .offsets
                        .entry(topic)
                        .or_default()
                        .insert(partition, CommittedOffset::from_value(v));
                }
                Err(e) => tracing::warn!(group, error = %e, "skipping an offset record"),
            },
            None => {
                if let Some(g) = groups.get_mut(&group) {
                    if let Some(parts) = g.offsets.get_mut(&topic) {
                        parts.remove(&partition);
                        if parts.is_empty() {
                            g.offsets.remove(&topic);
                        }
                    }
                }
            }
        },
        RecordKey::Group { group } => match value {
            Some(v) => match records::decode_group_value(v) {
                Ok(v) => {
                    let c = ClassicGroup::from_value(&group, v, Instant::now(), now_ms());
                    groups
                        .entry(group.clone())
                        .or_insert_with(|| Group::new_classic(&group))
                        .kind = GroupKind::Classic(c);
                }
                Err(e) => tracing::warn!(group, error = %e, "skipping a group record"),
            },
            None => {
                let remove = match groups.get_mut(&group) {
                    Some(g) if g.offsets.is_empty() => true,
                    Some(g) => {
                        g.kind = GroupKind::Classic(ClassicGroup::new(&group, now_ms()));
                        false
                    }
                    None => false,
                };
                if remove {
                    groups.remove(&group);
                }
            }
        },
        RecordKey::Other(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_codes() {
        // Values of java.lang.String#hashCode.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(java_string_hash("Aa"), java_string_hash("BB"));
        assert_eq!(java_string_hash("Aa"), 2112);
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(java_string_hash("hello world"), 1_794_106_052);
        assert_eq!(java_string_hash("my-group"), -1_906_497_762);
        assert_eq!(java_string_hash("console-consumer-1"), 35_782_224);
        // Non-ASCII: UTF-16 code units, a surrogate pair counts twice.
        assert_eq!(java_string_hash("é"), 233);
        assert_eq!(java_string_hash("😀"), 1_772_899);
    }

    #[test]
    fn partitions_of_groups() {
        assert_eq!(partition_for("hello", 50), 99_162_322 % 50);
        // abs(Integer.MIN_VALUE) is 0 in Kafka's Utils.abs.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("my-group", 50), 1_906_497_762 % 50);
        assert_eq!(partition_for("anything", 1), 0);
        for g in ["a", "b", "group-1", "x".repeat(300).as_str()] {
            let p = partition_for(g, 50);
            assert!((0..50).contains(&p));
        }
    }

    #[test]
    fn replayed_records_rebuild_offsets_and_groups() {
        let mut groups = HashMap::new();
        let k = records::offset_key("g", "t", 1).unwrap();
        let v = records::encode_offset_value(&OffsetValue {
            offset: 10,
            leader_epoch: 0,
            metadata: String::new(),
            commit_timestamp: 1,
            expire_timestamp: -1,
        })
        .unwrap();
        apply_record(&mut groups, k.clone(), Some(v));
        assert_eq!(groups["g"].offsets["t"][&1].offset, 10);
        let v2 = records::encode_offset_value(&OffsetValue {
            offset: 20,
            leader_epoch: 0,
            metadata: "m".into(),
            commit_timestamp: 2,
            expire_timestamp: -1,
        })
        .unwrap();
        apply_record(&mut groups, k.clone(), Some(v2));
        assert_eq!(groups["g"].offsets["t"][&1].offset, 20);
        assert_eq!(groups["g"].offsets["t"][&1].metadata, "m");
        apply_record(&mut groups, k, None);
        assert!(groups["g"].offsets.is_empty());
        // A group tombstone of a group without offsets forgets it.
        apply_record(&mut groups, records::group_key("g").unwrap(), None);
        assert!(!groups.contains_key("g"));
        // Garbage keys are skipped.
        apply_record(&mut groups, Bytes::from_static(&[0]), None);
        assert!(groups.is_empty());
    }
}
