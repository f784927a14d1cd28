//! Produce with librdkafka (every compression codec, keys, headers, null and
//! empty values), consume back byte for byte; ListOffsets and watermarks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use rdkafka::consumer::Consumer;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, Timestamp, TopicPartitionList};

use crate::common::{block_on, headers_of, Broker, Rng, OP_TIMEOUT};

type HeaderList = Vec<(String, Option<Vec<u8>>)>;

/// One record to produce, and what the broker acknowledged for it.
#[derive(Clone, Debug)]
struct Spec {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: HeaderList,
    partition: Option<i32>,
    timestamp: Option<i64>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

fn to_owned_headers(h: &HeaderList) -> Option<OwnedHeaders> {
    if h.is_empty() {
        return None;
    }
    let mut out = OwnedHeaders::new();
    for (k, v) in h {
        out = out.insert(Header {
            key: k,
            value: v.as_deref(),
        });
    }
    Some(out)
}

/// A varied set of records: keyed/unkeyed, null/empty/compressible/random
/// values, duplicate header keys, null and empty header values, explicit
/// partitions (when `partitions > 1`) and one large record.
fn record_specs(seed: u64, partitions: i32) -> Vec<Spec> {
    let mut rng = Rng::new(seed);
    let mut specs = Vec::new();
    for i in 0..48u64 {
        let key = match i % 8 {
            0..=4 => Some(format!("key-{}", i % 7).into_bytes()),
            5 => None,
            6 => Some(Vec::new()),
            _ => Some(rng.bytes(16)),
        };
        let value = match i % 5 {
            0 => Some(format!("compressible value {i} ").repeat(100).into_bytes()),
            1 => {
                let n = 1 + (rng.next_u64() % 600) as usize;
                Some(rng.bytes(n))
            }
            2 => Some(Vec::new()),
            3 => None,
            _ => Some(vec![0u8, 255, 0, 1, 2, 3, 0]),
        };
        let headers: HeaderList = match i % 4 {
            0 => Vec::new(),
            1 => vec![
                ("a".into(), Some(b"1".to_vec())),
                ("dup".into(), Some(b"first".to_vec())),
                ("dup".into(), Some(b"second".to_vec())),
            ],
            2 => vec![
                ("nullh".into(), None),
                ("empty".into(), Some(Vec::new())),
                ("bin".into(), Some(rng.bytes(24))),
                ("nullh".into(), None),
            ],
            _ => vec![("ünïcødé-key".into(), Some("välue".as_bytes().to_vec()))],
        };
        let partition = if partitions > 1 && i % 6 == 5 {
            Some((i as i32) % partitions)
        } else {
            None
        };
        specs.push(Spec {
            key,
            value,
            headers,
            partition,
            timestamp: None,
        });
    }
    // One large, incompressible record.
    specs.push(Spec {
        key: Some(b"large".to_vec()),
        value: Some(rng.bytes(200_000)),
        headers: vec![("size".into(), Some(b"200000".to_vec()))],
        partition: None,
        timestamp: None,
    });
    specs
}

fn producer(broker: &Broker, codec: &str) -> FutureProducer {
    broker
        .producer_config()
        .set("compression.type", codec)
        .set("linger.ms", "5")
        .create()
        .expect("create producer")
}

/// Produces all `specs` to `topic` (enqueued together so they get batched)
/// and returns, per spec, the acknowledged (partition, offset).
fn produce_all(p: &FutureProducer, topic: &str, specs: &[Spec]) -> Vec<(i32, i64)> {
    block_on(async {
        let mut futures = Vec::new();
        for s in specs {
            let mut rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic);
            rec.key = s.key.as_deref();
            rec.payload = s.value.as_deref();
            rec.partition = s.partition;
            rec.timestamp = s.timestamp;
            rec.headers = to_owned_headers(&s.headers);
            match p.send_result(rec) {
                Ok(f) => futures.push(f),
                Err((e, _)) => panic!("enqueue to {topic} failed: {e}"),
            }
        }
        let mut acks = Vec::new();
        for (i, f) in futures.into_iter().enumerate() {
            match f.await.expect("delivery future cancelled") {
                Ok(d) => acks.push((d.partition, d.offset)),
                Err((e, _)) => panic!("record {i} to {topic} not delivered: {e}"),
            }
        }
        acks
    })
}

