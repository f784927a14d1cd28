//! Primitive wire codec of the Kafka protocol: the output buffer, the
//! `Encode`/`Decode` traits implemented by every generated message, the
//! error types, the Kafka UUID, and the bounded read/write helpers that the
//! generated code (and the records module) are built on.
//!
//! Every reader takes `&mut Bytes` and consumes what it reads. Readers never
//! allocate more than the remaining input justifies: lengths are checked
//! against the bytes left *before* anything is allocated.

use std::fmt;
use std::str::FromStr;

use bytes::{BufMut, Bytes, BytesMut};

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Error while decoding a message from the wire.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ended before the value was complete.
    #[error("unexpected end of input")]
    UnexpectedEof,
    /// A length prefix is negative (other than -1 for null) or larger than the bytes left.
    #[error("invalid length {0}")]
    InvalidLength(i64),
    /// A string is not valid UTF-8.
    #[error("invalid UTF-8 in string")]
    InvalidUtf8,
    /// A varint is longer than 5 (varint) or 10 (varlong) bytes, or overflows.
    #[error("invalid varint")]
    InvalidVarint,
    /// A null value where the field is not nullable in this version.
    #[error("null value for non-nullable field {0}")]
    UnexpectedNull(&'static str),
    /// The api version is not supported for this api key.
    #[error("unsupported version {version} for api key {api_key}")]
    UnsupportedVersion { api_key: i16, version: i16 },
    /// The api key is unknown.
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    /// Any other malformed input.
    #[error("invalid data: {0}")]
    Invalid(&'static str),
}

/// Error while encoding a message.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// The api version is not supported by this message.
    #[error("unsupported version {version} for api key {api_key}")]
    UnsupportedVersion { api_key: i16, version: i16 },
    /// A field holds None but is not nullable in this version.
    #[error("null value for non-nullable field {0}")]
    UnexpectedNull(&'static str),
    /// A string, bytes or array is too long for its length prefix.
    #[error("value too long: {0} bytes or elements")]
    TooLong(usize),
}

/// Encode a value at a given api version.
pub trait Encode {
    fn encode(&self, buf: &mut WriteBuf, version: i16) -> Result<(), EncodeError>;
}

/// Decode a value at a given api version, consuming the bytes read.
pub trait Decode: Sized {
    fn decode(buf: &mut Bytes, version: i16) -> Result<Self, DecodeError>;
}

// ---------------------------------------------------------------------------
// WriteBuf
// ---------------------------------------------------------------------------

/// Chunks at least this large are appended by reference by [`WriteBuf::put_shared`].
pub const SHARED_CHUNK_THRESHOLD: usize = 4096;

/// An output buffer: a list of frozen chunks plus a growable tail. Large
/// `Bytes` (record sets) are appended as separate chunks without copying.
#[derive(Debug, Default)]
pub struct WriteBuf {
    chunks: Vec<Bytes>,
    cur: BytesMut,
    len: usize,
}

macro_rules! put_num {
    ($($name:ident: $t:ty => $m:ident;)*) => {$(
        #[inline]
        pub fn $name(&mut self, v: $t) {
            self.cur.$m(v);
            self.len += std::mem::size_of::<$t>();
        }
    )*};
}

impl WriteBuf {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(n: usize) -> Self {
        WriteBuf {
            chunks: Vec::new(),
            cur: BytesMut::with_capacity(n),
            len: 0,
        }
    }

    put_num! {
        put_i8: i8 => put_i8;
        put_i16: i16 => put_i16;
        put_u16: u16 => put_u16;
        put_i32: i32 => put_i32;
        put_u32: u32 => put_u32;
        put_i64: i64 => put_i64;
        put_f64: f64 => put_f64;
    }

    #[inline]
    pub fn put_u8(&mut self, v: u8) {
        self.cur.put_u8(v);
        self.len += 1;
    }

    #[inline]
    pub fn put_bool(&mut self, v: bool) {
        self.put_u8(v as u8);
    }

    /// Unsigned LEB128 varint (at most 5 bytes).
    #[inline]
    pub fn put_uvarint(&mut self, v: u32) {
        if v < 0x80 {
            self.put_u8(v as u8);
            return;
        }
        let mut tmp = [0u8; 5];
        let n = encode_uvarint(v, &mut tmp);
        self.put_slice(&tmp[..n]);
    }

    /// Zigzag varint (at most 5 bytes).
    #[inline]
    pub fn put_varint(&mut self, v: i32) {
        self.put_uvarint(zigzag32(v));
    }

    /// Zigzag varlong (at most 10 bytes).
    #[inline]
    pub fn put_varlong(&mut self, v: i64) {
        let mut tmp = [0u8; 10];
        let n = encode_uvarlong(zigzag64(v), &mut tmp);
        self.put_slice(&tmp[..n]);
    }

    #[inline]
    pub fn put_slice(&mut self, s: &[u8]) {
        self.cur.extend_from_slice(s);
        self.len += s.len();
    }

    /// Appends `b`: chunks of at least [`SHARED_CHUNK_THRESHOLD`] bytes are
    /// kept by reference (no copy), smaller ones are copied.
    pub fn put_shared(&mut self, b: Bytes) {
        if b.len() < SHARED_CHUNK_THRESHOLD {
            self.put_slice(&b);
            return;
        }
        self.len += b.len();
        if !self.cur.is_empty() {
            let head = self.cur.split().freeze();
            self.chunks.push(head);
        }
        self.chunks.push(b);
    }

    /// Appends the content of another buffer, keeping its shared chunks.
    pub fn put_writebuf(&mut self, other: WriteBuf) {
        for c in other.into_chunks() {
            self.put_shared(c);
        }
    }

    /// Number of bytes written so far.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The encoded bytes, in order.
    pub fn into_chunks(mut self) -> Vec<Bytes> {
        if !self.cur.is_empty() {
            self.chunks.push(self.cur.freeze());
        }
        self.chunks
    }

    /// The encoded bytes as one contiguous buffer (copies if there are several chunks).
    pub fn into_bytes(mut self) -> Bytes {
        if self.chunks.is_empty() {
            return self.cur.freeze();
        }
        if self.cur.is_empty() && self.chunks.len() == 1 {
            return self.chunks.pop().unwrap_or_default();
        }
        let mut out = BytesMut::with_capacity(self.len);
        for c in &self.chunks {
            out.extend_from_slice(c);
        }
        out.extend_from_slice(&self.cur);
        out.freeze()
    }
}

// ---------------------------------------------------------------------------
// Varints
// ---------------------------------------------------------------------------

#[inline]
pub fn zigzag32(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

#[inline]
pub fn unzigzag32(v: u32) -> i32 {
    ((v >> 1) as i32) ^ -((v & 1) as i32)
}

#[inline]
pub fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
pub fn unzigzag64(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Writes `v` as an unsigned varint into `out`, returns the number of bytes (1..=5).
#[inline]
pub fn encode_uvarint(mut v: u32, out: &mut [u8; 5]) -> usize {
    let mut i = 0;
    while v >= 0x80 && i < 4 {
        out[i] = (v as u8) | 0x80;
        v >>= 7;
        i += 1;
    }
    out[i] = v as u8;
    i + 1
}

/// Writes `v` as an unsigned varlong into `out`, returns the number of bytes (1..=10).
#[inline]
pub fn encode_uvarlong(mut v: u64, out: &mut [u8; 10]) -> usize {
    let mut i = 0;
    while v >= 0x80 && i < 9 {
        out[i] = (v as u8) | 0x80;
        v >>= 7;
        i += 1;
    }
    out[i] = v as u8;
    i + 1
}

/// Encoded size of an unsigned varint.
#[inline]
pub fn uvarint_len(v: u32) -> usize {
    match v {
        0..=0x7f => 1,
        0x80..=0x3fff => 2,
        0x4000..=0x1f_ffff => 3,
        0x20_0000..=0xfff_ffff => 4,
        _ => 5,
    }
}

/// Encoded size of a zigzag varint.
#[inline]
pub fn varint_len(v: i32) -> usize {
    uvarint_len(zigzag32(v))
}

/// Encoded size of a zigzag varlong.
#[inline]
pub fn varlong_len(v: i64) -> usize {
    let mut u = zigzag64(v);
    let mut n = 1;
    while u >= 0x80 {
        u >>= 7;
        n += 1;
    }
    n
}

/// Writes an unsigned varint into any `BufMut`.
#[inline]
pub fn write_uvarint<B: BufMut>(buf: &mut B, v: u32) {
    let mut tmp = [0u8; 5];
    let n = encode_uvarint(v, &mut tmp);
    buf.put_slice(&tmp[..n]);
}

/// Writes a zigzag varint into any `BufMut`.
#[inline]
pub fn write_varint<B: BufMut>(buf: &mut B, v: i32) {
    write_uvarint(buf, zigzag32(v));
}

/// Writes a zigzag varlong into any `BufMut`.
#[inline]
pub fn write_varlong<B: BufMut>(buf: &mut B, v: i64) {
    let mut tmp = [0u8; 10];
    let n = encode_uvarlong(zigzag64(v), &mut tmp);
    buf.put_slice(&tmp[..n]);
}

/// Decodes an unsigned varint from the start of `s`: (value, bytes used).
/// At most 5 bytes; a value that overflows `u32` is an error.
#[inline]
pub fn decode_uvarint(s: &[u8]) -> Result<(u32, usize), DecodeError> {
    let mut v: u32 = 0;
    for i in 0..5 {
        let b = *s.get(i).ok_or(DecodeError::UnexpectedEof)?;
        if i == 4 && b > 0x0f {
            return Err(DecodeError::InvalidVarint);
        }
        v |= ((b & 0x7f) as u32) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((v, i + 1));
        }
    }
    Err(DecodeError::InvalidVarint)
}

/// Decodes an unsigned varlong from the start of `s`: (value, bytes used).
/// At most 10 bytes; a value that overflows `u64` is an error.
#[inline]
pub fn decode_uvarlong(s: &[u8]) -> Result<(u64, usize), DecodeError> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let b = *s.get(i).ok_or(DecodeError::UnexpectedEof)?;
        if i == 9 && b > 0x01 {
            return Err(DecodeError::InvalidVarint);
        }
        v |= ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((v, i + 1));
        }
    }
    Err(DecodeError::InvalidVarint)
}

