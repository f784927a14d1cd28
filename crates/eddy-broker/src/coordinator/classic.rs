//! The classic group protocol (JoinGroup/SyncGroup/Heartbeat/LeaveGroup) as a synchronous
//! state machine, after Kafka's `ClassicGroup` and `GroupMetadataManager`.
//!
//! States: `Empty` → `PreparingRebalance` (members (re)join) → `CompletingRebalance` (the
//! leader computes the assignment and sends it with SyncGroup) → `Stable`; any membership
//! change goes back to `PreparingRebalance`. Time is passed in (`now`), so the machine is
//! deterministic; [`ClassicGroup::tick`] fires the timers whose deadline passed: member session
//! expiry, the (initial) join phase, pending members and pending syncs.
//!
//! Responses to requests that wait (JoinGroup until the join phase completes, SyncGroup until
//! the leader's assignment) are parked as oneshot senders in the member and handed out through
//! [`Effects`], so that the coordinator can persist the group before answering.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use eddy_protocol::error_code::ErrorCode;
use eddy_protocol::messages::join_group_response::JoinGroupResponseMember;
use eddy_protocol::messages::{JoinGroupResponse, SyncGroupResponse};
use tokio::sync::oneshot;
use tokio::time::{Duration, Instant};

use super::records::{GroupValue, MemberValue};

/// How long a new member's JoinGroup may wait before it is dropped (Kafka's
/// `group.classic.new.member.join.timeout.ms` is 5 minutes).
pub const NEW_MEMBER_JOIN_TIMEOUT: Duration = Duration::from_secs(300);

pub type JoinTx = oneshot::Sender<JoinGroupResponse>;
pub type SyncTx = oneshot::Sender<SyncGroupResponse>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassicState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl ClassicState {
    /// The name Kafka reports (DescribeGroups, ListGroups).
    pub fn name(self) -> &'static str {
        match self {
            ClassicState::Empty => "Empty",
            ClassicState::PreparingRebalance => "PreparingRebalance",
            ClassicState::CompletingRebalance => "CompletingRebalance",
            ClassicState::Stable => "Stable",
            ClassicState::Dead => "Dead",
        }
    }
}

/// Broker settings the state machine needs.
#[derive(Debug, Clone)]
pub struct ClassicSettings {
    pub initial_rebalance_delay: Duration,
    pub max_size: usize,
    pub new_member_join_timeout: Duration,
}

impl Default for ClassicSettings {
    fn default() -> Self {
        ClassicSettings {
            initial_rebalance_delay: Duration::from_millis(3000),
            max_size: i32::MAX as usize,
            new_member_join_timeout: NEW_MEMBER_JOIN_TIMEOUT,
        }
    }
}

/// A JoinGroup request as the state machine sees it.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new member first gets MEMBER_ID_REQUIRED and its id.
    pub require_known_member_id: bool,
    /// JoinGroup v9+: a rejoining static leader may skip the assignment.
    pub supports_skip_assignment: bool,
}

/// A SyncGroup request as the state machine sees it.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

/// Responses to hand out and whether the group must be persisted first.
#[derive(Default)]
pub struct Effects {
    pub joins: Vec<(JoinTx, JoinGroupResponse)>,
    pub syncs: Vec<(SyncTx, SyncGroupResponse)>,
    /// The group's metadata changed in a way that is written to `__consumer_offsets`.
    pub persist_group: bool,
}

impl Effects {
    /// Delivers every parked response (the receiver may be gone: ignored).
    pub fn deliver(self) {
        for (tx, r) in self.joins {
            let _ = tx.send(r);
        }
        for (tx, r) in self.syncs {
            let _ = tx.send(r);
        }
    }

    /// Replaces every response by one carrying `code` (the group could not be persisted).
    pub fn fail(&mut self, code: ErrorCode) {
        for (_, r) in &mut self.joins {
            *r = join_error(&r.member_id, code);
        }
        for (_, r) in &mut self.syncs {
            *r = sync_error(code);
        }
    }
}

pub fn join_error(member_id: &str, code: ErrorCode) -> JoinGroupResponse {
    JoinGroupResponse {
        error_code: code.code(),
        generation_id: -1,
        member_id: member_id.to_string(),
        ..Default::default()
    }
}

pub fn sync_error(code: ErrorCode) -> SyncGroupResponse {
    SyncGroupResponse {
        error_code: code.code(),
        ..Default::default()
    }
}

/// A member of a classic group.
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocol_type: String,
    /// Supported protocols in preference order, with their metadata.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    awaiting_join: Option<JoinTx>,
    awaiting_sync: Option<SyncTx>,
    is_new: bool,
    /// When the session expires unless a heartbeat (or a rebalance) extends it.
    pub deadline: Instant,
}

impl Member {
    pub fn is_awaiting_join(&self) -> bool {
        self.awaiting_join.is_some()
    }

