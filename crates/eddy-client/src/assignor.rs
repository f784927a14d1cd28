//! Client-side partition assignors of the classic consumer group protocol.
//!
//! In a classic group (JoinGroup/SyncGroup) the coordinator picks one
//! assignor name that every member supports and elects a leader; the leader
//! runs that assignor over every member's [`Subscription`] and sends each
//! member its [`Assignment`] in SyncGroup. Both travel as Kafka's
//! ConsumerProtocol payloads (an `i16` version, then the body), encoded and
//! decoded here ([`encode_subscription`], [`decode_subscription`],
//! [`encode_assignment`], [`decode_assignment`]).
//!
//! The built-ins give the Java client's results for the same input, so Eddy
//! members and Java members can lead each other's groups:
//!
//! - [`RangeAssignor`] (`range`): per topic, consecutive ranges to members
//!   sorted by `group.instance.id` (static members first), then member id;
//!   rack-aware when members set `client.rack`.
//! - [`RoundRobinAssignor`] (`roundrobin`): all partitions, sorted by topic
//!   and partition, dealt in turn to the members (same order) subscribed to
//!   the topic.
//! - [`StickyAssignor`] (`sticky`): balanced, and keeps as many partitions
//!   as possible with their previous owner (from the subscription's owned
//!   partitions, or the user data Java's StickyAssignor writes).
//! - [`CooperativeStickyAssignor`] (`cooperative-sticky`): the sticky
//!   assignment, minus every partition that another member still owns
//!   (KIP-429): such a partition is only revoked in this rebalance and
//!   assigned in the next one.
//!
//! Where Java visits members in hash-map order (which member keeps its
//! partitions when several could, in the sticky assignors), Eddy visits
//! them in member id order; results are equally balanced and sticky but may
//! differ in such ties.
//!
//! Rack awareness (KIP-881) is implemented for `range` (through
//! [`PartitionAssignor::assign_with_racks`]); the sticky assignors and
//! `roundrobin` ignore racks.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use eddy_protocol::codec::{read_array, read_i32, read_string};
use eddy_protocol::messages::{consumer_protocol_assignment, consumer_protocol_subscription};
use eddy_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use eddy_protocol::{DecodeError, WriteBuf};

use crate::membership::TopicPartition;

/// The generation of a member that has none (Java's `DEFAULT_GENERATION`).
pub const DEFAULT_GENERATION: i32 = -1;

/// The ConsumerProtocol version this client writes (Java's latest, 3).
pub const CONSUMER_PROTOCOL_VERSION: i16 = 3;

/// How a group moves partitions between members (KIP-429).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RebalanceProtocol {
    /// Every member revokes all its partitions before rejoining.
    Eager,
    /// Members keep their partitions across a rebalance; only partitions
    /// that move are revoked, and assigned in a following rebalance.
    Cooperative,
}

/// Errors of assignors and of the ConsumerProtocol payloads.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum AssignorError {
    /// A Subscription or Assignment payload could not be decoded.
    #[error("malformed consumer protocol {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    /// A payload could not be encoded (e.g. a string longer than 32767 bytes).
    #[error("cannot encode consumer protocol {what}: {reason}")]
    Encode { what: &'static str, reason: String },
    /// `partition.assignment.strategy` names an assignor this client lacks.
    #[error(
        "unknown partition assignor '{0}' (known: range, roundrobin, sticky, cooperative-sticky)"
    )]
    UnknownAssignor(String),
    /// The assignor could not compute an assignment.
    #[error("assignor '{assignor}' failed: {reason}")]
    Failed { assignor: String, reason: String },
}

/// A member's subscription as the group leader sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    /// Subscribed topics.
    pub topics: Vec<String>,
    /// Assignor-specific data (e.g. Java's StickyAssignor previous assignment).
    pub user_data: Option<Bytes>,
    /// Partitions the member owns (v1+; empty for eager members, which
    /// revoked everything before joining).
    pub owned_partitions: Vec<TopicPartition>,
    /// The generation the owned partitions are from (v2+), `None` if unknown.
    pub generation_id: Option<i32>,
    /// `client.rack` (v3+).
    pub rack_id: Option<String>,
    /// The member's `group.instance.id` (from the JoinGroup response, not
    /// the payload).
    pub group_instance_id: Option<String>,
}

/// A member's assignment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    pub partitions: Vec<TopicPartition>,
    pub user_data: Option<Bytes>,
}

impl Assignment {
    pub fn new(mut partitions: Vec<TopicPartition>) -> Self {
        partitions.sort();
        Assignment {
            partitions,
            user_data: None,
        }
    }
}

/// What a member knows when it builds its subscription's user data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserDataContext {
    /// The topics the member subscribes to.
    pub topics: BTreeSet<String>,
    /// The partitions of the member's last assignment (kept even after an
    /// eager revocation), if it had one.
    pub previous_assignment: Option<Vec<TopicPartition>>,
    /// The generation of that assignment, or [`DEFAULT_GENERATION`].
    pub generation: i32,
}

/// A client-side partition assignor.
pub trait PartitionAssignor: Send + Sync + fmt::Debug {
    /// The name sent in JoinGroup (`partition.assignment.strategy`).
    fn name(&self) -> &str;

    /// The rebalance protocols the assignor supports. A member uses
    /// COOPERATIVE only if every configured assignor supports it.
    fn supported_protocols(&self) -> Vec<RebalanceProtocol> {
        vec![RebalanceProtocol::Eager]
    }

    /// Extra data to put in this member's subscription.
    fn subscription_user_data(&self, _ctx: &UserDataContext) -> Option<Bytes> {
        None
    }

