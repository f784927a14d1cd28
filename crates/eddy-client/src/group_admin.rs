//! Administration of consumer groups: coordinator lookup, listing,
//! describing (KIP-848 `ConsumerGroupDescribe`, falling back to the classic
//! `DescribeGroups`), deletion, and committed offsets.

use std::collections::BTreeMap;
use std::sync::Arc;

use eddy_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use eddy_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use eddy_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use eddy_protocol::messages::{
    ConsumerGroupDescribeRequest, DeleteGroupsRequest, DescribeGroupsRequest,
    FindCoordinatorRequest, ListGroupsRequest, OffsetCommitRequest, OffsetDeleteRequest,
    OffsetFetchRequest,
};
use eddy_protocol::{ApiKey, ErrorCode};

use crate::admin::AdminClient;
use crate::cluster::{BrokerInfo, Cluster};
use crate::connection::Connection;
use crate::error::{check_code, ClientError, KafkaError};

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    /// "consumer" for consumer groups (both protocols), "" for a group that
    /// only stores offsets.
    pub protocol_type: String,
    /// Empty when the broker is older than ListGroups v4.
    pub state: String,
    /// "classic" or "consumer"; empty when the broker is older than v5.
    pub group_type: String,
}

/// A member of a described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Assigned partitions, sorted.
    pub assignment: Vec<(String, i32)>,
}

/// A described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    /// E.g. "Stable", "Empty", "Dead" (no such group).
    pub state: String,
    /// "consumer" (KIP-848) or "classic".
    pub group_type: String,
    /// The classic protocol type ("consumer"), or "consumer" for KIP-848 groups.
    pub protocol_type: String,
    /// The classic assignment protocol ("range", ...) or the KIP-848 server assignor.
    pub assignor: String,
    pub coordinator: BrokerInfo,
    pub members: Vec<GroupMemberDescription>,
}

/// A committed offset of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: Option<i32>,
    pub metadata: Option<String>,
}

fn invalid(api: ApiKey, conn: &Connection, reason: impl Into<String>) -> ClientError {
    ClientError::InvalidResponse {
        api,
        addr: conn.addr().to_string(),
        reason: reason.into(),
    }
}

/// FindCoordinator for a group: the coordinator broker.
pub(crate) async fn find_coordinator(
    cluster: &Cluster,
    group: &str,
) -> Result<BrokerInfo, ClientError> {
    let conn = cluster.any_connection().await?;
    let version = conn.version::<FindCoordinatorRequest>()?;
    let req = if version >= 4 {
        FindCoordinatorRequest {
            key: String::new(),
            key_type: 0,
            coordinator_keys: vec![group.to_string()],
        }
    } else {
        FindCoordinatorRequest {
            key: group.to_string(),
            key_type: 0,
            coordinator_keys: Vec::new(),
        }
    };
    let resp = conn.send_version(&req, version).await?;
    let (code, msg, node_id, host, port) = if version >= 4 {
        let c = resp
            .coordinators
            .into_iter()
            .find(|c| c.key == group)
            .ok_or_else(|| invalid(ApiKey::FindCoordinator, &conn, "no coordinator"))?;
        (c.error_code, c.error_message, c.node_id, c.host, c.port)
    } else {
        (
            resp.error_code,
            resp.error_message,
            resp.node_id,
            resp.host,
            resp.port,
        )
    };
    check_code(code, msg.as_ref())?;
    Ok(BrokerInfo {
        node_id,
        host,
        port,
        rack: None,
    })
}

/// A connection to the coordinator of `group`.
pub(crate) async fn coordinator_connection(
    cluster: &Cluster,
    group: &str,
) -> Result<(BrokerInfo, Arc<Connection>), ClientError> {
    let b = find_coordinator(cluster, group).await?;
    let conn = cluster.connection(b.node_id).await?;
    Ok((b, conn))
}

