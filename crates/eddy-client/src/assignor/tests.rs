use super::*;

fn tp(t: &str, p: i32) -> TopicPartition {
    (t.to_string(), p)
}

fn sub(topics: &[&str]) -> Subscription {
    Subscription {
        topics: topics.iter().map(|t| t.to_string()).collect(),
        ..Default::default()
    }
}

fn counts(list: &[(&str, i32)]) -> BTreeMap<String, i32> {
    list.iter().map(|(t, c)| (t.to_string(), *c)).collect()
}

fn members(list: Vec<(&str, Subscription)>) -> BTreeMap<String, Subscription> {
    list.into_iter().map(|(m, s)| (m.to_string(), s)).collect()
}

fn parts(a: &BTreeMap<String, Assignment>, m: &str) -> Vec<TopicPartition> {
    a.get(m).map(|x| x.partitions.clone()).unwrap_or_default()
}

/// Tiny deterministic generator for randomized checks.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// ---------------------------------------------------------------- codec

#[test]
fn subscription_round_trips_at_every_version() {
    let s = Subscription {
        topics: vec!["a".into(), "b".into()],
        user_data: Some(Bytes::from_static(b"ud")),
        owned_partitions: vec![tp("a", 1), tp("a", 0), tp("b", 3)],
        generation_id: Some(7),
        rack_id: Some("r1".into()),
        group_instance_id: None,
    };
    for v in 0..=3 {
        let bytes = encode_subscription(&s, v).unwrap();
        assert_eq!(&bytes[..2], &v.to_be_bytes());
        let d = decode_subscription(&bytes).unwrap();
        assert_eq!(d.topics, s.topics);
        assert_eq!(d.user_data, s.user_data);
        if v >= 1 {
            // Grouped by topic, partitions sorted.
            assert_eq!(d.owned_partitions, vec![tp("a", 0), tp("a", 1), tp("b", 3)]);
        } else {
            assert!(d.owned_partitions.is_empty());
        }
        assert_eq!(d.generation_id, (v >= 2).then_some(7));
        assert_eq!(d.rack_id, (v >= 3).then(|| "r1".to_string()));
    }
}

#[test]
fn newer_versions_and_trailing_bytes_are_tolerated() {
    let s = Subscription {
        topics: vec!["t".into()],
        generation_id: Some(2),
        ..Default::default()
    };
    let v3 = encode_subscription(&s, 3).unwrap();
    // A future version 9 that appends a field: read as v3, extra ignored.
    let mut future = vec![0u8, 9];
    future.extend_from_slice(&v3[2..]);
    future.extend_from_slice(&[1, 2, 3, 4, 5]);
    let d = decode_subscription(&Bytes::from(future)).unwrap();
    assert_eq!(d.topics, vec!["t".to_string()]);
    assert_eq!(d.generation_id, Some(2));

    let a = Assignment::new(vec![tp("t", 2), tp("t", 0)]);
    let mut bytes = encode_assignment(&a, 1).unwrap().to_vec();
    bytes.extend_from_slice(b"junk");
    let d = decode_assignment(&Bytes::from(bytes)).unwrap();
    assert_eq!(d.partitions, vec![tp("t", 0), tp("t", 2)]);
    assert_eq!(d.user_data, None);
}

#[test]
fn malformed_payloads_are_errors_not_panics() {
    let s = Subscription {
        topics: vec!["topic".into()],
        user_data: Some(Bytes::from_static(b"x")),
        owned_partitions: vec![tp("topic", 1)],
        generation_id: Some(1),
        rack_id: Some("r".into()),
        group_instance_id: None,
    };
    let full = encode_subscription(&s, 3).unwrap();
    for cut in 0..full.len() {
        let r = decode_subscription(&full.slice(..cut));
        assert!(r.is_err(), "prefix of {cut} bytes decoded: {r:?}");
    }
    let e = decode_subscription(&Bytes::from_static(&[0xff, 0xff, 0, 0, 0, 0])).unwrap_err();
    assert!(e.to_string().contains("subscription"), "{e}");
    // A negative array length other than -1, a huge one.
    assert!(decode_assignment(&Bytes::from_static(&[0, 0, 0x7f, 0xff, 0xff, 0xff])).is_err());
    // Random input never panics.
    let mut rng = Rng(0x5eed);
    for _ in 0..2000 {
        let n = rng.below(40) as usize;
        let b: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        let _ = decode_subscription(&Bytes::from(b.clone()));
        let _ = decode_assignment(&Bytes::from(b.clone()));
        let _ = decode_sticky_user_data(&Bytes::from(b));
    }
    // An empty assignment payload is an empty assignment.
    assert_eq!(
        decode_assignment(&Bytes::new()).unwrap(),
        Assignment::default()
    );
}