    /// Assigns partitions: `partitions_per_topic` has the partition count of
    /// every subscribed topic that exists, `subscriptions` every member by
    /// member id. The result has an entry for every member.
    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        subscriptions: &BTreeMap<String, Subscription>,
    ) -> Result<BTreeMap<String, Assignment>, AssignorError>;

    /// Like [`assign`](Self::assign), with the racks of each partition's
    /// replicas (what the leader learns from metadata), for rack-aware
    /// assignors. The default ignores the racks.
    fn assign_with_racks(
        &self,
        partitions: &PartitionRacks,
        subscriptions: &BTreeMap<String, Subscription>,
    ) -> Result<BTreeMap<String, Assignment>, AssignorError> {
        let counts: BTreeMap<String, i32> = partitions
            .iter()
            .map(|(t, ps)| (t.clone(), i32::try_from(ps.len()).unwrap_or(i32::MAX)))
            .collect();
        self.assign(&counts, subscriptions)
    }
}

/// The racks of the replicas of each partition, by topic and partition
/// index (empty sets when brokers have no `broker.rack`).
pub type PartitionRacks = BTreeMap<String, Vec<BTreeSet<String>>>;

/// The built-in assignor called `name`.
pub fn builtin_assignor(name: &str) -> Result<Arc<dyn PartitionAssignor>, AssignorError> {
    Ok(match name {
        "range" => Arc::new(RangeAssignor),
        "roundrobin" => Arc::new(RoundRobinAssignor),
        "sticky" => Arc::new(StickyAssignor),
        "cooperative-sticky" => Arc::new(CooperativeStickyAssignor),
        // Java class names are accepted too.
        "org.apache.kafka.clients.consumer.RangeAssignor" => Arc::new(RangeAssignor),
        "org.apache.kafka.clients.consumer.RoundRobinAssignor" => Arc::new(RoundRobinAssignor),
        "org.apache.kafka.clients.consumer.StickyAssignor" => Arc::new(StickyAssignor),
        "org.apache.kafka.clients.consumer.CooperativeStickyAssignor" => {
            Arc::new(CooperativeStickyAssignor)
        }
        other => return Err(AssignorError::UnknownAssignor(other.to_string())),
    })
}

/// COOPERATIVE if every assignor supports it, else EAGER (Java's rule).
pub fn rebalance_protocol(assignors: &[Arc<dyn PartitionAssignor>]) -> RebalanceProtocol {
    if !assignors.is_empty()
        && assignors.iter().all(|a| {
            a.supported_protocols()
                .contains(&RebalanceProtocol::Cooperative)
        })
    {
        RebalanceProtocol::Cooperative
    } else {
        RebalanceProtocol::Eager
    }
}

// ---------------------------------------------------------------------------
// ConsumerProtocol payloads
// ---------------------------------------------------------------------------

fn group_by_topic(parts: &[TopicPartition]) -> BTreeMap<&str, Vec<i32>> {
    let mut m: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        m.entry(t.as_str()).or_default().push(*p);
    }
    for v in m.values_mut() {
        v.sort_unstable();
        v.dedup();
    }
    m
}

/// Encodes a subscription at `version` (0-3; fields a version lacks are dropped).
pub fn encode_subscription(sub: &Subscription, version: i16) -> Result<Bytes, AssignorError> {
    let msg = ConsumerProtocolSubscription {
        topics: sub.topics.clone(),
        user_data: sub.user_data.clone(),
        owned_partitions: group_by_topic(&sub.owned_partitions)
            .into_iter()
            .map(|(t, ps)| consumer_protocol_subscription::TopicPartition {
                topic: t.to_string(),
                partitions: ps,
            })
            .collect(),
        generation_id: sub.generation_id.unwrap_or(DEFAULT_GENERATION),
        rack_id: sub.rack_id.clone(),
    };
    let mut buf = WriteBuf::new();
    msg.encode_versioned(&mut buf, version)
        .map_err(|e| AssignorError::Encode {
            what: "subscription",
            reason: e.to_string(),
        })?;
    Ok(buf.into_bytes())
}

fn malformed(what: &'static str, e: DecodeError) -> AssignorError {
    AssignorError::Malformed {
        what,
        reason: e.to_string(),
    }
}

/// Decodes a subscription of any version. Versions above 3 are read as 3
/// (newer versions only append fields) and trailing bytes are ignored, as
/// the Java client does. `group_instance_id` is left `None`.
pub fn decode_subscription(data: &Bytes) -> Result<Subscription, AssignorError> {
    let mut b = data.clone();
    let (version, msg) = ConsumerProtocolSubscription::decode_versioned(&mut b)
        .map_err(|e| malformed("subscription", e))?;
    if b.has_remaining() {
        tracing::trace!(
            version,
            extra = b.remaining(),
            "subscription has trailing bytes"
        );
    }
    let mut owned = Vec::new();
    for tp in msg.owned_partitions {
        owned.extend(tp.partitions.into_iter().map(|p| (tp.topic.clone(), p)));
    }
    Ok(Subscription {
        topics: msg.topics,
        user_data: msg.user_data,
        owned_partitions: owned,
        generation_id: (version >= 2 && msg.generation_id >= 0).then_some(msg.generation_id),
        rack_id: msg.rack_id,
        group_instance_id: None,
    })
}

/// Encodes an assignment at `version` (0-3; all versions share one layout).
pub fn encode_assignment(a: &Assignment, version: i16) -> Result<Bytes, AssignorError> {
    let msg = ConsumerProtocolAssignment {
        assigned_partitions: group_by_topic(&a.partitions)
            .into_iter()
            .map(|(t, ps)| consumer_protocol_assignment::TopicPartition {
                topic: t.to_string(),
                partitions: ps,
            })
            .collect(),
        user_data: a.user_data.clone(),
    };
    let mut buf = WriteBuf::new();
    msg.encode_versioned(&mut buf, version)
        .map_err(|e| AssignorError::Encode {
            what: "assignment",
            reason: e.to_string(),
        })?;
    Ok(buf.into_bytes())
}