// ---------------------------------------------------------------------------
// Readers
// ---------------------------------------------------------------------------

#[inline]
fn take<const N: usize>(buf: &mut Bytes) -> Result<[u8; N], DecodeError> {
    let s = buf.get(..N).ok_or(DecodeError::UnexpectedEof)?;
    let mut a = [0u8; N];
    a.copy_from_slice(s);
    bytes::Buf::advance(buf, N);
    Ok(a)
}

macro_rules! read_num {
    ($($name:ident -> $t:ty;)*) => {$(
        #[inline]
        pub fn $name(buf: &mut Bytes) -> Result<$t, DecodeError> {
            Ok(<$t>::from_be_bytes(take::<{ std::mem::size_of::<$t>() }>(buf)?))
        }
    )*};
}

read_num! {
    read_i8 -> i8;
    read_u8 -> u8;
    read_i16 -> i16;
    read_u16 -> u16;
    read_i32 -> i32;
    read_u32 -> u32;
    read_i64 -> i64;
    read_u64 -> u64;
    read_f64 -> f64;
}

/// A boolean: any non-zero byte is true.
#[inline]
pub fn read_bool(buf: &mut Bytes) -> Result<bool, DecodeError> {
    Ok(read_u8(buf)? != 0)
}

#[inline]
pub fn read_uvarint(buf: &mut Bytes) -> Result<u32, DecodeError> {
    let (v, n) = decode_uvarint(buf)?;
    bytes::Buf::advance(buf, n);
    Ok(v)
}

