//! End-to-end tests of consumer groups with librdkafka: the classic protocol (assignment,
//! rebalance on close and on session expiry of a SIGKILLed member), committed offsets across
//! a broker SIGKILL, independent groups, group administration, and KIP-848
//! (`group.protocol=consumer`).

mod common;

use std::collections::{BTreeSet, HashMap};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::AdminOptions;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use common::{block_on, Broker, OP_TIMEOUT};

/// Java's `String.hashCode`, to find a group's partition of `__consumer_offsets`.
fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

fn group_consumer(broker: &Broker, group: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut c: ClientConfig = broker.client_config();
    c.set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "50");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("create group consumer")
}

fn produce(broker: &Broker, topic: &str, partitions: i32, per_partition: usize) {
    let producer: FutureProducer = broker.producer_config().create().expect("producer");
    block_on(async {
        for p in 0..partitions {
            for i in 0..per_partition {
                let payload = format!("{topic}-{p}-{i}");
                producer
                    .send(
                        FutureRecord::<(), _>::to(topic)
                            .partition(p)
                            .payload(&payload),
                        OP_TIMEOUT,
                    )
                    .await
                    .unwrap_or_else(|(e, _)| panic!("produce to {topic}/{p}: {e}"));
            }
        }
    });
}

fn assigned(c: &BaseConsumer) -> BTreeSet<i32> {
    c.assignment()
        .map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}

/// Polls every consumer round-robin until `done` holds for their assignments.
fn poll_until(
    broker: &Broker,
    consumers: &[&BaseConsumer],
    timeout: Duration,
    what: &str,
    mut done: impl FnMut(&[BTreeSet<i32>]) -> bool,
) -> Vec<BTreeSet<i32>> {
    let deadline = Instant::now() + timeout;
    loop {
        for c in consumers {
            if let Some(Err(e)) = c.poll(Duration::from_millis(20)) {
                eprintln!("consumer error (ignored): {e}");
            }
        }
        let sets: Vec<BTreeSet<i32>> = consumers.iter().map(|c| assigned(c)).collect();
        if done(&sets) {
            return sets;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}; assignments {sets:?}\n---- broker output ----\n{}",
                broker.log_text()
            );
        }
    }
}

/// The assignments are pairwise disjoint, all non-empty and cover `0..n`.
fn covers_disjointly(sets: &[BTreeSet<i32>], n: i32) -> bool {
    let total: usize = sets.iter().map(BTreeSet::len).sum();
    let union: BTreeSet<i32> = sets.iter().flatten().copied().collect();
    sets.iter().all(|s| !s.is_empty()) && total == n as usize && union == (0..n).collect()
}

#[test]
fn three_consumers_share_six_partitions_and_rebalance_when_one_closes() {
    let broker = Broker::start_with(&["group.initial.rebalance.delay.ms=500"]);
    broker.create_topics(&[("g3-topic", 6)]);
    let cs: Vec<BaseConsumer> = (0..3)
        .map(|_| group_consumer(&broker, "g3", &[("partition.assignment.strategy", "range")]))
        .collect();
    for c in &cs {
        c.subscribe(&["g3-topic"]).expect("subscribe");
    }
    let refs: Vec<&BaseConsumer> = cs.iter().collect();
    let sets = poll_until(
        &broker,
        &refs,
        Duration::from_secs(60),
        "3-way split",
        |s| covers_disjointly(s, 6),
    );
    assert!(
        sets.iter().all(|s| s.len() == 2),
        "range gives 2 each: {sets:?}"
    );

    // The group is visible to ListGroups and DescribeGroups.
    let list = cs[0]
        .fetch_group_list(Some("g3"), OP_TIMEOUT)
        .expect("describe group");
    let g = &list.groups()[0];
    assert_eq!(g.name(), "g3");
    assert_eq!(g.state(), "Stable");
    assert_eq!(g.protocol_type(), "consumer");
    assert_eq!(g.protocol(), "range");
    assert_eq!(g.members().len(), 3);

    // A non-empty group cannot be deleted.
    let admin = broker.admin();
    let opts = AdminOptions::new().operation_timeout(Some(OP_TIMEOUT));
    let res = block_on(admin.delete_groups(&["g3"], &opts)).expect("delete_groups");
    match &res[0] {
        Err((name, code)) => {
            assert_eq!(name, "g3");
            assert_eq!(*code, rdkafka::types::RDKafkaErrorCode::NonEmptyGroup);
        }
        Ok(_) => panic!("deleting a non-empty group succeeded"),
    }

    // Closing one consumer (it leaves the group) moves its partitions to the others.
    let mut cs = cs;
    let closed = cs.remove(1);
    drop(closed);
    let refs: Vec<&BaseConsumer> = cs.iter().collect();
    let sets = poll_until(
        &broker,
        &refs,
        Duration::from_secs(30),
        "2-way split",
        |s| covers_disjointly(s, 6),
    );
    assert!(sets.iter().all(|s| s.len() == 3), "{sets:?}");

    // Once everyone left, the group is empty and can be deleted.
    drop(cs);
    let probe = broker.consumer();
    let ok = common::wait_until(Duration::from_secs(20), || {
        probe
            .fetch_group_list(Some("g3"), OP_TIMEOUT)
            .map(|l| l.groups().first().is_some_and(|g| g.state() == "Empty"))
            .unwrap_or(false)
    });
    assert!(ok, "group did not become Empty");
    let res = block_on(admin.delete_groups(&["g3"], &opts)).expect("delete_groups");
    assert!(res[0].is_ok(), "{res:?}");
    let list = probe
        .fetch_group_list(None, OP_TIMEOUT)
        .expect("list groups");
    assert!(list.groups().iter().all(|g| g.name() != "g3"));
}

