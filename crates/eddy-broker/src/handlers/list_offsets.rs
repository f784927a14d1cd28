//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3), earliest local (-4), latest
//! tiered (-5) and by timestamp (the first offset whose timestamp is >= the given one).

use std::sync::Arc;

use eddy_protocol::error_code::ErrorCode;
use eddy_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use eddy_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::broker::Broker;
use crate::partition::Partition;
use crate::router::RequestContext;

pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;
pub const LATEST_TIERED_TIMESTAMP: i64 = -5;

fn error_partition(index: i32, code: ErrorCode) -> ListOffsetsPartitionResponse {
    ListOffsetsPartitionResponse {
        partition_index: index,
        error_code: code.code(),
        timestamp: -1,
        offset: -1,
        leader_epoch: -1,
        ..Default::default()
    }
}

fn lookup(
    p: &Partition,
    index: i32,
    current_leader_epoch: i32,
    timestamp: i64,
) -> ListOffsetsPartitionResponse {
    if let Err(code) = p.check_leader_epoch(current_leader_epoch) {
        return error_partition(index, code);
    }
    let log = p.log.read();
    let found: Result<Option<(i64, i64)>, _> = match timestamp {
        LATEST_TIMESTAMP => Ok(Some((log.log_end_offset(), -1))),
        EARLIEST_TIMESTAMP | EARLIEST_LOCAL_TIMESTAMP => Ok(Some((log.log_start_offset(), -1))),
        LATEST_TIERED_TIMESTAMP => Ok(None),
        MAX_TIMESTAMP => log
            .max_timestamp_and_offset()
            .map(|o| o.map(|(ts, off)| (off, ts))),
        ts if ts >= 0 => log.offset_for_timestamp(ts),
        _ => return error_partition(index, ErrorCode::InvalidRequest),
    };
    match found {
        Ok(Some((offset, ts))) => ListOffsetsPartitionResponse {
            partition_index: index,
            error_code: 0,
            timestamp: ts,
            offset,
            leader_epoch: p.leader_epoch,
            ..Default::default()
        },
        Ok(None) => ListOffsetsPartitionResponse {
            partition_index: index,
            error_code: 0,
            timestamp: -1,
            offset: -1,
            leader_epoch: -1,
            ..Default::default()
        },
        Err(e) => {
            tracing::warn!(topic = %p.topic, partition = index, error = %e, "offset lookup failed");
            error_partition(index, ErrorCode::KafkaStorageError)
        }
    }
}

pub async fn handle(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    req: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let state = broker.topic(&t.name);
            let partitions = t
                .partitions
                .iter()
                .map(
                    |lp| match state.as_ref().and_then(|s| s.partition(lp.partition_index)) {
                        Some(p) => {
                            lookup(p, lp.partition_index, lp.current_leader_epoch, lp.timestamp)
                        }
                        None => {
                            error_partition(lp.partition_index, ErrorCode::UnknownTopicOrPartition)
                        }
                    },
                )
                .collect();
            ListOffsetsTopicResponse {
                name: t.name,
                partitions,
                ..Default::default()
            }
        })
        .collect();
    ListOffsetsResponse {
        topics,
        ..Default::default()
    }
}

pub fn error_response(req: &ListOffsetsRequest, code: ErrorCode) -> ListOffsetsResponse {
    ListOffsetsResponse {
        topics: req
            .topics
            .iter()
            .map(|t| ListOffsetsTopicResponse {
                name: t.name.clone(),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| error_partition(p.partition_index, code))
                    .collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}