#[test]
fn sticky_user_data_is_javas_layout() {
    let data = encode_sticky_user_data(&[tp("t", 1), tp("t", 0), tp("u", 4)], 5);
    // [array len 2]["t"][2 partitions: 0, 1]["u"][1 partition: 4][generation 5]
    let expected: Vec<u8> = [
        &[0, 0, 0, 2][..],
        &[0, 1, b't', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1],
        &[0, 1, b'u', 0, 0, 0, 1, 0, 0, 0, 4],
        &[0, 0, 0, 5],
    ]
    .concat();
    assert_eq!(&data[..], &expected[..]);
    let d = decode_sticky_user_data(&data).unwrap();
    assert_eq!(d.partitions, vec![tp("t", 0), tp("t", 1), tp("u", 4)]);
    assert_eq!(d.generation, Some(5));
    // V0 has no generation.
    let v0 = data.slice(..data.len() - 4);
    assert_eq!(decode_sticky_user_data(&v0).unwrap().generation, None);
    assert!(decode_sticky_user_data(&data.slice(..6)).is_none());
}

// ---------------------------------------------------------------- range

#[test]
fn range_javadoc_example() {
    // Two consumers, two topics of three partitions each.
    let subs = members(vec![("C0", sub(&["t0", "t1"])), ("C1", sub(&["t0", "t1"]))]);
    let a = RangeAssignor
        .assign(&counts(&[("t0", 3), ("t1", 3)]), &subs)
        .unwrap();
    assert_eq!(
        parts(&a, "C0"),
        vec![tp("t0", 0), tp("t0", 1), tp("t1", 0), tp("t1", 1)]
    );
    assert_eq!(parts(&a, "C1"), vec![tp("t0", 2), tp("t1", 2)]);
}

#[test]
fn range_orders_static_members_first_by_instance_id() {
    let mut a = sub(&["t"]);
    a.group_instance_id = Some("z".into());
    let mut b = sub(&["t"]);
    b.group_instance_id = Some("y".into());
    let c = sub(&["t"]);
    // Member ids a < b < c, but instance ids put b before a, and the
    // dynamic member c last.
    let subs = members(vec![("a", a), ("b", b), ("c", c)]);
    let r = RangeAssignor.assign(&counts(&[("t", 5)]), &subs).unwrap();
    assert_eq!(parts(&r, "b"), vec![tp("t", 0), tp("t", 1)]);
    assert_eq!(parts(&r, "a"), vec![tp("t", 2), tp("t", 3)]);
    assert_eq!(parts(&r, "c"), vec![tp("t", 4)]);
}

#[test]
fn range_only_assigns_subscribers_and_every_member_has_an_entry() {
    let subs = members(vec![
        ("m1", sub(&["a"])),
        ("m2", sub(&["a", "b"])),
        ("m3", sub(&["missing"])),
    ]);
    let r = RangeAssignor
        .assign(&counts(&[("a", 3), ("b", 2)]), &subs)
        .unwrap();
    assert_eq!(parts(&r, "m1"), vec![tp("a", 0), tp("a", 1)]);
    assert_eq!(parts(&r, "m2"), vec![tp("a", 2), tp("b", 0), tp("b", 1)]);
    assert!(r.contains_key("m3") && parts(&r, "m3").is_empty());
}

// ---------------------------------------------------------------- roundrobin