/// Decodes an assignment of any version (newer versions read as 3, trailing
/// bytes ignored). An empty payload is an empty assignment: Java's
/// coordinator answers SyncGroup with one when the leader left a member out.
pub fn decode_assignment(data: &Bytes) -> Result<Assignment, AssignorError> {
    if data.is_empty() {
        return Ok(Assignment::default());
    }
    let mut b = data.clone();
    let (version, msg) = ConsumerProtocolAssignment::decode_versioned(&mut b)
        .map_err(|e| malformed("assignment", e))?;
    if b.has_remaining() {
        tracing::trace!(
            version,
            extra = b.remaining(),
            "assignment has trailing bytes"
        );
    }
    let mut partitions = Vec::new();
    for tp in msg.assigned_partitions {
        partitions.extend(tp.partitions.into_iter().map(|p| (tp.topic.clone(), p)));
    }
    Ok(Assignment {
        partitions,
        user_data: msg.user_data,
    })
}

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

/// Java's `MemberInfo` order: members with a `group.instance.id` first, by
/// instance id, then the others by member id.
fn member_order<'a>(subs: &'a BTreeMap<String, Subscription>, members: &mut [&'a str]) {
    members.sort_by(|a, b| {
        let ia = subs.get(*a).and_then(|s| s.group_instance_id.as_deref());
        let ib = subs.get(*b).and_then(|s| s.group_instance_id.as_deref());
        match (ia, ib) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.cmp(b),
        }
    });
}

fn empty_assignment(
    subscriptions: &BTreeMap<String, Subscription>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    subscriptions
        .keys()
        .map(|m| (m.clone(), Vec::new()))
        .collect()
}

fn finish(map: BTreeMap<String, Vec<TopicPartition>>) -> BTreeMap<String, Assignment> {
    map.into_iter()
        .map(|(m, ps)| (m, Assignment::new(ps)))
        .collect()
}

// ---------------------------------------------------------------------------
// range
// ---------------------------------------------------------------------------

/// Java's `RangeAssignor` (`range`), with its rack awareness (KIP-881):
/// when members have a `client.rack` and the partitions are not all on all
/// racks, partitions go to members on a rack with a replica first (keeping
/// co-partitioned topics together), then ranges as usual.
#[derive(Debug, Clone, Copy, Default)]
pub struct RangeAssignor;

/// Members with their racks.
type RackedMembers = Vec<(String, Option<String>)>;

/// Java's RangeAssignor.TopicAssignmentState.
struct RangeTopic {
    topic: String,
    /// Subscribed members in [`member_order`], with their racks.
    consumers: RackedMembers,
    unassigned: Vec<i32>,
    assigned: HashMap<String, i64>,
    per_consumer: i64,
    with_extra: i64,
    /// Replica racks by partition; empty when no member has a rack.
    partition_racks: Vec<BTreeSet<String>>,
    needs_rack_aware: bool,
}

impl RangeTopic {
    fn racks_match(&self, consumer: &str, p: i32) -> bool {
        let rack = self
            .consumers
            .iter()
            .find(|(c, _)| c == consumer)
            .and_then(|(_, r)| r.as_ref());
        match rack {
            None => true,
            Some(r) => usize::try_from(p)
                .ok()
                .and_then(|i| self.partition_racks.get(i))
                .is_some_and(|racks| racks.contains(r)),
        }
    }

    fn max_assignable(&self, consumer: &str) -> usize {
        let n = self.per_consumer + i64::from(self.with_extra > 0)
            - self.assigned.get(consumer).copied().unwrap_or(0);
        usize::try_from(n).unwrap_or(0)
    }

    fn on_assigned(&mut self, consumer: &str, parts: &[i32]) {
        let n = self.assigned.entry(consumer.to_string()).or_insert(0);
        *n += parts.len() as i64;
        if *n > self.per_consumer {
            self.with_extra -= 1;
        }
        self.unassigned.retain(|p| !parts.contains(p));
    }

    fn assign(
        &mut self,
        consumer: &str,
        parts: Vec<i32>,
        out: &mut BTreeMap<String, Vec<TopicPartition>>,
    ) {
        self.on_assigned(consumer, &parts);
        if let Some(v) = out.get_mut(consumer) {
            v.extend(parts.into_iter().map(|p| (self.topic.clone(), p)));
        }
    }

    fn assign_ranges(
        &mut self,
        rack_matching: bool,
        out: &mut BTreeMap<String, Vec<TopicPartition>>,
    ) {
        let consumers: Vec<String> = self.consumers.iter().map(|(c, _)| c.clone()).collect();
        for c in consumers {
            if self.unassigned.is_empty() {
                break;
            }
            let parts: Vec<i32> = self
                .unassigned
                .iter()
                .copied()
                .filter(|p| !rack_matching || self.racks_match(&c, *p))
                .take(self.max_assignable(&c))
                .collect();
            if !parts.is_empty() {
                self.assign(&c, parts, out);
            }
        }
    }
}

/// Java's `useRackAwareAssignment`: members have racks that some partition
/// replicas are on, and not every partition is on every rack.
fn use_rack_aware(
    consumer_racks: &BTreeSet<&str>,
    all_partition_racks: &BTreeSet<String>,
    partition_racks: &[BTreeSet<String>],
) -> bool {
    if consumer_racks.is_empty()
        || !consumer_racks
            .iter()
            .any(|r| all_partition_racks.contains(*r))
    {
        return false;
    }
    !partition_racks.iter().all(|r| r == all_partition_racks)
}

