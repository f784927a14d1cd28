//! The same scenarios with eddy-client and with librdkafka (the `rdkafka`
//! crate) against one real `eddy broker`, comparing what the two clients see:
//! keyed placement (eddy-client's default partitioner vs librdkafka's
//! Java-compatible `murmur2_random`), records (offsets, keys, values, null and
//! empty values, headers, timestamps and their types, LogAppendTime) produced
//! by one client and consumed by both, delivery reports of both producers
//! against what the consumers read, every compression codec across clients,
//! committed offsets written by one client and read by the other, and
//! ListOffsets (earliest, latest, by timestamp).
//!
//! Every eddy-client call is in the `eddy_*` helpers at the top of this file,
//! so that only they change when the client's producer/consumer API changes.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::ClientConfig as RdConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
use rdkafka::message::{Header as RdHeader, Message, OwnedHeaders, Timestamp};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use common::{block_on, Broker, OP_TIMEOUT};

// ---------------------------------------------------------------------------
// eddy-client: the only code in this file that calls its API.
// ---------------------------------------------------------------------------

/// A record as both clients' consumers report it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    timestamp: i64,
    ts_type: TsType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TsType {
    Create,
    LogAppend,
    NotAvailable,
}

/// A record to produce; both producers are given the same list.
#[derive(Debug, Clone)]
struct ToSend {
    partition: Option<i32>,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    /// Explicit create time; `None` lets the producer stamp it.
    timestamp: Option<i64>,
}

/// What a producer's delivery report says about one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Delivered {
    partition: i32,
    offset: i64,
    timestamp: i64,
}

/// ListOffsets query.
#[derive(Debug, Clone, Copy)]
enum Spec {
    Earliest,
    Latest,
    Time(i64),
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn eddy_properties(broker: &Broker, props: &[(&str, &str)]) -> eddy_client::ClientConfig {
    let mut c = eddy_client::ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("client.id", "eddy-side-by-side")
        .set("request.timeout.ms", "15000");
    for (k, v) in props {
        c = c.set(*k, *v);
    }
    c
}

fn eddy_admin(broker: &Broker) -> eddy_client::AdminClient {
    let cfg = eddy_client::CommonConfig::from_config(&eddy_properties(broker, &[]))
        .expect("eddy common config");
    eddy_client::AdminClient::new(cfg).expect("eddy admin client")
}

/// Produces `records` to `topic` in order with producer properties `props`;
/// returns each record's delivery report, in order.
async fn eddy_produce(
    broker: &Broker,
    props: &[(&str, &str)],
    topic: &str,
    records: &[ToSend],
) -> Vec<Delivered> {
    let cfg = eddy_client::ProducerConfig::from_config(&eddy_properties(broker, props))
        .expect("eddy producer config");
    let producer = eddy_client::Producer::new(cfg).expect("eddy producer");
    let mut futures = Vec::with_capacity(records.len());
    for r in records {
        let rec = eddy_client::ProducerRecord {
            topic: topic.to_string(),
            partition: r.partition,
            key: r.key.clone().map(Bytes::from),
            value: r.value.clone().map(Bytes::from),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| eddy_client::Header {
                    key: k.clone(),
                    value: v.clone().map(Bytes::from),
                })
                .collect(),
            timestamp: r.timestamp,
        };
        futures.push(
            producer
                .send(rec)
                .await
                .unwrap_or_else(|e| panic!("eddy-client: send to {topic} refused: {e}")),
        );
    }
    let mut out = Vec::with_capacity(futures.len());
    for (i, f) in futures.into_iter().enumerate() {
        let md = f
            .await
            .unwrap_or_else(|e| panic!("eddy-client: record {i} to {topic} not delivered: {e}"));
        assert_eq!(md.topic, topic, "eddy-client delivery report topic");
        out.push(Delivered {
            partition: md.partition,
            offset: md.offset,
            timestamp: md.timestamp,
        });
    }
    producer.close().await;
    out
}

/// Reads every record of `partitions` from the log start up to the high
/// watermark seen before reading, sorted by (partition, offset).
async fn eddy_consume(broker: &Broker, topic: &str, partitions: &[i32]) -> Vec<Seen> {
    eddy_consume_from(broker, topic, partitions, None, &[]).await
}

