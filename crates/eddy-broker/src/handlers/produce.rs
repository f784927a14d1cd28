//! Produce: validate each partition's record batches (magic 2, CRC-32C, sizes, offsets,
//! timestamps), append them to the partition's log, answer with the assigned base offset.
//!
//! Batches stay opaque: only the 61-byte header of each batch is read and the CRC checked;
//! records are not decompressed. The log patches base offset, leader epoch and (for
//! LogAppendTime topics) the timestamp in place.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use eddy_log::LogError;
use eddy_protocol::error_code::ErrorCode;
use eddy_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use eddy_protocol::messages::{ProduceRequest, ProduceResponse};
use eddy_protocol::records::{
    decode_records, BatchHeader, BatchIter, RecordError, TimestampType, MAGIC_V2,
};

use crate::broker::{now_ms, Broker};
use crate::partition::{last_sequence, Partition, PartitionSettings, ProducerState, SequenceCheck};
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

/// Checks every batch of a partition's records; returns their headers.
fn validate(
    records: &[u8],
    settings: &PartitionSettings,
    now: i64,
) -> Result<Vec<BatchHeader>, Refusal> {
    if records.is_empty() {
        return Err(Refusal(
            ErrorCode::CorruptMessage,
            "Produce request has no record batches".into(),
        ));
    }
    let mut headers = Vec::with_capacity(1);
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
        if header.is_transactional() {
            return Err(Refusal(
                ErrorCode::InvalidTxnState,
                "Transactional produce is not supported by this broker yet".into(),
            ));
        }
        headers.push(header);
    }
    Ok(headers)
}

/// Largest decompressed batch decoded to check the keys of a compacted topic.
const KEY_CHECK_DECODE_LIMIT: usize = 256 * 1024 * 1024;

/// A compacted topic refuses records without a key (Kafka's LogValidator: INVALID_RECORD with
/// one record error per keyless record, `batchIndex` being the record's index in its batch).
/// Only compacted topics pay for decoding the records.
fn check_keys(
    records: &Bytes,
    topic: &str,
    partition: i32,
) -> Result<(), (Refusal, Vec<BatchIndexAndErrorMessage>)> {
    let mut errors = Vec::new();
    for item in BatchIter::new(records) {
        let (header, range) = item.map_err(|e| {
            (
                Refusal(ErrorCode::CorruptMessage, e.to_string()),
                Vec::new(),
            )
        })?;
        if header.is_control() {
            continue;
        }
        let (_, recs) =
            decode_records(&records.slice(range), KEY_CHECK_DECODE_LIMIT).map_err(|e| {
                (
                    Refusal(ErrorCode::CorruptMessage, e.to_string()),
                    Vec::new(),
                )
            })?;
        for (i, r) in recs.iter().enumerate() {
            if r.key.is_none() {
                errors.push(BatchIndexAndErrorMessage {
                    batch_index: i as i32,
                    batch_index_error_message: Some(format!(
                        "Compacted topic cannot accept message without key in topic partition {topic}-{partition}"
                    )),
                });
            }
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = errors
        .iter()
        .take(3)
        .map(|e| {
            format!(
                "RecordError(batchIndex={}, message='{}')",
                e.batch_index,
                e.batch_index_error_message.as_deref().unwrap_or_default()
            )
        })
        .collect();
    let msg = format!(
        "One or more records have been rejected due to {} record errors in total, and only showing the first three errors at most: [{}]",
        errors.len(),
        shown.join(", ")
    );
    Err((Refusal(ErrorCode::InvalidRecord, msg), errors))
}

/// Applies the idempotent-producer rules to the batches of one partition request.
/// `Ok(None)`: append; `Ok(Some(offset))`: a retried duplicate already stored at `offset`.
fn check_sequences(
    producers: &HashMap<i64, ProducerState>,
    headers: &[BatchHeader],
) -> Result<Option<i64>, Refusal> {
    let mut verdict = None;
    for h in headers.iter().filter(|h| h.producer_id >= 0) {
        match ProducerState::check(
            producers.get(&h.producer_id),
            h.producer_epoch,
            h.base_sequence,
            last_sequence(h),
        ) {
            SequenceCheck::Append => {}
            SequenceCheck::Duplicate(offset) if headers.len() == 1 => verdict = Some(offset),
            SequenceCheck::Duplicate(_) => {
                return Err(Refusal(
                    ErrorCode::DuplicateSequenceNumber,
                    "A batch of this request was already appended".into(),
                ))
            }
            SequenceCheck::FencedEpoch => {
                return Err(Refusal(
                    ErrorCode::InvalidProducerEpoch,
                    format!(
                        "Producer {} epoch {} is fenced by a newer epoch",
                        h.producer_id, h.producer_epoch
                    ),
                ))
            }
            SequenceCheck::OutOfOrder { expected } => {
                let (id, found) = (h.producer_id, h.base_sequence);
                let msg = format!("Out of order sequence number for producer {id}: found {found}, expected {expected}");
                return Err(Refusal(ErrorCode::OutOfOrderSequenceNumber, msg));
            }
        }
    }
    Ok(verdict)
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
    let headers = match validate(&records, &settings, now) {
        Ok(h) => h,
        Err(Refusal(code, msg)) => {
            tracing::debug!(topic = %p.topic, partition = p.index, error = %msg, "refused produce");
            return partition_error(p.index, code, Some(msg));
        }
    };
    if settings.compacted {
        if let Err((Refusal(code, msg), record_errors)) = check_keys(&records, &p.topic, p.index) {
            tracing::debug!(topic = %p.topic, partition = p.index, error = %msg, "refused produce");
            return PartitionProduceResponse {
                record_errors,
                ..partition_error(p.index, code, Some(msg))
            };
        }
    }
    // In place when this partition's records are the only handle on the request frame
    // (one partition per request), else one copy.
    let mut buf = records
        .try_into_mut()
        .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
    let append_time = settings.log_append_time.then_some(now);
    let mut log = p.log.write();
    let idempotent = headers.iter().any(|h| h.producer_id >= 0);
    let mut producers = idempotent.then(|| p.producers.lock());
    if let Some(producers) = producers.as_deref() {
        match check_sequences(producers, &headers) {
            Ok(None) => {}
            Ok(Some(offset)) => {
                return PartitionProduceResponse {
                    index: p.index,
                    error_code: ErrorCode::None.code(),
                    base_offset: offset,
                    log_append_time_ms: -1,
                    log_start_offset: log.log_start_offset(),
                    ..Default::default()
                };
            }
            Err(Refusal(code, msg)) => return partition_error(p.index, code, Some(msg)),
        }
    }
    let result = log.append(&mut buf, Some(p.leader_epoch), append_time);
    if let (Ok(info), Some(producers)) = (&result, producers.as_deref_mut()) {
        let mut offset = info.first_offset;
        for h in &headers {
            if h.producer_id >= 0 {
                producers.entry(h.producer_id).or_default().record(
                    h.producer_epoch,
                    h.base_sequence,
                    last_sequence(h),
                    offset,
                );
            }
            offset += i64::from(h.last_offset_delta) + 1;
        }
    }
    drop(producers);
    drop(log);
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
                    // Internal topics are written by their coordinators only (Kafka's rule).
                    Some(_) if state.as_ref().is_some_and(|t| t.internal) => partition_error(
                        pd.index,
                        ErrorCode::InvalidTopicException,
                        Some(format!("Cannot append to internal topic {}", topic.name)),
                    ),
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