/// The body of the child process of [`killed_member_is_replaced_after_its_session_times_out`]:
/// a group member that polls until it is SIGKILLed. Does nothing unless started by it.
#[test]
#[ignore = "helper process for another test"]
fn child_group_member() {
    let (Ok(bootstrap), Ok(group), Ok(topic)) = (
        std::env::var("EDDY_CHILD_BOOTSTRAP"),
        std::env::var("EDDY_CHILD_GROUP"),
        std::env::var("EDDY_CHILD_TOPIC"),
    ) else {
        return;
    };
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", &group)
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("partition.assignment.strategy", "range")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("log_level", "3")
        .create()
        .expect("child consumer");
    c.subscribe(&[&topic]).expect("subscribe");
    let until = Instant::now() + Duration::from_secs(120);
    let mut announced = false;
    while Instant::now() < until {
        let _ = c.poll(Duration::from_millis(50));
        if !announced && !assigned(&c).is_empty() {
            println!("CHILD-ASSIGNED {:?}", assigned(&c));
            announced = true;
        }
    }
}

struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn killed_member_is_replaced_after_its_session_times_out() {
    let broker = Broker::start_with(&["group.initial.rebalance.delay.ms=200"]);
    broker.create_topics(&[("gk-topic", 6)]);
    let exe = std::env::current_exe().expect("test binary");
    let child = Command::new(exe)
        .args(["--ignored", "--exact", "child_group_member", "--nocapture"])
        .env("EDDY_CHILD_BOOTSTRAP", broker.bootstrap())
        .env("EDDY_CHILD_GROUP", "gk")
        .env("EDDY_CHILD_TOPIC", "gk-topic")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child member");
    let mut child = ChildGuard(child);
    let me = group_consumer(&broker, "gk", &[("partition.assignment.strategy", "range")]);
    me.subscribe(&["gk-topic"]).expect("subscribe");
    poll_until(
        &broker,
        &[&me],
        Duration::from_secs(60),
        "half of the partitions",
        |s| s[0].len() == 3,
    );
    // Both are members of a stable group of two.
    let ok = common::wait_until(Duration::from_secs(20), || {
        let _ = me.poll(Duration::from_millis(10));
        me.fetch_group_list(Some("gk"), OP_TIMEOUT)
            .map(|l| {
                l.groups()
                    .first()
                    .is_some_and(|g| g.state() == "Stable" && g.members().len() == 2)
            })
            .unwrap_or(false)
    });
    assert!(ok, "group gk is not a stable group of two");

    // SIGKILL: no LeaveGroup, the coordinator must notice the silence.
    child.0.kill().expect("kill child");
    let killed = Instant::now();
    let _ = child.0.wait();
    poll_until(
        &broker,
        &[&me],
        Duration::from_secs(40),
        "all six partitions",
        |s| s[0].len() == 6,
    );
    let waited = killed.elapsed();
    assert!(
        waited >= Duration::from_secs(3),
        "partitions moved after {waited:?}: before the 6 s session timeout could pass"
    );
}