#[inline]
pub fn read_varint(buf: &mut Bytes) -> Result<i32, DecodeError> {
    Ok(unzigzag32(read_uvarint(buf)?))
}

#[inline]
pub fn read_uvarlong(buf: &mut Bytes) -> Result<u64, DecodeError> {
    let (v, n) = decode_uvarlong(buf)?;
    bytes::Buf::advance(buf, n);
    Ok(v)
}

#[inline]
pub fn read_varlong(buf: &mut Bytes) -> Result<i64, DecodeError> {
    Ok(unzigzag64(read_uvarlong(buf)?))
}

#[inline]
pub fn read_uuid(buf: &mut Bytes) -> Result<Uuid, DecodeError> {
    Ok(Uuid(take::<16>(buf)?))
}

/// Checks a length read from the wire against the bytes left; -1 means null.
#[inline]
fn check_len(len: i64, remaining: usize) -> Result<Option<usize>, DecodeError> {
    if len == -1 {
        return Ok(None);
    }
    if len < 0 || len > remaining as i64 {
        return Err(DecodeError::InvalidLength(len));
    }
    Ok(Some(len as usize))
}

/// Length of a string: i16 (classic) or uvarint(len+1) (compact). None = null.
/// Strings are at most `i16::MAX` bytes in both encodings.
#[inline]
pub fn read_string_len(buf: &mut Bytes, compact: bool) -> Result<Option<usize>, DecodeError> {
    let len = if compact {
        let len = read_uvarint(buf)? as i64 - 1;
        if len > i16::MAX as i64 {
            return Err(DecodeError::InvalidLength(len));
        }
        len
    } else {
        read_i16(buf)? as i64
    };
    check_len(len, buf.len())
}