/// Checks that every partition holds a dense offset range starting at 0.
fn assert_dense(topic: &str, by_part: &BTreeMap<i32, Vec<OwnedMessage>>) {
    for (p, msgs) in by_part {
        let offsets: Vec<i64> = msgs.iter().map(|m| m.offset()).collect();
        let expected: Vec<i64> = (0..msgs.len() as i64).collect();
        assert_eq!(
            offsets, expected,
            "{topic}/{p}: offsets are not dense from 0"
        );
    }
}

fn assert_same_record(what: &str, spec: &Spec, m: &OwnedMessage) {
    assert_eq!(m.key(), spec.key.as_deref(), "{what}: key differs");
    assert_eq!(m.payload(), spec.value.as_deref(), "{what}: value differs");
    assert_eq!(headers_of(m), spec.headers, "{what}: headers differ");
}

/// Round trip through topics of 1 and 6 partitions with one codec.
fn roundtrip(codec: &str) {
    let broker = Broker::start();
    let t1 = format!("rt-{codec}-p1");
    let t6 = format!("rt-{codec}-p6");
    broker.create_topics(&[(&t1, 1), (&t6, 6)]);
    assert_eq!(broker.partition_count(&t1), Some(1));
    assert_eq!(broker.partition_count(&t6), Some(6));

    let started = now_ms();
    let prod = producer(&broker, codec);
    for (topic, parts, seed) in [(&t1, 1, 1u64), (&t6, 6, 6u64)] {
        let specs = record_specs(seed, parts);
        let acks = produce_all(&prod, topic, &specs);

        // Explicit partitions are honoured, and one key always maps to one partition.
        let mut key_parts: HashMap<Vec<u8>, BTreeSet<i32>> = HashMap::new();
        for (s, (p, _)) in specs.iter().zip(&acks) {
            assert!((0..parts).contains(p), "{topic}: ack for partition {p}");
            if let Some(want) = s.partition {
                assert_eq!(*p, want, "{topic}: record sent to {want} acked on {p}");
            } else if let Some(k) = s.key.as_ref().filter(|k| !k.is_empty()) {
                key_parts.entry(k.clone()).or_default().insert(*p);
            }
        }
        for (k, ps) in &key_parts {
            assert_eq!(
                ps.len(),
                1,
                "{topic}: key {k:?} landed on partitions {ps:?}"
            );
        }
        if parts > 1 {
            let used: BTreeSet<i32> = acks.iter().map(|(p, _)| *p).collect();
            assert!(
                used.len() > 1,
                "{topic}: all records on one partition: {used:?}"
            );
        }

        let all: Vec<i32> = (0..parts).collect();
        let by_part = broker.consume_by_partition(topic, &all);
        assert_dense(topic, &by_part);
        let total: usize = by_part.values().map(Vec::len).sum();
        assert_eq!(total, specs.len(), "{topic}: record count");

        for (i, (s, (p, off))) in specs.iter().zip(&acks).enumerate() {
            let m = by_part
                .get(p)
                .and_then(|v| v.get(*off as usize))
                .unwrap_or_else(|| panic!("{topic}: acked record {i} at {p}/{off} missing"));
            assert_same_record(&format!("{topic} record {i} at {p}/{off} ({codec})"), s, m);
            match m.timestamp() {
                Timestamp::CreateTime(ts) => assert!(
                    ts >= started - 60_000 && ts <= now_ms() + 60_000,
                    "{topic}: implausible CreateTime {ts}"
                ),
                other => panic!("{topic}: expected CreateTime, got {other:?}"),
            }
        }
        for p in &all {
            let n = by_part.get(p).map_or(0, Vec::len) as i64;
            assert_eq!(
                broker.watermarks(topic, *p),
                (0, n),
                "{topic}/{p} watermarks"
            );
        }
    }
}

#[test]
fn roundtrip_uncompressed() {
    roundtrip("none");
}

#[test]
fn roundtrip_gzip() {
    roundtrip("gzip");
}

#[test]
fn roundtrip_snappy() {
    roundtrip("snappy");
}

#[test]
fn roundtrip_lz4() {
    roundtrip("lz4");
}

#[test]
fn roundtrip_zstd() {
    roundtrip("zstd");
}