#[test]
fn committed_offsets_survive_a_broker_sigkill() {
    let mut broker = Broker::start_with(&["group.initial.rebalance.delay.ms=0"]);
    broker.create_topics(&[("gc-topic", 3)]);
    produce(&broker, "gc-topic", 3, 20);
    let group = "commit-group";
    {
        let c = group_consumer(&broker, group, &[]);
        c.subscribe(&["gc-topic"]).expect("subscribe");
        poll_until(&broker, &[&c], Duration::from_secs(30), "assignment", |s| {
            s[0].len() == 3
        });
        let mut tpl = TopicPartitionList::new();
        for (p, o) in [(0, 5), (1, 7), (2, 20)] {
            tpl.add_partition_offset("gc-topic", p, Offset::Offset(o))
                .expect("tpl");
        }
        c.commit(&tpl, CommitMode::Sync).expect("commit");
        let committed = c.committed(OP_TIMEOUT).expect("committed");
        let got: HashMap<i32, Offset> = committed
            .elements()
            .iter()
            .map(|e| (e.partition(), e.offset()))
            .collect();
        assert_eq!(got[&0], Offset::Offset(5));
        assert_eq!(got[&2], Offset::Offset(20));
    }
    // The records went to the group's partition of __consumer_offsets.
    let p = java_hash(group).wrapping_abs() % 50;
    let dir = broker.partition_dir("__consumer_offsets", p);
    let size: u64 = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum();
    assert!(size > 0, "nothing written to __consumer_offsets-{p}");

    broker.kill();
    broker.restart();

    // A simple consumer (no subscription) sees the offsets...
    let c = group_consumer(&broker, group, &[]);
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition("gc-topic", p);
    }
    let committed = c.committed_offsets(tpl, OP_TIMEOUT).expect("committed");
    let got: HashMap<i32, Offset> = committed
        .elements()
        .iter()
        .map(|e| (e.partition(), e.offset()))
        .collect();
    assert_eq!(got[&0], Offset::Offset(5));
    assert_eq!(got[&1], Offset::Offset(7));
    assert_eq!(got[&2], Offset::Offset(20));
    drop(c);

    // ...and a group member resumes from them.
    let c = group_consumer(&broker, group, &[]);
    c.subscribe(&["gc-topic"]).expect("subscribe");
    let mut first: HashMap<i32, i64> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while first.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "no records after restart: {first:?}"
        );
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            first.entry(m.partition()).or_insert(m.offset());
        }
    }
    assert_eq!(first.get(&0), Some(&5));
    assert_eq!(first.get(&1), Some(&7));
    assert!(!first.contains_key(&2), "partition 2 was fully committed");
}

#[test]
fn two_groups_on_one_topic_each_read_everything() {
    let broker = Broker::start_with(&["group.initial.rebalance.delay.ms=0"]);
    broker.create_topics(&[("g2-topic", 2)]);
    produce(&broker, "g2-topic", 2, 25);
    let a = group_consumer(&broker, "group-a", &[]);
    let b = group_consumer(&broker, "group-b", &[]);
    a.subscribe(&["g2-topic"]).expect("subscribe");
    b.subscribe(&["g2-topic"]).expect("subscribe");
    let mut got: [BTreeSet<String>; 2] = [BTreeSet::new(), BTreeSet::new()];
    let deadline = Instant::now() + Duration::from_secs(60);
    while got[0].len() < 50 || got[1].len() < 50 {
        assert!(
            Instant::now() < deadline,
            "groups read {} and {} of 50",
            got[0].len(),
            got[1].len()
        );
        for (i, c) in [&a, &b].iter().enumerate() {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(20)) {
                let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                got[i].insert(v);
            }
        }
    }
    assert_eq!(got[0], got[1]);
}

