//! Placeholder until the classic member lands (not committed).
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use eddy_protocol::ErrorCode;

use crate::cluster::Cluster;
use crate::error::ClientError;
use crate::membership::{CommitIdentity, MemberConfig, MembershipEvent, TopicPartition};

#[derive(Debug)]
pub struct ClassicMember {
    owned: BTreeSet<TopicPartition>,
}

impl ClassicMember {
    pub fn new(_cluster: Arc<Cluster>, _config: MemberConfig) -> Result<Self, ClientError> {
        Err(ClientError::InvalidArgument(
            "group.protocol=classic is not available yet".into(),
        ))
    }
    pub fn set_subscription(&mut self, _topics: BTreeSet<String>) {}
    pub async fn poll(&mut self) -> Result<Option<MembershipEvent>, ClientError> {
        Ok(None)
    }
    pub fn next_deadline(&self) -> Option<Instant> {
        None
    }
    pub fn owned(&self) -> &BTreeSet<TopicPartition> {
        &self.owned
    }
    pub fn commit_identity(&self) -> Option<CommitIdentity> {
        None
    }
    pub fn commit_failed(&mut self, _code: ErrorCode) {}
    pub async fn leave(&mut self) -> Result<(), ClientError> {
        Ok(())
    }
}
