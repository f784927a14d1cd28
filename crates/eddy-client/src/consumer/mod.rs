//! The consumer: `assign` partitions directly or `subscribe` to topics (or a
//! pattern) as a member of a consumer group; `poll` returns records.
//!
//! - Positions, buffers and prefetching Fetch requests: [`fetcher`].
//! - Group membership: a [`ClassicMember`] (JoinGroup/SyncGroup, client-side
//!   assignors) or a [`ConsumerGroupMember`] (KIP-848), chosen by
//!   `group.protocol`, driven through the contract of [`crate::membership`].
//! - The user's [`RebalanceListener`] runs inside `poll` when partitions are
//!   revoked, assigned or lost; commits it asks for are made before the
//!   rebalance goes on.
//! - Offsets: `commit_sync`/`commit_async` of positions (the offset after
//!   the last record returned) or explicit offsets; auto-commit every
//!   `auto.commit.interval.ms` from `poll`, before revocation and on close.
//! - [`WakeupHandle::wakeup`] from any task makes a blocked (or the next)
//!   `poll` return [`ClientError::Wakeup`].
//!
//! Every batch's CRC is verified. Control batches are skipped;
//! `isolation.level=read_committed` also drops aborted transactions.

mod fetcher;
mod listener;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use eddy_protocol::records::{Header, TimestampType};
use eddy_protocol::ErrorCode;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::admin::{list_offsets_isolated, OffsetSpec};
use crate::classic::ClassicMember;
use crate::cluster::Cluster;
use crate::config::{AutoOffsetReset, ConsumerConfig};
use crate::connection::Connection;
use crate::error::{ClientError, KafkaError};
use crate::group::{ConsumerGroupMember, GroupProtocol};
use crate::group_admin::{commit_offsets_as, coordinator_connection, fetch_offsets};
use crate::membership::{CommitIdentity, MembershipEvent, TopicPartition};

use fetcher::Fetcher;
pub use listener::{Rebalance, RebalanceListener};

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
    /// The group's committed offset; `auto.offset.reset` if there is none
    /// (or no `group.id`).
    Committed,
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

/// Interrupts the consumer's `poll` from another task (Java's `wakeup()`).
/// If no poll is running, the next one returns [`ClientError::Wakeup`].
#[derive(Debug, Clone, Default)]
pub struct WakeupHandle {
    inner: Arc<(AtomicBool, Notify)>,
}

impl WakeupHandle {
    pub fn wakeup(&self) {
        self.inner.0.store(true, Ordering::SeqCst);
        self.inner.1.notify_one();
    }

    fn take(&self) -> bool {
        self.inner.0.swap(false, Ordering::SeqCst)
    }
}

/// The outcome of an asynchronous commit.
pub type CommitCallback = Box<dyn FnOnce(Result<(), ClientError>) + Send + 'static>;

/// What the consumer reads: explicit partitions or a group subscription.
#[derive(Debug)]
enum Subscription {
    None,
    Assigned,
    Topics(BTreeSet<String>),
    Pattern {
        regex: regex::Regex,
        /// When the matching topics were last listed.
        checked: Option<Instant>,
    },
}

/// The group member of a subscription.
#[derive(Debug)]
enum Member {
    Classic(Box<ClassicMember>),
    Consumer(Box<ConsumerGroupMember>),
}

/// Dispatches a membership call to whichever member type it is.
macro_rules! member_call {
    ($m:expr, $x:ident => $e:expr) => {
        match $m {
            Member::Classic($x) => $e,
            Member::Consumer($x) => $e,
        }
    };
}

/// The consumer.
pub struct Consumer {
    cluster: Arc<Cluster>,
    config: Arc<ConsumerConfig>,
    fetcher: Fetcher,
    subscription: Subscription,
    member: Option<Member>,
    listener: Option<Box<dyn RebalanceListener>>,
    coordinator: Option<Arc<Connection>>,
    wakeup: WakeupHandle,
    next_auto_commit: Instant,
    /// The last offsets committed per partition (shared with async commits).
    committed: Arc<Mutex<HashMap<TopicPartition, i64>>>,
    /// Failed async commits (who committed, error code) that the member
    /// must hear about.
    commit_errors: Arc<Mutex<Vec<(CommitIdentity, ErrorCode)>>>,
    closed: bool,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("subscription", &self.subscription)
            .field("assignment", &self.assignment())
            .finish_non_exhaustive()
    }
}

