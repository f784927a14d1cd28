//! Fetch: return stored batches as they are on disk, below the high watermark; long-poll up
//! to `max.wait.ms` until `min.bytes` are available. Fetch sessions (KIP-227) are not kept:
//! a request that asks for a new session gets a sessionless (session id 0) full response,
//! which every client handles.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use eddy_log::LogError;
use eddy_protocol::error_code::ErrorCode;
use eddy_protocol::messages::fetch_request::FetchPartition;
use eddy_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use eddy_protocol::messages::{FetchRequest, FetchResponse};
use tokio::time::Instant;

use crate::broker::Broker;
use crate::partition::Partition;
use crate::router::RequestContext;

const READ_COMMITTED: i8 = 1;

fn empty_partition(index: i32, code: ErrorCode) -> PartitionData {
    PartitionData {
        partition_index: index,
        error_code: code.code(),
        high_watermark: -1,
        last_stable_offset: -1,
        log_start_offset: -1,
        aborted_transactions: None,
        preferred_read_replica: -1,
        records: Some(Bytes::new()),
        ..Default::default()
    }
}

/// Reads one partition; `budget` is what is left of the response's max bytes and
/// `first` says whether this may be the one oversize batch of the response (KIP-74).
fn read_partition(
    p: &Partition,
    fp: &FetchPartition,
    isolation: i8,
    budget: usize,
    first: bool,
) -> PartitionData {
    if let Err(code) = p.check_leader_epoch(fp.current_leader_epoch) {
        return empty_partition(fp.partition, code);
    }
    let limit = budget.min(fp.partition_max_bytes.max(0) as usize);
    let log = p.log.read();
    let hwm = log.log_end_offset();
    let log_start = log.log_start_offset();
    let mut out = PartitionData {
        partition_index: fp.partition,
        error_code: ErrorCode::None.code(),
        high_watermark: hwm,
        last_stable_offset: hwm,
        log_start_offset: log_start,
        aborted_transactions: (isolation == READ_COMMITTED).then(Vec::new),
        preferred_read_replica: -1,
        records: Some(Bytes::new()),
        ..Default::default()
    };
    if fp.fetch_offset == hwm || (limit == 0 && !first) {
        return out;
    }
    match log.read(fp.fetch_offset, limit.max(1), hwm) {
        Ok(r) => {
            if r.data.len() > limit && !first {
                // Only the first partition of a response may exceed the limits.
                return out;
            }
            out.records = Some(r.data);
        }
        Err(LogError::OffsetOutOfRange { .. }) => {
            out.error_code = ErrorCode::OffsetOutOfRange.code();
        }
        Err(e) => {
            tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "read failed");
            out.error_code = ErrorCode::KafkaStorageError.code();
        }
    }
    out
}

/// One pass over the requested partitions. Returns the response topics, the bytes of
/// records in them, and whether any partition has an error (errors answer at once).
fn read_all(
    broker: &Broker,
    req: &FetchRequest,
    version: i16,
) -> (Vec<FetchableTopicResponse>, usize, bool) {
    let mut budget = req.max_bytes.max(0) as usize;
    let mut total = 0usize;
    let mut any_error = false;
    let mut topics = Vec::with_capacity(req.topics.len());
    for ft in &req.topics {
        let state = if version >= 13 {
            broker.topic_by_id(&ft.topic_id)
        } else {
            broker.topic(&ft.topic)
        };
        let missing = if version >= 13 {
            ErrorCode::UnknownTopicId
        } else {
            ErrorCode::UnknownTopicOrPartition
        };
        let partitions = ft
            .partitions
            .iter()
            .map(|fp| {
                let data = match state.as_ref().and_then(|t| t.partition(fp.partition)) {
                    Some(p) => read_partition(p, fp, req.isolation_level, budget, total == 0),
                    None => empty_partition(fp.partition, missing),
                };
                let n = data.records.as_ref().map_or(0, Bytes::len);
                total += n;
                budget = budget.saturating_sub(n);
                any_error |= data.error_code != 0;
                data
            })
            .collect();
        topics.push(FetchableTopicResponse {
            topic: ft.topic.clone(),
            topic_id: ft.topic_id,
            partitions,
            ..Default::default()
        });
    }
    (topics, total, any_error)
}

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: FetchRequest,
) -> FetchResponse {
    let version = ctx.api_version;
    if version >= 7 && (req.session_id != 0 || req.session_epoch > 0) {
        return FetchResponse {
            error_code: ErrorCode::FetchSessionIdNotFound.code(),
            session_id: 0,
            ..Default::default()
        };
    }
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let min_bytes = req.min_bytes.max(0) as usize;
    loop {
        let notified = broker.data_appended.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (responses, total, any_error) = read_all(broker, &req, version);
        if total >= min_bytes || any_error || Instant::now() >= deadline {
            return FetchResponse {
                error_code: 0,
                session_id: 0,
                responses,
                ..Default::default()
            };
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

pub fn error_response(req: &FetchRequest, code: ErrorCode) -> FetchResponse {
    FetchResponse {
        error_code: code.code(),
        responses: req
            .topics
            .iter()
            .map(|t| FetchableTopicResponse {
                topic: t.topic.clone(),
                topic_id: t.topic_id,
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| empty_partition(p.partition, code))
                    .collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}
