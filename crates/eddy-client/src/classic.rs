//! The classic consumer group member: JoinGroup/SyncGroup/Heartbeat/
//! LeaveGroup with client-side assignors ([`crate::assignor`]), as Java's
//! `ConsumerCoordinator` does it.
//!
//! [`ClassicMember`] implements the contract of [`crate::membership`]: the
//! consumer calls [`ClassicMember::poll`] until it returns `None` and acts on
//! each [`MembershipEvent`].
//!
//! - **Joining.** JoinGroup (protocol type `consumer`) offers one protocol
//!   per configured assignor, in preference order, each with this member's
//!   ConsumerProtocol subscription (v3). A first join without a member id is
//!   answered MEMBER_ID_REQUIRED (KIP-394) and repeated with the id the
//!   coordinator gave; a static member (`group.instance.id`, KIP-345) keeps
//!   its identity across restarts. The leader fetches the metadata of every
//!   member's topics, runs the assignor the coordinator chose and sends all
//!   assignments in SyncGroup.
//! - **Rebalance protocol** (KIP-429): COOPERATIVE if every configured
//!   assignor supports it, else EAGER. Eager: `Revoked(all owned)` before
//!   rejoining. Cooperative: the member keeps its partitions and reports them
//!   in its subscription; after SyncGroup it emits `Revoked(owned − new)`,
//!   `Assigned(new − owned)` and rejoins at once if it revoked anything, so
//!   the revoked partitions can go to their new owners.
//! - **Heartbeats** run in a background task while the member is in a
//!   generation, every `heartbeat.interval.ms`, whether or not the consumer
//!   polls; what they learn (REBALANCE_IN_PROGRESS, fencing) is acted on at
//!   the next `poll()`. If `poll()` is not called for `max.poll.interval.ms`
//!   the task leaves the group (a static member just stops heartbeating) and
//!   the next `poll()` reports the partitions `Lost` and rejoins.
//! - **Errors.** UNKNOWN_MEMBER_ID (member id reset) and ILLEGAL_GENERATION
//!   make the member rejoin and report its partitions `Lost`;
//!   FENCED_INSTANCE_ID (another process uses the same `group.instance.id`)
//!   is fatal: every later `poll()` returns it. NOT_COORDINATOR /
//!   COORDINATOR_NOT_AVAILABLE make it look the coordinator up again;
//!   retriable network errors are retried after `retry.backoff.ms`.
//! - **Metadata.** The leader re-reads the partition counts of the group's
//!   topics every `metadata.max.age.ms` and rejoins when one changed (or a
//!   subscribed topic appeared), so new partitions get assigned.
//! - **Cancel safety.** The join and sync run in a spawned task that
//!   `poll()` only awaits, and every state change happens without awaiting,
//!   so the consumer may drop `poll()` at any point and call it again.
//!
//! The member talks to the coordinator over its own connection (not the
//! cluster's pooled one): a broker handles one request per connection at a
//! time, and a JoinGroup can wait for minutes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use eddy_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use eddy_protocol::messages::leave_group_request::MemberIdentity;
use eddy_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use eddy_protocol::messages::{
    HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, SyncGroupRequest,
};
use eddy_protocol::{ApiKey, ErrorCode};
use parking_lot::Mutex;
use tokio::task::JoinHandle;

use crate::assignor::{
    builtin_assignor, decode_assignment, decode_subscription, encode_assignment,
    encode_subscription, rebalance_protocol, Assignment, AssignorError, PartitionAssignor,
    PartitionRacks, RebalanceProtocol, Subscription, UserDataContext, CONSUMER_PROTOCOL_VERSION,
    DEFAULT_GENERATION,
};
use crate::cluster::Cluster;
use crate::connection::{Connection, ConnectionOptions};
use crate::error::{ClientError, KafkaError};
use crate::group_admin::find_coordinator;
use crate::membership::{CommitIdentity, MemberConfig, MembershipEvent, TopicPartition};
use crate::util::ms_i32;

/// The protocol type of consumer groups.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// The coordinator connection, shared by the member and its tasks.
type CoordinatorSlot = Arc<Mutex<Option<Arc<Connection>>>>;

/// What the member and its tasks need to reach the coordinator.
#[derive(Clone)]
struct Ctx {
    cluster: Arc<Cluster>,
    config: MemberConfig,
    coordinator: CoordinatorSlot,
    /// The JoinGroup timeout: `max.poll.interval.ms` + 5 s (Java's), at
    /// least `request.timeout.ms`.
    join_timeout: Duration,
}

impl Ctx {
    fn request_timeout(&self) -> Duration {
        self.cluster.config().request_timeout
    }

    /// The coordinator connection, looking the coordinator up if needed.
    async fn coordinator(&self) -> Result<Arc<Connection>, ClientError> {
        if let Some(c) = self.coordinator.lock().as_ref() {
            if c.is_open() {
                return Ok(c.clone());
            }
        }
        let broker = find_coordinator(&self.cluster, &self.config.group_id).await?;
        let mut opts = ConnectionOptions::from(self.cluster.config());
        // Requests are timed individually below; the connection allows the
        // longest (JoinGroup).
        opts.request_timeout = opts.request_timeout.max(self.join_timeout);
        let conn = Arc::new(Connection::connect(&broker.addr(), opts).await?);
        tracing::debug!(group = %self.config.group_id, coordinator = broker.node_id, "coordinator found");
        *self.coordinator.lock() = Some(conn.clone());
        Ok(conn)
    }

    /// Forgets the coordinator (NOT_COORDINATOR, lost connection): the next
    /// request looks it up again.
    fn coordinator_unknown(&self) {
        *self.coordinator.lock() = None;
    }

    async fn timed<F: std::future::Future<Output = Result<T, ClientError>>, T>(
        &self,
        api: ApiKey,
        timeout: Duration,
        f: F,
    ) -> Result<T, ClientError> {
        match tokio::time::timeout(timeout, f).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout {
                api,
                addr: self
                    .coordinator
                    .lock()
                    .as_ref()
                    .map(|c| c.addr().to_string())
                    .unwrap_or_default(),
                timeout,
            }),
        }
    }

    /// LeaveGroup for a dynamic member (static members never send it, as in
    /// Java: they leave when their session expires).
    async fn leave_group(&self, member_id: &str, reason: &str) -> Result<(), ClientError> {
        if self.config.group_instance_id.is_some() || member_id.is_empty() {
            return Ok(());
        }
        let conn = self.coordinator().await?;
        let version = conn.version::<LeaveGroupRequest>()?;
        let req = if version >= 3 {
            LeaveGroupRequest {
                group_id: self.config.group_id.clone(),
                member_id: String::new(),
                members: vec![MemberIdentity {
                    member_id: member_id.to_string(),
                    group_instance_id: None,
                    reason: Some(reason.to_string()),
                }],
            }
        } else {
            LeaveGroupRequest {
                group_id: self.config.group_id.clone(),
                member_id: member_id.to_string(),
                members: Vec::new(),
            }
        };
        let resp = self
            .timed(
                ApiKey::LeaveGroup,
                self.request_timeout(),
                conn.send_version(&req, version),
            )
            .await?;
        let mut code = ErrorCode::from_code_or_unknown(resp.error_code);
        if code == ErrorCode::None {
            if let Some(m) = resp.members.iter().find(|m| m.error_code != 0) {
                code = ErrorCode::from_code_or_unknown(m.error_code);
            }
        }
        match code {
            // Already gone: what leaving wanted.
            ErrorCode::None | ErrorCode::UnknownMemberId => Ok(()),
            _ => Err(KafkaError::new(code).into()),
        }
    }
}