    /// The metadata this member sent for `protocol` (empty if it does not support it).
    pub fn metadata(&self, protocol: Option<&str>) -> Bytes {
        protocol
            .and_then(|p| self.protocols.iter().find(|(n, _)| n == p))
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    /// The first protocol of this member's preference list among `candidates`.
    fn vote(&self, candidates: &HashSet<&str>) -> Option<String> {
        self.protocols
            .iter()
            .find(|(n, _)| candidates.contains(n.as_str()))
            .map(|(n, _)| n.clone())
    }
}

enum JoinTimer {
    /// The first rebalance of an empty group waits `group.initial.rebalance.delay.ms`, and
    /// again while new members keep arriving, up to the rebalance timeout.
    Initial {
        at: Instant,
        delay: Duration,
        remaining: Duration,
    },
    Normal {
        at: Instant,
    },
}

/// A classic group.
pub struct ClassicGroup {
    pub group_id: String,
    pub state: ClassicState,
    previous_state: ClassicState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    static_members: HashMap<String, String>,
    /// Members that got MEMBER_ID_REQUIRED and have until the deadline to join again.
    pending: HashMap<String, Instant>,
    pending_sync: HashSet<String>,
    sync_deadline: Option<(Instant, i32)>,
    join_timer: Option<JoinTimer>,
    new_member_added: bool,
    /// Wall-clock time of the last state change (ms).
    pub state_timestamp_ms: i64,
}

fn new_member_id(prefix: &str) -> String {
    let u = eddy_protocol::codec::Uuid::random().0;
    let hex: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{prefix}-{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

impl ClassicGroup {
    pub fn new(group_id: &str, now_ms: i64) -> Self {
        ClassicGroup {
            group_id: group_id.to_string(),
            state: ClassicState::Empty,
            previous_state: ClassicState::Empty,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending: HashMap::new(),
            pending_sync: HashSet::new(),
            sync_deadline: None,
            join_timer: None,
            new_member_added: false,
            state_timestamp_ms: now_ms,
        }
    }

    /// Rebuilds a group from its `GroupMetadataValue` (replay of `__consumer_offsets`).
    /// Members get a full session from `now` to heartbeat.
    pub fn from_value(group_id: &str, v: GroupValue, now: Instant, now_ms: i64) -> Self {
        let mut g = ClassicGroup::new(group_id, now_ms);
        g.generation = v.generation;
        g.protocol_type = (!v.protocol_type.is_empty()).then_some(v.protocol_type);
        g.protocol_name = v.protocol.clone();
        g.state_timestamp_ms = if v.current_state_timestamp >= 0 {
            v.current_state_timestamp
        } else {
            now_ms
        };
        for m in v.members {
            if let Some(i) = &m.group_instance_id {
                g.static_members.insert(i.clone(), m.member_id.clone());
            }
            let protocols = v
                .protocol
                .clone()
                .map(|p| vec![(p, m.subscription.clone())])
                .unwrap_or_default();
            g.members.insert(
                m.member_id.clone(),
                Member {
                    id: m.member_id,
                    instance_id: m.group_instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    rebalance_timeout_ms: m.rebalance_timeout,
                    session_timeout_ms: m.session_timeout,
                    protocol_type: g.protocol_type.clone().unwrap_or_default(),
                    protocols,
                    assignment: m.assignment,
                    awaiting_join: None,
                    awaiting_sync: None,
                    is_new: false,
                    deadline: now + Duration::from_millis(m.session_timeout.max(0) as u64),
                },
            );
        }
        if !g.members.is_empty() {
            g.leader = v
                .leader
                .filter(|l| g.members.contains_key(l))
                .or_else(|| g.members.keys().next().cloned());
            g.state = ClassicState::Stable;
            g.previous_state = ClassicState::Stable;
        }
        g
    }

    /// The record value that describes this group now.
    pub fn to_value(&self) -> GroupValue {
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol_name.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: self.state_timestamp_ms,
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout: m.rebalance_timeout_ms,
                    session_timeout: m.session_timeout_ms,
                    subscription: m.metadata(self.protocol_name.as_deref()),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.state == ClassicState::Empty
    }

    pub fn is_static_member(&self, instance_id: &str) -> bool {
        self.static_members.contains_key(instance_id)
    }

    pub fn pending_member_count(&self) -> usize {
        self.pending.len()
    }

    fn transition(&mut self, to: ClassicState, now_ms: i64) {
        self.previous_state = self.state;
        self.state = to;
        self.state_timestamp_ms = now_ms;
    }

    fn rebalance_timeout(&self) -> Duration {
        let ms = self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms.max(0))
            .max()
            .unwrap_or(0);
        Duration::from_millis(ms as u64)
    }

    fn num_awaiting_join(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.is_awaiting_join())
            .count()
    }

    fn has_all_members_joined(&self) -> bool {
        self.members.values().all(Member::is_awaiting_join) && self.pending.is_empty()
    }

    fn can_rebalance(&self) -> bool {
        matches!(
            self.state,
            ClassicState::Stable | ClassicState::CompletingRebalance | ClassicState::Empty
        )
    }

    /// Protocols every member supports.
    fn candidate_protocols(&self) -> HashSet<&str> {
        let mut it = self.members.values();
        let Some(first) = it.next() else {
            return HashSet::new();
        };
        let mut set: HashSet<&str> = first.protocols.iter().map(|(n, _)| n.as_str()).collect();
        for m in it {
            set.retain(|p| m.protocols.iter().any(|(n, _)| n == p));
        }
        set
    }

    /// Whether a member with this protocol type and these protocols may join.
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.state == ClassicState::Empty {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        let candidates = self.candidate_protocols();
        protocols
            .iter()
            .any(|(n, _)| candidates.contains(n.as_str()))
    }

    /// The protocol of the next generation: among those all members support, the one most
    /// members prefer (each member votes for its first supported candidate).
    pub fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: Vec<(String, usize)> = Vec::new();
        for m in self.members.values() {
            if let Some(p) = m.vote(&candidates) {
                match votes.iter_mut().find(|(n, _)| *n == p) {
                    Some((_, c)) => *c += 1,
                    None => votes.push((p, 1)),
                }
            }
        }
        // Most votes; ties go to the protocol voted for first.
        let mut best: Option<(String, usize)> = None;
        for (p, c) in votes {
            if best.as_ref().is_none_or(|(_, bc)| c > *bc) {
                best = Some((p, c));
            }
        }
        best.map(|(p, _)| p)
    }

