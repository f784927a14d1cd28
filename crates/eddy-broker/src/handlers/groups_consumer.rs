//! KIP-848 consumer group APIs: ConsumerGroupHeartbeat and ConsumerGroupDescribe.

/// ConsumerGroupHeartbeat: join, heartbeat, reconcile, leave.
pub mod consumer_group_heartbeat {
    use std::sync::Arc;

    use eddy_protocol::error_code::ErrorCode;
    use eddy_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
    use eddy_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
    use tokio::time::Instant;

    use crate::broker::{now_ms, Broker};
    use crate::coordinator::assignor::{short_name, Parts};
    use crate::coordinator::consumer::{
        new_member_id, ConsumerGroup, HeartbeatInput, LEAVE_GROUP_STATIC_EPOCH,
    };
    use crate::coordinator::{GroupKind, GroupSettings};
    use crate::router::RequestContext;

    fn error(code: ErrorCode, message: impl Into<String>) -> ConsumerGroupHeartbeatResponse {
        ConsumerGroupHeartbeatResponse {
            error_code: code.code(),
            error_message: Some(message.into()),
            member_id: None,
            member_epoch: -1,
            heartbeat_interval_ms: 0,
            assignment: None,
            ..Default::default()
        }
    }

    /// Kafka's `throwIfConsumerGroupHeartbeatRequestIsInvalid`.
    fn validate(
        req: &ConsumerGroupHeartbeatRequest,
        version: i16,
        cfg: &GroupSettings,
    ) -> Result<(), (ErrorCode, String)> {
        let invalid = |m: &str| Err((ErrorCode::InvalidRequest, m.to_string()));
        if req.group_id.is_empty() {
            return invalid("GroupId can't be empty.");
        }
        if req.instance_id.as_deref() == Some("") {
            return invalid("InstanceId can't be empty.");
        }
        if req.rack_id.as_deref() == Some("") {
            return invalid("RackId can't be empty.");
        }
        if version >= 1 && req.member_id.is_empty() {
            return invalid("MemberId can't be empty.");
        }
        if version == 0 && req.member_epoch != 0 && req.member_id.is_empty() {
            return invalid("MemberId can't be empty.");
        }
        if req.member_epoch == 0 {
            if req.rebalance_timeout_ms == -1 {
                return invalid("RebalanceTimeoutMs must be provided in first request.");
            }
            if req.topic_partitions.as_ref().is_none_or(|t| !t.is_empty()) {
                return invalid("TopicPartitions must be empty when (re-)joining.");
            }
            if req.subscribed_topic_names.is_none() && req.subscribed_topic_regex.is_none() {
                return invalid(
                    "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
                );
            }
        } else if req.member_epoch == LEAVE_GROUP_STATIC_EPOCH {
            if req.instance_id.is_none() {
                return invalid("InstanceId can't be null.");
            }
        } else if req.member_epoch < LEAVE_GROUP_STATIC_EPOCH {
            return invalid(&format!("MemberEpoch {} is invalid.", req.member_epoch));
        }
        if req
            .subscribed_topic_regex
            .as_deref()
            .is_some_and(|r| !r.is_empty())
        {
            return invalid("Regular expression subscriptions are not supported by Eddy yet.");
        }
        if let Some(a) = &req.server_assignor {
            if !cfg.consumer.assignors.iter().any(|x| x == short_name(a)) {
                return Err((
                    ErrorCode::UnsupportedAssignor,
                    format!(
                        "ServerAssignor {a} is not supported. Supported assignors: {}.",
                        cfg.consumer.assignors.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    pub async fn handle(
        broker: &Arc<Broker>,
        ctx: &RequestContext,
        req: ConsumerGroupHeartbeatRequest,
    ) -> ConsumerGroupHeartbeatResponse {
        let coord = broker.coordinator();
        coord.ensure_ticker(broker);
        let cfg = GroupSettings::from_broker(broker);
        if let Err((code, msg)) = validate(&req, ctx.api_version, &cfg) {
            return error(code, msg);
        }
        if let Err(e) = coord.offsets_topic(broker) {
            return error(e.code(), e.to_string());
        }
        let group = match coord.group(&req.group_id) {
            Some(g) => g,
            None if req.member_epoch == 0 => coord.group_or_create(&req.group_id),
            None => {
                return error(
                    ErrorCode::UnknownMemberId,
                    format!("Group {} has no member {}.", req.group_id, req.member_id),
                )
            }
        };
        // v0: the coordinator names new members; v1: the client does.
        let member_id = if req.member_id.is_empty() {
            new_member_id()
        } else {
            req.member_id.clone()
        };
        let owned: Option<Parts> = req.topic_partitions.as_ref().map(|tps| {
            let mut p = Parts::new();
            for tp in tps {
                if let Some(t) = broker.topic_by_id(&tp.topic_id) {
                    p.entry(t.name.to_string())
                        .or_default()
                        .extend(tp.partitions.iter().copied());
                }
            }
            p.retain(|_, ps| !ps.is_empty());
            p
        });
        let input = HeartbeatInput {
            member_id,
            member_epoch: req.member_epoch,
            instance_id: req.instance_id.clone(),
            rack_id: req.rack_id.clone(),
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            subscribed_topic_names: req.subscribed_topic_names.clone(),
            server_assignor: req
                .server_assignor
                .as_deref()
                .map(|a| short_name(a).to_string()),
            owned,
            client_id: ctx.client_id.clone().unwrap_or_default(),
            client_host: String::new(),
        };
        let partitions_of =
            |t: &str| -> Option<i32> { broker.topic(t).map(|s| s.partitions.len() as i32) };
        let result = {
            let mut guard = group.lock();
            let g = &mut *guard;
            if g.deleted {
                return error(
                    ErrorCode::CoordinatorNotAvailable,
                    "The group was just deleted.",
                );
            }
            if let GroupKind::Classic(c) = &g.kind {
                let empty = c.is_empty() && c.members.is_empty();
                if !(empty && req.member_epoch == 0) {
                    let code = if empty {
                        ErrorCode::UnknownMemberId
                    } else {
                        ErrorCode::GroupIdNotFound
                    };
                    return error(code, format!("Group {} is not a consumer group.", g.id));
                }
                // An empty classic group (or one holding only offsets) becomes a consumer group.
                g.kind = GroupKind::Consumer(ConsumerGroup::new(&g.id, now_ms()));
            }
            let GroupKind::Consumer(c) = &mut g.kind else {
                return error(ErrorCode::GroupIdNotFound, "Not a consumer group.");
            };
            c.heartbeat(
                input,
                &partitions_of,
                Instant::now(),
                now_ms(),
                &cfg.consumer,
            )
        };
        match result {
            Err((code, msg)) => error(code, msg),
            Ok(out) => ConsumerGroupHeartbeatResponse {
                error_code: 0,
                error_message: None,
                member_id: Some(out.member_id),
                member_epoch: out.member_epoch,
                heartbeat_interval_ms: cfg.consumer.heartbeat_interval_ms,
                assignment: out.assignment.map(|parts| Assignment {
                    topic_partitions: parts
                        .into_iter()
                        .filter_map(|(t, ps)| {
                            broker.topic(&t).map(|s| TopicPartitions {
                                topic_id: s.id,
                                partitions: ps.into_iter().collect(),
                                ..Default::default()
                            })
                        })
                        .collect(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        }
    }

    pub fn error_response(
        _req: &ConsumerGroupHeartbeatRequest,
        code: ErrorCode,
    ) -> ConsumerGroupHeartbeatResponse {
        error(code, code.message())
    }
}

/// ConsumerGroupDescribe.
pub mod consumer_group_describe {
    use std::sync::Arc;

    use eddy_protocol::error_code::ErrorCode;
    use eddy_protocol::messages::consumer_group_describe_response::{
        Assignment, DescribedGroup, Member, TopicPartitions,
    };
    use eddy_protocol::messages::{ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse};

    use crate::broker::Broker;
    use crate::coordinator::assignor::Parts;
    use crate::coordinator::GroupKind;
    use crate::router::RequestContext;

    const OPS_NOT_REQUESTED: i32 = i32::MIN;

    fn failed(id: &str, code: ErrorCode, msg: String) -> DescribedGroup {
        DescribedGroup {
            error_code: code.code(),
            error_message: Some(msg),
            group_id: id.to_string(),
            group_state: "Dead".to_string(),
            authorized_operations: OPS_NOT_REQUESTED,
            ..Default::default()
        }
    }

    fn assignment(broker: &Broker, p: &Parts) -> Assignment {
        Assignment {
            topic_partitions: p
                .iter()
                .filter_map(|(t, ps)| {
                    broker.topic(t).map(|s| TopicPartitions {
                        topic_id: s.id,
                        topic_name: t.clone(),
                        partitions: ps.iter().copied().collect(),
                        ..Default::default()
                    })
                })
                .collect(),
            ..Default::default()
        }
    }

    fn describe(broker: &Broker, id: &str) -> DescribedGroup {
        if id.is_empty() {
            return failed(
                id,
                ErrorCode::InvalidGroupId,
                "GroupId can't be empty.".into(),
            );
        }
        let Some(group) = broker.coordinator().group(id) else {
            return failed(
                id,
                ErrorCode::GroupIdNotFound,
                format!("Group {id} not found."),
            );
        };
        let g = group.lock();
        let GroupKind::Consumer(c) = &g.kind else {
            return failed(
                id,
                ErrorCode::GroupIdNotFound,
                format!("Group {id} is not a consumer group."),
            );
        };
        if g.deleted {
            return failed(
                id,
                ErrorCode::GroupIdNotFound,
                format!("Group {id} not found."),
            );
        }
        DescribedGroup {
            error_code: 0,
            error_message: None,
            group_id: id.to_string(),
            group_state: c.state_name().to_string(),
            group_epoch: c.group_epoch,
            assignment_epoch: c.assignment_epoch,
            assignor_name: c.assignor_name.clone(),
            members: c
                .members
                .values()
                .map(|m| Member {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topic_names: m.subscribed.iter().cloned().collect(),
                    subscribed_topic_regex: None,
                    assignment: assignment(broker, &m.assigned),
                    target_assignment: assignment(
                        broker,
                        &c.target.get(&m.id).cloned().unwrap_or_default(),
                    ),
                    ..Default::default()
                })
                .collect(),
            authorized_operations: OPS_NOT_REQUESTED,
            ..Default::default()
        }
    }

    pub async fn handle(
        broker: &Arc<Broker>,
        _ctx: &RequestContext,
        req: ConsumerGroupDescribeRequest,
    ) -> ConsumerGroupDescribeResponse {
        ConsumerGroupDescribeResponse {
            groups: req
                .group_ids
                .iter()
                .map(|id| describe(broker, id))
                .collect(),
            ..Default::default()
        }
    }

    pub fn error_response(
        req: &ConsumerGroupDescribeRequest,
        code: ErrorCode,
    ) -> ConsumerGroupDescribeResponse {
        ConsumerGroupDescribeResponse {
            groups: req
                .group_ids
                .iter()
                .map(|id| failed(id, code, code.message().to_string()))
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
    use eddy_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
    use eddy_protocol::messages::*;

    use super::*;
    use crate::broker::Broker;
    use crate::config::BrokerConfig;
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
            .insert("offsets.topic.num.partitions".into(), "3".into());
        Broker::open(cfg).unwrap()
    }

    fn join(member: &str) -> ConsumerGroupHeartbeatRequest {
        ConsumerGroupHeartbeatRequest {
            group_id: "g".into(),
            member_id: member.into(),
            member_epoch: 0,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: Some(vec!["t".into()]),
            topic_partitions: Some(vec![]),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn heartbeat_validation_join_and_describe() {
        let dir = tempfile::tempdir().unwrap();
        let b = open(dir.path());
        let t = b
            .create_topic("t", 3, BTreeMap::new(), false, false)
            .unwrap();
        let c1 = ctx(1);
        let hb = |r| consumer_group_heartbeat::handle(&b, &c1, r);
        // Argument errors.
        let mut r = join("m1");
        r.rebalance_timeout_ms = -1;
        assert_eq!(hb(r).await.error_code, ErrorCode::InvalidRequest.code());
        let mut r = join("m1");
        r.subscribed_topic_names = None;
        assert_eq!(hb(r).await.error_code, ErrorCode::InvalidRequest.code());
        assert_eq!(
            hb(join("")).await.error_code,
            ErrorCode::InvalidRequest.code()
        );
        let mut r = join("m1");
        r.server_assignor = Some("sticky".into());
        assert_eq!(
            hb(r).await.error_code,
            ErrorCode::UnsupportedAssignor.code()
        );
        let mut r = join("m1");
        r.member_epoch = 3;
        assert_eq!(hb(r).await.error_code, ErrorCode::UnknownMemberId.code());
        // Join: all three partitions, by topic id.
        let mut r = join("m1");
        r.server_assignor = Some("range".into());
        let resp = hb(r).await;
        assert_eq!(resp.error_code, 0, "{:?}", resp.error_message);
        assert_eq!(resp.member_epoch, 1);
        assert_eq!(resp.heartbeat_interval_ms, 5000);
        let a = resp.assignment.unwrap();
        assert_eq!(a.topic_partitions.len(), 1);
        assert_eq!(
            a.topic_partitions[0].topic_id,
            eddy_protocol::codec::Uuid(t.id)
        );
        assert_eq!(a.topic_partitions[0].partitions, vec![0, 1, 2]);
        // A steady heartbeat carries no assignment.
        let resp = hb(ConsumerGroupHeartbeatRequest {
            group_id: "g".into(),
            member_id: "m1".into(),
            member_epoch: 1,
            rebalance_timeout_ms: -1,
            topic_partitions: Some(vec![TopicPartitions {
                topic_id: eddy_protocol::codec::Uuid(t.id),
                partitions: vec![0, 1, 2],
                ..Default::default()
            }]),
            ..Default::default()
        })
        .await;
        assert_eq!((resp.error_code, resp.member_epoch), (0, 1));
        assert!(resp.assignment.is_none());
        // Classic APIs do not mix with it.
        let r = crate::handlers::join_group::handle(
            &b,
            &ctx(5),
            JoinGroupRequest {
                group_id: "g".into(),
                session_timeout_ms: 10_000,
                protocol_type: "consumer".into(),
                protocols: vec![Default::default()],
                ..Default::default()
            },
        )
        .await;
        assert_eq!(r.error_code, ErrorCode::InconsistentGroupProtocol.code());
        // ConsumerGroupDescribe.
        let d = consumer_group_describe::handle(
            &b,
            &ctx(0),
            ConsumerGroupDescribeRequest {
                group_ids: vec!["g".into(), "nope".into()],
                ..Default::default()
            },
        )
        .await;
        let g = &d.groups[0];
        assert_eq!(g.error_code, 0);
        assert_eq!(g.group_state, "Stable");
        assert_eq!((g.group_epoch, g.assignment_epoch), (1, 1));
        assert_eq!(g.assignor_name, "range");
        assert_eq!(g.members[0].member_id, "m1");
        assert_eq!(g.members[0].assignment.topic_partitions[0].topic_name, "t");
        assert_eq!(d.groups[1].error_code, ErrorCode::GroupIdNotFound.code());
        // The group is listed as a consumer group.
        let l = crate::handlers::list_groups::handle(
            &b,
            &ctx(5),
            ListGroupsRequest {
                types_filter: vec!["consumer".into()],
                ..Default::default()
            },
        )
        .await;
        assert_eq!(l.groups.len(), 1);
        assert_eq!(l.groups[0].group_type, "consumer");
        // Leave.
        let resp = hb(ConsumerGroupHeartbeatRequest {
            group_id: "g".into(),
            member_id: "m1".into(),
            member_epoch: -1,
            ..Default::default()
        })
        .await;
        assert_eq!((resp.error_code, resp.member_epoch), (0, -1));
        let d = consumer_group_describe::handle(
            &b,
            &ctx(0),
            ConsumerGroupDescribeRequest {
                group_ids: vec!["g".into()],
                ..Default::default()
            },
        )
        .await;
        assert_eq!(d.groups[0].group_state, "Empty");
    }
}
