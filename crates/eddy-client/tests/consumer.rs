//! The consumer against a real `eddy broker`: subscriptions (topics and
//! patterns) with both group protocols, the rebalance listener, commits,
//! positions, pause/resume and wakeup.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eddy_client::{
    AutoOffsetReset, ClientError, Consumer, ConsumerConfig, GroupProtocol, NewTopic, Producer,
    ProducerRecord, Rebalance, RebalanceListener, StartOffset,
};

use common::{poll_n, Broker};

const PROTOCOLS: [GroupProtocol; 2] = [GroupProtocol::Consumer, GroupProtocol::Classic];

/// Produces `n` records "v0".."v{n-1}" to `partition` of `topic`.
async fn produce(broker: &Broker, topic: &str, partition: i32, n: usize) {
    let producer = Producer::new(broker.producer_config()).unwrap();
    let mut futs = Vec::new();
    for i in 0..n {
        let record = ProducerRecord::new(topic, format!("v{i}")).partition(partition);
        futs.push(producer.send(record).await.expect("send"));
    }
    for f in futs {
        f.await.expect("produce");
    }
}

fn group_config(broker: &Broker, group: &str, protocol: GroupProtocol) -> ConsumerConfig {
    let mut cfg = broker.consumer_config().with_group(group);
    cfg.group_protocol = protocol;
    cfg.auto_offset_reset = AutoOffsetReset::Earliest;
    cfg.session_timeout = Duration::from_secs(10);
    cfg.heartbeat_interval = Duration::from_millis(300);
    cfg
}

