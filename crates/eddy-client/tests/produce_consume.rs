//! Producer and consumer against a real `eddy broker`.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use eddy_client::partitioner::partition_for_key;
use eddy_client::{
    Acks, AutoOffsetReset, Compression, Consumer, ConsumerRecord, ErrorCode, Header, NewTopic,
    Producer, ProducerRecord, StartOffset, TimestampType,
};
use eddy_protocol::ApiKey;

use common::{poll_n, Broker};

fn test_record(i: usize) -> ProducerRecord {
    // Binary, non-UTF-8 values, repeated and null headers, explicit timestamps.
    let mut value: Vec<u8> = (0..(i % 50)).map(|j| (i * 31 + j * 7) as u8).collect();
    value.push(0xff);
    let mut r = ProducerRecord::new("keyed", value)
        .key(format!("key-{}", i % 37))
        .timestamp(1_600_000_000_000 + i as i64)
        .header("n", Some(Bytes::from(i.to_string())))
        .header("null", None)
        .header("n", Some(Bytes::from_static(b"dup")));
    if i.is_multiple_of(17) {
        r.value = None; // tombstone
    }
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_records_land_on_murmur2_partitions_and_round_trip() {
    let broker = Broker::start();
    broker
        .admin()
        .create_topic(NewTopic::new("keyed", 4), false)
        .await
        .unwrap();
    let producer = Producer::new(broker.producer_config()).unwrap();
    let sent: Vec<ProducerRecord> = (0..300).map(test_record).collect();
    let mut futs = Vec::new();
    for r in &sent {
        futs.push(producer.send(r.clone()).await.expect("queued"));
    }
    let mut expected: BTreeMap<i32, Vec<(i64, ProducerRecord)>> = BTreeMap::new();
    for (r, f) in sent.iter().zip(futs) {
        let md = f.await.expect("delivered");
        let key = r.key.as_ref().unwrap();
        assert_eq!(
            md.partition,
            partition_for_key(key, 4),
            "partition of key {key:?}"
        );
        assert_eq!(md.topic, "keyed");
        assert_eq!(md.timestamp, r.timestamp.unwrap());
        expected
            .entry(md.partition)
            .or_default()
            .push((md.offset, r.clone()));
    }
    // Offsets of each partition are 0..n in send order.
    for recs in expected.values() {
        let offsets: Vec<i64> = recs.iter().map(|(o, _)| *o).collect();
        assert_eq!(offsets, (0..recs.len() as i64).collect::<Vec<_>>());
    }
    assert!(expected.len() > 1, "37 keys should use several partitions");

    let mut consumer = Consumer::new(broker.consumer_config()).unwrap();
    consumer
        .assign_topic("keyed", StartOffset::Earliest)
        .await
        .unwrap();
    let got = poll_n(&mut consumer, sent.len()).await;
    let mut by_partition: BTreeMap<i32, Vec<ConsumerRecord>> = BTreeMap::new();
    for r in got {
        by_partition.entry(r.partition).or_default().push(r);
    }
    assert_eq!(
        by_partition.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (p, recs) in &by_partition {
        let exp = &expected[p];
        assert_eq!(recs.len(), exp.len());
        for (r, (offset, e)) in recs.iter().zip(exp) {
            assert_eq!(r.topic, "keyed");
            assert_eq!(r.offset, *offset);
            assert_eq!(r.key, e.key);
            assert_eq!(r.value, e.value);
            assert_eq!(r.headers, e.headers);
            assert_eq!(r.timestamp, e.timestamp.unwrap());
            assert_eq!(r.timestamp_type, TimestampType::CreateTime);
        }
        assert_eq!(consumer.position("keyed", *p), Some(exp.len() as i64));
        assert_eq!(consumer.high_watermark("keyed", *p), Some(exp.len() as i64));
    }
    // Nothing more to read.
    assert!(consumer
        .poll(Duration::from_millis(300))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_compression_codec_round_trips() {
    let broker = Broker::start();
    let admin = broker.admin();
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let topic = format!("codec-{codec}");
        admin
            .create_topic(NewTopic::new(&topic, 1), false)
            .await
            .unwrap();
        let mut cfg = broker.producer_config();
        cfg.compression = codec;
        cfg.linger = Duration::from_millis(20);
        let producer = Producer::new(cfg).unwrap();
        let values: Vec<String> = (0..500)
            .map(|i| format!("{codec} value {i} {}", "x".repeat(i % 40)))
            .collect();
        let futs: Vec<_> = values
            .iter()
            .map(|v| {
                producer
                    .try_send(ProducerRecord::new(&topic, v.clone()))
                    .unwrap()
            })
            .collect();
        for f in futs {
            f.await.unwrap_or_else(|e| panic!("{codec}: {e}"));
        }
        let mut consumer = Consumer::new(broker.consumer_config()).unwrap();
        consumer
            .assign(vec![(topic.clone(), 0, StartOffset::Earliest)])
            .await
            .unwrap();
        let got = poll_n(&mut consumer, values.len()).await;
        let got: Vec<String> = got
            .into_iter()
            .map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap())
            .collect();
        assert_eq!(got, values, "{codec}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unkeyed_records_stick_to_one_partition_per_batch() {
    let broker = Broker::start();
    broker
        .admin()
        .create_topic(NewTopic::new("sticky", 3), false)
        .await
        .unwrap();
    let mut cfg = broker.producer_config();
    cfg.linger = Duration::from_millis(200);
    let producer = Producer::new(cfg).unwrap();
    // Warm the metadata so all records are batched together.
    producer
        .send(ProducerRecord::new("sticky", "warm-up"))
        .await
        .unwrap()
        .await
        .unwrap();
    let futs: Vec<_> = (0..20)
        .map(|i| {
            producer
                .try_send(ProducerRecord::new("sticky", format!("v{i}")))
                .unwrap()
        })
        .collect();
    let mut partitions = Vec::new();
    let mut offsets = Vec::new();
    for f in futs {
        let md = f.await.unwrap();
        partitions.push(md.partition);
        offsets.push(md.offset);
    }
    assert!(
        partitions.iter().all(|p| *p == partitions[0]),
        "{partitions:?}"
    );
    assert!(offsets.windows(2).all(|w| w[1] == w[0] + 1), "{offsets:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_zero_and_one() {
    let broker = Broker::start();
    broker
        .admin()
        .create_topic(NewTopic::new("acks", 1), false)
        .await
        .unwrap();
    for (acks, n) in [(Acks::None, 5), (Acks::Leader, 5)] {
        let mut cfg = broker.producer_config();
        cfg.acks = acks;
        let producer = Producer::new(cfg).unwrap();
        let futs: Vec<_> = (0..n)
            .map(|i| {
                producer
                    .try_send(ProducerRecord::new("acks", format!("{acks:?}{i}")))
                    .unwrap()
            })
            .collect();
        for f in futs {
            let md = f.await.unwrap();
            if acks == Acks::None {
                assert_eq!(md.offset, -1);
            } else {
                assert!(md.offset >= 0);
            }
        }
        producer.flush().await;
    }
    let mut consumer = Consumer::new(broker.consumer_config()).unwrap();
    consumer
        .assign(vec![("acks".into(), 0, StartOffset::Earliest)])
        .await
        .unwrap();
    let got = poll_n(&mut consumer, 10).await;
    assert_eq!(got[0].value.as_deref(), Some(&b"None0"[..]));
    assert_eq!(got[9].value.as_deref(), Some(&b"Leader4"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_start_positions_and_offset_reset() {
    let broker = Broker::start();
    broker
        .admin()
        .create_topic(NewTopic::new("pos", 1), false)
        .await
        .unwrap();
    let producer = Producer::new(broker.producer_config()).unwrap();
    let send_range = |range: std::ops::Range<i64>| {
        let futs: Vec<_> = range
            .map(|i| {
                producer
                    .try_send(
                        ProducerRecord::new("pos", format!("v{i}"))
                            .partition(0)
                            .timestamp(10_000 + i),
                    )
                    .unwrap()
            })
            .collect();
        async move {
            for f in futs {
                f.await.unwrap();
            }
        }
    };
    send_range(0..10).await;

    let mut c = Consumer::new(broker.consumer_config()).unwrap();
    // Latest: only records produced after the assignment.
    c.assign(vec![("pos".into(), 0, StartOffset::Latest)])
        .await
        .unwrap();
    assert_eq!(c.position("pos", 0), Some(10));
    assert!(c.poll(Duration::from_millis(200)).await.unwrap().is_empty());
    send_range(10..12).await;
    let got = poll_n(&mut c, 2).await;
    assert_eq!(
        got.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![10, 11]
    );

    // A given offset, in the middle of a batch.
    c.seek("pos", 0, StartOffset::Offset(3)).await.unwrap();
    let got = poll_n(&mut c, 9).await;
    assert_eq!(got[0].offset, 3);
    assert_eq!(got[0].value.as_deref(), Some(&b"v3"[..]));

    // By timestamp.
    c.seek("pos", 0, StartOffset::Timestamp(10_007))
        .await
        .unwrap();
    assert_eq!(c.position("pos", 0), Some(7));
    // A timestamp after every record starts at the end.
    c.seek("pos", 0, StartOffset::Timestamp(99_999))
        .await
        .unwrap();
    assert_eq!(c.position("pos", 0), Some(12));

    // Out of range: reset per auto.offset.reset.
    let mut cfg = broker.consumer_config();
    cfg.auto_offset_reset = AutoOffsetReset::Earliest;
    let mut c = Consumer::new(cfg).unwrap();
    c.assign(vec![("pos".into(), 0, StartOffset::Offset(1000))])
        .await
        .unwrap();
    let got = poll_n(&mut c, 12).await;
    assert_eq!(got[0].offset, 0);

    let mut cfg = broker.consumer_config();
    cfg.auto_offset_reset = AutoOffsetReset::None;
    let mut c = Consumer::new(cfg).unwrap();
    c.assign(vec![("pos".into(), 0, StartOffset::Offset(1000))])
        .await
        .unwrap();
    let err = c.poll(Duration::from_secs(2)).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::OffsetOutOfRange), "{err}");
}

/// The oldest versions this client implements (Produce v3, Fetch v4 without
/// topic ids, Metadata v1, ListOffsets v1...) still work end to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oldest_supported_versions_round_trip() {
    let broker = Broker::start();
    broker
        .admin()
        .create_topic(NewTopic::new("old", 2), false)
        .await
        .unwrap();
    let caps = vec![
        (ApiKey::Produce, 3),
        (ApiKey::Fetch, 4),
        (ApiKey::Metadata, 1),
        (ApiKey::ListOffsets, 1),
        (ApiKey::ApiVersions, 0),
    ];
    let mut pcfg = broker.producer_config();
    pcfg.common.version_caps = caps.clone();
    let producer = Producer::new(pcfg).unwrap();
    let futs: Vec<_> = (0..50)
        .map(|i| {
            producer
                .try_send(
                    ProducerRecord::new("old", format!("v{i}"))
                        .key(format!("k{i}"))
                        .header("h", Some(Bytes::from_static(b"x"))),
                )
                .unwrap()
        })
        .collect();
    for f in futs {
        let md = f.await.unwrap();
        assert!(md.offset >= 0);
    }
    let mut ccfg = broker.consumer_config();
    ccfg.common.version_caps = caps;
    let mut c = Consumer::new(ccfg).unwrap();
    c.assign_topic("old", StartOffset::Earliest).await.unwrap();
    let got = poll_n(&mut c, 50).await;
    for r in &got {
        let i: usize = std::str::from_utf8(&r.value.clone().unwrap()[1..])
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(r.key.as_deref(), Some(format!("k{i}").as_bytes()));
        assert_eq!(
            r.partition,
            partition_for_key(format!("k{i}").as_bytes(), 2)
        );
        assert_eq!(
            r.headers,
            vec![Header {
                key: "h".into(),
                value: Some(Bytes::from_static(b"x"))
            }]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producing_to_a_missing_topic_fails_without_auto_create() {
    let broker = Broker::start_with(&["auto.create.topics.enable=false"]);
    let mut cfg = broker.producer_config();
    cfg.max_block = Duration::from_millis(700);
    cfg.delivery_timeout = Duration::from_millis(1500);
    let producer = Producer::new(cfg).unwrap();
    // send waits max.block.ms for the metadata (Java's behaviour), then names the topic.
    let start = Instant::now();
    let err = producer
        .send(ProducerRecord::new("nope", "v"))
        .await
        .unwrap_err();
    assert!(start.elapsed() >= Duration::from_millis(700), "{err}");
    assert!(
        matches!(err, eddy_client::ClientError::MetadataTimeout { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "topic 'nope' not present in metadata after 700 ms: topic 'nope' does not exist (UNKNOWN_TOPIC_OR_PARTITION)"
    );
    // try_send queues the record; delivery.timeout.ms bounds its wait for metadata.
    let start = Instant::now();
    let err = producer
        .try_send(ProducerRecord::new("nope", "v"))
        .unwrap()
        .await
        .unwrap_err();
    assert!(start.elapsed() >= Duration::from_millis(1500), "{err}");
    assert!(err.to_string().contains("topic 'nope'"), "{err}");
    assert!(err.to_string().contains("1500 ms"), "{err}");
    // An explicit partition beyond the topic's partitions fails.
    broker
        .admin()
        .create_topic(NewTopic::new("one", 1), false)
        .await
        .unwrap();
    let err = producer
        .send(ProducerRecord::new("one", "v").partition(3))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(ErrorCode::UnknownTopicOrPartition),
        "{err}"
    );
    // A record over max.request.size is refused before sending.
    let err = producer
        .send(ProducerRecord::new("one", vec![0u8; 2 << 20]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::MessageTooLarge), "{err}");
    producer
        .send(ProducerRecord::new("one", "ok"))
        .await
        .unwrap()
        .await
        .unwrap();
}