/// Like [`eddy_consume`], starting at offset `from` of every partition if
/// given, with consumer properties `props`.
async fn eddy_consume_from(
    broker: &Broker,
    topic: &str,
    partitions: &[i32],
    from: Option<i64>,
    props: &[(&str, &str)],
) -> Vec<Seen> {
    let mut ends: HashMap<i32, i64> = HashMap::new();
    for &p in partitions {
        let high = eddy_list_offset(broker, topic, p, Spec::Latest).await.0;
        let low = eddy_list_offset(broker, topic, p, Spec::Earliest).await.0;
        if high > low.max(from.unwrap_or(0)) {
            ends.insert(p, high);
        }
    }
    let mut all_props = vec![
        ("fetch.max.wait.ms", "100"),
        ("auto.offset.reset", "earliest"),
    ];
    all_props.extend_from_slice(props);
    let cfg = eddy_client::ConsumerConfig::from_config(&eddy_properties(broker, &all_props))
        .expect("eddy consumer config");
    let mut consumer = eddy_client::Consumer::new(cfg).expect("eddy consumer");
    let start = match from {
        Some(o) => eddy_client::StartOffset::Offset(o),
        None => eddy_client::StartOffset::Earliest,
    };
    consumer
        .assign(
            partitions
                .iter()
                .map(|&p| (topic.to_string(), p, start))
                .collect(),
        )
        .await
        .expect("eddy-client assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ends.is_empty() {
        assert!(
            Instant::now() < deadline,
            "eddy-client: timed out consuming {topic}: still waiting for {ends:?}, got {}",
            out.len()
        );
        let batch = consumer
            .poll(Duration::from_millis(500))
            .await
            .unwrap_or_else(|e| panic!("eddy-client poll of {topic}: {e}"));
        for r in batch {
            assert_eq!(r.topic, topic);
            if let Some(&end) = ends.get(&r.partition) {
                if r.offset + 1 >= end {
                    ends.remove(&r.partition);
                }
            }
            out.push(Seen {
                partition: r.partition,
                offset: r.offset,
                key: r.key.map(|b| b.to_vec()),
                value: r.value.map(|b| b.to_vec()),
                headers: r
                    .headers
                    .into_iter()
                    .map(|h| (h.key, h.value.map(|v| v.to_vec())))
                    .collect(),
                timestamp: r.timestamp,
                ts_type: match r.timestamp_type {
                    eddy_client::TimestampType::CreateTime => TsType::Create,
                    eddy_client::TimestampType::LogAppendTime => TsType::LogAppend,
                },
            });
        }
    }
    out.sort_by_key(|s| (s.partition, s.offset));
    out
}

/// ListOffsets of one partition: (offset, timestamp).
async fn eddy_list_offset(broker: &Broker, topic: &str, partition: i32, spec: Spec) -> (i64, i64) {
    let spec = match spec {
        Spec::Earliest => eddy_client::OffsetSpec::Earliest,
        Spec::Latest => eddy_client::OffsetSpec::Latest,
        Spec::Time(t) => eddy_client::OffsetSpec::Timestamp(t),
    };
    let mut r = eddy_admin(broker)
        .list_offsets(&[(topic.to_string(), partition, spec)])
        .await
        .unwrap_or_else(|e| panic!("eddy-client list_offsets {topic}/{partition}: {e}"));
    let o = r
        .pop()
        .expect("one result")
        .unwrap_or_else(|e| panic!("eddy-client list_offsets {topic}/{partition} {spec:?}: {e}"));
    (o.offset, o.timestamp)
}

/// Commits `offsets` (topic, partition, offset) for `group` (as no member).
async fn eddy_commit(broker: &Broker, group: &str, offsets: &[(&str, i32, i64)]) {
    let offsets: Vec<(String, i32, i64)> = offsets
        .iter()
        .map(|(t, p, o)| (t.to_string(), *p, *o))
        .collect();
    eddy_admin(broker)
        .alter_group_offsets(group, &offsets)
        .await
        .unwrap_or_else(|e| panic!("eddy-client commit for {group}: {e}"));
}

/// The committed offsets of `group`: (topic, partition) → (offset, metadata).
async fn eddy_committed(broker: &Broker, group: &str) -> BTreeMap<(String, i32), (i64, String)> {
    eddy_admin(broker)
        .list_group_offsets(group)
        .await
        .unwrap_or_else(|e| panic!("eddy-client committed offsets of {group}: {e}"))
        .into_iter()
        .map(|c| {
            (
                (c.topic, c.partition),
                (c.offset, c.metadata.unwrap_or_else(|| "<null>".to_string())),
            )
        })
        .collect()
}

/// A group member subscribed to `topic` (eddy-client's consumer with
/// `group.protocol` = `protocol`) reads until it has `n` records, commits its
/// positions and leaves.
async fn eddy_member_consume_and_commit(
    broker: &Broker,
    protocol: &str,
    group: &str,
    topic: &str,
    n: usize,
) {
    let cfg = eddy_client::ConsumerConfig::from_config(&eddy_properties(
        broker,
        &[
            ("fetch.max.wait.ms", "100"),
            ("auto.offset.reset", "earliest"),
            ("group.id", group),
            ("group.protocol", protocol),
            ("enable.auto.commit", "false"),
        ],
    ))
    .expect("eddy consumer config");
    let mut member = eddy_client::Consumer::with_cluster(cfg, eddy_admin(broker).cluster().clone());
    member
        .subscribe([topic])
        .unwrap_or_else(|e| panic!("eddy-client subscribe: {e}"));
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while got < n {
        assert!(
            Instant::now() < deadline,
            "eddy-client member of {group}: {got} of {n} records"
        );
        got += member
            .poll(Duration::from_millis(200))
            .await
            .unwrap_or_else(|e| panic!("eddy-client member poll: {e}"))
            .len();
    }
    assert_eq!(got, n, "eddy-client member read more records than produced");
    member
        .commit_sync()
        .await
        .unwrap_or_else(|e| panic!("eddy-client member commit: {e}"));
    member
        .close()
        .await
        .unwrap_or_else(|e| panic!("eddy-client member close: {e}"));
}

/// Deletes the records of `topic`/`partition` before `offset`.
async fn eddy_delete_records(broker: &Broker, topic: &str, partition: i32, offset: i64) {
    let r = eddy_admin(broker)
        .delete_records(&[(topic.to_string(), partition, offset)])
        .await
        .expect("eddy-client delete_records");
    for x in r {
        x.expect("eddy-client delete_records result");
    }
}