/// OffsetFetch of `group` (all partitions if `topics` is `None`). Partitions
/// without a committed offset are left out.
pub(crate) async fn fetch_offsets(
    conn: &Connection,
    group: &str,
    topics: Option<&[(String, Vec<i32>)]>,
    member: Option<(&str, i32)>,
) -> Result<Vec<CommittedOffset>, ClientError> {
    let version = conn.version::<OffsetFetchRequest>()?;
    let req = if version >= 8 {
        OffsetFetchRequest {
            groups: vec![OffsetFetchRequestGroup {
                group_id: group.to_string(),
                member_id: member.map(|m| m.0.to_string()),
                member_epoch: member.map_or(-1, |m| m.1),
                topics: topics.map(|ts| {
                    ts.iter()
                        .map(|(t, ps)| OffsetFetchRequestTopics {
                            name: t.clone(),
                            partition_indexes: ps.clone(),
                        })
                        .collect()
                }),
            }],
            require_stable: true,
            ..Default::default()
        }
    } else {
        OffsetFetchRequest {
            group_id: group.to_string(),
            topics: topics.map(|ts| {
                ts.iter()
                    .map(|(t, ps)| OffsetFetchRequestTopic {
                        name: t.clone(),
                        partition_indexes: ps.clone(),
                    })
                    .collect()
            }),
            require_stable: version >= 7,
            ..Default::default()
        }
    };
    let resp = conn.send_version(&req, version).await?;
    let mut out = Vec::new();
    let mut push = |topic: &str, p: i32, offset: i64, epoch: i32, md: Option<String>, code: i16| {
        check_code(code, None).map_err(|e| ClientError::from(e.with_partition(topic, p)))?;
        if offset >= 0 {
            out.push(CommittedOffset {
                topic: topic.to_string(),
                partition: p,
                offset,
                leader_epoch: (epoch >= 0).then_some(epoch),
                metadata: md,
            });
        }
        Ok::<(), ClientError>(())
    };
    if version >= 8 {
        let g = resp
            .groups
            .into_iter()
            .find(|g| g.group_id == group)
            .ok_or_else(|| invalid(ApiKey::OffsetFetch, conn, format!("no group '{group}'")))?;
        check_code(g.error_code, None)?;
        for t in g.topics {
            for p in t.partitions {
                push(
                    &t.name,
                    p.partition_index,
                    p.committed_offset,
                    p.committed_leader_epoch,
                    p.metadata,
                    p.error_code,
                )?;
            }
        }
    } else {
        check_code(resp.error_code, None)?;
        for t in resp.topics {
            for p in t.partitions {
                push(
                    &t.name,
                    p.partition_index,
                    p.committed_offset,
                    p.committed_leader_epoch,
                    p.metadata,
                    p.error_code,
                )?;
            }
        }
    }
    out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(out)
}

/// OffsetCommit of `offsets` (topic, partition, offset) for `group` as
/// `member_id` in `generation` (-1 and "" for an admin commit).
pub(crate) async fn commit_offsets(
    conn: &Connection,
    group: &str,
    member_id: &str,
    generation: i32,
    offsets: &[(String, i32, i64)],
) -> Result<(), ClientError> {
    commit_offsets_as(conn, group, member_id, generation, None, offsets).await
}

/// [`commit_offsets`] by a static member (`group.instance.id`).
pub(crate) async fn commit_offsets_as(
    conn: &Connection,
    group: &str,
    member_id: &str,
    generation: i32,
    group_instance_id: Option<&str>,
    offsets: &[(String, i32, i64)],
) -> Result<(), ClientError> {
    let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for (t, p, o) in offsets {
        topics
            .entry(t.as_str())
            .or_default()
            .push(OffsetCommitRequestPartition {
                partition_index: *p,
                committed_offset: *o,
                committed_leader_epoch: -1,
                commit_timestamp: -1,
                committed_metadata: Some(String::new()),
            });
    }
    let req = OffsetCommitRequest {
        group_id: group.to_string(),
        generation_id_or_member_epoch: generation,
        member_id: member_id.to_string(),
        group_instance_id: group_instance_id.map(String::from),
        retention_time_ms: -1,
        topics: topics
            .into_iter()
            .map(|(name, partitions)| OffsetCommitRequestTopic {
                name: name.to_string(),
                partitions,
            })
            .collect(),
    };
    let resp = conn.send(&req).await?;
    for t in resp.topics {
        for p in t.partitions {
            check_code(p.error_code, None)
                .map_err(|e| ClientError::from(e.with_partition(&t.name, p.partition_index)))?;
        }
    }
    Ok(())
}

/// The partitions of a classic consumer-protocol assignment; `None` if it is
/// empty or malformed.
fn decode_classic_assignment(b: &[u8]) -> Option<Vec<(String, i32)>> {
    if b.is_empty() {
        return None;
    }
    crate::assignor::decode_assignment(&bytes::Bytes::copy_from_slice(b))
        .ok()
        .map(|a| a.partitions)
}

