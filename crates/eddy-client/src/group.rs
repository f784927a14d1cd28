//! A group member: a [`Consumer`] whose partitions are assigned by the
//! group coordinator, with offset commits.
//!
//! Implements the KIP-848 consumer protocol (ConsumerGroupHeartbeat with a
//! server-side assignor). The membership logic is kept behind
//! [`GroupConsumer`] so that the classic protocol (JoinGroup/SyncGroup with
//! client-side assignors) can be added as another [`GroupProtocol`] later.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eddy_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use eddy_protocol::messages::ConsumerGroupHeartbeatRequest;
use eddy_protocol::{ErrorCode, Uuid};

use crate::cluster::Cluster;
use crate::config::{AutoOffsetReset, ConsumerConfig};
use crate::connection::Connection;
use crate::consumer::{Consumer, ConsumerRecord, StartOffset};
use crate::error::{ClientError, KafkaError};
use crate::group_admin::{commit_offsets, coordinator_connection, fetch_offsets};
use crate::util::ms_i32;

/// The group membership protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupProtocol {
    /// KIP-848: ConsumerGroupHeartbeat, server-side assignment.
    Consumer,
}

/// Settings of a group member.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub group_id: String,
    pub protocol: GroupProtocol,
    /// Server-side assignor ("uniform", "range"); `None`: the broker's default.
    pub server_assignor: Option<String>,
    /// `max.poll.interval.ms`, sent as the rebalance timeout.
    pub rebalance_timeout: Duration,
    /// Commit positions this often (`auto.commit.interval.ms`); `None`: only on
    /// [`GroupConsumer::commit`] and close.
    pub auto_commit_interval: Option<Duration>,
}

impl GroupConfig {
    pub fn new(group_id: impl Into<String>) -> Self {
        GroupConfig {
            group_id: group_id.into(),
            protocol: GroupProtocol::Consumer,
            server_assignor: None,
            rebalance_timeout: Duration::from_secs(300),
            auto_commit_interval: Some(Duration::from_secs(1)),
        }
    }
}

/// A consumer that is a member of a consumer group.
#[derive(Debug)]
pub struct GroupConsumer {
    consumer: Consumer,
    group: GroupConfig,
    topics: Vec<String>,
    coordinator: Option<Arc<Connection>>,
    member_id: String,
    member_epoch: i32,
    heartbeat_interval: Duration,
    next_heartbeat: Instant,
    /// Owned partitions as (topic, partition).
    owned: BTreeSet<(String, i32)>,
    /// The offsets to commit: the position after the last returned record.
    consumed: HashMap<(String, i32), i64>,
    /// What was last committed, to skip unchanged commits.
    committed: HashMap<(String, i32), i64>,
    next_commit: Instant,
    /// Set once the owned set changed and the coordinator must hear it.
    ack_pending: bool,
}

impl GroupConsumer {
    /// A member of `group` subscribed to `topics`; joins on the first poll.
    pub fn new(
        config: ConsumerConfig,
        cluster: Arc<Cluster>,
        group: GroupConfig,
        topics: Vec<String>,
    ) -> Result<GroupConsumer, ClientError> {
        if group.group_id.is_empty() {
            return Err(ClientError::InvalidArgument(
                "the group id must not be empty".into(),
            ));
        }
        if topics.is_empty() {
            return Err(ClientError::InvalidArgument(
                "subscribe to at least one topic".into(),
            ));
        }
        let now = Instant::now();
        Ok(GroupConsumer {
            consumer: Consumer::with_cluster(config, cluster),
            group,
            topics,
            coordinator: None,
            // KIP-848 v1: the client generates its member id.
            member_id: Uuid::random().to_string(),
            member_epoch: 0,
            heartbeat_interval: Duration::from_secs(3),
            next_heartbeat: now,
            owned: BTreeSet::new(),
            consumed: HashMap::new(),
            committed: HashMap::new(),
            next_commit: now,
            ack_pending: false,
        })
    }

    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    pub fn member_epoch(&self) -> i32 {
        self.member_epoch
    }

