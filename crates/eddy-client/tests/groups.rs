//! Consumer groups against a real broker: the group admin API, the KIP-848
//! group member (a subscribed [`eddy_client::Consumer`] with group.protocol=consumer) and the `eddy group` / `consume --group`
//! commands.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use eddy_client::{Consumer, ErrorCode, GroupProtocol, NewTopic};

use common::{cli, eddy_bin, Broker};

fn ok(broker: &Broker, args: &[&str], stdin: &str) -> String {
    let (status, out, err) = cli(broker, args, stdin.as_bytes());
    assert!(status.success(), "eddy {args:?} failed: {err}");
    String::from_utf8(out).expect("utf-8 output")
}

fn fails(broker: &Broker, args: &[&str]) -> String {
    let (status, _, err) = cli(broker, args, b"");
    assert!(!status.success(), "eddy {args:?} should fail");
    assert_eq!(err.lines().count(), 1, "{err}");
    err.trim_end().to_string()
}

fn produce(broker: &Broker, topic: &str, partition: i32, n: usize) {
    let lines: String = (0..n).map(|i| format!("v{i}\n")).collect();
    ok(
        broker,
        &["produce", topic, "--partition", &partition.to_string()],
        &lines,
    );
}

/// The `TOPIC PARTITION X` rows of a table (header dropped), as (partition, X).
fn plan(out: &str) -> Vec<(i32, i64)> {
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("TOPIC\tPARTITION\tNEW-OFFSET"), "{out}");
    lines
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[1].parse().unwrap(), f[2].parse().unwrap())
        })
        .collect()
}

/// (partition, current, log end, lag, consumer) rows and the total lag of `group describe`.
#[allow(clippy::type_complexity)]
fn describe_rows(out: &str) -> (Vec<(i32, String, i64, String, String)>, i64) {
    let mut rows = Vec::new();
    let mut total = None;
    let mut in_table = false;
    for l in out.lines() {
        let f: Vec<&str> = l.split('\t').collect();
        if f[0] == "TOPIC" {
            assert_eq!(
                f,
                [
                    "TOPIC",
                    "PARTITION",
                    "CURRENT-OFFSET",
                    "LOG-END-OFFSET",
                    "LAG",
                    "CONSUMER-ID"
                ]
            );
            in_table = true;
        } else if f[0] == "TOTAL-LAG" {
            total = Some(f[1].parse().unwrap());
        } else if in_table {
            rows.push((
                f[1].parse().unwrap(),
                f[2].to_string(),
                f[3].parse().unwrap(),
                f[4].to_string(),
                f[5].to_string(),
            ));
        }
    }
    (rows, total.expect("TOTAL-LAG line"))
}