/// The member's place in the group after a successful SyncGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Generation {
    generation_id: i32,
    member_id: String,
    protocol: String,
    leader: bool,
}

/// What the background heartbeat task reports to `poll()`.
#[derive(Debug, Default)]
struct HeartbeatState {
    /// Which heartbeat task may report: bumped when a task is stopped, so
    /// that a report racing with the stop (the task runs on another
    /// thread) is dropped instead of being taken for the next generation's.
    epoch: u64,
    /// When `poll()` was last called (the `max.poll.interval.ms` timer).
    last_poll: Option<Instant>,
    /// When the next heartbeat is due.
    next_heartbeat: Option<Instant>,
    /// The coordinator started a rebalance, or the leader saw the partition
    /// count of a topic change: rejoin.
    rejoin: Option<&'static str>,
    /// UNKNOWN_MEMBER_ID / ILLEGAL_GENERATION / FENCED_INSTANCE_ID.
    fenced: Option<ErrorCode>,
    /// The member left because `poll()` was not called in time.
    poll_timeout: bool,
}

/// What the join task hands back.
#[derive(Debug)]
struct JoinOutcome {
    /// The member id after the attempt (a new one from MEMBER_ID_REQUIRED,
    /// or "" after UNKNOWN_MEMBER_ID).
    member_id: String,
    result: Result<Joined, ClientError>,
}

#[derive(Debug)]
struct Joined {
    generation: Generation,
    assignment: Assignment,
    /// The leader's view of the partition counts of the group's topics
    /// (0 for a topic that does not exist).
    snapshot: Option<BTreeMap<String, i32>>,
}

/// A member of a classic consumer group (see the module docs).
pub struct ClassicMember {
    ctx: Ctx,
    assignors: Vec<Arc<dyn PartitionAssignor>>,
    protocol: RebalanceProtocol,
    subscription: BTreeSet<String>,
    /// The member id ("" before the first join of a dynamic member).
    member_id: String,
    generation: Option<Generation>,
    owned: BTreeSet<TopicPartition>,
    /// The last assignment and its generation, for the sticky assignor's
    /// user data (kept across eager revocations).
    last_assignment: Option<(Vec<TopicPartition>, i32)>,
    events: VecDeque<MembershipEvent>,
    rejoin_needed: bool,
    /// The subscription the running (or last) join was sent with.
    joined_subscription: BTreeSet<String>,
    /// Why the member rejoins (JoinGroup v8+ `reason`, logged by brokers).
    rejoin_reason: Option<String>,
    /// The revocation/loss before the next join has been emitted.
    prepared: bool,
    join_task: Option<JoinHandle<JoinOutcome>>,
    heartbeat_task: Option<JoinHandle<()>>,
    heartbeat: Arc<Mutex<HeartbeatState>>,
    /// No join before this instant (after a retriable failure).
    retry_at: Option<Instant>,
    failures: u32,
    /// FENCED_INSTANCE_ID: the member is unusable.
    fatal: Option<ClientError>,
}

impl std::fmt::Debug for ClassicMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClassicMember")
            .field("group", &self.ctx.config.group_id)
            .field("member_id", &self.member_id)
            .field("generation", &self.generation)
            .field("protocol", &self.protocol)
            .field("owned", &self.owned)
            .finish()
    }
}

impl Drop for ClassicMember {
    fn drop(&mut self) {
        if let Some(t) = self.join_task.take() {
            t.abort();
        }
        if let Some(t) = self.heartbeat_task.take() {
            t.abort();
        }
    }
}

impl ClassicMember {
    /// A member of `config.group_id`; it joins on the first `poll()` after a
    /// non-empty [`set_subscription`](Self::set_subscription). The assignors
    /// are the built-ins named by `config.assignment_strategies`.
    pub fn new(cluster: Arc<Cluster>, config: MemberConfig) -> Result<Self, ClientError> {
        let assignors = config
            .assignment_strategies
            .iter()
            .map(|n| builtin_assignor(n.trim()))
            .collect::<Result<Vec<_>, AssignorError>>()?;
        Self::with_assignors(cluster, config, assignors)
    }

    /// Like [`new`](Self::new) with custom assignors (in preference order;
    /// `config.assignment_strategies` is ignored).
    pub fn with_assignors(
        cluster: Arc<Cluster>,
        config: MemberConfig,
        assignors: Vec<Arc<dyn PartitionAssignor>>,
    ) -> Result<Self, ClientError> {
        if config.group_id.is_empty() {
            return Err(ClientError::config("group.id", "must not be empty"));
        }
        if assignors.is_empty() {
            return Err(ClientError::config(
                "partition.assignment.strategy",
                "at least one assignor is needed",
            ));
        }
        let mut names = BTreeSet::new();
        for a in &assignors {
            if !names.insert(a.name().to_string()) {
                return Err(ClientError::config(
                    "partition.assignment.strategy",
                    format!("assignor '{}' is listed twice", a.name()),
                ));
            }
        }
        if config.group_instance_id.as_deref() == Some("") {
            return Err(ClientError::config(
                "group.instance.id",
                "must not be empty",
            ));
        }
        if config.heartbeat_interval >= config.session_timeout {
            return Err(ClientError::config(
                "heartbeat.interval.ms",
                "must be lower than session.timeout.ms",
            ));
        }
        let protocol = rebalance_protocol(&assignors);
        let join_timeout = (config.rebalance_timeout + Duration::from_secs(5))
            .max(cluster.config().request_timeout);
        Ok(ClassicMember {
            ctx: Ctx {
                cluster,
                config,
                coordinator: Arc::new(Mutex::new(None)),
                join_timeout,
            },
            assignors,
            protocol,
            subscription: BTreeSet::new(),
            member_id: String::new(),
            generation: None,
            owned: BTreeSet::new(),
            last_assignment: None,
            events: VecDeque::new(),
            rejoin_needed: true,
            joined_subscription: BTreeSet::new(),
            rejoin_reason: None,
            prepared: false,
            join_task: None,
            heartbeat_task: None,
            heartbeat: Arc::new(Mutex::new(HeartbeatState::default())),
            retry_at: None,
            failures: 0,
            fatal: None,
        })
    }

