//! The fixed 61-byte batch header, batch validation, iteration over
//! concatenated batches, and in-place patches.

use std::ops::Range;

use super::{Compression, RecordError};

/// Size of the magic v2 batch header (up to and including recordsCount).
pub const BATCH_HEADER_LEN: usize = 61;
/// The only record batch format version supported.
pub const MAGIC_V2: i8 = 2;
/// Bytes before the part counted by batchLength (baseOffset + batchLength).
pub const LOG_OVERHEAD: usize = 12;
/// Smallest valid batchLength: a header with no records.
pub const MIN_BATCH_LENGTH: i32 = (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32;

pub const BATCH_LENGTH_OFFSET: usize = 8;
const LEADER_EPOCH_OFFSET: usize = 12;
pub const MAGIC_OFFSET: usize = 16;
pub const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const MAX_TIMESTAMP_OFFSET: usize = 35;
const PRODUCER_ID_OFFSET: usize = 43;

pub const ATTR_COMPRESSION_MASK: i16 = 0x07;
pub const ATTR_TIMESTAMP_TYPE: i16 = 0x08;
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
pub const ATTR_CONTROL: i16 = 0x20;
pub const ATTR_DELETE_HORIZON: i16 = 0x40;

/// Timestamp type of a batch (attribute bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// The decoded fixed header of a magic v2 batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

#[inline]
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}
#[inline]
fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}
#[inline]
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

impl BatchHeader {
    /// Decode the 61-byte header at the start of `buf`. Only checks that the
    /// bytes are there and that the magic is 2 (the layout of the other fields
    /// depends on it); see [`validate_batch`] for the full check.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, RecordError> {
        if buf.len() < BATCH_HEADER_LEN {
            return Err(RecordError::Truncated {
                needed: BATCH_HEADER_LEN,
                available: buf.len(),
            });
        }
        let magic = buf[MAGIC_OFFSET] as i8;
        if magic != MAGIC_V2 {
            return Err(RecordError::InvalidMagic(magic));
        }
        let b = &buf[..BATCH_HEADER_LEN];
        Ok(BatchHeader {
            base_offset: be_i64(b, 0),
            batch_length: be_i32(b, 8),
            partition_leader_epoch: be_i32(b, 12),
            magic,
            crc: be_i32(b, 17) as u32,
            attributes: be_i16(b, 21),
            last_offset_delta: be_i32(b, 23),
            base_timestamp: be_i64(b, 27),
            max_timestamp: be_i64(b, 35),
            producer_id: be_i64(b, 43),
            producer_epoch: be_i16(b, 51),
            base_sequence: be_i32(b, 53),
            records_count: be_i32(b, 57),
        })
    }

    /// Size of the whole batch in bytes (batchLength + 12).
    pub fn total_size(&self) -> usize {
        usize::try_from(self.batch_length).unwrap_or(0) + LOG_OVERHEAD
    }

    /// Offset of the last record (baseOffset + lastOffsetDelta).
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .wrapping_add(i64::from(self.last_offset_delta))
    }

    /// Offset of the first offset after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().wrapping_add(1)
    }

    pub fn compression(&self) -> Result<Compression, RecordError> {
        Compression::from_attributes(self.attributes)
    }

    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & ATTR_TIMESTAMP_TYPE != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    pub fn has_delete_horizon(&self) -> bool {
        self.attributes & ATTR_DELETE_HORIZON != 0
    }

    /// Check the header fields that need no payload: batch length, counts,
    /// offset delta, codec. `validate_batch` does this plus size and CRC.
    pub fn check_fields(&self) -> Result<(), RecordError> {
        if self.batch_length < MIN_BATCH_LENGTH {
            return Err(RecordError::InvalidBatchLength(self.batch_length));
        }
        if self.records_count < 0 {
            return Err(RecordError::InvalidBatch(format!(
                "negative records count {}",
                self.records_count
            )));
        }
        if self.last_offset_delta < 0 {
            return Err(RecordError::InvalidBatch(format!(
                "negative last offset delta {}",
                self.last_offset_delta
            )));
        }
        self.compression()?;
        Ok(())
    }
}

/// CRC-32C of a batch as stored in its header: over the bytes from the
/// attributes to the end of the batch (as given by batchLength, limited to the
/// slice).
pub fn compute_crc(batch: &[u8]) -> u32 {
    let end = if batch.len() >= BATCH_HEADER_LEN {
        let len = be_i32(batch, BATCH_LENGTH_OFFSET);
        usize::try_from(len)
            .map(|l| (l + LOG_OVERHEAD).min(batch.len()))
            .unwrap_or(batch.len())
    } else {
        batch.len()
    };
    if end <= ATTRIBUTES_OFFSET {
        return crc32c::crc32c(&[]);
    }
    crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..end])
}