fn field<'a>(out: &'a str, key: &str) -> Vec<&'a str> {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}\t")))
        .unwrap_or_else(|| panic!("no {key} line in {out}"))
        .split('\t')
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_admin_and_member() {
    let broker = Broker::start();
    let admin = broker.admin();
    admin
        .create_topic(NewTopic::new("orders", 3), false)
        .await
        .unwrap();
    produce(&broker, "orders", 0, 4);
    produce(&broker, "orders", 2, 3);

    let coord = admin.find_coordinator("g").await.unwrap();
    assert_eq!(coord.node_id, 1);
    assert!(admin.list_groups(&[]).await.unwrap().is_empty());
    assert_eq!(admin.describe_group("g").await.unwrap().state, "Dead");

    let mut cfg = broker.consumer_config();
    cfg.auto_offset_reset = eddy_client::AutoOffsetReset::Earliest;
    cfg.group_id = Some("g".into());
    cfg.group_protocol = GroupProtocol::Consumer;
    cfg.enable_auto_commit = false;
    cfg.max_poll_records = 2;
    let mut member = Consumer::with_cluster(cfg, admin.cluster().clone());
    member.subscribe(["orders"]).unwrap();
    let mut got = Vec::new();
    for _ in 0..50 {
        let batch = member.poll(Duration::from_millis(200)).await.unwrap();
        assert!(batch.len() <= 2, "max.poll.records is 2: {batch:?}");
        got.extend(batch);
        if got.len() >= 7 {
            break;
        }
    }
    assert_eq!(got.len(), 7, "{got:?}");
    assert!(!member.member_id().is_empty());
    assert_eq!(
        member.assignment(),
        vec![
            ("orders".to_string(), 0),
            ("orders".to_string(), 1),
            ("orders".to_string(), 2)
        ]
    );
    member.commit_sync().await.unwrap();

    let listed = admin.list_groups(&[]).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].group_id, "g");
    assert_eq!(listed[0].state, "Stable");
    assert!(admin
        .list_groups(&["Empty".to_string()])
        .await
        .unwrap()
        .is_empty());
    let d = admin.describe_group("g").await.unwrap();
    assert_eq!(d.state, "Stable");
    assert_eq!(d.group_type, "consumer");
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.members[0].member_id, member.member_id());
    assert_eq!(d.members[0].assignment.len(), 3);

    let offsets: Vec<(i32, i64)> = admin
        .list_group_offsets("g")
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.partition, c.offset))
        .collect();
    assert_eq!(offsets, vec![(0, 4), (1, 0), (2, 3)]);

    // While the member is there: no deletion, no admin commits.
    let e = admin.delete_group("g").await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NonEmptyGroup), "{e}");
    assert!(admin
        .alter_group_offsets("g", &[("orders".into(), 0, 1)])
        .await
        .is_err());

    member.close().await.unwrap();
    let d = admin.describe_group("g").await.unwrap();
    assert_eq!(d.state, "Empty");
    assert!(d.members.is_empty());

    admin
        .alter_group_offsets("g", &[("orders".into(), 0, 1)])
        .await
        .unwrap();
    admin
        .delete_group_offsets("g", &[("orders".into(), 2)])
        .await
        .unwrap();
    let offsets: Vec<(i32, i64)> = admin
        .list_group_offsets("g")
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.partition, c.offset))
        .collect();
    assert_eq!(offsets, vec![(0, 1), (1, 0)]);

    admin.delete_group("g").await.unwrap();
    assert!(admin.list_groups(&[]).await.unwrap().is_empty());
    assert!(admin.list_group_offsets("g").await.unwrap().is_empty());
    let e = admin.delete_group("g").await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::GroupIdNotFound), "{e}");
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for milliseconds since the epoch.
fn iso(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn cli_group_consume_describe_reset() {
    let broker = Broker::start();
    ok(&broker, &["topic", "create", "t", "-p", "2"], "");
    produce(&broker, "t", 0, 5);
    let mid = now_ms() + 5;
    std::thread::sleep(Duration::from_millis(50));
    produce(&broker, "t", 0, 3);
    produce(&broker, "t", 1, 2);

    // Everything once, then nothing new.
    let consume = [
        "consume",
        "t",
        "--group",
        "g",
        "--from-beginning",
        "--timeout-ms",
        "2000",
    ];
    let out = ok(&broker, &consume, "");
    assert_eq!(out.lines().count(), 10, "{out}");
    assert_eq!(ok(&broker, &consume, ""), "");
    assert_eq!(ok(&broker, &["group", "list"], ""), "g\n");
    assert_eq!(
        ok(&broker, &["group", "list", "--long"], ""),
        "g\tEmpty\tconsumer\n"
    );
    assert_eq!(ok(&broker, &["group", "list", "--state", "Stable"], ""), "");

    // Lag = log end - committed.
    produce(&broker, "t", 1, 4);
    let d = ok(&broker, &["group", "describe", "g"], "");
    assert_eq!(field(&d, "STATE"), ["Empty"]);
    assert_eq!(field(&d, "COORDINATOR")[0], "1");
    let (rows, total) = describe_rows(&d);
    assert_eq!(
        rows,
        vec![
            (0, "8".into(), 8, "0".into(), "-".into()),
            (1, "2".into(), 6, "4".into(), "-".into()),
        ],
        "{d}"
    );
    assert_eq!(total, 4);

    // --max-messages: only what was printed is committed.
    let out = ok(
        &broker,
        &[
            "consume",
            "t",
            "--group",
            "g",
            "-n",
            "3",
            "--timeout-ms",
            "5000",
        ],
        "",
    );
    assert_eq!(out, "v0\nv1\nv2\n");
    let (rows, total) = describe_rows(&ok(&broker, &["group", "describe", "g"], ""));
    assert_eq!(rows[1].1, "5");
    assert_eq!(total, 1);

    let reset = |how: &[&str]| {
        let mut args = vec!["group", "reset-offsets", "g", "--topic", "t"];
        args.extend_from_slice(how);
        plan(&ok(&broker, &args, ""))
    };
    // Dry runs change nothing.
    assert_eq!(reset(&["--to-earliest"]), vec![(0, 0), (1, 0)]);
    assert_eq!(reset(&["--to-latest"]), vec![(0, 8), (1, 6)]);
    assert_eq!(reset(&["--to-offset", "7"]), vec![(0, 7), (1, 6)]);
    assert_eq!(reset(&["--shift-by", "-6"]), vec![(0, 2), (1, 0)]);
    assert_eq!(reset(&["--shift-by", "3"]), vec![(0, 8), (1, 6)]);
    assert_eq!(
        reset(&["--to-datetime", "2000-01-01T00:00:00Z"]),
        vec![(0, 0), (1, 0)]
    );
    assert_eq!(
        reset(&["--to-datetime", "2999-01-01T00:00:00+02:00"]),
        vec![(0, 8), (1, 6)]
    );
    assert_eq!(reset(&["--to-datetime", &iso(mid)]), vec![(0, 5), (1, 0)]);
    let (rows, _) = describe_rows(&ok(&broker, &["group", "describe", "g"], ""));
    assert_eq!((rows[0].1.as_str(), rows[1].1.as_str()), ("8", "5"));

    // --execute applies the plan.
    assert_eq!(
        reset(&["--shift-by", "-2", "--execute"]),
        vec![(0, 6), (1, 3)]
    );
    let (rows, total) = describe_rows(&ok(&broker, &["group", "describe", "g"], ""));
    assert_eq!((rows[0].1.as_str(), rows[1].1.as_str()), ("6", "3"));
    assert_eq!(total, 5);
    let out = ok(
        &broker,
        &["consume", "t", "--group", "g", "--timeout-ms", "2000"],
        "",
    );
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    // Partition 0 from offset 6 (v1 v2 of the second batch), partition 1 from 3.
    assert_eq!(lines, ["v1", "v1", "v2", "v2", "v3"], "{out}");
    assert_eq!(
        reset(&["--to-datetime", &iso(mid), "--execute"]),
        vec![(0, 5), (1, 0)]
    );
    let out = ok(
        &broker,
        &["consume", "t", "--group", "g", "--timeout-ms", "2000"],
        "",
    );
    assert_eq!(out.lines().count(), 3 + 6, "{out}");
    let e = fails(
        &broker,
        &[
            "group",
            "reset-offsets",
            "g",
            "--topic",
            "t",
            "--to-datetime",
            "soon",
        ],
    );
    assert!(e.contains("ISO 8601"), "{e}");

    assert_eq!(
        ok(&broker, &["group", "delete", "g"], ""),
        "Deleted group g.\n"
    );
    assert_eq!(ok(&broker, &["group", "list"], ""), "");
    let e = fails(&broker, &["group", "describe", "g"]);
    assert_eq!(e, "eddy: consumer group 'g' does not exist");
}

#[test]
fn two_group_members_split_the_partitions() {
    let broker = Broker::start();
    ok(&broker, &["topic", "create", "four", "-p", "4"], "");
    let spawn = || {
        Command::new(eddy_bin())
            .args([
                "consume",
                "four",
                "--group",
                "pair",
                "--print-partition",
                "--timeout-ms",
                "12000",
                "--bootstrap",
                broker.addr(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn eddy consume")
    };
    let a = spawn();
    let b = spawn();
    // Wait until both members own two partitions each.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let owned = loop {
        // Fails while the group does not exist yet.
        let (_, d, _) = cli(&broker, &["group", "describe", "pair"], b"");
        let d = String::from_utf8(d).unwrap();
        let members: Vec<Vec<&str>> = d
            .lines()
            .filter_map(|l| l.strip_prefix("MEMBER\t"))
            .map(|l| l.split('\t').collect())
            .collect();
        if members.len() == 2 && members.iter().all(|m| m[3].split(',').count() == 2) {
            break members.iter().map(|m| m[3].to_string()).collect::<Vec<_>>();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no 2+2 split in time: {d}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let sets: Vec<BTreeSet<String>> = owned
        .iter()
        .map(|o| o.split(',').map(str::to_string).collect())
        .collect();
    assert!(sets[0].is_disjoint(&sets[1]), "{owned:?}");
    let all: BTreeSet<String> = sets.iter().flatten().cloned().collect();
    assert_eq!(all.len(), 4, "{owned:?}");

    for p in 0..4 {
        produce(&broker, "four", p, 3);
    }
    let outs: Vec<String> = [a, b]
        .into_iter()
        .map(|c| {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8(o.stdout).unwrap()
        })
        .collect();
    let parts = |out: &str| -> BTreeSet<String> {
        out.lines()
            .map(|l| l.split('\t').next().unwrap().to_string())
            .collect()
    };
    assert_eq!(outs[0].lines().count() + outs[1].lines().count(), 12);
    let (pa, pb) = (parts(&outs[0]), parts(&outs[1]));
    assert_eq!(pa.len(), 2, "{pa:?}");
    assert_eq!(pb.len(), 2, "{pb:?}");
    assert!(pa.is_disjoint(&pb));
    let (_, total) = describe_rows(&ok(&broker, &["group", "describe", "pair"], ""));
    assert_eq!(total, 0);
}
