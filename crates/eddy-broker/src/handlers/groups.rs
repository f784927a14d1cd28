//! Consumer group APIs: FindCoordinator, the classic protocol (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup), offsets (OffsetCommit, OffsetFetch, OffsetDelete) and group
//! administration (ListGroups, DescribeGroups, DeleteGroups). KIP-848's
//! ConsumerGroupHeartbeat and ConsumerGroupDescribe are in `groups_consumer`.
//!
//! The state lives in [`crate::coordinator`]; these modules translate requests and responses.

use std::sync::Arc;

use eddy_protocol::error_code::ErrorCode;

use crate::broker::Broker;
use crate::coordinator::GroupSettings;

/// The checks every group request starts with: a non-empty group id and an available
/// `__consumer_offsets` (created on first use). Also starts the coordinator's timers.
pub(crate) fn precheck(broker: &Arc<Broker>, group_id: &str) -> Result<GroupSettings, ErrorCode> {
    broker.coordinator().ensure_ticker(broker);
    if group_id.is_empty() {
        return Err(ErrorCode::InvalidGroupId);
    }
    broker
        .coordinator()
        .offsets_topic(broker)
        .map_err(|e| e.code())?;
    Ok(GroupSettings::from_broker(broker))
}

/// FindCoordinator: this broker coordinates every group (after creating `__consumer_offsets`
/// if needed); transaction coordinators do not exist yet.
pub mod find_coordinator {
    use std::sync::Arc;

