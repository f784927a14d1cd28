//! KIP-848 consumer groups (ConsumerGroupHeartbeat), after Kafka's `ConsumerGroup`,
//! `GroupMetadataManager.consumerGroupHeartbeat` and `CurrentAssignmentBuilder`.
//!
//! * The group epoch is bumped by every change of membership, subscriptions or partition
//!   counts of subscribed topics; the target assignment is recomputed by the server-side
//!   assignor when the group epoch is ahead of the assignment epoch.
//! * Each member reconciles towards its target: partitions it must give up are revoked first
//!   (it keeps its epoch and stays `UnrevokedPartitions` until a heartbeat shows it no longer
//!   owns them); only then does it move to the target epoch and receive new partitions, and
//!   only those no other member still owns (assigned or pending revocation). A partition is
//!   therefore never owned by two members.
//! * A member that does not heartbeat within `group.consumer.session.timeout.ms`, or does not
//!   revoke within its rebalance timeout, is removed.
//!
//! Membership is kept in memory only (committed offsets are persisted): after a restart,
//! members get UNKNOWN_MEMBER_ID and join again with epoch 0.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use eddy_protocol::error_code::ErrorCode;
use tokio::time::{Duration, Instant};

use super::assignor::{self, MemberSpec, Parts};

pub const LEAVE_GROUP_EPOCH: i32 = -1;
pub const LEAVE_GROUP_STATIC_EPOCH: i32 = -2;

/// Broker settings of consumer groups.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    pub heartbeat_interval_ms: i32,
    pub session_timeout_ms: i32,
    pub max_size: usize,
    /// Short names (`uniform`, `range`), the first is the default.
    pub assignors: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    Stable,
    UnrevokedPartitions,
    UnreleasedPartitions,
}

/// A member of a consumer group.
#[derive(Debug, Clone)]
pub struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed: BTreeSet<String>,
    pub server_assignor: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub epoch: i32,
    pub previous_epoch: i32,
    pub state: MemberState,
    pub assigned: Parts,
    pub pending_revocation: Parts,
    pub deadline: Instant,
    pub revocation_deadline: Option<Instant>,
    last_sent: Option<Parts>,
}

/// A ConsumerGroupHeartbeat as the state machine sees it.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatInput {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub server_assignor: Option<String>,
    /// Owned partitions (null when unchanged since the last heartbeat).
    pub owned: Option<Parts>,
    pub client_id: String,
    pub client_host: String,
}

/// What the member is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatOutput {
    pub member_id: String,
    pub member_epoch: i32,
    /// Sent when it changed, when the member joins, and on full requests.
    pub assignment: Option<Parts>,
}

/// A consumer group.
pub struct ConsumerGroup {
    pub group_id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    /// Target assignment per member.
    pub target: BTreeMap<String, Parts>,
    /// Partition counts of the subscribed topics when the target was computed.
    pub subscription_metadata: BTreeMap<String, i32>,
    static_members: HashMap<String, String>,
    pub empty_since_ms: i64,
    pub assignor_name: String,
}

fn count(p: &Parts) -> usize {
    p.values().map(BTreeSet::len).sum()
}

fn is_subset(a: &Parts, b: &Parts) -> bool {
    a.iter()
        .all(|(t, ps)| ps.is_empty() || b.get(t).is_some_and(|bs| ps.is_subset(bs)))
}

fn intersects(a: &Parts, b: &Parts) -> bool {
    a.iter()
        .any(|(t, ps)| b.get(t).is_some_and(|bs| !ps.is_disjoint(bs)))
}

fn normalize(mut p: Parts) -> Parts {
    p.retain(|_, ps| !ps.is_empty());
    p
}

pub fn new_member_id() -> String {
    let u = eddy_protocol::codec::Uuid::random();
    u.to_string()
}

impl ConsumerGroup {
    pub fn new(group_id: &str, now_ms: i64) -> Self {
        ConsumerGroup {
            group_id: group_id.to_string(),
            group_epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            subscription_metadata: BTreeMap::new(),
            static_members: HashMap::new(),
            empty_since_ms: now_ms,
            assignor_name: String::new(),
        }
    }

