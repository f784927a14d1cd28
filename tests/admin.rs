//! Admin APIs through librdkafka's AdminClient: CreateTopics (names,
//! duplicates, validate_only), CreatePartitions, auto-creation,
//! Describe/AlterConfigs, DeleteTopics and DeleteRecords.

use std::time::Duration;

use rdkafka::admin::{
    AdminOptions, AlterConfig, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use crate::common::{block_on, request_header_v1, wait_until, Broker, RawConn, OP_TIMEOUT};

fn opts() -> AdminOptions {
    AdminOptions::new()
        .operation_timeout(Some(OP_TIMEOUT))
        .request_timeout(Some(OP_TIMEOUT))
}

/// Creates one topic and returns the per-topic result code.
fn create_one(
    broker: &Broker,
    name: &str,
    partitions: i32,
    o: &AdminOptions,
) -> Result<(), RDKafkaErrorCode> {
    let admin = broker.admin();
    let t = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let res = block_on(admin.create_topics([&t], o)).expect("CreateTopics request");
    assert_eq!(res.len(), 1, "one result per topic");
    match res.into_iter().next() {
        Some(Ok(n)) => {
            assert_eq!(n, name, "result names the topic");
            Ok(())
        }
        Some(Err((n, code))) => {
            assert_eq!(n, name, "result names the topic");
            Err(code)
        }
        None => unreachable!(),
    }
}

/// Produces `n` small records to one partition and waits for their acks.
fn produce_n(broker: &Broker, topic: &str, partition: i32, n: usize) -> Vec<i64> {
    let p: FutureProducer = broker.producer_config().create().expect("producer");
    block_on(async {
        let mut futs = Vec::new();
        for i in 0..n {
            let payload = format!("{topic}-{partition}-{i}");
            let rec = FutureRecord::<(), _>::to(topic)
                .partition(partition)
                .payload(&payload);
            futs.push(p.send_result(rec).map_err(|(e, _)| e).expect("enqueue"));
        }
        let mut offsets = Vec::new();
        for f in futs {
            let d = f
                .await
                .expect("delivery")
                .map_err(|(e, _)| e)
                .expect("delivered");
            offsets.push(d.offset);
        }
        offsets
    })
}

#[test]
fn create_topics_validates_names() {
    let broker = Broker::start();
    let long_ok = "n".repeat(249);
    let too_long = "n".repeat(250);
    let illegal = [
        "",
        ".",
        "..",
        too_long.as_str(),
        "a/b",
        "a b",
        "tab\tname",
        "ünïcode",
        "__consumer_offsets",
        "__transaction_state",
    ];
    for name in illegal {
        let got = create_one(&broker, name, 1, &opts());
        assert_eq!(
            got,
            Err(RDKafkaErrorCode::InvalidTopic),
            "CreateTopics({name:?}) should be refused with INVALID_TOPIC_EXCEPTION"
        );
        // The invalid name is refused with validate_only too.
        let got = create_one(&broker, name, 1, &opts().validate_only(true));
        assert_eq!(
            got,
            Err(RDKafkaErrorCode::InvalidTopic),
            "validate_only {name:?}"
        );
    }

    // Legal edge cases are accepted.
    for name in [long_ok.as_str(), "a", "A.b_c-9", "..."] {
        assert_eq!(
            create_one(&broker, name, 1, &opts()),
            Ok(()),
            "create {name:?}"
        );
        assert_eq!(broker.partition_count(name), Some(1), "{name:?} listed");
    }
    assert!(
        broker.partition_dir(&long_ok, 0).is_dir(),
        "249-char topic has its directory"
    );

    // Creating an existing topic fails with TOPIC_ALREADY_EXISTS.
    assert_eq!(
        create_one(&broker, "a", 3, &opts()),
        Err(RDKafkaErrorCode::TopicAlreadyExists)
    );
    assert_eq!(
        broker.partition_count("a"),
        Some(1),
        "existing topic unchanged"
    );

    // Zero partitions is refused.
    assert_eq!(
        create_one(&broker, "zero-parts", 0, &opts()),
        Err(RDKafkaErrorCode::InvalidPartitions)
    );

    // Nothing illegal made it into the topic list or onto disk.
    // (`__consumer_offsets` may legitimately exist: the group coordinator creates it on the
    // first FindCoordinator, which librdkafka clients with a group.id send; that the user's
    // CreateTopics of it was refused is asserted above.)
    let names = broker.topic_names();
    for name in illegal
        .iter()
        .chain(["zero-parts"].iter())
        .filter(|n| **n != "__consumer_offsets")
    {
        assert!(
            !names.iter().any(|n| n == name),
            "{name:?} listed: {names:?}"
        );
    }
    // "a/b" must not have escaped into a sub-directory "a".
    assert!(
        !broker.data_dir().join("a").exists(),
        "a/b created a directory"
    );
    assert!(!broker.partition_dir("zero-parts", 0).exists());
}

#[test]
fn create_topics_validate_only_creates_nothing() {
    let broker = Broker::start();
    let name = "validate-only";
    assert_eq!(
        create_one(&broker, name, 4, &opts().validate_only(true)),
        Ok(())
    );
    assert_eq!(
        broker.partition_count(name),
        None,
        "validate_only created the topic"
    );
    assert!(
        !broker.partition_dir(name, 0).exists(),
        "validate_only created a directory"
    );

    // validate_only reports that an existing topic exists.
    assert_eq!(create_one(&broker, name, 4, &opts()), Ok(()));
    assert_eq!(
        create_one(&broker, name, 4, &opts().validate_only(true)),
        Err(RDKafkaErrorCode::TopicAlreadyExists)
    );
    assert_eq!(broker.partition_count(name), Some(4));
    for p in 0..4 {
        assert!(
            broker.partition_dir(name, p).is_dir(),
            "partition {p} directory"
        );
    }
}

#[test]
fn create_partitions_grows_and_refuses_shrink() {
    let broker = Broker::start();
    let topic = "grow";
    broker.create_topics(&[(topic, 3)]);
    assert_eq!(broker.partition_count(topic), Some(3));
    let admin = broker.admin();

    let grow = NewPartitions::new(topic, 5);
    let res = block_on(admin.create_partitions([&grow], &opts())).expect("CreatePartitions");
    assert_eq!(res, vec![Ok(topic.to_string())]);
    assert!(
        wait_until(Duration::from_secs(10), || broker.partition_count(topic)
            == Some(5)),
        "metadata shows {:?} partitions, want 5",
        broker.partition_count(topic)
    );
    // The new partitions work.
    assert_eq!(produce_n(&broker, topic, 4, 3), vec![0, 1, 2]);
    let msgs = broker.consume_all(topic, &[4]);
    let payloads: Vec<&[u8]> = msgs.iter().filter_map(|m| m.payload()).collect();
    assert_eq!(payloads, vec![&b"grow-4-0"[..], b"grow-4-1", b"grow-4-2"]);

    for (count, what) in [(2, "shrink"), (5, "same count")] {
        let req = NewPartitions::new(topic, count);
        let res = block_on(admin.create_partitions([&req], &opts())).expect("CreatePartitions");
        assert_eq!(
            res,
            vec![Err((
                topic.to_string(),
                RDKafkaErrorCode::InvalidPartitions
            ))],
            "{what} must be refused"
        );
    }
    assert_eq!(
        broker.partition_count(topic),
        Some(5),
        "refused requests changed nothing"
    );

    let req = NewPartitions::new("no-such-topic", 4);
    let res = block_on(admin.create_partitions([&req], &opts())).expect("CreatePartitions");
    assert_eq!(
        res,
        vec![Err((
            "no-such-topic".to_string(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))]
    );
}

#[test]
fn auto_create_on_metadata_and_produce() {
    let broker = Broker::start_with(&["num.partitions=3"]);

    // A producer's metadata request for an unknown topic creates it.
    let p: FutureProducer = broker.producer_config().create().expect("producer");
    let created = wait_until(Duration::from_secs(10), || {
        match p.client().fetch_metadata(Some("auto-meta"), OP_TIMEOUT) {
            Ok(md) => md.topics().iter().any(|t| {
                t.name() == "auto-meta" && t.error().is_none() && t.partitions().len() == 3
            }),
            Err(_) => false,
        }
    });
    assert!(
        created,
        "metadata request did not auto-create auto-meta with 3 partitions"
    );
    assert_eq!(broker.partition_count("auto-meta"), Some(3));

    // Producing to an unknown topic creates it too.
    let d = block_on(p.send(
        FutureRecord::to("auto-produce").key("k").payload("v"),
        Duration::from_secs(10),
    ))
    .map_err(|(e, _)| e)
    .expect("produce to auto-created topic");
    assert!((0..3).contains(&d.partition));
    assert_eq!(d.offset, 0);
    assert_eq!(broker.partition_count("auto-produce"), Some(3));
    let msgs = broker.consume_all("auto-produce", &[0, 1, 2]);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].payload(), Some(&b"v"[..]));

    // A consumer's metadata request (allow_auto_topic_creation=false) does not.
    let c = broker.consumer();
    let md = c
        .fetch_metadata(Some("consumer-probe"), OP_TIMEOUT)
        .expect("metadata");
    let t = md.topics().iter().find(|t| t.name() == "consumer-probe");
    if let Some(t) = t {
        assert!(
            t.error().is_some(),
            "consumer metadata request created the topic"
        );
    }
    assert_eq!(broker.partition_count("consumer-probe"), None);
}

