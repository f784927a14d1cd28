//! End-to-end log compaction with librdkafka: 100,000 records over 1,000 keys on a
//! `cleanup.policy=compact` topic end up as one record per live key, the latest; deleted keys
//! go after `delete.retention.ms`; a SIGKILL while the cleaner runs loses no latest value; a
//! record without a key is refused.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use rdkafka::admin::{AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{BaseProducer, BaseRecord, FutureProducer, FutureRecord, Producer};

use crate::common::{block_on, wait_until, Broker, OP_TIMEOUT};

const KEYS: u64 = 1000;
const RECORDS: u64 = 100_000;

/// Latest value per key (None: deleted).
type Model = HashMap<Vec<u8>, Option<Vec<u8>>>;

fn topic_configs(ratio: &str) -> Vec<(&'static str, String)> {
    vec![
        ("cleanup.policy", "compact".into()),
        ("segment.bytes", "65536".into()),
        ("segment.ms", "1000".into()),
        ("delete.retention.ms", "1000".into()),
        ("file.delete.delay.ms", "0".into()),
        ("min.cleanable.dirty.ratio", ratio.into()),
    ]
}

/// A compacted topic that is not cleaned until `enable_cleaning` (a dirty ratio never exceeds 1).
fn create_compacted(broker: &Broker, topic: &str) {
    let admin = broker.admin();
    let configs = topic_configs("1.0");
    let mut t = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    for (k, v) in &configs {
        t = t.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(OP_TIMEOUT));
    for r in block_on(admin.create_topics([&t], &opts)).expect("CreateTopics") {
        r.expect("topic created");
    }
}

fn enable_cleaning(broker: &Broker, topic: &str) {
    let admin = broker.admin();
    let configs = topic_configs("0.01");
    let mut c = AlterConfig::new(ResourceSpecifier::Topic(topic));
    for (k, v) in &configs {
        c = c.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(OP_TIMEOUT));
    for r in block_on(admin.alter_configs([&c], &opts)).expect("AlterConfigs") {
        r.expect("configs altered");
    }
}

fn key(k: u64) -> Vec<u8> {
    format!("key-{k:04}").into_bytes()
}

/// Produces `RECORDS` records over `KEYS` keys (about 1% tombstones), then deletes keys 0..50
/// and sets keys 0..10 again. Returns the model.
fn produce_workload(broker: &Broker, topic: &str) -> Model {
    let producer: BaseProducer = broker
        .producer_config()
        .set("compression.type", "lz4")
        .set("max.in.flight.requests.per.connection", "1")
        .create()
        .expect("producer");
    let mut model = Model::new();
    let mut rng = common::Rng::new(7);
    let mut send = |k: Vec<u8>, v: Option<Vec<u8>>| {
        loop {
            let mut rec = BaseRecord::<Vec<u8>, Vec<u8>>::to(topic).key(&k);
            if let Some(v) = &v {
                rec = rec.payload(v);
            }
            match producer.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => panic!("produce: {e}"),
            }
        }
        model.insert(k, v);
    };
    for i in 0..RECORDS - 60 {
        let k = rng.next_u64() % KEYS;
        let v = if rng.next_u64().is_multiple_of(100) {
            None
        } else {
            Some(
                format!(
                    "value-{k}-{i}-{}",
                    "x".repeat((rng.next_u64() % 40) as usize)
                )
                .into_bytes(),
            )
        };
        send(key(k), v);
    }
    for k in 0..50 {
        send(key(k), None);
    }
    for k in 0..10 {
        send(key(k), Some(format!("reborn-{k}").into_bytes()));
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
    assert_eq!(producer.in_flight_count(), 0);
    model
}

/// Bytes of the segment data files (the active segment's indexes are preallocated).
fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_str().is_some_and(|n| n.ends_with(".log")))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn files_ending(dir: &Path, suffix: &str) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_str().is_some_and(|n| n.ends_with(suffix)))
                .count()
        })
        .unwrap_or(0)
}