    /// The rebalance protocol in use (from the assignors).
    pub fn rebalance_protocol(&self) -> RebalanceProtocol {
        self.protocol
    }

    /// The member id the coordinator gave ("" before the first join).
    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    /// The current generation id, if the member is in one.
    pub fn generation_id(&self) -> Option<i32> {
        self.generation.as_ref().map(|g| g.generation_id)
    }

    /// Whether this member was the leader of its current generation.
    pub fn is_leader(&self) -> bool {
        self.generation.as_ref().is_some_and(|g| g.leader)
    }

    /// The topics to be assigned from; a change makes the member rejoin.
    pub fn set_subscription(&mut self, topics: BTreeSet<String>) {
        if topics != self.subscription {
            tracing::debug!(group = %self.ctx.config.group_id, ?topics, "subscription changed");
            self.subscription = topics;
            self.request_rejoin("subscription changed");
        }
    }

    /// The subscribed topics.
    pub fn subscription(&self) -> &BTreeSet<String> {
        &self.subscription
    }

    /// The partitions this member owns.
    pub fn owned(&self) -> &BTreeSet<TopicPartition> {
        &self.owned
    }

    /// The identity OffsetCommit needs, while the member is in a generation.
    pub fn commit_identity(&self) -> Option<CommitIdentity> {
        self.generation.as_ref().map(|g| CommitIdentity {
            member_id: g.member_id.clone(),
            generation_id: g.generation_id,
            group_instance_id: self.ctx.config.group_instance_id.clone(),
        })
    }

    /// An OffsetCommit failed with `code`: rejoin as Java does
    /// (UNKNOWN_MEMBER_ID / ILLEGAL_GENERATION: the partitions are lost;
    /// REBALANCE_IN_PROGRESS: rejoin; FENCED_INSTANCE_ID: fatal).
    pub fn commit_failed(&mut self, code: ErrorCode) {
        match code {
            ErrorCode::UnknownMemberId
            | ErrorCode::IllegalGeneration
            | ErrorCode::FencedInstanceId => self.fenced(code),
            ErrorCode::RebalanceInProgress => self.request_rejoin("commit: rebalance in progress"),
            _ => {}
        }
    }

    /// Like [`commit_failed`](Self::commit_failed), for a commit sent with
    /// `identity`: ignored if the member has moved on to another generation
    /// since (Java checks this too), e.g. for a late async commit.
    pub fn commit_failed_with(&mut self, identity: &CommitIdentity, code: ErrorCode) {
        if self.commit_identity().as_ref() == Some(identity) {
            self.commit_failed(code);
        } else {
            tracing::debug!(error = ?code, ?identity, "a commit of an older generation failed; ignored");
        }
    }

