//! The producer of issue 4 against a real `eddy broker`: idempotence with
//! several requests in flight, buffer.memory back-pressure, partitioners and
//! the callback form.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eddy_client::{
    ClientConfig, ClientError, Consumer, NewTopic, PartitionerChoice, Producer, ProducerConfig,
    ProducerRecord, StartOffset, TopicInfo,
};
use eddy_protocol::records::BatchIter;

use common::Broker;

/// Reads every record of `topic`'s partitions until `n` arrived.
async fn consume_all(
    broker: &Broker,
    topic: &str,
    partitions: i32,
    n: usize,
) -> Vec<eddy_client::ConsumerRecord> {
    let mut consumer = Consumer::new(broker.consumer_config()).unwrap();
    consumer
        .assign(
            (0..partitions)
                .map(|p| (topic.to_string(), p, StartOffset::Earliest))
                .collect(),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} records",
            out.len()
        );
        out.extend(consumer.poll(Duration::from_millis(300)).await.unwrap());
    }
    assert_eq!(out.len(), n, "more records than produced");
    out
}

/// (producer id, epoch, base sequence, record count) of every batch stored in
/// the partition's first segment.
fn stored_batches(broker: &Broker, topic: &str, partition: i32) -> Vec<(i64, i16, i32, i32)> {
    let path = broker
        .data_dir()
        .join(format!("{topic}-{partition}"))
        .join(format!("{:020}.log", 0));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    BatchIter::new(&bytes)
        .map(|b| {
            let (h, _) = b.expect("valid stored batch");
            (
                h.producer_id,
                h.producer_epoch,
                h.base_sequence,
                h.records_count,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_keeps_order_with_five_requests_in_flight() {
    let broker = Broker::start();
    broker
        .admin()
        .create_topic(NewTopic::new("idem", 3), false)
        .await
        .unwrap();
    let mut cfg = broker.producer_config();
    // Small batches and no linger: many batches of each partition in flight.
    cfg.batch_size = 512;
    cfg.linger = Duration::ZERO;
    assert_eq!(cfg.max_in_flight, 5);
    let producer = Producer::new(cfg).unwrap();
    assert!(producer.is_idempotent(), "idempotence is on by default");
    let n = 6000;
    let mut futs = Vec::new();
    for i in 0..n {
        let p = i % 3;
        let r = ProducerRecord::new("idem", format!("{p}:{i:06}")).partition(p as i32);
        futs.push(producer.send(r).await.unwrap());
    }
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for f in futs {
        let md = f.await.expect("delivered");
        // Acknowledged in send order within a partition.
        let prev = last.insert(md.partition, md.offset);
        assert!(
            prev.is_none_or(|o| md.offset == o + 1),
            "{md:?} after {prev:?}"
        );
    }
    let (pid, epoch) = producer.producer_id().expect("InitProducerId done");
    assert!(pid >= 0);
    assert_eq!(epoch, 0);
    // Stored in send order, each value once.
    let got = consume_all(&broker, "idem", 3, n).await;
    for p in 0..3 {
        let values: Vec<String> = got
            .iter()
            .filter(|r| r.partition == p)
            .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
            .collect();
        let want: Vec<String> = (0..n)
            .filter(|i| (i % 3) as i32 == p)
            .map(|i| format!("{p}:{i:06}"))
            .collect();
        assert_eq!(values, want, "partition {p}");
        // Every batch carries the producer id and epoch, with contiguous sequences from 0.
        let batches = stored_batches(&broker, "idem", p);
        assert!(batches.len() > 10, "{} batches", batches.len());
        let mut next = 0;
        for (id, e, seq, count) in batches {
            assert_eq!((id, e), (pid, epoch));
            assert_eq!(seq, next, "sequence of partition {p}");
            next += count;
        }
        assert_eq!(next as usize, want.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_idempotent_producer_sends_no_producer_id() {
    let broker = Broker::start();
    broker
        .admin()
        .create_topic(NewTopic::new("plain", 1), false)
        .await
        .unwrap();
    let props = ClientConfig::new()
        .set("bootstrap.servers", broker.addr())
        .set("acks", "1");
    let producer = Producer::new(ProducerConfig::from_config(&props).unwrap()).unwrap();
    assert!(!producer.is_idempotent(), "acks=1 disables it silently");
    for i in 0..3 {
        producer
            .send(ProducerRecord::new("plain", format!("v{i}")))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    assert_eq!(producer.producer_id(), None);
    for (id, epoch, seq, _) in stored_batches(&broker, "plain", 0) {
        assert_eq!((id, epoch, seq), (-1, -1, -1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_buffer_makes_send_wait_max_block_then_fail() {
    // Nothing listens on port 1: no metadata, no delivery; records pile up.
    let mut cfg = ProducerConfig::new("127.0.0.1:1");
    cfg.buffer_memory = 2000;
    cfg.max_block = Duration::from_millis(600);
    let producer = Producer::new(cfg).unwrap();
    let record = || ProducerRecord::new("t", vec![7u8; 100]);
    let mut queued = Vec::new();
    let err = loop {
        match producer.try_send(record()) {
            Ok(f) => queued.push(f),
            Err(e) => break e,
        }
        assert!(queued.len() < 100, "buffer.memory is not enforced");
    };
    assert!(
        matches!(err, ClientError::BufferFull { waited, .. } if waited.is_zero()),
        "{err:?}"
    );
    // 2000 bytes hold 14 records of ~140 estimated bytes.
    assert_eq!(queued.len(), 14);
    let start = Instant::now();
    let err = producer.send(record()).await.unwrap_err();
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(600), "waited {waited:?}");
    assert!(matches!(err, ClientError::BufferFull { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("buffer.memory (2000 bytes)"), "{msg}");
    assert!(msg.contains("max.block.ms"), "{msg}");
    // The callback form fails the same way and never calls the callback.
    let called = Arc::new(Mutex::new(false));
    let flag = called.clone();
    let err = producer
        .send_with_callback(record(), move |_| *flag.lock().unwrap() = true)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::BufferFull { .. }), "{err:?}");
    assert!(!*called.lock().unwrap());
    // A record larger than buffer.memory can never fit: refused at once.
    let err = producer
        .send(ProducerRecord::new("t", vec![0u8; 3000]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("buffer.memory"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffer_room_frees_up_as_records_are_delivered() {
    let broker = Broker::start();
    broker
        .admin()
        .create_topic(NewTopic::new("small", 1), false)
        .await
        .unwrap();
    let mut cfg = broker.producer_config();
    cfg.buffer_memory = 4096;
    cfg.batch_size = 1024;
    let producer = Producer::new(cfg).unwrap();
    // 500 records of ~140 bytes go through a 4 KB buffer: send waits for room.
    let mut futs = Vec::new();
    for i in 0..500 {
        futs.push(
            producer
                .send(ProducerRecord::new("small", format!("{i:0100}")))
                .await
                .unwrap(),
        );
    }
    for (i, f) in futs.into_iter().enumerate() {
        assert_eq!(f.await.unwrap().offset, i as i64);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_and_custom_partitioners_place_records() {
    let broker = Broker::start();
    broker
        .admin()
        .create_topic(NewTopic::new("rr", 4), false)
        .await
        .unwrap();
    for class in [
        "round_robin",
        "org.apache.kafka.clients.producer.RoundRobinPartitioner",
    ] {
        let props = ClientConfig::new()
            .set("bootstrap.servers", broker.addr())
            .set("partitioner.class", class);
        let producer = Producer::new(ProducerConfig::from_config(&props).unwrap()).unwrap();
        let mut parts = Vec::new();
        for _ in 0..8 {
            // Same key every time: keys are ignored.
            let md = producer
                .send(ProducerRecord::new("rr", "v").key("same"))
                .await
                .unwrap()
                .await
                .unwrap();
            parts.push(md.partition);
        }
        assert_eq!(parts, vec![0, 1, 2, 3, 0, 1, 2, 3], "{class}");
    }
    // A partitioner of our own: the value's first digit.
    let mut cfg = broker.producer_config();
    cfg.partitioner =
        PartitionerChoice::custom(|t: &TopicInfo, _key: Option<&[u8]>, value: Option<&[u8]>| {
            let d = value
                .and_then(|v| v.first())
                .map_or(0, |c| i32::from(c - b'0'));
            d % t.partitions.len() as i32
        });
    let producer = Producer::new(cfg).unwrap();
    for v in ["3a", "1b", "2c", "0d", "7e"] {
        let md = producer
            .send(ProducerRecord::new("rr", v))
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(md.partition, i32::from(v.as_bytes()[0] - b'0') % 4, "{v}");
    }
    // An explicit partition wins over the partitioner.
    let md = producer
        .send(ProducerRecord::new("rr", "3x").partition(0))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(md.partition, 0);
    // A partition out of range is an error, not a panic.
    let mut cfg = broker.producer_config();
    cfg.partitioner =
        PartitionerChoice::custom(|_: &TopicInfo, _: Option<&[u8]>, _: Option<&[u8]>| 9);
    let producer = Producer::new(cfg).unwrap();
    let err = producer
        .send(ProducerRecord::new("rr", "v"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("partition 9"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_report_every_record_in_partition_order() {
    let broker = Broker::start();
    broker
        .admin()
        .create_topic(NewTopic::new("cb", 2), false)
        .await
        .unwrap();
    let producer = Producer::new(broker.producer_config()).unwrap();
    type Seen = Vec<(usize, Result<eddy_client::RecordMetadata, ClientError>)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    for i in 0..400usize {
        let seen = seen.clone();
        producer
            .send_with_callback(
                ProducerRecord::new("cb", format!("v{i}")).partition((i % 2) as i32),
                move |r| seen.lock().unwrap().push((i, r)),
            )
            .await
            .unwrap();
    }
    producer.flush().await;
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(seen.len(), 400);
    let mut by_partition: BTreeMap<i32, Vec<(usize, i64)>> = BTreeMap::new();
    for (i, r) in seen {
        let md = r.expect("delivered");
        assert_eq!(md.partition, (i % 2) as i32);
        by_partition
            .entry(md.partition)
            .or_default()
            .push((i, md.offset));
    }
    for (p, calls) in by_partition {
        // Called in send order, with consecutive offsets.
        for (k, (i, offset)) in calls.iter().enumerate() {
            assert_eq!(*i, 2 * k + p as usize, "partition {p}");
            assert_eq!(*offset, k as i64, "partition {p}");
        }
    }
    // A panicking callback does not stop the producer.
    producer
        .send_with_callback(ProducerRecord::new("cb", "boom").partition(0), |_| {
            panic!("callback panic (expected by the test)")
        })
        .await
        .unwrap();
    let md = producer
        .send(ProducerRecord::new("cb", "after").partition(0))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(md.offset, 201);
    // A failure reaches the callback too.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut cfg = broker.producer_config();
    cfg.max_request_size = 100_000;
    let small = Producer::new(cfg).unwrap();
    let err = small
        .send_with_callback(ProducerRecord::new("cb", vec![0u8; 200_000]), move |r| {
            let _ = tx.send(r);
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("max.request.size"), "{err}");
    assert!(
        rx.await.is_err(),
        "the callback of a refused record is dropped uncalled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_explicit_idempotence_is_a_config_error() {
    let base = || ClientConfig::new().set("bootstrap.servers", "127.0.0.1:9092");
    let err =
        ProducerConfig::from_config(&base().set("enable.idempotence", "true").set("acks", "1"))
            .unwrap_err();
    assert!(err.to_string().contains("acks"), "{err}");
    // The typed configuration is checked by Producer::new as well.
    let mut cfg = ProducerConfig::new("127.0.0.1:9092");
    cfg.enable_idempotence = Some(true);
    cfg.max_in_flight = 6;
    let err = Producer::new(cfg).unwrap_err();
    assert!(
        err.to_string()
            .contains("max.in.flight.requests.per.connection"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lingering_last_batch_leaves_without_flush() {
    let broker = Broker::start();
    broker
        .admin()
        .create_topic(NewTopic::new("tail", 1), false)
        .await
        .unwrap();
    let mut cfg = broker.producer_config();
    // One request at a time and small batches: full batches queue up behind
    // the one in flight, and the last, partly filled batch must still leave
    // once its linger.ms is over (well before delivery.timeout.ms).
    cfg.max_in_flight = 1;
    cfg.batch_size = 300;
    cfg.linger = Duration::from_millis(30);
    cfg.delivery_timeout = Duration::from_secs(120);
    let producer = Producer::new(cfg).unwrap();
    let mut futs = Vec::new();
    for i in 0..1001 {
        futs.push(
            producer
                .send(ProducerRecord::new("tail", format!("{i:040}")))
                .await
                .unwrap(),
        );
    }
    for (i, f) in futs.into_iter().enumerate() {
        let md = tokio::time::timeout(Duration::from_secs(30), f)
            .await
            .unwrap_or_else(|_| panic!("record {i} stuck in the accumulator"))
            .unwrap();
        assert_eq!(md.offset, i as i64);
    }
}
