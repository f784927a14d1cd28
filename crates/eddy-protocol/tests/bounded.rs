//! Malformed input: decoding is bounded by the input size, never panics, and
//! reports errors for bad lengths, nulls and varints.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use eddy_protocol::codec::{
    read_array_len, read_bytes_len, read_nullable_string, read_string_len, read_uvarint,
    read_varint, read_varlong, Decode, DecodeError, WriteBuf,
};
use eddy_protocol::messages::{
    ApiKey, CreateTopicsRequest, MetadataRequest, ProduceRequest, RequestKind,
};
use proptest::prelude::*;

/// Records the largest single allocation made by the process.
struct Tracking;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Tracking = Tracking;

/// Regression: a 13-byte Produce v3 body whose topic array claims
/// 2^31-1 elements must fail at once, before allocating anything sized by
/// that count.
#[test]
fn huge_array_length_is_rejected_before_allocating() {
    let input: &[u8] = &[
        0xff, 0xff, // transactional id: null
        0x00, 0x01, // acks
        0x00, 0x00, 0x75, 0x30, // timeout
        0x7f, 0xff, 0xff, 0xff, // topic count: 2147483647
        0x00, // one byte left
    ];
    assert_eq!(input.len(), 13);
    let start = Instant::now();
    let err = RequestKind::decode(0, 3, &mut Bytes::from_static(input)).unwrap_err();
    assert!(
        matches!(err, DecodeError::InvalidLength(2147483647)),
        "{err:?}"
    );
    assert!(start.elapsed() < Duration::from_millis(100));
    assert!(LARGEST.load(Ordering::Relaxed) < 64 << 20);

    // The same through the whole-request path (header v1 + body).
    let mut frame = vec![0x00, 0x00, 0x00, 0x03, 0, 0, 0, 1, 0xff, 0xff];
    frame.extend_from_slice(input);
    let err = RequestKind::decode_with_header(&mut Bytes::from(frame)).unwrap_err();
    assert!(matches!(err, DecodeError::InvalidLength(_)), "{err:?}");

    // Flexible: compact array claiming u32::MAX - 1 elements.
    let flex: &[u8] = &[
        0x00, 0x00, 0x01, 0x00, 0x00, 0x75, 0x30, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00,
    ];
    let err = RequestKind::decode(0, 9, &mut Bytes::from_static(flex)).unwrap_err();
    assert!(matches!(err, DecodeError::InvalidLength(_)), "{err:?}");
}

#[test]
fn array_of_many_small_elements_within_input_is_fine() {
    // 100k partitions of an empty-ish struct: bounded by the bytes present.
    let mut w = WriteBuf::new();
    w.put_i32(1); // one topic in Metadata v0
    w.put_i16(1);
    w.put_slice(b"t");
    let bytes = w.into_bytes();
    let m = MetadataRequest::decode(&mut bytes.clone(), 0).unwrap();
    assert_eq!(m.topics.unwrap()[0].name.as_deref(), Some("t"));
}

#[test]
fn negative_and_oversized_lengths() {
    // Negative string length other than -1.
    let mut b = Bytes::from_static(&[0xff, 0xfe, b'a']);
    assert_eq!(
        read_string_len(&mut b, false),
        Err(DecodeError::InvalidLength(-2))
    );
    // -1 is null.
    let mut b = Bytes::from_static(&[0xff, 0xff]);
    assert_eq!(read_string_len(&mut b, false), Ok(None));
    // Longer than the input.
    let mut b = Bytes::from_static(&[0x00, 0x05, b'a']);
    assert_eq!(
        read_string_len(&mut b, false),
        Err(DecodeError::InvalidLength(5))
    );
    let mut b = Bytes::from_static(&[0x80, 0x00, 0x00, 0x00]);
    assert_eq!(
        read_bytes_len(&mut b, false),
        Err(DecodeError::InvalidLength(i32::MIN as i64))
    );
    let mut b = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff]);
    assert_eq!(read_array_len(&mut b, false), Ok(None));
}

#[test]
fn compact_lengths() {
    // uvarint(len + 1): 0 is null, 1 is empty.
    let mut b = Bytes::from_static(&[0x00]);
    assert_eq!(read_string_len(&mut b, true), Ok(None));
    let mut b = Bytes::from_static(&[0x01]);
    assert_eq!(read_string_len(&mut b, true), Ok(Some(0)));
    let mut b = Bytes::from_static(&[0x03, b'h', b'i']);
    assert_eq!(read_nullable_string(&mut b, true), Ok(Some("hi".into())));
    // One more than what is left.
    let mut b = Bytes::from_static(&[0x04, b'h', b'i']);
    assert_eq!(
        read_string_len(&mut b, true),
        Err(DecodeError::InvalidLength(3))
    );
    // Max uvarint: u32::MAX - 1 elements claimed.
    let mut b = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert!(matches!(
        read_array_len(&mut b, true),
        Err(DecodeError::InvalidLength(_))
    ));
    // Multi-byte length.
    let mut data = vec![0x81, 0x01]; // 129 -> 128 bytes
    data.extend(std::iter::repeat_n(b'x', 128));
    let mut b = Bytes::from(data);
    assert_eq!(read_bytes_len(&mut b, true), Ok(Some(128)));
    // Invalid UTF-8.
    let mut b = Bytes::from_static(&[0x02, 0xff]);
    assert_eq!(
        read_nullable_string(&mut b, true),
        Err(DecodeError::InvalidUtf8)
    );
}