/// Length of bytes/records: i32 (classic) or uvarint(len+1) (compact). None = null.
#[inline]
pub fn read_bytes_len(buf: &mut Bytes, compact: bool) -> Result<Option<usize>, DecodeError> {
    let len = if compact {
        read_uvarint(buf)? as i64 - 1
    } else {
        read_i32(buf)? as i64
    };
    check_len(len, buf.len())
}

/// Length of an array: i32 (classic) or uvarint(len+1) (compact). None = null.
/// A length larger than the bytes left is an error.
#[inline]
pub fn read_array_len(buf: &mut Bytes, compact: bool) -> Result<Option<usize>, DecodeError> {
    read_bytes_len(buf, compact)
}

#[inline]
fn utf8(b: &[u8]) -> Result<String, DecodeError> {
    match std::str::from_utf8(b) {
        Ok(s) => Ok(s.to_owned()),
        Err(_) => Err(DecodeError::InvalidUtf8),
    }
}

#[inline]
pub fn read_nullable_string(buf: &mut Bytes, compact: bool) -> Result<Option<String>, DecodeError> {
    match read_string_len(buf, compact)? {
        None => Ok(None),
        Some(n) => {
            let s = utf8(buf.get(..n).ok_or(DecodeError::UnexpectedEof)?)?;
            bytes::Buf::advance(buf, n);
            Ok(Some(s))
        }
    }
}

#[inline]
pub fn read_string(
    buf: &mut Bytes,
    compact: bool,
    field: &'static str,
) -> Result<String, DecodeError> {
    read_nullable_string(buf, compact)?.ok_or(DecodeError::UnexpectedNull(field))
}

/// Bytes/records: a zero-copy slice of the input.
#[inline]
pub fn read_nullable_bytes(buf: &mut Bytes, compact: bool) -> Result<Option<Bytes>, DecodeError> {
    match read_bytes_len(buf, compact)? {
        None => Ok(None),
        Some(n) => Ok(Some(buf.split_to(n))),
    }
}

#[inline]
pub fn read_bytes(
    buf: &mut Bytes,
    compact: bool,
    field: &'static str,
) -> Result<Bytes, DecodeError> {
    read_nullable_bytes(buf, compact)?.ok_or(DecodeError::UnexpectedNull(field))
}

/// Initial capacity for a vector of `n` elements read from the wire.
#[inline]
pub fn bounded_capacity(n: usize) -> usize {
    n.min(1024)
}

/// An array whose elements are read by `f`. The length is checked against
/// the bytes left before anything is allocated.
#[inline]
pub fn read_nullable_array<T>(
    buf: &mut Bytes,
    compact: bool,
    mut f: impl FnMut(&mut Bytes) -> Result<T, DecodeError>,
) -> Result<Option<Vec<T>>, DecodeError> {
    match read_array_len(buf, compact)? {
        None => Ok(None),
        Some(n) => {
            let mut v = Vec::with_capacity(bounded_capacity(n));
            for _ in 0..n {
                v.push(f(buf)?);
            }
            Ok(Some(v))
        }
    }
}

#[inline]
pub fn read_array<T>(
    buf: &mut Bytes,
    compact: bool,
    field: &'static str,
    f: impl FnMut(&mut Bytes) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    read_nullable_array(buf, compact, f)?.ok_or(DecodeError::UnexpectedNull(field))
}

/// Reads a struct that is nullable in this version: an i8 marker (-1 = null) then the struct.
#[inline]
pub fn read_nullable_struct<T: Decode>(
    buf: &mut Bytes,
    version: i16,
) -> Result<Option<T>, DecodeError> {
    if read_i8(buf)? < 0 {
        Ok(None)
    } else {
        Ok(Some(T::decode(buf, version)?))
    }
}