#[test]
fn kip848_consumer_gets_partitions_from_the_server_side_assignor() {
    let broker = Broker::start();
    broker.create_topics(&[("g848-topic", 4)]);
    produce(&broker, "g848-topic", 4, 5);
    let mk = || {
        let mut c: ClientConfig = broker.client_config();
        c.set("group.id", "g848")
            .set("group.protocol", "consumer")
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false");
        c.create::<BaseConsumer>().expect("create consumer")
    };
    let c1 = mk();
    c1.subscribe(&["g848-topic"]).expect("subscribe");
    poll_until(
        &broker,
        &[&c1],
        Duration::from_secs(30),
        "all partitions",
        |s| s[0].len() == 4,
    );
    // It can read and commit.
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while n < 20 {
        assert!(Instant::now() < deadline, "read {n} of 20");
        if let Some(Ok(_)) = c1.poll(Duration::from_millis(50)) {
            n += 1;
        }
    }
    c1.commit_consumer_state(CommitMode::Sync)
        .expect("commit with a member epoch");
    // A second member: the partitions are split, never owned twice.
    let c2 = mk();
    c2.subscribe(&["g848-topic"]).expect("subscribe");
    let sets = poll_until(
        &broker,
        &[&c1, &c2],
        Duration::from_secs(30),
        "2-way split",
        |s| covers_disjointly(s, 4),
    );
    assert_eq!(sets[0].len() + sets[1].len(), 4);
    // c2 leaves: c1 gets everything back.
    drop(c2);
    poll_until(
        &broker,
        &[&c1],
        Duration::from_secs(30),
        "all partitions again",
        |s| s[0].len() == 4,
    );
}

#[test]
fn static_member_restart_keeps_its_partitions_without_a_rebalance() {
    let broker = Broker::start_with(&["group.initial.rebalance.delay.ms=200"]);
    broker.create_topics(&[("gs-topic", 4)]);
    let mk = |instance: &str| {
        group_consumer(
            &broker,
            "gs",
            &[
                ("group.instance.id", instance),
                ("partition.assignment.strategy", "range"),
            ],
        )
    };
    let a = mk("instance-a");
    let b = mk("instance-b");
    a.subscribe(&["gs-topic"]).expect("subscribe");
    b.subscribe(&["gs-topic"]).expect("subscribe");
    let sets = poll_until(
        &broker,
        &[&a, &b],
        Duration::from_secs(60),
        "2-way split",
        |s| covers_disjointly(s, 4),
    );
    let (a_parts, b_parts) = (sets[0].clone(), sets[1].clone());
    // A static member does not leave on close; its replacement takes its place.
    drop(a);
    let a2 = mk("instance-a");
    a2.subscribe(&["gs-topic"]).expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let _ = a2.poll(Duration::from_millis(20));
        let _ = b.poll(Duration::from_millis(20));
        assert_eq!(
            assigned(&b),
            b_parts,
            "b's partitions changed: a rebalance happened"
        );
        if assigned(&a2) == a_parts {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted static member did not get {a_parts:?}: {:?}\n{}",
            assigned(&a2),
            broker.log_text()
        );
    }
    // A few more seconds: still no rebalance (the old member id is fenced, not expired into
    // a rebalance).
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        let _ = a2.poll(Duration::from_millis(20));
        let _ = b.poll(Duration::from_millis(20));
        assert_eq!(assigned(&b), b_parts);
        assert_eq!(assigned(&a2), a_parts);
    }
}

#[test]
fn kip848_group_resumes_from_committed_offsets_after_a_broker_sigkill() {
    let mut broker = Broker::start();
    broker.create_topics(&[("g848r-topic", 2)]);
    produce(&broker, "g848r-topic", 2, 10);
    let mk = |broker: &Broker| {
        let mut c: ClientConfig = broker.client_config();
        c.set("group.id", "g848r")
            .set("group.protocol", "consumer")
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false");
        c.create::<BaseConsumer>().expect("create consumer")
    };
    {
        let c = mk(&broker);
        c.subscribe(&["g848r-topic"]).expect("subscribe");
        poll_until(&broker, &[&c], Duration::from_secs(30), "assignment", |s| {
            s[0].len() == 2
        });
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("g848r-topic", 0, Offset::Offset(4))
            .expect("tpl");
        tpl.add_partition_offset("g848r-topic", 1, Offset::Offset(9))
            .expect("tpl");
        c.commit(&tpl, CommitMode::Sync).expect("commit");
    }
    broker.kill();
    broker.restart();
    // Membership is not persisted, offsets are: a new member starts where the group was.
    let c = mk(&broker);
    c.subscribe(&["g848r-topic"]).expect("subscribe");
    let mut first: HashMap<i32, i64> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while first.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "no records after restart: {first:?}\n{}",
            broker.log_text()
        );
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            first.entry(m.partition()).or_insert(m.offset());
        }
    }
    assert_eq!(first[&0], 4);
    assert_eq!(first[&1], 9);
}