#[test]
fn roundrobin_javadoc_examples() {
    let subs = members(vec![("C0", sub(&["t0", "t1"])), ("C1", sub(&["t0", "t1"]))]);
    let a = RoundRobinAssignor
        .assign(&counts(&[("t0", 3), ("t1", 3)]), &subs)
        .unwrap();
    assert_eq!(parts(&a, "C0"), vec![tp("t0", 0), tp("t0", 2), tp("t1", 1)]);
    assert_eq!(parts(&a, "C1"), vec![tp("t0", 1), tp("t1", 0), tp("t1", 2)]);

    // Unequal subscriptions: C0 t0; C1 t0, t1; C2 t0, t1, t2.
    let subs = members(vec![
        ("C0", sub(&["t0"])),
        ("C1", sub(&["t0", "t1"])),
        ("C2", sub(&["t0", "t1", "t2"])),
    ]);
    let a = RoundRobinAssignor
        .assign(&counts(&[("t0", 1), ("t1", 2), ("t2", 3)]), &subs)
        .unwrap();
    assert_eq!(parts(&a, "C0"), vec![tp("t0", 0)]);
    assert_eq!(parts(&a, "C1"), vec![tp("t1", 0)]);
    assert_eq!(
        parts(&a, "C2"),
        vec![tp("t1", 1), tp("t2", 0), tp("t2", 1), tp("t2", 2)]
    );
}

// ---------------------------------------------------------------- sticky

/// Owned partitions as a cooperative member reports them.
fn owning(topics: &[&str], owned: &[TopicPartition], generation: i32) -> Subscription {
    Subscription {
        owned_partitions: owned.to_vec(),
        generation_id: Some(generation),
        ..sub(topics)
    }
}

/// Previous assignment as Java's eager StickyAssignor reports it.
fn sticky_sub(topics: &[&str], prev: &[TopicPartition], generation: i32) -> Subscription {
    Subscription {
        user_data: Some(encode_sticky_user_data(prev, generation)),
        ..sub(topics)
    }
}

#[test]
fn sticky_javadoc_example_and_member_leaving() {
    let all = ["t0", "t1", "t2", "t3"];
    let topics = counts(&[("t0", 2), ("t1", 2), ("t2", 2), ("t3", 2)]);
    let subs = members(vec![
        ("C0", sub(&all)),
        ("C1", sub(&all)),
        ("C2", sub(&all)),
    ]);
    let a = StickyAssignor.assign(&topics, &subs).unwrap();
    assert_eq!(parts(&a, "C0"), vec![tp("t0", 0), tp("t1", 1), tp("t3", 0)]);
    assert_eq!(parts(&a, "C1"), vec![tp("t0", 1), tp("t2", 0), tp("t3", 1)]);
    assert_eq!(parts(&a, "C2"), vec![tp("t1", 0), tp("t2", 1)]);

    // C1 leaves: C0 and C2 keep everything and split C1's partitions.
    let subs = members(vec![
        ("C0", sticky_sub(&all, &parts(&a, "C0"), 1)),
        ("C2", sticky_sub(&all, &parts(&a, "C2"), 1)),
    ]);
    let b = StickyAssignor.assign(&topics, &subs).unwrap();
    let c0 = parts(&b, "C0");
    let c2 = parts(&b, "C2");
    assert_eq!((c0.len(), c2.len()), (4, 4));
    assert!(parts(&a, "C0").iter().all(|p| c0.contains(p)), "{c0:?}");
    assert!(parts(&a, "C2").iter().all(|p| c2.contains(p)), "{c2:?}");
}

#[test]
fn sticky_member_joining_moves_only_what_balance_requires() {
    let topics = counts(&[("t", 6)]);
    let all: Vec<TopicPartition> = (0..6).map(|p| tp("t", p)).collect();
    let subs = members(vec![
        ("a", owning(&["t"], &all[..3], 4)),
        ("b", owning(&["t"], &all[3..], 4)),
        ("c", sub(&["t"])),
    ]);
    let r = StickyAssignor.assign(&topics, &subs).unwrap();
    for m in ["a", "b", "c"] {
        assert_eq!(parts(&r, m).len(), 2, "{r:?}");
    }
    // a and b each keep two of their own; c gets the other two.
    assert!(parts(&r, "a").iter().all(|p| all[..3].contains(p)));
    assert!(parts(&r, "b").iter().all(|p| all[3..].contains(p)));
}

