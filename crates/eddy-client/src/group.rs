//! The KIP-848 group member (`group.protocol=consumer`): the coordinator
//! assigns partitions (server-side assignor) in ConsumerGroupHeartbeat
//! responses; the member reports what it owns in the next heartbeat.
//!
//! It implements the contract of [`crate::membership`]: the
//! [`Consumer`](crate::Consumer) drives it and acts on its events.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eddy_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use eddy_protocol::messages::ConsumerGroupHeartbeatRequest;
use eddy_protocol::{ErrorCode, Uuid};

use crate::cluster::Cluster;
use crate::connection::Connection;
use crate::error::{ClientError, KafkaError};
use crate::group_admin::coordinator_connection;
use crate::membership::{CommitIdentity, MemberConfig, MembershipEvent, TopicPartition};
use crate::util::ms_i32;

/// The group membership protocol (`group.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupProtocol {
    /// JoinGroup/SyncGroup with client-side assignors (the default, as in
    /// the Java client).
    #[default]
    Classic,
    /// KIP-848: ConsumerGroupHeartbeat, server-side assignment.
    Consumer,
}

impl std::str::FromStr for GroupProtocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "classic" => Ok(GroupProtocol::Classic),
            "consumer" => Ok(GroupProtocol::Consumer),
            _ => Err("expected classic or consumer".to_string()),
        }
    }
}

/// A member of a KIP-848 consumer group.
#[derive(Debug)]
pub struct ConsumerGroupMember {
    cluster: Arc<Cluster>,
    config: MemberConfig,
    topics: BTreeSet<String>,
    coordinator: Option<Arc<Connection>>,
    member_id: String,
    member_epoch: i32,
    heartbeat_interval: Duration,
    next_heartbeat: Instant,
    owned: BTreeSet<TopicPartition>,
    events: VecDeque<MembershipEvent>,
    /// The coordinator must hear of a change (owned set or subscription).
    ack_pending: bool,
}

impl ConsumerGroupMember {
    pub fn new(cluster: Arc<Cluster>, config: MemberConfig) -> Result<Self, ClientError> {
        if config.group_id.is_empty() {
            return Err(ClientError::InvalidArgument(
                "the group id must not be empty".into(),
            ));
        }
        Ok(ConsumerGroupMember {
            cluster,
            config,
            topics: BTreeSet::new(),
            coordinator: None,
            // KIP-848 v1: the client generates its member id.
            member_id: Uuid::random().to_string(),
            member_epoch: 0,
            heartbeat_interval: Duration::from_secs(3),
            next_heartbeat: Instant::now(),
            owned: BTreeSet::new(),
            events: VecDeque::new(),
            ack_pending: false,
        })
    }

    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    pub fn set_subscription(&mut self, topics: BTreeSet<String>) {
        if topics != self.topics {
            self.topics = topics;
            self.ack_pending = true;
        }
    }

    pub fn owned(&self) -> &BTreeSet<TopicPartition> {
        &self.owned
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        if self.topics.is_empty() && self.member_epoch <= 0 {
            return None;
        }
        Some(if self.ack_pending {
            Instant::now()
        } else {
            self.next_heartbeat
        })
    }

    pub fn commit_identity(&self) -> Option<CommitIdentity> {
        (self.member_epoch > 0).then(|| CommitIdentity {
            member_id: self.member_id.clone(),
            generation_id: self.member_epoch,
            group_instance_id: self.config.group_instance_id.clone(),
        })
    }

    /// [`commit_failed`](Self::commit_failed) for a commit made as
    /// `identity`: failures of commits from an older epoch are ignored.
    pub fn commit_failed_with(&mut self, identity: &CommitIdentity, code: ErrorCode) {
        if identity.generation_id == self.member_epoch {
            self.commit_failed(code);
        }
    }