    /// When `poll()` must run again at the latest, if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        let now = Instant::now();
        if self.fatal.is_some() {
            return None;
        }
        if !self.events.is_empty() {
            return Some(now);
        }
        if self.subscription.is_empty() {
            return None;
        }
        if self.rejoin_needed || self.generation.is_none() {
            return Some(self.retry_at.unwrap_or(now).max(now));
        }
        let hb = self.heartbeat.lock();
        if hb.rejoin.is_some() || hb.fenced.is_some() || hb.poll_timeout {
            return Some(now);
        }
        hb.next_heartbeat
    }

    /// Leaves the group: stops heartbeating and, for a dynamic member, sends
    /// LeaveGroup (a static member stays in the group until its session
    /// times out, as in Java). The consumer handles the revocation of
    /// [`owned`](Self::owned) before; the member owns nothing afterwards.
    pub async fn leave(&mut self) -> Result<(), ClientError> {
        if let Some(t) = self.join_task.take() {
            t.abort();
            // A JoinGroup may still be in flight on that connection.
            self.ctx.coordinator_unknown();
        }
        self.stop_heartbeat();
        self.events.clear();
        self.owned.clear();
        let generation = self.generation.take();
        let member_id = std::mem::take(&mut self.member_id);
        self.rejoin_needed = true;
        self.prepared = false;
        let was_member = generation.is_some() || !member_id.is_empty();
        if self.ctx.config.group_instance_id.is_none() && was_member {
            tracing::info!(group = %self.ctx.config.group_id, %member_id, "leaving the group");
            let ctx = self.ctx.clone();
            ctx.leave_group(&member_id, "the consumer is leaving the group")
                .await?;
        }
        Ok(())
    }

    /// Joins, syncs and reports what the heartbeats learned, as due; returns
    /// the next event, or `None` when there is nothing to do now.
    /// Cancel-safe.
    pub async fn poll(&mut self) -> Result<Option<MembershipEvent>, ClientError> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Ok(Some(e));
            }
            if let Some(e) = &self.fatal {
                return Err(e.clone());
            }
            self.heartbeat.lock().last_poll = Some(Instant::now());
            self.absorb_heartbeat();
            if !self.events.is_empty() {
                continue;
            }
            if self.subscription.is_empty() {
                self.unsubscribed();
                if self.events.is_empty() {
                    return Ok(None);
                }
                continue;
            }
            if !self.rejoin_needed && self.generation.is_some() {
                return Ok(None);
            }
            if self.join_task.is_none() {
                if let Some(at) = self.retry_at {
                    if Instant::now() < at {
                        return Ok(None);
                    }
                }
                if !self.prepared {
                    self.prepare_join();
                    self.prepared = true;
                    if !self.events.is_empty() {
                        continue;
                    }
                }
                self.start_join()?;
            }
            let Some(task) = self.join_task.as_mut() else {
                continue;
            };
            // Cancel-safe: the task keeps running if this future is dropped.
            let outcome = task.await;
            self.join_task = None;
            match outcome {
                Ok(o) => self.joined(o)?,
                Err(e) => {
                    // The task panicked or was aborted: try again later.
                    tracing::error!(error = %e, "join task failed");
                    self.backoff();
                }
            }
        }
    }

    fn request_rejoin(&mut self, reason: &str) {
        if !self.rejoin_needed {
            tracing::info!(group = %self.ctx.config.group_id, member_id = %self.member_id, reason, "rejoining the group");
            self.rejoin_reason = Some(reason.to_string());
        }
        self.rejoin_needed = true;
    }

    /// UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, FENCED_INSTANCE_ID, from any
    /// request: the generation is gone; the owned partitions are lost.
    fn fenced(&mut self, code: ErrorCode) {
        if code == ErrorCode::FencedInstanceId {
            tracing::error!(group = %self.ctx.config.group_id,
                instance = ?self.ctx.config.group_instance_id,
                "fenced: another consumer uses this group.instance.id");
            self.stop_heartbeat();
            self.fatal = Some(
                KafkaError::new(code)
                    .with_message(Some(format!(
                        "another consumer joined group '{}' with group.instance.id {:?}",
                        self.ctx.config.group_id,
                        self.ctx
                            .config
                            .group_instance_id
                            .as_deref()
                            .unwrap_or_default()
                    )))
                    .into(),
            );
            return;
        }
        tracing::info!(group = %self.ctx.config.group_id, member_id = %self.member_id, error = ?code,
            "the member is no longer in its generation; rejoining");
        if code == ErrorCode::UnknownMemberId {
            self.member_id.clear();
        }
        self.generation = None;
        self.stop_heartbeat();
        self.prepared = false;
        self.request_rejoin(code.name());
    }

    fn absorb_heartbeat(&mut self) {
        let (rejoin, fenced, poll_timeout) = {
            let mut hb = self.heartbeat.lock();
            (
                hb.rejoin.take(),
                hb.fenced.take(),
                std::mem::take(&mut hb.poll_timeout),
            )
        };
        if poll_timeout {
            // Java resets the generation (and a dynamic member's id) after
            // leaving on poll timeout; the partitions are lost.
            if self.ctx.config.group_instance_id.is_none() {
                self.member_id.clear();
            }
            self.generation = None;
            self.stop_heartbeat();
            self.prepared = false;
            self.request_rejoin("max.poll.interval.ms expired");
        }
        if let Some(code) = fenced {
            self.fenced(code);
        }
        if let Some(reason) = rejoin {
            self.request_rejoin(reason);
        }
    }

    /// The subscription is empty: give up the partitions and the membership.
    fn unsubscribed(&mut self) {
        if let Some(t) = self.join_task.take() {
            t.abort();
            self.ctx.coordinator_unknown();
        }
        self.stop_heartbeat();
        if !self.owned.is_empty() {
            let parts: Vec<TopicPartition> = std::mem::take(&mut self.owned).into_iter().collect();
            self.events.push_back(if self.generation.is_some() {
                MembershipEvent::Revoked(parts)
            } else {
                MembershipEvent::Lost(parts)
            });
        }
        if self.generation.take().is_some() || !self.member_id.is_empty() {
            let member_id = std::mem::take(&mut self.member_id);
            let ctx = self.ctx.clone();
            tokio::spawn(async move {
                if let Err(e) = ctx
                    .leave_group(&member_id, "the consumer unsubscribed")
                    .await
                {
                    tracing::debug!(error = %e, "LeaveGroup after unsubscribe failed");
                }
            });
        }
        self.rejoin_needed = true;
        self.prepared = false;
    }

    /// Java's onJoinPrepare: partitions lost with the generation, all
    /// partitions (eager), or those no longer subscribed (cooperative).
    fn prepare_join(&mut self) {
        if self.owned.is_empty() {
            return;
        }
        if self.generation.is_none() {
            let lost: Vec<TopicPartition> = std::mem::take(&mut self.owned).into_iter().collect();
            self.events.push_back(MembershipEvent::Lost(lost));
            return;
        }
        let revoked: Vec<TopicPartition> = match self.protocol {
            RebalanceProtocol::Eager => std::mem::take(&mut self.owned).into_iter().collect(),
            RebalanceProtocol::Cooperative => {
                let gone: Vec<TopicPartition> = self
                    .owned
                    .iter()
                    .filter(|(t, _)| !self.subscription.contains(t))
                    .cloned()
                    .collect();
                for p in &gone {
                    self.owned.remove(p);
                }
                gone
            }
        };
        if !revoked.is_empty() {
            self.events.push_back(MembershipEvent::Revoked(revoked));
        }
    }

    fn stop_heartbeat(&mut self) {
        if let Some(t) = self.heartbeat_task.take() {
            t.abort();
        }
        let mut hb = self.heartbeat.lock();
        hb.epoch += 1;
        hb.next_heartbeat = None;
        hb.rejoin = None;
        hb.fenced = None;
        hb.poll_timeout = false;
    }

    fn backoff(&mut self) {
        self.failures = self.failures.saturating_add(1);
        let base = self.ctx.cluster.config().retry_backoff;
        let factor = 1u32 << self.failures.min(5).saturating_sub(1);
        let delay = (base * factor).min(Duration::from_secs(1).max(base));
        self.retry_at = Some(Instant::now() + delay);
    }

    /// The protocols of the JoinGroup: one subscription per assignor.
    fn protocols(&self) -> Result<Vec<(String, Bytes)>, ClientError> {
        let generation = self
            .generation
            .as_ref()
            .map_or(DEFAULT_GENERATION, |g| g.generation_id);
        let ctx = UserDataContext {
            topics: self.subscription.clone(),
            previous_assignment: self.last_assignment.as_ref().map(|(p, _)| p.clone()),
            generation: self
                .last_assignment
                .as_ref()
                .map_or(DEFAULT_GENERATION, |(_, g)| *g),
        };
        let mut out = Vec::new();
        for a in &self.assignors {
            let sub = Subscription {
                topics: self.subscription.iter().cloned().collect(),
                user_data: a.subscription_user_data(&ctx),
                // Eager members revoked everything: this is empty for them.
                owned_partitions: self.owned.iter().cloned().collect(),
                generation_id: (generation >= 0).then_some(generation),
                rack_id: self.ctx.config.rack.clone(),
                group_instance_id: None,
            };
            out.push((
                a.name().to_string(),
                encode_subscription(&sub, CONSUMER_PROTOCOL_VERSION)?,
            ));
        }
        Ok(out)
    }

    fn start_join(&mut self) -> Result<(), ClientError> {
        self.stop_heartbeat();
        let protocols = self.protocols()?;
        self.joined_subscription = self.subscription.clone();
        let task = JoinTask {
            ctx: self.ctx.clone(),
            member_id: self.member_id.clone(),
            reason: self.rejoin_reason.clone(),
            protocols,
            assignors: self.assignors.clone(),
            protocol: self.protocol,
        };
        tracing::debug!(group = %self.ctx.config.group_id, member_id = %self.member_id, "joining");
        self.join_task = Some(tokio::spawn(task.run()));
        Ok(())
    }

    /// Applies the outcome of a join (no awaiting: cancel-safe).
    fn joined(&mut self, o: JoinOutcome) -> Result<(), ClientError> {
        self.member_id = o.member_id;
        let j = match o.result {
            Ok(j) => j,
            Err(e) => return self.join_failed(e),
        };
        self.failures = 0;
        self.retry_at = None;
        self.prepared = false;
        self.rejoin_needed = false;
        self.rejoin_reason = None;
        let gen_id = j.generation.generation_id;
        tracing::info!(group = %self.ctx.config.group_id, member_id = %j.generation.member_id,
            generation = gen_id, protocol = %j.generation.protocol, leader = j.generation.leader,
            assignment = ?j.assignment.partitions, "joined the group");
        let mut target: BTreeSet<TopicPartition> = BTreeSet::new();
        for p in j.assignment.partitions {
            if self.subscription.contains(&p.0) {
                target.insert(p);
            } else {
                // Java: assigned a topic we do not subscribe to (the
                // subscription changed during the rebalance): rejoin.
                self.request_rejoin("assigned a topic the member does not subscribe to");
            }
        }
        if self.joined_subscription != self.subscription {
            // set_subscription() while the join was in flight.
            self.request_rejoin("the subscription changed during the rebalance");
        }
        self.generation = Some(j.generation);
        self.last_assignment = Some((target.iter().cloned().collect(), gen_id));
        let revoked: Vec<TopicPartition> = self.owned.difference(&target).cloned().collect();
        let added: Vec<TopicPartition> = target.difference(&self.owned).cloned().collect();
        if !revoked.is_empty() {
            for p in &revoked {
                self.owned.remove(p);
            }
            self.events.push_back(MembershipEvent::Revoked(revoked));
            if self.protocol == RebalanceProtocol::Cooperative {
                // KIP-429: rejoin so the revoked partitions can be assigned.
                self.request_rejoin("need to revoke partitions and re-join");
            }
        }
        self.owned.extend(added.iter().cloned());
        self.events.push_back(MembershipEvent::Assigned(added));
        if self.rejoin_needed {
            tracing::debug!(group = %self.ctx.config.group_id, "rejoining after the assignment");
        }
        self.start_heartbeat(j.snapshot);
        Ok(())
    }

    fn join_failed(&mut self, e: ClientError) -> Result<(), ClientError> {
        match e.code() {
            Some(
                code @ (ErrorCode::UnknownMemberId
                | ErrorCode::IllegalGeneration
                | ErrorCode::FencedInstanceId),
            ) => {
                self.fenced(code);
                match &self.fatal {
                    Some(f) => Err(f.clone()),
                    None => Ok(()),
                }
            }
            Some(ErrorCode::RebalanceInProgress) => {
                // A new round started while syncing: join again at once,
                // still in the last generation.
                Ok(())
            }
            Some(
                ErrorCode::NotCoordinator
                | ErrorCode::CoordinatorNotAvailable
                | ErrorCode::CoordinatorLoadInProgress,
            ) => {
                tracing::debug!(error = %e, "coordinator unavailable, looking it up again");
                self.ctx.coordinator_unknown();
                self.backoff();
                Ok(())
            }
            _ if e.is_retriable() => {
                tracing::debug!(error = %e, "join failed, retrying");
                if matches!(
                    e,
                    ClientError::Disconnected { .. } | ClientError::Timeout { .. }
                ) {
                    self.ctx.coordinator_unknown();
                }
                self.backoff();
                Ok(())
            }
            _ => {
                tracing::warn!(error = %e, "join failed");
                self.backoff();
                Err(e)
            }
        }
    }

    fn start_heartbeat(&mut self, snapshot: Option<BTreeMap<String, i32>>) {
        self.stop_heartbeat();
        let Some(g) = self.generation.clone() else {
            return;
        };
        {
            let mut hb = self.heartbeat.lock();
            hb.next_heartbeat = Some(Instant::now() + self.ctx.config.heartbeat_interval);
            hb.last_poll = Some(Instant::now());
        }
        let epoch = self.heartbeat.lock().epoch;
        let task = HeartbeatTask {
            ctx: self.ctx.clone(),
            generation: g,
            epoch,
            state: self.heartbeat.clone(),
            snapshot,
        };
        self.heartbeat_task = Some(tokio::spawn(task.run()));
    }
}

