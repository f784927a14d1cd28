//! Round-trip and corruption tests of magic v2 record batches.

use bytes::Bytes;
use eddy_protocol::records::*;
use proptest::prelude::*;

const ALL: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

type Rec = (i64, Option<Vec<u8>>, Option<Vec<u8>>, Vec<Header>);

fn sample_records() -> Vec<Rec> {
    let dup = vec![
        Header {
            key: "k".into(),
            value: Some(Bytes::from_static(b"1")),
        },
        Header {
            key: "k".into(),
            value: None,
        },
        Header {
            key: "other".into(),
            value: Some(Bytes::new()),
        },
        Header {
            key: "k".into(),
            value: Some(Bytes::from_static(b"3")),
        },
    ];
    vec![
        (
            1000,
            Some(b"key-a".to_vec()),
            Some(b"value-a".to_vec()),
            vec![],
        ),
        (999, None, Some(b"null key".to_vec()), vec![]),
        (1500, Some(b"null value".to_vec()), None, dup),
        (1200, None, None, vec![]),
        (1300, Some(vec![]), Some(vec![0u8; 5000]), vec![]),
    ]
}

fn build(c: Compression, recs: &[Rec]) -> Bytes {
    let mut b = RecordBatchBuilder::new(c, recs.first().map_or(0, |r| r.0));
    for (ts, k, v, h) in recs {
        b.append(*ts, k.as_deref(), v.as_deref(), h);
    }
    assert_eq!(b.len(), recs.len());
    b.build().unwrap()
}

fn check_decoded(recs: &[Rec], decoded: &[Record], base_offset: i64) {
    assert_eq!(decoded.len(), recs.len());
    for (i, ((ts, k, v, h), r)) in recs.iter().zip(decoded).enumerate() {
        assert_eq!(r.offset, base_offset + i as i64);
        assert_eq!(r.timestamp, *ts);
        assert_eq!(r.key.as_deref(), k.as_deref());
        assert_eq!(r.value.as_deref(), v.as_deref());
        assert_eq!(&r.headers, h);
    }
}

#[test]
fn round_trip_every_codec() {
    let recs = sample_records();
    for c in ALL {
        let batch = build(c, &recs);
        let h = validate_batch(&batch).unwrap();
        assert_eq!(h.compression().unwrap(), c);
        assert_eq!(h.total_size(), batch.len());
        assert_eq!(h.records_count, 5);
        assert_eq!(h.last_offset_delta, 4);
        assert_eq!(h.last_offset(), 4);
        assert_eq!(h.base_timestamp, 1000);
        assert_eq!(h.max_timestamp, 1500);
        assert_eq!(h.producer_id, -1);
        assert_eq!(h.producer_epoch, -1);
        assert_eq!(h.base_sequence, -1);
        assert_eq!(h.partition_leader_epoch, -1);
        assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
        assert!(!h.is_transactional() && !h.is_control());
        let (h2, decoded) = decode_records(&batch, 1 << 20).unwrap();
        assert_eq!(h, h2);
        check_decoded(&recs, &decoded, 0);
    }
}

#[test]
fn producer_and_flags() {
    let mut b = RecordBatchBuilder::new(Compression::Zstd, 5)
        .producer(42, 3, 17)
        .transactional(true)
        .control(true);
    b.append(5, Some(b"\0\0\0\0"), Some(b"x"), &[]);
    let batch = b.build().unwrap();
    let h = validate_batch(&batch).unwrap();
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (42, 3, 17)
    );
    assert!(h.is_transactional() && h.is_control());
    assert!(RecordBatchBuilder::new(Compression::None, 0)
        .build()
        .is_err());
}

