//! Server-side assignors of KIP-848 consumer groups (`group.consumer.assignors`):
//!
//! * `uniform`: every partition of the subscribed topics goes to one of its subscribers, the
//!   counts per member differ by at most one among members that could take each other's
//!   partitions, and partitions stay with their current owner whenever that keeps the balance
//!   (sticky), so that rebalances move as little as possible.
//! * `range`: per topic, the subscribers sorted by member id get contiguous ranges of
//!   partitions, the first `partitions % members` one more (co-partitioned topics line up).

use std::collections::{BTreeMap, BTreeSet};

/// Partitions per topic name.
pub type Parts = BTreeMap<String, BTreeSet<i32>>;

/// The short name of an assignor given by name or by Kafka's class name.
pub fn short_name(s: &str) -> &str {
    match s {
        "org.apache.kafka.coordinator.group.assignor.UniformAssignor"
        | "org.apache.kafka.coordinator.group.api.assignor.UniformAssignor" => "uniform",
        "org.apache.kafka.coordinator.group.assignor.RangeAssignor"
        | "org.apache.kafka.coordinator.group.api.assignor.RangeAssignor" => "range",
        other => other,
    }
}

/// What an assignor needs to know about a member.
#[derive(Debug, Clone)]
pub struct MemberSpec {
    pub id: String,
    pub subscribed: BTreeSet<String>,
    /// The member's current target assignment (for stickiness).
    pub current: Parts,
}

/// Runs the named assignor (`uniform` for anything unknown). `topics` gives the partition
/// count of every subscribed topic that exists.
pub fn assign(
    name: &str,
    members: &[MemberSpec],
    topics: &BTreeMap<String, i32>,
) -> BTreeMap<String, Parts> {
    match short_name(name) {
        "range" => range(members, topics),
        _ => uniform(members, topics),
    }
}

fn empty_result(members: &[MemberSpec]) -> BTreeMap<String, Parts> {
    members
        .iter()
        .map(|m| (m.id.clone(), Parts::new()))
        .collect()
}

/// Kafka's range assignment, per topic.
pub fn range(members: &[MemberSpec], topics: &BTreeMap<String, i32>) -> BTreeMap<String, Parts> {
    let mut out = empty_result(members);
    for (topic, &count) in topics {
        let mut subs: Vec<&str> = members
            .iter()
            .filter(|m| m.subscribed.contains(topic))
            .map(|m| m.id.as_str())
            .collect();
        if subs.is_empty() || count <= 0 {
            continue;
        }
        subs.sort_unstable();
        let n = subs.len() as i32;
        let (per, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, id) in subs.iter().enumerate() {
            let take = per + i32::from((i as i32) < extra);
            if take > 0 {
                if let Some(parts) = out.get_mut(*id) {
                    parts
                        .entry(topic.clone())
                        .or_default()
                        .extend(next..next + take);
                }
            }
            next += take;
        }
    }
    out
}

fn load(p: &Parts) -> usize {
    p.values().map(BTreeSet::len).sum()
}