/// One JoinGroup + SyncGroup round, run as its own task.
struct JoinTask {
    ctx: Ctx,
    member_id: String,
    reason: Option<String>,
    protocols: Vec<(String, Bytes)>,
    assignors: Vec<Arc<dyn PartitionAssignor>>,
    protocol: RebalanceProtocol,
}

impl JoinTask {
    async fn run(mut self) -> JoinOutcome {
        let result = self.join_and_sync().await;
        JoinOutcome {
            member_id: self.member_id,
            result,
        }
    }

    async fn join_and_sync(&mut self) -> Result<Joined, ClientError> {
        let cfg = self.ctx.config.clone();
        let resp = self.join().await?;
        let protocol_name = resp.protocol_name.clone().unwrap_or_default();
        if let Some(t) = &resp.protocol_type {
            if t != CONSUMER_PROTOCOL_TYPE {
                return Err(KafkaError::new(ErrorCode::InconsistentGroupProtocol)
                    .with_message(Some(format!("the group's protocol type is '{t}'")))
                    .into());
            }
        }
        let leader = resp.leader == resp.member_id;
        let generation = Generation {
            generation_id: resp.generation_id,
            member_id: resp.member_id.clone(),
            protocol: protocol_name.clone(),
            leader,
        };
        let (assignments, snapshot) = if leader && !resp.skip_assignment {
            let (a, s) = self.assign(&protocol_name, &resp).await?;
            (a, Some(s))
        } else if leader {
            // KIP-814: a returning static leader keeps the assignment but
            // still watches the partition counts.
            let subs = member_subscriptions(&resp)?;
            let topics = subs
                .values()
                .flat_map(|s| s.topics.iter().cloned())
                .collect();
            (
                Vec::new(),
                Some(counts_of(
                    &partition_racks(&self.ctx.cluster, &topics).await?,
                )),
            )
        } else {
            (Vec::new(), None)
        };
        let conn = self.ctx.coordinator().await?;
        let req = SyncGroupRequest {
            group_id: cfg.group_id.clone(),
            generation_id: resp.generation_id,
            member_id: resp.member_id.clone(),
            group_instance_id: cfg.group_instance_id.clone(),
            protocol_type: Some(CONSUMER_PROTOCOL_TYPE.to_string()),
            protocol_name: Some(protocol_name.clone()),
            assignments,
        };
        let timeout = self.ctx.request_timeout().max(cfg.session_timeout);
        let sync = self
            .ctx
            .timed(ApiKey::SyncGroup, timeout, conn.send(&req))
            .await?;
        let code = ErrorCode::from_code_or_unknown(sync.error_code);
        if code != ErrorCode::None {
            return Err(KafkaError::new(code).into());
        }
        if let Some(name) = &sync.protocol_name {
            if *name != protocol_name {
                return Err(KafkaError::new(ErrorCode::InconsistentGroupProtocol)
                    .with_message(Some(format!(
                        "SyncGroup answered protocol '{name}', JoinGroup '{protocol_name}'"
                    )))
                    .into());
            }
        }
        let assignment = decode_assignment(&sync.assignment)?;
        Ok(Joined {
            generation,
            assignment,
            snapshot,
        })
    }