impl AdminClient {
    /// The coordinator of `group` (FindCoordinator).
    pub async fn find_coordinator(&self, group: &str) -> Result<BrokerInfo, ClientError> {
        find_coordinator(self.cluster(), group).await
    }

    /// Every group of every broker, sorted by id. `states` filters by state
    /// (e.g. "Stable", "Empty"; case-insensitive; needs ListGroups v4).
    pub async fn list_groups(&self, states: &[String]) -> Result<Vec<GroupListing>, ClientError> {
        let meta = self.cluster().refresh(Some(&[]), false).await?;
        let mut out = Vec::new();
        for b in &meta.brokers {
            let conn = self.cluster().connection(b.node_id).await?;
            let version = conn.version::<ListGroupsRequest>()?;
            let req = ListGroupsRequest {
                states_filter: if version >= 4 {
                    states.to_vec()
                } else {
                    Vec::new()
                },
                types_filter: Vec::new(),
            };
            let resp = conn.send_version(&req, version).await?;
            check_code(resp.error_code, None)?;
            for g in resp.groups {
                if version < 4
                    && !states.is_empty()
                    && !states
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(&g.group_state))
                {
                    continue;
                }
                out.push(GroupListing {
                    group_id: g.group_id,
                    protocol_type: g.protocol_type,
                    state: g.group_state,
                    group_type: g.group_type,
                });
            }
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(out)
    }

    /// Describes groups: ConsumerGroupDescribe first, DescribeGroups for
    /// groups that are not KIP-848 consumer groups. A group that does not
    /// exist is described with state "Dead" and no members.
    pub async fn describe_groups(
        &self,
        groups: &[String],
    ) -> Result<Vec<GroupDescription>, ClientError> {
        let mut out = Vec::new();
        for g in groups {
            out.push(self.describe_group(g).await?);
        }
        Ok(out)
    }

    /// Describes one group (see [`AdminClient::describe_groups`]).
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription, ClientError> {
        let (coordinator, conn) = coordinator_connection(self.cluster(), group).await?;
        if conn.version::<ConsumerGroupDescribeRequest>().is_ok() {
            let req = ConsumerGroupDescribeRequest {
                group_ids: vec![group.to_string()],
                include_authorized_operations: false,
            };
            let resp = conn.send(&req).await?;
            let d = resp
                .groups
                .into_iter()
                .find(|d| d.group_id == group)
                .ok_or_else(|| invalid(ApiKey::ConsumerGroupDescribe, &conn, "no group"))?;
            if d.error_code == 0 {
                let mut members: Vec<GroupMemberDescription> = d
                    .members
                    .into_iter()
                    .map(|m| {
                        let mut assignment: Vec<(String, i32)> = m
                            .assignment
                            .topic_partitions
                            .iter()
                            .flat_map(|t| t.partitions.iter().map(|p| (t.topic_name.clone(), *p)))
                            .collect();
                        assignment.sort();
                        GroupMemberDescription {
                            member_id: m.member_id,
                            instance_id: m.instance_id,
                            client_id: m.client_id,
                            client_host: m.client_host,
                            assignment,
                        }
                    })
                    .collect();
                members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
                return Ok(GroupDescription {
                    group_id: d.group_id,
                    state: d.group_state,
                    group_type: "consumer".into(),
                    protocol_type: "consumer".into(),
                    assignor: d.assignor_name,
                    coordinator,
                    members,
                });
            }
            if d.error_code != ErrorCode::GroupIdNotFound.code() {
                return Err(
                    KafkaError::new(ErrorCode::from_code_or_unknown(d.error_code))
                        .with_message(d.error_message)
                        .into(),
                );
            }
        }
        let req = DescribeGroupsRequest {
            groups: vec![group.to_string()],
            include_authorized_operations: false,
        };
        let resp = conn.send(&req).await?;
        let d = resp
            .groups
            .into_iter()
            .find(|d| d.group_id == group)
            .ok_or_else(|| invalid(ApiKey::DescribeGroups, &conn, "no group"))?;
        if d.error_code == ErrorCode::GroupIdNotFound.code() {
            return Ok(GroupDescription {
                group_id: group.to_string(),
                state: "Dead".into(),
                group_type: String::new(),
                protocol_type: String::new(),
                assignor: String::new(),
                coordinator,
                members: Vec::new(),
            });
        }
        check_code(d.error_code, None)?;
        let consumer = d.protocol_type == "consumer";
        let mut members: Vec<GroupMemberDescription> = d
            .members
            .into_iter()
            .map(|m| {
                let mut assignment = if consumer {
                    decode_classic_assignment(&m.member_assignment).unwrap_or_default()
                } else {
                    Vec::new()
                };
                assignment.sort();
                GroupMemberDescription {
                    member_id: m.member_id,
                    instance_id: m.group_instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    assignment,
                }
            })
            .collect();
        members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        Ok(GroupDescription {
            group_id: d.group_id,
            state: d.group_state,
            group_type: "classic".into(),
            protocol_type: d.protocol_type,
            assignor: d.protocol_data,
            coordinator,
            members,
        })
    }