#[test]
fn crc_corruption_detected_everywhere() {
    let batch = build(Compression::None, &sample_records());
    // Every byte covered by the CRC (from the attributes on).
    for i in 21..batch.len() {
        let mut bad = batch.to_vec();
        bad[i] ^= 0x10;
        // Bits that also make a field invalid may be caught before the CRC.
        assert!(
            validate_batch(&bad).is_err(),
            "corruption at byte {i} not detected"
        );
    }
    // The stored CRC itself.
    let mut bad = batch.to_vec();
    bad[18] ^= 1;
    assert!(matches!(
        validate_batch(&bad),
        Err(RecordError::CrcMismatch { .. })
    ));
    // Base offset and leader epoch are not covered.
    let mut ok = batch.to_vec();
    set_base_offset(&mut ok, 1234);
    set_partition_leader_epoch(&mut ok, 7);
    let h = validate_batch(&ok).unwrap();
    assert_eq!(
        (h.base_offset, h.partition_leader_epoch, h.last_offset()),
        (1234, 7, 1238)
    );
    let (_, recs) = decode_records(&Bytes::from(ok), 1 << 20).unwrap();
    assert_eq!(recs[0].offset, 1234);
    assert_eq!(recs[4].offset, 1238);
}

#[test]
fn bad_magic_and_length() {
    let batch = build(Compression::None, &sample_records());
    let mut bad = batch.to_vec();
    bad[16] = 1;
    assert!(matches!(
        validate_batch(&bad),
        Err(RecordError::InvalidMagic(1))
    ));
    let mut bad = batch.to_vec();
    bad[8..12].copy_from_slice(&48i32.to_be_bytes());
    assert!(matches!(
        validate_batch(&bad),
        Err(RecordError::InvalidBatchLength(48))
    ));
    let mut bad = batch.to_vec();
    bad[8..12].copy_from_slice(&(-5i32).to_be_bytes());
    assert!(matches!(
        validate_batch(&bad),
        Err(RecordError::InvalidBatchLength(-5))
    ));
}

#[test]
fn truncation_detected_at_every_length() {
    for c in ALL {
        let batch = build(c, &sample_records());
        for n in 0..batch.len() {
            assert!(
                matches!(
                    validate_batch(&batch[..n]),
                    Err(RecordError::Truncated { .. })
                ),
                "{c} len {n}"
            );
            let b = batch.slice(..n);
            assert!(decode_records(&b, 1 << 20).is_err());
        }
    }
}

#[test]
fn iter_over_concatenated_batches() {
    let mut buf = Vec::new();
    let mut ranges = Vec::new();
    for c in ALL {
        let b = build(c, &sample_records());
        ranges.push(buf.len()..buf.len() + b.len());
        buf.extend_from_slice(&b);
    }
    let got: Vec<_> = BatchIter::new(&buf).map(|r| r.unwrap().1).collect();
    assert_eq!(got, ranges);
    // A torn last batch ends with one error.
    let cut = &buf[..buf.len() - 3];
    let items: Vec<_> = BatchIter::new(cut).collect();
    assert_eq!(items.len(), 5);
    assert!(items[..4].iter().all(|r| r.is_ok()));
    assert!(matches!(items[4], Err(RecordError::Truncated { .. })));
    // headers_only does not check the CRC.
    let mut bad = buf.clone();
    let last = ranges[4].end - 1;
    bad[last] ^= 0xff;
    assert!(BatchIter::new(&bad).last().unwrap().is_err());
    assert!(BatchIter::headers_only(&bad).all(|r| r.is_ok()));
    assert_eq!(BatchIter::new(&[]).count(), 0);
}

#[test]
fn set_log_append_time_keeps_crc_valid() {
    for c in ALL {
        let batch = build(c, &sample_records());
        let mut m = batch.to_vec();
        set_log_append_time(&mut m, 99_999);
        let h = validate_batch(&m).unwrap();
        assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(h.max_timestamp, 99_999);
        assert_eq!(h.crc, compute_crc(&m));
        assert_eq!(h.compression().unwrap(), c);
        let (_, recs) = decode_records(&Bytes::from(m), 1 << 20).unwrap();
        assert!(recs.iter().all(|r| r.timestamp == 99_999));
    }
}

#[test]
fn set_producer_state_rewrites_the_idempotent_fields_and_crc() {
    for c in ALL {
        let mut b = RecordBatchBuilder::new(c, 1000).producer(7, 0, 40);
        b.append(1000, Some(b"k"), Some(b"v"), &[]);
        b.append(1001, None, Some(b"w"), &[]);
        let mut m = b.build().unwrap().to_vec();
        let h = validate_batch(&m).unwrap();
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (7, 0, 40)
        );
        set_producer_state(&mut m, 7, 1, 0);
        let h = validate_batch(&m).unwrap();
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (7, 1, 0)
        );
        assert_eq!(h.records_count, 2);
        let (_, recs) = decode_records(&Bytes::from(m), 1 << 20).unwrap();
        assert_eq!(recs[1].value.as_deref(), Some(&b"w"[..]));
    }
    // A slice shorter than a header is left alone.
    let mut short = vec![0u8; 10];
    set_producer_state(&mut short, 1, 1, 1);
    assert_eq!(short, vec![0u8; 10]);
}