#[test]
fn auto_create_disabled_refuses_unknown_topic() {
    let broker = Broker::start_with(&["auto.create.topics.enable=false"]);
    let p: FutureProducer = broker
        .producer_config()
        .set("message.timeout.ms", "5000")
        .set("topic.metadata.propagation.max.ms", "200")
        .create()
        .expect("producer");
    let res = block_on(p.send(
        FutureRecord::to("not-there").key("k").payload("v"),
        Duration::from_secs(5),
    ));
    match res {
        Ok(d) => panic!("produce to unknown topic succeeded: {d:?}"),
        Err((KafkaError::MessageProduction(code), _)) => assert!(
            matches!(
                code,
                RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic
            ),
            "unexpected error {code:?}"
        ),
        Err((e, _)) => panic!("unexpected error {e}"),
    }
    let md = p
        .client()
        .fetch_metadata(Some("not-there"), OP_TIMEOUT)
        .expect("metadata");
    let t = md.topics().iter().find(|t| t.name() == "not-there");
    assert_eq!(
        t.and_then(|t| t.error()),
        Some(rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART),
        "metadata for the unknown topic"
    );
    assert_eq!(broker.partition_count("not-there"), None, "topic appeared");
    assert!(!broker.partition_dir("not-there", 0).exists());

    // Explicit creation still works.
    broker.create_topics(&[("there", 2)]);
    assert_eq!(produce_n(&broker, "there", 1, 2), vec![0, 1]);
}

