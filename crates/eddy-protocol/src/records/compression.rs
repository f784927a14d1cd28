//! Compression codecs of the records section of a batch, in the framings that
//! the Java client and librdkafka produce and accept.

use std::fmt;
use std::io::{Read, Write};
use std::str::FromStr;

use super::RecordError;

/// Compression codec of a batch (attribute bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// Mask of the codec bits in the batch attributes.
    pub const MASK: i16 = 0x07;

    /// Codec of batch attributes; codes 5-7 are an error.
    pub fn from_attributes(attributes: i16) -> Result<Compression, RecordError> {
        match attributes & Self::MASK {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            other => Err(RecordError::UnknownCompression(other)),
        }
    }

    /// The attribute bits of this codec.
    pub fn to_bits(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The name used in configs (`compression.type`).
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Compression {
    type Err = RecordError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" | "uncompressed" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip),
            "snappy" => Ok(Compression::Snappy),
            "lz4" => Ok(Compression::Lz4),
            "zstd" => Ok(Compression::Zstd),
            _ => Err(RecordError::UnknownCompressionName(s.to_string())),
        }
    }
}

/// Magic of the xerial snappy-java stream framing used by Kafka.
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_LEN: usize = 16;
/// Block size of snappy-java's `SnappyOutputStream` (what the Java client uses).
const XERIAL_BLOCK: usize = 32 * 1024;

fn codec_err(c: Compression, e: impl fmt::Display) -> RecordError {
    RecordError::Compression(format!("{c}: {e}"))
}

/// Compress `data` with codec `c` in Kafka's framing for it.
pub fn compress(c: Compression, data: &[u8]) -> Result<Vec<u8>, RecordError> {
    match c {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(data.len() / 2 + 64),
                flate2::Compression::default(),
            );
            enc.write_all(data).map_err(|e| codec_err(c, e))?;
            enc.finish().map_err(|e| codec_err(c, e))
        }
        Compression::Snappy => {
            let mut out = Vec::with_capacity(
                XERIAL_HEADER_LEN + snap::raw::max_compress_len(data.len()) + data.len() / 8192,
            );
            out.extend_from_slice(&XERIAL_MAGIC);
            out.extend_from_slice(&1i32.to_be_bytes()); // version
            out.extend_from_slice(&1i32.to_be_bytes()); // compatible version
            let mut enc = snap::raw::Encoder::new();
            for chunk in data.chunks(XERIAL_BLOCK) {
                let len_at = out.len();
                out.extend_from_slice(&[0u8; 4]);
                let start = out.len();
                out.resize(start + snap::raw::max_compress_len(chunk.len()), 0);
                let n = enc
                    .compress(chunk, &mut out[start..])
                    .map_err(|e| codec_err(c, e))?;
                out.truncate(start + n);
                let n = i32::try_from(n).map_err(|e| codec_err(c, e))?;
                out[len_at..start].copy_from_slice(&n.to_be_bytes());
            }
            Ok(out)
        }
        Compression::Lz4 => {
            let mut enc =
                lz4_flex::frame::FrameEncoder::new(Vec::with_capacity(data.len() / 2 + 64));
            enc.write_all(data).map_err(|e| codec_err(c, e))?;
            enc.finish().map_err(|e| codec_err(c, e))
        }
        Compression::Zstd => zstd::bulk::compress(data, 3).map_err(|e| codec_err(c, e)),
    }
}

/// Read everything from `r` but fail once more than `max_out` bytes come out.
/// The output grows with what is actually produced, never beyond `max_out + 1`.
fn read_capped(
    c: Compression,
    mut r: impl Read,
    max_out: usize,
    hint: usize,
) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::with_capacity(hint.min(max_out));
    let limit = (max_out as u64).saturating_add(1);
    (&mut r)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| codec_err(c, e))?;
    if out.len() > max_out {
        return Err(RecordError::DecompressedTooLarge { limit: max_out });
    }
    Ok(out)
}