fn range_assign(
    partitions: &PartitionRacks,
    subscriptions: &BTreeMap<String, Subscription>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut out = empty_assignment(subscriptions);
    let rack_of = |m: &str| -> Option<String> {
        subscriptions
            .get(m)
            .and_then(|s| s.rack_id.clone())
            .filter(|r| !r.is_empty())
    };
    let mut states: Vec<RangeTopic> = Vec::new();
    for (topic, racks) in partitions {
        if racks.is_empty() {
            continue;
        }
        let mut members: Vec<&str> = subscriptions
            .iter()
            .filter(|(_, s)| s.topics.iter().any(|t| t == topic))
            .map(|(m, _)| m.as_str())
            .collect();
        member_order(subscriptions, &mut members);
        let consumers: Vec<(String, Option<String>)> = members
            .iter()
            .map(|m| (m.to_string(), rack_of(m)))
            .collect();
        let n = consumers.len() as i64;
        let count = racks.len() as i64;
        let consumer_racks: BTreeSet<&str> =
            consumers.iter().filter_map(|(_, r)| r.as_deref()).collect();
        let (partition_racks, needs_rack_aware) = if consumer_racks.is_empty() {
            (Vec::new(), false)
        } else {
            let all: BTreeSet<String> = racks.iter().flatten().cloned().collect();
            let needs = use_rack_aware(&consumer_racks, &all, racks);
            (racks.clone(), needs)
        };
        states.push(RangeTopic {
            topic: topic.clone(),
            assigned: consumers.iter().map(|(c, _)| (c.clone(), 0)).collect(),
            consumers,
            unassigned: (0..count as i32).collect(),
            per_consumer: if n == 0 { 0 } else { count / n },
            with_extra: if n == 0 { 0 } else { count % n },
            partition_racks,
            needs_rack_aware,
        });
    }
    if states.iter().any(|s| s.needs_rack_aware) {
        // Topics with the same members and partition count are
        // co-partitioned: their partition p goes to the same member.
        let mut groups: BTreeMap<(RackedMembers, usize), Vec<usize>> = BTreeMap::new();
        for (i, s) in states.iter().enumerate() {
            groups
                .entry((s.consumers.clone(), s.partition_racks.len()))
                .or_default()
                .push(i);
        }
        for ((consumers, num_partitions), idx) in groups {
            if idx.len() > 1 {
                let mut remaining: Vec<String> = consumers.into_iter().map(|(c, _)| c).collect();
                for p in 0..num_partitions as i32 {
                    let found = remaining.iter().position(|c| {
                        idx.iter().all(|&i| {
                            states[i].racks_match(c, p) && states[i].max_assignable(c) > 0
                        })
                    });
                    if let Some(pos) = found {
                        let c = remaining[pos].clone();
                        for &i in &idx {
                            states[i].assign(&c, vec![p], &mut out);
                        }
                        if idx.iter().all(|&i| states[i].max_assignable(&c) == 0) {
                            remaining.remove(pos);
                            if remaining.is_empty() {
                                break;
                            }
                        }
                    }
                }
            } else if let Some(&i) = idx.first() {
                if states[i].needs_rack_aware {
                    states[i].assign_ranges(true, &mut out);
                }
            }
        }
    }
    for s in states.iter_mut() {
        s.assign_ranges(false, &mut out);
    }
    out
}

impl PartitionAssignor for RangeAssignor {
    fn name(&self) -> &str {
        "range"
    }

    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        subscriptions: &BTreeMap<String, Subscription>,
    ) -> Result<BTreeMap<String, Assignment>, AssignorError> {
        let racks: PartitionRacks = partitions_per_topic
            .iter()
            .map(|(t, c)| (t.clone(), vec![BTreeSet::new(); (*c).max(0) as usize]))
            .collect();
        self.assign_with_racks(&racks, subscriptions)
    }

    fn assign_with_racks(
        &self,
        partitions: &PartitionRacks,
        subscriptions: &BTreeMap<String, Subscription>,
    ) -> Result<BTreeMap<String, Assignment>, AssignorError> {
        Ok(finish(range_assign(partitions, subscriptions)))
    }
}

// ---------------------------------------------------------------------------
// roundrobin
// ---------------------------------------------------------------------------

/// Java's `RoundRobinAssignor` (`roundrobin`).
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundRobinAssignor;

impl PartitionAssignor for RoundRobinAssignor {
    fn name(&self) -> &str {
        "roundrobin"
    }

    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        subscriptions: &BTreeMap<String, Subscription>,
    ) -> Result<BTreeMap<String, Assignment>, AssignorError> {
        let mut out = empty_assignment(subscriptions);
        let mut members: Vec<&str> = subscriptions.keys().map(String::as_str).collect();
        if members.is_empty() {
            return Ok(BTreeMap::new());
        }
        member_order(subscriptions, &mut members);
        let topics: BTreeSet<&str> = subscriptions
            .values()
            .flat_map(|s| s.topics.iter().map(String::as_str))
            .collect();
        let subscribed = |m: &str, t: &str| {
            subscriptions
                .get(m)
                .is_some_and(|s| s.topics.iter().any(|x| x == t))
        };
        // A circular iterator over the members: `next` is the one to peek.
        let mut next = 0usize;
        for topic in topics {
            let Some(&count) = partitions_per_topic.get(topic) else {
                continue;
            };
            for p in 0..count.max(0) {
                // Some member subscribes to the topic (it comes from a
                // subscription), so this finds one within a full turn.
                let mut tries = 0;
                while !subscribed(members[next], topic) && tries < members.len() {
                    next = (next + 1) % members.len();
                    tries += 1;
                }
                if let Some(v) = out.get_mut(members[next]) {
                    v.push((topic.to_string(), p));
                }
                next = (next + 1) % members.len();
            }
        }
        Ok(finish(out))
    }
}

// ---------------------------------------------------------------------------
// sticky and cooperative-sticky
// ---------------------------------------------------------------------------

/// What the sticky assignors learn of a member's previous assignment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct MemberData {
    partitions: Vec<TopicPartition>,
    generation: Option<i32>,
}

/// Writes Java's StickyAssignor user data (schema V1: `previous_assignment`
/// as [topic, [partition]], then `generation`).
pub fn encode_sticky_user_data(partitions: &[TopicPartition], generation: i32) -> Bytes {
    let mut buf = WriteBuf::new();
    let by_topic = group_by_topic(partitions);
    buf.put_i32(by_topic.len() as i32);
    for (t, ps) in by_topic {
        let name = t.as_bytes();
        let len = name.len().min(i16::MAX as usize);
        buf.put_i16(len as i16);
        buf.put_slice(&name[..len]);
        buf.put_i32(ps.len() as i32);
        for p in ps {
            buf.put_i32(p);
        }
    }
    buf.put_i32(generation);
    buf.into_bytes()
}

