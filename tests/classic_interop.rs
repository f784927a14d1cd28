//! Interoperability of Eddy's classic group member (`eddy_client::classic::ClassicMember`)
//! with librdkafka in one classic consumer group: each side leads once (the first member to
//! join is the leader), so each decodes the other's subscription and assignment payloads
//! and the partitions are split without overlap. Eager (`range`) and cooperative
//! (`cooperative-sticky`, KIP-429) rebalancing.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use eddy_client::classic::ClassicMember;
use eddy_client::membership::{MemberConfig, MembershipEvent};
use eddy_client::{Cluster, CommonConfig};
use rdkafka::consumer::{BaseConsumer, Consumer};

use common::Broker;

type Parts = BTreeSet<(String, i32)>;

/// A librdkafka group member polled on its own thread; its assignment is
/// published after every poll.
struct RdMember {
    assignment: Arc<Mutex<Parts>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl RdMember {
    fn start(broker: &Broker, group: &str, topic: &str, strategy: &str) -> RdMember {
        let mut c = broker.client_config();
        c.set("group.id", group)
            .set("partition.assignment.strategy", strategy)
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "200")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false");
        let consumer: BaseConsumer = c.create().expect("rdkafka consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let assignment = Arc::new(Mutex::new(Parts::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (assignment.clone(), stop.clone());
        let thread = thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Some(Err(e)) = consumer.poll(Duration::from_millis(50)) {
                    eprintln!("rdkafka consumer error (ignored): {e}");
                }
                let now: Parts = consumer
                    .assignment()
                    .map(|tpl| {
                        tpl.elements()
                            .iter()
                            .map(|e| (e.topic().to_string(), e.partition()))
                            .collect()
                    })
                    .unwrap_or_default();
                *a.lock().unwrap() = now;
            }
            consumer.unsubscribe();
        });
        RdMember {
            assignment,
            stop,
            thread: Some(thread),
        }
    }

    fn assignment(&self) -> Parts {
        self.assignment.lock().unwrap().clone()
    }
}

