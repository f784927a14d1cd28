//! Produce: validate each partition's record batches (magic 2, CRC-32C, sizes, offsets,
//! timestamps), append them to the partition's log, answer with the assigned base offset.
//!
//! Batches stay opaque: only the 61-byte header of each batch is read and the CRC checked;
//! records are not decompressed. The log patches base offset, leader epoch and (for
//! LogAppendTime topics) the timestamp in place.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use eddy_log::LogError;
use eddy_protocol::error_code::ErrorCode;
use eddy_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use eddy_protocol::messages::{ProduceRequest, ProduceResponse};
use eddy_protocol::records::{BatchIter, RecordError, TimestampType, MAGIC_V2};

use crate::broker::{now_ms, Broker};
use crate::partition::{Partition, PartitionSettings};
use crate::router::RequestContext;

fn partition_error(
    index: i32,
    code: ErrorCode,
    message: Option<String>,
) -> PartitionProduceResponse {
    PartitionProduceResponse {
        index,
        error_code: code.code(),
        base_offset: -1,
        log_append_time_ms: -1,
        log_start_offset: -1,
        error_message: message,
        ..Default::default()
    }
}

/// Why a produced batch set is refused.
struct Refusal(ErrorCode, String);

/// Checks every batch of a partition's records; returns the batch count.
fn validate(records: &[u8], settings: &PartitionSettings, now: i64) -> Result<usize, Refusal> {
    if records.is_empty() {
        return Err(Refusal(
            ErrorCode::CorruptMessage,
            "Produce request has no record batches".into(),
        ));
    }
    let mut count = 0;
    // BatchIter::new checks lengths, magic and the CRC-32C of every batch.
    for item in BatchIter::new(records) {
        let (header, range) = item.map_err(|e| match e {
            RecordError::InvalidMagic(m) => Refusal(
                ErrorCode::InvalidRecord,
                format!("Produce requests must use record batch magic 2, found magic {m}"),
            ),
            other => Refusal(ErrorCode::CorruptMessage, other.to_string()),
        })?;
        if header.magic != MAGIC_V2 {
            return Err(Refusal(
                ErrorCode::InvalidRecord,
                format!(
                    "Produce requests must use record batch magic 2, found magic {}",
                    header.magic
                ),
            ));
        }
        let size = range.len();
        if size > settings.max_message_bytes {
            return Err(Refusal(
                ErrorCode::MessageTooLarge,
                format!(
                    "The record batch of {size} bytes is larger than max.message.bytes ({})",
                    settings.max_message_bytes
                ),
            ));
        }
        if header.records_count < 1 || header.last_offset_delta != header.records_count - 1 {
            return Err(Refusal(
                ErrorCode::InvalidRecord,
                format!(
                    "Batch has {} records but last offset delta {}",
                    header.records_count, header.last_offset_delta
                ),
            ));
        }
        if header.compression().is_err() {
            return Err(Refusal(
                ErrorCode::CorruptMessage,
                "Unknown compression codec in batch attributes".into(),
            ));
        }
        if header.timestamp_type() == TimestampType::CreateTime && !header.is_control() {
            let too_old = settings.timestamp_before_max_ms != i64::MAX
                && now.saturating_sub(header.base_timestamp.min(header.max_timestamp))
                    > settings.timestamp_before_max_ms;
            let too_new = settings.timestamp_after_max_ms != i64::MAX
                && header.max_timestamp.saturating_sub(now) > settings.timestamp_after_max_ms;
            if too_old || too_new {
                return Err(Refusal(
                    ErrorCode::InvalidTimestamp,
                    format!(
                        "Timestamp {} of a batch is out of range",
                        header.max_timestamp
                    ),
                ));
            }
        }
        count += 1;
    }
    Ok(count)
}

fn produce_partition(p: &Partition, records: Option<Bytes>) -> PartitionProduceResponse {
    let Some(records) = records else {
        return partition_error(
            p.index,
            ErrorCode::CorruptMessage,
            Some("Produce request has null records".into()),
        );
    };
    let now = now_ms();
    let settings = p.settings.read().clone();
    if let Err(Refusal(code, msg)) = validate(&records, &settings, now) {
        tracing::debug!(topic = %p.topic, partition = p.index, error = %msg, "refused produce");
        return partition_error(p.index, code, Some(msg));
    }
    let mut buf = BytesMut::from(&records[..]);
    let append_time = settings.log_append_time.then_some(now);
    let result = p
        .log
        .write()
        .append(&mut buf, Some(p.leader_epoch), append_time);
    match result {
        Ok(info) => PartitionProduceResponse {
            index: p.index,
            error_code: ErrorCode::None.code(),
            base_offset: info.first_offset,
            log_append_time_ms: if settings.log_append_time {
                info.log_append_time
            } else {
                -1
            },
            log_start_offset: info.log_start_offset,
            ..Default::default()
        },
        Err(e) => {
            let code = match &e {
                LogError::Io(_) => ErrorCode::KafkaStorageError,
                LogError::RecordTooLarge { .. } => ErrorCode::MessageTooLarge,
                LogError::Corrupt(_) => ErrorCode::CorruptMessage,
                _ => ErrorCode::UnknownServerError,
            };
            tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "append failed");
            partition_error(p.index, code, Some(e.to_string()))
        }
    }
}

pub async fn handle(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    req: ProduceRequest,
) -> ProduceResponse {
    if !matches!(req.acks, -1..=1) {
        return error_response(&req, ErrorCode::InvalidRequiredAcks);
    }
    let mut appended = false;
    let mut responses = Vec::with_capacity(req.topic_data.len());
    for topic in req.topic_data {
        let state = broker.topic(&topic.name);
        let partition_responses = topic
            .partition_data
            .into_iter()
            .map(
                |pd| match state.as_ref().and_then(|t| t.partition(pd.index)) {
                    Some(p) => {
                        let r = produce_partition(p, pd.records);
                        appended |= r.error_code == 0;
                        r
                    }
                    None => partition_error(pd.index, ErrorCode::UnknownTopicOrPartition, None),
                },
            )
            .collect();
        responses.push(TopicProduceResponse {
            name: topic.name,
            partition_responses,
            ..Default::default()
        });
    }
    if appended {
        broker.data_appended.notify_waiters();
    }
    ProduceResponse {
        responses,
        ..Default::default()
    }
}

pub fn error_response(req: &ProduceRequest, code: ErrorCode) -> ProduceResponse {
    ProduceResponse {
        responses: req
            .topic_data
            .iter()
            .map(|t| TopicProduceResponse {
                name: t.name.clone(),
                partition_responses: t
                    .partition_data
                    .iter()
                    .map(|p| partition_error(p.index, code, None))
                    .collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}