    pub fn commit_failed(&mut self, code: ErrorCode) {
        if matches!(
            code,
            ErrorCode::UnknownMemberId | ErrorCode::FencedMemberEpoch | ErrorCode::StaleMemberEpoch
        ) {
            // The next heartbeat tells us where we stand.
            self.next_heartbeat = Instant::now();
        }
    }

    /// Heartbeats when due and returns the next event to act on.
    pub async fn poll(&mut self) -> Result<Option<MembershipEvent>, ClientError> {
        if let Some(e) = self.events.pop_front() {
            return Ok(Some(e));
        }
        if self.topics.is_empty() && self.member_epoch <= 0 {
            return Ok(None);
        }
        if self.ack_pending || Instant::now() >= self.next_heartbeat {
            self.ack_pending = false;
            self.heartbeat().await?;
        }
        Ok(self.events.pop_front())
    }

    async fn coordinator(&mut self) -> Result<Arc<Connection>, ClientError> {
        if let Some(c) = &self.coordinator {
            if c.is_open() {
                return Ok(c.clone());
            }
        }
        let (_, conn) = coordinator_connection(&self.cluster, &self.config.group_id).await?;
        self.coordinator = Some(conn.clone());
        Ok(conn)
    }

    fn owned_wire(&self, ids: &HashMap<String, Uuid>) -> Vec<TopicPartitions> {
        let mut out: Vec<TopicPartitions> = Vec::new();
        for (t, p) in &self.owned {
            let Some(id) = ids.get(t) else { continue };
            match out.iter_mut().find(|x| x.topic_id == *id) {
                Some(x) => x.partitions.push(*p),
                None => out.push(TopicPartitions {
                    topic_id: *id,
                    partitions: vec![*p],
                }),
            }
        }
        out
    }