/// Batches of every codec interleaved in one partition read back in order.
#[test]
fn mixed_codecs_in_one_partition() {
    let broker = Broker::start();
    let topic = "mixed-codecs";
    broker.create_topics(&[(topic, 1)]);
    let mut expected: Vec<Spec> = Vec::new();
    let mut acked: Vec<(i32, i64)> = Vec::new();
    for round in 0..2u64 {
        for (ci, codec) in ["none", "gzip", "snappy", "lz4", "zstd"].iter().enumerate() {
            let prod = producer(&broker, codec);
            let specs: Vec<Spec> = (0..20u64)
                .map(|i| Spec {
                    key: Some(format!("{codec}-{round}-{i}").into_bytes()),
                    value: Some(
                        format!("{codec} round {round} record {i} ")
                            .repeat(8)
                            .into_bytes(),
                    ),
                    headers: vec![("codec".into(), Some(codec.as_bytes().to_vec()))],
                    partition: Some(0),
                    timestamp: None,
                })
                .collect();
            let acks = produce_all(&prod, topic, &specs);
            for (s, a) in specs.into_iter().zip(acks) {
                expected.push(s);
                acked.push(a);
            }
            assert_eq!(acked.len(), (round as usize * 5 + ci + 1) * 20);
        }
    }
    let by_part = broker.consume_by_partition(topic, &[0]);
    assert_dense(topic, &by_part);
    let msgs = &by_part[&0];
    assert_eq!(msgs.len(), expected.len());
    for (i, (s, (_, off))) in expected.iter().zip(&acked).enumerate() {
        assert_same_record(&format!("record {i}"), s, &msgs[*off as usize]);
    }
}

/// ListOffsets by timestamp (offsets_for_times) and earliest/latest
/// (watermarks), including timestamps that are not monotonic.
#[test]
fn list_offsets_by_timestamp_and_watermarks() {
    let broker = Broker::start();
    let topic = "ts-offsets";
    broker.create_topics(&[(topic, 2)]);
    let base = now_ms() - 3_600_000;
    let prod = producer(&broker, "none");

    // Partition 0: increasing timestamps base, base+1000, ... base+9000.
    let inc: Vec<Spec> = (0..10)
        .map(|i| Spec {
            key: None,
            value: Some(format!("inc-{i}").into_bytes()),
            headers: Vec::new(),
            partition: Some(0),
            timestamp: Some(base + i * 1000),
        })
        .collect();
    // Partition 1: out-of-order timestamps.
    let ooo_ts = [5000, 1000, 9000, 3000, 7000];
    let ooo: Vec<Spec> = ooo_ts
        .iter()
        .enumerate()
        .map(|(i, d)| Spec {
            key: None,
            value: Some(format!("ooo-{i}").into_bytes()),
            headers: Vec::new(),
            partition: Some(1),
            timestamp: Some(base + d),
        })
        .collect();
    let a0 = produce_all(&prod, topic, &inc);
    let a1 = produce_all(&prod, topic, &ooo);
    assert_eq!(a0, (0..10).map(|o| (0, o)).collect::<Vec<_>>());
    assert_eq!(a1, (0..5).map(|o| (1, o)).collect::<Vec<_>>());

    assert_eq!(broker.watermarks(topic, 0), (0, 10));
    assert_eq!(broker.watermarks(topic, 1), (0, 5));

    // Stored timestamps are the producer's CreateTime.
    let by_part = broker.consume_by_partition(topic, &[0, 1]);
    for (i, m) in by_part[&0].iter().enumerate() {
        assert_eq!(m.timestamp(), Timestamp::CreateTime(base + i as i64 * 1000));
    }
    for (i, m) in by_part[&1].iter().enumerate() {
        assert_eq!(m.timestamp(), Timestamp::CreateTime(base + ooo_ts[i]));
    }

    let consumer = broker.consumer();
    let lookup = |p: i32, ts: i64| -> Offset {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, p, Offset::Offset(ts))
            .expect("tpl");
        let res = consumer
            .offsets_for_times(tpl, OP_TIMEOUT)
            .unwrap_or_else(|e| panic!("offsets_for_times({p}, {ts}): {e}"));
        let el = res
            .find_partition(topic, p)
            .expect("partition in ListOffsets result");
        assert!(
            el.error().is_ok(),
            "ListOffsets({p}, {ts}) error: {:?}",
            el.error()
        );
        el.offset()
    };
    // Earliest offset whose timestamp >= target.
    assert_eq!(lookup(0, base - 5000), Offset::Offset(0));
    assert_eq!(lookup(0, base), Offset::Offset(0));
    assert_eq!(lookup(0, base + 3000), Offset::Offset(3));
    assert_eq!(lookup(0, base + 3500), Offset::Offset(4));
    assert_eq!(lookup(0, base + 9000), Offset::Offset(9));
    assert_eq!(lookup(0, base + 9001), Offset::End, "no record that late");
    assert_eq!(lookup(1, base + 500), Offset::Offset(0));
    assert_eq!(lookup(1, base + 2000), Offset::Offset(0));
    assert_eq!(lookup(1, base + 6000), Offset::Offset(2));
    assert_eq!(lookup(1, base + 8000), Offset::Offset(2));
    assert_eq!(lookup(1, base + 9000), Offset::Offset(2));
    assert_eq!(lookup(1, base + 9500), Offset::End);

    // More records move the latest offset; earliest stays.
    let more: Vec<Spec> = (0..3)
        .map(|i| Spec {
            key: Some(b"k".to_vec()),
            value: Some(vec![i as u8]),
            headers: Vec::new(),
            partition: Some(0),
            timestamp: None,
        })
        .collect();
    produce_all(&prod, topic, &more);
    assert_eq!(broker.watermarks(topic, 0), (0, 13));
}

