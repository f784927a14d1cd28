//! The contract between the consumer and a group membership protocol.
//!
//! A member (classic JoinGroup/SyncGroup with client-side assignors in
//! `classic`, or the KIP-848 ConsumerGroupHeartbeat member in `group`) decides
//! which partitions this consumer owns. The consumer drives it: on every
//! `poll` it calls the member's `poll()` until that returns `None`, acting on
//! each [`MembershipEvent`] in order (running the user's rebalance listener,
//! committing, starting or stopping fetches). Members never fetch records
//! and never call the listener themselves.
//!
//! Every member type offers the same methods (the consumer dispatches over
//! an enum of them, because async trait methods cannot be called through
//! `dyn`):
//!
//! ```text
//! fn set_subscription(&mut self, topics: BTreeSet<String>)
//!     // the topics to be assigned from; a change makes the member rejoin
//! async fn poll(&mut self) -> Result<Option<MembershipEvent>, ClientError>
//!     // joins, syncs, heartbeats as due; cancel-safe (the consumer may drop
//!     // the future on wakeup() or timeout and call poll again later)
//! fn next_deadline(&self) -> Option<Instant>
//!     // when poll() must run again at the latest (next heartbeat), if ever
//! fn owned(&self) -> &BTreeSet<TopicPartition>
//! fn commit_identity(&self) -> Option<CommitIdentity>
//!     // None while the member has no generation/epoch (commits then fail
//!     // with a clear error, or are skipped by auto-commit)
//! fn commit_failed_with(&mut self, identity: &CommitIdentity, code: ErrorCode)
//!     // an OffsetCommit made as `identity` answered UNKNOWN_MEMBER_ID /
//!     // ILLEGAL_GENERATION / REBALANCE_IN_PROGRESS / FENCED_*: the member
//!     // rejoins as it should (failures of an older generation are ignored)
//! async fn leave(&mut self) -> Result<(), ClientError>
//!     // LeaveGroup (classic) or epoch -1 heartbeat (KIP-848)
//! ```

use std::time::Duration;

/// A (topic, partition) pair.
pub type TopicPartition = (String, i32);

/// What the consumer must do after a membership step. Events come in the
/// order the consumer must handle them: revocations before assignments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipEvent {
    /// These owned partitions are given up in an orderly rebalance. The
    /// consumer calls `on_partitions_revoked` (the user may still commit
    /// them), commits them if auto-commit is on, and stops fetching them.
    /// The member has already removed them from [`owned`](self).
    Revoked(Vec<TopicPartition>),
    /// These partitions are now owned in addition to the previous ones. The
    /// consumer looks up their committed offsets and calls
    /// `on_partitions_assigned`.
    Assigned(Vec<TopicPartition>),
    /// These partitions were lost without an orderly rebalance (session
    /// expired, fenced): they must not be committed. The consumer calls
    /// `on_partitions_lost` and stops fetching them.
    Lost(Vec<TopicPartition>),
}

/// What an OffsetCommit needs to be accepted by the group coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitIdentity {
    pub member_id: String,
    /// The classic generation id, or the KIP-848 member epoch.
    pub generation_id: i32,
    pub group_instance_id: Option<String>,
}

/// Settings shared by the membership protocols, from the consumer config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberConfig {
    /// `group.id`.
    pub group_id: String,
    /// `group.instance.id` (static membership), if set.
    pub group_instance_id: Option<String>,
    /// `session.timeout.ms` (default 45000; classic only).
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms` (default 3000; classic only, KIP-848 uses the
    /// interval the coordinator sends).
    pub heartbeat_interval: Duration,
    /// `max.poll.interval.ms` (default 300000): the rebalance timeout.
    pub rebalance_timeout: Duration,
    /// `partition.assignment.strategy` as assignor names, in preference
    /// order (default `["range", "cooperative-sticky"]`; classic only).
    pub assignment_strategies: Vec<String>,
    /// `group.remote.assignor` (KIP-848 only): `None` for the broker's default.
    pub remote_assignor: Option<String>,
    /// `client.rack`, if set.
    pub rack: Option<String>,
}

impl MemberConfig {
    pub fn new(group_id: impl Into<String>) -> Self {
        MemberConfig {
            group_id: group_id.into(),
            group_instance_id: None,
            session_timeout: Duration::from_millis(45_000),
            heartbeat_interval: Duration::from_millis(3_000),
            rebalance_timeout: Duration::from_millis(300_000),
            assignment_strategies: vec!["range".into(), "cooperative-sticky".into()],
            remote_assignor: None,
            rack: None,
        }
    }
}