    /// The partitions currently owned, sorted.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.owned.iter().cloned().collect()
    }

    async fn coordinator(&mut self) -> Result<Arc<Connection>, ClientError> {
        if let Some(c) = &self.coordinator {
            if c.is_open() {
                return Ok(c.clone());
            }
        }
        let (_, conn) =
            coordinator_connection(self.consumer.cluster(), &self.group.group_id).await?;
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
        for t in &self.topics {
            match self.consumer.cluster().topic(t, false).await {
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

    /// Sends one heartbeat (joining if the epoch is 0) and applies a new
    /// assignment from the response.
    async fn heartbeat(&mut self) -> Result<(), ClientError> {
        let conn = self.coordinator().await?;
        let version = conn.version::<ConsumerGroupHeartbeatRequest>()?;
        let joining = self.member_epoch == 0;
        if joining && version == 0 {
            // v0: the coordinator assigns the member id.
            self.member_id = String::new();
        }
        let ids = self.topic_ids().await?;
        let req = ConsumerGroupHeartbeatRequest {
            group_id: self.group.group_id.clone(),
            member_id: self.member_id.clone(),
            member_epoch: self.member_epoch,
            instance_id: None,
            rack_id: None,
            rebalance_timeout_ms: ms_i32(self.group.rebalance_timeout),
            subscribed_topic_names: Some(self.topics.clone()),
            subscribed_topic_regex: None,
            server_assignor: self.group.server_assignor.clone(),
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
                self.next_heartbeat = Instant::now() + self.consumer_retry_backoff();
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
                self.next_heartbeat = Instant::now() + self.consumer_retry_backoff();
                return Ok(());
            }
            ErrorCode::UnknownMemberId | ErrorCode::FencedMemberEpoch => {
                // Fenced: the partitions are no longer ours; rejoin without committing.
                tracing::info!(error = ?code, "fenced by the coordinator, rejoining");
                self.member_epoch = 0;
                self.set_owned(BTreeSet::new());
                self.consumer.assign(Vec::new()).await?;
                self.next_heartbeat = Instant::now();
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
            self.reconcile(target).await?;
        }
        Ok(())
    }

    fn consumer_retry_backoff(&self) -> Duration {
        self.consumer.cluster().config().retry_backoff
    }

    /// Moves to `target`: commits and drops revoked partitions, starts new
    /// ones at their committed offsets, and schedules an acknowledgement.
    async fn reconcile(&mut self, target: BTreeSet<(String, i32)>) -> Result<(), ClientError> {
        if target == self.owned {
            return Ok(());
        }
        let revoked: Vec<(String, i32)> = self.owned.difference(&target).cloned().collect();
        if !revoked.is_empty() {
            if let Err(e) = self.commit_partitions(&revoked).await {
                tracing::warn!(error = %e, "commit of revoked partitions failed");
            }
        }
        let added: Vec<(String, i32)> = target.difference(&self.owned).cloned().collect();
        let mut starts: HashMap<(String, i32), StartOffset> = HashMap::new();
        if !added.is_empty() {
            let mut by_topic: Vec<(String, Vec<i32>)> = Vec::new();
            for (t, p) in &added {
                match by_topic.iter_mut().find(|x| &x.0 == t) {
                    Some(x) => x.1.push(*p),
                    None => by_topic.push((t.clone(), vec![*p])),
                }
            }
            let conn = self.coordinator().await?;
            for c in fetch_offsets(&conn, &self.group.group_id, Some(&by_topic), None).await? {
                starts.insert((c.topic, c.partition), StartOffset::Offset(c.offset));
            }
        }
        let reset = match self.consumer.config().auto_offset_reset {
            AutoOffsetReset::Earliest => StartOffset::Earliest,
            _ => StartOffset::Latest,
        };
        let assignment: Vec<(String, i32, StartOffset)> = target
            .iter()
            .map(|(t, p)| {
                let start = match self.consumer.position(t, *p) {
                    Some(pos) if self.owned.contains(&(t.clone(), *p)) => StartOffset::Offset(pos),
                    _ => starts.get(&(t.clone(), *p)).copied().unwrap_or(reset),
                };
                (t.clone(), *p, start)
            })
            .collect();
        self.consumer.assign(assignment).await?;
        for (t, p) in &added {
            if let Some(pos) = self.consumer.position(t, *p) {
                self.consumed.insert((t.clone(), *p), pos);
            }
        }
        tracing::info!(assigned = ?target, "new assignment");
        self.set_owned(target);
        self.ack_pending = true;
        Ok(())
    }

    fn set_owned(&mut self, owned: BTreeSet<(String, i32)>) {
        self.consumed.retain(|k, _| owned.contains(k));
        self.committed.retain(|k, _| owned.contains(k));
        self.owned = owned;
    }

    /// Fetches up to `max_records` records (all that arrived if `None`),
    /// waiting up to `timeout`, heartbeating and auto-committing as needed.
    pub async fn poll(
        &mut self,
        timeout: Duration,
        max_records: Option<usize>,
    ) -> Result<Vec<ConsumerRecord>, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.ack_pending || Instant::now() >= self.next_heartbeat {
                self.ack_pending = false;
                self.heartbeat().await?;
            }
            if let Some(every) = self.group.auto_commit_interval {
                if Instant::now() >= self.next_commit {
                    self.next_commit = Instant::now() + every;
                    if let Err(e) = self.commit().await {
                        tracing::warn!(error = %e, "auto-commit failed");
                    }
                }
            }
            let now = Instant::now();
            let wait = deadline
                .min(self.next_heartbeat)
                .saturating_duration_since(now)
                .max(Duration::from_millis(1));
            let mut records = if self.owned.is_empty() {
                tokio::time::sleep(wait).await;
                Vec::new()
            } else {
                self.consumer.poll(wait).await?
            };
            if let Some(max) = max_records {
                if records.len() > max {
                    // Give back what the caller does not take: seek each
                    // partition to its first dropped record.
                    let dropped = records.split_off(max);
                    let mut firsts: Vec<(String, i32, i64)> = Vec::new();
                    for r in &dropped {
                        if !firsts.iter().any(|f| f.0 == r.topic && f.1 == r.partition) {
                            firsts.push((r.topic.clone(), r.partition, r.offset));
                        }
                    }
                    for (t, p, o) in firsts {
                        self.consumer.seek(&t, p, StartOffset::Offset(o)).await?;
                    }
                }
            }
            for r in &records {
                self.consumed
                    .insert((r.topic.clone(), r.partition), r.offset + 1);
            }
            if !records.is_empty() || Instant::now() >= deadline {
                return Ok(records);
            }
        }
    }

    async fn commit_partitions(&mut self, parts: &[(String, i32)]) -> Result<(), ClientError> {
        let offsets: Vec<(String, i32, i64)> = parts
            .iter()
            .filter_map(|k| {
                let o = *self.consumed.get(k)?;
                (self.committed.get(k) != Some(&o)).then(|| (k.0.clone(), k.1, o))
            })
            .collect();
        if offsets.is_empty() || self.member_epoch <= 0 {
            return Ok(());
        }
        let conn = self.coordinator().await?;
        commit_offsets(
            &conn,
            &self.group.group_id,
            &self.member_id,
            self.member_epoch,
            &offsets,
        )
        .await?;
        for (t, p, o) in offsets {
            self.committed.insert((t, p), o);
        }
        Ok(())
    }

    /// Commits the position after the last record returned by
    /// [`GroupConsumer::poll`] of every owned partition.
    pub async fn commit(&mut self) -> Result<(), ClientError> {
        let parts: Vec<(String, i32)> = self.owned.iter().cloned().collect();
        self.commit_partitions(&parts).await
    }

    /// Commits and leaves the group (member epoch -1).
    pub async fn close(mut self) -> Result<(), ClientError> {
        let commit = self.commit().await;
        if self.member_epoch > 0 {
            let conn = self.coordinator().await?;
            let req = ConsumerGroupHeartbeatRequest {
                group_id: self.group.group_id.clone(),
                member_id: self.member_id.clone(),
                member_epoch: -1,
                rebalance_timeout_ms: -1,
                ..Default::default()
            };
            let resp = conn.send(&req).await?;
            let code = ErrorCode::from_code_or_unknown(resp.error_code);
            if !matches!(
                code,
                ErrorCode::None | ErrorCode::UnknownMemberId | ErrorCode::FencedMemberEpoch
            ) {
                return Err(KafkaError::new(code)
                    .with_message(resp.error_message)
                    .into());
            }
        }
        commit
    }
}