#[test]
fn decompressed_size_capped() {
    let recs = vec![(0, None, Some(vec![7u8; 100_000]), vec![])];
    for c in ALL {
        let batch = build(c, &recs);
        if c != Compression::None {
            assert!(matches!(
                decode_records(&batch, 50_000),
                Err(RecordError::DecompressedTooLarge { .. })
            ));
        }
        assert!(decode_records(&batch, 200_000).is_ok());
    }
}

#[test]
fn record_count_mismatch_rejected() {
    // Claim 6 records in a batch that has 5, with a correct CRC.
    let batch = build(Compression::None, &sample_records());
    let mut bad = batch.to_vec();
    bad[57..61].copy_from_slice(&6i32.to_be_bytes());
    let crc = compute_crc(&bad);
    bad[17..21].copy_from_slice(&crc.to_be_bytes());
    assert!(validate_batch(&bad).is_ok());
    assert!(matches!(
        decode_records(&Bytes::from(bad), 1 << 20),
        Err(RecordError::InvalidRecord(_))
    ));
    // Huge count: must fail without allocating for it.
    let mut bad = batch.to_vec();
    bad[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
    let crc = compute_crc(&bad);
    bad[17..21].copy_from_slice(&crc.to_be_bytes());
    assert!(decode_records(&Bytes::from(bad), 1 << 20).is_err());
}

fn arb_header() -> impl Strategy<Value = Header> {
    (
        "[a-z]{0,3}",
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
    )
        .prop_map(|(key, value)| Header {
            key,
            value: value.map(Bytes::from),
        })
}

fn arb_record() -> impl Strategy<Value = Rec> {
    (
        -1_000_000i64..1_000_000,
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
        proptest::collection::vec(arb_header(), 0..4),
    )
}

fn arb_codec() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        Just(Compression::Gzip),
        Just(Compression::Snappy),
        Just(Compression::Lz4),
        Just(Compression::Zstd),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn prop_round_trip(
        c in arb_codec(),
        recs in proptest::collection::vec(arb_record(), 1..30),
        base_offset in 0i64..1_000_000_000_000,
        append_time in proptest::option::of(0i64..i64::MAX / 2),
    ) {
        let batch = build(c, &recs);
        let mut m = batch.to_vec();
        set_base_offset(&mut m, base_offset);
        if let Some(t) = append_time {
            set_log_append_time(&mut m, t);
        }
        let h = validate_batch(&m).unwrap();
        prop_assert_eq!(h.last_offset(), base_offset + recs.len() as i64 - 1);
        let (_, decoded) = decode_records(&Bytes::from(m), 1 << 22).unwrap();
        prop_assert_eq!(decoded.len(), recs.len());
        for (i, ((ts, k, v, hs), r)) in recs.iter().zip(&decoded).enumerate() {
            prop_assert_eq!(r.offset, base_offset + i as i64);
            prop_assert_eq!(r.timestamp, append_time.unwrap_or(*ts));
            prop_assert_eq!(r.key.as_deref(), k.as_deref());
            prop_assert_eq!(r.value.as_deref(), v.as_deref());
            prop_assert_eq!(&r.headers, hs);
        }
    }

    #[test]
    fn prop_garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        for (_, range) in BatchIter::new(&data).flatten() {
            let b = Bytes::copy_from_slice(&data[range]);
            let _ = decode_records(&b, 1 << 16);
        }
        let _ = decode_records(&Bytes::from(data), 1 << 16);
    }

    #[test]
    fn prop_codecs_round_trip(c in arb_codec(), data in proptest::collection::vec(any::<u8>(), 0..5000)) {
        let z = compress(c, &data).unwrap();
        prop_assert_eq!(decompress(c, &z, data.len()).unwrap(), data);
    }
}