/// Reads one tagged field header (tag, size) and splits off its `size` bytes.
#[inline]
pub fn read_tagged_field(buf: &mut Bytes) -> Result<(u32, Bytes), DecodeError> {
    let tag = read_uvarint(buf)?;
    let size = read_uvarint(buf)? as usize;
    if size > buf.len() {
        return Err(DecodeError::InvalidLength(size as i64));
    }
    Ok((tag, buf.split_to(size)))
}

/// Skips a whole tagged-fields section.
#[inline]
pub fn skip_tagged_fields(buf: &mut Bytes) -> Result<(), DecodeError> {
    let n = read_uvarint(buf)?;
    for _ in 0..n {
        read_tagged_field(buf)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Writers used by the generated code
// ---------------------------------------------------------------------------

#[inline]
fn put_len(
    buf: &mut WriteBuf,
    len: Option<usize>,
    compact: bool,
    max: usize,
) -> Result<(), EncodeError> {
    match len {
        None => {
            if compact {
                buf.put_u8(0);
            } else if max == i16::MAX as usize {
                buf.put_i16(-1);
            } else {
                buf.put_i32(-1);
            }
        }
        Some(n) => {
            if n > max {
                return Err(EncodeError::TooLong(n));
            }
            if compact {
                // n <= i32::MAX so n + 1 fits in u32.
                buf.put_uvarint(n as u32 + 1);
            } else if max == i16::MAX as usize {
                buf.put_i16(n as i16);
            } else {
                buf.put_i32(n as i32);
            }
        }
    }
    Ok(())
}

#[inline]
pub fn put_nullable_string(
    buf: &mut WriteBuf,
    s: Option<&str>,
    compact: bool,
) -> Result<(), EncodeError> {
    put_len(buf, s.map(str::len), compact, i16::MAX as usize)?;
    if let Some(s) = s {
        buf.put_slice(s.as_bytes());
    }
    Ok(())
}

#[inline]
pub fn put_string(buf: &mut WriteBuf, s: &str, compact: bool) -> Result<(), EncodeError> {
    put_nullable_string(buf, Some(s), compact)
}

#[inline]
pub fn put_nullable_bytes(
    buf: &mut WriteBuf,
    b: Option<&Bytes>,
    compact: bool,
) -> Result<(), EncodeError> {
    put_len(buf, b.map(Bytes::len), compact, i32::MAX as usize)?;
    if let Some(b) = b {
        buf.put_shared(b.clone());
    }
    Ok(())
}

#[inline]
pub fn put_bytes(buf: &mut WriteBuf, b: &Bytes, compact: bool) -> Result<(), EncodeError> {
    put_nullable_bytes(buf, Some(b), compact)
}

/// Array length prefix; `None` writes null.
#[inline]
pub fn put_array_len(
    buf: &mut WriteBuf,
    len: Option<usize>,
    compact: bool,
) -> Result<(), EncodeError> {
    put_len(buf, len, compact, i32::MAX as usize)
}

#[inline]
pub fn put_uuid(buf: &mut WriteBuf, u: &Uuid) {
    buf.put_slice(&u.0);
}

/// Writes one tagged field: tag, size, then the content of `body`.
#[inline]
pub fn put_tagged_field(buf: &mut WriteBuf, tag: u32, body: WriteBuf) -> Result<(), EncodeError> {
    let n = u32::try_from(body.len()).map_err(|_| EncodeError::TooLong(body.len()))?;
    buf.put_uvarint(tag);
    buf.put_uvarint(n);
    buf.put_writebuf(body);
    Ok(())
}

// ---------------------------------------------------------------------------
// Uuid
// ---------------------------------------------------------------------------

/// A Kafka UUID (16 bytes), displayed in Kafka's URL-safe base64 form without padding.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Uuid(pub [u8; 16]);

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

impl Uuid {
    /// The all-zero UUID (Kafka's `ZERO_UUID`, "no topic id").
    pub const ZERO: Uuid = Uuid([0; 16]);
    /// Kafka's `ONE_UUID`, reserved (metadata topic id).
    pub const ONE: Uuid = Uuid([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);

    /// A random version-4 UUID, never ZERO or ONE, whose string form does not start with '-'.
    pub fn random() -> Uuid {
        loop {
            let mut b: [u8; 16] = rand::random();
            b[6] = (b[6] & 0x0f) | 0x40;
            b[8] = (b[8] & 0x3f) | 0x80;
            let u = Uuid(b);
            // The first base64 character is the top 6 bits of byte 0; 62 is '-'.
            if u != Uuid::ZERO && u != Uuid::ONE && (b[0] >> 2) != 62 {
                return u;
            }
        }
    }

    pub fn is_zero(&self) -> bool {
        *self == Uuid::ZERO
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = [0u8; 22];
        let mut o = 0;
        for chunk in self.0.chunks(3) {
            let mut n: u32 = 0;
            for (i, b) in chunk.iter().enumerate() {
                n |= (*b as u32) << (16 - 8 * i);
            }
            let chars = chunk.len() + 1;
            for i in 0..chars {
                out[o] = B64[((n >> (18 - 6 * i)) & 0x3f) as usize];
                o += 1;
            }
        }
        // Every byte written is from the ASCII table above.
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uuid({self})")
    }
}

/// Error parsing a [`Uuid`] from its base64 form.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
#[error("invalid Kafka UUID string")]
pub struct ParseUuidError;

impl FromStr for Uuid {
    type Err = ParseUuidError;

    fn from_str(s: &str) -> Result<Uuid, ParseUuidError> {
        let s = s.as_bytes();
        if s.len() != 22 {
            return Err(ParseUuidError);
        }
        let mut out = [0u8; 16];
        let mut o = 0;
        for chunk in s.chunks(4) {
            let mut n: u32 = 0;
            for (i, c) in chunk.iter().enumerate() {
                let v = match c {
                    b'A'..=b'Z' => c - b'A',
                    b'a'..=b'z' => c - b'a' + 26,
                    b'0'..=b'9' => c - b'0' + 52,
                    b'-' => 62,
                    b'_' => 63,
                    _ => return Err(ParseUuidError),
                };
                n |= (v as u32) << (18 - 6 * i);
            }
            let bytes = chunk.len() - 1;
            for i in 0..bytes {
                out[o] = (n >> (16 - 8 * i)) as u8;
                o += 1;
            }
            if chunk.len() == 2 && n & 0xffff != 0 {
                // Non-canonical trailing bits.
                return Err(ParseUuidError);
            }
        }
        Ok(Uuid(out))
    }
}

/// Random sample values for the generated round-trip tests.
#[cfg(test)]
#[allow(dead_code)]
pub(crate) mod testing {
    use super::Uuid;
    use bytes::Bytes;

    /// A small deterministic generator (xorshift64*).
    pub struct Gen {
        state: u64,
        tame: bool,
    }

    /// A random value valid at `version`: fields absent from the version
    /// are left at their defaults, null only where nullable.
    pub trait Sample: Sized {
        fn sample(g: &mut Gen, version: i16) -> Self;
    }

    impl Gen {
        pub fn new(seed: u64) -> Gen {
            Gen {
                state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
                tame: false,
            }
        }

        /// Only small non-negative integers (valid error codes, durations,
        /// timestamps), for implementations that check such values.
        pub fn tame(seed: u64) -> Gen {
            Gen {
                tame: true,
                ..Gen::new(seed)
            }
        }

        pub fn next_u64(&mut self) -> u64 {
            let mut x = self.state;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.state = x;
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next_u64() % n
        }

        /// Mostly small numbers, sometimes extremes.
        fn int(&mut self, min: i64, max: i64) -> i64 {
            if self.tame {
                return self.below(40) as i64;
            }
            match self.below(6) {
                0 => min,
                1 => max,
                2 => 0,
                3 => -1i64.max(min),
                _ => (self.next_u64() as i64).rem_euclid(1000).clamp(min, max),
            }
        }

        pub fn bool(&mut self) -> bool {
            self.below(2) == 1
        }
        pub fn i8(&mut self) -> i8 {
            self.int(i8::MIN.into(), i8::MAX.into()) as i8
        }
        pub fn i16(&mut self) -> i16 {
            self.int(i16::MIN.into(), i16::MAX.into()) as i16
        }
        pub fn u16(&mut self) -> u16 {
            self.int(0, u16::MAX.into()) as u16
        }
        pub fn i32(&mut self) -> i32 {
            self.int(i32::MIN.into(), i32::MAX.into()) as i32
        }
        pub fn u32(&mut self) -> u32 {
            self.int(0, u32::MAX.into()) as u32
        }
        pub fn i64(&mut self) -> i64 {
            self.int(i64::MIN, i64::MAX)
        }
        pub fn f64(&mut self) -> f64 {
            (self.next_u64() % 100_000) as f64 / 7.0
        }
        pub fn string(&mut self) -> String {
            let n = self.below(9) as usize;
            (0..n)
                .map(|_| match self.below(20) {
                    0 => 'é',
                    1 => '→',
                    k => (b'a' + k as u8) as char,
                })
                .collect()
        }
        pub fn bytes(&mut self) -> Bytes {
            let n = if self.below(8) == 0 {
                5000
            } else {
                self.below(17) as usize
            };
            Bytes::from((0..n).map(|i| i as u8).collect::<Vec<u8>>())
        }
        pub fn uuid(&mut self) -> Uuid {
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(&self.next_u64().to_be_bytes());
            b[8..].copy_from_slice(&self.next_u64().to_be_bytes());
            Uuid(b)
        }
        pub fn vec<T>(&mut self, mut f: impl FnMut(&mut Gen) -> T) -> Vec<T> {
            let n = self.below(4);
            (0..n).map(|_| f(self)).collect()
        }
        pub fn option<T>(&mut self, f: impl FnOnce(&mut Gen) -> T) -> Option<T> {
            if self.below(4) == 0 {
                None
            } else {
                Some(f(self))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uvarint_edges() {
        for v in [
            0u32,
            1,
            127,
            128,
            16383,
            16384,
            0x1f_ffff,
            0x20_0000,
            0xfff_ffff,
            0x1000_0000,
            u32::MAX,
        ] {
            let mut w = WriteBuf::new();
            w.put_uvarint(v);
            assert_eq!(w.len(), uvarint_len(v));
            let mut b = w.into_bytes();
            assert_eq!(read_uvarint(&mut b).unwrap(), v);
            assert!(b.is_empty());
        }
    }

    #[test]
    fn uvarint_too_long_or_overflowing() {
        let mut b = Bytes::from_static(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]);
        assert_eq!(read_uvarint(&mut b), Err(DecodeError::InvalidVarint));
        let mut b = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x1f]);
        assert_eq!(read_uvarint(&mut b), Err(DecodeError::InvalidVarint));
        let mut b = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(read_uvarint(&mut b), Ok(u32::MAX));
        let mut b = Bytes::from_static(&[0x80, 0x80]);
        assert_eq!(read_uvarint(&mut b), Err(DecodeError::UnexpectedEof));
        let mut b = Bytes::from_static(&[0xff; 11]);
        assert_eq!(read_varlong(&mut b), Err(DecodeError::InvalidVarint));
        let mut b =
            Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]);
        assert_eq!(read_uvarlong(&mut b), Err(DecodeError::InvalidVarint));
        let mut b =
            Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(read_uvarlong(&mut b), Ok(u64::MAX));
    }

    #[test]
    fn zigzag_edges() {
        for v in [0i32, -1, 1, i32::MIN, i32::MAX, 63, -64, 64, -65] {
            let mut w = WriteBuf::new();
            w.put_varint(v);
            assert_eq!(w.len(), varint_len(v));
            let mut b = w.into_bytes();
            assert_eq!(read_varint(&mut b).unwrap(), v);
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            let mut w = WriteBuf::new();
            w.put_varlong(v);
            assert_eq!(w.len(), varlong_len(v));
            let mut b = w.into_bytes();
            assert_eq!(read_varlong(&mut b).unwrap(), v);
        }
        assert_eq!(zigzag32(-1), 1);
        assert_eq!(zigzag32(1), 2);
    }

    #[test]
    fn uuid_string_roundtrip() {
        assert_eq!(Uuid::ZERO.to_string(), "AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(Uuid::ONE.to_string(), "AAAAAAAAAAAAAAAAAAAAAQ");
        for _ in 0..100 {
            let u = Uuid::random();
            let s = u.to_string();
            assert_eq!(s.len(), 22);
            assert!(!s.starts_with('-'));
            assert_eq!(s.parse::<Uuid>().unwrap(), u);
        }
        assert!("AAAAAAAAAAAAAAAAAAAAAB".parse::<Uuid>().is_err());
        assert!("short".parse::<Uuid>().is_err());
    }

    #[test]
    fn put_shared_keeps_large_chunks() {
        let mut w = WriteBuf::new();
        w.put_i32(7);
        let big = Bytes::from(vec![1u8; 5000]);
        w.put_shared(big.clone());
        w.put_shared(Bytes::from_static(b"ab"));
        assert_eq!(w.len(), 4 + 5000 + 2);
        let chunks = w.into_chunks();
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[1].as_ptr(), big.as_ptr());
    }
}