// ---------------------------------------------------------------------------
// librdkafka
// ---------------------------------------------------------------------------

fn rd_create_topic(broker: &Broker, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let mut t = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        t = t.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(OP_TIMEOUT));
    for r in block_on(broker.admin().create_topics([&t], &opts)).expect("create_topics") {
        if let Err((name, code)) = r {
            panic!("creating topic {name:?} failed: {code:?}");
        }
    }
}

fn rd_timestamp(t: Timestamp) -> (i64, TsType) {
    match t {
        Timestamp::CreateTime(t) => (t, TsType::Create),
        Timestamp::LogAppendTime(t) => (t, TsType::LogAppend),
        Timestamp::NotAvailable => (-1, TsType::NotAvailable),
    }
}

/// Produces `records` in order with librdkafka (acks=all, Java's murmur2
/// partitioner unless `props` says otherwise); returns each delivery report
/// and the timestamp type librdkafka reported with it.
fn rd_produce(
    broker: &Broker,
    props: &[(&str, &str)],
    topic: &str,
    records: &[ToSend],
) -> Vec<(Delivered, TsType)> {
    let mut cfg: RdConfig = broker.producer_config();
    cfg.set("acks", "all")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5");
    for (k, v) in props {
        cfg.set(*k, *v);
    }
    let producer: FutureProducer = cfg.create().expect("rdkafka producer");
    let futures: Vec<_> = records
        .iter()
        .map(|r| {
            let mut rec: FutureRecord<[u8], [u8]> = FutureRecord::to(topic);
            if let Some(p) = r.partition {
                rec = rec.partition(p);
            }
            if let Some(k) = &r.key {
                rec = rec.key(k.as_slice());
            }
            if let Some(v) = &r.value {
                rec = rec.payload(v.as_slice());
            }
            if let Some(t) = r.timestamp {
                rec = rec.timestamp(t);
            }
            if !r.headers.is_empty() {
                let mut h = OwnedHeaders::new_with_capacity(r.headers.len());
                for (k, v) in &r.headers {
                    h = h.insert(RdHeader {
                        key: k,
                        value: v.as_deref(),
                    });
                }
                rec = rec.headers(h);
            }
            producer
                .send_result(rec)
                .unwrap_or_else(|(e, _)| panic!("rdkafka enqueue to {topic}: {e}"))
        })
        .collect();
    block_on(async {
        let mut out = Vec::with_capacity(futures.len());
        for (i, f) in futures.into_iter().enumerate() {
            let d = f
                .await
                .expect("rdkafka delivery future")
                .unwrap_or_else(|(e, _)| {
                    panic!("rdkafka: record {i} to {topic} not delivered: {e}")
                });
            let (timestamp, ts_type) = rd_timestamp(d.timestamp);
            out.push((
                Delivered {
                    partition: d.partition,
                    offset: d.offset,
                    timestamp,
                },
                ts_type,
            ));
        }
        out
    })
}

fn rd_seen<M: Message>(m: &M) -> Seen {
    let (timestamp, ts_type) = rd_timestamp(m.timestamp());
    Seen {
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec),
        headers: common::headers_of(m),
        timestamp,
        ts_type,
    }
}

/// Everything librdkafka reads from `partitions`, sorted by (partition, offset).
fn rd_consume(broker: &Broker, topic: &str, partitions: &[i32]) -> Vec<Seen> {
    let mut out: Vec<Seen> = broker
        .consume_all(topic, partitions)
        .iter()
        .map(rd_seen)
        .collect();
    out.sort_by_key(|s| (s.partition, s.offset));
    out
}

/// What librdkafka reads from offset `from` of one partition up to the high
/// watermark, with consumer properties `props`.
fn rd_consume_from(
    broker: &Broker,
    topic: &str,
    partition: i32,
    from: i64,
    props: &[(&str, &str)],
) -> Vec<Seen> {
    let mut cfg = broker.consumer_config();
    for (k, v) in props {
        cfg.set(*k, *v);
    }
    let consumer: BaseConsumer = cfg.create().expect("rdkafka consumer");
    let (_, high) = consumer
        .fetch_watermarks(topic, partition, OP_TIMEOUT)
        .expect("watermarks");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(from))
        .expect("add partition");
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.last().map_or(from, |s: &Seen| s.offset + 1) < high {
        assert!(
            Instant::now() < deadline,
            "librdkafka: timed out reading {topic}/{partition} from {from}, got {}",
            out.len()
        );
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            out.push(rd_seen(&m.expect("librdkafka poll")));
        }
    }
    out
}

fn rd_group_consumer(broker: &Broker, group: &str) -> BaseConsumer {
    let mut c = broker.client_config();
    c.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    c.create().expect("rdkafka group consumer")
}

/// librdkafka's view of `group`'s committed offsets of `topic`'s partitions:
/// partition → (offset, metadata), leaving out partitions without one.
fn rd_committed(
    broker: &Broker,
    group: &str,
    topic: &str,
    partitions: i32,
) -> BTreeMap<(String, i32), (i64, String)> {
    let c = rd_group_consumer(broker, group);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = c
        .committed_offsets(tpl, OP_TIMEOUT)
        .unwrap_or_else(|e| panic!("rdkafka committed_offsets of {group}: {e}"));
    got.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((
                (e.topic().to_string(), e.partition()),
                (o, e.metadata().to_string()),
            )),
            Offset::Invalid => None,
            other => panic!(
                "unexpected committed offset {other:?} for partition {}",
                e.partition()
            ),
        })
        .collect()
}