/// ListOffsets v7 over a raw socket: latest (-1), earliest (-2) and
/// MAX_TIMESTAMP (-3), which librdkafka's consumer API does not expose.
#[test]
fn list_offsets_max_timestamp() {
    use crate::common::{request_header_v1, RawConn};

    let broker = Broker::start();
    let topic = "max-ts";
    broker.create_topics(&[(topic, 1)]);
    let base = now_ms() - 60_000;
    let deltas = [5000i64, 9000, 3000, 9000, 1000];
    let specs: Vec<Spec> = deltas
        .iter()
        .map(|d| Spec {
            key: None,
            value: Some(d.to_string().into_bytes()),
            headers: Vec::new(),
            partition: Some(0),
            timestamp: Some(base + d),
        })
        .collect();
    produce_all(&producer(&broker, "none"), topic, &specs);

    fn uvarint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn read_uvarint(b: &[u8], pos: &mut usize) -> u64 {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let byte = b[*pos];
            *pos += 1;
            v |= u64::from(byte & 0x7F) << shift;
            if byte < 0x80 {
                return v;
            }
            shift += 7;
        }
    }
    fn take<const N: usize>(b: &[u8], pos: &mut usize) -> [u8; N] {
        let out: [u8; N] = b[*pos..*pos + N].try_into().expect("bytes");
        *pos += N;
        out
    }

    let mut conn = RawConn::connect(broker.bootstrap());
    let mut query = |corr: i32, ts: i64| -> (i16, i64, i64) {
        let mut b = request_header_v1(2, 7, corr);
        b.push(0); // header tagged fields
        b.extend_from_slice(&(-1i32).to_be_bytes()); // replica id
        b.push(0); // isolation level
        uvarint(2, &mut b); // one topic
        uvarint(topic.len() as u64 + 1, &mut b);
        b.extend_from_slice(topic.as_bytes());
        uvarint(2, &mut b); // one partition
        b.extend_from_slice(&0i32.to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes()); // current leader epoch
        b.extend_from_slice(&ts.to_be_bytes());
        b.push(0); // partition tagged fields
        b.push(0); // topic tagged fields
        b.push(0); // request tagged fields
        conn.send_frame(&b).expect("send ListOffsets");
        let r = conn.read_frame().expect("ListOffsets response");
        let mut pos = 0;
        assert_eq!(i32::from_be_bytes(take(&r, &mut pos)), corr);
        assert_eq!(
            read_uvarint(&r, &mut pos),
            0,
            "response header tagged fields"
        );
        let _throttle = take::<4>(&r, &mut pos);
        assert_eq!(read_uvarint(&r, &mut pos), 2, "one topic");
        let n = read_uvarint(&r, &mut pos) as usize - 1;
        assert_eq!(&r[pos..pos + n], topic.as_bytes());
        pos += n;
        assert_eq!(read_uvarint(&r, &mut pos), 2, "one partition");
        assert_eq!(i32::from_be_bytes(take(&r, &mut pos)), 0);
        let err = i16::from_be_bytes(take(&r, &mut pos));
        let ts = i64::from_be_bytes(take(&r, &mut pos));
        let off = i64::from_be_bytes(take(&r, &mut pos));
        (err, ts, off)
    };

    let (err, _, latest) = query(1, -1);
    assert_eq!((err, latest), (0, 5), "latest");
    let (err, _, earliest) = query(2, -2);
    assert_eq!((err, earliest), (0, 0), "earliest");
    // The first record carrying the largest timestamp (Kafka returns the
    // offset of the record with the max timestamp; ties → the earliest).
    let (err, ts, off) = query(3, -3);
    assert_eq!(err, 0, "max timestamp error");
    assert_eq!(ts, base + 9000, "max timestamp");
    assert_eq!(off, 1, "offset of the max timestamp");
    // By timestamp, through the same raw path.
    let (err, ts, off) = query(4, base + 4000);
    assert_eq!((err, ts, off), (0, base + 5000, 0));
}

