"""Interop checks of the broker with two independent Python clients.

kafka-python is a pure-Python implementation of the protocol (its own codec, idempotent
producer by default); confluent-kafka binds librdkafka. Run by tests/python_clients.rs against
a real broker: `python3 tests/python/clients.py HOST:PORT`. Exits non-zero on the first failed
check, printing what was expected and what came back.
"""
import sys
import time
import uuid


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


def kafka_python(bs):
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import NewPartitions, NewTopic
    from kafka.errors import InvalidPartitionsError, InvalidTopicError, TopicAlreadyExistsError

    topic = f"kp-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bs, request_timeout_ms=10000)
    admin.create_topics([NewTopic(topic, 3, 1, topic_configs={"retention.ms": "3600000"})])
    check(topic in admin.list_topics(), "kafka-python: created topic is listed")
    try:
        admin.create_topics([NewTopic(topic, 3, 1)])
        check(False, "kafka-python: duplicate create refused")
    except TopicAlreadyExistsError:
        check(True, "kafka-python: duplicate create refused with TOPIC_ALREADY_EXISTS")
    try:
        admin.create_topics([NewTopic("bad/name", 1, 1)])
        check(False, "kafka-python: illegal name refused")
    except InvalidTopicError:
        check(True, "kafka-python: illegal name refused with INVALID_TOPIC_EXCEPTION")
    try:
        admin.create_partitions({topic: NewPartitions(2)})
        check(False, "kafka-python: shrinking refused")
    except InvalidPartitionsError:
        check(True, "kafka-python: shrinking refused with INVALID_PARTITIONS")

    # The default producer is idempotent (InitProducerId, sequence numbers).
    producer = KafkaProducer(bootstrap_servers=bs, compression_type="gzip", linger_ms=5)
    sent = []
    for i in range(300):
        key = f"k{i % 17}".encode()
        md = producer.send(topic, key=key, value=f"value-{i}".encode(), headers=[("h", b"1"), ("h", b"2")]).get(timeout=10)
        sent.append((md.partition, md.offset, key, f"value-{i}".encode()))
    producer.close()
    by_key = {}
    for p, _, k, _ in sent:
        by_key.setdefault(k, set()).add(p)
    check(all(len(ps) == 1 for ps in by_key.values()), "kafka-python: one key, one partition")

    consumer = KafkaConsumer(bootstrap_servers=bs, consumer_timeout_ms=3000, enable_auto_commit=False)
    tps = [TopicPartition(topic, p) for p in range(3)]
    consumer.assign(tps)
    consumer.seek_to_beginning()
    got = [(m.partition, m.offset, m.key, m.value, m.headers) for m in consumer]
    check(len(got) == 300, f"kafka-python: consumed {len(got)} of 300")
    check(sorted((p, o, k, v) for p, o, k, v, _ in got) == sorted(sent), "kafka-python: records read back at their offsets")
    check(all(h == [("h", b"1"), ("h", b"2")] for *_, h in got), "kafka-python: duplicate header keys kept in order")
    ends = consumer.end_offsets(tps)
    check(sum(ends.values()) == 300, f"kafka-python: end offsets sum to 300 ({ends})")
    consumer.close()
    admin.delete_topics([topic])
    deadline = time.time() + 10
    while topic in admin.list_topics() and time.time() < deadline:
        time.sleep(0.1)
    check(topic not in admin.list_topics(), "kafka-python: deleted topic is gone")
    admin.close()


def confluent(bs):
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

    topic = f"ck-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bs})
    for f in admin.create_topics([NewTopic(topic, 2, 1)]).values():
        f.result()
    res = ConfigResource("topic", topic, set_config={"retention.ms": "120000"})
    for f in admin.alter_configs([res]).values():
        f.result()
    cfg = list(admin.describe_configs([ConfigResource("topic", topic)]).values())[0].result()
    check(cfg["retention.ms"].value == "120000", "confluent-kafka: altered retention.ms read back")
    try:
        bad = ConfigResource("topic", topic, set_config={"retention.ms": "soon"})
        for f in admin.alter_configs([bad]).values():
            f.result()
        check(False, "confluent-kafka: invalid config refused")
    except KafkaException as e:
        check(e.args[0].code() == 40 or "INVALID_CONFIG" in str(e), f"confluent-kafka: invalid config refused ({e})")

    base_ts = 1_700_000_000_000
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
        p = Producer({"bootstrap.servers": bs, "compression.type": codec, "linger.ms": 2})
        for i in range(50):
            p.produce(topic, key=f"{codec}-{i}", value=f"{codec}:{i}" * 10, partition=i % 2, timestamp=base_ts + i)
        check(p.flush(10) == 0, f"confluent-kafka: {codec} batches acknowledged")
    c = Consumer({"bootstrap.servers": bs, "group.id": "interop", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0), TopicPartition(topic, 1, 0)])
    n, deadline = 0, time.time() + 15
    while n < 250 and time.time() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        codec, i = m.key().decode().split("-")
        check(m.value() == f"{codec}:{i}".encode() * 10, "value intact") if int(i) == 0 else None
        n += 1
    check(n == 250, f"confluent-kafka: consumed {n} of 250 across five codecs")
    found = c.offsets_for_times([TopicPartition(topic, 0, base_ts + 10)], timeout=10)
    check(found[0].offset >= 0, f"confluent-kafka: offsets_for_times found {found[0].offset}")
    c.close()


if __name__ == "__main__":
    bootstrap = sys.argv[1]
    kafka_python(bootstrap)
    confluent(bootstrap)
    print("all interop checks passed")