    use eddy_protocol::error_code::ErrorCode;
    use eddy_protocol::messages::find_coordinator_response::Coordinator;
    use eddy_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};

    use crate::broker::Broker;
    use crate::router::RequestContext;

    const GROUP: i8 = 0;
    const TRANSACTION: i8 = 1;

    fn lookup(broker: &Arc<Broker>, key: &str, key_type: i8) -> Coordinator {
        let fail = |code: ErrorCode| Coordinator {
            key: key.to_string(),
            node_id: -1,
            host: String::new(),
            port: -1,
            error_code: code.code(),
            error_message: Some(code.message().to_string()),
            ..Default::default()
        };
        match key_type {
            GROUP => {
                if key.is_empty() {
                    return fail(ErrorCode::InvalidRequest);
                }
                broker.coordinator().ensure_ticker(broker);
                if let Err(e) = broker.coordinator().partition_of(broker, key) {
                    return fail(e.code());
                }
                let (host, port) = broker.advertised();
                Coordinator {
                    key: key.to_string(),
                    node_id: broker.node_id(),
                    host,
                    port,
                    error_code: 0,
                    error_message: None,
                    ..Default::default()
                }
            }
            TRANSACTION => fail(ErrorCode::CoordinatorNotAvailable),
            _ => fail(ErrorCode::InvalidRequest),
        }
    }

    pub async fn handle(
        broker: &Arc<Broker>,
        ctx: &RequestContext,
        req: FindCoordinatorRequest,
    ) -> FindCoordinatorResponse {
        if ctx.api_version >= 4 {
            let coordinators = req
                .coordinator_keys
                .iter()
                .map(|k| lookup(broker, k, req.key_type))
                .collect();
            return FindCoordinatorResponse {
                coordinators,
                ..Default::default()
            };
        }
        let c = lookup(broker, &req.key, req.key_type);
        FindCoordinatorResponse {
            error_code: c.error_code,
            error_message: c.error_message,
            node_id: c.node_id,
            host: c.host,
            port: c.port,
            ..Default::default()
        }
    }

    pub fn error_response(
        req: &FindCoordinatorRequest,
        code: ErrorCode,
    ) -> FindCoordinatorResponse {
        FindCoordinatorResponse {
            error_code: code.code(),
            node_id: -1,
            port: -1,
            coordinators: req
                .coordinator_keys
                .iter()
                .map(|k| Coordinator {
                    key: k.clone(),
                    node_id: -1,
                    port: -1,
                    error_code: code.code(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }
}

/// JoinGroup (classic protocol).
pub mod join_group {
    use std::sync::Arc;

    use eddy_protocol::error_code::ErrorCode;
    use eddy_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
    use tokio::sync::oneshot;
    use tokio::time::Instant;

    use super::precheck;
    use crate::broker::{now_ms, Broker};
    use crate::coordinator::classic::{join_error, ClassicGroup, Effects, JoinRequest};
    use crate::coordinator::GroupKind;
    use crate::router::RequestContext;

    pub async fn handle(
        broker: &Arc<Broker>,
        ctx: &RequestContext,
        req: JoinGroupRequest,
    ) -> JoinGroupResponse {
        let cfg = match precheck(broker, &req.group_id) {
            Ok(c) => c,
            Err(code) => return join_error(&req.member_id, code),
        };
        if req.session_timeout_ms < cfg.min_session_timeout_ms
            || req.session_timeout_ms > cfg.max_session_timeout_ms
        {
            return join_error(&req.member_id, ErrorCode::InvalidSessionTimeout);
        }
        let coord = broker.coordinator();
        let group = if req.member_id.is_empty() {
            coord.group_or_create(&req.group_id)
        } else {
            match coord.group(&req.group_id) {
                Some(g) => g,
                None => return join_error(&req.member_id, ErrorCode::UnknownMemberId),
            }
        };
        let jr = JoinRequest {
            member_id: req.member_id.clone(),
            instance_id: req.group_instance_id.clone(),
            client_id: ctx.client_id.clone().unwrap_or_default(),
            client_host: String::new(),
            session_timeout_ms: req.session_timeout_ms,
            // v0 has no rebalance timeout: the session timeout serves as both.
            rebalance_timeout_ms: if ctx.api_version == 0 || req.rebalance_timeout_ms < 0 {
                req.session_timeout_ms
            } else {
                req.rebalance_timeout_ms
            },
            protocol_type: req.protocol_type.clone(),
            protocols: req
                .protocols
                .iter()
                .map(|p| (p.name.clone(), p.metadata.clone()))
                .collect(),
            require_known_member_id: ctx.api_version >= 4,
            supports_skip_assignment: ctx.api_version >= 9,
        };
        let rx = {
            let mut guard = group.lock();
            let g = &mut *guard;
            if g.deleted {
                return join_error(&req.member_id, ErrorCode::CoordinatorNotAvailable);
            }
            if let GroupKind::Consumer(c) = &g.kind {
                if !c.members.is_empty() {
                    return join_error(&req.member_id, ErrorCode::InconsistentGroupProtocol);
                }
                // An empty consumer group becomes a classic group.
                g.kind = GroupKind::Classic(ClassicGroup::new(&g.id, now_ms()));
            }
            let GroupKind::Classic(c) = &mut g.kind else {
                return join_error(&req.member_id, ErrorCode::InconsistentGroupProtocol);
            };
            let (tx, rx) = oneshot::channel();
            let mut fx = Effects::default();
            c.join(jr, tx, Instant::now(), now_ms(), &cfg.classic, &mut fx);
            coord.finish_classic(broker, &g.id, c, fx, &cfg);
            rx
        };
        rx.await
            .unwrap_or_else(|_| join_error(&req.member_id, ErrorCode::RebalanceInProgress))
    }

    pub fn error_response(req: &JoinGroupRequest, code: ErrorCode) -> JoinGroupResponse {
        join_error(&req.member_id, code)
    }
}

/// SyncGroup (classic protocol).
pub mod sync_group {
    use std::sync::Arc;

    use eddy_protocol::error_code::ErrorCode;
    use eddy_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
    use tokio::sync::oneshot;
    use tokio::time::Instant;

    use super::precheck;
    use crate::broker::{now_ms, Broker};
    use crate::coordinator::classic::{sync_error, Effects, SyncRequest};
    use crate::coordinator::GroupKind;
    use crate::router::RequestContext;

    pub async fn handle(
        broker: &Arc<Broker>,
        ctx: &RequestContext,
        req: SyncGroupRequest,
    ) -> SyncGroupResponse {
        let cfg = match precheck(broker, &req.group_id) {
            Ok(c) => c,
            Err(code) => return sync_error(code),
        };
        let coord = broker.coordinator();
        let Some(group) = coord.group(&req.group_id) else {
            return sync_error(ErrorCode::UnknownMemberId);
        };
        let v5 = ctx.api_version >= 5;
        let sr = SyncRequest {
            member_id: req.member_id,
            instance_id: req.group_instance_id,
            generation: req.generation_id,
            protocol_type: if v5 { req.protocol_type } else { None },
            protocol_name: if v5 { req.protocol_name } else { None },
            assignments: req
                .assignments
                .into_iter()
                .map(|a| (a.member_id, a.assignment))
                .collect(),
        };
        let rx = {
            let mut guard = group.lock();
            let g = &mut *guard;
            let GroupKind::Classic(c) = &mut g.kind else {
                return sync_error(ErrorCode::UnknownMemberId);
            };
            if g.deleted {
                return sync_error(ErrorCode::CoordinatorNotAvailable);
            }
            let (tx, rx) = oneshot::channel();
            let mut fx = Effects::default();
            c.sync(sr, tx, Instant::now(), now_ms(), &mut fx);
            coord.finish_classic(broker, &g.id, c, fx, &cfg);
            rx
        };
        rx.await
            .unwrap_or_else(|_| sync_error(ErrorCode::RebalanceInProgress))
    }

    pub fn error_response(_req: &SyncGroupRequest, code: ErrorCode) -> SyncGroupResponse {
        sync_error(code)
    }
}

/// Heartbeat (classic protocol).
pub mod heartbeat {
    use std::sync::Arc;

    use eddy_protocol::error_code::ErrorCode;
    use eddy_protocol::messages::{HeartbeatRequest, HeartbeatResponse};
    use tokio::time::Instant;

    use super::precheck;
    use crate::broker::Broker;
    use crate::coordinator::GroupKind;
    use crate::router::RequestContext;

    pub async fn handle(
        broker: &Arc<Broker>,
        _ctx: &RequestContext,
        req: HeartbeatRequest,
    ) -> HeartbeatResponse {
        let code = match precheck(broker, &req.group_id) {
            Err(code) => code,
            Ok(_) => match broker.coordinator().group(&req.group_id) {
                None => ErrorCode::UnknownMemberId,
                Some(group) => {
                    let mut g = group.lock();
                    match &mut g.kind {
                        GroupKind::Classic(c) => c.heartbeat(
                            &req.member_id,
                            req.group_instance_id.as_deref(),
                            req.generation_id,
                            Instant::now(),
                        ),
                        GroupKind::Consumer(_) => ErrorCode::UnknownMemberId,
                    }
                }
            },
        };
        error_response(&req, code)
    }

    pub fn error_response(_req: &HeartbeatRequest, code: ErrorCode) -> HeartbeatResponse {
        HeartbeatResponse {
            error_code: code.code(),
            ..Default::default()
        }
    }
}

/// LeaveGroup (classic protocol; several members from v3).
pub mod leave_group {
    use std::sync::Arc;

    use eddy_protocol::error_code::ErrorCode;
    use eddy_protocol::messages::leave_group_response::MemberResponse;
    use eddy_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};
    use tokio::time::Instant;

    use super::precheck;
    use crate::broker::{now_ms, Broker};
    use crate::coordinator::classic::Effects;
    use crate::coordinator::GroupKind;
    use crate::router::RequestContext;

    pub async fn handle(
        broker: &Arc<Broker>,
        ctx: &RequestContext,
        req: LeaveGroupRequest,
    ) -> LeaveGroupResponse {
        let cfg = match precheck(broker, &req.group_id) {
            Ok(c) => c,
            Err(code) => return error_response(&req, code),
        };
        let batched = ctx.api_version >= 3;
        let members: Vec<(String, Option<String>)> = if batched {
            req.members
                .iter()
                .map(|m| (m.member_id.clone(), m.group_instance_id.clone()))
                .collect()
        } else {
            vec![(req.member_id.clone(), None)]
        };
        let coord = broker.coordinator();
        let Some(group) = coord.group(&req.group_id) else {
            return error_response(&req, ErrorCode::UnknownMemberId);
        };
        let codes = {
            let mut guard = group.lock();
            let g = &mut *guard;
            let GroupKind::Classic(c) = &mut g.kind else {
                return error_response(&req, ErrorCode::UnknownMemberId);
            };
            let mut fx = Effects::default();
            let codes = c.leave(&members, Instant::now(), now_ms(), &cfg.classic, &mut fx);
            coord.finish_classic(broker, &g.id, c, fx, &cfg);
            codes
        };
        if !batched {
            return LeaveGroupResponse {
                error_code: codes.first().copied().unwrap_or(ErrorCode::None).code(),
                ..Default::default()
            };
        }
        LeaveGroupResponse {
            error_code: 0,
            members: members
                .into_iter()
                .zip(codes)
                .map(|((member_id, group_instance_id), code)| MemberResponse {
                    member_id,
                    group_instance_id,
                    error_code: code.code(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    pub fn error_response(_req: &LeaveGroupRequest, code: ErrorCode) -> LeaveGroupResponse {
        LeaveGroupResponse {
            error_code: code.code(),
            ..Default::default()
        }
    }
}

/// OffsetCommit: validated against the group's generation (or member epoch), written to
/// `__consumer_offsets`, acknowledged after the append.
pub mod offset_commit {
    use std::sync::Arc;

    use eddy_protocol::error_code::ErrorCode;
    use eddy_protocol::messages::offset_commit_response::{
        OffsetCommitResponsePartition, OffsetCommitResponseTopic,
    };
    use eddy_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

    use super::precheck;
    use crate::broker::{now_ms, Broker};
    use crate::coordinator::{records, CommittedOffset, CoordRecord, GroupKind};
    use crate::router::RequestContext;

    pub async fn handle(
        broker: &Arc<Broker>,
        ctx: &RequestContext,
        req: OffsetCommitRequest,
    ) -> OffsetCommitResponse {
        let cfg = match precheck(broker, &req.group_id) {
            Ok(c) => c,
            Err(code) => return error_response(&req, code),
        };
        let coord = broker.coordinator();
        let generation = req.generation_id_or_member_epoch;
        let group = match coord.group(&req.group_id) {
            Some(g) => g,
            // A simple consumer (generation -1) may commit for a group nobody is in.
            None if generation < 0 => coord.group_or_create(&req.group_id),
            None => return error_response(&req, ErrorCode::IllegalGeneration),
        };
        let mut guard = group.lock();
        let g = &mut *guard;
        if g.deleted {
            return error_response(&req, ErrorCode::CoordinatorNotAvailable);
        }
        let check = match &g.kind {
            GroupKind::Classic(c) => c.validate_offset_commit(
                &req.member_id,
                req.group_instance_id.as_deref(),
                generation,
            ),
            GroupKind::Consumer(c) => {
                c.validate_offset_commit(&req.member_id, generation, ctx.api_version)
            }
        };
        if let Err(code) = check {
            return error_response(&req, code);
        }
        let now = now_ms();
        // v2-v4: a retention time; -1 means the broker's.
        let expire = (matches!(ctx.api_version, 2..=4) && req.retention_time_ms >= 0)
            .then(|| now.saturating_add(req.retention_time_ms));
        let mut recs: Vec<CoordRecord> = Vec::new();
        let mut accepted: Vec<(String, i32, CommittedOffset)> = Vec::new();
        let mut topics = Vec::with_capacity(req.topics.len());
        for t in &req.topics {
            let state = broker.topic(&t.name);
            let mut partitions = Vec::with_capacity(t.partitions.len());
            for p in &t.partitions {
                let metadata = p.committed_metadata.clone().unwrap_or_default();
                let code = if state
                    .as_ref()
                    .and_then(|s| s.partition(p.partition_index))
                    .is_none()
                {
                    ErrorCode::UnknownTopicOrPartition
                } else if metadata.len() > cfg.offset_metadata_max_bytes {
                    ErrorCode::OffsetMetadataTooLarge
                } else {
                    let o = CommittedOffset {
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata,
                        commit_timestamp: now,
                        expire_timestamp: expire,
                    };
                    match records::offset_key(&g.id, &t.name, p.partition_index).and_then(|k| {
                        records::encode_offset_value(&o.to_record_value()).map(|v| (k, Some(v)))
                    }) {
                        Ok(r) => {
                            recs.push(r);
                            accepted.push((t.name.clone(), p.partition_index, o));
                            ErrorCode::None
                        }
                        Err(_) => ErrorCode::UnknownServerError,
                    }
                };
                partitions.push(OffsetCommitResponsePartition {
                    partition_index: p.partition_index,
                    error_code: code.code(),
                    ..Default::default()
                });
            }
            topics.push(OffsetCommitResponseTopic {
                name: t.name.clone(),
                partitions,
                ..Default::default()
            });
        }
        if let Err(e) = coord.append(broker, &g.id, &recs) {
            tracing::warn!(group = %g.id, error = %e, "cannot write committed offsets");
            let code = match e.code() {
                ErrorCode::UnknownServerError => ErrorCode::InvalidCommitOffsetSize,
                c => c,
            };
            for t in &mut topics {
                for p in &mut t.partitions {
                    if p.error_code == 0 {
                        p.error_code = code.code();
                    }
                }
            }
            return OffsetCommitResponse {
                topics,
                ..Default::default()
            };
        }
        for (topic, partition, o) in accepted {
            g.offsets.entry(topic).or_default().insert(partition, o);
        }
        OffsetCommitResponse {
            topics,
            ..Default::default()
        }
    }

    pub fn error_response(req: &OffsetCommitRequest, code: ErrorCode) -> OffsetCommitResponse {
        OffsetCommitResponse {
            topics: req
                .topics
                .iter()
                .map(|t| OffsetCommitResponseTopic {
                    name: t.name.clone(),
                    partitions: t
                        .partitions
                        .iter()
                        .map(|p| OffsetCommitResponsePartition {
                            partition_index: p.partition_index,
                            error_code: code.code(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }
}

/// OffsetFetch (one group before v8, several from v8).
pub mod offset_fetch {
    use std::sync::Arc;

    use eddy_protocol::error_code::ErrorCode;
    use eddy_protocol::messages::offset_fetch_response::{
        OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
        OffsetFetchResponseTopic, OffsetFetchResponseTopics,
    };
    use eddy_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse};

    use super::precheck;
    use crate::broker::Broker;
    use crate::coordinator::{CommittedOffset, GroupKind};
    use crate::router::RequestContext;

    /// (topic, [(partition, offset, leader epoch, metadata)]) of one group.
    type Fetched = Vec<(String, Vec<(i32, Option<CommittedOffset>)>)>;

    /// The offsets of one group: of the given topics/partitions, or all of them (`None`).
    fn fetch_group(
        broker: &Arc<Broker>,
        group_id: &str,
        member: Option<(&str, i32)>,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<Fetched, ErrorCode> {
        precheck(broker, group_id)?;
        let group = broker.coordinator().group(group_id);
        let guard = group.as_ref().map(|g| g.lock());
        let g = guard.as_deref().filter(|g| !g.deleted);
        if let (Some(g), Some((member_id, epoch))) = (g, member) {
            if let GroupKind::Consumer(c) = &g.kind {
                c.validate_offset_fetch(member_id, epoch)?;
            }
        }
        let lookup = |t: &str, p: i32| -> Option<CommittedOffset> {
            g.and_then(|g| g.offsets.get(t))
                .and_then(|m| m.get(&p))
                .cloned()
        };
        Ok(match topics {
            Some(topics) => topics
                .into_iter()
                .map(|(t, ps)| {
                    let parts = ps.into_iter().map(|p| (p, lookup(&t, p))).collect();
                    (t, parts)
                })
                .collect(),
            None => g
                .map(|g| {
                    g.offsets
                        .iter()
                        .map(|(t, m)| {
                            (
                                t.clone(),
                                m.iter().map(|(p, o)| (*p, Some(o.clone()))).collect(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    fn values(o: &Option<CommittedOffset>) -> (i64, i32, String) {
        match o {
            Some(o) => (o.offset, o.leader_epoch, o.metadata.clone()),
            None => (-1, -1, String::new()),
        }
    }

    pub async fn handle(
        broker: &Arc<Broker>,
        ctx: &RequestContext,
        req: OffsetFetchRequest,
    ) -> OffsetFetchResponse {
        if ctx.api_version >= 8 {
            let groups = req
                .groups
                .iter()
                .map(|rg| {
                    let topics = rg.topics.as_ref().map(|ts| {
                        ts.iter()
                            .map(|t| (t.name.clone(), t.partition_indexes.clone()))
                            .collect()
                    });
                    let member = rg.member_id.as_deref().map(|m| (m, rg.member_epoch));
                    match fetch_group(broker, &rg.group_id, member, topics) {
                        Ok(f) => OffsetFetchResponseGroup {
                            group_id: rg.group_id.clone(),
                            topics: f
                                .into_iter()
                                .map(|(name, parts)| OffsetFetchResponseTopics {
                                    name,
                                    partitions: parts
                                        .into_iter()
                                        .map(|(p, o)| {
                                            let (offset, epoch, metadata) = values(&o);
                                            OffsetFetchResponsePartitions {
                                                partition_index: p,
                                                committed_offset: offset,
                                                committed_leader_epoch: epoch,
                                                metadata: Some(metadata),
                                                error_code: 0,
                                                ..Default::default()
                                            }
                                        })
                                        .collect(),
                                    ..Default::default()
                                })
                                .collect(),
                            error_code: 0,
                            ..Default::default()
                        },
                        Err(code) => OffsetFetchResponseGroup {
                            group_id: rg.group_id.clone(),
                            error_code: code.code(),
                            ..Default::default()
                        },
                    }
                })
                .collect();
            return OffsetFetchResponse {
                groups,
                ..Default::default()
            };
        }
        let topics = req.topics.as_ref().map(|ts| {
            ts.iter()
                .map(|t| (t.name.clone(), t.partition_indexes.clone()))
                .collect()
        });
        match fetch_group(broker, &req.group_id, None, topics) {
            Ok(f) => OffsetFetchResponse {
                topics: f
                    .into_iter()
                    .map(|(name, parts)| OffsetFetchResponseTopic {
                        name,
                        partitions: parts
                            .into_iter()
                            .map(|(p, o)| {
                                let (offset, epoch, metadata) = values(&o);
                                OffsetFetchResponsePartition {
                                    partition_index: p,
                                    committed_offset: offset,
                                    committed_leader_epoch: epoch,
                                    metadata: Some(metadata),
                                    error_code: 0,
                                    ..Default::default()
                                }
                            })
                            .collect(),
                        ..Default::default()
                    })
                    .collect(),
                error_code: 0,
                ..Default::default()
            },
            Err(code) => error_response(&req, code),
        }
    }

    pub fn error_response(req: &OffsetFetchRequest, code: ErrorCode) -> OffsetFetchResponse {
        OffsetFetchResponse {
            error_code: code.code(),
            topics: req
                .topics
                .iter()
                .flatten()
                .map(|t| OffsetFetchResponseTopic {
                    name: t.name.clone(),
                    partitions: t
                        .partition_indexes
                        .iter()
                        .map(|p| OffsetFetchResponsePartition {
                            partition_index: *p,
                            committed_offset: -1,
                            committed_leader_epoch: -1,
                            metadata: Some(String::new()),
                            error_code: code.code(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
            groups: req
                .groups
                .iter()
                .map(|g| OffsetFetchResponseGroup {
                    group_id: g.group_id.clone(),
                    error_code: code.code(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }
}

/// OffsetDelete: offsets of an empty group, or of topics a consumer group does not subscribe to.
pub mod offset_delete {
    use std::sync::Arc;

    use eddy_protocol::error_code::ErrorCode;
    use eddy_protocol::messages::offset_delete_response::{
        OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
    };
    use eddy_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

    use super::precheck;
    use crate::broker::Broker;
    use crate::coordinator::classic::ClassicState;
    use crate::coordinator::{records, CoordRecord, GroupKind};
    use crate::router::RequestContext;

    pub async fn handle(
        broker: &Arc<Broker>,
        _ctx: &RequestContext,
        req: OffsetDeleteRequest,
    ) -> OffsetDeleteResponse {
        if let Err(code) = precheck(broker, &req.group_id) {
            return error_response(&req, code);
        }
        let coord = broker.coordinator();
        let Some(group) = coord.group(&req.group_id) else {
            return error_response(&req, ErrorCode::GroupIdNotFound);
        };
        let mut guard = group.lock();
        let g = &mut *guard;
        if g.deleted {
            return error_response(&req, ErrorCode::GroupIdNotFound);
        }
        // Topics whose offsets are in use and cannot be deleted.
        let subscribed: Option<std::collections::HashSet<String>> = match &g.kind {
            GroupKind::Classic(c) => match c.state {
                ClassicState::Dead => return error_response(&req, ErrorCode::GroupIdNotFound),
                ClassicState::Empty => None,
                _ => match c.subscribed_topics() {
                    Some(s) => Some(s),
                    None => return error_response(&req, ErrorCode::NonEmptyGroup),
                },
            },
            GroupKind::Consumer(c) => Some(c.subscribed_topics()),
        };
        let mut recs: Vec<CoordRecord> = Vec::new();
        let mut doomed: Vec<(String, i32)> = Vec::new();
        let mut topics = Vec::new();
        for t in &req.topics {
            let in_use = subscribed.as_ref().is_some_and(|s| s.contains(&t.name));
            let state = broker.topic(&t.name);
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let code = if in_use {
                        ErrorCode::GroupSubscribedToTopic
                    } else if state
                        .as_ref()
                        .and_then(|s| s.partition(p.partition_index))
                        .is_none()
                    {
                        ErrorCode::UnknownTopicOrPartition
                    } else {
                        let exists = g
                            .offsets
                            .get(&t.name)
                            .is_some_and(|m| m.contains_key(&p.partition_index));
                        if exists {
                            match records::offset_key(&g.id, &t.name, p.partition_index) {
                                Ok(k) => {
                                    recs.push((k, None));
                                    doomed.push((t.name.clone(), p.partition_index));
                                    ErrorCode::None
                                }
                                Err(_) => ErrorCode::UnknownServerError,
                            }
                        } else {
                            ErrorCode::None
                        }
                    };
                    OffsetDeleteResponsePartition {
                        partition_index: p.partition_index,
                        error_code: code.code(),
                        ..Default::default()
                    }
                })
                .collect();
            topics.push(OffsetDeleteResponseTopic {
                name: t.name.clone(),
                partitions,
                ..Default::default()
            });
        }
        if let Err(e) = coord.append(broker, &g.id, &recs) {
            tracing::warn!(group = %g.id, error = %e, "cannot write offset tombstones");
            return error_response(&req, e.code());
        }
        for (t, p) in doomed {
            if let Some(m) = g.offsets.get_mut(&t) {
                m.remove(&p);
                if m.is_empty() {
                    g.offsets.remove(&t);
                }
            }
        }
        OffsetDeleteResponse {
            error_code: 0,
            topics,
            ..Default::default()
        }
    }

    pub fn error_response(_req: &OffsetDeleteRequest, code: ErrorCode) -> OffsetDeleteResponse {
        OffsetDeleteResponse {
            error_code: code.code(),
            ..Default::default()
        }
    }
}

/// ListGroups (`states_filter` from v4, `types_filter` from v5).
pub mod list_groups {
    use std::sync::Arc;

    use eddy_protocol::error_code::ErrorCode;
    use eddy_protocol::messages::list_groups_response::ListedGroup;
    use eddy_protocol::messages::{ListGroupsRequest, ListGroupsResponse};

    use crate::broker::Broker;
    use crate::router::RequestContext;

    pub async fn handle(
        broker: &Arc<Broker>,
        ctx: &RequestContext,
        req: ListGroupsRequest,
    ) -> ListGroupsResponse {
        broker.coordinator().ensure_ticker(broker);
        let states: Vec<String> = req
            .states_filter
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect();
        let types: Vec<String> = req
            .types_filter
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect();
        let mut groups = Vec::new();
        for g in broker.coordinator().all_groups() {
            let g = g.lock();
            if g.deleted {
                continue;
            }
            let state = g.state_name();
            if ctx.api_version >= 4
                && !states.is_empty()
                && !states.contains(&state.to_ascii_lowercase())
            {
                continue;
            }
            if ctx.api_version >= 5
                && !types.is_empty()
                && !types.iter().any(|t| t == g.type_name())
            {
                continue;
            }
            groups.push(ListedGroup {
                group_id: g.id.clone(),
                protocol_type: g.protocol_type(),
                group_state: state.to_string(),
                group_type: g.type_name().to_string(),
                ..Default::default()
            });
        }
        ListGroupsResponse {
            error_code: 0,
            groups,
            ..Default::default()
        }
    }

    pub fn error_response(_req: &ListGroupsRequest, code: ErrorCode) -> ListGroupsResponse {
        ListGroupsResponse {
            error_code: code.code(),
            ..Default::default()
        }
    }
}

/// DescribeGroups (classic groups; an unknown group is reported as `Dead`).
pub mod describe_groups {
    use std::sync::Arc;

    use eddy_protocol::error_code::ErrorCode;
    use eddy_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
    use eddy_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

    use super::precheck;
    use crate::broker::Broker;
    use crate::coordinator::classic::ClassicState;
    use crate::coordinator::GroupKind;
    use crate::router::RequestContext;

    /// Kafka's "authorized operations not requested" value.
    const OPS_NOT_REQUESTED: i32 = i32::MIN;

    fn dead(id: &str, code: ErrorCode) -> DescribedGroup {
        DescribedGroup {
            error_code: code.code(),
            group_id: id.to_string(),
            group_state: "Dead".to_string(),
            protocol_type: String::new(),
            protocol_data: String::new(),
            members: Vec::new(),
            authorized_operations: OPS_NOT_REQUESTED,
            ..Default::default()
        }
    }

    fn describe(broker: &Arc<Broker>, id: &str) -> DescribedGroup {
        if let Err(code) = precheck(broker, id) {
            return dead(id, code);
        }
        let Some(group) = broker.coordinator().group(id) else {
            return dead(id, ErrorCode::None);
        };
        let g = group.lock();
        if g.deleted {
            return dead(id, ErrorCode::None);
        }
        match &g.kind {
            GroupKind::Classic(c) => {
                let stable = c.state == ClassicState::Stable;
                let protocol = c.protocol_name.as_deref();
                DescribedGroup {
                    error_code: 0,
                    group_id: id.to_string(),
                    group_state: c.state.name().to_string(),
                    protocol_type: c.protocol_type.clone().unwrap_or_default(),
                    protocol_data: if stable {
                        protocol.unwrap_or_default().to_string()
                    } else {
                        String::new()
                    },
                    members: c
                        .members
                        .values()
                        .map(|m| DescribedGroupMember {
                            member_id: m.id.clone(),
                            group_instance_id: m.instance_id.clone(),
                            client_id: m.client_id.clone(),
                            client_host: m.client_host.clone(),
                            member_metadata: if stable {
                                m.metadata(protocol)
                            } else {
                                Default::default()
                            },
                            member_assignment: if stable {
                                m.assignment.clone()
                            } else {
                                Default::default()
                            },
                            ..Default::default()
                        })
                        .collect(),
                    authorized_operations: OPS_NOT_REQUESTED,
                    ..Default::default()
                }
            }
            // A KIP-848 group is described by ConsumerGroupDescribe.
            GroupKind::Consumer(_) => dead(id, ErrorCode::GroupIdNotFound),
        }
    }

    pub async fn handle(
        broker: &Arc<Broker>,
        _ctx: &RequestContext,
        req: DescribeGroupsRequest,
    ) -> DescribeGroupsResponse {
        DescribeGroupsResponse {
            groups: req.groups.iter().map(|id| describe(broker, id)).collect(),
            ..Default::default()
        }
    }

    pub fn error_response(req: &DescribeGroupsRequest, code: ErrorCode) -> DescribeGroupsResponse {
        DescribeGroupsResponse {
            groups: req.groups.iter().map(|id| dead(id, code)).collect(),
            ..Default::default()
        }
    }
}

/// DeleteGroups: only groups without members; their offsets and metadata get tombstones.
pub mod delete_groups {
    use std::sync::Arc;

    use eddy_protocol::error_code::ErrorCode;
    use eddy_protocol::messages::delete_groups_response::DeletableGroupResult;
    use eddy_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

    use super::precheck;
    use crate::broker::{now_ms, Broker};
    use crate::coordinator::classic::{ClassicState, Effects};
    use crate::coordinator::{records, CoordRecord, GroupKind};
    use crate::router::RequestContext;

    fn delete(broker: &Arc<Broker>, id: &str) -> ErrorCode {
        if let Err(code) = precheck(broker, id) {
            return code;
        }
        let coord = broker.coordinator();
        let Some(group) = coord.group(id) else {
            return ErrorCode::GroupIdNotFound;
        };
        let mut g = group.lock();
        if g.deleted {
            return ErrorCode::GroupIdNotFound;
        }
        match &g.kind {
            GroupKind::Classic(c) if c.state == ClassicState::Dead => {
                return ErrorCode::GroupIdNotFound
            }
            GroupKind::Classic(c) if c.state != ClassicState::Empty => {
                return ErrorCode::NonEmptyGroup
            }
            GroupKind::Consumer(c) if !c.members.is_empty() => return ErrorCode::NonEmptyGroup,
            _ => {}
        }
        let mut recs: Vec<CoordRecord> = Vec::new();
        for (t, parts) in &g.offsets {
            for p in parts.keys() {
                match records::offset_key(id, t, *p) {
                    Ok(k) => recs.push((k, None)),
                    Err(_) => return ErrorCode::UnknownServerError,
                }
            }
        }
        match records::group_key(id) {
            Ok(k) => recs.push((k, None)),
            Err(_) => return ErrorCode::UnknownServerError,
        }
        if let Err(e) = coord.append(broker, id, &recs) {
            tracing::warn!(group = id, error = %e, "cannot delete the group");
            return e.code();
        }
        if let GroupKind::Classic(c) = &mut g.kind {
            let mut fx = Effects::default();
            c.make_dead(now_ms(), &mut fx);
            fx.deliver();
        }
        g.deleted = true;
        g.offsets.clear();
        drop(g);
        coord.remove_group(id, &group);
        tracing::info!(group = id, "deleted group");
        ErrorCode::None
    }

    pub async fn handle(
        broker: &Arc<Broker>,
        _ctx: &RequestContext,
        req: DeleteGroupsRequest,
    ) -> DeleteGroupsResponse {
        DeleteGroupsResponse {
            results: req
                .groups_names
                .iter()
                .map(|id| DeletableGroupResult {
                    group_id: id.clone(),
                    error_code: delete(broker, id).code(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    pub fn error_response(req: &DeleteGroupsRequest, code: ErrorCode) -> DeleteGroupsResponse {
        DeleteGroupsResponse {
            results: req
                .groups_names
                .iter()
                .map(|id| DeletableGroupResult {
                    group_id: id.clone(),
                    error_code: code.code(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use eddy_protocol::error_code::ErrorCode;
    use eddy_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use eddy_protocol::messages::offset_delete_request::{
        OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
    };
    use eddy_protocol::messages::offset_fetch_request::{
        OffsetFetchRequestGroup, OffsetFetchRequestTopics,
    };
    use eddy_protocol::messages::*;

    use super::*;
    use crate::broker::Broker;
    use crate::config::BrokerConfig;
    use crate::coordinator::{partition_for, OFFSETS_TOPIC};
    use crate::router::RequestContext;

    fn ctx(v: i16) -> RequestContext {
        RequestContext {
            api_version: v,
            correlation_id: 1,
            client_id: Some("test".into()),
        }
    }

    fn open(dir: &std::path::Path) -> Arc<Broker> {
        let mut cfg = BrokerConfig::new("127.0.0.1:0".parse().unwrap(), dir.to_path_buf());
        cfg.props
            .insert("offsets.topic.num.partitions".into(), "5".into());
        Broker::open(cfg).unwrap()
    }

    fn commit(group: &str, generation: i32, parts: &[(&str, i32, i64)]) -> OffsetCommitRequest {
        let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for (t, p, o) in parts {
            topics
                .entry(t)
                .or_default()
                .push(OffsetCommitRequestPartition {
                    partition_index: *p,
                    committed_offset: *o,
                    committed_leader_epoch: 3,
                    committed_metadata: Some(format!("m{o}")),
                    ..Default::default()
                });
        }
        OffsetCommitRequest {
            group_id: group.into(),
            generation_id_or_member_epoch: generation,
            member_id: String::new(),
            topics: topics
                .into_iter()
                .map(|(name, partitions)| OffsetCommitRequestTopic {
                    name: name.into(),
                    partitions,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn codes(r: &OffsetCommitResponse) -> Vec<i16> {
        r.topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect()
    }

    fn fetch_v8(groups: &[&str]) -> OffsetFetchRequest {
        OffsetFetchRequest {
            groups: groups
                .iter()
                .map(|g| OffsetFetchRequestGroup {
                    group_id: g.to_string(),
                    member_id: None,
                    member_epoch: -1,
                    topics: Some(vec![OffsetFetchRequestTopics {
                        name: "t".into(),
                        partition_indexes: vec![0, 1],
                        ..Default::default()
                    }]),
                    ..Default::default()
                })
                .collect(),
            require_stable: true,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn offsets_are_committed_fetched_persisted_and_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let b = open(dir.path());
        b.create_topic("t", 2, BTreeMap::new(), false, false)
            .unwrap();

        // FindCoordinator creates the offsets topic; batched keys from v4.
        let r = find_coordinator::handle(
            &b,
            &ctx(4),
            FindCoordinatorRequest {
                key_type: 0,
                coordinator_keys: vec!["g1".into(), "".into()],
                ..Default::default()
            },
        )
        .await;
        assert_eq!(r.coordinators[0].error_code, 0);
        assert_eq!(r.coordinators[0].node_id, b.node_id());
        assert_eq!(
            r.coordinators[1].error_code,
            ErrorCode::InvalidRequest.code()
        );
        let t = b.topic(OFFSETS_TOPIC).expect("offsets topic");
        assert!(t.internal);
        assert_eq!(t.partitions.len(), 5);
        let meta = b.topic_meta(OFFSETS_TOPIC).unwrap();
        assert_eq!(meta.configs["cleanup.policy"], "compact");
        let r = find_coordinator::handle(
            &b,
            &ctx(3),
            FindCoordinatorRequest {
                key: "tx".into(),
                key_type: 1,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(r.error_code, ErrorCode::CoordinatorNotAvailable.code());

        // A simple consumer commits for an unknown group; a member generation is refused.
        let r = offset_commit::handle(&b, &ctx(8), commit("g1", -1, &[("t", 0, 10), ("t", 1, 20)]))
            .await;
        assert_eq!(codes(&r), vec![0, 0]);
        let r = offset_commit::handle(&b, &ctx(8), commit("g2", 4, &[("t", 0, 1)])).await;
        assert_eq!(codes(&r), vec![ErrorCode::IllegalGeneration.code()]);
        let r = offset_commit::handle(
            &b,
            &ctx(8),
            commit("g1", -1, &[("nope", 0, 1), ("t", 9, 1)]),
        )
        .await;
        assert_eq!(
            codes(&r),
            vec![ErrorCode::UnknownTopicOrPartition.code(); 2]
        );
        let r = offset_commit::handle(&b, &ctx(8), commit("", -1, &[("t", 0, 1)])).await;
        assert_eq!(codes(&r), vec![ErrorCode::InvalidGroupId.code()]);
        let mut big = commit("g1", -1, &[("t", 0, 1)]);
        big.topics[0].partitions[0].committed_metadata = Some("x".repeat(5000));
        let r = offset_commit::handle(&b, &ctx(8), big).await;
        assert_eq!(codes(&r), vec![ErrorCode::OffsetMetadataTooLarge.code()]);

        // The records are in the group's partition of __consumer_offsets.
        let p = partition_for("g1", 5);
        assert!(b.partition(OFFSETS_TOPIC, p).unwrap().high_watermark() >= 1);

        // Several groups in one OffsetFetch (v8); unknown group → -1.
        let r = offset_fetch::handle(&b, &ctx(8), fetch_v8(&["g1", "unknown"])).await;
        assert_eq!(r.groups.len(), 2);
        let g1 = &r.groups[0].topics[0].partitions;
        assert_eq!((g1[0].committed_offset, g1[1].committed_offset), (10, 20));
        assert_eq!(g1[0].committed_leader_epoch, 3);
        assert_eq!(g1[0].metadata.as_deref(), Some("m10"));
        let un = &r.groups[1].topics[0].partitions;
        assert_eq!((un[0].committed_offset, un[0].error_code), (-1, 0));

        // After a restart (the log is replayed) the offsets are still there; v7 all topics.
        drop(b);
        let b = open(dir.path());
        let r = offset_fetch::handle(
            &b,
            &ctx(7),
            OffsetFetchRequest {
                group_id: "g1".into(),
                topics: None,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(r.error_code, 0);
        let got: Vec<(i32, i64)> = r.topics[0]
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.committed_offset))
            .collect();
        assert_eq!(got, vec![(0, 10), (1, 20)]);

        // ListGroups sees the simple group as Empty; filters apply from v4/v5.
        let r = list_groups::handle(&b, &ctx(5), ListGroupsRequest::default()).await;
        assert_eq!(r.groups.len(), 1);
        assert_eq!(r.groups[0].group_state, "Empty");
        assert_eq!(r.groups[0].group_type, "classic");
        let r = list_groups::handle(
            &b,
            &ctx(5),
            ListGroupsRequest {
                states_filter: vec!["stable".into()],
                ..Default::default()
            },
        )
        .await;
        assert!(r.groups.is_empty());
        let r = list_groups::handle(
            &b,
            &ctx(5),
            ListGroupsRequest {
                types_filter: vec!["consumer".into()],
                ..Default::default()
            },
        )
        .await;
        assert!(r.groups.is_empty());

        // OffsetDelete of an empty group, then DeleteGroups.
        let r = offset_delete::handle(
            &b,
            &ctx(0),
            OffsetDeleteRequest {
                group_id: "g1".into(),
                topics: vec![OffsetDeleteRequestTopic {
                    name: "t".into(),
                    partitions: vec![OffsetDeleteRequestPartition {
                        partition_index: 1,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            },
        )
        .await;
        assert_eq!(r.error_code, 0);
        assert_eq!(r.topics[0].partitions[0].error_code, 0);
        let r = offset_fetch::handle(&b, &ctx(8), fetch_v8(&["g1"])).await;
        let ps = &r.groups[0].topics[0].partitions;
        assert_eq!((ps[0].committed_offset, ps[1].committed_offset), (10, -1));
        let r = delete_groups::handle(
            &b,
            &ctx(2),
            DeleteGroupsRequest {
                groups_names: vec!["g1".into(), "g1".into(), "nope".into()],
                ..Default::default()
            },
        )
        .await;
        let codes: Vec<i16> = r.results.iter().map(|r| r.error_code).collect();
        assert_eq!(
            codes,
            vec![
                0,
                ErrorCode::GroupIdNotFound.code(),
                ErrorCode::GroupIdNotFound.code()
            ]
        );
        // Deletion is persisted too.
        drop(b);
        let b = open(dir.path());
        let r = offset_fetch::handle(&b, &ctx(8), fetch_v8(&["g1"])).await;
        assert_eq!(r.groups[0].topics[0].partitions[0].committed_offset, -1);
        let r = list_groups::handle(&b, &ctx(5), ListGroupsRequest::default()).await;
        assert!(r.groups.is_empty());
    }

    #[tokio::test]
    async fn join_group_argument_errors() {
        let dir = tempfile::tempdir().unwrap();
        let b = open(dir.path());
        let join = |group: &str, session: i32, member: &str| JoinGroupRequest {
            group_id: group.into(),
            session_timeout_ms: session,
            rebalance_timeout_ms: 10_000,
            member_id: member.into(),
            protocol_type: "consumer".into(),
            protocols: vec![Default::default()],
            ..Default::default()
        };
        let r = join_group::handle(&b, &ctx(5), join("", 10_000, "")).await;
        assert_eq!(r.error_code, ErrorCode::InvalidGroupId.code());
        let r = join_group::handle(&b, &ctx(5), join("g", 5_999, "")).await;
        assert_eq!(r.error_code, ErrorCode::InvalidSessionTimeout.code());
        let r = join_group::handle(&b, &ctx(5), join("g", 1_800_001, "")).await;
        assert_eq!(r.error_code, ErrorCode::InvalidSessionTimeout.code());
        // A known member id in an unknown group.
        let r = join_group::handle(&b, &ctx(5), join("g", 10_000, "m-1")).await;
        assert_eq!(r.error_code, ErrorCode::UnknownMemberId.code());
        // v4+: a new member gets its id first.
        let r = join_group::handle(&b, &ctx(5), join("g", 10_000, "")).await;
        assert_eq!(r.error_code, ErrorCode::MemberIdRequired.code());
        assert!(r.member_id.starts_with("test-"));
        let r = heartbeat::handle(
            &b,
            &ctx(4),
            HeartbeatRequest {
                group_id: "g".into(),
                generation_id: 0,
                member_id: "m-1".into(),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(r.error_code, ErrorCode::UnknownMemberId.code());
        let r = sync_group::handle(
            &b,
            &ctx(5),
            SyncGroupRequest {
                group_id: "nope".into(),
                member_id: "m-1".into(),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(r.error_code, ErrorCode::UnknownMemberId.code());
        let r = leave_group::handle(
            &b,
            &ctx(3),
            LeaveGroupRequest {
                group_id: "nope".into(),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(r.error_code, ErrorCode::UnknownMemberId.code());
        let r = describe_groups::handle(
            &b,
            &ctx(5),
            DescribeGroupsRequest {
                groups: vec!["nope".into()],
                ..Default::default()
            },
        )
        .await;
        assert_eq!(r.groups[0].group_state, "Dead");
    }

    #[tokio::test]
    async fn offsets_of_a_deleted_topic_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let b = open(dir.path());
        b.create_topic("t", 2, BTreeMap::new(), false, false)
            .unwrap();
        let r = offset_commit::handle(&b, &ctx(8), commit("g", -1, &[("t", 0, 10)])).await;
        assert_eq!(codes(&r), vec![0]);
        b.delete_topic("t").unwrap();
        b.create_topic("t", 2, BTreeMap::new(), false, false)
            .unwrap();
        let r = offset_fetch::handle(&b, &ctx(8), fetch_v8(&["g"])).await;
        assert_eq!(r.groups[0].topics[0].partitions[0].committed_offset, -1);
        drop(b);
        let b = open(dir.path());
        let r = offset_fetch::handle(&b, &ctx(8), fetch_v8(&["g"])).await;
        assert_eq!(r.groups[0].topics[0].partitions[0].committed_offset, -1);
    }

    #[tokio::test]
    async fn offsets_of_empty_groups_expire() {
        let dir = tempfile::tempdir().unwrap();
        let b = open(dir.path());
        b.create_topic("t", 2, BTreeMap::new(), false, false)
            .unwrap();
        let r = offset_commit::handle(&b, &ctx(8), commit("old", -1, &[("t", 0, 10)])).await;
        assert_eq!(codes(&r), vec![0]);
        let mut cfg = GroupSettings::from_broker(&b);
        // Not yet.
        b.coordinator().expire_offsets(&b, &cfg);
        let r = offset_fetch::handle(&b, &ctx(8), fetch_v8(&["old"])).await;
        assert_eq!(r.groups[0].topics[0].partitions[0].committed_offset, 10);
        cfg.offsets_retention_ms = 0;
        b.coordinator().expire_offsets(&b, &cfg);
        let r = offset_fetch::handle(&b, &ctx(8), fetch_v8(&["old"])).await;
        assert_eq!(r.groups[0].topics[0].partitions[0].committed_offset, -1);
        assert!(b.coordinator().group("old").is_none(), "group forgotten");
        // And it stays expired after a restart.
        drop(b);
        let b = open(dir.path());
        assert!(b.coordinator().group("old").is_none());
    }
}

#[cfg(test)]
mod compaction_tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use eddy_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use eddy_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use eddy_protocol::messages::*;

    use super::*;
    use crate::broker::Broker;
    use crate::config::BrokerConfig;
    use crate::coordinator::OFFSETS_TOPIC;
    use crate::router::RequestContext;

    fn open(dir: &std::path::Path) -> Arc<Broker> {
        let mut cfg = BrokerConfig::new("127.0.0.1:0".parse().unwrap(), dir.to_path_buf());
        for (k, v) in [
            ("offsets.topic.num.partitions", "1"),
            ("offsets.topic.segment.bytes", "2048"),
        ] {
            cfg.props.insert(k.into(), v.into());
        }
        Broker::open(cfg).unwrap()
    }

    fn ctx(v: i16) -> RequestContext {
        RequestContext {
            api_version: v,
            correlation_id: 1,
            client_id: None,
        }
    }

    async fn commit(b: &Arc<Broker>, group: &str, p: i32, o: i64) {
        let r = offset_commit::handle(
            b,
            &ctx(8),
            OffsetCommitRequest {
                group_id: group.into(),
                generation_id_or_member_epoch: -1,
                topics: vec![OffsetCommitRequestTopic {
                    name: "t".into(),
                    partitions: vec![OffsetCommitRequestPartition {
                        partition_index: p,
                        committed_offset: o,
                        committed_leader_epoch: -1,
                        committed_metadata: Some(String::new()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            },
        )
        .await;
        assert_eq!(r.topics[0].partitions[0].error_code, 0);
    }

    async fn fetch(b: &Arc<Broker>, group: &str) -> Vec<i64> {
        let r = offset_fetch::handle(
            b,
            &ctx(7),
            OffsetFetchRequest {
                group_id: group.into(),
                topics: Some(vec![OffsetFetchRequestTopic {
                    name: "t".into(),
                    partition_indexes: vec![0, 1],
                    ..Default::default()
                }]),
                ..Default::default()
            },
        )
        .await;
        r.topics[0]
            .partitions
            .iter()
            .map(|p| p.committed_offset)
            .collect()
    }

    /// `__consumer_offsets` is compacted by key: after the cleaner ran, a restarted broker
    /// still finds the latest offset of every group/partition.
    #[tokio::test]
    async fn offsets_survive_compaction_of_the_offsets_topic() {
        let dir = tempfile::tempdir().unwrap();
        let b = open(dir.path());
        b.create_topic("t", 2, BTreeMap::new(), false, false)
            .unwrap();
        for i in 0..300 {
            commit(&b, "ga", 0, i).await;
            commit(&b, "gb", (i % 2) as i32, 1000 + i).await;
        }
        let p = b.partition(OFFSETS_TOPIC, 0).unwrap();
        let before = p.log.read().size_bytes();
        assert!(p.log.read().segment_count() > 3);
        let mut cleaner = eddy_log::Cleaner::new(eddy_log::CleanerConfig {
            dedupe_buffer_size: 1 << 20,
            io_max_bytes_per_second: f64::MAX,
        });
        let mut cleaned = false;
        for _ in 0..5 {
            cleaned |= b.clean_filthiest_log(&mut cleaner);
        }
        assert!(cleaned, "the cleaner did not clean {OFFSETS_TOPIC}");
        let after = p.log.read().size_bytes();
        assert!(
            after < before / 2,
            "compaction kept {after} of {before} bytes"
        );
        drop(p);
        assert_eq!(fetch(&b, "ga").await, vec![299, -1]);
        drop(b);
        let b = open(dir.path());
        assert_eq!(fetch(&b, "ga").await, vec![299, -1]);
        assert_eq!(fetch(&b, "gb").await, vec![1298, 1299]);
    }
}