#[test]
fn varint_edge_cases() {
    let mut b = Bytes::from_static(&[0x7f]);
    assert_eq!(read_uvarint(&mut b), Ok(127));
    let mut b = Bytes::from_static(&[0x80, 0x01]);
    assert_eq!(read_uvarint(&mut b), Ok(128));
    // 6 bytes is too long for a varint.
    let mut b = Bytes::from_static(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
    assert_eq!(read_uvarint(&mut b), Err(DecodeError::InvalidVarint));
    let mut b = Bytes::from_static(&[0x01]);
    assert_eq!(read_varint(&mut b), Ok(-1));
    let mut b = Bytes::from_static(&[0xfe, 0xff, 0xff, 0xff, 0x0f]);
    assert_eq!(read_varint(&mut b), Ok(i32::MAX));
    let mut b = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert_eq!(read_varint(&mut b), Ok(i32::MIN));
    // 11 bytes is too long for a varlong.
    let mut b = Bytes::from_static(&[0x80; 11]);
    assert_eq!(read_varlong(&mut b), Err(DecodeError::InvalidVarint));
    let mut b = Bytes::from_static(&[0x80]);
    assert_eq!(read_varlong(&mut b), Err(DecodeError::UnexpectedEof));
    let mut w = WriteBuf::new();
    w.put_varlong(i64::MIN);
    assert_eq!(w.len(), 10);
    assert_eq!(read_varlong(&mut w.into_bytes()), Ok(i64::MIN));
}

#[test]
fn null_where_not_nullable() {
    // CreateTopics v0: topic name is not nullable.
    let input: &[u8] = &[0, 0, 0, 1, 0xff, 0xff];
    let err = CreateTopicsRequest::decode(&mut Bytes::from_static(input), 0).unwrap_err();
    assert_eq!(err, DecodeError::UnexpectedNull("Name"));
    // Metadata v0: topics array is not nullable (it is from v1).
    let err =
        MetadataRequest::decode(&mut Bytes::from_static(&[0xff, 0xff, 0xff, 0xff]), 0).unwrap_err();
    assert_eq!(err, DecodeError::UnexpectedNull("Topics"));
    let m = MetadataRequest::decode(&mut Bytes::from_static(&[0xff, 0xff, 0xff, 0xff]), 1).unwrap();
    assert_eq!(m.topics, None);
}

#[test]
fn unknown_keys_and_versions() {
    assert_eq!(
        RequestKind::decode(-5, 0, &mut Bytes::new()).unwrap_err(),
        DecodeError::UnknownApiKey(-5)
    );
    assert_eq!(
        RequestKind::decode(0, 12, &mut Bytes::new()).unwrap_err(),
        DecodeError::UnsupportedVersion {
            api_key: 0,
            version: 12
        }
    );
    assert_eq!(
        ProduceRequest::decode(&mut Bytes::new(), -1).unwrap_err(),
        DecodeError::UnsupportedVersion {
            api_key: 0,
            version: -1
        }
    );
    let frame = Bytes::from_static(&[0x00, 0x12, 0x00, 0x63, 0, 0, 0, 1]);
    assert_eq!(
        RequestKind::decode_with_header(&mut frame.clone()).unwrap_err(),
        DecodeError::UnsupportedVersion {
            api_key: 18,
            version: 99
        }
    );
    assert_eq!(
        RequestKind::decode_with_header(&mut Bytes::from_static(&[0x00])).unwrap_err(),
        DecodeError::UnexpectedEof
    );
}

#[test]
fn tagged_field_size_beyond_input() {
    // ApiVersions v3 response: tag 1 claims 100 bytes.
    let input: &[u8] = &[0, 0, 0x01, 0, 0, 0, 0, 0x01, 0x01, 0x64, 0, 0];
    let err =
        eddy_protocol::messages::ApiVersionsResponse::decode(&mut Bytes::from_static(input), 3)
            .unwrap_err();
    assert!(matches!(err, DecodeError::InvalidLength(100)), "{err:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Arbitrary bytes never panic, for any api key and version.
    #[test]
    fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200), idx in any::<usize>(), ver in any::<u8>()) {
        let key = ApiKey::ALL[idx % ApiKey::ALL.len()];
        let version = key.min_version() + (ver as i16 % (key.max_version() - key.min_version() + 1));
        let _ = RequestKind::decode(key as i16, version, &mut Bytes::from(data.clone()));
        let _ = eddy_protocol::messages::ResponseKind::decode(key as i16, version, &mut Bytes::from(data.clone()));
        let _ = RequestKind::decode_with_header(&mut Bytes::from(data));
    }
}