/// Full check of the batch at the start of `buf`: enough bytes, magic 2,
/// sane batch length, records count and last offset delta, known codec, and
/// a matching CRC-32C. Cheap: nothing is decompressed.
pub fn validate_batch(buf: &[u8]) -> Result<BatchHeader, RecordError> {
    let header = BatchHeader::parse(buf)?;
    if header.batch_length < MIN_BATCH_LENGTH {
        return Err(RecordError::InvalidBatchLength(header.batch_length));
    }
    let total = header.total_size();
    if buf.len() < total {
        return Err(RecordError::Truncated {
            needed: total,
            available: buf.len(),
        });
    }
    header.check_fields()?;
    let computed = crc32c::crc32c(&buf[ATTRIBUTES_OFFSET..total]);
    if computed != header.crc {
        return Err(RecordError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    Ok(header)
}

/// Iterator over the batches of a buffer of concatenated batches (a Produce
/// request's records, a segment file, a fetch response). Yields each batch's
/// header and byte range; the first truncated or corrupt batch yields an error
/// and ends the iteration. By default every batch is fully validated (CRC
/// included); [`BatchIter::headers_only`] skips the CRC for trusted data.
#[derive(Debug, Clone)]
pub struct BatchIter<'a> {
    buf: &'a [u8],
    pos: usize,
    check_crc: bool,
    done: bool,
}

impl<'a> BatchIter<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        BatchIter {
            buf,
            pos: 0,
            check_crc: true,
            done: false,
        }
    }

    /// Like `new` but without the CRC check (lengths and fields are still
    /// checked): for data that was validated before, e.g. our own log.
    pub fn headers_only(buf: &'a [u8]) -> Self {
        BatchIter {
            check_crc: false,
            ..Self::new(buf)
        }
    }

    /// Byte position of the next batch (after the last one yielded).
    pub fn position(&self) -> usize {
        self.pos
    }
}

impl Iterator for BatchIter<'_> {
    type Item = Result<(BatchHeader, Range<usize>), RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.pos >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.pos..];
        let res = if self.check_crc {
            validate_batch(rest)
        } else {
            BatchHeader::parse(rest).and_then(|h| {
                h.check_fields()?;
                if rest.len() < h.total_size() {
                    return Err(RecordError::Truncated {
                        needed: h.total_size(),
                        available: rest.len(),
                    });
                }
                Ok(h)
            })
        };
        match res {
            Ok(h) => {
                let start = self.pos;
                self.pos += h.total_size();
                Some(Ok((h, start..self.pos)))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Set the base offset of the batch at the start of `batch` (not covered by
/// the CRC). No-op on a slice shorter than a header.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    if let Some(b) = batch.get_mut(0..8) {
        b.copy_from_slice(&base_offset.to_be_bytes());
    }
}

/// Set the partition leader epoch (not covered by the CRC). No-op on a slice
/// shorter than a header.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    if let Some(b) = batch.get_mut(LEADER_EPOCH_OFFSET..LEADER_EPOCH_OFFSET + 4) {
        b.copy_from_slice(&epoch.to_be_bytes());
    }
}

/// Set the idempotent producer fields (producer id, epoch, base sequence),
/// then recompute and store the CRC (which covers them). A producer uses it
/// to give an already encoded batch a new sequence after its producer epoch
/// was bumped. No-op on a slice shorter than a header.
pub fn set_producer_state(batch: &mut [u8], producer_id: i64, epoch: i16, base_sequence: i32) {
    if batch.len() < BATCH_HEADER_LEN {
        return;
    }
    batch[PRODUCER_ID_OFFSET..PRODUCER_ID_OFFSET + 8].copy_from_slice(&producer_id.to_be_bytes());
    batch[PRODUCER_ID_OFFSET + 8..PRODUCER_ID_OFFSET + 10].copy_from_slice(&epoch.to_be_bytes());
    batch[PRODUCER_ID_OFFSET + 10..PRODUCER_ID_OFFSET + 14]
        .copy_from_slice(&base_sequence.to_be_bytes());
    let crc = compute_crc(batch);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Mark the batch as LogAppendTime with `timestamp_ms` as its max timestamp,
/// then recompute and store the CRC. No-op on a slice shorter than a header.
pub fn set_log_append_time(batch: &mut [u8], timestamp_ms: i64) {
    if batch.len() < BATCH_HEADER_LEN {
        return;
    }
    let attrs = be_i16(batch, ATTRIBUTES_OFFSET) | ATTR_TIMESTAMP_TYPE;
    batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attrs.to_be_bytes());
    batch[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
        .copy_from_slice(&timestamp_ms.to_be_bytes());
    let crc = compute_crc(batch);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}
