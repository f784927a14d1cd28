//! The rebalance listener: user code that runs when the consumer gains or
//! loses partitions of a subscription.
//!
//! Callbacks are synchronous. What they ask of the consumer through the
//! [`Rebalance`] context (commit these offsets, start there) is carried out
//! by the consumer before the rebalance goes on: offsets committed in
//! `on_partitions_revoked` reach the coordinator before the partitions are
//! given to another member.

use crate::consumer::StartOffset;
use crate::membership::TopicPartition;

/// Called by [`Consumer::poll`](crate::Consumer::poll) when the group's
/// assignment changes (Java's `ConsumerRebalanceListener`).
pub trait RebalanceListener: Send {
    /// Partitions are taken away in an orderly rebalance. Their positions
    /// are still known: commit them with [`Rebalance::commit_positions`] to
    /// hand over exactly where processing stopped.
    fn on_partitions_revoked(&mut self, ctx: &mut Rebalance<'_>, partitions: &[TopicPartition]) {
        let _ = (ctx, partitions);
    }

    /// Partitions were assigned. Positions start at the committed offsets
    /// (or `auto.offset.reset`); [`Rebalance::seek`] starts elsewhere.
    fn on_partitions_assigned(&mut self, ctx: &mut Rebalance<'_>, partitions: &[TopicPartition]) {
        let _ = (ctx, partitions);
    }

    /// Partitions were lost without a rebalance (the session expired or
    /// the member was fenced): another member may own them already, so
    /// their offsets can no longer be committed. Defaults to
    /// [`on_partitions_revoked`](Self::on_partitions_revoked), as in Java.
    fn on_partitions_lost(&mut self, ctx: &mut Rebalance<'_>, partitions: &[TopicPartition]) {
        self.on_partitions_revoked(ctx, partitions);
    }
}

/// What a listener callback may ask of the consumer.
pub struct Rebalance<'a> {
    positions: &'a dyn Fn(&str, i32) -> Option<i64>,
    pub(crate) commits: Vec<(String, i32, i64)>,
    pub(crate) seeks: Vec<(String, i32, StartOffset)>,
    /// Commits are refused (partitions lost).
    pub(crate) lost: bool,
}

impl std::fmt::Debug for Rebalance<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rebalance")
            .field("commits", &self.commits)
            .field("seeks", &self.seeks)
            .field("lost", &self.lost)
            .finish_non_exhaustive()
    }
}

impl<'a> Rebalance<'a> {
    pub(crate) fn new(positions: &'a dyn Fn(&str, i32) -> Option<i64>, lost: bool) -> Self {
        Rebalance {
            positions,
            commits: Vec::new(),
            seeks: Vec::new(),
            lost,
        }
    }

    /// The consumer's position (next offset to be returned) of a partition.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        (self.positions)(topic, partition)
    }

    /// Commits `offset` (the next offset to read) for a partition before the
    /// rebalance continues. Ignored for lost partitions.
    pub fn commit(&mut self, topic: &str, partition: i32, offset: i64) {
        if !self.lost {
            self.commits.push((topic.to_string(), partition, offset));
        }
    }

    /// Commits the current positions of `partitions`.
    pub fn commit_positions(&mut self, partitions: &[TopicPartition]) {
        for (t, p) in partitions {
            if let Some(o) = self.position(t, *p) {
                self.commit(t, *p, o);
            }
        }
    }

    /// Starts a newly assigned partition at `to` instead of its committed offset.
    pub fn seek(&mut self, topic: &str, partition: i32, to: StartOffset) {
        self.seeks.push((topic.to_string(), partition, to));
    }
}