#[test]
fn describe_and_alter_topic_configs() {
    let broker = Broker::start();
    let admin = broker.admin();
    let topic = "cfg";
    let t = NewTopic::new(topic, 1, TopicReplication::Fixed(1)).set("retention.ms", "7200000");
    let res = block_on(admin.create_topics([&t], &opts())).expect("CreateTopics");
    assert_eq!(res, vec![Ok(topic.to_string())]);

    let describe = |name: &str| {
        let spec = ResourceSpecifier::Topic(name);
        let mut res = block_on(admin.describe_configs([&spec], &opts())).expect("DescribeConfigs");
        assert_eq!(res.len(), 1);
        res.remove(0)
    };
    let value_of = |name: &str| -> Option<String> {
        let r = describe(topic).unwrap_or_else(|e| panic!("describe {topic}: {e:?}"));
        r.get(name).and_then(|e| e.value.clone())
    };

    let cfg = describe(topic).expect("describe cfg");
    let ret = cfg.get("retention.ms").expect("retention.ms described");
    assert_eq!(
        ret.value.as_deref(),
        Some("7200000"),
        "creation-time config"
    );
    assert!(!ret.is_default, "retention.ms was set at creation");
    assert!(
        cfg.get("cleanup.policy").is_some(),
        "cleanup.policy described"
    );
    assert!(
        cfg.get("segment.bytes").is_some(),
        "segment.bytes described"
    );

    // AlterConfigs sets a value that DescribeConfigs reads back.
    let alter = AlterConfig::new(ResourceSpecifier::Topic(topic)).set("retention.ms", "3600000");
    let res = block_on(admin.alter_configs([&alter], &opts())).expect("AlterConfigs");
    assert!(res[0].is_ok(), "alter retention.ms: {:?}", res[0]);
    assert_eq!(value_of("retention.ms").as_deref(), Some("3600000"));

    // Invalid values and unknown keys are refused with INVALID_CONFIG (40) and
    // change nothing. (rdkafka 0.39's alter_configs drops per-resource errors,
    // so these go over a raw socket.)
    for (k, v) in [
        ("retention.ms", "not-a-number"),
        ("retention.ms", "-7"),
        ("cleanup.policy", "sometimes"),
        ("no.such.config", "1"),
    ] {
        let (code, msg) = raw_alter_configs(&broker, 33, 1, topic, &[(k, 0, Some(v))]);
        assert_eq!(
            code, 40,
            "AlterConfigs {k}={v}: error code (message {msg:?})"
        );
        assert_eq!(
            value_of("retention.ms").as_deref(),
            Some("3600000"),
            "after {k}={v}"
        );
        let (code, msg) = raw_alter_configs(&broker, 44, 0, topic, &[(k, 0, Some(v))]);
        assert_eq!(
            code, 40,
            "IncrementalAlterConfigs SET {k}={v}: error code (message {msg:?})"
        );
        assert_eq!(
            value_of("retention.ms").as_deref(),
            Some("3600000"),
            "after {k}={v}"
        );
    }

    // IncrementalAlterConfigs SET keeps other overrides; DELETE restores the default.
    let (code, msg) =
        raw_alter_configs(&broker, 44, 0, topic, &[("segment.ms", 0, Some("600000"))]);
    assert_eq!(code, 0, "IncrementalAlterConfigs SET segment.ms: {msg:?}");
    assert_eq!(value_of("segment.ms").as_deref(), Some("600000"));
    assert_eq!(
        value_of("retention.ms").as_deref(),
        Some("3600000"),
        "SET kept other overrides"
    );
    let (code, msg) = raw_alter_configs(&broker, 44, 0, topic, &[("retention.ms", 1, None)]);
    assert_eq!(
        code, 0,
        "IncrementalAlterConfigs DELETE retention.ms: {msg:?}"
    );
    let cfg = describe(topic).expect("describe");
    let ret = cfg.get("retention.ms").expect("retention.ms");
    assert!(ret.is_default, "retention.ms back to its default: {ret:?}");
    assert_eq!(
        ret.value.as_deref(),
        Some("604800000"),
        "Kafka's default retention"
    );
    assert_eq!(value_of("segment.ms").as_deref(), Some("600000"));

    // validate_only changes nothing.
    let (code, _) = raw_alter_configs_validate(&broker, topic, "segment.ms", "700000");
    assert_eq!(code, 0);
    assert_eq!(
        value_of("segment.ms").as_deref(),
        Some("600000"),
        "validate_only applied"
    );

    // Legacy AlterConfigs replaces all overrides: segment.ms reverts.
    let alter = AlterConfig::new(ResourceSpecifier::Topic(topic)).set("retention.ms", "1000");
    block_on(admin.alter_configs([&alter], &opts())).expect("AlterConfigs");
    assert_eq!(value_of("retention.ms").as_deref(), Some("1000"));
    let seg = describe(topic).expect("describe");
    assert!(
        seg.get("segment.ms").is_some_and(|e| e.is_default),
        "AlterConfigs did not replace the overrides: {:?}",
        seg.get("segment.ms")
    );

    // Unknown topic: UNKNOWN_TOPIC_OR_PARTITION (3). rdkafka 0.39 drops
    // per-resource errors of DescribeConfigs, so this is a raw DescribeConfigs v1.
    let mut b = request_header_v1(32, 1, 8);
    b.extend_from_slice(&1i32.to_be_bytes());
    b.push(2); // topic
    b.extend_from_slice(&13i16.to_be_bytes());
    b.extend_from_slice(b"missing-topic");
    b.extend_from_slice(&(-1i32).to_be_bytes()); // all config names
    b.push(0); // include synonyms
    let mut conn = RawConn::connect(broker.bootstrap());
    conn.send_frame(&b).expect("send DescribeConfigs");
    let r = conn.read_frame().expect("DescribeConfigs response");
    assert_eq!(
        i32::from_be_bytes(r[8..12].try_into().expect("n")),
        1,
        "one result"
    );
    assert_eq!(
        i16::from_be_bytes(r[12..14].try_into().expect("code")),
        3,
        "DescribeConfigs of a missing topic"
    );
}