/// Polls until `cond` holds for the consumer (panics after 30 s).
async fn poll_until(consumer: &mut Consumer, what: &str, cond: impl Fn(&Consumer) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond(consumer) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        consumer
            .poll(Duration::from_millis(100))
            .await
            .expect("poll");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_poll_commit_close_with_both_protocols() {
    let broker = Broker::start();
    let admin = broker.admin();
    for protocol in PROTOCOLS {
        let topic = format!("sub-{protocol:?}").to_lowercase();
        admin
            .create_topic(NewTopic::new(&topic, 3), false)
            .await
            .unwrap();
        for p in 0..3 {
            produce(&broker, &topic, p, 5 + p as usize).await;
        }
        let group = format!("g-{topic}");
        let mut cfg = group_config(&broker, &group, protocol);
        cfg.enable_auto_commit = false;
        cfg.max_poll_records = 4;
        let mut c = Consumer::new(cfg).unwrap();
        c.subscribe([topic.as_str()]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut got = Vec::new();
        while got.len() < 18 {
            assert!(
                Instant::now() < deadline,
                "{protocol:?}: {} of 18",
                got.len()
            );
            let batch = c.poll(Duration::from_millis(200)).await.unwrap();
            assert!(batch.len() <= 4, "max.poll.records: {}", batch.len());
            got.extend(batch);
        }
        assert_eq!(c.assignment().len(), 3, "{protocol:?}");
        // Every record once, in order per partition.
        let mut per: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
        for r in &got {
            per.entry(r.partition).or_default().push(r.offset);
        }
        for (p, offs) in &per {
            let n = 5 + *p as i64;
            assert_eq!(offs, &(0..n).collect::<Vec<_>>(), "{protocol:?} p{p}");
        }
        let parts: Vec<(String, i32)> = (0..3).map(|p| (topic.clone(), p)).collect();
        assert_eq!(c.committed(&parts).await.unwrap(), vec![None, None, None]);
        c.commit_sync().await.unwrap();
        assert_eq!(
            c.committed(&parts).await.unwrap(),
            vec![Some(5), Some(6), Some(7)]
        );
        let d = admin.describe_group(&group).await.unwrap();
        assert_eq!(d.state, "Stable", "{protocol:?}");
        assert_eq!(d.members.len(), 1);
        assert_eq!(d.members[0].member_id, c.member_id());
        c.close().await.unwrap();
        let d = admin.describe_group(&group).await.unwrap();
        assert_eq!(d.state, "Empty", "{protocol:?} after close");
        assert!(matches!(
            c.poll(Duration::ZERO).await,
            Err(ClientError::Closed(_))
        ));
    }
}

/// A listener callback: its name and the partitions it was given.
type ListenerEvent = (String, Vec<(String, i32)>);

/// Records what the listener saw, and commits positions on revocation.
#[derive(Clone, Default)]
struct Recorder {
    events: Arc<Mutex<Vec<ListenerEvent>>>,
}

impl RebalanceListener for Recorder {
    fn on_partitions_revoked(&mut self, ctx: &mut Rebalance<'_>, partitions: &[(String, i32)]) {
        ctx.commit_positions(partitions);
        self.events
            .lock()
            .unwrap()
            .push(("revoked".into(), partitions.to_vec()));
    }

    fn on_partitions_assigned(&mut self, _ctx: &mut Rebalance<'_>, partitions: &[(String, i32)]) {
        self.events
            .lock()
            .unwrap()
            .push(("assigned".into(), partitions.to_vec()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_listener_commits_revoked_partitions_so_nothing_is_read_twice() {
    let broker = Broker::start();
    let admin = broker.admin();
    for protocol in PROTOCOLS {
        let topic = format!("rb-{protocol:?}").to_lowercase();
        admin
            .create_topic(NewTopic::new(&topic, 4), false)
            .await
            .unwrap();
        for p in 0..4 {
            produce(&broker, &topic, p, 10).await;
        }
        let group = format!("g-{topic}");
        let mut cfg = group_config(&broker, &group, protocol);
        cfg.enable_auto_commit = false;
        let first_events = Recorder::default();
        let mut first = Consumer::new(cfg.clone()).unwrap();
        first
            .subscribe_with_listener([topic.as_str()], first_events.clone())
            .unwrap();
        let got_first = poll_n(&mut first, 40).await;
        assert_eq!(first.assignment().len(), 4);
        {
            let ev = first_events.events.lock().unwrap();
            assert_eq!(ev[0].0, "assigned", "{ev:?}");
        }
        // More records, then a second member joins: partitions move, and
        // the first member commits what it consumed when they are revoked.
        for p in 0..4 {
            produce(&broker, &topic, p, 5).await;
        }
        let second_events = Recorder::default();
        let mut second = Consumer::new(cfg.clone()).unwrap();
        second
            .subscribe_with_listener([topic.as_str()], second_events.clone())
            .unwrap();
        let mut seen: Vec<(i32, i64)> = got_first.iter().map(|r| (r.partition, r.offset)).collect();
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            assert!(
                Instant::now() < deadline,
                "no 2+2 split: {:?} / {:?}",
                first.assignment(),
                second.assignment()
            );
            let (a, b) = tokio::join!(
                first.poll(Duration::from_millis(100)),
                second.poll(Duration::from_millis(100))
            );
            seen.extend(a.unwrap().iter().map(|r| (r.partition, r.offset)));
            seen.extend(b.unwrap().iter().map(|r| (r.partition, r.offset)));
            if first.assignment().len() == 2 && second.assignment().len() == 2 && seen.len() >= 60 {
                break;
            }
        }
        let unique: BTreeSet<(i32, i64)> = seen.iter().copied().collect();
        assert_eq!(
            unique.len(),
            seen.len(),
            "{protocol:?}: a record was read twice"
        );
        assert_eq!(unique.len(), 60, "{protocol:?}");
        let revoked: Vec<_> = first_events
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.0 == "revoked")
            .cloned()
            .collect();
        assert!(!revoked.is_empty(), "{protocol:?}: no revocation");
        let a: BTreeSet<_> = first.assignment().into_iter().collect();
        let b: BTreeSet<_> = second.assignment().into_iter().collect();
        assert!(a.is_disjoint(&b));
        second.close().await.unwrap();
        first.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positions_seek_pause_resume_and_wakeup() {
    let broker = Broker::start();
    broker
        .admin()
        .create_topic(NewTopic::new("pos", 2), false)
        .await
        .unwrap();
    produce(&broker, "pos", 0, 10).await;
    produce(&broker, "pos", 1, 10).await;
    let mut c = Consumer::new(broker.consumer_config()).unwrap();
    c.assign(vec![
        ("pos".into(), 0, StartOffset::Offset(3)),
        ("pos".into(), 1, StartOffset::Latest),
    ])
    .await
    .unwrap();
    assert_eq!(c.position("pos", 0), Some(3));
    assert_eq!(c.position("pos", 1), Some(10));
    let got = poll_n(&mut c, 7).await;
    assert!(got.iter().all(|r| r.partition == 0));
    assert_eq!(c.position("pos", 0), Some(10));
    let p0 = [("pos".to_string(), 0)];
    let p1 = [("pos".to_string(), 1)];
    c.seek_to_beginning(&p1).await.unwrap();
    assert_eq!(c.position("pos", 1), Some(0));
    c.seek_to_beginning(&p0).await.unwrap();
    // Paused partitions return nothing until resumed.
    c.pause(&p0).unwrap();
    assert_eq!(c.paused(), p0.to_vec());
    let got = poll_n(&mut c, 10).await;
    assert!(
        got.iter().all(|r| r.partition == 1),
        "paused p0 returned records"
    );
    c.resume(&p0).unwrap();
    let got = poll_n(&mut c, 10).await;
    assert!(got.iter().all(|r| r.partition == 0));
    assert_eq!(got[0].offset, 0);
    c.seek_to_end(&p0).await.unwrap();
    assert_eq!(c.position("pos", 0), Some(10));
    assert!(c.pause(&[("other".to_string(), 0)]).is_err());
    assert!(c.seek("pos", 7, StartOffset::Earliest).await.is_err());

    // wakeup() interrupts a poll blocked on an idle partition...
    let handle = c.wakeup_handle();
    let waker = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        handle.wakeup();
    });
    let started = Instant::now();
    let r = c.poll(Duration::from_secs(30)).await;
    assert!(matches!(r, Err(ClientError::Wakeup)), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(20));
    waker.await.unwrap();
    // ...and a wakeup with no poll running makes the next one return at once.
    c.wakeup_handle().wakeup();
    assert!(matches!(
        c.poll(Duration::from_secs(30)).await,
        Err(ClientError::Wakeup)
    ));
    // Afterwards polls work again.
    produce(&broker, "pos", 0, 1).await;
    let got = poll_n(&mut c, 1).await;
    assert_eq!(got[0].offset, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_async_auto_and_offset_reset_none() {
    let broker = Broker::start();
    broker
        .admin()
        .create_topic(NewTopic::new("ac", 1), false)
        .await
        .unwrap();
    produce(&broker, "ac", 0, 6).await;
    let tp = [("ac".to_string(), 0)];

    // Assigned (no subscription) consumer with a group id: commit_async.
    let mut cfg = broker.consumer_config().with_group("manual");
    cfg.enable_auto_commit = false;
    cfg.auto_offset_reset = AutoOffsetReset::Earliest;
    let mut c = Consumer::new(cfg.clone()).unwrap();
    c.assign(vec![("ac".into(), 0, StartOffset::Committed)])
        .await
        .unwrap();
    assert_eq!(
        c.position("ac", 0),
        Some(0),
        "no commit: auto.offset.reset earliest?"
    );
    poll_n(&mut c, 6).await;
    let (tx, rx) = tokio::sync::oneshot::channel();
    c.commit_async(Some(Box::new(move |r| {
        let _ = tx.send(r);
    })))
    .await
    .unwrap();
    rx.await.unwrap().unwrap();
    assert_eq!(c.committed(&tp).await.unwrap(), vec![Some(6)]);
    c.commit_offsets_sync(&[("ac".into(), 0, 2)]).await.unwrap();
    c.close().await.unwrap();
    // A new consumer starts at the committed offset.
    let mut c = Consumer::new(cfg).unwrap();
    c.assign(vec![("ac".into(), 0, StartOffset::Committed)])
        .await
        .unwrap();
    assert_eq!(c.position("ac", 0), Some(2));

    // Auto-commit: positions are committed while polling and on close.
    let mut cfg = broker.consumer_config().with_group("auto");
    cfg.auto_offset_reset = AutoOffsetReset::Earliest;
    cfg.auto_commit_interval = Duration::from_millis(100);
    let mut c = Consumer::new(cfg).unwrap();
    c.subscribe(["ac"]).unwrap();
    poll_n(&mut c, 6).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.committed(&tp).await.unwrap() != vec![Some(6)] {
        assert!(Instant::now() < deadline, "auto-commit never happened");
        c.poll(Duration::from_millis(100)).await.unwrap();
    }
    c.close().await.unwrap();

    // auto.offset.reset=none without a committed offset is an error.
    let mut cfg = broker.consumer_config().with_group("none");
    cfg.auto_offset_reset = AutoOffsetReset::None;
    let mut c = Consumer::new(cfg).unwrap();
    let e = c
        .assign(vec![("ac".into(), 0, StartOffset::Committed)])
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::NoOffset { .. }), "{e}");
    assert!(e.to_string().contains("auto.offset.reset"), "{e}");

    // subscribe needs a group id; assign and subscribe exclude each other.
    let mut c = Consumer::new(broker.consumer_config()).unwrap();
    let e = c.subscribe(["ac"]).unwrap_err();
    assert!(e.to_string().contains("group.id"), "{e}");
    let mut c = Consumer::new(broker.consumer_config().with_group("x")).unwrap();
    c.assign(vec![("ac".into(), 0, StartOffset::Earliest)])
        .await
        .unwrap();
    assert!(c.subscribe(["ac"]).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pattern_subscription_follows_new_topics() {
    let broker = Broker::start();
    let admin = broker.admin();
    for protocol in PROTOCOLS {
        let prefix = format!("pat{protocol:?}").to_lowercase();
        for t in ["a", "b"] {
            admin
                .create_topic(NewTopic::new(format!("{prefix}-{t}"), 1), false)
                .await
                .unwrap();
        }
        admin
            .create_topic(NewTopic::new(format!("x{prefix}-other"), 1), false)
            .await
            .unwrap();
        let mut cfg = group_config(&broker, &format!("g-{prefix}"), protocol);
        cfg.common.metadata_max_age = Duration::from_millis(300);
        let mut c = Consumer::new(cfg).unwrap();
        c.subscribe_pattern(&format!("{prefix}-.*")).unwrap();
        let want = |names: &[&str]| -> Vec<(String, i32)> {
            names.iter().map(|n| (format!("{prefix}-{n}"), 0)).collect()
        };
        let ab = want(&["a", "b"]);
        poll_until(&mut c, "a and b assigned", |c| c.assignment() == ab).await;
        admin
            .create_topic(NewTopic::new(format!("{prefix}-c"), 1), false)
            .await
            .unwrap();
        let abc = want(&["a", "b", "c"]);
        poll_until(&mut c, "the new topic assigned", |c| c.assignment() == abc).await;
        produce(&broker, &format!("{prefix}-c"), 0, 2).await;
        let got = poll_n(&mut c, 2).await;
        assert!(got.iter().all(|r| r.topic == format!("{prefix}-c")));
        c.close().await.unwrap();
    }
    assert!(Consumer::new(broker.consumer_config().with_group("g"))
        .unwrap()
        .subscribe_pattern("(")
        .is_err());
}
