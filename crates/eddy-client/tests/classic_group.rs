//! The classic group member ([`ClassicMember`]) against a real broker:
//! joining, splitting partitions with the client-side assignors, leaving,
//! cooperative rebalancing, background heartbeats, the poll timeout and
//! offset commits with the member's identity.
//!
//! Each member runs in its own task (a rebalance needs every member to
//! rejoin concurrently) that calls `poll()` until idle, like the consumer
//! does, and records its events and owned partitions.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eddy_client::classic::ClassicMember;
use eddy_client::membership::{MemberConfig, MembershipEvent, TopicPartition};
use eddy_client::{Cluster, Connection, ErrorCode, NewTopic};
use eddy_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use eddy_protocol::messages::OffsetCommitRequest;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use common::Broker;

/// Broker settings for quick rebalances and short sessions.
const FAST: &[&str] = &[
    "group.initial.rebalance.delay.ms=0",
    "group.min.session.timeout.ms=500",
];

fn config(group: &str, strategy: &str) -> MemberConfig {
    let mut c = MemberConfig::new(group);
    c.assignment_strategies = vec![strategy.to_string()];
    c.session_timeout = Duration::from_millis(1500);
    c.heartbeat_interval = Duration::from_millis(150);
    c.rebalance_timeout = Duration::from_secs(10);
    c
}

fn set(parts: &[(&str, i32)]) -> BTreeSet<TopicPartition> {
    parts.iter().map(|(t, p)| (t.to_string(), *p)).collect()
}

fn all(topic: &str, n: i32) -> BTreeSet<TopicPartition> {
    (0..n).map(|p| (topic.to_string(), p)).collect()
}

enum Cmd {
    /// Do not call poll() for this long.
    Pause(Duration),
    /// leave() and stop.
    Leave,
    /// set_subscription().
    Subscribe(Vec<&'static str>),
    /// Stop and hand the member back.
    Stop,
}

/// What a member task records.
#[derive(Default)]
struct Seen {
    events: Vec<MembershipEvent>,
    /// `owned()` after each event.
    owned_history: Vec<BTreeSet<TopicPartition>>,
    owned: BTreeSet<TopicPartition>,
    errors: Vec<String>,
    generation: Option<i32>,
    member_id: String,
}

struct Runner {
    seen: Arc<Mutex<Seen>>,
    cmd: mpsc::UnboundedSender<Cmd>,
    task: tokio::task::JoinHandle<ClassicMember>,
}

impl Runner {
    fn start(broker: &Broker, config: MemberConfig, topics: &[&str]) -> Runner {
        let cluster = Cluster::new(broker.common()).expect("cluster");
        let mut member = ClassicMember::new(cluster, config).expect("member");
        member.set_subscription(topics.iter().map(|t| t.to_string()).collect());
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let s = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                // Poll until idle; a command may interrupt a poll (the
                // member must be cancel-safe).
                let cmd = loop {
                    tokio::select! {
                        r = member.poll() => match r {
                            Ok(Some(ev)) => {
                                let mut g = s.lock();
                                g.events.push(ev);
                                g.owned = member.owned().clone();
                                let o = g.owned.clone();
                                g.owned_history.push(o);
                                g.generation = member.generation_id();
                                g.member_id = member.member_id().to_string();
                            }
                            Ok(None) => {
                                let mut g = s.lock();
                                g.generation = member.generation_id();
                                g.member_id = member.member_id().to_string();
                                break None;
                            }
                            Err(e) => {
                                s.lock().errors.push(e.to_string());
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        },
                        c = rx.recv() => break c,
                    }
                };
                let cmd = match cmd {
                    Some(c) => Some(c),
                    None => {
                        let wait = member
                            .next_deadline()
                            .map(|d| d.saturating_duration_since(Instant::now()))
                            .unwrap_or(Duration::from_millis(50))
                            .min(Duration::from_millis(50));
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => None,
                            c = rx.recv() => c,
                        }
                    }
                };
                match cmd {
                    None => {}
                    Some(Cmd::Pause(d)) => tokio::time::sleep(d).await,
                    Some(Cmd::Subscribe(t)) => {
                        member.set_subscription(t.iter().map(|t| t.to_string()).collect())
                    }
                    Some(Cmd::Leave) => {
                        if let Err(e) = member.leave().await {
                            s.lock().errors.push(e.to_string());
                        }
                        s.lock().owned = member.owned().clone();
                        return member;
                    }
                    Some(Cmd::Stop) => return member,
                }
            }
        });
        Runner {
            seen,
            cmd: tx,
            task,
        }
    }

    fn owned(&self) -> BTreeSet<TopicPartition> {
        self.seen.lock().owned.clone()
    }

    fn events(&self) -> Vec<MembershipEvent> {
        self.seen.lock().events.clone()
    }

    fn generation(&self) -> Option<i32> {
        self.seen.lock().generation
    }

    fn errors(&self) -> Vec<String> {
        self.seen.lock().errors.clone()
    }

    async fn leave(self) -> ClassicMember {
        let _ = self.cmd.send(Cmd::Leave);
        self.task.await.expect("member task")
    }

    async fn stop(self) -> ClassicMember {
        let _ = self.cmd.send(Cmd::Stop);
        self.task.await.expect("member task")
    }
}