/// Reads Java's StickyAssignor user data (V1, or V0 without the generation).
/// `None` if it cannot be parsed (Java then ignores the previous assignment).
fn decode_sticky_user_data(data: &Bytes) -> Option<MemberData> {
    let mut b = data.clone();
    let topics = read_array(&mut b, false, "previous_assignment", |b| {
        let topic = read_string(b, false, "topic")?;
        let parts = read_array(b, false, "partitions", read_i32)?;
        Ok((topic, parts))
    })
    .ok()?;
    let generation = if b.remaining() >= 4 {
        Some(b.get_i32())
    } else {
        None
    };
    let partitions = topics
        .into_iter()
        .flat_map(|(t, ps)| ps.into_iter().map(move |p| (t.clone(), p)))
        .collect();
    Some(MemberData {
        partitions,
        generation,
    })
}

/// Java's CooperativeStickyAssignor user data: the generation as an i32.
fn encode_generation_user_data(generation: i32) -> Bytes {
    Bytes::copy_from_slice(&generation.to_be_bytes())
}

/// Member data for `sticky`: the owned partitions if the member reports
/// some (with its v2+ generation), else Java's StickyAssignor user data.
fn sticky_member_data(sub: &Subscription) -> MemberData {
    if !sub.owned_partitions.is_empty() {
        return MemberData {
            partitions: sub.owned_partitions.clone(),
            generation: sub.generation_id,
        };
    }
    match &sub.user_data {
        Some(u) if !u.is_empty() => decode_sticky_user_data(u).unwrap_or(MemberData {
            partitions: Vec::new(),
            generation: Some(DEFAULT_GENERATION),
        }),
        _ => MemberData::default(),
    }
}

/// Member data for `cooperative-sticky`: the owned partitions, with the
/// generation from the subscription (v2+) or from the user data.
fn cooperative_member_data(sub: &Subscription) -> MemberData {
    let generation = match sub.generation_id {
        Some(g) => Some(g),
        None => sub.user_data.as_ref().map(|u| {
            if u.len() >= 4 {
                i32::from_be_bytes([u[0], u[1], u[2], u[3]])
            } else {
                DEFAULT_GENERATION
            }
        }),
    };
    MemberData {
        partitions: sub.owned_partitions.clone(),
        generation,
    }
}

/// The sticky assignment (Java's AbstractStickyAssignor). Returns each
/// member's partitions.
fn sticky_assign(
    partitions_per_topic: &BTreeMap<String, i32>,
    subscriptions: &BTreeMap<String, Subscription>,
    member_data: fn(&Subscription) -> MemberData,
) -> Result<BTreeMap<String, Vec<TopicPartition>>, AssignorError> {
    // Only topics someone subscribes to (Java builds partitionsPerTopic so).
    let subscribed: BTreeSet<&str> = subscriptions
        .values()
        .flat_map(|s| s.topics.iter().map(String::as_str))
        .collect();
    let topics: BTreeMap<&str, i32> = partitions_per_topic
        .iter()
        .filter(|(t, c)| **c > 0 && subscribed.contains(t.as_str()))
        .map(|(t, c)| (t.as_str(), *c))
        .collect();
    let exists = |tp: &TopicPartition| {
        topics
            .get(tp.0.as_str())
            .is_some_and(|c| tp.1 >= 0 && tp.1 < *c)
    };

    // Previous owners: on conflicting claims the higher generation wins; a
    // tie invalidates the partition for both (Java's allSubscriptionsEqual).
    let mut owned: BTreeMap<String, Vec<TopicPartition>> = BTreeMap::new();
    let mut owner_of: HashMap<TopicPartition, (String, i32)> = HashMap::new();
    let mut multiple_owners: BTreeSet<TopicPartition> = BTreeSet::new();
    let mut datas: Vec<(&String, MemberData)> = Vec::new();
    let mut first_topics: Option<BTreeSet<&str>> = None;
    let mut all_equal = true;
    for (member, sub) in subscriptions {
        let mine: BTreeSet<&str> = sub.topics.iter().map(String::as_str).collect();
        match &first_topics {
            None => first_topics = Some(mine),
            Some(f) => all_equal &= *f == mine,
        }
        let data = member_data(sub);
        datas.push((member, data.clone()));
        let generation = data.generation.unwrap_or(DEFAULT_GENERATION);
        owned.insert(member.clone(), Vec::new());
        let mut seen = BTreeSet::new();
        for tp in data.partitions {
            if !exists(&tp) || !seen.insert(tp.clone()) {
                continue;
            }
            match owner_of.get(&tp).cloned() {
                None => {
                    owner_of.insert(tp.clone(), (member.clone(), generation));
                    if let Some(v) = owned.get_mut(member) {
                        v.push(tp);
                    }
                }
                Some((other, other_gen)) => {
                    if generation == other_gen {
                        tracing::error!(partition = ?tp, %member, %other, generation,
                            "two members claim a partition in the same generation; ignoring both claims");
                        multiple_owners.insert(tp.clone());
                        if let Some(v) = owned.get_mut(&other) {
                            v.retain(|x| *x != tp);
                        }
                        owner_of.insert(tp, (member.clone(), generation));
                    } else if generation > other_gen {
                        if let Some(v) = owned.get_mut(&other) {
                            v.retain(|x| *x != tp);
                        }
                        owner_of.insert(tp.clone(), (member.clone(), generation));
                        if let Some(v) = owned.get_mut(member) {
                            v.push(tp);
                        }
                    }
                }
            }
        }
    }
    for tp in &multiple_owners {
        for v in owned.values_mut() {
            v.retain(|x| x != tp);
        }
    }

    if subscriptions.is_empty() {
        return Ok(BTreeMap::new());
    }
    if all_equal {
        return constrained_assign(&topics, owned);
    }
    // Previous owners of an older generation: the balancing moves a
    // partition back to them first (Java's prepopulateCurrentAssignments).
    let max_generation = datas
        .iter()
        .filter_map(|(_, d)| d.generation)
        .fold(DEFAULT_GENERATION, i32::max);
    let mut prev: HashMap<TopicPartition, (String, i32)> = HashMap::new();
    for (member, data) in datas {
        let generation = match data.generation {
            Some(g) if g < max_generation => g,
            None if max_generation > DEFAULT_GENERATION => DEFAULT_GENERATION,
            _ => continue,
        };
        for p in data.partitions {
            match prev.get(&p) {
                Some((_, g)) if *g >= generation => {}
                _ => {
                    prev.insert(p, (member.clone(), generation));
                }
            }
        }
    }
    Ok(general_assign(&topics, subscriptions, owned, prev))
}