#[test]
fn delete_topics_removes_topic_and_data() {
    let broker = Broker::start();
    let admin = broker.admin();
    broker.create_topics(&[("doomed", 2), ("survivor", 1)]);
    assert_eq!(produce_n(&broker, "doomed", 0, 5).len(), 5);
    assert_eq!(produce_n(&broker, "survivor", 0, 2), vec![0, 1]);
    assert!(broker.partition_dir("doomed", 0).is_dir());

    let res = block_on(admin.delete_topics(&["doomed"], &opts())).expect("DeleteTopics");
    assert_eq!(res, vec![Ok("doomed".to_string())]);
    assert!(
        wait_until(Duration::from_secs(10), || broker
            .partition_count("doomed")
            .is_none()),
        "deleted topic still listed"
    );
    assert!(
        wait_until(Duration::from_secs(15), || {
            !broker.partition_dir("doomed", 0).exists()
                && !broker.partition_dir("doomed", 1).exists()
        }),
        "partition directories of the deleted topic still exist: {:?}",
        std::fs::read_dir(broker.data_dir()).map(|d| d
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect::<Vec<_>>())
    );

    // Deleting it again: unknown topic.
    let res = block_on(admin.delete_topics(&["doomed"], &opts())).expect("DeleteTopics");
    assert_eq!(
        res,
        vec![Err((
            "doomed".to_string(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))]
    );

    // Re-creating the name starts empty: old data does not come back.
    broker.create_topics(&[("doomed", 1)]);
    assert_eq!(broker.watermarks("doomed", 0), (0, 0));
    assert_eq!(produce_n(&broker, "doomed", 0, 1), vec![0]);

    // The other topic is untouched.
    let msgs = broker.consume_all("survivor", &[0]);
    assert_eq!(msgs.len(), 2);
}

#[test]
fn delete_records_moves_low_watermark() {
    let mut broker = Broker::start();
    let topic = "trim";
    broker.create_topics(&[(topic, 2)]);
    assert_eq!(
        produce_n(&broker, topic, 0, 10),
        (0..10).collect::<Vec<i64>>()
    );
    assert_eq!(
        produce_n(&broker, topic, 1, 4),
        (0..4).collect::<Vec<i64>>()
    );

    let admin = broker.admin();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(4))
        .expect("tpl");
    tpl.add_partition_offset(topic, 1, Offset::End)
        .expect("tpl");
    let res = block_on(admin.delete_records(&tpl, &opts())).expect("DeleteRecords");
    let p0 = res.find_partition(topic, 0).expect("p0 result");
    assert!(p0.error().is_ok(), "p0: {:?}", p0.error());
    assert_eq!(p0.offset(), Offset::Offset(4), "new low watermark of p0");
    let p1 = res.find_partition(topic, 1).expect("p1 result");
    assert!(p1.error().is_ok(), "p1: {:?}", p1.error());
    assert_eq!(
        p1.offset(),
        Offset::Offset(4),
        "new low watermark of p1 (End)"
    );

    assert_eq!(broker.watermarks(topic, 0), (4, 10));
    assert_eq!(broker.watermarks(topic, 1), (4, 4));
    let msgs = broker.consume_all(topic, &[0, 1]);
    let offsets: Vec<(i32, i64)> = msgs.iter().map(|m| (m.partition(), m.offset())).collect();
    assert_eq!(offsets, (4..10).map(|o| (0, o)).collect::<Vec<_>>());
    assert_eq!(msgs[0].payload(), Some(&b"trim-0-4"[..]));

    // Beyond the high watermark: OFFSET_OUT_OF_RANGE, nothing changes.
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(11))
        .expect("tpl");
    let res = block_on(admin.delete_records(&tpl, &opts()));
    let err = match res {
        Ok(tpl) => tpl
            .find_partition(topic, 0)
            .expect("p0 result")
            .error()
            .err(),
        Err(e) => Some(e),
    };
    assert_eq!(
        err.and_then(|e| e.rdkafka_error_code()),
        Some(RDKafkaErrorCode::OffsetOutOfRange)
    );
    assert_eq!(broker.watermarks(topic, 0), (4, 10));

    // Appends continue after the trimmed range, and the trim survives a restart.
    assert_eq!(produce_n(&broker, topic, 1, 1), vec![4]);
    let status = broker.terminate();
    assert!(status.success(), "clean shutdown exit status {status}");
    broker.restart();
    assert_eq!(broker.watermarks(topic, 0), (4, 10), "after restart");
    assert_eq!(broker.watermarks(topic, 1), (4, 5), "after restart");
    let msgs = broker.consume_all(topic, &[0]);
    assert_eq!(msgs.first().map(|m| m.offset()), Some(4));
    assert_eq!(msgs.len(), 6);
}