/// Commits with librdkafka: (partition, offset, metadata or none).
fn rd_commit(broker: &Broker, group: &str, topic: &str, offsets: &[(i32, i64, Option<&str>)]) {
    let c = rd_group_consumer(broker, group);
    let mut tpl = TopicPartitionList::new();
    for &(p, o, md) in offsets {
        let mut e = tpl.add_partition(topic, p);
        e.set_offset(Offset::Offset(o)).expect("set offset");
        if let Some(md) = md {
            e.set_metadata(md);
        }
    }
    c.commit(&tpl, CommitMode::Sync)
        .unwrap_or_else(|e| panic!("rdkafka commit for {group}: {e}"));
}

// ---------------------------------------------------------------------------
// Shared checks
// ---------------------------------------------------------------------------

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// A varied record set: null/empty/binary keys, null (tombstone), empty and
/// large values, headers with duplicates, null values and a fixed order,
/// explicit non-monotonic create times and producer-stamped ones, explicit
/// partitions and keyed placement.
fn record_set(n: usize, partitions: i32, base_ts: i64) -> Vec<ToSend> {
    let mut rng = common::Rng::new(n as u64 * 31 + partitions as u64);
    (0..n)
        .map(|i| {
            let key = match i % 5 {
                0 => None,
                1 => Some(Vec::new()),
                2 => Some(rng.bytes(1 + i % 13)),
                _ => Some(format!("key-{}", i % 23).into_bytes()),
            };
            let value = match i % 7 {
                0 => None,
                1 => Some(Vec::new()),
                _ if i % 29 == 3 => Some(rng.bytes(40_000)),
                _ => Some(rng.bytes(i % 200)),
            };
            let headers = match i % 4 {
                0 => Vec::new(),
                1 => vec![
                    ("a".to_string(), Some(b"1".to_vec())),
                    ("b".to_string(), None),
                    ("a".to_string(), Some(b"2".to_vec())),
                ],
                2 => vec![
                    ("z".to_string(), Some(Vec::new())),
                    ("h\u{e9}-\u{fc}".to_string(), Some(vec![0, 0xff, 7])),
                ],
                _ => (0..8)
                    .rev()
                    .map(|j| (format!("h{j}"), (j % 3 != 0).then(|| vec![j as u8; j])))
                    .collect(),
            };
            let timestamp = (i % 11 != 10).then(|| base_ts + ((i * 7919) % 101) as i64 * 1000);
            // Explicit partition for every third record (keyless ones too),
            // the partitioner for the others.
            let partition = (i % 3 == 0).then_some((i as i32 / 3) % partitions);
            ToSend {
                partition,
                key,
                value,
                headers,
                timestamp,
            }
        })
        .collect()
}

fn all_partitions(n: i32) -> Vec<i32> {
    (0..n).collect()
}

/// Both consumers saw exactly the same records.
fn assert_same_view(what: &str, eddy: &[Seen], rd: &[Seen]) {
    assert_eq!(
        eddy.len(),
        rd.len(),
        "{what}: eddy-client read {} records, librdkafka {}",
        eddy.len(),
        rd.len()
    );
    for (e, r) in eddy.iter().zip(rd) {
        assert_eq!(
            e, r,
            "{what}: eddy-client (left) and librdkafka (right) differ"
        );
    }
}

/// The delivery reports point at the records the consumers read, with the
/// sent contents, the timestamps the consumers see, and nothing else in the
/// topic; offsets of each partition are dense from 0.
fn assert_reports_match(
    what: &str,
    sent: &[ToSend],
    reports: &[Delivered],
    seen: &[Seen],
    expect_type: TsType,
) {
    assert_eq!(sent.len(), reports.len());
    assert_eq!(
        seen.len(),
        sent.len(),
        "{what}: consumers read {} records, {} were produced",
        seen.len(),
        sent.len()
    );
    let by_pos: HashMap<(i32, i64), &Seen> =
        seen.iter().map(|s| ((s.partition, s.offset), s)).collect();
    let mut per_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for s in seen {
        per_partition.entry(s.partition).or_default().push(s.offset);
    }
    for (p, offsets) in &per_partition {
        assert_eq!(
            offsets,
            &(0..offsets.len() as i64).collect::<Vec<_>>(),
            "{what}: offsets of partition {p} are not dense from 0"
        );
    }
    let mut positions = BTreeSet::new();
    for (i, (s, d)) in sent.iter().zip(reports).enumerate() {
        assert!(
            positions.insert((d.partition, d.offset)),
            "{what}: two delivery reports name partition {} offset {}",
            d.partition,
            d.offset
        );
        if let Some(p) = s.partition {
            assert_eq!(
                d.partition, p,
                "{what}: record {i} went to another partition"
            );
        }
        let r = by_pos.get(&(d.partition, d.offset)).unwrap_or_else(|| {
            panic!(
                "{what}: record {i} reported at {}/{} which the consumers did not read",
                d.partition, d.offset
            )
        });
        assert_eq!(r.key, s.key, "{what}: key of record {i}");
        assert_eq!(r.value, s.value, "{what}: value of record {i}");
        assert_eq!(r.headers, s.headers, "{what}: headers of record {i}");
        assert_eq!(
            r.ts_type, expect_type,
            "{what}: timestamp type of record {i}"
        );
        assert_eq!(
            r.timestamp, d.timestamp,
            "{what}: delivery report timestamp vs consumed timestamp of record {i}"
        );
        if expect_type == TsType::Create {
            if let Some(t) = s.timestamp {
                assert_eq!(r.timestamp, t, "{what}: create time of record {i}");
            }
        }
    }
}

