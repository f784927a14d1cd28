//! Building a magic v2 batch from records.

use bytes::{BufMut, Bytes, BytesMut};

use super::batch::{
    compute_crc, TimestampType, ATTR_CONTROL, ATTR_TIMESTAMP_TYPE, ATTR_TRANSACTIONAL,
    BATCH_HEADER_LEN, CRC_OFFSET, LOG_OVERHEAD, MAGIC_V2,
};
use super::record::{encode_record, Header};
use super::{compress, Compression, RecordError};

/// Builds one batch: base offset 0 (unless set), offset deltas 0..n, CRC set.
#[derive(Debug, Clone)]
pub struct RecordBatchBuilder {
    compression: Compression,
    base_timestamp: i64,
    max_timestamp: i64,
    base_offset: i64,
    partition_leader_epoch: i32,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    transactional: bool,
    control: bool,
    timestamp_type: TimestampType,
    count: usize,
    oversized: bool,
    records: Vec<u8>,
}

impl RecordBatchBuilder {
    /// A builder for a batch whose timestamps are stored relative to
    /// `base_timestamp` (usually the first record's timestamp).
    pub fn new(compression: Compression, base_timestamp: i64) -> Self {
        RecordBatchBuilder {
            compression,
            base_timestamp,
            max_timestamp: -1,
            base_offset: 0,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            transactional: false,
            control: false,
            timestamp_type: TimestampType::CreateTime,
            count: 0,
            oversized: false,
            records: Vec::new(),
        }
    }

    /// Idempotent/transactional producer fields (default -1, -1, -1).
    pub fn producer(mut self, producer_id: i64, epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = epoch;
        self.base_sequence = base_sequence;
        self
    }

    pub fn transactional(mut self, transactional: bool) -> Self {
        self.transactional = transactional;
        self
    }

    pub fn control(mut self, control: bool) -> Self {
        self.control = control;
        self
    }

    pub fn base_offset(mut self, base_offset: i64) -> Self {
        self.base_offset = base_offset;
        self
    }

    pub fn partition_leader_epoch(mut self, epoch: i32) -> Self {
        self.partition_leader_epoch = epoch;
        self
    }

    pub fn timestamp_type(mut self, t: TimestampType) -> Self {
        self.timestamp_type = t;
        self
    }

    /// Append a record; its offset delta is the number of records before it.
    pub fn append(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header],
    ) {
        let too_big = |b: Option<&[u8]>| b.is_some_and(|b| b.len() > i32::MAX as usize / 2);
        if too_big(key)
            || too_big(value)
            || headers.len() > i32::MAX as usize / 2
            || headers
                .iter()
                .any(|h| too_big(Some(h.key.as_bytes())) || too_big(h.value.as_deref()))
            || self.count >= i32::MAX as usize
        {
            self.oversized = true;
            return;
        }
        let delta = self.count as i32;
        encode_record(
            &mut self.records,
            delta,
            timestamp.wrapping_sub(self.base_timestamp),
            key,
            value,
            headers,
        );
        self.count += 1;
        self.max_timestamp = if self.count == 1 {
            timestamp
        } else {
            self.max_timestamp.max(timestamp)
        };
        if self.records.len() > i32::MAX as usize - BATCH_HEADER_LEN {
            self.oversized = true;
        }
    }

    /// Reserves room for `additional` more bytes of encoded records, so a
    /// producer filling a batch up to a known size does not reallocate.
    pub fn reserve(&mut self, additional: usize) {
        self.records.reserve(additional);
    }

    /// Number of records appended.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size of the batch if built uncompressed (an upper bound for the usual
    /// compressed size).
    pub fn estimated_size(&self) -> usize {
        BATCH_HEADER_LEN + self.records.len()
    }

    /// Encode the batch. Fails on an empty builder or one whose records do
    /// not fit a batch.
    pub fn build(self) -> Result<Bytes, RecordError> {
        if self.count == 0 {
            return Err(RecordError::InvalidBatch(
                "a batch needs at least one record".into(),
            ));
        }
        if self.oversized {
            return Err(RecordError::InvalidBatch(
                "records too large for one batch".into(),
            ));
        }
        let compressed;
        let payload: &[u8] = match self.compression {
            Compression::None => &self.records,
            c => {
                compressed = compress(c, &self.records)?;
                &compressed
            }
        };
        let total = BATCH_HEADER_LEN + payload.len();
        let batch_length = i32::try_from(total - LOG_OVERHEAD)
            .map_err(|_| RecordError::InvalidBatch("batch too large".into()))?;
        let mut attributes = self.compression.to_bits();
        if self.timestamp_type == TimestampType::LogAppendTime {
            attributes |= ATTR_TIMESTAMP_TYPE;
        }
        if self.transactional {
            attributes |= ATTR_TRANSACTIONAL;
        }
        if self.control {
            attributes |= ATTR_CONTROL;
        }
        let mut out = BytesMut::with_capacity(total);
        out.put_i64(self.base_offset);
        out.put_i32(batch_length);
        out.put_i32(self.partition_leader_epoch);
        out.put_i8(MAGIC_V2);
        out.put_u32(0); // CRC, set below
        out.put_i16(attributes);
        out.put_i32(self.count as i32 - 1);
        out.put_i64(self.base_timestamp);
        out.put_i64(self.max_timestamp);
        out.put_i64(self.producer_id);
        out.put_i16(self.producer_epoch);
        out.put_i32(self.base_sequence);
        out.put_i32(self.count as i32);
        out.put_slice(payload);
        let crc = compute_crc(&out);
        out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        Ok(out.freeze())
    }
}