/// Java's ConstrainedAssignmentBuilder (all members subscribe to the same
/// topics), without racks. Members are visited in member id order where
/// Java visits them in hash order.
fn constrained_assign(
    topics: &BTreeMap<&str, i32>,
    owned: BTreeMap<String, Vec<TopicPartition>>,
) -> Result<BTreeMap<String, Vec<TopicPartition>>, AssignorError> {
    let total: usize = topics.values().map(|c| *c as usize).sum();
    let members = owned.len();
    let min_quota = total / members;
    let max_quota = total.div_ceil(members);
    let expected_over_min = total % members;
    let mut current_over_min = 0usize;
    let mut under_min: Vec<String> = Vec::new();
    let mut exactly_min: VecDeque<String> = VecDeque::new();
    let mut assignment: BTreeMap<String, Vec<TopicPartition>> = BTreeMap::new();
    let mut assigned: BTreeSet<TopicPartition> = BTreeSet::new();

    for (member, mut parts) in owned {
        // Java sorts owned partitions by partition, then topic.
        parts.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        let mine = assignment.entry(member.clone()).or_default();
        if parts.len() < min_quota {
            assigned.extend(parts.iter().cloned());
            mine.extend(parts);
            under_min.push(member);
        } else if parts.len() >= max_quota && current_over_min < expected_over_min {
            current_over_min += 1;
            if current_over_min == expected_over_min {
                exactly_min.clear();
            }
            parts.truncate(max_quota);
            assigned.extend(parts.iter().cloned());
            mine.extend(parts);
        } else {
            parts.truncate(min_quota);
            assigned.extend(parts.iter().cloned());
            mine.extend(parts);
            if current_over_min < expected_over_min {
                exactly_min.push_back(member);
            }
        }
    }

    let unassigned: Vec<TopicPartition> = topics
        .iter()
        .flat_map(|(t, c)| (0..*c).map(move |p| (t.to_string(), p)))
        .filter(|tp| !assigned.contains(tp))
        .collect();
    under_min.sort();
    exactly_min.make_contiguous().sort();

    // Round robin over the members under the minimum quota, then the ones
    // at exactly the minimum that may still take one more.
    let mut idx = 0usize;
    for tp in unassigned {
        let member = if idx < under_min.len() {
            idx += 1;
            under_min[idx - 1].clone()
        } else if under_min.is_empty() {
            match exactly_min.pop_front() {
                Some(m) => m,
                None => {
                    return Err(AssignorError::Failed {
                        assignor: "sticky".into(),
                        reason: "no member left to take the remaining partitions".into(),
                    })
                }
            }
        } else {
            idx = 1;
            under_min[0].clone()
        };
        let mine = assignment.entry(member.clone()).or_default();
        mine.push(tp);
        let count = mine.len();
        if count == min_quota && idx > 0 && under_min.get(idx - 1) == Some(&member) {
            under_min.remove(idx - 1);
            idx -= 1;
            exactly_min.push_back(member);
        }
    }
    Ok(assignment)
}

/// Java's PartitionMovements: the moves made while balancing, to move a
/// partition back rather than create a cycle between two members.
#[derive(Default)]
struct PartitionMovements {
    by_topic: HashMap<String, HashMap<(String, String), BTreeSet<TopicPartition>>>,
    moves: HashMap<TopicPartition, (String, String)>,
}

impl PartitionMovements {
    fn remove_record(&mut self, p: &TopicPartition) -> Option<(String, String)> {
        let pair = self.moves.remove(p)?;
        if let Some(t) = self.by_topic.get_mut(&p.0) {
            if let Some(set) = t.get_mut(&pair) {
                set.remove(p);
                if set.is_empty() {
                    t.remove(&pair);
                }
            }
            if t.is_empty() {
                self.by_topic.remove(&p.0);
            }
        }
        Some(pair)
    }

    fn add_record(&mut self, p: TopicPartition, pair: (String, String)) {
        self.by_topic
            .entry(p.0.clone())
            .or_default()
            .entry(pair.clone())
            .or_default()
            .insert(p.clone());
        self.moves.insert(p, pair);
    }

    fn move_partition(&mut self, p: &TopicPartition, old: &str, new: &str) {
        if self.moves.contains_key(p) {
            if let Some((src, _)) = self.remove_record(p) {
                if src != new {
                    self.add_record(p.clone(), (src, new.to_string()));
                }
            }
        } else {
            self.add_record(p.clone(), (old.to_string(), new.to_string()));
        }
    }

    fn partition_to_move(&self, p: &TopicPartition, old: &str, new: &str) -> TopicPartition {
        let Some(topic) = self.by_topic.get(&p.0) else {
            return p.clone();
        };
        let old = match self.moves.get(p) {
            Some((src, _)) => src.as_str(),
            None => old,
        };
        match topic.get(&(new.to_string(), old.to_string())) {
            Some(set) => set.iter().next().cloned().unwrap_or_else(|| p.clone()),
            None => p.clone(),
        }
    }
}

/// Java's GeneralAssignmentBuilder (members subscribe to different topics),
/// without racks: keep owned partitions, give each unassigned partition to
/// the least loaded eligible member, then move partitions (preferring their
/// previous owner of an older generation) until balanced, keeping the
/// result only if it is better balanced than before the moves.
struct GeneralBuilder<'a> {
    topics: &'a BTreeMap<&'a str, i32>,
    topic_consumers: BTreeMap<String, Vec<String>>,
    consumer_topics: BTreeMap<String, Vec<String>>,
    current: BTreeMap<String, Vec<TopicPartition>>,
    owner: HashMap<TopicPartition, String>,
    /// Members by (number of partitions, member id).
    sorted: BTreeSet<(usize, String)>,
    movements: PartitionMovements,
    total: usize,
}

