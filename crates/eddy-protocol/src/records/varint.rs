//! Kafka's zig-zag variable-length integers (protobuf style), as used inside
//! magic v2 records.

use super::RecordError;

/// Read a zig-zag varint (at most 5 bytes) at `*pos`, advancing it.
pub(crate) fn read_varint(buf: &[u8], pos: &mut usize) -> Result<i32, RecordError> {
    let mut value: u32 = 0;
    for i in 0..5 {
        let b = *buf.get(*pos).ok_or(RecordError::InvalidRecord(
            "varint runs past the end of the data".into(),
        ))?;
        *pos += 1;
        if i == 4 && b > 0x0f {
            return Err(RecordError::InvalidRecord("varint too long".into()));
        }
        value |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(((value >> 1) as i32) ^ -((value & 1) as i32));
        }
    }
    Err(RecordError::InvalidRecord("varint too long".into()))
}

/// Read a zig-zag varlong (at most 10 bytes) at `*pos`, advancing it.
pub(crate) fn read_varlong(buf: &[u8], pos: &mut usize) -> Result<i64, RecordError> {
    let mut value: u64 = 0;
    for i in 0..10 {
        let b = *buf.get(*pos).ok_or(RecordError::InvalidRecord(
            "varlong runs past the end of the data".into(),
        ))?;
        *pos += 1;
        if i == 9 && b > 0x01 {
            return Err(RecordError::InvalidRecord("varlong too long".into()));
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    Err(RecordError::InvalidRecord("varlong too long".into()))
}

pub(crate) fn write_varint(out: &mut Vec<u8>, v: i32) {
    write_unsigned(out, u64::from(((v << 1) ^ (v >> 31)) as u32));
}

pub(crate) fn write_varlong(out: &mut Vec<u8>, v: i64) {
    write_unsigned(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn write_unsigned(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn unsigned_size(v: u64) -> usize {
    // 1 byte per started group of 7 bits, at least one.
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

pub(crate) fn varint_size(v: i32) -> usize {
    unsigned_size(u64::from(((v << 1) ^ (v >> 31)) as u32))
}

pub(crate) fn varlong_size(v: i64) -> usize {
    unsigned_size(((v << 1) ^ (v >> 63)) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trip_and_sizes() {
        for v in [0, 1, -1, 63, -64, 64, 300, -300, i32::MAX, i32::MIN] {
            let mut out = Vec::new();
            write_varint(&mut out, v);
            assert_eq!(out.len(), varint_size(v), "size of {v}");
            let mut pos = 0;
            assert_eq!(read_varint(&out, &mut pos).unwrap(), v);
            assert_eq!(pos, out.len());
        }
        for v in [0, 1, -1, 1 << 40, -(1 << 40), i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            write_varlong(&mut out, v);
            assert_eq!(out.len(), varlong_size(v), "size of {v}");
            let mut pos = 0;
            assert_eq!(read_varlong(&out, &mut pos).unwrap(), v);
            assert_eq!(pos, out.len());
        }
    }

    #[test]
    fn known_encodings() {
        // Kafka/protobuf zig-zag: 0 -> 00, -1 -> 01, 1 -> 02, 300 -> d8 04.
        let mut out = Vec::new();
        write_varint(&mut out, -1);
        write_varint(&mut out, 1);
        write_varint(&mut out, 300);
        assert_eq!(out, [0x01, 0x02, 0xd8, 0x04]);
    }

    #[test]
    fn overlong_and_truncated_rejected() {
        let mut pos = 0;
        assert!(read_varint(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01], &mut pos).is_err());
        let mut pos = 0;
        assert!(read_varint(&[0x80], &mut pos).is_err());
        let mut pos = 0;
        assert!(read_varlong(&[0xff; 11], &mut pos).is_err());
    }
}