/// Balanced and sticky.
pub fn uniform(members: &[MemberSpec], topics: &BTreeMap<String, i32>) -> BTreeMap<String, Parts> {
    let mut out = empty_result(members);
    let subscribed_to = |t: &str| -> Vec<&MemberSpec> {
        members
            .iter()
            .filter(|m| m.subscribed.contains(t))
            .collect()
    };
    // Every partition to assign, and who may take it.
    let mut todo: Vec<(String, i32)> = Vec::new();
    let total: usize = topics
        .iter()
        .filter(|(t, _)| !subscribed_to(t).is_empty())
        .map(|(_, &c)| c.max(0) as usize)
        .sum();
    let eligible_members = members.iter().filter(|m| !m.subscribed.is_empty()).count();
    // An upper bound that keeps stickiness from unbalancing a homogeneous group.
    let quota = if eligible_members == 0 {
        0
    } else {
        total.div_ceil(eligible_members)
    };
    // 1. Sticky: a member keeps what it has while it stays subscribed, up to the quota.
    let mut taken: BTreeSet<(String, i32)> = BTreeSet::new();
    for m in members {
        for (t, ps) in &m.current {
            let Some(&count) = topics.get(t) else {
                continue;
            };
            if !m.subscribed.contains(t) {
                continue;
            }
            for &p in ps {
                let current = out.get(&m.id).map(load).unwrap_or(0);
                if p < count && current < quota && taken.insert((t.clone(), p)) {
                    if let Some(parts) = out.get_mut(&m.id) {
                        parts.entry(t.clone()).or_default().insert(p);
                    }
                }
            }
        }
    }
    for (t, &count) in topics {
        for p in 0..count.max(0) {
            if !taken.contains(&(t.clone(), p)) {
                todo.push((t.clone(), p));
            }
        }
    }
    // 2. The rest to the least loaded subscriber (ties: member id order).
    for (t, p) in todo {
        let best = subscribed_to(&t)
            .into_iter()
            .min_by_key(|m| (out.get(&m.id).map(load).unwrap_or(0), m.id.clone()));
        if let Some(m) = best {
            if let Some(parts) = out.get_mut(&m.id) {
                parts.entry(t).or_default().insert(p);
            }
        }
    }
    // 3. Even out: move partitions from the most to a less loaded subscriber while that
    //    narrows the gap (needed when subscriptions differ).
    let mut guard = total * members.len() + 1;
    loop {
        guard = guard.saturating_sub(1);
        if guard == 0 {
            break;
        }
        let mut moved = false;
        let mut by_load: Vec<(usize, String)> =
            out.iter().map(|(id, p)| (load(p), id.clone())).collect();
        by_load.sort_by(|a, b| b.cmp(a));
        'outer: for (from_load, from) in &by_load {
            let candidates: Vec<(String, i32)> = out[from]
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
                .collect();
            for (t, p) in candidates {
                let target = subscribed_to(&t)
                    .into_iter()
                    .filter(|m| m.id != *from)
                    .map(|m| (out.get(&m.id).map(load).unwrap_or(0), m.id.clone()))
                    .filter(|(l, _)| l + 1 < *from_load)
                    .min();
                if let Some((_, to)) = target {
                    if let Some(ps) = out.get_mut(from).and_then(|x| x.get_mut(&t)) {
                        ps.remove(&p);
                    }
                    if let Some(x) = out.get_mut(from) {
                        x.retain(|_, ps| !ps.is_empty());
                    }
                    if let Some(x) = out.get_mut(&to) {
                        x.entry(t).or_default().insert(p);
                    }
                    moved = true;
                    break 'outer;
                }
            }
        }
        if !moved {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str, topics: &[&str]) -> MemberSpec {
        MemberSpec {
            id: id.into(),
            subscribed: topics.iter().map(|t| t.to_string()).collect(),
            current: Parts::new(),
        }
    }

    fn topics(t: &[(&str, i32)]) -> BTreeMap<String, i32> {
        t.iter().map(|(n, c)| (n.to_string(), *c)).collect()
    }

    /// Every partition exactly once, only to subscribers.
    fn check_complete(
        members: &[MemberSpec],
        topics: &BTreeMap<String, i32>,
        out: &BTreeMap<String, Parts>,
    ) {
        let mut seen = BTreeSet::new();
        for (id, parts) in out {
            let m = members.iter().find(|m| &m.id == id).unwrap();
            for (t, ps) in parts {
                assert!(m.subscribed.contains(t), "{id} got unsubscribed {t}");
                for p in ps {
                    assert!(seen.insert((t.clone(), *p)), "{t}-{p} assigned twice");
                }
            }
        }
        for (t, &c) in topics {
            if members.iter().any(|m| m.subscribed.contains(t)) {
                for p in 0..c {
                    assert!(seen.contains(&(t.clone(), p)), "{t}-{p} unassigned");
                }
            }
        }
    }

    #[test]
    fn range_gives_contiguous_ranges() {
        let ms = vec![spec("b", &["t"]), spec("a", &["t"]), spec("c", &["t"])];
        let ts = topics(&[("t", 7)]);
        let out = range(&ms, &ts);
        check_complete(&ms, &ts, &out);
        assert_eq!(out["a"]["t"], (0..3).collect());
        assert_eq!(out["b"]["t"], (3..5).collect());
        assert_eq!(out["c"]["t"], (5..7).collect());
    }

    #[test]
    fn uniform_balances_homogeneous_groups() {
        let ms: Vec<MemberSpec> = (0..3)
            .map(|i| spec(&format!("m{i}"), &["a", "b"]))
            .collect();
        let ts = topics(&[("a", 4), ("b", 3)]);
        let out = uniform(&ms, &ts);
        check_complete(&ms, &ts, &out);
        let loads: Vec<usize> = out.values().map(load).collect();
        assert!(loads.iter().max().unwrap() - loads.iter().min().unwrap() <= 1);
    }

    #[test]
    fn uniform_is_sticky_when_a_member_joins() {
        let mut ms: Vec<MemberSpec> = (0..2).map(|i| spec(&format!("m{i}"), &["t"])).collect();
        let ts = topics(&[("t", 6)]);
        let first = uniform(&ms, &ts);
        for m in &mut ms {
            m.current = first[&m.id].clone();
        }
        ms.push(spec("m2", &["t"]));
        let second = uniform(&ms, &ts);
        check_complete(&ms, &ts, &second);
        for id in ["m0", "m1"] {
            assert_eq!(load(&second[id]), 2);
            assert!(
                second[id]["t"].is_subset(&first[id]["t"]),
                "{id} lost a partition it could keep"
            );
        }
        assert_eq!(load(&second["m2"]), 2);
    }

    #[test]
    fn uniform_handles_different_subscriptions() {
        let ms = vec![spec("x", &["a"]), spec("y", &["a", "b"]), spec("z", &["b"])];
        let ts = topics(&[("a", 4), ("b", 2), ("unknown", 0)]);
        let out = uniform(&ms, &ts);
        check_complete(&ms, &ts, &out);
        let loads: Vec<usize> = out.values().map(load).collect();
        assert_eq!(loads.iter().sum::<usize>(), 6);
        assert!(loads.iter().all(|l| *l == 2), "{out:?}");
        // Nobody subscribed: nothing assigned.
        let out = uniform(&[spec("x", &[])], &ts);
        assert!(out["x"].is_empty());
    }
}