/// Decompress `data` (codec `c`), producing at most `max_out` bytes.
pub fn decompress(c: Compression, data: &[u8], max_out: usize) -> Result<Vec<u8>, RecordError> {
    let hint = data.len().saturating_mul(4);
    match c {
        Compression::None => {
            if data.len() > max_out {
                return Err(RecordError::DecompressedTooLarge { limit: max_out });
            }
            Ok(data.to_vec())
        }
        Compression::Gzip => read_capped(c, flate2::read::MultiGzDecoder::new(data), max_out, hint),
        Compression::Snappy => {
            if data.len() >= XERIAL_HEADER_LEN && data[..8] == XERIAL_MAGIC {
                snappy_xerial(&data[XERIAL_HEADER_LEN..], max_out)
            } else {
                let mut out = Vec::new();
                snappy_block(data, &mut out, max_out)?;
                Ok(out)
            }
        }
        Compression::Lz4 => read_capped(c, lz4_flex::frame::FrameDecoder::new(data), max_out, hint),
        Compression::Zstd => {
            let mut dec =
                zstd::stream::read::Decoder::with_buffer(data).map_err(|e| codec_err(c, e))?;
            // Bound the window the decoder may allocate: large enough for any
            // window a producer picks for data of this size, never above zstd's
            // default limit (128 MiB).
            let need = usize::BITS - max_out.max(1).leading_zeros();
            dec.window_log_max(need.clamp(23, 27))
                .map_err(|e| codec_err(c, e))?;
            read_capped(c, dec, max_out, hint)
        }
    }
}

/// Append the raw snappy block `block` decompressed to `out`.
fn snappy_block(block: &[u8], out: &mut Vec<u8>, max_out: usize) -> Result<(), RecordError> {
    let c = Compression::Snappy;
    let n = snap::raw::decompress_len(block).map_err(|e| codec_err(c, e))?;
    if out.len().saturating_add(n) > max_out {
        return Err(RecordError::DecompressedTooLarge { limit: max_out });
    }
    let start = out.len();
    out.resize(start + n, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| codec_err(c, e))?;
    out.truncate(start + written);
    Ok(())
}

fn snappy_xerial(mut data: &[u8], max_out: usize) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let Some((len, rest)) = data.split_first_chunk::<4>() else {
            return Err(codec_err(
                Compression::Snappy,
                "truncated xerial block length",
            ));
        };
        let len = i32::from_be_bytes(*len);
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= rest.len())
            .ok_or_else(|| codec_err(Compression::Snappy, "bad xerial block length"))?;
        let (block, rest) = rest.split_at(len);
        snappy_block(block, &mut out, max_out)?;
        data = rest;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn sample(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8 ^ (i / 1000) as u8).collect()
    }

    #[test]
    fn round_trip_all_codecs() {
        for c in ALL {
            for n in [0usize, 1, 100, 32 * 1024, 100_000] {
                let data = sample(n);
                let z = compress(c, &data).unwrap();
                let back = decompress(c, &z, n).unwrap();
                assert_eq!(back, data, "{c} n={n}");
            }
        }
    }

    #[test]
    fn cap_enforced() {
        for c in ALL {
            let data = sample(10_000);
            let z = compress(c, &data).unwrap();
            assert!(
                matches!(
                    decompress(c, &z, 9_999),
                    Err(RecordError::DecompressedTooLarge { .. })
                ),
                "{c}"
            );
        }
    }

    #[test]
    fn snappy_xerial_framing_and_raw_input() {
        let data = sample(70_000);
        let z = compress(Compression::Snappy, &data).unwrap();
        assert_eq!(&z[..8], &XERIAL_MAGIC);
        assert_eq!(&z[8..16], &[0, 0, 0, 1, 0, 0, 0, 1]);
        // three 32 KiB blocks
        let first = i32::from_be_bytes([z[16], z[17], z[18], z[19]]) as usize;
        let first_block = &z[20..20 + first];
        assert_eq!(
            snap::raw::Decoder::new()
                .decompress_vec(first_block)
                .unwrap(),
            &data[..XERIAL_BLOCK]
        );
        // A plain raw block (what librdkafka may send) is accepted too.
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(decompress(Compression::Snappy, &raw, 70_000).unwrap(), data);
    }

    #[test]
    fn zstd_without_content_size() {
        let data = sample(50_000);
        let z = zstd::stream::encode_all(&data[..], 3).unwrap();
        assert_eq!(decompress(Compression::Zstd, &z, 50_000).unwrap(), data);
    }

    #[test]
    fn names() {
        for c in ALL {
            assert_eq!(c.name().parse::<Compression>().unwrap(), c);
            assert_eq!(Compression::from_attributes(c.to_bits()).unwrap(), c);
        }
        assert!("brotli".parse::<Compression>().is_err());
        assert!(Compression::from_attributes(5).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for c in ALL {
            let _ = decompress(
                c,
                &[
                    0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0,
                    0, 0,
                ],
                1000,
            );
            let _ = decompress(c, b"garbage garbage", 1000);
        }
    }
}