/// For every key, the last record of the log is its latest value (a deleted key may be
/// absent). Offsets increase.
fn latest_visible(msgs: &[OwnedMessage], model: &Model) -> Result<(), String> {
    let mut last: HashMap<Vec<u8>, Option<Vec<u8>>> = HashMap::new();
    let mut prev = -1;
    for m in msgs {
        if m.offset() <= prev {
            return Err(format!("offset {} after {prev}", m.offset()));
        }
        prev = m.offset();
        let k = m.key().ok_or("record without key")?.to_vec();
        last.insert(k, m.payload().map(<[u8]>::to_vec));
    }
    for (k, v) in model {
        match (last.get(k), v) {
            (Some(got), _) if got == v => {}
            (None, None) => {}
            (got, _) => {
                return Err(format!(
                    "key {}: last record {got:?}, latest written {v:?}",
                    String::from_utf8_lossy(k)
                ))
            }
        }
    }
    Ok(())
}

/// Exactly one record per live key, its latest, and no deleted key (unless `tombstones_ok`,
/// where a deleted key may still show as its tombstone).
fn compacted(msgs: &[OwnedMessage], model: &Model, tombstones_ok: bool) -> Result<(), String> {
    latest_visible(msgs, model)?;
    let mut count: HashMap<&[u8], usize> = HashMap::new();
    for m in msgs {
        let k = m.key().unwrap_or_default();
        *count.entry(k).or_default() += 1;
        if m.payload().is_none() && !tombstones_ok {
            return Err(format!(
                "tombstone of {} still there",
                String::from_utf8_lossy(k)
            ));
        }
    }
    if let Some((k, n)) = count.iter().find(|(_, &n)| n > 1) {
        return Err(format!(
            "key {} appears {n} times",
            String::from_utf8_lossy(k)
        ));
    }
    Ok(())
}

#[test]
fn compaction_keeps_the_latest_record_of_each_key() {
    let broker = Broker::start_with(&["log.cleaner.backoff.ms=100"]);
    let topic = "compacted";
    create_compacted(&broker, topic);
    let model = produce_workload(&broker, topic);
    let dir = broker.partition_dir(topic, 0);
    let (_, high) = broker.watermarks(topic, 0);
    assert_eq!(high, RECORDS as i64);
    let before = dir_size(&dir);
    let segments_before = files_ending(&dir, ".log");

    enable_cleaning(&broker, topic);
    let mut last_err = String::new();
    let done = wait_until(Duration::from_secs(90), || {
        match compacted(&broker.consume_all(topic, &[0]), &model, true) {
            Ok(()) => true,
            Err(e) => {
                last_err = e;
                std::thread::sleep(Duration::from_millis(500));
                false
            }
        }
    });
    assert!(done, "not compacted: {last_err}");
    // Tombstones expire after delete.retention.ms, at the next cleaning: new data (the live
    // values of 300 keys again, and a new key) makes the log dirty enough again.
    std::thread::sleep(Duration::from_millis(1200));
    let producer: FutureProducer = broker.producer_config().create().expect("producer");
    let mut model = model;
    let again: Vec<(Vec<u8>, Vec<u8>)> = model
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())))
        .take(300)
        .collect();
    for (k, v) in &again {
        block_on(producer.send(
            FutureRecord::to(topic).key(k).payload(v),
            Duration::from_secs(10),
        ))
        .expect("again");
    }
    block_on(producer.send(
        FutureRecord::to(topic).key("marker").payload("m"),
        Duration::from_secs(10),
    ))
    .expect("marker");
    model.insert(b"marker".to_vec(), Some(b"m".to_vec()));
    let done = wait_until(Duration::from_secs(90), || {
        match compacted(&broker.consume_all(topic, &[0]), &model, false) {
            Ok(()) => true,
            Err(e) => {
                last_err = e;
                std::thread::sleep(Duration::from_millis(500));
                false
            }
        }
    });
    assert!(done, "tombstones not removed: {last_err}");
    let msgs = broker.consume_all(topic, &[0]);
    let live = model.values().filter(|v| v.is_some()).count();
    assert_eq!(msgs.len(), live);
    let after = dir_size(&dir);
    println!(
        "compacted topic on disk: {before} bytes in {segments_before} segments before, {after} bytes in {} segments after ({} records, {live} live keys)",
        files_ending(&dir, ".log"),
        RECORDS
    );
    assert!(after * 10 < before, "{before} -> {after}");
}