fn keyed_specs(n: usize, tag: &str) -> Vec<Spec> {
    (0..n)
        .map(|i| Spec {
            key: Some(format!("{tag}-{}", i % 5).into_bytes()),
            value: Some(format!("{tag} value {i}").into_bytes()),
            headers: Vec::new(),
            partition: None,
            timestamp: None,
        })
        .collect()
}

/// acks=0 (no response at all), acks=all and an idempotent producer all land
/// every record exactly once.
#[test]
fn acks_zero_all_and_idempotent() {
    let broker = Broker::start();
    let topic = "acks";
    broker.create_topics(&[(topic, 3)]);

    // acks=0: the broker must not answer (librdkafka would otherwise see a
    // response it never asked for); records still arrive.
    let p0: FutureProducer = broker
        .producer_config()
        .set("acks", "0")
        .create()
        .expect("producer");
    let zero = keyed_specs(200, "zero");
    let acks = produce_all(&p0, topic, &zero);
    assert_eq!(acks.len(), 200);
    drop(p0);

    let pall: FutureProducer = broker
        .producer_config()
        .set("acks", "all")
        .create()
        .expect("producer");
    let all = keyed_specs(200, "all");
    let acks_all = produce_all(&pall, topic, &all);
    drop(pall);

    let pidem: FutureProducer = broker
        .producer_config()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .expect("producer");
    let idem = keyed_specs(2000, "idem");
    let acks_idem = produce_all(&pidem, topic, &idem);
    drop(pidem);

    let by_part = broker.consume_by_partition(topic, &[0, 1, 2]);
    assert_dense(topic, &by_part);
    let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
    for m in by_part.values().flatten() {
        *seen
            .entry(m.payload().unwrap_or_default().to_vec())
            .or_default() += 1;
    }
    for s in zero.iter().chain(&all).chain(&idem) {
        let v = s.value.clone().unwrap_or_default();
        assert_eq!(
            seen.get(&v).copied(),
            Some(1),
            "{:?} not stored exactly once",
            String::from_utf8_lossy(&v)
        );
    }
    assert_eq!(seen.values().sum::<usize>(), 2400, "extra records");
    for (s, (p, off)) in all.iter().zip(&acks_all).chain(idem.iter().zip(&acks_idem)) {
        let m = &by_part[p][*off as usize];
        assert_same_record(&format!("{p}/{off}"), s, m);
    }
}

/// A record over the broker's message.max.bytes is refused with
/// MESSAGE_TOO_LARGE, nothing is appended, and the partition keeps working.
#[test]
fn record_over_message_max_bytes_is_refused() {
    let broker = Broker::start_with(&["message.max.bytes=20000"]);
    let topic = "limits";
    broker.create_topics(&[(topic, 1)]);
    let p: FutureProducer = broker
        .producer_config()
        .set("linger.ms", "0")
        .set("message.timeout.ms", "10000")
        .create()
        .expect("producer");
    let big = vec![b'x'; 50_000];
    let res = block_on(p.send(
        FutureRecord::<(), _>::to(topic).partition(0).payload(&big),
        OP_TIMEOUT,
    ));
    match res {
        Ok(d) => panic!("a 50 kB record was accepted under message.max.bytes=20000: {d:?}"),
        Err((e, _)) => assert_eq!(
            e.rdkafka_error_code(),
            Some(RDKafkaErrorCode::MessageSizeTooLarge),
            "error {e}"
        ),
    }
    assert_eq!(broker.watermarks(topic, 0), (0, 0));
    let ok = produce_all(&p, topic, &keyed_specs(3, "small"));
    assert_eq!(ok, vec![(0, 0), (0, 1), (0, 2)]);
}