/// The codec id (attributes & 7) of every batch stored for a partition.
fn stored_codecs(broker: &Broker, topic: &str, partition: i32) -> Vec<i16> {
    let dir = broker.partition_dir(topic, partition);
    let mut logs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    let mut out = Vec::new();
    for log in logs {
        let data = std::fs::read(&log).expect("read segment");
        for (pos, _) in common::segment_batches(&data) {
            out.push(i16::from_be_bytes([data[pos + 21], data[pos + 22]]) & 7);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// ~1000 keys land on the same partition with eddy-client's default
/// partitioner and librdkafka's `murmur2_random`, for several partition counts.
#[test]
fn keyed_placement_is_the_same_with_both_clients() {
    let broker = Broker::start();
    let rt = runtime();
    let mut rng = common::Rng::new(7);
    let mut keys: Vec<Vec<u8>> = (0..990).map(|i| format!("key-{i}").into_bytes()).collect();
    keys.push(Vec::new());
    for i in 0..9 {
        keys.push(rng.bytes(1 + i * 3));
    }
    let records: Vec<ToSend> = keys
        .iter()
        .map(|k| ToSend {
            partition: None,
            key: Some(k.clone()),
            value: Some(b"v".to_vec()),
            headers: Vec::new(),
            timestamp: None,
        })
        .collect();
    for n in [1, 2, 3, 7, 16, 50] {
        let topic = format!("placement-{n}");
        rd_create_topic(&broker, &topic, n, &[]);
        let eddy = rt.block_on(eddy_produce(&broker, &[], &topic, &records));
        let rd = rd_produce(&broker, &[], &topic, &records);
        let differing: Vec<(String, i32, i32)> = keys
            .iter()
            .zip(eddy.iter().zip(&rd))
            .filter(|(_, (e, (r, _)))| e.partition != r.partition)
            .map(|(k, (e, (r, _)))| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    e.partition,
                    r.partition,
                )
            })
            .collect();
        assert!(
            differing.is_empty(),
            "{n} partitions: {} keys placed differently (key, eddy-client, librdkafka), first: {:?}",
            differing.len(),
            &differing[..differing.len().min(10)]
        );
        let used: BTreeSet<i32> = eddy.iter().map(|d| d.partition).collect();
        assert_eq!(
            used,
            (0..n).collect::<BTreeSet<_>>(),
            "{n} partitions: 1000 keys should use every partition"
        );
        // Both copies of a key sit on one partition, as the consumer sees it.
        let seen = rd_consume(&broker, &topic, &all_partitions(n));
        assert_eq!(seen.len(), 2 * keys.len());
        let mut placed: HashMap<&[u8], BTreeSet<i32>> = HashMap::new();
        for s in &seen {
            placed
                .entry(
                    keys.iter()
                        .find(|k| Some(*k) == s.key.as_ref())
                        .expect("known key"),
                )
                .or_default()
                .insert(s.partition);
        }
        assert!(placed.values().all(|ps| ps.len() == 1));
    }
    // The comparison has teeth: librdkafka's own default (CRC32,
    // consistent_random) places keys differently.
    let topic = "placement-crc32";
    rd_create_topic(&broker, topic, 7, &[]);
    let eddy = rt.block_on(eddy_produce(&broker, &[], topic, &records));
    let crc = rd_produce(
        &broker,
        &[("partitioner", "consistent_random")],
        topic,
        &records,
    );
    let differing = eddy
        .iter()
        .zip(&crc)
        .filter(|(e, (r, _))| e.partition != r.partition)
        .count();
    assert!(
        differing > 100,
        "CRC32 placement should differ from murmur2 for many keys, differs for {differing}"
    );
}

/// Records produced by eddy-client are read identically by both consumers,
/// and so are records produced by librdkafka (plain and idempotent); every
/// producer's delivery reports match what the consumers read (partition,
/// offset, timestamp).
#[test]
fn create_time_records_cross_between_clients() {
    let broker = Broker::start();
    let rt = runtime();
    let parts = 3;
    let base_ts = 1_600_000_000_000;
    let records = record_set(300, parts, base_ts);
    for producer in ["eddy-client", "librdkafka", "librdkafka-idempotent"] {
        let topic = format!("from-{producer}");
        let what = format!("produced by {producer}");
        rd_create_topic(&broker, &topic, parts, &[]);
        let before = now_ms();
        let reports = match producer {
            "eddy-client" => rt.block_on(eddy_produce(&broker, &[], &topic, &records)),
            _ => {
                let props: &[(&str, &str)] = if producer == "librdkafka" {
                    &[]
                } else {
                    &[("enable.idempotence", "true")]
                };
                let rd_reports = rd_produce(&broker, props, &topic, &records);
                for (i, (_, t)) in rd_reports.iter().enumerate() {
                    assert_eq!(
                        *t,
                        TsType::Create,
                        "{what}: delivery report type of record {i}"
                    );
                }
                rd_reports.into_iter().map(|(d, _)| d).collect()
            }
        };
        let after = now_ms();
        let eddy_seen = rt.block_on(eddy_consume(&broker, &topic, &all_partitions(parts)));
        let rd_seen = rd_consume(&broker, &topic, &all_partitions(parts));
        assert_same_view(&what, &eddy_seen, &rd_seen);
        assert_reports_match(&what, &records, &reports, &eddy_seen, TsType::Create);
        // Records without an explicit time were stamped by the producer now.
        for (i, (s, d)) in records.iter().zip(&reports).enumerate() {
            if s.timestamp.is_none() {
                assert!(
                    (before..=after).contains(&d.timestamp),
                    "{what}: record {i} stamped {} outside {before}..={after}",
                    d.timestamp
                );
            }
        }
    }
}

/// On a `message.timestamp.type=LogAppendTime` topic both consumers see the
/// broker's time (type LogAppendTime) and both producers' delivery reports
/// carry that same time, whatever create time was sent.
#[test]
fn log_append_time_is_reported_alike() {
    let broker = Broker::start();
    let rt = runtime();
    let parts = 2;
    let records = record_set(120, parts, 1_500_000_000_000);
    let cfg = [("message.timestamp.type", "LogAppendTime")];
    rd_create_topic(&broker, "lat-eddy", parts, &cfg);
    rd_create_topic(&broker, "lat-rdkafka", parts, &cfg);

    let before = now_ms();
    let eddy_reports = rt.block_on(eddy_produce(&broker, &[], "lat-eddy", &records));
    let rd_reports = rd_produce(&broker, &[], "lat-rdkafka", &records);
    let after = now_ms();
    for (i, (_, t)) in rd_reports.iter().enumerate() {
        assert_eq!(
            *t,
            TsType::LogAppend,
            "librdkafka delivery report type of record {i}"
        );
    }
    let rd_reports: Vec<Delivered> = rd_reports.iter().map(|(d, _)| *d).collect();

    for (topic, reports) in [("lat-eddy", &eddy_reports), ("lat-rdkafka", &rd_reports)] {
        let eddy_seen = rt.block_on(eddy_consume(&broker, topic, &all_partitions(parts)));
        let rd_seen = rd_consume(&broker, topic, &all_partitions(parts));
        assert_same_view(topic, &eddy_seen, &rd_seen);
        assert_reports_match(topic, &records, reports, &eddy_seen, TsType::LogAppend);
        for s in &eddy_seen {
            assert!(
                (before..=after).contains(&s.timestamp),
                "{topic}: LogAppendTime {} of {}/{} is not the broker's time ({before}..={after})",
                s.timestamp,
                s.partition,
                s.offset
            );
        }
    }
}

/// Every codec: batches produced by one client with it are stored with that
/// codec and read back identically by the other client (and by itself), also
/// when reading starts inside a batch.
#[test]
fn every_codec_crosses_between_clients() {
    let broker = Broker::start();
    let rt = runtime();
    let codecs = [
        ("none", 0),
        ("gzip", 1),
        ("snappy", 2),
        ("lz4", 3),
        ("zstd", 4),
    ];
    // Compressible values, so every codec really compresses.
    let mut records = record_set(200, 1, 1_650_000_000_000);
    for (i, r) in records.iter_mut().enumerate() {
        r.partition = Some(0);
        if let Some(v) = &mut r.value {
            if !v.is_empty() {
                *v = format!("value {i} ").repeat(1 + i % 40).into_bytes();
            }
        }
    }
    for (codec, id) in codecs {
        let props = [("compression.type", codec)];
        let from_eddy = format!("codec-{codec}-eddy");
        rd_create_topic(&broker, &from_eddy, 1, &[]);
        let reports = rt.block_on(eddy_produce(&broker, &props, &from_eddy, &records));
        let rd_seen = rd_consume(&broker, &from_eddy, &[0]);
        let eddy_seen = rt.block_on(eddy_consume(&broker, &from_eddy, &[0]));
        assert_same_view(&from_eddy, &eddy_seen, &rd_seen);
        assert_reports_match(&from_eddy, &records, &reports, &rd_seen, TsType::Create);
        let stored = stored_codecs(&broker, &from_eddy, 0);
        assert!(!stored.is_empty());
        assert!(
            stored.iter().all(|&c| c == id),
            "{from_eddy}: eddy-client's batches are stored with codecs {stored:?}, expected {id}"
        );

        let from_rd = format!("codec-{codec}-rdkafka");
        rd_create_topic(&broker, &from_rd, 1, &[]);
        let reports: Vec<Delivered> = rd_produce(&broker, &props, &from_rd, &records)
            .into_iter()
            .map(|(d, _)| d)
            .collect();
        let eddy_seen = rt.block_on(eddy_consume(&broker, &from_rd, &[0]));
        let rd_seen = rd_consume(&broker, &from_rd, &[0]);
        assert_same_view(&from_rd, &eddy_seen, &rd_seen);
        assert_reports_match(&from_rd, &records, &reports, &eddy_seen, TsType::Create);
        let stored = stored_codecs(&broker, &from_rd, 0);
        assert!(!stored.is_empty());
        assert!(
            stored.iter().all(|&c| c == id),
            "{from_rd}: librdkafka's batches are stored with codecs {stored:?}, expected {id}"
        );

        // Starting in the middle of a (compressed) batch, with fetches
        // limited to 1 byte per partition (at least one batch comes back):
        // both clients begin exactly at the asked offset.
        let tiny = [("max.partition.fetch.bytes", "1")];
        for topic in [&from_eddy, &from_rd] {
            let full = rd_consume(&broker, topic, &[0]);
            for from in [1, 101, 199] {
                let rd_from = rd_consume_from(&broker, topic, 0, from, &tiny);
                let eddy_from =
                    rt.block_on(eddy_consume_from(&broker, topic, &[0], Some(from), &tiny));
                assert_same_view(&format!("{topic} from {from}"), &eddy_from, &rd_from);
                assert_eq!(
                    eddy_from.as_slice(),
                    &full[from as usize..],
                    "{topic}: reading from offset {from}"
                );
            }
        }
    }
}

/// Offsets committed with librdkafka (with and without metadata) are read
/// back by eddy-client's admin, and offsets committed by eddy-client are read
/// back by librdkafka's `committed_offsets`, values and metadata alike; each
/// client also overwrites the other's commits.
#[test]
fn committed_offsets_agree_between_clients() {
    let broker = Broker::start();
    let rt = runtime();
    let topic = "commits";
    rd_create_topic(&broker, topic, 4, &[]);
    let key = |p: i32| (topic.to_string(), p);

    // librdkafka commits, eddy-client reads.
    rd_commit(
        &broker,
        "rd-group",
        topic,
        &[
            (0, 5, Some("meta-zero")),
            (1, 17, None),
            (3, 0, Some("\u{2713} done")),
        ],
    );
    let expected: BTreeMap<(String, i32), (i64, String)> = [
        (key(0), (5, "meta-zero".to_string())),
        // Kafka stores a null metadata as "".
        (key(1), (17, String::new())),
        (key(3), (0, "\u{2713} done".to_string())),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        rd_committed(&broker, "rd-group", topic, 4),
        expected,
        "librdkafka reads its own commit"
    );
    assert_eq!(
        rt.block_on(eddy_committed(&broker, "rd-group")),
        expected,
        "eddy-client reads librdkafka's commit"
    );

    // eddy-client commits, librdkafka reads.
    rt.block_on(eddy_commit(
        &broker,
        "eddy-group",
        &[(topic, 0, 3), (topic, 1, 42), (topic, 3, 0)],
    ));
    let expected: BTreeMap<(String, i32), (i64, String)> = [
        (key(0), (3, String::new())),
        (key(1), (42, String::new())),
        (key(3), (0, String::new())),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        rt.block_on(eddy_committed(&broker, "eddy-group")),
        expected,
        "eddy-client reads its own commit"
    );
    assert_eq!(
        rd_committed(&broker, "eddy-group", topic, 4),
        expected,
        "librdkafka reads eddy-client's commit"
    );

    // Each overwrites the other's.
    rt.block_on(eddy_commit(
        &broker,
        "rd-group",
        &[(topic, 0, 6), (topic, 2, 9)],
    ));
    rd_commit(&broker, "eddy-group", topic, &[(1, 43, Some("by rdkafka"))]);
    let rd_group: BTreeMap<_, _> = [
        (key(0), (6, String::new())),
        (key(1), (17, String::new())),
        (key(2), (9, String::new())),
        (key(3), (0, "\u{2713} done".to_string())),
    ]
    .into_iter()
    .collect();
    let eddy_group: BTreeMap<_, _> = [
        (key(0), (3, String::new())),
        (key(1), (43, "by rdkafka".to_string())),
        (key(3), (0, String::new())),
    ]
    .into_iter()
    .collect();
    assert_eq!(rd_committed(&broker, "rd-group", topic, 4), rd_group);
    assert_eq!(rt.block_on(eddy_committed(&broker, "rd-group")), rd_group);
    assert_eq!(rd_committed(&broker, "eddy-group", topic, 4), eddy_group);
    assert_eq!(
        rt.block_on(eddy_committed(&broker, "eddy-group")),
        eddy_group
    );
}

/// A member of an eddy-client (KIP-848) group consumes and commits; librdkafka
/// reads the committed positions (every assigned partition, the empty one
/// at 0) and metadata, and a librdkafka member of the same group resumes
/// from them, seeing only records produced afterwards.
#[test]
fn member_commits_by_eddy_client_are_read_by_librdkafka() {
    let broker = Broker::start();
    let rt = runtime();
    let topic = "member-commits";
    rd_create_topic(&broker, topic, 3, &[]);
    let to = |p: i32, tag: &str| ToSend {
        partition: Some(p),
        key: None,
        value: Some(format!("{tag}-{p}").into_bytes()),
        headers: Vec::new(),
        timestamp: None,
    };
    let first: Vec<ToSend> = [0, 0, 0, 0, 2, 2, 2]
        .iter()
        .map(|&p| to(p, "first"))
        .collect();
    rt.block_on(eddy_produce(&broker, &[], topic, &first));
    rt.block_on(eddy_member_consume_and_commit(
        &broker,
        "classic",
        "member-group",
        topic,
        first.len(),
    ));
    // The KIP-848 member commits the same way.
    rt.block_on(eddy_member_consume_and_commit(
        &broker,
        "consumer",
        "member-group-848",
        topic,
        first.len(),
    ));

    let expected: BTreeMap<(String, i32), (i64, String)> = [(0, 4), (1, 0), (2, 3)]
        .into_iter()
        .map(|(p, o)| ((topic.to_string(), p), (o, String::new())))
        .collect();
    assert_eq!(
        rt.block_on(eddy_committed(&broker, "member-group")),
        expected
    );
    assert_eq!(
        rd_committed(&broker, "member-group", topic, 3),
        expected,
        "librdkafka reads the eddy-client member's commits"
    );
    assert_eq!(
        rd_committed(&broker, "member-group-848", topic, 3),
        expected,
        "librdkafka reads the eddy-client KIP-848 member's commits"
    );

    // A librdkafka member of the group starts at the committed positions.
    let second: Vec<ToSend> = [1, 2].iter().map(|&p| to(p, "second")).collect();
    rd_produce(&broker, &[], topic, &second);
    let mut c = broker.client_config();
    c.set("group.id", "member-group")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "50");
    let consumer: BaseConsumer = c.create().expect("rdkafka member");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < second.len() {
        assert!(
            Instant::now() < deadline,
            "librdkafka member got only {got:?}"
        );
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("librdkafka member poll");
            got.push((m.partition(), m.offset(), m.payload().map(<[u8]>::to_vec)));
        }
    }
    got.sort();
    assert_eq!(
        got,
        vec![
            (1, 0, Some(b"second-1".to_vec())),
            (2, 3, Some(b"second-2".to_vec()))
        ]
    );
}