    async fn topic_ids(&self) -> Result<HashMap<String, Uuid>, ClientError> {
        let mut ids = HashMap::new();
        for t in self.topics.iter().chain(self.owned.iter().map(|(t, _)| t)) {
            if ids.contains_key(t) {
                continue;
            }
            match self.cluster.topic(t, false).await {
                Ok(info) => {
                    ids.insert(t.clone(), info.topic_id);
                }
                // A topic that does not exist yet is simply not assigned.
                Err(e) if e.code() == Some(ErrorCode::UnknownTopicOrPartition) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(ids)
    }

    fn retry_later(&mut self) {
        self.next_heartbeat = Instant::now() + self.cluster.config().retry_backoff;
    }

    /// Everything owned is lost (fenced): rejoin from epoch 0.
    fn lose_all(&mut self) {
        self.member_epoch = 0;
        let lost: Vec<TopicPartition> = std::mem::take(&mut self.owned).into_iter().collect();
        if !lost.is_empty() {
            self.events.push_back(MembershipEvent::Lost(lost));
        }
        self.next_heartbeat = Instant::now();
    }

    /// Sends one heartbeat (joining if the epoch is 0) and turns a new
    /// assignment into events.
    async fn heartbeat(&mut self) -> Result<(), ClientError> {
        let conn = match self.coordinator().await {
            Ok(c) => c,
            Err(e) if e.is_retriable() => {
                tracing::debug!(error = %e, "no group coordinator yet");
                self.retry_later();
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let version = conn.version::<ConsumerGroupHeartbeatRequest>()?;
        let joining = self.member_epoch == 0;
        if joining && version == 0 {
            // v0: the coordinator assigns the member id.
            self.member_id = String::new();
        }
        let ids = self.topic_ids().await?;
        let req = ConsumerGroupHeartbeatRequest {
            group_id: self.config.group_id.clone(),
            member_id: self.member_id.clone(),
            member_epoch: self.member_epoch,
            instance_id: self.config.group_instance_id.clone(),
            rack_id: self.config.rack.clone(),
            rebalance_timeout_ms: ms_i32(self.config.rebalance_timeout),
            subscribed_topic_names: Some(self.topics.iter().cloned().collect()),
            subscribed_topic_regex: None,
            server_assignor: self.config.remote_assignor.clone(),
            topic_partitions: Some(if joining {
                Vec::new()
            } else {
                self.owned_wire(&ids)
            }),
        };
        self.next_heartbeat = Instant::now() + self.heartbeat_interval;
        let resp = match conn.send_version(&req, version).await {
            Ok(r) => r,
            Err(e) if e.is_retriable() => {
                self.coordinator = None;
                tracing::debug!(error = %e, "heartbeat failed, will retry");
                self.retry_later();
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let code = ErrorCode::from_code_or_unknown(resp.error_code);
        match code {
            ErrorCode::None => {}
            ErrorCode::NotCoordinator
            | ErrorCode::CoordinatorNotAvailable
            | ErrorCode::CoordinatorLoadInProgress => {
                self.coordinator = None;
                self.retry_later();
                return Ok(());
            }
            ErrorCode::UnknownMemberId | ErrorCode::FencedMemberEpoch => {
                tracing::info!(error = ?code, "fenced by the coordinator, rejoining");
                self.lose_all();
                return Ok(());
            }
            _ => {
                return Err(KafkaError::new(code)
                    .with_message(resp.error_message)
                    .into())
            }
        }
        if let Some(id) = resp.member_id.filter(|m| !m.is_empty()) {
            self.member_id = id;
        }
        self.member_epoch = resp.member_epoch;
        if resp.heartbeat_interval_ms > 0 {
            self.heartbeat_interval = Duration::from_millis(resp.heartbeat_interval_ms as u64);
            self.next_heartbeat = Instant::now() + self.heartbeat_interval;
        }
        if let Some(a) = resp.assignment {
            let by_id: HashMap<Uuid, &String> = ids.iter().map(|(n, id)| (*id, n)).collect();
            let mut target = BTreeSet::new();
            for t in &a.topic_partitions {
                match by_id.get(&t.topic_id) {
                    Some(name) => target.extend(t.partitions.iter().map(|p| ((*name).clone(), *p))),
                    None => tracing::debug!(topic_id = %t.topic_id, "assigned an unknown topic"),
                }
            }
            self.reconcile(target);
        }
        Ok(())
    }

    /// Moves to `target`: revocations first, then additions; the next
    /// heartbeat acknowledges the new owned set.
    fn reconcile(&mut self, target: BTreeSet<TopicPartition>) {
        if target == self.owned {
            return;
        }
        let revoked: Vec<TopicPartition> = self.owned.difference(&target).cloned().collect();
        let added: Vec<TopicPartition> = target.difference(&self.owned).cloned().collect();
        if !revoked.is_empty() {
            self.events.push_back(MembershipEvent::Revoked(revoked));
        }
        if !added.is_empty() {
            self.events.push_back(MembershipEvent::Assigned(added));
        }
        tracing::info!(assigned = ?target, "new assignment");
        self.owned = target;
        self.ack_pending = true;
    }

    /// Leaves the group (member epoch -1, or -2 for a static member).
    pub async fn leave(&mut self) -> Result<(), ClientError> {
        if self.member_epoch <= 0 {
            return Ok(());
        }
        let conn = self.coordinator().await?;
        let req = ConsumerGroupHeartbeatRequest {
            group_id: self.config.group_id.clone(),
            member_id: self.member_id.clone(),
            member_epoch: if self.config.group_instance_id.is_some() {
                -2
            } else {
                -1
            },
            instance_id: self.config.group_instance_id.clone(),
            rebalance_timeout_ms: -1,
            ..Default::default()
        };
        let resp = conn.send(&req).await?;
        self.member_epoch = 0;
        self.owned.clear();
        let code = ErrorCode::from_code_or_unknown(resp.error_code);
        if !matches!(
            code,
            ErrorCode::None | ErrorCode::UnknownMemberId | ErrorCode::FencedMemberEpoch
        ) {
            return Err(KafkaError::new(code)
                .with_message(resp.error_message)
                .into());
        }
        Ok(())
    }
}