#[test]
fn sticky_resolves_conflicting_claims_by_generation() {
    let topics = counts(&[("t", 2)]);
    // Both claim t-0; b's claim is newer and wins. Same generation for t-1:
    // both claims are dropped.
    let subs = members(vec![
        ("a", owning(&["t"], &[tp("t", 0), tp("t", 1)], 3)),
        ("b", owning(&["t"], &[tp("t", 0), tp("t", 1)], 3)),
    ]);
    let r = StickyAssignor.assign(&topics, &subs).unwrap();
    assert_eq!(parts(&r, "a").len() + parts(&r, "b").len(), 2);
    let subs = members(vec![
        ("a", owning(&["t"], &[tp("t", 0)], 3)),
        ("b", owning(&["t"], &[tp("t", 0)], 5)),
    ]);
    let r = StickyAssignor.assign(&topics, &subs).unwrap();
    assert_eq!(parts(&r, "b"), vec![tp("t", 0)]);
    assert_eq!(parts(&r, "a"), vec![tp("t", 1)]);
}

#[test]
fn sticky_ignores_unparseable_user_data_and_vanished_partitions() {
    let topics = counts(&[("t", 2)]);
    let mut bad = sub(&["t"]);
    bad.user_data = Some(Bytes::from_static(&[0, 0, 0, 9, 1]));
    let subs = members(vec![
        ("a", bad),
        ("b", owning(&["t"], &[tp("t", 7), tp("gone", 0)], 2)),
    ]);
    let r = StickyAssignor.assign(&topics, &subs).unwrap();
    assert_eq!(parts(&r, "a"), vec![tp("t", 0)]);
    assert_eq!(parts(&r, "b"), vec![tp("t", 1)]);
}

#[test]
fn sticky_general_case_is_balanced_over_eligible_members() {
    // a: x only; b: x and y. y must all go to b; x mostly to a.
    let topics = counts(&[("x", 4), ("y", 2)]);
    let subs = members(vec![("a", sub(&["x"])), ("b", sub(&["x", "y"]))]);
    let r = StickyAssignor.assign(&topics, &subs).unwrap();
    assert_eq!(parts(&r, "a").len(), 3, "{r:?}");
    assert!(parts(&r, "b").contains(&tp("y", 0)) && parts(&r, "b").contains(&tp("y", 1)));
    // Stickiness in the general case: b keeps what it owned.
    let subs = members(vec![
        ("a", owning(&["x"], &[], 1)),
        (
            "b",
            owning(&["x", "y"], &[tp("x", 0), tp("x", 1), tp("y", 0)], 1),
        ),
    ]);
    let r = StickyAssignor.assign(&topics, &subs).unwrap();
    let b = parts(&r, "b");
    assert_eq!(b.len(), 3, "{r:?}");
    assert!(b.contains(&tp("y", 0)) && b.contains(&tp("y", 1)));
    assert_eq!(parts(&r, "a").len(), 3);
}

/// Every partition of a subscribed topic once, to a subscriber only.
fn check_valid(
    topics: &BTreeMap<String, i32>,
    subs: &BTreeMap<String, Subscription>,
    r: &BTreeMap<String, Assignment>,
    complete: bool,
) {
    assert_eq!(r.len(), subs.len(), "an entry per member");
    let mut seen = BTreeSet::new();
    for (m, a) in r {
        for p in &a.partitions {
            assert!(subs[m].topics.contains(&p.0), "{m} got unsubscribed {p:?}");
            assert!(p.1 < topics[&p.0], "{p:?} does not exist");
            assert!(seen.insert(p.clone()), "{p:?} assigned twice");
        }
    }
    if complete {
        for (t, c) in topics {
            if subs.values().any(|s| s.topics.contains(t)) {
                for p in 0..*c {
                    assert!(seen.contains(&tp(t, p)), "{t}-{p} unassigned: {r:?}");
                }
            }
        }
    }
}

fn random_case(rng: &mut Rng) -> (BTreeMap<String, i32>, BTreeMap<String, Subscription>, bool) {
    let nt = 1 + rng.below(4);
    let topics: BTreeMap<String, i32> = (0..nt)
        .map(|i| (format!("t{i}"), rng.below(9) as i32))
        .collect();
    let names: Vec<String> = topics.keys().cloned().collect();
    let equal = rng.below(2) == 0;
    let nm = 1 + rng.below(6);
    let subs: BTreeMap<String, Subscription> = (0..nm)
        .map(|_| {
            let ts: Vec<String> = if equal {
                names.clone()
            } else {
                let mut v: Vec<String> = names
                    .iter()
                    .filter(|_| rng.below(2) == 0)
                    .cloned()
                    .collect();
                if v.is_empty() {
                    v.push(names[0].clone());
                }
                v
            };
            let mut s = Subscription {
                topics: ts,
                ..Default::default()
            };
            if rng.below(3) == 0 {
                s.group_instance_id = Some(format!("i{}", rng.below(100)));
            }
            (format!("member-{}", rng.below(1000)), s)
        })
        .collect();
    (topics, subs, equal)
}