/// ListOffsets: earliest and latest (librdkafka's watermarks) and by
/// timestamp (`offsets_for_times`) agree with eddy-client's, and with the
/// answers the records' timestamps imply — after DeleteRecords moved the log
/// start, with non-monotonic and repeated timestamps, and on an empty
/// partition.
#[test]
fn list_offsets_agree_between_clients() {
    let broker = Broker::start();
    let rt = runtime();
    let topic = "times";
    rd_create_topic(&broker, topic, 2, &[]);
    let base = 1_700_000_000_000i64;
    let deltas = [1000i64, 3000, 2000, 5000, 5000, 8000, 4000, 9000];
    let records: Vec<ToSend> = deltas
        .iter()
        .map(|d| ToSend {
            partition: Some(0),
            key: None,
            value: Some(d.to_string().into_bytes()),
            headers: Vec::new(),
            timestamp: Some(base + d),
        })
        .collect();
    // Half by each producer, in order.
    let mut reports = rt.block_on(eddy_produce(&broker, &[], topic, &records[..4]));
    reports.extend(
        rd_produce(&broker, &[], topic, &records[4..])
            .into_iter()
            .map(|(d, _)| d),
    );
    let offsets: Vec<i64> = reports.iter().map(|d| d.offset).collect();
    assert_eq!(offsets, (0..8).collect::<Vec<_>>());
    let log_start = 2;
    rt.block_on(eddy_delete_records(&broker, topic, 0, log_start));

    let rd = broker.consumer();
    for p in [0, 1] {
        let (low, high) = rd
            .fetch_watermarks(topic, p, OP_TIMEOUT)
            .expect("rdkafka watermarks");
        let earliest = rt
            .block_on(eddy_list_offset(&broker, topic, p, Spec::Earliest))
            .0;
        let latest = rt
            .block_on(eddy_list_offset(&broker, topic, p, Spec::Latest))
            .0;
        assert_eq!(
            (earliest, latest),
            (low, high),
            "partition {p}: eddy-client vs librdkafka"
        );
        let expected = if p == 0 { (log_start, 8) } else { (0, 0) };
        assert_eq!((low, high), expected, "partition {p} watermarks");
    }

    let targets = [
        0,
        base,
        base + 1000,
        base + 1500,
        base + 2000,
        base + 3000,
        base + 4500,
        base + 5000,
        base + 8999,
        base + 9000,
        base + 9001,
        i64::MAX / 2,
    ];
    for t in targets {
        // The first retained record at or after t; -1 if none.
        let expected = (log_start..8)
            .find(|&o| base + deltas[o as usize] >= t)
            .map(|o| (o, base + deltas[o as usize]))
            .unwrap_or((-1, -1));
        for p in [0, 1] {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(topic, p, Offset::Offset(t))
                .expect("add partition");
            let got = rd
                .offsets_for_times(tpl, OP_TIMEOUT)
                .unwrap_or_else(|e| panic!("offsets_for_times({p}, {t}): {e}"));
            let elem = got.find_partition(topic, p).expect("partition in answer");
            assert!(
                elem.error().is_ok(),
                "offsets_for_times {p} {t}: {:?}",
                elem.error()
            );
            let rd_offset = match elem.offset() {
                Offset::Offset(o) => o,
                Offset::End => -1,
                other => panic!("offsets_for_times({p}, {t}) = {other:?}"),
            };
            let (eddy_offset, eddy_ts) =
                rt.block_on(eddy_list_offset(&broker, topic, p, Spec::Time(t)));
            assert_eq!(
                eddy_offset, rd_offset,
                "partition {p}, timestamp {t}: eddy-client (left) vs librdkafka (right)"
            );
            let expected = if p == 0 { expected } else { (-1, -1) };
            assert_eq!(
                (eddy_offset, eddy_ts),
                expected,
                "partition {p}, timestamp {t}"
            );
        }
    }
}