    async fn join(&mut self) -> Result<JoinGroupResponse, ClientError> {
        let cfg = self.ctx.config.clone();
        // MEMBER_ID_REQUIRED once, then the real join.
        for _ in 0..3 {
            let conn = self.ctx.coordinator().await?;
            let req = JoinGroupRequest {
                group_id: cfg.group_id.clone(),
                session_timeout_ms: ms_i32(cfg.session_timeout),
                rebalance_timeout_ms: ms_i32(cfg.rebalance_timeout),
                member_id: self.member_id.clone(),
                group_instance_id: cfg.group_instance_id.clone(),
                protocol_type: CONSUMER_PROTOCOL_TYPE.to_string(),
                protocols: self
                    .protocols
                    .iter()
                    .map(|(name, metadata)| JoinGroupRequestProtocol {
                        name: name.clone(),
                        metadata: metadata.clone(),
                    })
                    .collect(),
                reason: self.reason.clone(),
            };
            if cfg.group_instance_id.is_some() && conn.version::<JoinGroupRequest>()? < 5 {
                return Err(ClientError::UnsupportedVersion {
                    api: ApiKey::JoinGroup,
                    addr: conn.addr().to_string(),
                    min: 5,
                    max: 9,
                    broker: "older (no static membership)".into(),
                });
            }
            let resp = self
                .ctx
                .timed(ApiKey::JoinGroup, self.ctx.join_timeout, conn.send(&req))
                .await?;
            let code = ErrorCode::from_code_or_unknown(resp.error_code);
            match code {
                ErrorCode::None => {
                    self.member_id = resp.member_id.clone();
                    return Ok(resp);
                }
                ErrorCode::MemberIdRequired => {
                    tracing::debug!(member_id = %resp.member_id, "member id required, joining again");
                    self.member_id = resp.member_id;
                }
                ErrorCode::UnknownMemberId => {
                    self.member_id.clear();
                    return Err(KafkaError::new(code).into());
                }
                _ => return Err(KafkaError::new(code).into()),
            }
        }
        Err(KafkaError::new(ErrorCode::MemberIdRequired)
            .with_message(Some("the coordinator keeps asking for a member id".into()))
            .into())
    }

    /// The leader's part: subscriptions → metadata → assignor → assignments.
    async fn assign(
        &self,
        protocol_name: &str,
        resp: &JoinGroupResponse,
    ) -> Result<(Vec<SyncGroupRequestAssignment>, BTreeMap<String, i32>), ClientError> {
        let assignor = self
            .assignors
            .iter()
            .find(|a| a.name() == protocol_name)
            .ok_or_else(|| {
                ClientError::from(
                    KafkaError::new(ErrorCode::InconsistentGroupProtocol).with_message(Some(
                        format!(
                        "the coordinator chose assignor '{protocol_name}', which this member lacks"
                    ),
                    )),
                )
            })?;
        let subs = member_subscriptions(resp)?;
        let topics: BTreeSet<String> = subs
            .values()
            .flat_map(|s| s.topics.iter().cloned())
            .collect();
        let racks = partition_racks(&self.ctx.cluster, &topics).await?;
        let snapshot = counts_of(&racks);
        let existing: PartitionRacks = racks.into_iter().filter(|(_, ps)| !ps.is_empty()).collect();
        let result = assignor.assign_with_racks(&existing, &subs)?;
        if self.protocol == RebalanceProtocol::Cooperative {
            validate_cooperative(assignor.name(), &subs, &result)?;
        }
        tracing::info!(group = %self.ctx.config.group_id, assignor = assignor.name(),
            generation = resp.generation_id, assignment = ?result, "assigned partitions as the leader");
        let mut out = Vec::new();
        for member in subs.keys() {
            let a = result.get(member).cloned().unwrap_or_default();
            out.push(SyncGroupRequestAssignment {
                member_id: member.clone(),
                assignment: encode_assignment(&a, CONSUMER_PROTOCOL_VERSION)?,
            });
        }
        Ok((out, snapshot))
    }
}

/// The members' subscriptions from a JoinGroup response (leader only).
fn member_subscriptions(
    resp: &JoinGroupResponse,
) -> Result<BTreeMap<String, Subscription>, AssignorError> {
    let mut subs = BTreeMap::new();
    for m in &resp.members {
        let mut s = decode_subscription(&m.metadata)?;
        s.group_instance_id = m.group_instance_id.clone();
        subs.insert(m.member_id.clone(), s);
    }
    Ok(subs)
}

/// Java's validateCooperativeAssignment: no partition may be given to a
/// member while another member still owns it.
fn validate_cooperative(
    name: &str,
    subs: &BTreeMap<String, Subscription>,
    result: &BTreeMap<String, Assignment>,
) -> Result<(), AssignorError> {
    for (m, a) in result {
        for p in &a.partitions {
            if let Some((owner, _)) = subs
                .iter()
                .find(|(o, s)| *o != m && s.owned_partitions.contains(p))
            {
                return Err(AssignorError::Failed {
                    assignor: name.to_string(),
                    reason: format!(
                        "{}-{} was assigned to {m} while {owner} still owns it (cooperative protocol)",
                        p.0, p.1
                    ),
                });
            }
        }
    }
    Ok(())
}

/// The replica racks of every partition of each topic (no partitions for a
/// topic that does not exist), fresh from the brokers.
async fn partition_racks(
    cluster: &Cluster,
    topics: &BTreeSet<String>,
) -> Result<PartitionRacks, ClientError> {
    let mut out: PartitionRacks = topics.iter().map(|t| (t.clone(), Vec::new())).collect();
    if topics.is_empty() {
        return Ok(out);
    }
    let names: Vec<String> = topics.iter().cloned().collect();
    let r = cluster.refresh(Some(&names), false).await?;
    let rack_of: BTreeMap<i32, &str> = r
        .brokers
        .iter()
        .filter_map(|b| Some((b.node_id, b.rack.as_deref()?)))
        .collect();
    for (name, t) in &r.topics {
        if let (Some(slot), Ok(info)) = (out.get_mut(name), t) {
            // Indexed by partition (sorted; a gap is filled with no racks).
            let n = info.partitions.last().map_or(0, |p| p.partition + 1).max(0) as usize;
            let mut racks = vec![BTreeSet::new(); n];
            for p in &info.partitions {
                if let Some(set) = usize::try_from(p.partition)
                    .ok()
                    .and_then(|i| racks.get_mut(i))
                {
                    set.extend(
                        p.replicas
                            .iter()
                            .filter_map(|id| rack_of.get(id))
                            .map(|r| r.to_string()),
                    );
                }
            }
            *slot = racks;
        }
    }
    Ok(out)
}