    /// Kafka's consumer group states.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.group_epoch > self.assignment_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch || m.state != MemberState::Stable)
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    pub fn subscribed_topics(&self) -> HashSet<String> {
        self.members
            .values()
            .flat_map(|m| m.subscribed.iter().cloned())
            .collect()
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.members
            .values()
            .flat_map(|m| std::iter::once(m.deadline).chain(m.revocation_deadline))
            .min()
    }

    fn remove_member(&mut self, id: &str, now_ms: i64) {
        if let Some(m) = self.members.remove(id) {
            if let Some(i) = &m.instance_id {
                if self.static_members.get(i).map(String::as_str) == Some(id) {
                    self.static_members.remove(i);
                }
            }
        }
        self.target.remove(id);
        self.group_epoch += 1;
        if self.members.is_empty() {
            self.empty_since_ms = now_ms;
        }
    }

    /// Removes members whose session or revocation deadline passed.
    pub fn tick(&mut self, now: Instant, now_ms: i64) {
        let expired: Vec<(String, &'static str)> = self
            .members
            .values()
            .filter_map(|m| {
                if m.deadline <= now {
                    Some((m.id.clone(), "session timed out"))
                } else if m.revocation_deadline.is_some_and(|d| d <= now) {
                    Some((
                        m.id.clone(),
                        "did not revoke its partitions within the rebalance timeout",
                    ))
                } else {
                    None
                }
            })
            .collect();
        for (id, why) in expired {
            tracing::info!(group = %self.group_id, member = %id, "removing member: {why}");
            self.remove_member(&id, now_ms);
        }
    }

    /// OffsetCommit of a KIP-848 group: `generation` is the member epoch; members must use
    /// OffsetCommit v9+.
    pub fn validate_offset_commit(
        &self,
        member_id: &str,
        epoch: i32,
        api_version: i16,
    ) -> Result<(), ErrorCode> {
        if epoch < 0 && self.members.is_empty() {
            return Ok(());
        }
        let m = self
            .members
            .get(member_id)
            .ok_or(ErrorCode::UnknownMemberId)?;
        if api_version < 9 {
            return Err(ErrorCode::UnsupportedVersion);
        }
        if m.epoch != epoch {
            return Err(ErrorCode::StaleMemberEpoch);
        }
        Ok(())
    }

    /// OffsetFetch v9+ with a member id and epoch.
    pub fn validate_offset_fetch(&self, member_id: &str, epoch: i32) -> Result<(), ErrorCode> {
        if epoch < 0 {
            return Ok(());
        }
        let m = self
            .members
            .get(member_id)
            .ok_or(ErrorCode::UnknownMemberId)?;
        if m.epoch != epoch {
            return Err(ErrorCode::StaleMemberEpoch);
        }
        Ok(())
    }

    /// The assignor to use: the one most members ask for, else the configured default.
    fn preferred_assignor(&self, cfg: &ConsumerSettings) -> String {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = &m.server_assignor {
                *votes.entry(assignor::short_name(a)).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|(_, c)| *c)
            .map(|(a, _)| a.to_string())
            .or_else(|| cfg.assignors.first().cloned())
            .unwrap_or_else(|| "uniform".to_string())
    }

    fn compute_target(&mut self, cfg: &ConsumerSettings) {
        let name = self.preferred_assignor(cfg);
        let specs: Vec<MemberSpec> = self
            .members
            .values()
            .map(|m| MemberSpec {
                id: m.id.clone(),
                subscribed: m.subscribed.clone(),
                current: self.target.get(&m.id).cloned().unwrap_or_default(),
            })
            .collect();
        self.target = assignor::assign(&name, &specs, &self.subscription_metadata);
        self.assignment_epoch = self.group_epoch;
        tracing::info!(
            group = %self.group_id,
            epoch = self.group_epoch,
            assignor = %name,
            members = self.members.len(),
            "computed a new target assignment"
        );
        self.assignor_name = name;
    }

    /// Partitions owned (assigned or pending revocation) by members other than `id`.
    fn owned_by_others(&self, id: &str) -> HashSet<(String, i32)> {
        let mut out = HashSet::new();
        for m in self.members.values().filter(|m| m.id != id) {
            for (t, ps) in m.assigned.iter().chain(m.pending_revocation.iter()) {
                for p in ps {
                    out.insert((t.clone(), *p));
                }
            }
        }
        out
    }

    /// Moves a member towards its target assignment (`CurrentAssignmentBuilder`).
    fn reconcile(&mut self, id: &str, owned: Option<&Parts>) {
        let Some(m) = self.members.get(id) else {
            return;
        };
        let target_epoch = self.assignment_epoch;
        let owns_revoked = |pending: &Parts| owned.is_none_or(|o| intersects(o, pending));
        let base_epoch = match m.state {
            MemberState::Stable if m.epoch == target_epoch => return,
            MemberState::Stable | MemberState::UnreleasedPartitions => m.epoch,
            MemberState::UnrevokedPartitions => {
                if owns_revoked(&m.pending_revocation) {
                    return;
                }
                (m.epoch + 1).min(target_epoch)
            }
        };
        let target = self.target.get(id).cloned().unwrap_or_default();
        let others = self.owned_by_others(id);
        let current = m.assigned.clone();
        let mut kept = Parts::new();
        let mut revoke = Parts::new();
        let mut assignable = Parts::new();
        let mut unreleased = false;
        let topics: BTreeSet<&String> = target.keys().chain(current.keys()).collect();
        for t in topics {
            let tgt = target.get(t).cloned().unwrap_or_default();
            let cur = current.get(t).cloned().unwrap_or_default();
            kept.insert(t.clone(), cur.intersection(&tgt).copied().collect());
            revoke.insert(t.clone(), cur.difference(&tgt).copied().collect());
            let mut add: BTreeSet<i32> = tgt.difference(&cur).copied().collect();
            let before = add.len();
            add.retain(|p| !others.contains(&(t.clone(), *p)));
            unreleased |= add.len() != before;
            assignable.insert(t.clone(), add);
        }
        let (kept, revoke, assignable) =
            (normalize(kept), normalize(revoke), normalize(assignable));
        let Some(m) = self.members.get_mut(id) else {
            return;
        };
        if !revoke.is_empty() && owns_revoked(&revoke) {
            m.state = MemberState::UnrevokedPartitions;
            m.assigned = kept;
            m.pending_revocation = revoke;
            return;
        }
        let mut assigned = kept;
        for (t, ps) in assignable {
            assigned.entry(t).or_default().extend(ps);
        }
        m.previous_epoch = base_epoch;
        m.epoch = target_epoch;
        m.state = if unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
        m.assigned = assigned;
        m.pending_revocation = Parts::new();
    }

    /// ConsumerGroupHeartbeat. `partitions_of` gives the partition count of an existing topic.
    pub fn heartbeat(
        &mut self,
        req: HeartbeatInput,
        partitions_of: &dyn Fn(&str) -> Option<i32>,
        now: Instant,
        now_ms: i64,
        cfg: &ConsumerSettings,
    ) -> Result<HeartbeatOutput, (ErrorCode, String)> {
        let epoch = req.member_epoch;
        if epoch == LEAVE_GROUP_EPOCH || epoch == LEAVE_GROUP_STATIC_EPOCH {
            let id = match (&req.instance_id, self.members.contains_key(&req.member_id)) {
                (_, true) => req.member_id.clone(),
                (Some(i), false) => self.static_members.get(i).cloned().ok_or_else(|| {
                    (
                        ErrorCode::UnknownMemberId,
                        format!("Unknown static member {i}."),
                    )
                })?,
                (None, false) => {
                    return Err((
                        ErrorCode::UnknownMemberId,
                        format!("Member {} is not a member of the group.", req.member_id),
                    ))
                }
            };
            tracing::info!(group = %self.group_id, member = %id, "member left the consumer group");
            self.remove_member(&id, now_ms);
            return Ok(HeartbeatOutput {
                member_id: req.member_id,
                member_epoch: epoch,
                assignment: None,
            });
        }
        let mut bump = false;
        if epoch == 0 {
            if let Some(i) = &req.instance_id {
                if let Some(old) = self.static_members.get(i).cloned() {
                    if old != req.member_id {
                        // The static member restarted under a new member id.
                        self.remove_member(&old, now_ms);
                    }
                }
            }
            let is_new = !self.members.contains_key(&req.member_id);
            if is_new && self.members.len() >= cfg.max_size {
                return Err((
                    ErrorCode::GroupMaxSizeReached,
                    format!(
                        "The consumer group has reached its maximum capacity of {} members.",
                        cfg.max_size
                    ),
                ));
            }
            let m = self
                .members
                .entry(req.member_id.clone())
                .or_insert_with(|| ConsumerMember {
                    id: req.member_id.clone(),
                    instance_id: None,
                    rack_id: None,
                    client_id: String::new(),
                    client_host: String::new(),
                    subscribed: BTreeSet::new(),
                    server_assignor: None,
                    rebalance_timeout_ms: req.rebalance_timeout_ms,
                    epoch: 0,
                    previous_epoch: 0,
                    state: MemberState::Stable,
                    assigned: Parts::new(),
                    pending_revocation: Parts::new(),
                    deadline: now,
                    revocation_deadline: None,
                    last_sent: None,
                });
            if !is_new {
                // A member joining again starts over.
                m.epoch = 0;
                m.previous_epoch = 0;
                m.state = MemberState::Stable;
                m.assigned = Parts::new();
                m.pending_revocation = Parts::new();
                m.revocation_deadline = None;
            }
            m.last_sent = None;
            bump = true;
            if let Some(i) = &req.instance_id {
                self.static_members.insert(i.clone(), req.member_id.clone());
            }
            tracing::info!(group = %self.group_id, member = %req.member_id, "member joined the consumer group");
        } else {
            let m = self.members.get(&req.member_id).ok_or_else(|| {
                (
                    ErrorCode::UnknownMemberId,
                    format!("Member {} is not a member of the group.", req.member_id),
                )
            })?;
            if epoch > m.epoch
                || (epoch < m.epoch
                    && (epoch != m.previous_epoch
                        || !req
                            .owned
                            .as_ref()
                            .is_some_and(|o| is_subset(o, &m.assigned))))
            {
                return Err((
                    ErrorCode::FencedMemberEpoch,
                    format!(
                        "The member epoch {epoch} of {} does not match the expected epoch {}.",
                        req.member_id, m.epoch
                    ),
                ));
            }
        }
        let Some(m) = self.members.get_mut(&req.member_id) else {
            return Err((ErrorCode::UnknownMemberId, String::new()));
        };
        if let Some(names) = &req.subscribed_topic_names {
            let set: BTreeSet<String> = names.iter().cloned().collect();
            if set != m.subscribed {
                m.subscribed = set;
                bump = true;
            }
        }
        if req.rebalance_timeout_ms >= 0 {
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        }
        if req.server_assignor.is_some() && req.server_assignor != m.server_assignor {
            m.server_assignor = req.server_assignor.clone();
            bump = true;
        }
        if req.instance_id.is_some() {
            m.instance_id = req.instance_id.clone();
        }
        if req.rack_id.is_some() {
            m.rack_id = req.rack_id.clone();
        }
        if !req.client_id.is_empty() {
            m.client_id = req.client_id.clone();
        }
        m.client_host = req.client_host.clone();
        m.deadline = now + Duration::from_millis(cfg.session_timeout_ms.max(0) as u64);
        // Partition counts of every subscribed topic.
        let metadata: BTreeMap<String, i32> = self
            .subscribed_topics()
            .into_iter()
            .filter_map(|t| partitions_of(&t).map(|c| (t, c)))
            .collect();
        if metadata != self.subscription_metadata {
            self.subscription_metadata = metadata;
            bump = true;
        }
        if bump {
            self.group_epoch += 1;
        }
        if self.group_epoch > self.assignment_epoch {
            self.compute_target(cfg);
        }
        self.reconcile(&req.member_id, req.owned.as_ref());
        let Some(m) = self.members.get_mut(&req.member_id) else {
            return Err((ErrorCode::UnknownMemberId, String::new()));
        };
        if m.state == MemberState::UnrevokedPartitions {
            if m.revocation_deadline.is_none() {
                m.revocation_deadline =
                    Some(now + Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64));
            }
        } else {
            m.revocation_deadline = None;
        }
        let full = req.rebalance_timeout_ms != -1
            && req.subscribed_topic_names.is_some()
            && req.owned.is_some();
        let changed = m.last_sent.as_ref() != Some(&m.assigned);
        let assignment = (epoch == 0 || full || changed).then(|| m.assigned.clone());
        if assignment.is_some() {
            m.last_sent = Some(m.assigned.clone());
        }
        Ok(HeartbeatOutput {
            member_id: m.id.clone(),
            member_epoch: m.epoch,
            assignment,
        })
    }