/// Waits until `cond` holds (checked every 50 ms), or panics after `secs`.
async fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn topic(broker: &Broker, name: &str, partitions: i32) {
    broker
        .admin()
        .create_topic(NewTopic::new(name, partitions), false)
        .await
        .expect("create topic");
}

/// Two members own disjoint sets that together are `expected`, each non-empty.
fn split(a: &Runner, b: &Runner, expected: &BTreeSet<TopicPartition>) -> bool {
    let (x, y) = (a.owned(), b.owned());
    !x.is_empty() && !y.is_empty() && x.is_disjoint(&y) && &(&x | &y) == expected
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_member_gets_all_partitions() {
    let broker = Broker::start_with(FAST);
    topic(&broker, "solo", 4).await;
    let m = Runner::start(&broker, config("g-solo", "range"), &["solo"]);
    wait_for("the assignment", 20, || m.owned() == all("solo", 4)).await;
    assert_eq!(
        m.events(),
        vec![MembershipEvent::Assigned(
            all("solo", 4).into_iter().collect()
        )]
    );
    assert!(m.generation().is_some_and(|g| g >= 1));
    assert!(m.errors().is_empty(), "{:?}", m.errors());
    let member = m.stop().await;
    let id = member.commit_identity().expect("identity");
    assert_eq!(id.member_id, member.member_id());
    assert!(!id.member_id.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_split_partitions_with_range() {
    let broker = Broker::start_with(FAST);
    topic(&broker, "ra", 3).await;
    topic(&broker, "rb", 3).await;
    let a = Runner::start(&broker, config("g-range", "range"), &["ra", "rb"]);
    wait_for("a alone", 20, || a.owned().len() == 6).await;
    let b = Runner::start(&broker, config("g-range", "range"), &["ra", "rb"]);
    let everything = &all("ra", 3) | &all("rb", 3);
    wait_for("the split", 30, || split(&a, &b, &everything)).await;
    // Range: the first member (by member id) gets partitions 0 and 1 of
    // each topic, the other partition 2 of each.
    let (x, y) = (a.owned(), b.owned());
    let (first, second) = if x.len() > y.len() { (x, y) } else { (y, x) };
    assert_eq!(first, set(&[("ra", 0), ("ra", 1), ("rb", 0), ("rb", 1)]));
    assert_eq!(second, set(&[("ra", 2), ("rb", 2)]));
    // Eager: a revoked everything before rejoining.
    let ev = a.events();
    assert_eq!(
        ev[1],
        MembershipEvent::Revoked(everything.iter().cloned().collect()),
        "{ev:?}"
    );
    assert!(!ev.iter().any(|e| matches!(e, MembershipEvent::Lost(_))));
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_split_partitions_with_roundrobin_and_a_leaver_hands_over() {
    let broker = Broker::start_with(FAST);
    topic(&broker, "rr", 4).await;
    let a = Runner::start(&broker, config("g-rr", "roundrobin"), &["rr"]);
    let b = Runner::start(&broker, config("g-rr", "roundrobin"), &["rr"]);
    wait_for("the split", 30, || split(&a, &b, &all("rr", 4))).await;
    // Round robin deals alternately: one has the even partitions.
    let (x, y) = (a.owned(), b.owned());
    assert_eq!(x.len(), 2);
    let evens = set(&[("rr", 0), ("rr", 2)]);
    assert!(x == evens || y == evens, "{x:?} {y:?}");

    // b leaves: a gets everything, without waiting for b's session to expire.
    let started = Instant::now();
    let left = b.leave().await;
    assert!(left.owned().is_empty());
    assert!(left.commit_identity().is_none());
    wait_for("a to take over", 20, || a.owned() == all("rr", 4)).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(a.errors().is_empty(), "{:?}", a.errors());
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_join_revokes_only_the_moved_partitions() {
    let broker = Broker::start_with(FAST);
    topic(&broker, "coop", 6).await;
    let a = Runner::start(&broker, config("g-coop", "cooperative-sticky"), &["coop"]);
    wait_for("a alone", 20, || a.owned() == all("coop", 6)).await;
    let gen_a = a.generation().expect("generation");
    let history_from = a.seen.lock().owned_history.len();

    let b = Runner::start(&broker, config("g-coop", "cooperative-sticky"), &["coop"]);
    wait_for("the split", 30, || {
        split(&a, &b, &all("coop", 6)) && a.owned().len() == 3
    })
    .await;
    // Two rebalances: one where a revokes, one where b gets the partitions.
    wait_for("a stable generation", 10, || {
        a.generation() == b.generation() && a.generation() > Some(gen_a + 1)
    })
    .await;
    let final_a = a.owned();
    let moved: BTreeSet<TopicPartition> = &all("coop", 6) - &final_a;
    {
        let seen = a.seen.lock();
        // a kept its three partitions throughout the rebalance ...
        for owned in &seen.owned_history[history_from..] {
            assert!(
                final_a.is_subset(owned),
                "a dropped a kept partition: {owned:?}"
            );
        }
        // ... and revoked exactly the moved ones, never losing any.
        let revoked: BTreeSet<TopicPartition> = seen.events[history_from..]
            .iter()
            .filter_map(|e| match e {
                MembershipEvent::Revoked(p) => Some(p.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(revoked, moved);
        assert!(!seen
            .events
            .iter()
            .any(|e| matches!(e, MembershipEvent::Lost(_))));
    }
    // b was only ever assigned partitions a had revoked before.
    let b_events = b.events();
    assert!(!b_events
        .iter()
        .any(|e| matches!(e, MembershipEvent::Revoked(_) | MembershipEvent::Lost(_))));
    assert_eq!(b.owned(), moved);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_a_member_alive_between_polls() {
    let broker = Broker::start_with(FAST);
    topic(&broker, "hb", 2).await;
    let m = Runner::start(&broker, config("g-hb", "range"), &["hb"]);
    wait_for("the assignment", 20, || m.owned() == all("hb", 2)).await;
    let generation = m.generation();
    // No poll() for twice the session timeout.
    m.cmd.send(Cmd::Pause(Duration::from_secs(3))).unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    // Still the same generation, nothing revoked or lost.
    assert_eq!(m.generation(), generation);
    assert_eq!(m.events().len(), 1, "{:?}", m.events());
    let d = broker.admin().describe_group("g-hb").await.unwrap();
    assert_eq!(d.state, "Stable");
    assert_eq!(d.members.len(), 1);
    assert_eq!(
        d.members[0].assignment,
        all("hb", 2).into_iter().collect::<Vec<_>>()
    );
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_timeout_leaves_the_group_and_the_next_poll_reports_lost() {
    let broker = Broker::start_with(FAST);
    topic(&broker, "pt", 2).await;
    let mut c = config("g-pt", "range");
    c.rebalance_timeout = Duration::from_millis(1000);
    let m = Runner::start(&broker, c, &["pt"]);
    wait_for("the assignment", 20, || m.owned() == all("pt", 2)).await;
    let first_member = m.seen.lock().member_id.clone();
    m.cmd.send(Cmd::Pause(Duration::from_millis(2500))).unwrap();
    // The member leaves by itself: the group empties.
    let admin = broker.admin();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = admin.describe_group("g-pt").await.unwrap();
        if d.members.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the member did not leave: {d:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Polling again: the partitions are lost, then assigned again to a new member id.
    wait_for("the rejoin", 20, || {
        m.events().len() >= 3 && m.owned() == all("pt", 2)
    })
    .await;
    let ev = m.events();
    assert_eq!(
        ev[1],
        MembershipEvent::Lost(all("pt", 2).into_iter().collect())
    );
    assert_eq!(
        ev[2],
        MembershipEvent::Assigned(all("pt", 2).into_iter().collect())
    );
    assert_ne!(m.seen.lock().member_id, first_member);
    m.stop().await;
}

async fn commit(
    conn: &Connection,
    group: &str,
    id: &eddy_client::membership::CommitIdentity,
    offset: i64,
) -> ErrorCode {
    let req = OffsetCommitRequest {
        group_id: group.to_string(),
        generation_id_or_member_epoch: id.generation_id,
        member_id: id.member_id.clone(),
        group_instance_id: id.group_instance_id.clone(),
        retention_time_ms: -1,
        topics: vec![OffsetCommitRequestTopic {
            name: "cm".into(),
            partitions: vec![OffsetCommitRequestPartition {
                partition_index: 0,
                committed_offset: offset,
                committed_leader_epoch: -1,
                commit_timestamp: -1,
                committed_metadata: Some(String::new()),
            }],
        }],
    };
    let resp = conn.send(&req).await.expect("offset commit");
    ErrorCode::from_code_or_unknown(resp.topics[0].partitions[0].error_code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_identity_is_accepted_and_a_stale_one_makes_the_member_rejoin() {
    let broker = Broker::start_with(FAST);
    topic(&broker, "cm", 1).await;
    let mut c = config("g-cm", "range");
    c.group_instance_id = Some("instance-1".into());
    let m = Runner::start(&broker, c, &["cm"]);
    wait_for("the assignment", 20, || m.owned() == all("cm", 1)).await;
    let mut member = m.stop().await;
    let id = member.commit_identity().expect("identity");
    assert_eq!(id.group_instance_id.as_deref(), Some("instance-1"));

    let admin = broker.admin();
    let coordinator = admin.find_coordinator("g-cm").await.unwrap();
    let conn = Connection::connect(&coordinator.addr(), (&broker.common()).into())
        .await
        .unwrap();
    assert_eq!(commit(&conn, "g-cm", &id, 42).await, ErrorCode::None);
    let offsets = admin.list_group_offsets("g-cm").await.unwrap();
    assert_eq!(offsets.len(), 1);
    assert_eq!((offsets[0].partition, offsets[0].offset), (0, 42));

    // A commit with an older generation is refused; told so, the member
    // loses its partitions and rejoins.
    let stale = eddy_client::membership::CommitIdentity {
        generation_id: id.generation_id - 1,
        ..id.clone()
    };
    let code = commit(&conn, "g-cm", &stale, 43).await;
    assert_eq!(code, ErrorCode::IllegalGeneration);
    member.commit_failed(code);
    assert!(member.commit_identity().is_none());
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while events.len() < 2 {
        assert!(Instant::now() < deadline, "no rejoin: {events:?}");
        match tokio::time::timeout(Duration::from_secs(5), member.poll()).await {
            Ok(Ok(Some(e))) => events.push(e),
            Ok(Ok(None)) => tokio::time::sleep(Duration::from_millis(50)).await,
            Ok(Err(e)) => panic!("poll failed: {e}"),
            Err(_) => {}
        }
    }
    assert_eq!(events[0], MembershipEvent::Lost(vec![("cm".into(), 0)]));
    assert_eq!(events[1], MembershipEvent::Assigned(vec![("cm".into(), 0)]));
    // The static member kept its member id; the new identity commits.
    let id2 = member.commit_identity().expect("identity after rejoin");
    assert_eq!(id2.member_id, id.member_id);
    assert_eq!(commit(&conn, "g-cm", &id2, 44).await, ErrorCode::None);
    member.leave().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_with_the_same_instance_id_fences_the_first() {
    let broker = Broker::start_with(FAST);
    topic(&broker, "fi", 2).await;
    let mut c = config("g-fi", "range");
    c.group_instance_id = Some("same".into());
    let a = Runner::start(&broker, c.clone(), &["fi"]);
    wait_for("a's assignment", 20, || a.owned() == all("fi", 2)).await;
    let b = Runner::start(&broker, c, &["fi"]);
    wait_for("b's assignment", 20, || b.owned() == all("fi", 2)).await;
    wait_for("a to be fenced", 20, || {
        a.errors().iter().any(|e| e.contains("FENCED_INSTANCE_ID"))
    })
    .await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_rejoins_when_partitions_are_added() {
    let broker = Broker::start_with(FAST);
    topic(&broker, "grow", 2).await;
    let mut common = broker.common();
    common.metadata_max_age = Duration::from_millis(300);
    let cluster = Cluster::new(common).unwrap();
    let mut member = ClassicMember::new(cluster, config("g-grow", "range")).unwrap();
    member.set_subscription(["grow".to_string()].into());
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let admin = broker.admin();
    let mut grown = false;
    while member.owned() != &all("grow", 4) {
        assert!(
            Instant::now() < deadline,
            "never got 4 partitions: {events:?}"
        );
        match tokio::time::timeout(Duration::from_millis(200), member.poll()).await {
            Ok(Ok(Some(e))) => events.push(e),
            Ok(Ok(None)) | Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            Ok(Err(e)) => panic!("poll failed: {e}"),
        }
        if !grown && member.owned() == &all("grow", 2) {
            admin.create_partitions("grow", 4, false).await.unwrap();
            grown = true;
        }
    }
    assert!(member.is_leader());
    assert_eq!(
        events.last(),
        Some(&MembershipEvent::Assigned(
            all("grow", 4).into_iter().collect()
        ))
    );
    member.leave().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_is_cancel_safe_during_a_join() {
    let broker = Broker::start_with(FAST);
    topic(&broker, "cs", 4).await;
    let a = Runner::start(&broker, config("g-cs", "range"), &["cs"]);
    wait_for("a alone", 20, || a.owned() == all("cs", 4)).await;
    // b's JoinGroup waits until a has rejoined: poll() is dropped after
    // 5 ms again and again meanwhile, and must neither lose nor repeat
    // anything.
    let cluster = Cluster::new(broker.common()).unwrap();
    let mut b = ClassicMember::new(cluster, config("g-cs", "range")).unwrap();
    b.set_subscription(["cs".to_string()].into());
    let mut events = Vec::new();
    let mut cancelled = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while b.owned().len() != 2 || a.owned().len() != 2 {
        assert!(Instant::now() < deadline, "no split: {events:?}");
        match tokio::time::timeout(Duration::from_millis(5), b.poll()).await {
            Ok(Ok(Some(e))) => events.push(e),
            Ok(Ok(None)) => tokio::time::sleep(Duration::from_millis(20)).await,
            Ok(Err(e)) => panic!("poll failed: {e}"),
            Err(_) => cancelled += 1,
        }
    }
    assert!(cancelled > 3, "poll() was never cancelled mid-join");
    assert_eq!(
        events,
        vec![MembershipEvent::Assigned(
            b.owned().iter().cloned().collect()
        )]
    );
    assert!(a.owned().is_disjoint(b.owned()));
    b.leave().await.unwrap();
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_member_keeps_its_partitions_when_another_leaves() {
    let broker = Broker::start_with(FAST);
    topic(&broker, "st", 6).await;
    let a = Runner::start(&broker, config("g-st", "sticky"), &["st"]);
    let b = Runner::start(&broker, config("g-st", "sticky"), &["st"]);
    let c = Runner::start(&broker, config("g-st", "sticky"), &["st"]);
    wait_for("the split", 30, || {
        let (x, y, z) = (a.owned(), b.owned(), c.owned());
        x.len() == 2 && y.len() == 2 && z.len() == 2 && (&(&x | &y) | &z) == all("st", 6)
    })
    .await;
    let (before_a, before_c) = (a.owned(), c.owned());
    b.leave().await;
    wait_for("a and c take over", 30, || {
        a.owned().len() == 3 && c.owned().len() == 3
    })
    .await;
    // Eager: everything was revoked, but the sticky assignor (fed by the
    // user data of the previous assignment) gave each its partitions back.
    assert!(
        before_a.is_subset(&a.owned()),
        "{before_a:?} {:?}",
        a.owned()
    );
    assert!(
        before_c.is_subset(&c.owned()),
        "{before_c:?} {:?}",
        c.owned()
    );
    a.stop().await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_static_leader_gets_its_assignment_back_without_a_rebalance() {
    let broker = Broker::start_with(FAST);
    topic(&broker, "sl", 3).await;
    let mut c = config("g-sl", "range");
    c.group_instance_id = Some("static-1".into());
    c.session_timeout = Duration::from_secs(5);
    let a = Runner::start(&broker, c.clone(), &["sl"]);
    wait_for("the assignment", 20, || a.owned() == all("sl", 3)).await;
    let generation = a.generation();
    // "Restart": drop the member without leaving, start another process
    // with the same group.instance.id within the session timeout.
    drop(a.stop().await);
    let b = Runner::start(&broker, c, &["sl"]);
    wait_for("the assignment again", 20, || b.owned() == all("sl", 3)).await;
    // KIP-345/KIP-814: same generation, no rebalance; the returning leader
    // skipped the assignment and got its partitions from the coordinator.
    assert_eq!(b.generation(), generation);
    assert!(b.errors().is_empty(), "{:?}", b.errors());
    let member = b.stop().await;
    assert!(member.is_leader());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_subscription_change_revokes_only_the_dropped_topic() {
    let broker = Broker::start_with(FAST);
    topic(&broker, "sa", 2).await;
    topic(&broker, "sb", 2).await;
    let m = Runner::start(
        &broker,
        config("g-sub", "cooperative-sticky"),
        &["sa", "sb"],
    );
    wait_for("the assignment", 20, || m.owned().len() == 4).await;
    let n = m.events().len();
    m.cmd.send(Cmd::Subscribe(vec!["sa"])).unwrap();
    wait_for("sb to go", 20, || m.owned() == all("sa", 2)).await;
    wait_for("the rebalance to finish", 20, || m.events().len() > n + 1).await;
    let ev = m.events();
    // sb's partitions are revoked before rejoining; sa's stay owned.
    assert_eq!(
        ev[n],
        MembershipEvent::Revoked(all("sb", 2).into_iter().collect()),
        "{ev:?}"
    );
    assert_eq!(ev[n + 1], MembershipEvent::Assigned(vec![]), "{ev:?}");
    for owned in &m.seen.lock().owned_history {
        assert!(all("sa", 2).is_subset(owned));
    }
    // Unsubscribing from everything: revoked, and the member leaves.
    m.cmd.send(Cmd::Subscribe(vec![])).unwrap();
    wait_for("the revocation", 20, || m.owned().is_empty()).await;
    assert_eq!(
        m.events().last(),
        Some(&MembershipEvent::Revoked(
            all("sa", 2).into_iter().collect()
        ))
    );
    let admin = broker.admin();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !admin
        .describe_group("g-sub")
        .await
        .unwrap()
        .members
        .is_empty()
    {
        assert!(Instant::now() < deadline, "the member did not leave");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_agree_on_a_common_assignor() {
    let broker = Broker::start_with(FAST);
    topic(&broker, "mx", 4).await;
    // a prefers range but also offers roundrobin; b only roundrobin: the
    // group uses roundrobin (alternate partitions), not range (0-1 / 2-3).
    let mut ca = config("g-mx", "range");
    ca.assignment_strategies = vec!["range".into(), "roundrobin".into()];
    let a = Runner::start(&broker, ca, &["mx"]);
    let b = Runner::start(&broker, config("g-mx", "roundrobin"), &["mx"]);
    wait_for("the split", 30, || split(&a, &b, &all("mx", 4))).await;
    let evens = set(&[("mx", 0), ("mx", 2)]);
    assert!(
        a.owned() == evens || b.owned() == evens,
        "{:?} {:?}",
        a.owned(),
        b.owned()
    );
    let d = broker.admin().describe_group("g-mx").await.unwrap();
    assert_eq!(d.assignor, "roundrobin");
    a.stop().await;
    b.stop().await;
}