/// The partition count of each topic (0 for a topic that does not exist).
fn counts_of(racks: &PartitionRacks) -> BTreeMap<String, i32> {
    racks
        .iter()
        .map(|(t, ps)| (t.clone(), i32::try_from(ps.len()).unwrap_or(i32::MAX)))
        .collect()
}

/// Heartbeats of one generation, in the background.
struct HeartbeatTask {
    ctx: Ctx,
    generation: Generation,
    /// The [`HeartbeatState::epoch`] this task reports under.
    epoch: u64,
    state: Arc<Mutex<HeartbeatState>>,
    /// The leader's partition counts, to rejoin when they change.
    snapshot: Option<BTreeMap<String, i32>>,
}

impl HeartbeatTask {
    /// Updates the shared state unless this task has been stopped.
    fn report(&self, f: impl FnOnce(&mut HeartbeatState)) {
        let mut s = self.state.lock();
        if s.epoch == self.epoch {
            f(&mut s);
        }
    }

    async fn run(self) {
        let cfg = &self.ctx.config;
        let mut next_metadata = Instant::now() + self.ctx.cluster.config().metadata_max_age;
        loop {
            let (next_hb, last_poll) = {
                let s = self.state.lock();
                (s.next_heartbeat, s.last_poll)
            };
            let now = Instant::now();
            let poll_deadline = last_poll.map(|t| t + cfg.rebalance_timeout);
            if poll_deadline.is_some_and(|d| now >= d) {
                tracing::warn!(group = %cfg.group_id, member_id = %self.generation.member_id,
                    "poll() was not called within max.poll.interval.ms; leaving the group");
                if let Err(e) = self
                    .ctx
                    .leave_group(
                        &self.generation.member_id,
                        "consumer poll timeout has expired",
                    )
                    .await
                {
                    tracing::debug!(error = %e, "LeaveGroup on poll timeout failed");
                }
                self.report(|s| {
                    s.poll_timeout = true;
                    s.next_heartbeat = None;
                });
                return;
            }
            let mut wake = next_hb.unwrap_or(now + cfg.heartbeat_interval);
            if let Some(d) = poll_deadline {
                wake = wake.min(d);
            }
            if self.snapshot.is_some() {
                wake = wake.min(next_metadata);
            }
            tokio::time::sleep_until(wake.into()).await;
            let now = Instant::now();
            if self.snapshot.is_some() && now >= next_metadata {
                next_metadata = now + self.ctx.cluster.config().metadata_max_age;
                if self.metadata_changed().await {
                    self.report(|s| {
                        s.rejoin = Some("the partitions of a subscribed topic changed")
                    });
                }
            }
            if next_hb.is_none_or(|t| now >= t) && !self.beat().await {
                return;
            }
        }
    }

    async fn metadata_changed(&self) -> bool {
        let Some(snap) = &self.snapshot else {
            return false;
        };
        let topics: BTreeSet<String> = snap.keys().cloned().collect();
        match partition_racks(&self.ctx.cluster, &topics)
            .await
            .map(|r| counts_of(&r))
        {
            Ok(now) if now != *snap => {
                tracing::info!(group = %self.ctx.config.group_id, before = ?snap, now = ?now,
                    "partition counts changed; rejoining");
                true
            }
            Ok(_) => false,
            Err(e) => {
                tracing::debug!(error = %e, "metadata check failed");
                false
            }
        }
    }