    fn validate_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), ErrorCode> {
        if let Some(i) = instance_id {
            match self.static_members.get(i) {
                None => return Err(ErrorCode::UnknownMemberId),
                Some(existing) if existing != member_id => return Err(ErrorCode::FencedInstanceId),
                Some(_) => {}
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(ErrorCode::UnknownMemberId);
        }
        Ok(())
    }

    fn add_member(&mut self, m: Member) {
        if self.members.is_empty() {
            self.protocol_type = Some(m.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(m.id.clone());
        }
        if let Some(i) = &m.instance_id {
            self.static_members.insert(i.clone(), m.id.clone());
        }
        self.members.insert(m.id.clone(), m);
    }

    /// Removes a member; a parked SyncGroup gets UNKNOWN_MEMBER_ID.
    fn remove_member(&mut self, id: &str, fx: &mut Effects) {
        if let Some(mut m) = self.members.remove(id) {
            if let Some(i) = &m.instance_id {
                if self.static_members.get(i).map(String::as_str) == Some(id) {
                    self.static_members.remove(i);
                }
            }
            if let Some(tx) = m.awaiting_sync.take() {
                fx.syncs.push((tx, sync_error(ErrorCode::UnknownMemberId)));
            }
            if let Some(tx) = m.awaiting_join.take() {
                fx.joins
                    .push((tx, join_error("", ErrorCode::UnknownMemberId)));
            }
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = self.members.keys().next().cloned();
        }
        self.pending.remove(id);
        self.pending_sync.remove(id);
    }

    fn join_response(&self, member_id: &str, with_members: bool) -> JoinGroupResponse {
        let members = if with_members {
            self.members
                .values()
                .map(|m| JoinGroupResponseMember {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    metadata: m.metadata(self.protocol_name.as_deref()),
                    ..Default::default()
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinGroupResponse {
            error_code: 0,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            skip_assignment: false,
            member_id: member_id.to_string(),
            members,
            ..Default::default()
        }
    }

    // ---- JoinGroup ------------------------------------------------------------------------

    /// JoinGroup. `tx` receives the response (possibly much later).
    pub fn join(
        &mut self,
        req: JoinRequest,
        tx: JoinTx,
        now: Instant,
        now_ms: i64,
        cfg: &ClassicSettings,
        fx: &mut Effects,
    ) {
        if !self.accept_joining_member(&req.member_id, cfg) {
            let id = req.member_id.clone();
            self.remove_member(&id, fx);
            fx.joins
                .push((tx, join_error("", ErrorCode::GroupMaxSizeReached)));
            return;
        }
        if req.member_id.is_empty() {
            self.join_new_member(req, tx, now, now_ms, cfg, fx);
        } else {
            self.join_existing_member(req, tx, now, now_ms, cfg, fx);
        }
    }

    fn accept_joining_member(&self, member_id: &str, cfg: &ClassicSettings) -> bool {
        match self.state {
            ClassicState::Empty | ClassicState::Dead => true,
            ClassicState::PreparingRebalance => {
                self.members
                    .get(member_id)
                    .is_some_and(Member::is_awaiting_join)
                    || self.num_awaiting_join() < cfg.max_size
            }
            ClassicState::CompletingRebalance | ClassicState::Stable => {
                self.members.contains_key(member_id) || self.members.len() < cfg.max_size
            }
        }
    }

    fn join_new_member(
        &mut self,
        req: JoinRequest,
        tx: JoinTx,
        now: Instant,
        now_ms: i64,
        cfg: &ClassicSettings,
        fx: &mut Effects,
    ) {
        if self.state == ClassicState::Dead {
            fx.joins
                .push((tx, join_error("", ErrorCode::CoordinatorNotAvailable)));
            return;
        }
        if !self.supports_protocols(&req.protocol_type, &req.protocols) {
            fx.joins
                .push((tx, join_error("", ErrorCode::InconsistentGroupProtocol)));
            return;
        }
        let prefix = req.instance_id.as_deref().unwrap_or(&req.client_id);
        let new_id = new_member_id(prefix);
        if let Some(instance) = req.instance_id.clone() {
            match self.static_members.get(&instance).cloned() {
                Some(old) => self.update_static_member(old, new_id, req, tx, now, now_ms, cfg, fx),
                None => self.add_member_then_rebalance(new_id, req, tx, now, now_ms, cfg, fx),
            }
        } else if req.require_known_member_id {
            let session = Duration::from_millis(req.session_timeout_ms.max(0) as u64);
            self.pending.insert(new_id.clone(), now + session);
            fx.joins
                .push((tx, join_error(&new_id, ErrorCode::MemberIdRequired)));
        } else {
            self.add_member_then_rebalance(new_id, req, tx, now, now_ms, cfg, fx);
        }
    }

    fn join_existing_member(
        &mut self,
        req: JoinRequest,
        tx: JoinTx,
        now: Instant,
        now_ms: i64,
        cfg: &ClassicSettings,
        fx: &mut Effects,
    ) {
        let id = req.member_id.clone();
        if self.state == ClassicState::Dead {
            fx.joins
                .push((tx, join_error(&id, ErrorCode::CoordinatorNotAvailable)));
            return;
        }
        if !self.supports_protocols(&req.protocol_type, &req.protocols) {
            fx.joins
                .push((tx, join_error(&id, ErrorCode::InconsistentGroupProtocol)));
            return;
        }
        if self.pending.remove(&id).is_some() {
            self.add_member_then_rebalance(id, req, tx, now, now_ms, cfg, fx);
            return;
        }
        if let Err(code) = self.validate_member(&id, req.instance_id.as_deref()) {
            fx.joins.push((tx, join_error(&id, code)));
            return;
        }
        let (is_leader, matches) = {
            let m = &self.members[&id];
            (
                self.leader.as_deref() == Some(&id),
                m.matches(&req.protocols),
            )
        };
        match self.state {
            ClassicState::PreparingRebalance => {
                self.update_member(&id, &req, tx, fx);
                self.maybe_prepare_rebalance_or_complete_join(now, now_ms, cfg, fx);
            }
            ClassicState::CompletingRebalance if matches => {
                // Same metadata (a lost JoinGroup response?): answer with this generation.
                let r = self.join_response(&id, is_leader);
                fx.joins.push((tx, r));
            }
            ClassicState::Stable if matches && !is_leader => {
                let r = self.join_response(&id, false);
                fx.joins.push((tx, r));
            }
            ClassicState::CompletingRebalance | ClassicState::Stable => {
                self.update_member(&id, &req, tx, fx);
                self.maybe_prepare_rebalance_or_complete_join(now, now_ms, cfg, fx);
            }
            ClassicState::Empty | ClassicState::Dead => {
                fx.joins
                    .push((tx, join_error(&id, ErrorCode::UnknownMemberId)));
            }
        }
    }

    fn update_member(&mut self, id: &str, req: &JoinRequest, tx: JoinTx, fx: &mut Effects) {
        if let Some(m) = self.members.get_mut(id) {
            m.protocols = req.protocols.clone();
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
            m.session_timeout_ms = req.session_timeout_ms;
            m.client_id = req.client_id.clone();
            if let Some(old) = m.awaiting_join.replace(tx) {
                fx.joins
                    .push((old, join_error(id, ErrorCode::RebalanceInProgress)));
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn add_member_then_rebalance(
        &mut self,
        id: String,
        req: JoinRequest,
        tx: JoinTx,
        now: Instant,
        now_ms: i64,
        cfg: &ClassicSettings,
        fx: &mut Effects,
    ) {
        let member = Member {
            id,
            instance_id: req.instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            session_timeout_ms: req.session_timeout_ms,
            protocol_type: req.protocol_type,
            protocols: req.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(tx),
            awaiting_sync: None,
            is_new: true,
            deadline: now + cfg.new_member_join_timeout,
        };
        if self.state == ClassicState::PreparingRebalance
            && self.previous_state == ClassicState::Empty
        {
            self.new_member_added = true;
        }
        self.add_member(member);
        self.maybe_prepare_rebalance_or_complete_join(now, now_ms, cfg, fx);
    }

    /// A known static member rejoins with an unknown member id: it takes over the old
    /// member's place under a new id; the old id is fenced.
    #[allow(clippy::too_many_arguments)]
    fn update_static_member(
        &mut self,
        old_id: String,
        new_id: String,
        req: JoinRequest,
        tx: JoinTx,
        now: Instant,
        now_ms: i64,
        cfg: &ClassicSettings,
        fx: &mut Effects,
    ) {
        let Some(mut m) = self.members.remove(&old_id) else {
            self.static_members
                .remove(req.instance_id.as_deref().unwrap_or(""));
            self.add_member_then_rebalance(new_id, req, tx, now, now_ms, cfg, fx);
            return;
        };
        if let Some(old) = m.awaiting_join.take() {
            fx.joins
                .push((old, join_error(&old_id, ErrorCode::FencedInstanceId)));
        }
        if let Some(old) = m.awaiting_sync.take() {
            fx.syncs
                .push((old, sync_error(ErrorCode::FencedInstanceId)));
        }
        // Before v9 the rejoining static leader is told the old leader id, so that it does
        // not compute an assignment without the member list.
        let current_leader = self.leader.clone().unwrap_or_default();
        m.id = new_id.clone();
        m.deadline = now + Duration::from_millis(m.session_timeout_ms.max(0) as u64);
        m.protocols = req.protocols.clone();
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        m.session_timeout_ms = req.session_timeout_ms;
        m.awaiting_join = Some(tx);
        if let Some(i) = &m.instance_id {
            self.static_members.insert(i.clone(), new_id.clone());
        }
        self.members.insert(new_id.clone(), m);
        if self.leader.as_deref() == Some(old_id.as_str()) {
            self.leader = Some(new_id.clone());
        }
        if self.pending_sync.remove(&old_id) {
            self.pending_sync.insert(new_id.clone());
        }
        match self.state {
            ClassicState::Stable => {
                if self.protocol_name == self.select_protocol() {
                    // Nothing changes for the others: persist the new member id and answer.
                    fx.persist_group = true;
                    let is_leader = self.leader.as_deref() == Some(new_id.as_str());
                    let mut r = if req.supports_skip_assignment {
                        let mut r = self.join_response(&new_id, is_leader);
                        r.skip_assignment = is_leader;
                        r
                    } else {
                        let mut r = self.join_response(&new_id, false);
                        r.leader = current_leader;
                        r
                    };
                    r.member_id = new_id.clone();
                    if let Some(tx) = self
                        .members
                        .get_mut(&new_id)
                        .and_then(|m| m.awaiting_join.take())
                    {
                        fx.joins.push((tx, r));
                    }
                } else {
                    self.maybe_prepare_rebalance_or_complete_join(now, now_ms, cfg, fx);
                }
            }
            ClassicState::CompletingRebalance => self.prepare_rebalance(now, now_ms, cfg, fx),
            ClassicState::PreparingRebalance => self.maybe_complete_join_phase(now, now_ms, fx),
            ClassicState::Empty | ClassicState::Dead => {}
        }
    }

    fn maybe_prepare_rebalance_or_complete_join(
        &mut self,
        now: Instant,
        now_ms: i64,
        cfg: &ClassicSettings,
        fx: &mut Effects,
    ) {
        if self.can_rebalance() {
            self.prepare_rebalance(now, now_ms, cfg, fx);
        } else {
            self.maybe_complete_join_phase(now, now_ms, fx);
        }
    }

    fn maybe_complete_join_phase(&mut self, now: Instant, now_ms: i64, fx: &mut Effects) {
        if self.state == ClassicState::PreparingRebalance
            && self.previous_state != ClassicState::Empty
            && self.has_all_members_joined()
        {
            self.complete_join(now, now_ms, fx);
        }
    }

    /// Starts a rebalance: parked SyncGroups get REBALANCE_IN_PROGRESS.
    pub fn prepare_rebalance(
        &mut self,
        now: Instant,
        now_ms: i64,
        cfg: &ClassicSettings,
        fx: &mut Effects,
    ) {
        if self.state == ClassicState::CompletingRebalance {
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(tx) = m.awaiting_sync.take() {
                    fx.syncs
                        .push((tx, sync_error(ErrorCode::RebalanceInProgress)));
                    m.deadline = now + Duration::from_millis(m.session_timeout_ms.max(0) as u64);
                }
            }
        }
        self.pending_sync.clear();
        self.sync_deadline = None;
        let initial = self.state == ClassicState::Empty;
        if initial {
            let delay = cfg.initial_rebalance_delay;
            let remaining = self.rebalance_timeout().saturating_sub(delay);
            self.join_timer = Some(JoinTimer::Initial {
                at: now + delay,
                delay,
                remaining,
            });
        }
        self.transition(ClassicState::PreparingRebalance, now_ms);
        tracing::info!(
            group = %self.group_id,
            generation = self.generation,
            members = self.members.len(),
            "preparing to rebalance group"
        );
        if !initial {
            if self.has_all_members_joined() {
                self.complete_join(now, now_ms, fx);
            } else {
                self.join_timer = Some(JoinTimer::Normal {
                    at: now + self.rebalance_timeout(),
                });
            }
        }
    }

    fn complete_join(&mut self, now: Instant, now_ms: i64, fx: &mut Effects) {
        self.join_timer = None;
        let not_rejoined: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.is_awaiting_join() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in &not_rejoined {
            self.remove_member(id, fx);
        }
        if !not_rejoined.is_empty() {
            tracing::info!(group = %self.group_id, members = ?not_rejoined, "removed members that did not rejoin");
        }
        if self.state == ClassicState::Dead {
            return;
        }
        if !self.maybe_elect_new_joined_leader() && !self.members.is_empty() {
            // Nobody rejoined: wait for sessions to expire.
            self.join_timer = Some(JoinTimer::Normal {
                at: now + self.rebalance_timeout(),
            });
            return;
        }
        self.generation += 1;
        self.pending_sync.clear();
        if self.members.is_empty() {
            self.protocol_name = None;
            self.transition(ClassicState::Empty, now_ms);
            fx.persist_group = true;
            tracing::info!(group = %self.group_id, generation = self.generation, "group is now empty");
            return;
        }
        self.protocol_name = self.select_protocol();
        self.transition(ClassicState::CompletingRebalance, now_ms);
        tracing::info!(
            group = %self.group_id,
            generation = self.generation,
            members = self.members.len(),
            protocol = ?self.protocol_name,
            "group completed its join phase"
        );
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let is_leader = self.leader.as_deref() == Some(id.as_str());
            let r = self.join_response(&id, is_leader);
            if let Some(m) = self.members.get_mut(&id) {
                if let Some(tx) = m.awaiting_join.take() {
                    fx.joins.push((tx, r));
                }
                m.deadline = now + Duration::from_millis(m.session_timeout_ms.max(0) as u64);
                m.is_new = false;
            }
            self.pending_sync.insert(id);
        }
        self.sync_deadline = Some((now + self.rebalance_timeout(), self.generation));
    }

    fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader) = self.leader.clone() else {
            return false;
        };
        if self
            .members
            .get(&leader)
            .is_some_and(Member::is_awaiting_join)
        {
            return true;
        }
        match self.members.values().find(|m| m.is_awaiting_join()) {
            Some(m) => {
                self.leader = Some(m.id.clone());
                true
            }
            None => false,
        }
    }

    // ---- SyncGroup ------------------------------------------------------------------------

    pub fn sync(
        &mut self,
        req: SyncRequest,
        tx: SyncTx,
        now: Instant,
        now_ms: i64,
        fx: &mut Effects,
    ) {
        let code = if self.state == ClassicState::Dead {
            Some(ErrorCode::CoordinatorNotAvailable)
        } else if self.state == ClassicState::Empty {
            Some(ErrorCode::UnknownMemberId)
        } else if let Err(c) = self.validate_member(&req.member_id, req.instance_id.as_deref()) {
            Some(c)
        } else if req.generation != self.generation {
            Some(ErrorCode::IllegalGeneration)
        } else if req
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != self.protocol_type.as_ref())
            || req
                .protocol_name
                .as_ref()
                .is_some_and(|n| Some(n) != self.protocol_name.as_ref())
        {
            Some(ErrorCode::InconsistentGroupProtocol)
        } else {
            None
        };
        if let Some(code) = code {
            fx.syncs.push((tx, sync_error(code)));
            return;
        }
        match self.state {
            ClassicState::PreparingRebalance => {
                fx.syncs
                    .push((tx, sync_error(ErrorCode::RebalanceInProgress)));
            }
            ClassicState::CompletingRebalance => {
                self.pending_sync.remove(&req.member_id);
                if let Some(m) = self.members.get_mut(&req.member_id) {
                    if let Some(old) = m.awaiting_sync.replace(tx) {
                        fx.syncs
                            .push((old, sync_error(ErrorCode::RebalanceInProgress)));
                    }
                }
                if self.leader.as_deref() == Some(req.member_id.as_str()) {
                    let assignments: HashMap<String, Bytes> = req.assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        m.assignment = assignments.get(&m.id).cloned().unwrap_or_default();
                    }
                    self.transition(ClassicState::Stable, now_ms);
                    fx.persist_group = true;
                    for m in self.members.values_mut() {
                        if let Some(tx) = m.awaiting_sync.take() {
                            fx.syncs.push((
                                tx,
                                SyncGroupResponse {
                                    error_code: 0,
                                    protocol_type: self.protocol_type.clone(),
                                    protocol_name: self.protocol_name.clone(),
                                    assignment: m.assignment.clone(),
                                    ..Default::default()
                                },
                            ));
                            m.deadline =
                                now + Duration::from_millis(m.session_timeout_ms.max(0) as u64);
                        }
                    }
                    tracing::info!(group = %self.group_id, generation = self.generation, "group is stable");
                }
            }
            ClassicState::Stable => {
                self.pending_sync.remove(&req.member_id);
                let assignment = self.members[&req.member_id].assignment.clone();
                fx.syncs.push((
                    tx,
                    SyncGroupResponse {
                        error_code: 0,
                        protocol_type: self.protocol_type.clone(),
                        protocol_name: self.protocol_name.clone(),
                        assignment,
                        ..Default::default()
                    },
                ));
            }
            ClassicState::Empty | ClassicState::Dead => {
                fx.syncs.push((tx, sync_error(ErrorCode::UnknownMemberId)));
            }
        }
    }

    /// Called when persisting the leader's assignment failed: every member must rejoin.
    pub fn on_persist_failed(
        &mut self,
        now: Instant,
        now_ms: i64,
        cfg: &ClassicSettings,
        fx: &mut Effects,
    ) {
        if matches!(
            self.state,
            ClassicState::Stable | ClassicState::CompletingRebalance
        ) {
            self.prepare_rebalance(now, now_ms, cfg, fx);
        }
    }

    // ---- Heartbeat ------------------------------------------------------------------------

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> ErrorCode {
        if self.state == ClassicState::Dead {
            return ErrorCode::CoordinatorNotAvailable;
        }
        if let Err(c) = self.validate_member(member_id, instance_id) {
            return c;
        }
        if generation != self.generation {
            return ErrorCode::IllegalGeneration;
        }
        let extend = |m: &mut Member| {
            m.deadline = now + Duration::from_millis(m.session_timeout_ms.max(0) as u64);
        };
        match self.state {
            ClassicState::Empty | ClassicState::Dead => ErrorCode::UnknownMemberId,
            ClassicState::PreparingRebalance => {
                if let Some(m) = self.members.get_mut(member_id) {
                    extend(m);
                }
                ErrorCode::RebalanceInProgress
            }
            ClassicState::CompletingRebalance | ClassicState::Stable => {
                if let Some(m) = self.members.get_mut(member_id) {
                    extend(m);
                }
                ErrorCode::None
            }
        }
    }

    // ---- LeaveGroup -----------------------------------------------------------------------

    /// Removes members `(member id, group instance id)`; one error code per member.
    pub fn leave(
        &mut self,
        members: &[(String, Option<String>)],
        now: Instant,
        now_ms: i64,
        cfg: &ClassicSettings,
        fx: &mut Effects,
    ) -> Vec<ErrorCode> {
        let mut out = Vec::with_capacity(members.len());
        for (member_id, instance_id) in members {
            let code = if member_id.is_empty() {
                match instance_id
                    .as_ref()
                    .and_then(|i| self.static_members.get(i).cloned())
                {
                    Some(id) => {
                        self.remove_member(&id, fx);
                        ErrorCode::None
                    }
                    None => ErrorCode::UnknownMemberId,
                }
            } else if self.pending.remove(member_id).is_some() {
                ErrorCode::None
            } else {
                match self.validate_member(member_id, instance_id.as_deref()) {
                    Ok(()) => {
                        self.remove_member(member_id, fx);
                        ErrorCode::None
                    }
                    Err(c) => c,
                }
            };
            if code == ErrorCode::None {
                tracing::info!(group = %self.group_id, member = %member_id, "member left the group");
            }
            out.push(code);
        }
        if out.contains(&ErrorCode::None) {
            match self.state {
                ClassicState::Stable | ClassicState::CompletingRebalance => {
                    self.maybe_prepare_rebalance_or_complete_join(now, now_ms, cfg, fx)
                }
                ClassicState::PreparingRebalance => self.maybe_complete_join_phase(now, now_ms, fx),
                _ => {}
            }
        }
        out
    }

    // ---- timers ---------------------------------------------------------------------------

    /// The earliest deadline of any timer of this group.
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut d: Option<Instant> = None;
        let mut take = |t: Instant| d = Some(d.map_or(t, |x| x.min(t)));
        for t in self.pending.values() {
            take(*t);
        }
        for m in self.members.values() {
            take(m.deadline);
        }
        match &self.join_timer {
            Some(JoinTimer::Initial { at, .. }) | Some(JoinTimer::Normal { at }) => take(*at),
            None => {}
        }
        if let Some((at, _)) = self.sync_deadline {
            take(at);
        }
        d
    }

    /// Fires every timer whose deadline is at or before `now`.
    pub fn tick(&mut self, now: Instant, now_ms: i64, cfg: &ClassicSettings, fx: &mut Effects) {
        if self.state == ClassicState::Dead {
            return;
        }
        // Pending members that never came back.
        let expired: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.pending.remove(&id);
            tracing::info!(group = %self.group_id, member = %id, "pending member expired");
            if self.state == ClassicState::PreparingRebalance && self.has_all_members_joined() {
                self.complete_join(now, now_ms, fx);
            }
        }
        // Session expiry. Members waiting for a join or sync response are kept alive, except
        // new members, whose JoinGroup times out.
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.deadline <= now
                    && (m.is_new || (m.awaiting_join.is_none() && m.awaiting_sync.is_none()))
            })
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.group_id, member = %id, "member session expired, removing it");
            self.remove_member(&id, fx);
            match self.state {
                ClassicState::Stable | ClassicState::CompletingRebalance => {
                    self.maybe_prepare_rebalance_or_complete_join(now, now_ms, cfg, fx)
                }
                ClassicState::PreparingRebalance if self.has_all_members_joined() => {
                    self.complete_join(now, now_ms, fx)
                }
                _ => {}
            }
        }
        // The join phase.
        match self.join_timer {
            Some(JoinTimer::Initial {
                at,
                delay,
                remaining,
            }) if at <= now => {
                if self.new_member_added && !remaining.is_zero() {
                    self.new_member_added = false;
                    let new_delay = cfg.initial_rebalance_delay.min(remaining);
                    let new_remaining = remaining.saturating_sub(delay);
                    self.join_timer = Some(JoinTimer::Initial {
                        at: now + new_delay,
                        delay: new_delay,
                        remaining: new_remaining,
                    });
                } else {
                    self.complete_join(now, now_ms, fx);
                }
            }
            Some(JoinTimer::Normal { at }) if at <= now => {
                if self.state == ClassicState::PreparingRebalance {
                    self.complete_join(now, now_ms, fx);
                } else {
                    self.join_timer = None;
                }
            }
            _ => {}
        }
        // Members that did not send SyncGroup within the rebalance timeout.
        if let Some((at, generation)) = self.sync_deadline {
            if at <= now {
                self.sync_deadline = None;
                if generation == self.generation
                    && matches!(
                        self.state,
                        ClassicState::CompletingRebalance | ClassicState::Stable
                    )
                    && !self.pending_sync.is_empty()
                {
                    let late: Vec<String> = self.pending_sync.drain().collect();
                    tracing::info!(group = %self.group_id, members = ?late, "removing members that did not sync");
                    for id in &late {
                        self.remove_member(id, fx);
                    }
                    self.prepare_rebalance(now, now_ms, cfg, fx);
                }
            }
        }
    }

    // ---- offsets --------------------------------------------------------------------------

    /// Whether an OffsetCommit from this member/generation is accepted (Kafka's
    /// `validateOffsetCommit` for non-transactional commits).
    pub fn validate_offset_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ErrorCode> {
        if self.state == ClassicState::Dead {
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
        if generation < 0 && self.state == ClassicState::Empty {
            return Ok(());
        }
        if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
            self.validate_member(member_id, instance_id)?;
            if generation != self.generation {
                return Err(ErrorCode::IllegalGeneration);
            }
        } else if self.state != ClassicState::Empty {
            return Err(ErrorCode::UnknownMemberId);
        }
        if self.state == ClassicState::CompletingRebalance {
            return Err(ErrorCode::RebalanceInProgress);
        }
        Ok(())
    }

    /// Marks the group deleted: every parked request is answered.
    pub fn make_dead(&mut self, now_ms: i64, fx: &mut Effects) {
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            self.remove_member(&id, fx);
        }
        self.pending.clear();
        self.join_timer = None;
        self.sync_deadline = None;
        self.transition(ClassicState::Dead, now_ms);
    }

    /// Topics the members subscribe to, when they use the `consumer` protocol type.
    pub fn subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let mut out = HashSet::new();
        for m in self.members.values() {
            let meta = m.metadata(self.protocol_name.as_deref());
            out.extend(super::consumer_protocol::subscription_topics(&meta)?);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot::error::TryRecvError;

    type JoinRx = oneshot::Receiver<JoinGroupResponse>;
    type SyncRx = oneshot::Receiver<SyncGroupResponse>;

    fn cfg() -> ClassicSettings {
        ClassicSettings {
            initial_rebalance_delay: Duration::from_millis(3000),
            max_size: 10,
            new_member_join_timeout: NEW_MEMBER_JOIN_TIMEOUT,
        }
    }

    fn jreq(member: &str, protocols: &[(&str, &'static [u8])]) -> JoinRequest {
        JoinRequest {
            member_id: member.to_string(),
            instance_id: None,
            client_id: "client".into(),
            client_host: String::new(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|(n, m)| (n.to_string(), Bytes::from_static(m)))
                .collect(),
            require_known_member_id: true,
            supports_skip_assignment: false,
        }
    }

    struct T {
        g: ClassicGroup,
        t0: Instant,
        persisted: usize,
    }

    impl T {
        fn new() -> T {
            T {
                g: ClassicGroup::new("g", 0),
                t0: Instant::now(),
                persisted: 0,
            }
        }
        fn at(&self, ms: u64) -> Instant {
            self.t0 + Duration::from_millis(ms)
        }
        fn done(&mut self, fx: Effects) {
            if fx.persist_group {
                self.persisted += 1;
            }
            fx.deliver();
        }
        fn join(&mut self, r: JoinRequest, ms: u64) -> JoinRx {
            let (tx, rx) = oneshot::channel();
            let mut fx = Effects::default();
            self.g.join(r, tx, self.at(ms), ms as i64, &cfg(), &mut fx);
            self.done(fx);
            rx
        }
        /// JoinGroup v4+ dance: MEMBER_ID_REQUIRED, then join with the given id.
        fn join_new(&mut self, protocols: &[(&str, &'static [u8])], ms: u64) -> (String, JoinRx) {
            let mut rx = self.join(jreq("", protocols), ms);
            let r = rx.try_recv().expect("immediate MEMBER_ID_REQUIRED");
            assert_eq!(r.error_code, ErrorCode::MemberIdRequired.code());
            assert!(r.member_id.starts_with("client-"));
            let rx = self.join(jreq(&r.member_id, protocols), ms);
            (r.member_id, rx)
        }
        fn sync(
            &mut self,
            member: &str,
            generation: i32,
            asg: &[(&str, &'static [u8])],
            ms: u64,
        ) -> SyncRx {
            let (tx, rx) = oneshot::channel();
            let mut fx = Effects::default();
            let req = SyncRequest {
                member_id: member.to_string(),
                instance_id: None,
                generation,
                protocol_type: Some("consumer".into()),
                protocol_name: None,
                assignments: asg
                    .iter()
                    .map(|(m, a)| (m.to_string(), Bytes::from_static(a)))
                    .collect(),
            };
            self.g.sync(req, tx, self.at(ms), ms as i64, &mut fx);
            self.done(fx);
            rx
        }
        fn tick(&mut self, ms: u64) {
            let mut fx = Effects::default();
            self.g.tick(self.at(ms), ms as i64, &cfg(), &mut fx);
            self.done(fx);
        }
        fn leave(&mut self, member: &str, ms: u64) -> ErrorCode {
            let mut fx = Effects::default();
            let codes = self.g.leave(
                &[(member.to_string(), None)],
                self.at(ms),
                ms as i64,
                &cfg(),
                &mut fx,
            );
            self.done(fx);
            codes[0]
        }
    }

    const RANGE: (&str, &[u8]) = ("range", b"r");

    #[test]
    fn single_member_joins_after_the_initial_delay_and_syncs() {
        let mut t = T::new();
        let (m1, mut rx) = t.join_new(&[RANGE], 0);
        assert_eq!(t.g.state, ClassicState::PreparingRebalance);
        t.tick(2_999);
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
        t.tick(3_000);
        let r = rx.try_recv().unwrap();
        assert_eq!(r.error_code, 0);
        assert_eq!(r.generation_id, 1);
        assert_eq!(r.leader, m1);
        assert_eq!(r.member_id, m1);
        assert_eq!(r.protocol_name.as_deref(), Some("range"));
        assert_eq!(r.members.len(), 1);
        assert_eq!(&r.members[0].metadata[..], b"r");
        assert_eq!(t.g.state, ClassicState::CompletingRebalance);
        // Heartbeats are fine while the assignment is computed.
        assert_eq!(t.g.heartbeat(&m1, None, 1, t.at(3_100)), ErrorCode::None);
        assert_eq!(
            t.g.heartbeat(&m1, None, 0, t.at(3_100)),
            ErrorCode::IllegalGeneration
        );
        let mut srx = t.sync(&m1, 1, &[(&m1, b"assignment")], 3_200);
        let s = srx.try_recv().unwrap();
        assert_eq!(s.error_code, 0);
        assert_eq!(&s.assignment[..], b"assignment");
        assert_eq!(t.g.state, ClassicState::Stable);
        assert_eq!(t.persisted, 1, "the assignment is persisted");
        let v = t.g.to_value();
        assert_eq!(v.generation, 1);
        assert_eq!(&v.members[0].assignment[..], b"assignment");
        assert_eq!(&v.members[0].subscription[..], b"r");
    }

    fn stable_with_two(t: &mut T) -> (String, String) {
        let (m1, mut rx1) = t.join_new(&[RANGE], 0);
        let (m2, mut rx2) = t.join_new(&[RANGE], 100);
        // The initial delay was extended by the second member (3000 + 3000 at most).
        t.tick(3_000);
        assert!(matches!(rx1.try_recv(), Err(TryRecvError::Empty)));
        t.tick(6_000);
        let r1 = rx1.try_recv().unwrap();
        let r2 = rx2.try_recv().unwrap();
        assert_eq!((r1.generation_id, r2.generation_id), (1, 1));
        assert_eq!(r1.leader, r2.leader);
        let leader = r1.leader.clone();
        assert_eq!(
            r1.members.len() + r2.members.len(),
            2,
            "only the leader gets the members"
        );
        let follower = if leader == m1 { m2.clone() } else { m1.clone() };
        let mut f = t.sync(&follower, 1, &[], 6_100);
        assert!(matches!(f.try_recv(), Err(TryRecvError::Empty)));
        let mut l = t.sync(&leader, 1, &[(&m1, b"a1"), (&m2, b"a2")], 6_200);
        assert_eq!(l.try_recv().unwrap().error_code, 0);
        let fa = f.try_recv().unwrap();
        assert_eq!(fa.error_code, 0);
        assert_eq!(
            &fa.assignment[..],
            if follower == m1 { b"a1" } else { b"a2" }
        );
        (leader, follower)
    }

    #[test]
    fn a_new_member_triggers_a_rebalance_that_completes_when_all_rejoined() {
        let mut t = T::new();
        let (leader, follower) = stable_with_two(&mut t);
        let (m3, mut rx3) = t.join_new(&[RANGE], 7_000);
        assert_eq!(t.g.state, ClassicState::PreparingRebalance);
        assert_eq!(
            t.g.heartbeat(&leader, None, 1, t.at(7_100)),
            ErrorCode::RebalanceInProgress
        );
        let mut rl = t.join(jreq(&leader, &[RANGE]), 7_200);
        assert!(matches!(rl.try_recv(), Err(TryRecvError::Empty)));
        let mut rf = t.join(jreq(&follower, &[RANGE]), 7_300);
        // Everybody is in: no waiting for the rebalance timeout.
        let (a, b, c) = (
            rl.try_recv().unwrap(),
            rf.try_recv().unwrap(),
            rx3.try_recv().unwrap(),
        );
        assert_eq!(
            (a.generation_id, b.generation_id, c.generation_id),
            (2, 2, 2)
        );
        assert_eq!(a.members.len(), 3);
        assert!(c.members.is_empty());
        assert_eq!(c.member_id, m3);
    }

    #[test]
    fn members_that_do_not_rejoin_are_removed_after_the_rebalance_timeout() {
        let mut t = T::new();
        let (leader, follower) = stable_with_two(&mut t);
        let mut rl = t.join(jreq(&leader, &[RANGE]), 7_000);
        // The follower keeps heartbeating but never rejoins.
        for ms in (8_000..37_000).step_by(3_000) {
            assert_eq!(
                t.g.heartbeat(&follower, None, 1, t.at(ms)),
                ErrorCode::RebalanceInProgress
            );
            t.tick(ms);
        }
        assert!(matches!(rl.try_recv(), Err(TryRecvError::Empty)));
        t.tick(37_000);
        let r = rl.try_recv().unwrap();
        assert_eq!(r.generation_id, 2);
        assert_eq!(r.members.len(), 1);
        assert!(!t.g.members.contains_key(&follower));
        assert_eq!(
            t.g.heartbeat(&follower, None, 2, t.at(37_100)),
            ErrorCode::UnknownMemberId
        );
    }

    #[test]
    fn session_expiry_removes_a_silent_member() {
        let mut t = T::new();
        let (leader, follower) = stable_with_two(&mut t);
        // Only the leader heartbeats; the follower's 10 s session ends at 16.2 s.
        assert_eq!(
            t.g.heartbeat(&leader, None, 1, t.at(9_000)),
            ErrorCode::None
        );
        t.tick(16_100);
        assert!(t.g.members.contains_key(&follower));
        t.tick(16_300);
        assert!(!t.g.members.contains_key(&follower));
        assert_eq!(t.g.state, ClassicState::PreparingRebalance);
        let mut rl = t.join(jreq(&leader, &[RANGE]), 16_400);
        let r = rl.try_recv().unwrap();
        assert_eq!((r.generation_id, r.members.len()), (2, 1));
        // The last member leaves: the group is empty, a new generation is persisted.
        let before = t.persisted;
        assert_eq!(t.leave(&leader, 17_000), ErrorCode::None);
        assert_eq!(t.g.state, ClassicState::Empty);
        assert_eq!(t.g.generation, 3);
        assert_eq!(t.persisted, before + 1);
        assert_eq!(t.leave(&leader, 17_100), ErrorCode::UnknownMemberId);
    }

    #[test]
    fn protocol_selection_by_vote_among_common_protocols() {
        let mut t = T::new();
        let (_m1, _) = t.join_new(&[("a", b"1"), ("b", b"1")], 0);
        let (_m2, _) = t.join_new(&[("b", b"2"), ("a", b"2")], 0);
        let (_m3, _) = t.join_new(&[("b", b"3")], 0);
        // Only "b" is supported by all.
        assert_eq!(t.g.select_protocol().as_deref(), Some("b"));
        let mut t = T::new();
        t.join_new(&[("a", b"1"), ("b", b"1")], 0);
        t.join_new(&[("a", b"2"), ("b", b"2")], 0);
        t.join_new(&[("b", b"3"), ("a", b"3")], 0);
        assert_eq!(t.g.select_protocol().as_deref(), Some("a"));
        // A member supporting none of the common protocols is refused.
        let mut rx = t.join(jreq("", &[("c", b"4")]), 0);
        assert_eq!(
            rx.try_recv().unwrap().error_code,
            ErrorCode::InconsistentGroupProtocol.code()
        );
        let mut other_type = jreq("", &[("a", b"4")]);
        other_type.protocol_type = "connect".into();
        let mut rx = t.join(other_type, 0);
        assert_eq!(
            rx.try_recv().unwrap().error_code,
            ErrorCode::InconsistentGroupProtocol.code()
        );
        // New members arrived during the delay: it is extended once more.
        t.tick(3_000);
        assert_eq!(t.g.state, ClassicState::PreparingRebalance);
        t.tick(6_000);
        assert_eq!(t.g.state, ClassicState::CompletingRebalance);
        assert_eq!(t.g.protocol_name.as_deref(), Some("a"));
    }

    #[test]
    fn pending_members_expire_after_the_session_timeout() {
        let mut t = T::new();
        let mut rx = t.join(jreq("", &[RANGE]), 0);
        let id = rx.try_recv().unwrap().member_id;
        assert_eq!(t.g.pending_member_count(), 1);
        t.tick(10_001);
        assert_eq!(t.g.pending_member_count(), 0);
        // Joining with the expired id is refused.
        let mut rx = t.join(jreq(&id, &[RANGE]), 10_002);
        assert_eq!(
            rx.try_recv().unwrap().error_code,
            ErrorCode::UnknownMemberId.code()
        );
    }

    #[test]
    fn static_member_rejoining_fences_its_old_id_without_rebalance() {
        let mut t = T::new();
        let mut r = jreq("", &[RANGE]);
        r.instance_id = Some("i1".into());
        // Static members get their id at once (no MEMBER_ID_REQUIRED).
        let mut rx = t.join(r.clone(), 0);
        t.tick(3_000);
        let j = rx.try_recv().unwrap();
        assert_eq!(j.error_code, 0);
        let old = j.member_id.clone();
        assert!(old.starts_with("i1-"));
        let mut s = t.sync(&old, 1, &[(&old, b"x")], 3_100);
        assert_eq!(s.try_recv().unwrap().error_code, 0);
        // Restarted client: unknown member id, same instance id.
        let persisted = t.persisted;
        let mut rx = t.join(r, 5_000);
        let j2 = rx.try_recv().unwrap();
        assert_eq!(j2.error_code, 0);
        assert_ne!(j2.member_id, old);
        assert_eq!(j2.generation_id, 1, "no rebalance");
        // Before v9 the old leader id comes back: the member must not assign.
        assert_eq!(j2.leader, old);
        assert!(j2.members.is_empty());
        assert_eq!(t.g.leader.as_deref(), Some(j2.member_id.as_str()));
        assert_eq!(t.g.state, ClassicState::Stable);
        assert_eq!(t.persisted, persisted + 1);
        assert_eq!(
            t.g.heartbeat(&old, Some("i1"), 1, t.at(5_100)),
            ErrorCode::FencedInstanceId
        );
        assert_eq!(
            t.g.heartbeat(&j2.member_id, Some("i1"), 1, t.at(5_100)),
            ErrorCode::None
        );
        // The new member id keeps the assignment.
        let mut s = t.sync(&j2.member_id, 1, &[], 5_200);
        assert_eq!(&s.try_recv().unwrap().assignment[..], b"x");
        // Removal by instance id alone (admin).
        let mut fx = Effects::default();
        let codes = t.g.leave(
            &[
                (String::new(), Some("i1".into())),
                (String::new(), Some("nope".into())),
            ],
            t.at(6_000),
            6_000,
            &cfg(),
            &mut fx,
        );
        assert_eq!(codes, vec![ErrorCode::None, ErrorCode::UnknownMemberId]);
        t.done(fx);
        assert!(t.g.members.is_empty());
    }

    #[test]
    fn group_max_size_and_leader_handover() {
        let mut t = T::new();
        let (leader, follower) = stable_with_two(&mut t);
        // A group of two with group.max.size=2 refuses a third member.
        let small = ClassicSettings {
            max_size: 2,
            ..cfg()
        };
        let (tx, mut rx) = oneshot::channel();
        let mut fx = Effects::default();
        let mut r = jreq("", &[RANGE]);
        r.require_known_member_id = false;
        t.g.join(r, tx, t.at(7_000), 7_000, &small, &mut fx);
        fx.deliver();
        let resp = rx.try_recv().unwrap();
        assert_eq!(resp.error_code, ErrorCode::GroupMaxSizeReached.code());
        assert_eq!(t.g.members.len(), 2);
        assert_eq!(t.g.state, ClassicState::Stable);
        // The leader leaves: the follower becomes leader of the next generation.
        assert_eq!(t.leave(&leader, 8_000), ErrorCode::None);
        assert_eq!(t.g.leader.as_deref(), Some(follower.as_str()));
        let mut rf = t.join(jreq(&follower, &[RANGE]), 8_100);
        let r = rf.try_recv().unwrap();
        assert_eq!((r.generation_id, r.leader.as_str()), (2, follower.as_str()));
        assert_eq!(r.members.len(), 1);
    }

    #[test]
    fn offset_commit_rules() {
        let mut t = T::new();
        // Simple consumer on an empty group.
        assert_eq!(t.g.validate_offset_commit("", None, -1), Ok(()));
        let (leader, _follower) = stable_with_two(&mut t);
        assert_eq!(
            t.g.validate_offset_commit("", None, -1),
            Err(ErrorCode::UnknownMemberId)
        );
        assert_eq!(t.g.validate_offset_commit(&leader, None, 1), Ok(()));
        assert_eq!(
            t.g.validate_offset_commit(&leader, None, 0),
            Err(ErrorCode::IllegalGeneration)
        );
        assert_eq!(
            t.g.validate_offset_commit("stranger", None, 1),
            Err(ErrorCode::UnknownMemberId)
        );
    }

    #[test]
    fn sync_errors() {
        let mut t = T::new();
        let (leader, _) = stable_with_two(&mut t);
        let mut s = t.sync("nobody", 1, &[], 7_000);
        assert_eq!(
            s.try_recv().unwrap().error_code,
            ErrorCode::UnknownMemberId.code()
        );
        let mut s = t.sync(&leader, 7, &[], 7_000);
        assert_eq!(
            s.try_recv().unwrap().error_code,
            ErrorCode::IllegalGeneration.code()
        );
        let (tx, mut rx) = oneshot::channel();
        let mut fx = Effects::default();
        t.g.sync(
            SyncRequest {
                member_id: leader.clone(),
                instance_id: None,
                generation: 1,
                protocol_type: Some("consumer".into()),
                protocol_name: Some("roundrobin".into()),
                assignments: vec![],
            },
            tx,
            t.at(7_000),
            7_000,
            &mut fx,
        );
        fx.deliver();
        assert_eq!(
            rx.try_recv().unwrap().error_code,
            ErrorCode::InconsistentGroupProtocol.code()
        );
    }

    #[test]
    fn group_value_round_trip_restores_a_stable_group() {
        let mut t = T::new();
        let (leader, follower) = stable_with_two(&mut t);
        let v = t.g.to_value();
        let now = Instant::now();
        let g = ClassicGroup::from_value("g", v, now, 1);
        assert_eq!(g.state, ClassicState::Stable);
        assert_eq!(g.generation, 1);
        assert_eq!(g.leader.as_deref(), Some(leader.as_str()));
        assert_eq!(g.members.len(), 2);
        assert!(g.members.contains_key(&follower));
        assert_eq!(g.protocol_name.as_deref(), Some("range"));
    }
}