impl Consumer {
    /// A consumer with its own connections. Must be called within a tokio runtime.
    pub fn new(config: ConsumerConfig) -> Result<Consumer, ClientError> {
        let cluster = Cluster::new(config.common.clone())?;
        Ok(Self::with_cluster(config, cluster))
    }

    /// A consumer sharing `cluster`'s connections and metadata.
    pub fn with_cluster(config: ConsumerConfig, cluster: Arc<Cluster>) -> Consumer {
        let config = Arc::new(config);
        Consumer {
            fetcher: Fetcher::new(cluster.clone(), config.clone()),
            cluster,
            next_auto_commit: Instant::now() + config.auto_commit_interval,
            config,
            subscription: Subscription::None,
            member: None,
            listener: None,
            coordinator: None,
            wakeup: WakeupHandle::default(),
            committed: Arc::default(),
            commit_errors: Arc::default(),
            closed: false,
        }
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    /// A handle that interrupts `poll` from another task.
    pub fn wakeup_handle(&self) -> WakeupHandle {
        self.wakeup.clone()
    }

    fn check_open(&self) -> Result<(), ClientError> {
        if self.closed {
            Err(ClientError::Closed("consumer"))
        } else {
            Ok(())
        }
    }

    fn group_id(&self) -> Result<&str, ClientError> {
        self.config.group_id.as_deref().ok_or_else(|| {
            ClientError::config("group.id", "is required to subscribe or commit offsets")
        })
    }

    // ---- assignment -------------------------------------------------------

    /// Replaces the assignment with `partitions`, each starting at its
    /// [`StartOffset`], and resolves the positions.
    pub async fn assign(
        &mut self,
        partitions: Vec<(String, i32, StartOffset)>,
    ) -> Result<(), ClientError> {
        self.check_open()?;
        if matches!(
            self.subscription,
            Subscription::Topics(_) | Subscription::Pattern { .. }
        ) {
            return Err(ClientError::InvalidArgument(
                "assign and subscribe are mutually exclusive: unsubscribe first".into(),
            ));
        }
        self.fetcher.clear();
        self.subscription = if partitions.is_empty() {
            Subscription::None
        } else {
            Subscription::Assigned
        };
        for (topic, partition, start) in partitions {
            self.fetcher.add((topic, partition), start);
        }
        self.resolve_positions(true).await
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

    /// Subscribes to `topics` as a member of `group.id` (replacing an
    /// earlier subscription); the group assigns the partitions during `poll`.
    pub fn subscribe<I, S>(&mut self, topics: I) -> Result<(), ClientError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let topics: BTreeSet<String> = topics.into_iter().map(Into::into).collect();
        if topics.is_empty() || topics.iter().any(|t| t.trim().is_empty()) {
            return Err(ClientError::InvalidArgument(
                "subscribe to at least one topic, with non-empty names".into(),
            ));
        }
        self.start_membership()?;
        self.set_member_topics(topics.clone());
        self.subscription = Subscription::Topics(topics);
        Ok(())
    }

    /// [`subscribe`](Self::subscribe) with a rebalance listener.
    pub fn subscribe_with_listener<I, S>(
        &mut self,
        topics: I,
        listener: impl RebalanceListener + 'static,
    ) -> Result<(), ClientError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.subscribe(topics)?;
        self.listener = Some(Box::new(listener));
        Ok(())
    }