    /// Deletes groups; one result per group, in order. A group with members
    /// is refused (NON_EMPTY_GROUP).
    pub async fn delete_groups(
        &self,
        groups: &[String],
    ) -> Result<Vec<Result<(), ClientError>>, ClientError> {
        let mut out = Vec::new();
        for g in groups {
            let (_, conn) = coordinator_connection(self.cluster(), g).await?;
            let req = DeleteGroupsRequest {
                groups_names: vec![g.clone()],
            };
            let resp = conn.send(&req).await?;
            let r = resp
                .results
                .into_iter()
                .find(|r| &r.group_id == g)
                .ok_or_else(|| invalid(ApiKey::DeleteGroups, &conn, format!("no group '{g}'")))?;
            out.push(check_code(r.error_code, None).map_err(ClientError::from));
        }
        Ok(out)
    }

    /// Deletes one group.
    pub async fn delete_group(&self, group: &str) -> Result<(), ClientError> {
        let mut r = self.delete_groups(&[group.to_string()]).await?;
        r.pop().unwrap_or(Ok(()))
    }

    /// The committed offsets of `group` (every partition it has committed),
    /// sorted by topic and partition.
    pub async fn list_group_offsets(
        &self,
        group: &str,
    ) -> Result<Vec<CommittedOffset>, ClientError> {
        let (_, conn) = coordinator_connection(self.cluster(), group).await?;
        fetch_offsets(&conn, group, None, None).await
    }

    /// Sets committed offsets (topic, partition, offset) of `group`. Like
    /// Kafka's AdminClient this commits as no member (generation -1), which
    /// the coordinator allows only while the group has no members.
    pub async fn alter_group_offsets(
        &self,
        group: &str,
        offsets: &[(String, i32, i64)],
    ) -> Result<(), ClientError> {
        let (_, conn) = coordinator_connection(self.cluster(), group).await?;
        commit_offsets(&conn, group, "", -1, offsets).await
    }

    /// Deletes the committed offsets of `partitions` (OffsetDelete); refused
    /// for partitions the group is consuming.
    pub async fn delete_group_offsets(
        &self,
        group: &str,
        partitions: &[(String, i32)],
    ) -> Result<(), ClientError> {
        let (_, conn) = coordinator_connection(self.cluster(), group).await?;
        let mut topics: BTreeMap<&str, Vec<OffsetDeleteRequestPartition>> = BTreeMap::new();
        for (t, p) in partitions {
            topics
                .entry(t.as_str())
                .or_default()
                .push(OffsetDeleteRequestPartition {
                    partition_index: *p,
                });
        }
        let req = OffsetDeleteRequest {
            group_id: group.to_string(),
            topics: topics
                .into_iter()
                .map(|(name, partitions)| OffsetDeleteRequestTopic {
                    name: name.to_string(),
                    partitions,
                })
                .collect(),
        };
        let resp = conn.send(&req).await?;
        check_code(resp.error_code, None)?;
        for t in resp.topics {
            for p in t.partitions {
                check_code(p.error_code, None)
                    .map_err(|e| ClientError::from(e.with_partition(&t.name, p.partition_index)))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_assignment_decoding() {
        let mut b = vec![
            0, 1, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 5,
        ];
        b.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(
            decode_classic_assignment(&b),
            Some(vec![("t".to_string(), 3), ("t".to_string(), 5)])
        );
        // Truncated input is refused, not a panic.
        assert_eq!(decode_classic_assignment(&b[..15]), None);
        assert_eq!(decode_classic_assignment(&[]), None);
    }
}
