//! Individual records inside a batch: decoding and encoding.

use bytes::Bytes;

use super::batch::{validate_batch, BatchHeader, TimestampType, BATCH_HEADER_LEN};
use super::varint::{
    read_varint, read_varlong, varint_size, varlong_size, write_varint, write_varlong,
};
use super::{decompress, Compression, RecordError};

/// A record header. Order and duplicate keys are preserved.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub key: String,
    pub value: Option<Bytes>,
}

/// A decoded record with absolute offset and timestamp.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

/// Smallest possible encoded record: length, attributes, timestamp delta,
/// offset delta, key length, value length, header count (one byte each).
const MIN_RECORD_SIZE: usize = 7;
/// Smallest possible encoded header: key length and value length.
const MIN_HEADER_SIZE: usize = 2;

/// Decode every record of the batch at the start of `batch` (which is
/// validated first, CRC included), decompressing if needed with at most
/// `max_decompressed_bytes` of output. Keys and values share the memory of
/// `batch` (uncompressed) or of the decompressed buffer.
pub fn decode_records(
    batch: &Bytes,
    max_decompressed_bytes: usize,
) -> Result<(BatchHeader, Vec<Record>), RecordError> {
    let header = validate_batch(batch)?;
    let total = header.total_size();
    let payload = match header.compression()? {
        Compression::None => batch.slice(BATCH_HEADER_LEN..total),
        c => Bytes::from(decompress(
            c,
            &batch[BATCH_HEADER_LEN..total],
            max_decompressed_bytes,
        )?),
    };
    let records = decode_payload(&header, &payload)?;
    Ok((header, records))
}

fn decode_payload(header: &BatchHeader, data: &Bytes) -> Result<Vec<Record>, RecordError> {
    let count = usize::try_from(header.records_count).unwrap_or(0);
    // Never trust the count for the allocation: bound it by the bytes present.
    let mut records = Vec::with_capacity(count.min(data.len() / MIN_RECORD_SIZE));
    let mut pos = 0usize;
    let log_append = header.timestamp_type() == TimestampType::LogAppendTime;
    for i in 0..count {
        if pos >= data.len() {
            return Err(RecordError::InvalidRecord(format!(
                "batch declares {count} records but holds only {i}"
            )));
        }
        let len = read_varint(data, &mut pos)?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= data.len() - pos)
            .ok_or_else(|| RecordError::InvalidRecord(format!("invalid record length {len}")))?;
        let end = pos + len;
        let rec = decode_one(header, data, &mut pos, end, log_append)?;
        if pos != end {
            return Err(RecordError::InvalidRecord(format!(
                "record length {len} does not match its content ({} bytes)",
                len - (end - pos)
            )));
        }
        records.push(rec);
    }
    if pos != data.len() {
        return Err(RecordError::InvalidRecord(format!(
            "{} bytes left after the {count} declared records",
            data.len() - pos
        )));
    }
    Ok(records)
}

/// Read a length-prefixed byte field (`-1` = null) inside `data[..end]`.
fn read_bytes(
    data: &Bytes,
    pos: &mut usize,
    end: usize,
    what: &str,
) -> Result<Option<Bytes>, RecordError> {
    let len = read_varint(&data[..end], pos)?;
    if len == -1 {
        return Ok(None);
    }
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| l <= end - *pos)
        .ok_or_else(|| RecordError::InvalidRecord(format!("invalid {what} length {len}")))?;
    let b = data.slice(*pos..*pos + len);
    *pos += len;
    Ok(Some(b))
}

fn decode_one(
    header: &BatchHeader,
    data: &Bytes,
    pos: &mut usize,
    end: usize,
    log_append: bool,
) -> Result<Record, RecordError> {
    let body = &data[..end];
    if *pos >= end {
        return Err(RecordError::InvalidRecord("empty record".into()));
    }
    *pos += 1; // attributes: unused in v2
    let ts_delta = read_varlong(body, pos)?;
    let offset_delta = read_varint(body, pos)?;
    let key = read_bytes(data, pos, end, "key")?;
    let value = read_bytes(data, pos, end, "value")?;
    let n_headers = read_varint(body, pos)?;
    let n_headers = usize::try_from(n_headers)
        .map_err(|_| RecordError::InvalidRecord(format!("invalid header count {n_headers}")))?;
    let mut headers = Vec::with_capacity(n_headers.min((end - *pos) / MIN_HEADER_SIZE));
    for _ in 0..n_headers {
        let key = read_bytes(data, pos, end, "header key")?
            .ok_or_else(|| RecordError::InvalidRecord("null header key".into()))?;
        let key = match std::str::from_utf8(&key) {
            Ok(s) => s.to_owned(),
            // The Java client decodes header keys leniently; do the same.
            Err(_) => String::from_utf8_lossy(&key).into_owned(),
        };
        let value = read_bytes(data, pos, end, "header value")?;
        headers.push(Header { key, value });
    }
    let timestamp = if log_append {
        header.max_timestamp
    } else {
        header.base_timestamp.wrapping_add(ts_delta)
    };
    Ok(Record {
        offset: header.base_offset.wrapping_add(i64::from(offset_delta)),
        timestamp,
        key,
        value,
        headers,
    })
}

fn bytes_field_size(b: Option<&[u8]>) -> usize {
    match b {
        None => varint_size(-1),
        Some(b) => varint_size(b.len() as i32) + b.len(),
    }
}

fn write_bytes_field(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => write_varint(out, -1),
        Some(b) => {
            write_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}

/// Encode one record (length prefix included) onto `out`. Lengths must fit
/// in an i32 (checked by the builder).
pub(crate) fn encode_record(
    out: &mut Vec<u8>,
    offset_delta: i32,
    timestamp_delta: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[Header],
) {
    let mut body = 1
        + varlong_size(timestamp_delta)
        + varint_size(offset_delta)
        + bytes_field_size(key)
        + bytes_field_size(value)
        + varint_size(headers.len() as i32);
    for h in headers {
        body += bytes_field_size(Some(h.key.as_bytes())) + bytes_field_size(h.value.as_deref());
    }
    out.reserve(body + 5);
    write_varint(out, body as i32);
    out.push(0); // attributes
    write_varlong(out, timestamp_delta);
    write_varint(out, offset_delta);
    write_bytes_field(out, key);
    write_bytes_field(out, value);
    write_varint(out, headers.len() as i32);
    for h in headers {
        write_bytes_field(out, Some(h.key.as_bytes()));
        write_bytes_field(out, h.value.as_deref());
    }
}