impl Drop for RdMember {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn member(broker: &Broker, group: &str, topic: &str, strategy: &str) -> ClassicMember {
    let cluster = Cluster::new(CommonConfig::new(broker.bootstrap())).expect("cluster");
    let mut c = MemberConfig::new(group);
    c.assignment_strategies = vec![strategy.to_string()];
    c.session_timeout = Duration::from_secs(6);
    c.heartbeat_interval = Duration::from_millis(200);
    c.rebalance_timeout = Duration::from_secs(20);
    let mut m = ClassicMember::new(cluster, c).expect("member");
    m.set_subscription([topic.to_string()].into());
    m
}

/// Polls the member (as a consumer would) until `done` holds for (member, librdkafka).
async fn drive(
    m: &mut ClassicMember,
    rd: &RdMember,
    timeout: Duration,
    what: &str,
    mut done: impl FnMut(&Parts, &Parts) -> bool,
) -> Vec<MembershipEvent> {
    let deadline = Instant::now() + timeout;
    let mut events = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_millis(100), m.poll()).await {
            Ok(Ok(Some(e))) => {
                events.push(e);
                continue;
            }
            Ok(Ok(None)) => tokio::time::sleep(Duration::from_millis(50)).await,
            Ok(Err(e)) => panic!("member poll failed: {e}"),
            // A join still in flight: poll() is cancel-safe, poll again.
            Err(_) => {}
        }
        if done(m.owned(), &rd.assignment()) {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: eddy {:?}, librdkafka {:?}, events {events:?}",
            m.owned(),
            rd.assignment()
        );
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn all(topic: &str, n: i32) -> Parts {
    (0..n).map(|p| (topic.to_string(), p)).collect()
}

fn split_evenly(a: &Parts, b: &Parts, everything: &Parts) -> bool {
    a.len() == everything.len() / 2
        && b.len() == everything.len() / 2
        && a.is_disjoint(b)
        && &(a | b) == everything
}

#[test]
fn range_group_with_librdkafka_leading() {
    let broker = Broker::start_with(&["group.initial.rebalance.delay.ms=0"]);
    broker.create_topics(&[("interop-range", 4)]);
    runtime().block_on(async move {
        let everything = all("interop-range", 4);
        // librdkafka first: it leads and assigns to both.
        let rd = RdMember::start(&broker, "gi-range", "interop-range", "range");
        let deadline = Instant::now() + Duration::from_secs(30);
        while rd.assignment() != everything {
            assert!(
                Instant::now() < deadline,
                "librdkafka never got the partitions"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut m = member(&broker, "gi-range", "interop-range", "range");
        let events = drive(&mut m, &rd, Duration::from_secs(40), "the split", |a, b| {
            split_evenly(a, b, &everything)
        })
        .await;
        assert!(!m.is_leader());
        assert!(matches!(events.last(), Some(MembershipEvent::Assigned(p)) if p.len() == 2));
        // Eddy leaves: librdkafka gets everything back.
        m.leave().await.expect("leave");
        let deadline = Instant::now() + Duration::from_secs(30);
        while rd.assignment() != everything {
            assert!(Instant::now() < deadline, "librdkafka never took over");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

#[test]
fn cooperative_sticky_group_with_eddy_leading() {
    let broker = Broker::start_with(&["group.initial.rebalance.delay.ms=0"]);
    broker.create_topics(&[("interop-coop", 4)]);
    runtime().block_on(async move {
        let everything = all("interop-coop", 4);
        let mut m = member(&broker, "gi-coop", "interop-coop", "cooperative-sticky");
        let empty = RdMember {
            assignment: Arc::new(Mutex::new(Parts::new())),
            stop: Arc::new(AtomicBool::new(true)),
            thread: None,
        };
        drive(
            &mut m,
            &empty,
            Duration::from_secs(30),
            "eddy alone",
            |a, _| a == &everything,
        )
        .await;
        assert!(m.is_leader());
        // librdkafka joins; Eddy leads and hands two partitions over, revoking
        // them first and keeping the other two throughout.
        let rd = RdMember::start(&broker, "gi-coop", "interop-coop", "cooperative-sticky");
        let mut min_owned = m.owned().clone();
        let events = drive(&mut m, &rd, Duration::from_secs(40), "the split", |a, b| {
            if a.len() < min_owned.len() {
                min_owned = a.clone();
            }
            split_evenly(a, b, &everything)
        })
        .await;
        assert_eq!(min_owned.len(), 2, "eddy dropped below its final share");
        assert!(m.is_leader());
        assert!(!events.iter().any(|e| matches!(e, MembershipEvent::Lost(_))));
        let revoked: Parts = events
            .iter()
            .filter_map(|e| match e {
                MembershipEvent::Revoked(p) => Some(p.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(revoked, rd.assignment());
        m.leave().await.expect("leave");
    });
}

#[test]
fn cooperative_sticky_group_with_librdkafka_leading() {
    let broker = Broker::start_with(&["group.initial.rebalance.delay.ms=0"]);
    broker.create_topics(&[("interop-coop2", 6)]);
    runtime().block_on(async move {
        let everything = all("interop-coop2", 6);
        let rd = RdMember::start(&broker, "gi-coop2", "interop-coop2", "cooperative-sticky");
        let deadline = Instant::now() + Duration::from_secs(30);
        while rd.assignment() != everything {
            assert!(
                Instant::now() < deadline,
                "librdkafka never got the partitions"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Eddy joins; librdkafka leads, revokes three partitions first and
        // Eddy gets them in the follow-up rebalance.
        let mut m = member(&broker, "gi-coop2", "interop-coop2", "cooperative-sticky");
        let events = drive(&mut m, &rd, Duration::from_secs(40), "the split", |a, b| {
            split_evenly(a, b, &everything)
        })
        .await;
        assert!(!m.is_leader());
        assert!(!events
            .iter()
            .any(|e| matches!(e, MembershipEvent::Revoked(_) | MembershipEvent::Lost(_))));
        let assigned: Parts = events
            .iter()
            .filter_map(|e| match e {
                MembershipEvent::Assigned(p) => Some(p.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(&assigned, m.owned());
        m.leave().await.expect("leave");
        let deadline = Instant::now() + Duration::from_secs(30);
        while rd.assignment() != everything {
            assert!(Instant::now() < deadline, "librdkafka never took over");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

#[test]
fn classic_member_survives_a_broker_restart() {
    let mut broker = Broker::start_with(&["group.initial.rebalance.delay.ms=0"]);
    broker.create_topics(&[("restart-t", 2)]);
    let everything = all("restart-t", 2);
    let rt = runtime();
    let mut m = member(&broker, "gi-restart", "restart-t", "range");
    let nobody = RdMember {
        assignment: Arc::new(Mutex::new(Parts::new())),
        stop: Arc::new(AtomicBool::new(true)),
        thread: None,
    };
    rt.block_on(drive(
        &mut m,
        &nobody,
        Duration::from_secs(30),
        "the assignment",
        |a, _| a == &everything,
    ));
    // SIGKILL and restart on the same port, while the heartbeat task runs.
    broker.restart();
    rt.block_on(async {
        // The member reconnects, finds the coordinator again and is still
        // (or again) the owner of everything; poll() never fails.
        let deadline = Instant::now() + Duration::from_secs(8);
        let mut events = Vec::new();
        while Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_millis(100), m.poll()).await {
                Ok(Ok(Some(e))) => events.push(e),
                Ok(Ok(None)) => tokio::time::sleep(Duration::from_millis(50)).await,
                Ok(Err(e)) => panic!("poll failed after the restart: {e}"),
                Err(_) => {}
            }
        }
        let settled = drive(
            &mut m,
            &nobody,
            Duration::from_secs(30),
            "the rejoin",
            |a, _| a == &everything,
        )
        .await;
        events.extend(settled);
        assert_eq!(m.owned(), &everything, "{events:?}");
        assert!(m.commit_identity().is_some());
        // Whatever was given up came back.
        if let Some(MembershipEvent::Lost(p) | MembershipEvent::Revoked(p)) = events.first() {
            assert_eq!(p.iter().cloned().collect::<Parts>(), everything);
        }
        m.leave().await.expect("leave");
    });
}