    /// One heartbeat; `false` when the task must stop.
    async fn beat(&self) -> bool {
        let cfg = &self.ctx.config;
        let backoff = self.ctx.cluster.config().retry_backoff;
        let result = async {
            let conn = self.ctx.coordinator().await?;
            let req = HeartbeatRequest {
                group_id: cfg.group_id.clone(),
                generation_id: self.generation.generation_id,
                member_id: self.generation.member_id.clone(),
                group_instance_id: cfg.group_instance_id.clone(),
            };
            self.ctx
                .timed(
                    ApiKey::Heartbeat,
                    self.ctx.request_timeout(),
                    conn.send(&req),
                )
                .await
        }
        .await;
        let mut next = Instant::now() + cfg.heartbeat_interval;
        let code = match result {
            Ok(r) => ErrorCode::from_code_or_unknown(r.error_code),
            Err(e) => {
                tracing::debug!(error = %e, "heartbeat failed, retrying");
                if e.is_retriable() {
                    self.ctx.coordinator_unknown();
                }
                self.report(|s| s.next_heartbeat = Some(Instant::now() + backoff));
                return true;
            }
        };
        match code {
            ErrorCode::None => {}
            ErrorCode::RebalanceInProgress => {
                // Keep heartbeating until the consumer rejoins.
                self.report(|s| {
                    if s.rejoin.is_none() {
                        tracing::debug!(group = %cfg.group_id, "the group is rebalancing");
                    }
                    s.rejoin = Some("the group is rebalancing");
                });
            }
            ErrorCode::UnknownMemberId
            | ErrorCode::IllegalGeneration
            | ErrorCode::FencedInstanceId => {
                self.report(|s| {
                    s.fenced = Some(code);
                    s.next_heartbeat = None;
                });
                return false;
            }
            ErrorCode::NotCoordinator
            | ErrorCode::CoordinatorNotAvailable
            | ErrorCode::CoordinatorLoadInProgress => {
                self.ctx.coordinator_unknown();
                next = Instant::now() + backoff;
            }
            other => {
                tracing::warn!(error = ?other, "heartbeat error");
                next = Instant::now() + backoff;
            }
        }
        self.report(|s| s.next_heartbeat = Some(next));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CommonConfig;

    fn cluster() -> Arc<Cluster> {
        Cluster::new(CommonConfig::new("127.0.0.1:9")).unwrap()
    }

    #[test]
    fn configuration_is_checked() {
        let mut c = MemberConfig::new("g");
        c.assignment_strategies = vec!["range".into(), "nope".into()];
        let e = ClassicMember::new(cluster(), c).unwrap_err();
        assert!(
            e.to_string().contains("unknown partition assignor 'nope'"),
            "{e}"
        );
        let e = ClassicMember::new(cluster(), MemberConfig::new("")).unwrap_err();
        assert!(e.to_string().contains("group.id"), "{e}");
        let mut c = MemberConfig::new("g");
        c.assignment_strategies.clear();
        assert!(ClassicMember::new(cluster(), c).is_err());
        let mut c = MemberConfig::new("g");
        c.heartbeat_interval = c.session_timeout;
        assert!(ClassicMember::new(cluster(), c).is_err());
    }

    #[test]
    fn protocol_follows_the_assignors() {
        // Default: range + cooperative-sticky → eager (range is eager only).
        let m = ClassicMember::new(cluster(), MemberConfig::new("g")).unwrap();
        assert_eq!(m.rebalance_protocol(), RebalanceProtocol::Eager);
        let mut c = MemberConfig::new("g");
        c.assignment_strategies = vec!["cooperative-sticky".into()];
        let m = ClassicMember::new(cluster(), c).unwrap();
        assert_eq!(m.rebalance_protocol(), RebalanceProtocol::Cooperative);
        assert!(m.commit_identity().is_none());
        assert!(
            m.next_deadline().is_none(),
            "nothing to do without a subscription"
        );
    }

    #[test]
    fn protocols_carry_owned_partitions_and_user_data() {
        let mut c = MemberConfig::new("g");
        c.assignment_strategies = vec!["sticky".into(), "range".into()];
        c.rack = Some("r1".into());
        let mut m = ClassicMember::new(cluster(), c).unwrap();
        m.set_subscription(["b".to_string(), "a".to_string()].into());
        m.last_assignment = Some((vec![("a".into(), 1)], 4));
        let ps = m.protocols().unwrap();
        assert_eq!(
            ps.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(),
            ["sticky", "range"]
        );
        let s = decode_subscription(&ps[0].1).unwrap();
        assert_eq!(s.topics, ["a", "b"]);
        assert_eq!(s.rack_id.as_deref(), Some("r1"));
        assert_eq!(
            s.user_data,
            Some(crate::assignor::encode_sticky_user_data(
                &[("a".into(), 1)],
                4
            ))
        );
        assert_eq!(decode_subscription(&ps[1].1).unwrap().user_data, None);
    }

    #[test]
    fn cooperative_validation_refuses_handing_over_owned_partitions() {
        let mut subs = BTreeMap::new();
        subs.insert(
            "a".to_string(),
            Subscription {
                topics: vec!["t".into()],
                owned_partitions: vec![("t".into(), 0)],
                ..Default::default()
            },
        );
        subs.insert("b".to_string(), Subscription::default());
        let mut result = BTreeMap::new();
        result.insert("a".to_string(), Assignment::default());
        result.insert("b".to_string(), Assignment::new(vec![("t".into(), 0)]));
        assert!(validate_cooperative("x", &subs, &result).is_err());
        result.insert("a".to_string(), Assignment::new(vec![("t".into(), 0)]));
        result.insert("b".to_string(), Assignment::default());
        assert!(validate_cooperative("x", &subs, &result).is_ok());
    }

    #[test]
    fn eager_rejoin_revokes_everything_and_fencing_loses_it() {
        let mut m = ClassicMember::new(cluster(), MemberConfig::new("g")).unwrap();
        m.subscription = ["t".to_string()].into();
        m.owned = [("t".to_string(), 0), ("t".to_string(), 1)].into();
        m.generation = Some(Generation {
            generation_id: 3,
            member_id: "m".into(),
            protocol: "range".into(),
            leader: false,
        });
        m.prepare_join();
        assert_eq!(
            m.events.pop_front(),
            Some(MembershipEvent::Revoked(vec![
                ("t".into(), 0),
                ("t".into(), 1)
            ]))
        );
        assert!(m.owned.is_empty());

        m.owned = [("t".to_string(), 0)].into();
        m.member_id = "m".into();
        m.commit_failed(ErrorCode::UnknownMemberId);
        assert!(m.commit_identity().is_none());
        assert_eq!(m.member_id(), "");
        m.prepare_join();
        assert_eq!(
            m.events.pop_front(),
            Some(MembershipEvent::Lost(vec![("t".into(), 0)]))
        );
    }

    #[test]
    fn cooperative_sync_revokes_first_then_assigns_and_rejoins() {
        let mut c = MemberConfig::new("g");
        c.assignment_strategies = vec!["cooperative-sticky".into()];
        let mut m = ClassicMember::new(cluster(), c).unwrap();
        m.subscription = ["t".to_string()].into();
        m.owned = [("t".to_string(), 0), ("t".to_string(), 1)].into();
        // Joined runs start_heartbeat, which spawns: needs a runtime.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _g = rt.enter();
        m.joined(JoinOutcome {
            member_id: "m".into(),
            result: Ok(Joined {
                generation: Generation {
                    generation_id: 2,
                    member_id: "m".into(),
                    protocol: "cooperative-sticky".into(),
                    leader: false,
                },
                assignment: Assignment::new(vec![("t".into(), 1), ("t".into(), 2)]),
                snapshot: None,
            }),
        })
        .unwrap();
        assert_eq!(
            m.events.pop_front(),
            Some(MembershipEvent::Revoked(vec![("t".into(), 0)]))
        );
        assert_eq!(
            m.events.pop_front(),
            Some(MembershipEvent::Assigned(vec![("t".into(), 2)]))
        );
        assert!(
            m.rejoin_needed,
            "revoking makes a cooperative member rejoin"
        );
        assert_eq!(m.owned, [("t".to_string(), 1), ("t".to_string(), 2)].into());
        assert_eq!(m.commit_identity().unwrap().generation_id, 2);
        m.stop_heartbeat();
    }

    #[test]
    fn a_stopped_heartbeat_task_cannot_report() {
        let mut m = ClassicMember::new(cluster(), MemberConfig::new("g")).unwrap();
        let task = HeartbeatTask {
            ctx: m.ctx.clone(),
            generation: Generation {
                generation_id: 1,
                member_id: "m".into(),
                protocol: "range".into(),
                leader: false,
            },
            epoch: m.heartbeat.lock().epoch,
            state: m.heartbeat.clone(),
            snapshot: None,
        };
        task.report(|s| s.rejoin = Some("first"));
        assert_eq!(m.heartbeat.lock().rejoin, Some("first"));
        m.stop_heartbeat();
        assert_eq!(m.heartbeat.lock().rejoin, None);
        task.report(|s| s.fenced = Some(ErrorCode::UnknownMemberId));
        assert_eq!(m.heartbeat.lock().fenced, None, "late report taken");
    }
}