/// With log.message.timestamp.type=LogAppendTime the broker stamps records.
#[test]
fn log_append_time() {
    let broker = Broker::start_with(&["log.message.timestamp.type=LogAppendTime"]);
    let topic = "lat";
    broker.create_topics(&[(topic, 1)]);
    let before = now_ms();
    let mut specs = keyed_specs(5, "lat");
    for s in &mut specs {
        s.timestamp = Some(1_000_000); // 1970: must be replaced
        s.partition = Some(0);
    }
    produce_all(&producer(&broker, "lz4"), topic, &specs);
    let after = now_ms();
    let msgs = broker.consume_all(topic, &[0]);
    assert_eq!(msgs.len(), 5);
    for m in &msgs {
        match m.timestamp() {
            Timestamp::LogAppendTime(ts) => assert!(
                ts >= before - 1000 && ts <= after + 1000,
                "append time {ts} outside [{before}, {after}]"
            ),
            other => panic!("expected LogAppendTime, got {other:?}"),
        }
    }
}

/// Fetch long poll over a raw socket: an empty fetch waits max_wait_ms, and a
/// waiting fetch is answered as soon as a record arrives.
#[test]
fn fetch_long_poll() {
    use crate::common::{request_header_v1, RawConn};
    use std::time::{Duration, Instant};

    let broker = Broker::start();
    let topic = "poll";
    broker.create_topics(&[(topic, 1)]);

    fn fetch_v4(corr: i32, topic: &str, offset: i64, max_wait: i32) -> Vec<u8> {
        let mut b = request_header_v1(1, 4, corr);
        b.extend_from_slice(&(-1i32).to_be_bytes()); // replica id
        b.extend_from_slice(&max_wait.to_be_bytes());
        b.extend_from_slice(&1i32.to_be_bytes()); // min bytes
        b.extend_from_slice(&(1i32 << 20).to_be_bytes()); // max bytes
        b.push(0); // read uncommitted
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&(topic.len() as i16).to_be_bytes());
        b.extend_from_slice(topic.as_bytes());
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes()); // partition
        b.extend_from_slice(&offset.to_be_bytes());
        b.extend_from_slice(&(1i32 << 20).to_be_bytes()); // partition max bytes
        b
    }
    /// (error code, high watermark, records length) of the single partition.
    fn parse(r: &[u8], topic: &str) -> (i16, i64, i32) {
        let mut pos = 8; // correlation id, throttle
        let rd = |p: usize, n: usize| &r[p..p + n];
        assert_eq!(rd(pos, 4), 1i32.to_be_bytes());
        pos += 4;
        let n = i16::from_be_bytes(rd(pos, 2).try_into().expect("len")) as usize;
        pos += 2;
        assert_eq!(rd(pos, n), topic.as_bytes());
        pos += n;
        assert_eq!(rd(pos, 4), 1i32.to_be_bytes());
        pos += 8; // count + partition index
        let err = i16::from_be_bytes(rd(pos, 2).try_into().expect("err"));
        let hw = i64::from_be_bytes(rd(pos + 2, 8).try_into().expect("hw"));
        pos += 2 + 8 + 8; // error, high watermark, last stable offset
        let aborted = i32::from_be_bytes(rd(pos, 4).try_into().expect("aborted"));
        pos += 4 + 34 * aborted.max(0) as usize;
        let len = i32::from_be_bytes(rd(pos, 4).try_into().expect("records"));
        (err, hw, len)
    }

    // Nothing to read: the answer comes after ~max_wait, empty.
    let mut conn = RawConn::connect(broker.bootstrap());
    let t = Instant::now();
    conn.send_frame(&fetch_v4(1, topic, 0, 600)).expect("send");
    let r = conn.read_frame().expect("fetch response");
    let waited = t.elapsed();
    let (err, hw, len) = parse(&r, topic);
    assert_eq!((err, hw), (0, 0));
    assert!(len <= 0, "records from an empty partition");
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(5),
        "empty fetch with max_wait 600 ms answered after {waited:?}"
    );

    // A waiting fetch (max_wait 10 s) is answered when a record is produced.
    let t = Instant::now();
    conn.send_frame(&fetch_v4(2, topic, 0, 10_000))
        .expect("send");
    std::thread::sleep(Duration::from_millis(300));
    let p = producer(&broker, "none");
    produce_all(&p, topic, &keyed_specs(1, "wake"));
    let r = conn.read_frame().expect("fetch response");
    let waited = t.elapsed();
    let (err, hw, len) = parse(&r, topic);
    assert_eq!((err, hw), (0, 1));
    assert!(len > 0, "woken fetch carried no records");
    assert!(
        waited < Duration::from_secs(5),
        "fetch not woken by the produce: answered after {waited:?}"
    );
}