impl GeneralBuilder<'_> {
    fn size(&self, m: &str) -> usize {
        self.current.get(m).map_or(0, Vec::len)
    }

    fn max_size(&self, m: &str) -> usize {
        let ts = self.consumer_topics.get(m).map_or(&[][..], Vec::as_slice);
        if ts.len() == self.topics.len() {
            return self.total;
        }
        ts.iter()
            .map(|t| self.topics.get(t.as_str()).map_or(0, |c| *c as usize))
            .sum()
    }

    fn subscribes(&self, m: &str, topic: &str) -> bool {
        self.consumer_topics
            .get(m)
            .is_some_and(|ts| ts.iter().any(|t| t == topic))
    }

    fn is_balanced(&self) -> bool {
        let (Some(first), Some(last)) = (self.sorted.first(), self.sorted.last()) else {
            return true;
        };
        if first.0 + 1 >= last.0 {
            return true;
        }
        for (count, c) in &self.sorted {
            if *count == self.max_size(c) {
                continue;
            }
            let mine = &self.current[c];
            for t in self.consumer_topics.get(c).into_iter().flatten() {
                let n = self.topics.get(t.as_str()).copied().unwrap_or(0);
                for p in 0..n {
                    let tp = (t.clone(), p);
                    if mine.contains(&tp) {
                        continue;
                    }
                    if let Some(other) = self.owner.get(&tp) {
                        if self.current.contains_key(other) && count + 1 < self.size(other) {
                            return false;
                        }
                    }
                }
            }
        }
        true
    }

    fn score(assignment: &BTreeMap<String, Vec<TopicPartition>>) -> usize {
        let sizes: Vec<usize> = assignment.values().map(Vec::len).collect();
        let mut score = 0;
        for i in 0..sizes.len() {
            for j in i + 1..sizes.len() {
                score += sizes[i].abs_diff(sizes[j]);
            }
        }
        score
    }

    fn give(&mut self, p: TopicPartition, to: &str) {
        self.sorted.remove(&(self.size(to), to.to_string()));
        self.current
            .entry(to.to_string())
            .or_default()
            .push(p.clone());
        self.owner.insert(p, to.to_string());
        self.sorted.insert((self.size(to), to.to_string()));
    }

    fn process_move(&mut self, p: &TopicPartition, new: &str) {
        let Some(old) = self.owner.get(p).cloned() else {
            return;
        };
        self.sorted.remove(&(self.size(&old), old.clone()));
        self.sorted.remove(&(self.size(new), new.to_string()));
        self.movements.move_partition(p, &old, new);
        if let Some(v) = self.current.get_mut(&old) {
            v.retain(|x| x != p);
        }
        self.current
            .entry(new.to_string())
            .or_default()
            .push(p.clone());
        self.owner.insert(p.clone(), new.to_string());
        self.sorted.insert((self.size(new), new.to_string()));
        self.sorted.insert((self.size(&old), old));
    }

    fn reassign_to(&mut self, p: &TopicPartition, new: &str) {
        let Some(old) = self.owner.get(p).cloned() else {
            return;
        };
        let actual = self.movements.partition_to_move(p, &old, new);
        self.process_move(&actual, new);
    }

    /// To the least loaded member subscribed to the topic.
    fn reassign(&mut self, p: &TopicPartition) {
        let new = self
            .sorted
            .iter()
            .find(|(_, m)| self.subscribes(m, &p.0))
            .map(|(_, m)| m.clone());
        if let Some(new) = new {
            self.reassign_to(p, &new);
        }
    }

    fn perform_reassignments(
        &mut self,
        partitions: &[TopicPartition],
        prev: &HashMap<TopicPartition, (String, i32)>,
    ) -> bool {
        let mut performed = false;
        loop {
            let mut modified = false;
            for p in partitions {
                if self.is_balanced() {
                    break;
                }
                let Some(consumer) = self.owner.get(p).cloned() else {
                    continue;
                };
                if !self.current.contains_key(&consumer) {
                    continue;
                }
                if let Some((prev_owner, _)) = prev.get(p) {
                    if self.current.contains_key(prev_owner)
                        && self.size(&consumer) > self.size(prev_owner) + 1
                    {
                        let prev_owner = prev_owner.clone();
                        self.reassign_to(p, &prev_owner);
                        performed = true;
                        modified = true;
                        continue;
                    }
                }
                let others = self.topic_consumers.get(&p.0).cloned().unwrap_or_default();
                if others.iter().any(|o| {
                    self.current.contains_key(o) && self.size(&consumer) > self.size(o) + 1
                }) {
                    self.reassign(p);
                    performed = true;
                    modified = true;
                }
            }
            if !modified {
                return performed;
            }
        }
    }
}