#[test]
fn all_assignors_are_valid_and_complete_on_random_groups() {
    let mut rng = Rng(42);
    for _ in 0..400 {
        let (topics, subs, equal) = random_case(&mut rng);
        for a in [
            &RangeAssignor as &dyn PartitionAssignor,
            &RoundRobinAssignor,
            &StickyAssignor,
            &CooperativeStickyAssignor,
        ] {
            let r = a.assign(&topics, &subs).unwrap();
            check_valid(&topics, &subs, &r, true);
            if equal && (a.name().contains("sticky") || a.name() == "roundrobin") {
                let sizes: Vec<usize> = r.values().map(|x| x.partitions.len()).collect();
                let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                assert!(hi - lo <= 1, "{} unbalanced: {r:?}", a.name());
            }
        }
    }
}

#[test]
fn sticky_general_case_balances_within_what_subscriptions_allow() {
    let mut rng = Rng(7);
    for _ in 0..300 {
        let (topics, subs, _) = random_case(&mut rng);
        let r = StickyAssignor.assign(&topics, &subs).unwrap();
        // No partition could move to a member with two fewer partitions.
        for (m, a) in &r {
            for p in &a.partitions {
                for (o, b) in &r {
                    if o != m && subs[o].topics.contains(&p.0) {
                        assert!(
                            b.partitions.len() + 1 >= a.partitions.len(),
                            "{p:?} could move from {m} to {o}: {r:?}"
                        );
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------- cooperative

#[test]
fn cooperative_joining_member_waits_for_revocation() {
    let topics = counts(&[("t", 4)]);
    let all: Vec<TopicPartition> = (0..4).map(|p| tp("t", p)).collect();
    let subs = members(vec![
        ("a", owning(&["t"], &all, 1)),
        ("b", owning(&["t"], &[], -1)),
    ]);
    let r = CooperativeStickyAssignor.assign(&topics, &subs).unwrap();
    // a gives up two partitions, b does not get them yet.
    assert_eq!(parts(&r, "a"), vec![tp("t", 0), tp("t", 1)]);
    assert!(parts(&r, "b").is_empty());
    // Follow-up rebalance: a owns two, b gets the rest.
    let subs = members(vec![
        ("a", owning(&["t"], &all[..2], 2)),
        ("b", owning(&["t"], &[], 2)),
    ]);
    let r = CooperativeStickyAssignor.assign(&topics, &subs).unwrap();
    assert_eq!(parts(&r, "a"), vec![tp("t", 0), tp("t", 1)]);
    assert_eq!(parts(&r, "b"), vec![tp("t", 2), tp("t", 3)]);
}

#[test]
fn cooperative_generation_from_user_data_for_old_subscriptions() {
    let mut s = sub(&["t"]);
    s.owned_partitions = vec![tp("t", 0)];
    s.user_data = CooperativeStickyAssignor.subscription_user_data(&UserDataContext {
        generation: 9,
        ..Default::default()
    });
    assert_eq!(cooperative_member_data(&s).generation, Some(9));
    s.generation_id = Some(11);
    assert_eq!(cooperative_member_data(&s).generation, Some(11));
}

#[test]
fn cooperative_rounds_never_hand_over_an_owned_partition_and_converge() {
    let mut rng = Rng(99);
    for case in 0..150 {
        let (topics, mut subs, _) = random_case(&mut rng);
        // Start from a random valid ownership.
        let mut owner: BTreeMap<TopicPartition, String> = BTreeMap::new();
        let ids: Vec<String> = subs.keys().cloned().collect();
        for (t, c) in &topics {
            for p in 0..*c {
                if rng.below(2) == 0 {
                    let m = &ids[rng.below(ids.len() as u64) as usize];
                    if subs[m].topics.contains(t) {
                        owner.insert(tp(t, p), m.clone());
                    }
                }
            }
        }
        let mut stable = false;
        for generation in 1..=6 {
            for (m, s) in subs.iter_mut() {
                s.owned_partitions = owner
                    .iter()
                    .filter(|(_, o)| *o == m)
                    .map(|(p, _)| p.clone())
                    .collect();
                s.generation_id = Some(generation);
            }
            let r = CooperativeStickyAssignor.assign(&topics, &subs).unwrap();
            check_valid(&topics, &subs, &r, false);
            for (m, a) in &r {
                for p in &a.partitions {
                    if let Some(o) = owner.get(p) {
                        assert_eq!(o, m, "case {case}: {p:?} given to {m} while {o} owns it");
                    }
                }
            }
            let before = owner.clone();
            owner = r
                .iter()
                .flat_map(|(m, a)| a.partitions.iter().map(move |p| (p.clone(), m.clone())))
                .collect();
            if owner == before {
                stable = true;
                break;
            }
        }
        assert!(stable, "case {case} did not converge");
        // Converged: complete (like sticky).
        let r = CooperativeStickyAssignor.assign(&topics, &subs).unwrap();
        check_valid(&topics, &subs, &r, true);
    }
}

#[test]
fn builtins_by_name_and_protocol_choice() {
    for n in ["range", "roundrobin", "sticky", "cooperative-sticky"] {
        assert_eq!(builtin_assignor(n).unwrap().name(), n);
    }
    assert!(matches!(
        builtin_assignor("nope"),
        Err(AssignorError::UnknownAssignor(_))
    ));
    let coop = builtin_assignor("cooperative-sticky").unwrap();
    let range = builtin_assignor("range").unwrap();
    assert_eq!(
        rebalance_protocol(std::slice::from_ref(&coop)),
        RebalanceProtocol::Cooperative
    );
    assert_eq!(rebalance_protocol(&[range, coop]), RebalanceProtocol::Eager);
    assert_eq!(rebalance_protocol(&[]), RebalanceProtocol::Eager);
}

#[test]
fn sticky_javadoc_example_with_unequal_subscriptions() {
    // C0: t0; C1: t0, t1; C2: t0, t1, t2; with 1, 2 and 3 partitions.
    let topics = counts(&[("t0", 1), ("t1", 2), ("t2", 3)]);
    let subs = members(vec![
        ("C0", sub(&["t0"])),
        ("C1", sub(&["t0", "t1"])),
        ("C2", sub(&["t0", "t1", "t2"])),
    ]);
    let a = StickyAssignor.assign(&topics, &subs).unwrap();
    assert_eq!(parts(&a, "C0"), vec![tp("t0", 0)]);
    assert_eq!(parts(&a, "C1"), vec![tp("t1", 0), tp("t1", 1)]);
    assert_eq!(parts(&a, "C2"), vec![tp("t2", 0), tp("t2", 1), tp("t2", 2)]);
    // C0 leaves: only t0-0 moves (round robin would move t1 partitions too).
    let subs = members(vec![
        ("C1", sticky_sub(&["t0", "t1"], &parts(&a, "C1"), 1)),
        ("C2", sticky_sub(&["t0", "t1", "t2"], &parts(&a, "C2"), 1)),
    ]);
    let b = StickyAssignor.assign(&topics, &subs).unwrap();
    assert_eq!(parts(&b, "C1"), vec![tp("t0", 0), tp("t1", 0), tp("t1", 1)]);
    assert_eq!(parts(&b, "C2"), vec![tp("t2", 0), tp("t2", 1), tp("t2", 2)]);
}

#[test]
fn sticky_general_case_moves_partitions_back_to_their_previous_owner() {
    // Generation 2: a owns x-0..x-3. c comes back claiming x-0 from
    // generation 1; b is new. Balancing moves x-0 back to c (its previous
    // owner) rather than to b, and x-1 to b.
    let topics = counts(&[("x", 4), ("y", 1), ("z", 1)]);
    let subs = members(vec![
        (
            "a",
            owning(&["x"], &[tp("x", 0), tp("x", 1), tp("x", 2), tp("x", 3)], 2),
        ),
        ("b", owning(&["x", "y"], &[], -1)),
        ("c", owning(&["x", "z"], &[tp("x", 0)], 1)),
    ]);
    let r = StickyAssignor.assign(&topics, &subs).unwrap();
    assert_eq!(parts(&r, "a"), vec![tp("x", 2), tp("x", 3)]);
    assert_eq!(parts(&r, "b"), vec![tp("x", 1), tp("y", 0)]);
    assert_eq!(parts(&r, "c"), vec![tp("x", 0), tp("z", 0)]);
}

// ---------------------------------------------------------------- rack-aware range

/// Java's test fixture: broker `i` is on `broker_racks[i]`; partition `i` of
/// the `k`-th topic has replicas on brokers `i + j + offset(k)` (mod brokers).
fn java_partition_racks(
    topics: &[(&str, i32)],
    rf: usize,
    broker_racks: &[&str],
) -> PartitionRacks {
    let mut next = 0usize;
    let mut out = PartitionRacks::new();
    for (t, n) in topics {
        let parts = (0..*n as usize)
            .map(|i| {
                (0..rf)
                    .map(|j| broker_racks[(i + j + next) % broker_racks.len()].to_string())
                    .collect()
            })
            .collect();
        next += *n as usize;
        out.insert(t.to_string(), parts);
    }
    out
}

/// Runs `range` like Java's verifyRackAssignment and compares the sorted
/// "t-p, t-p" strings of consumer0, consumer1, ...
fn verify_range_racks(
    topics: &[(&str, i32)],
    rf: usize,
    broker_racks: &[&str],
    consumer_racks: &[&str],
    consumer_topics: &[Vec<&str>],
    expected: &[&str],
) {
    let racks = java_partition_racks(topics, rf, broker_racks);
    let subs: BTreeMap<String, Subscription> = consumer_topics
        .iter()
        .enumerate()
        .map(|(i, ts)| {
            let mut s = sub(ts);
            s.rack_id = Some(consumer_racks[i].to_string());
            (format!("consumer{i}"), s)
        })
        .collect();
    let r = RangeAssignor.assign_with_racks(&racks, &subs).unwrap();
    for (i, want) in expected.iter().enumerate() {
        let mut got: Vec<String> = parts(&r, &format!("consumer{i}"))
            .iter()
            .map(|(t, p)| format!("{t}-{p}"))
            .collect();
        got.sort();
        assert_eq!(
            &got.join(", "),
            want,
            "consumer{i} (rf {rf}, brokers {broker_racks:?})"
        );
    }
}

const ABC: &[&str] = &["a", "b", "c"];
const AB: &[&str] = &["a", "b"];

#[test]
fn range_rack_aware_uniform_subscription_like_java() {
    let topics = [("t1", 6), ("t2", 7), ("t3", 2)];
    let all = vec!["t1", "t2", "t3"];
    let ct = vec![all.clone(), all.clone(), all];
    verify_range_racks(
        &topics,
        1,
        ABC,
        ABC,
        &ct,
        &[
            "t1-0, t1-3, t2-0, t2-3, t2-6",
            "t1-1, t1-4, t2-1, t2-4, t3-0",
            "t1-2, t1-5, t2-2, t2-5, t3-1",
        ],
    );
    verify_range_racks(
        &topics,
        2,
        ABC,
        ABC,
        &ct,
        &[
            "t1-0, t1-2, t2-0, t2-2, t2-3, t3-1",
            "t1-1, t1-3, t2-1, t2-4, t3-0",
            "t1-4, t1-5, t2-5, t2-6",
        ],
    );
    // One consumer on a rack with no partitions.
    verify_range_racks(
        &topics,
        3,
        AB,
        ABC,
        &ct,
        &[
            "t1-0, t1-1, t2-0, t2-1, t2-2, t3-0",
            "t1-2, t1-3, t2-3, t2-4, t3-1",
            "t1-4, t1-5, t2-5, t2-6",
        ],
    );
}

#[test]
fn range_rack_aware_non_equal_subscription_like_java() {
    let topics = [("t1", 6), ("t2", 7), ("t3", 2)];
    let all = vec!["t1", "t2", "t3"];
    let ct = vec![all.clone(), all, vec!["t1", "t3"]];
    verify_range_racks(
        &topics,
        1,
        ABC,
        ABC,
        &ct,
        &[
            "t1-0, t1-3, t2-0, t2-2, t2-3, t2-6",
            "t1-1, t1-4, t2-1, t2-4, t2-5, t3-0",
            "t1-2, t1-5, t3-1",
        ],
    );
    verify_range_racks(
        &topics,
        2,
        ABC,
        ABC,
        &ct,
        &[
            "t1-0, t1-2, t2-0, t2-2, t2-3, t2-5, t3-1",
            "t1-1, t1-3, t2-1, t2-4, t2-6, t3-0",
            "t1-4, t1-5",
        ],
    );
    verify_range_racks(
        &topics,
        3,
        AB,
        ABC,
        &ct,
        &[
            "t1-0, t1-1, t2-0, t2-1, t2-2, t2-3, t3-0",
            "t1-2, t1-3, t2-4, t2-5, t2-6, t3-1",
            "t1-4, t1-5",
        ],
    );
}

#[test]
fn range_rack_aware_uniform_partitions_like_java() {
    let topics = [("t1", 5), ("t2", 5), ("t3", 5)];
    let all = vec!["t1", "t2", "t3"];
    let ct = vec![all.clone(), all.clone(), all.clone()];
    let plain = [
        "t1-0, t1-1, t2-0, t2-1, t3-0, t3-1",
        "t1-2, t1-3, t2-2, t2-3, t3-2, t3-3",
        "t1-4, t2-4, t3-4",
    ];
    // Co-partitioning wins over rack alignment.
    verify_range_racks(&topics, 1, ABC, ABC, &ct, &plain);
    verify_range_racks(&topics, 2, ABC, ABC, &ct, &plain);
    verify_range_racks(&topics, 3, AB, ABC, &ct, &plain);

    let ct = vec![all.clone(), all, vec!["t1", "t3"]];
    verify_range_racks(
        &topics,
        1,
        ABC,
        ABC,
        &ct,
        &[
            "t1-0, t1-1, t2-0, t2-1, t2-4, t3-0, t3-1",
            "t1-2, t1-3, t2-2, t2-3, t3-2, t3-3",
            "t1-4, t3-4",
        ],
    );
    verify_range_racks(
        &topics,
        2,
        ABC,
        ABC,
        &ct,
        &[
            "t1-2, t2-0, t2-1, t2-3, t3-2",
            "t1-0, t1-3, t2-2, t2-4, t3-0, t3-3",
            "t1-1, t1-4, t3-1, t3-4",
        ],
    );
    verify_range_racks(
        &topics,
        3,
        AB,
        ABC,
        &ct,
        &[
            "t1-0, t1-1, t2-0, t2-1, t2-2, t3-0, t3-1",
            "t1-2, t1-3, t2-3, t2-4, t3-2, t3-3",
            "t1-4, t3-4",
        ],
    );
}

#[test]
fn range_rack_aware_co_partitioning_like_java() {
    let topics = [("t1", 6), ("t2", 6), ("t3", 2), ("t4", 2)];
    let cr = ["a", "b", "b", "a"];
    let ct = vec![
        vec!["t1", "t2"],
        vec!["t1", "t2"],
        vec!["t3", "t4"],
        vec!["t3", "t4"],
    ];
    let plain = [
        "t1-0, t1-1, t1-2, t2-0, t2-1, t2-2",
        "t1-3, t1-4, t1-5, t2-3, t2-4, t2-5",
        "t3-0, t4-0",
        "t3-1, t4-1",
    ];
    verify_range_racks(&topics, 3, AB, &cr, &ct, &plain);
    verify_range_racks(&topics, 2, AB, &cr, &ct, &plain);
    verify_range_racks(
        &topics,
        1,
        AB,
        &cr,
        &ct,
        &[
            "t1-0, t1-2, t1-4, t2-0, t2-2, t2-4",
            "t1-1, t1-3, t1-5, t2-1, t2-3, t2-5",
            "t3-1, t4-1",
            "t3-0, t4-0",
        ],
    );
    let all = vec!["t1", "t2", "t3", "t4"];
    let ct = vec![all.clone(), all.clone(), all.clone(), all];
    let plain = [
        "t1-0, t1-1, t2-0, t2-1, t3-0, t4-0",
        "t1-2, t1-3, t2-2, t2-3, t3-1, t4-1",
        "t1-4, t2-4",
        "t1-5, t2-5",
    ];
    verify_range_racks(&topics, 3, AB, &cr, &ct, &plain);
    verify_range_racks(&topics, 2, AB, &cr, &ct, &plain);
}