    /// Subscribes to every topic whose whole name matches `pattern` (a
    /// regular expression), now and as topics are created or deleted
    /// (checked every `metadata.max.age.ms`).
    pub fn subscribe_pattern(&mut self, pattern: &str) -> Result<(), ClientError> {
        let regex = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
            ClientError::InvalidArgument(format!("invalid topic pattern '{pattern}': {e}"))
        })?;
        self.start_membership()?;
        self.subscription = Subscription::Pattern {
            regex,
            checked: None,
        };
        Ok(())
    }

    /// [`subscribe_pattern`](Self::subscribe_pattern) with a rebalance listener.
    pub fn subscribe_pattern_with_listener(
        &mut self,
        pattern: &str,
        listener: impl RebalanceListener + 'static,
    ) -> Result<(), ClientError> {
        self.subscribe_pattern(pattern)?;
        self.listener = Some(Box::new(listener));
        Ok(())
    }

    fn start_membership(&mut self) -> Result<(), ClientError> {
        self.check_open()?;
        if matches!(self.subscription, Subscription::Assigned) {
            return Err(ClientError::InvalidArgument(
                "assign and subscribe are mutually exclusive: assign an empty list first".into(),
            ));
        }
        if self.member.is_none() {
            let mc = self
                .config
                .member_config()
                .ok_or_else(|| ClientError::config("group.id", "is required to subscribe"))?;
            self.member = Some(match self.config.group_protocol {
                GroupProtocol::Classic => {
                    Member::Classic(Box::new(ClassicMember::new(self.cluster.clone(), mc)?))
                }
                GroupProtocol::Consumer => Member::Consumer(Box::new(ConsumerGroupMember::new(
                    self.cluster.clone(),
                    mc,
                )?)),
            });
        }
        Ok(())
    }

    fn set_member_topics(&mut self, topics: BTreeSet<String>) {
        if let Some(m) = &mut self.member {
            member_call!(m, m => m.set_subscription(topics));
        }
    }

    /// Leaves the group (after the revocation callbacks and, with
    /// auto-commit, a commit) and drops the subscription.
    pub async fn unsubscribe(&mut self) -> Result<(), ClientError> {
        let result = self.leave_group().await;
        self.member = None;
        self.listener = None;
        self.subscription = Subscription::None;
        self.fetcher.clear();
        result
    }

    /// The subscribed topics (for a pattern: the topics it matched last).
    pub fn subscription(&self) -> Vec<String> {
        match &self.subscription {
            Subscription::Topics(t) => t.iter().cloned().collect(),
            Subscription::Pattern { .. } => {
                let mut topics: Vec<String> =
                    self.fetcher.assigned().map(|(t, _)| t.clone()).collect();
                topics.dedup();
                topics
            }
            _ => Vec::new(),
        }
    }

    /// The assigned partitions, sorted.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.fetcher.assigned().cloned().collect()
    }

    /// The group member id (empty before joining or without a group).
    pub fn member_id(&self) -> String {
        self.member
            .as_ref()
            .and_then(|m| member_call!(m, m => m.commit_identity()))
            .map(|c| c.member_id)
            .unwrap_or_default()
    }

    // ---- positions ----------------------------------------------------------

    /// The next offset to be returned for a partition (`None` if it is not
    /// assigned or its position is not resolved yet).
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.fetcher
            .state(&(topic.to_string(), partition))
            .and_then(|s| s.position)
    }

    /// The partition's high watermark as of the last fetch.
    pub fn high_watermark(&self, topic: &str, partition: i32) -> Option<i64> {
        self.fetcher
            .state(&(topic.to_string(), partition))
            .and_then(|s| s.high_watermark)
    }

    /// The partition's last stable offset as of the last fetch.
    pub fn last_stable_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.fetcher
            .state(&(topic.to_string(), partition))
            .and_then(|s| s.last_stable_offset)
    }

    /// Moves an assigned partition and resolves the new position.
    pub async fn seek(
        &mut self,
        topic: &str,
        partition: i32,
        to: StartOffset,
    ) -> Result<(), ClientError> {
        if !self.fetcher.seek(&(topic.to_string(), partition), to) {
            return Err(not_assigned(topic, partition));
        }
        self.resolve_positions(true).await
    }

    /// Moves partitions to their log start offsets.
    pub async fn seek_to_beginning(
        &mut self,
        partitions: &[(String, i32)],
    ) -> Result<(), ClientError> {
        self.seek_all(partitions, StartOffset::Earliest).await
    }

    /// Moves partitions to their log end offsets.
    pub async fn seek_to_end(&mut self, partitions: &[(String, i32)]) -> Result<(), ClientError> {
        self.seek_all(partitions, StartOffset::Latest).await
    }

    async fn seek_all(
        &mut self,
        partitions: &[(String, i32)],
        to: StartOffset,
    ) -> Result<(), ClientError> {
        for tp in partitions {
            if !self.fetcher.contains(tp) {
                return Err(not_assigned(&tp.0, tp.1));
            }
        }
        for tp in partitions {
            self.fetcher.seek(tp, to);
        }
        self.resolve_positions(true).await
    }

    /// Stops returning (and fetching) records of these partitions until
    /// [`resume`](Self::resume); the group assignment is unaffected.
    pub fn pause(&mut self, partitions: &[(String, i32)]) -> Result<(), ClientError> {
        self.set_paused(partitions, true)
    }

    pub fn resume(&mut self, partitions: &[(String, i32)]) -> Result<(), ClientError> {
        self.set_paused(partitions, false)
    }

    /// The paused partitions, sorted.
    pub fn paused(&self) -> Vec<(String, i32)> {
        self.fetcher
            .assigned()
            .filter(|tp| self.fetcher.state(tp).is_some_and(|s| s.paused))
            .cloned()
            .collect()
    }

    fn set_paused(
        &mut self,
        partitions: &[(String, i32)],
        paused: bool,
    ) -> Result<(), ClientError> {
        for tp in partitions {
            if !self.fetcher.contains(tp) {
                return Err(not_assigned(&tp.0, tp.1));
            }
        }
        for tp in partitions {
            self.fetcher.set_paused(tp, paused);
        }
        Ok(())
    }

    /// Finds positions of partitions that have none: committed offsets
    /// (OffsetFetch), then ListOffsets. With `strict`, retriable errors are
    /// returned; otherwise they are left for the next poll.
    async fn resolve_positions(&mut self, strict: bool) -> Result<(), ClientError> {
        match self.try_resolve_positions().await {
            Err(e) if !strict && e.is_retriable() => {
                tracing::debug!(error = %e, "cannot resolve positions yet");
                Ok(())
            }
            r => r,
        }
    }

    async fn try_resolve_positions(&mut self) -> Result<(), ClientError> {
        if !self.fetcher.has_unresolved() {
            return Ok(());
        }
        let todo = self.fetcher.unresolved();
        let reset = match self.config.auto_offset_reset {
            AutoOffsetReset::Earliest => Some(StartOffset::Earliest),
            AutoOffsetReset::Latest => Some(StartOffset::Latest),
            AutoOffsetReset::None => None,
        };
        // Committed offsets first.
        let committed: Vec<&TopicPartition> = todo
            .iter()
            .filter(|(_, s)| *s == StartOffset::Committed)
            .map(|(tp, _)| tp)
            .collect();
        if !committed.is_empty() {
            let found = if self.config.group_id.is_some() {
                self.committed_offsets(&committed).await?
            } else {
                HashMap::new()
            };
            for tp in committed {
                match (found.get(tp), reset) {
                    (Some(&o), _) => self.fetcher.resolve(tp, o),
                    (None, Some(r)) => self.fetcher.set_reset(tp, r),
                    (None, None) => {
                        return Err(ClientError::NoOffset {
                            topic: tp.0.clone(),
                            partition: tp.1,
                        })
                    }
                }
            }
        }
        let todo = self.fetcher.unresolved();
        if todo.is_empty() {
            return Ok(());
        }
        let spec_of = |s: StartOffset| match s {
            StartOffset::Earliest => OffsetSpec::Earliest,
            StartOffset::Timestamp(t) => OffsetSpec::Timestamp(t),
            StartOffset::Latest | StartOffset::Committed => OffsetSpec::Latest,
            StartOffset::Offset(_) => match self.config.auto_offset_reset {
                AutoOffsetReset::Earliest => OffsetSpec::Earliest,
                _ => OffsetSpec::Latest,
            },
        };
        let specs: Vec<(String, i32, OffsetSpec)> = todo
            .iter()
            .map(|(tp, s)| (tp.0.clone(), tp.1, spec_of(*s)))
            .collect();
        let isolation = self.config.isolation_level;
        let results = list_offsets_isolated(&self.cluster, &specs, isolation).await?;
        let mut late = Vec::new();
        for ((tp, _), r) in todo.iter().zip(results) {
            let listed = r?;
            if listed.offset >= 0 {
                self.fetcher.resolve(tp, listed.offset);
            } else {
                // No record at or after the timestamp: start at the end.
                late.push((tp.0.clone(), tp.1, OffsetSpec::Latest));
            }
        }
        if !late.is_empty() {
            let listed = list_offsets_isolated(&self.cluster, &late, isolation).await?;
            for (s, r) in late.iter().zip(listed) {
                self.fetcher.resolve(&(s.0.clone(), s.1), r?.offset);
            }
        }
        Ok(())
    }

    // ---- poll ---------------------------------------------------------------

    /// Returns up to `max.poll.records` records, waiting up to `timeout` for
    /// some to arrive (an empty vector if none did). Takes part in the
    /// group (joins, heartbeats, rebalances with the listener's callbacks,
    /// auto-commits) while it runs.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>, ClientError> {
        self.check_open()?;
        let wakeup = self.wakeup.clone();
        if wakeup.take() {
            return Err(ClientError::Wakeup);
        }
        let deadline = Instant::now() + timeout;
        let inner = self.poll_until(deadline);
        tokio::pin!(inner);
        loop {
            tokio::select! {
                r = &mut inner => return r,
                _ = wakeup.inner.1.notified() => {
                    if wakeup.take() {
                        return Err(ClientError::Wakeup);
                    }
                }
            }
        }
    }

    async fn poll_until(&mut self, deadline: Instant) -> Result<Vec<ConsumerRecord>, ClientError> {
        loop {
            self.refresh_pattern().await?;
            self.drive_membership(deadline).await?;
            self.maybe_auto_commit().await;
            self.resolve_positions(false).await?;
            if self.fetcher.has_buffered() {
                let records = self.fetcher.collect(self.config.max_poll_records);
                // Prefetch: the next batch travels while the caller works.
                self.fetcher.send_fetches().await?;
                return Ok(records);
            }
            self.fetcher.send_fetches().await?;
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let mut until = deadline;
            if let Some(m) = &self.member {
                if let Some(d) = member_call!(m, m => m.next_deadline()) {
                    until = until.min(d.max(now + Duration::from_millis(1)));
                }
                if self.auto_commit() {
                    until = until.min(self.next_auto_commit.max(now));
                }
            }
            if let Some(r) = self.fetcher.next_retry() {
                until = until.min(r);
            }
            if self.fetcher.has_unresolved() {
                until = until.min(now + self.config.common.retry_backoff);
            }
            let sleep = tokio::time::sleep_until(until.into());
            if self.fetcher.has_in_flight() {
                tokio::select! {
                    r = self.fetcher.complete_one() => r?,
                    _ = sleep => {}
                }
            } else {
                sleep.await;
            }
        }
    }

    /// Re-lists topics for a pattern subscription when due.
    async fn refresh_pattern(&mut self) -> Result<(), ClientError> {
        let Subscription::Pattern { regex, checked } = &self.subscription else {
            return Ok(());
        };
        if checked.is_some_and(|c| c.elapsed() < self.config.common.metadata_max_age) {
            return Ok(());
        }
        let regex = regex.clone();
        let meta = match self.cluster.refresh(None, false).await {
            Ok(m) => m,
            Err(e) if e.is_retriable() => {
                tracing::debug!(error = %e, "cannot list topics for the pattern yet");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let topics: BTreeSet<String> = meta
            .topics
            .iter()
            .filter_map(|(name, info)| {
                let info = info.as_ref().ok()?;
                let internal = info.is_internal || name.starts_with("__");
                (regex.is_match(name) && !(internal && self.config.exclude_internal_topics))
                    .then(|| name.clone())
            })
            .collect();
        if let Subscription::Pattern { checked, .. } = &mut self.subscription {
            *checked = Some(Instant::now());
        }
        self.set_member_topics(topics);
        Ok(())
    }

    /// Runs the member until it has nothing to report (or `deadline`
    /// passes: a join keeps going in the background and the next poll picks
    /// it up), acting on its events.
    async fn drive_membership(&mut self, deadline: Instant) -> Result<(), ClientError> {
        let failures: Vec<(CommitIdentity, ErrorCode)> =
            std::mem::take(&mut *self.commit_errors.lock());
        if let Some(m) = &mut self.member {
            for (id, code) in &failures {
                member_call!(m, m => m.commit_failed_with(id, *code));
            }
        }
        loop {
            let Some(m) = &mut self.member else {
                return Ok(());
            };
            // Only the member's own step is cut at the deadline (it is
            // cancel-safe); an event, once taken, is always acted on.
            let step =
                member_call!(m, m => tokio::time::timeout_at(deadline.into(), m.poll()).await);
            let Ok(event) = step else {
                return Ok(());
            };
            match event? {
                None => return Ok(()),
                Some(MembershipEvent::Revoked(parts)) => self.on_revoked(&parts, false).await,
                Some(MembershipEvent::Lost(parts)) => self.on_revoked(&parts, true).await,
                Some(MembershipEvent::Assigned(parts)) => self.on_assigned(&parts),
            }
        }
    }

    /// Partitions leave: auto-commit (unless lost), the listener, its commits.
    async fn on_revoked(&mut self, parts: &[TopicPartition], lost: bool) {
        tracing::info!(?parts, lost, "partitions revoked");
        let mut commits: Vec<(String, i32, i64)> = Vec::new();
        if !lost && self.auto_commit() {
            commits.extend(self.positions_of(parts));
        }
        if let Some(listener) = self.listener.as_mut() {
            let fetcher = &self.fetcher;
            let positions =
                |t: &str, p: i32| fetcher.state(&(t.to_string(), p)).and_then(|s| s.position);
            let mut ctx = Rebalance::new(&positions, lost);
            if lost {
                listener.on_partitions_lost(&mut ctx, parts);
            } else {
                listener.on_partitions_revoked(&mut ctx, parts);
            }
            commits.extend(ctx.commits);
        }
        if !lost && !commits.is_empty() {
            if let Err(e) = self.commit_now(&commits).await {
                tracing::warn!(error = %e, "commit of revoked partitions failed");
            }
        }
        for tp in parts {
            self.fetcher.remove(tp);
            self.committed.lock().remove(tp);
        }
    }

    /// Partitions arrive at their committed offsets; the listener may seek.
    fn on_assigned(&mut self, parts: &[TopicPartition]) {
        tracing::info!(?parts, "partitions assigned");
        for tp in parts {
            self.fetcher.add(tp.clone(), StartOffset::Committed);
        }
        if let Some(listener) = self.listener.as_mut() {
            let positions = |_: &str, _: i32| None;
            let mut ctx = Rebalance::new(&positions, false);
            listener.on_partitions_assigned(&mut ctx, parts);
            for (t, p, to) in ctx.seeks {
                self.fetcher.seek(&(t, p), to);
            }
        }
    }

    // ---- commits --------------------------------------------------------------

    fn auto_commit(&self) -> bool {
        self.config.enable_auto_commit && self.config.group_id.is_some()
    }

    fn positions_of(&self, parts: &[TopicPartition]) -> Vec<(String, i32, i64)> {
        parts
            .iter()
            .filter_map(|tp| {
                let o = self.fetcher.state(tp)?.position?;
                Some((tp.0.clone(), tp.1, o))
            })
            .collect()
    }

    /// Positions that differ from what was last committed.
    fn uncommitted_positions(&self) -> Vec<(String, i32, i64)> {
        let parts: Vec<TopicPartition> = self.fetcher.assigned().cloned().collect();
        let committed = self.committed.lock();
        self.positions_of(&parts)
            .into_iter()
            .filter(|(t, p, o)| committed.get(&(t.clone(), *p)) != Some(o))
            .collect()
    }

    async fn maybe_auto_commit(&mut self) {
        if !self.auto_commit() || Instant::now() < self.next_auto_commit {
            return;
        }
        self.next_auto_commit = Instant::now() + self.config.auto_commit_interval;
        let offsets = self.uncommitted_positions();
        if offsets.is_empty() {
            return;
        }
        if let Err(e) = self.commit_offsets_async_inner(offsets, None).await {
            tracing::debug!(error = %e, "auto-commit not sent");
        }
    }

    async fn coordinator(&mut self) -> Result<Arc<Connection>, ClientError> {
        if let Some(c) = &self.coordinator {
            if c.is_open() {
                return Ok(c.clone());
            }
        }
        let group = self.group_id()?.to_string();
        let (_, conn) = coordinator_connection(&self.cluster, &group).await?;
        self.coordinator = Some(conn.clone());
        Ok(conn)
    }

    /// Who commits: the member's generation, or a standalone consumer.
    fn commit_identity(&self) -> Result<CommitIdentity, ClientError> {
        match &self.member {
            Some(m) => member_call!(m, m => m.commit_identity()).ok_or_else(|| {
                KafkaError::new(ErrorCode::RebalanceInProgress)
                    .with_message(Some(
                        "the consumer has not joined the group yet; poll first".into(),
                    ))
                    .into()
            }),
            None => Ok(CommitIdentity {
                member_id: String::new(),
                generation_id: -1,
                group_instance_id: None,
            }),
        }
    }

    async fn commit_now(&mut self, offsets: &[(String, i32, i64)]) -> Result<(), ClientError> {
        let group = self.group_id()?.to_string();
        let id = self.commit_identity()?;
        let conn = self.coordinator().await?;
        let res = commit_offsets_as(
            &conn,
            &group,
            &id.member_id,
            id.generation_id,
            id.group_instance_id.as_deref(),
            offsets,
        )
        .await;
        match &res {
            Ok(()) => {
                let mut c = self.committed.lock();
                for (t, p, o) in offsets {
                    c.insert((t.clone(), *p), *o);
                }
            }
            Err(e) => {
                if let (Some(code), Some(m)) = (e.code(), self.member.as_mut()) {
                    member_call!(m, m => m.commit_failed_with(&id, code));
                }
                if matches!(e.code(), Some(ErrorCode::NotCoordinator)) || !conn.is_open() {
                    self.coordinator = None;
                }
            }
        }
        res
    }

    /// Commits the positions of every assigned partition and waits.
    pub async fn commit_sync(&mut self) -> Result<(), ClientError> {
        self.check_open()?;
        let parts: Vec<TopicPartition> = self.fetcher.assigned().cloned().collect();
        let offsets = self.positions_of(&parts);
        if offsets.is_empty() {
            return Ok(());
        }
        self.commit_now(&offsets).await
    }

    /// Commits `offsets` (topic, partition, next offset to read) and waits.
    pub async fn commit_offsets_sync(
        &mut self,
        offsets: &[(String, i32, i64)],
    ) -> Result<(), ClientError> {
        self.check_open()?;
        self.commit_now(offsets).await
    }

    /// Commits the positions of every assigned partition in the background;
    /// `callback` (if any) receives the outcome. Commits are sent in call order.
    pub async fn commit_async(
        &mut self,
        callback: Option<CommitCallback>,
    ) -> Result<(), ClientError> {
        self.check_open()?;
        let parts: Vec<TopicPartition> = self.fetcher.assigned().cloned().collect();
        let offsets = self.positions_of(&parts);
        self.commit_offsets_async_inner(offsets, callback).await
    }

    /// Commits `offsets` in the background.
    pub async fn commit_offsets_async(
        &mut self,
        offsets: Vec<(String, i32, i64)>,
        callback: Option<CommitCallback>,
    ) -> Result<(), ClientError> {
        self.check_open()?;
        self.commit_offsets_async_inner(offsets, callback).await
    }

    async fn commit_offsets_async_inner(
        &mut self,
        offsets: Vec<(String, i32, i64)>,
        callback: Option<CommitCallback>,
    ) -> Result<(), ClientError> {
        let prepared = async {
            let group = self.group_id()?.to_string();
            let id = self.commit_identity()?;
            let conn = self.coordinator().await?;
            Ok::<_, ClientError>((group, id, conn))
        }
        .await;
        let (group, id, conn) = match prepared {
            Ok(x) => x,
            Err(e) => {
                if let Some(cb) = callback {
                    cb(Err(e.clone()));
                }
                return Err(e);
            }
        };
        if offsets.is_empty() {
            if let Some(cb) = callback {
                cb(Ok(()));
            }
            return Ok(());
        }
        let committed = self.committed.clone();
        let errors = self.commit_errors.clone();
        let identity = id.clone();
        // The request is queued on the connection now, so commits keep their order.
        let send = async move {
            commit_offsets_as(
                &conn,
                &group,
                &id.member_id,
                id.generation_id,
                id.group_instance_id.as_deref(),
                &offsets,
            )
            .await
            .map(|()| offsets)
        };
        let send = tokio::spawn(send);
        tokio::spawn(async move {
            let res = match send.await {
                Ok(r) => r,
                Err(_) => Err(ClientError::Closed("consumer")),
            };
            let res = match res {
                Ok(offsets) => {
                    let mut c = committed.lock();
                    for (t, p, o) in offsets {
                        c.insert((t, p), o);
                    }
                    Ok(())
                }
                Err(e) => {
                    if let Some(code) = e.code() {
                        errors.lock().push((identity, code));
                    }
                    tracing::debug!(error = %e, "async commit failed");
                    Err(e)
                }
            };
            if let Some(cb) = callback {
                cb(res);
            }
        });
        Ok(())
    }

    /// OffsetFetch of `partitions` from the group coordinator; partitions
    /// without a committed offset are absent.
    async fn committed_offsets(
        &mut self,
        partitions: &[&TopicPartition],
    ) -> Result<HashMap<TopicPartition, i64>, ClientError> {
        let group = self.group_id()?.to_string();
        let mut by_topic: Vec<(String, Vec<i32>)> = Vec::new();
        for (t, p) in partitions {
            match by_topic.iter_mut().find(|x| &x.0 == t) {
                Some(x) => x.1.push(*p),
                None => by_topic.push((t.clone(), vec![*p])),
            }
        }
        let conn = self.coordinator().await?;
        let found = fetch_offsets(&conn, &group, Some(&by_topic), None)
            .await
            .inspect_err(|_| self.coordinator = None)?;
        Ok(found
            .into_iter()
            .map(|c| ((c.topic, c.partition), c.offset))
            .collect())
    }

    /// The group's committed offsets of `partitions` (`None`: nothing committed).
    pub async fn committed(
        &mut self,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Option<i64>>, ClientError> {
        let found = self
            .committed_offsets(&partitions.iter().collect::<Vec<_>>())
            .await?;
        Ok(partitions.iter().map(|tp| found.get(tp).copied()).collect())
    }

    // ---- close ------------------------------------------------------------------

    /// Revokes (listener), auto-commits and leaves the group.
    async fn leave_group(&mut self) -> Result<(), ClientError> {
        if self.member.is_none() {
            return Ok(());
        }
        let owned: Vec<TopicPartition> = self.fetcher.assigned().cloned().collect();
        if !owned.is_empty() {
            self.on_revoked(&owned, false).await;
        }
        match &mut self.member {
            Some(m) => member_call!(m, m => m.leave().await),
            None => Ok(()),
        }
    }

    /// Commits (with auto-commit), leaves the group and refuses further
    /// calls.
    pub async fn close(&mut self) -> Result<(), ClientError> {
        if self.closed {
            return Ok(());
        }
        let result = if self.member.is_some() {
            self.leave_group().await
        } else if self.auto_commit() && self.fetcher.assigned().next().is_some() {
            let offsets = self.uncommitted_positions();
            if offsets.is_empty() {
                Ok(())
            } else {
                self.commit_now(&offsets).await
            }
        } else {
            Ok(())
        };
        self.closed = true;
        self.member = None;
        self.fetcher.clear();
        result
    }
}

fn not_assigned(topic: &str, partition: i32) -> ClientError {
    ClientError::InvalidArgument(format!(
        "topic '{topic}' partition {partition} is not assigned to this consumer"
    ))
}