#[test]
fn sigkill_during_cleaning_keeps_every_latest_value() {
    // A throttled cleaner, so that it is caught in the middle of a cleaning.
    let mut broker = Broker::start_with(&[
        "log.cleaner.backoff.ms=100",
        "log.cleaner.io.max.bytes.per.second=1500000",
    ]);
    let topic = "killed";
    create_compacted(&broker, topic);
    let model = produce_workload(&broker, topic);
    let dir = broker.partition_dir(topic, 0);
    enable_cleaning(&broker, topic);
    assert!(
        wait_until(Duration::from_secs(60), || files_ending(&dir, ".cleaned")
            > 0),
        "the cleaner never started"
    );
    std::thread::sleep(Duration::from_millis(300));
    broker.kill();
    broker.restart();
    latest_visible(&broker.consume_all(topic, &[0]), &model).expect("after SIGKILL");
    assert_eq!(broker.watermarks(topic, 0).1, RECORDS as i64);
    // And the cleaner finishes the job after the restart.
    let mut last_err = String::new();
    let done = wait_until(Duration::from_secs(120), || {
        match compacted(&broker.consume_all(topic, &[0]), &model, true) {
            Ok(()) => true,
            Err(e) => {
                last_err = e;
                std::thread::sleep(Duration::from_millis(500));
                false
            }
        }
    });
    assert!(done, "not compacted after restart: {last_err}");
}

#[test]
fn a_compacted_topic_refuses_records_without_key() {
    let broker = Broker::start();
    let topic = "needs-keys";
    create_compacted(&broker, topic);
    let producer: FutureProducer = broker
        .producer_config()
        .set("message.timeout.ms", "5000")
        .create()
        .expect("producer");
    let res = block_on(producer.send(
        FutureRecord::<(), _>::to(topic).payload("no key"),
        Duration::from_secs(10),
    ));
    match res {
        Err((KafkaError::MessageProduction(code), _)) => {
            assert_eq!(code, RDKafkaErrorCode::InvalidRecord)
        }
        other => panic!("expected INVALID_RECORD, got {other:?}"),
    }
    block_on(producer.send(
        FutureRecord::to(topic).key("k").payload("v"),
        Duration::from_secs(10),
    ))
    .expect("a keyed record is accepted");
    assert_eq!(broker.watermarks(topic, 0).1, 1);
}

/// `eddy topic describe` shows the dirty ratio of a compacted topic, and it falls once the
/// cleaner has compacted it.
#[test]
fn topic_describe_shows_the_dirty_ratio() {
    let broker = Broker::start_with(&["log.cleaner.backoff.ms=100"]);
    let b = broker.bootstrap().to_string();
    let (st, _, err) = common::run_cli(
        &[
            "topic",
            "create",
            "dirty",
            "--partitions",
            "1",
            "--config",
            "cleanup.policy=compact",
            "--config",
            "segment.bytes=2048",
            "--config",
            "min.cleanable.dirty.ratio=0.99",
            "-b",
            &b,
        ],
        "",
    );
    assert!(st.success(), "{err}");
    let input: String = (0..300)
        .map(|i| format!("k{}:value-{i}-{}\n", i % 5, "x".repeat(40)))
        .collect();
    let (st, _, err) = common::run_cli(&["produce", "dirty", "--parse-key", "-b", &b], &input);
    assert!(st.success(), "{err}");
    let ratio = || -> f64 {
        let (st, out, err) = common::run_cli(&["topic", "describe", "dirty", "-b", &b], "");
        assert!(st.success(), "{err}");
        let field = out
            .split('\t')
            .find_map(|f| f.strip_prefix("DirtyRatio: "))
            .unwrap_or_else(|| panic!("no DirtyRatio in {out}"));
        field.trim().parse().expect("a number")
    };
    // Nothing is cleaned while the threshold is 0.99: most of the log is dirty.
    let first = ratio();
    assert!(
        first > 0.5 && first <= 1.0,
        "dirty ratio before cleaning: {first}"
    );
    let (st, _, err) = common::run_cli(
        &[
            "topic",
            "alter",
            "dirty",
            "--config",
            "min.cleanable.dirty.ratio=0.01",
            "-b",
            &b,
        ],
        "",
    );
    assert!(st.success(), "{err}");
    assert!(
        wait_until(Duration::from_secs(30), || ratio() < 0.5),
        "the dirty ratio never fell below 0.5 after cleaning (first {first}):\n{}",
        broker.log_text()
    );
}