    /// Total partitions assigned to members (diagnostics, tests).
    pub fn assigned_count(&self) -> usize {
        self.members.values().map(|m| count(&m.assigned)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ConsumerSettings {
        ConsumerSettings {
            heartbeat_interval_ms: 5000,
            session_timeout_ms: 45_000,
            max_size: 100,
            assignors: vec!["uniform".into(), "range".into()],
        }
    }

    fn parts(t: &str, ps: &[i32]) -> Parts {
        let mut p = Parts::new();
        if !ps.is_empty() {
            p.insert(t.to_string(), ps.iter().copied().collect());
        }
        p
    }

    struct T {
        g: ConsumerGroup,
        t0: Instant,
    }

    impl T {
        fn hb(
            &mut self,
            id: &str,
            epoch: i32,
            owned: Option<Parts>,
            ms: u64,
        ) -> Result<HeartbeatOutput, ErrorCode> {
            let input = HeartbeatInput {
                member_id: id.into(),
                member_epoch: epoch,
                rebalance_timeout_ms: if epoch == 0 { 30_000 } else { -1 },
                subscribed_topic_names: (epoch == 0).then(|| vec!["t".to_string()]),
                owned: if epoch == 0 {
                    Some(Parts::new())
                } else {
                    owned
                },
                ..Default::default()
            };
            let topics = |t: &str| (t == "t").then_some(4);
            self.g
                .heartbeat(
                    input,
                    &topics,
                    self.t0 + Duration::from_millis(ms),
                    ms as i64,
                    &cfg(),
                )
                .map_err(|(c, _)| c)
        }
    }

    /// No partition is owned (assigned or pending revocation) by two members.
    fn check_exclusive(g: &ConsumerGroup) {
        let mut seen = HashSet::new();
        for m in g.members.values() {
            for (t, ps) in m.assigned.iter().chain(m.pending_revocation.iter()) {
                for p in ps {
                    assert!(
                        seen.insert((t.clone(), *p)),
                        "{t}-{p} owned twice: {:?}",
                        g.members
                    );
                }
            }
        }
    }

    #[test]
    fn join_reconcile_and_revocation_before_reassignment() {
        let mut t = T {
            g: ConsumerGroup::new("g", 0),
            t0: Instant::now(),
        };
        let a = t.hb("a", 0, None, 0).unwrap();
        assert_eq!(a.member_epoch, 1);
        assert_eq!(a.assignment, Some(parts("t", &[0, 1, 2, 3])));
        assert_eq!(t.g.state_name(), "Stable");
        // b joins: the target splits 2/2, but b gets nothing until a revoked.
        let b = t.hb("b", 0, None, 100).unwrap();
        assert_eq!(b.member_epoch, 2);
        assert_eq!(b.assignment, Some(Parts::new()));
        assert_eq!(t.g.members["b"].state, MemberState::UnreleasedPartitions);
        check_exclusive(&t.g);
        assert_eq!(t.g.state_name(), "Reconciling");
        // a heartbeats (still owning all): it is asked to revoke two, keeps its epoch.
        let a = t.hb("a", 1, Some(parts("t", &[0, 1, 2, 3])), 200).unwrap();
        assert_eq!(a.member_epoch, 1);
        let kept = a.assignment.clone().unwrap();
        assert_eq!(count(&kept), 2);
        assert_eq!(t.g.members["a"].state, MemberState::UnrevokedPartitions);
        check_exclusive(&t.g);
        // b still waits.
        let b = t.hb("b", 2, None, 300).unwrap();
        assert_eq!(b.assignment, None);
        // a acknowledges: owned == kept; moves to epoch 2.
        let a = t.hb("a", 1, Some(kept.clone()), 400).unwrap();
        assert_eq!(a.member_epoch, 2);
        assert_eq!(t.g.members["a"].state, MemberState::Stable);
        // b gets the released partitions.
        let b = t.hb("b", 2, Some(Parts::new()), 500).unwrap();
        let got = b.assignment.unwrap();
        assert_eq!(count(&got), 2);
        assert!(!intersects(&got, &kept));
        assert_eq!(t.g.state_name(), "Stable");
        check_exclusive(&t.g);
        // Wrong epochs.
        assert_eq!(t.hb("b", 5, None, 600), Err(ErrorCode::FencedMemberEpoch));
        assert_eq!(t.hb("zz", 2, None, 600), Err(ErrorCode::UnknownMemberId));
        // Offsets: member epoch checks.
        assert_eq!(t.g.validate_offset_commit("a", 2, 9), Ok(()));
        assert_eq!(
            t.g.validate_offset_commit("a", 2, 8),
            Err(ErrorCode::UnsupportedVersion)
        );
        assert_eq!(
            t.g.validate_offset_commit("a", 1, 9),
            Err(ErrorCode::StaleMemberEpoch)
        );
        assert_eq!(
            t.g.validate_offset_commit("x", 2, 9),
            Err(ErrorCode::UnknownMemberId)
        );
        assert_eq!(
            t.g.validate_offset_commit("", -1, 9),
            Err(ErrorCode::UnknownMemberId)
        );
        // b leaves: a gets everything at its next heartbeat.
        assert_eq!(t.hb("b", -1, None, 700).unwrap().member_epoch, -1);
        let a = t.hb("a", 2, None, 800).unwrap();
        assert_eq!(a.member_epoch, 3);
        assert_eq!(a.assignment, Some(parts("t", &[0, 1, 2, 3])));
    }

    #[test]
    fn silent_members_expire() {
        let mut t = T {
            g: ConsumerGroup::new("g", 0),
            t0: Instant::now(),
        };
        t.hb("a", 0, None, 0).unwrap();
        t.hb("b", 0, None, 0).unwrap();
        let e = t.g.group_epoch;
        t.hb("a", t.g.members["a"].epoch, None, 40_000).unwrap();
        t.g.tick(t.t0 + Duration::from_millis(45_001), 45_001);
        assert!(t.g.members.contains_key("a"));
        assert!(!t.g.members.contains_key("b"));
        assert_eq!(t.g.group_epoch, e + 1);
        t.g.tick(t.t0 + Duration::from_millis(85_001), 85_001);
        assert!(t.g.members.is_empty());
        assert_eq!(t.g.state_name(), "Empty");
        assert_eq!(t.g.empty_since_ms, 85_001);
    }

    #[test]
    fn a_member_that_does_not_revoke_is_fenced_after_the_rebalance_timeout() {
        let mut t = T {
            g: ConsumerGroup::new("g", 0),
            t0: Instant::now(),
        };
        t.hb("a", 0, None, 0).unwrap();
        t.hb("b", 0, None, 0).unwrap();
        // a keeps heartbeating but never gives its partitions up.
        for ms in (1_000..31_000).step_by(5_000) {
            t.hb("a", 1, Some(parts("t", &[0, 1, 2, 3])), ms).unwrap();
            t.hb("b", 2, Some(Parts::new()), ms).unwrap();
            t.g.tick(t.t0 + Duration::from_millis(ms), ms as i64);
        }
        assert!(t.g.members.contains_key("a"));
        t.g.tick(t.t0 + Duration::from_millis(31_001), 31_001);
        assert!(!t.g.members.contains_key("a"));
        let b = t.hb("b", 2, Some(Parts::new()), 31_100).unwrap();
        assert_eq!(b.assignment, Some(parts("t", &[0, 1, 2, 3])));
    }
}