/// Sends AlterConfigs v1 (`api_key` 33, op ignored) or IncrementalAlterConfigs
/// v0 (`api_key` 44) for one topic over a raw socket; returns the resource's
/// (error code, error message).
fn raw_alter_configs(
    broker: &Broker,
    api_key: i16,
    version: i16,
    topic: &str,
    entries: &[(&str, i8, Option<&str>)],
) -> (i16, Option<String>) {
    raw_alter(broker, api_key, version, topic, entries, false)
}

fn raw_alter_configs_validate(
    broker: &Broker,
    topic: &str,
    k: &str,
    v: &str,
) -> (i16, Option<String>) {
    raw_alter(broker, 44, 0, topic, &[(k, 0, Some(v))], true)
}

fn raw_alter(
    broker: &Broker,
    api_key: i16,
    version: i16,
    topic: &str,
    entries: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> (i16, Option<String>) {
    fn string(b: &mut Vec<u8>, s: &str) {
        b.extend_from_slice(&(s.len() as i16).to_be_bytes());
        b.extend_from_slice(s.as_bytes());
    }
    let mut b = request_header_v1(api_key, version, 9);
    b.extend_from_slice(&1i32.to_be_bytes());
    b.push(2); // resource type: topic
    string(&mut b, topic);
    b.extend_from_slice(&(entries.len() as i32).to_be_bytes());
    for (k, op, v) in entries {
        string(&mut b, k);
        if api_key == 44 {
            b.push(*op as u8);
        }
        match v {
            Some(v) => string(&mut b, v),
            None => b.extend_from_slice(&(-1i16).to_be_bytes()),
        }
    }
    b.push(u8::from(validate_only));
    let mut conn = RawConn::connect(broker.bootstrap());
    conn.send_frame(&b).expect("send");
    let r = conn.read_frame().expect("AlterConfigs response");
    let i16_at = |p: usize| i16::from_be_bytes(r[p..p + 2].try_into().expect("i16"));
    assert_eq!(i32::from_be_bytes(r[0..4].try_into().expect("corr")), 9);
    assert_eq!(
        i32::from_be_bytes(r[8..12].try_into().expect("n")),
        1,
        "one resource"
    );
    let code = i16_at(12);
    let len = i16_at(14);
    let msg = (len >= 0).then(|| String::from_utf8_lossy(&r[16..16 + len as usize]).into_owned());
    (code, msg)
}