fn general_assign(
    topics: &BTreeMap<&str, i32>,
    subscriptions: &BTreeMap<String, Subscription>,
    owned: BTreeMap<String, Vec<TopicPartition>>,
    prev: HashMap<TopicPartition, (String, i32)>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut topic_consumers: BTreeMap<String, Vec<String>> =
        topics.keys().map(|t| (t.to_string(), Vec::new())).collect();
    let mut consumer_topics: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (m, s) in subscriptions {
        let mut mine = Vec::new();
        for t in &s.topics {
            if let Some(cs) = topic_consumers.get_mut(t) {
                if !cs.contains(m) {
                    cs.push(m.clone());
                    mine.push(t.clone());
                }
            }
        }
        consumer_topics.insert(m.clone(), mine);
    }
    // Topics by number of potential members, then name.
    let mut sorted_topics: Vec<&String> = topic_consumers.keys().collect();
    sorted_topics.sort_by_key(|t| (topic_consumers[*t].len(), (*t).clone()));
    let mut all_partitions: Vec<TopicPartition> = sorted_topics
        .iter()
        .flat_map(|t| (0..topics[t.as_str()]).map(move |p| ((*t).clone(), p)))
        .collect();

    let mut b = GeneralBuilder {
        topics,
        topic_consumers,
        consumer_topics,
        current: BTreeMap::new(),
        owner: HashMap::new(),
        sorted: BTreeSet::new(),
        movements: PartitionMovements::default(),
        total: topics.values().map(|c| *c as usize).sum(),
    };
    // Keep the owned partitions the member still subscribes to.
    let mut revocation_required = false;
    let mut assigned: BTreeSet<TopicPartition> = BTreeSet::new();
    for (m, parts) in owned {
        let mut keep = Vec::new();
        for p in parts {
            if !b.topic_consumers.contains_key(&p.0) {
                continue;
            }
            if !b.subscribes(&m, &p.0) {
                revocation_required = true;
                continue;
            }
            b.owner.insert(p.clone(), m.clone());
            assigned.insert(p.clone());
            keep.push(p);
        }
        b.current.insert(m, keep);
    }
    for m in subscriptions.keys() {
        b.current.entry(m.clone()).or_default();
    }
    let mut unassigned: Vec<TopicPartition> = all_partitions
        .iter()
        .filter(|p| !assigned.contains(*p))
        .cloned()
        .collect();
    b.sorted = b
        .current
        .iter()
        .map(|(m, v)| (v.len(), m.clone()))
        .collect();

    let initializing = b.sorted.last().is_none_or(|(_, m)| b.current[m].is_empty());
    for p in &unassigned {
        let to = b
            .sorted
            .iter()
            .find(|(_, m)| b.subscribes(m, &p.0))
            .map(|(_, m)| m.clone());
        if let Some(to) = to {
            b.give(p.clone(), &to);
        }
    }
    // Partitions of topics only one member can take never move.
    let fixed: BTreeSet<String> = b
        .topic_consumers
        .iter()
        .filter(|(_, cs)| cs.len() < 2)
        .map(|(t, _)| t.clone())
        .collect();
    all_partitions.retain(|p| !fixed.contains(&p.0));
    unassigned.retain(|p| !fixed.contains(&p.0));
    // Members that cannot take part in moves are set aside.
    let mut fixed_assignments: BTreeMap<String, Vec<TopicPartition>> = BTreeMap::new();
    let members: Vec<String> = b.consumer_topics.keys().cloned().collect();
    for m in members {
        let size = b.size(&m);
        let can = size < b.max_size(&m)
            || b.current[&m]
                .iter()
                .any(|p| b.topic_consumers.get(&p.0).is_some_and(|cs| cs.len() >= 2));
        if !can {
            b.sorted.remove(&(size, m.clone()));
            if let Some(v) = b.current.remove(&m) {
                fixed_assignments.insert(m, v);
            }
        }
    }
    let pre_balance = b.current.clone();
    let pre_owner = b.owner.clone();
    if !revocation_required {
        b.perform_reassignments(&unassigned, &prev);
    }
    let performed = b.perform_reassignments(&all_partitions, &prev);
    if !initializing
        && performed
        && GeneralBuilder::score(&b.current) >= GeneralBuilder::score(&pre_balance)
    {
        b.current = pre_balance;
        b.owner = pre_owner;
    }
    b.current.extend(fixed_assignments);
    b.current
}

/// Java's `StickyAssignor` (`sticky`, EAGER only).
#[derive(Debug, Clone, Copy, Default)]
pub struct StickyAssignor;

impl PartitionAssignor for StickyAssignor {
    fn name(&self) -> &str {
        "sticky"
    }

    fn subscription_user_data(&self, ctx: &UserDataContext) -> Option<Bytes> {
        let prev = ctx.previous_assignment.as_ref()?;
        Some(encode_sticky_user_data(prev, ctx.generation))
    }

    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        subscriptions: &BTreeMap<String, Subscription>,
    ) -> Result<BTreeMap<String, Assignment>, AssignorError> {
        let mut out = empty_assignment(subscriptions);
        out.extend(sticky_assign(
            partitions_per_topic,
            subscriptions,
            sticky_member_data,
        )?);
        Ok(finish(out))
    }
}

/// Java's `CooperativeStickyAssignor` (`cooperative-sticky`, COOPERATIVE
/// and EAGER).
#[derive(Debug, Clone, Copy, Default)]
pub struct CooperativeStickyAssignor;

impl PartitionAssignor for CooperativeStickyAssignor {
    fn name(&self) -> &str {
        "cooperative-sticky"
    }

    fn supported_protocols(&self) -> Vec<RebalanceProtocol> {
        vec![RebalanceProtocol::Cooperative, RebalanceProtocol::Eager]
    }

    fn subscription_user_data(&self, ctx: &UserDataContext) -> Option<Bytes> {
        Some(encode_generation_user_data(ctx.generation))
    }

    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        subscriptions: &BTreeMap<String, Subscription>,
    ) -> Result<BTreeMap<String, Assignment>, AssignorError> {
        let mut out = empty_assignment(subscriptions);
        out.extend(sticky_assign(
            partitions_per_topic,
            subscriptions,
            cooperative_member_data,
        )?);
        // KIP-429: a partition another member still owns is not given to
        // its new owner now; the owner revokes it and it is assigned in the
        // follow-up rebalance.
        let mut owners: HashMap<&TopicPartition, Vec<&str>> = HashMap::new();
        for (m, s) in subscriptions {
            for tp in &s.owned_partitions {
                owners.entry(tp).or_default().push(m.as_str());
            }
        }
        for (m, parts) in out.iter_mut() {
            parts.retain(|tp| {
                owners
                    .get(tp)
                    .is_none_or(|os| os.iter().all(|o| *o == m.as_str()))
            });
        }
        Ok(finish(out))
    }
}

#[cfg(test)]
mod tests;
