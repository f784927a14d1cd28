//! The `eddy` client commands (built on this crate) against a real broker:
//! exact output formats and exit codes.

mod common;

use eddy_client::partitioner::partition_for_key;

use common::{cli, Broker};

fn ok(broker: &Broker, args: &[&str], stdin: &str) -> String {
    let (status, out, err) = cli(broker, args, stdin.as_bytes());
    assert!(status.success(), "eddy {args:?} failed: {err}");
    String::from_utf8(out).expect("utf-8 output")
}

fn fails(broker: &Broker, args: &[&str], stdin: &str) -> String {
    let (status, out, err) = cli(broker, args, stdin.as_bytes());
    assert!(
        !status.success(),
        "eddy {args:?} should fail; stdout: {}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(err.lines().count(), 1, "one line expected: {err}");
    assert!(err.starts_with("eddy: "), "{err}");
    err.trim_end().to_string()
}

#[test]
fn topic_commands_output() {
    let broker = Broker::start();
    assert_eq!(
        ok(
            &broker,
            &[
                "topic",
                "create",
                "t1",
                "--partitions",
                "3",
                "--config",
                "retention.ms=5000"
            ],
            ""
        ),
        "Created topic t1.\n"
    );
    ok(&broker, &["topic", "create", "t0", "-p", "1"], "");
    assert_eq!(ok(&broker, &["topic", "list"], ""), "t0\nt1\n");
    assert_eq!(
        ok(&broker, &["topic", "list", "--long"], ""),
        "t0\t1\nt1\t3\n"
    );
    // --if-not-exists tolerates an existing topic.
    assert_eq!(
        ok(
            &broker,
            &["topic", "create", "t1", "-p", "3", "--if-not-exists"],
            ""
        ),
        ""
    );
    let err = fails(&broker, &["topic", "create", "t1", "-p", "3"], "");
    assert_eq!(
        err,
        "eddy: topic 't1' already exists (TOPIC_ALREADY_EXISTS)"
    );

    ok(&broker, &["produce", "t1", "--partition", "2"], "a\nb\n");
    let d = ok(&broker, &["topic", "describe", "t1"], "");
    let lines: Vec<&str> = d.lines().collect();
    assert_eq!(lines.len(), 4, "{d}");
    let head: Vec<&str> = lines[0].split('\t').collect();
    assert_eq!(head[0], "Topic: t1");
    assert!(
        head[1].starts_with("TopicId: ") && head[1].len() == "TopicId: ".len() + 22,
        "{d}"
    );
    assert_eq!(
        &head[2..],
        [
            "PartitionCount: 3",
            "ReplicationFactor: 1",
            "CleanupPolicy: delete",
            "Configs: retention.ms=5000"
        ]
    );
    assert_eq!(
        lines[3],
        "\tTopic: t1\tPartition: 2\tLeader: 1\tReplicas: 1\tIsr: 1\tLogStartOffset: 0\tLogEndOffset: 2"
    );
    let all = ok(&broker, &["topic", "describe", "t1", "--all-configs"], "");
    assert!(
        all.lines().next().unwrap().contains("segment.bytes="),
        "{all}"
    );

    assert_eq!(
        ok(
            &broker,
            &[
                "topic",
                "alter",
                "t1",
                "--partitions",
                "4",
                "--config",
                "retention.ms=7000"
            ],
            ""
        ),
        "Topic t1 now has 4 partitions.\nUpdated the configs of topic t1.\n"
    );
    let d = ok(&broker, &["topic", "describe", "t1"], "");
    assert!(
        d.starts_with("Topic: t1\t")
            && d.contains("PartitionCount: 4")
            && d.contains("Configs: retention.ms=7000"),
        "{d}"
    );
    ok(
        &broker,
        &["topic", "alter", "t1", "--delete-config", "retention.ms"],
        "",
    );
    let d = ok(&broker, &["topic", "describe", "t1"], "");
    assert!(d.lines().next().unwrap().ends_with("Configs: "), "{d}");
    let err = fails(&broker, &["topic", "alter", "t1", "--partitions", "2"], "");
    assert!(
        err.starts_with("eddy: topic 't1': ") && err.ends_with("(INVALID_PARTITIONS)"),
        "{err}"
    );
    let err = fails(&broker, &["topic", "alter", "t1"], "");
    assert!(err.contains("nothing to alter"), "{err}");

    assert_eq!(
        ok(&broker, &["topic", "delete", "t1"], ""),
        "Deleted topic t1.\n"
    );
    let err = fails(&broker, &["topic", "describe", "t1"], "");
    assert_eq!(
        err,
        "eddy: topic 't1' does not exist (UNKNOWN_TOPIC_OR_PARTITION)"
    );
    assert_eq!(
        ok(&broker, &["topic", "delete", "t1", "--if-exists"], ""),
        ""
    );

    let info = ok(&broker, &["cluster", "info"], "");
    assert!(info.starts_with("ClusterId: "), "{info}");
    assert!(
        info.contains(&format!("\n  1 {} (controller)\n", broker.addr())),
        "{info}"
    );
    assert!(info.contains("  Produce(0): "), "{info}");
}

#[test]
fn produce_and_consume_formats() {
    let broker = Broker::start();
    ok(&broker, &["topic", "create", "io", "--partitions", "5"], "");
    let keys = ["alpha", "beta", "gamma", "delta", "alpha"];
    let input: String = keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{k}:value {i}:x\n"))
        .collect();
    let (status, _, err) = cli(
        &broker,
        &[
            "produce",
            "io",
            "--parse-key",
            "--header",
            "src=cli",
            "--header",
            "flag",
        ],
        input.as_bytes(),
    );
    assert!(status.success(), "{err}");
    assert_eq!(err, "produced 5 records\n");

    let out = ok(
        &broker,
        &[
            "consume",
            "io",
            "--from-beginning",
            "--print-partition",
            "--print-offset",
            "--print-headers",
            "--print-key",
            "--key-separator",
            "|",
            "--max-messages",
            "5",
        ],
        "",
    );
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    let mut expected: Vec<String> = Vec::new();
    let mut next_offset = std::collections::HashMap::new();
    for (i, k) in keys.iter().enumerate() {
        let p = partition_for_key(k.as_bytes(), 5);
        let o = next_offset.entry(p).or_insert(0);
        expected.push(format!(
            "partition:{p}|offset:{o}|headers:src=cli,flag|{k}|value {i}:x"
        ));
        *o += 1;
    }
    expected.sort();
    assert_eq!(lines, expected);

    // Values only, from a given offset of one partition; exits when idle.
    let p = partition_for_key(b"alpha", 5);
    let want: String = keys
        .iter()
        .enumerate()
        .filter(|(_, k)| partition_for_key(k.as_bytes(), 5) == p)
        .skip(1)
        .map(|(i, _)| format!("value {i}:x\n"))
        .collect();
    assert!(want.contains("value 4:x"));
    let p = p.to_string();
    let args = [
        "consume",
        "io",
        "--partition",
        &p,
        "--offset",
        "1",
        "--timeout-ms",
        "500",
    ];
    assert_eq!(ok(&broker, &args, ""), want);
    // Default start is the end: nothing printed.
    let out = ok(&broker, &["consume", "io", "--timeout-ms", "300"], "");
    assert_eq!(out, "");

    // Timestamps are printed as given by the broker (CreateTime of the producer).
    let out = ok(
        &broker,
        &[
            "consume",
            "io",
            "--from-beginning",
            "--print-timestamp",
            "-n",
            "1",
        ],
        "",
    );
    let ts: i64 = out
        .strip_prefix("timestamp:")
        .and_then(|s| s.split('\t').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(ts > 1_600_000_000_000, "{out}");
}

#[test]
fn produce_failures_exit_non_zero() {
    let broker = Broker::start();
    ok(&broker, &["topic", "create", "f", "--partitions", "1"], "");
    let err = fails(
        &broker,
        &["produce", "f", "--parse-key"],
        "k:v\nno separator\nk2:v2\n",
    );
    assert_eq!(
        err,
        "eddy: produced 2 records, 1 failed: line 2 has no key separator ':'"
    );
    let err = fails(&broker, &["produce", "f", "--partition", "7"], "x\n");
    assert!(err.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{err}");
    let err = fails(&broker, &["produce", "f", "--acks", "2"], "x\n");
    assert!(err.contains("--acks 2"), "{err}");
    // An unreachable broker is reported at once.
    for args in [
        &["produce", "f"][..],
        &["consume", "f"][..],
        &["topic", "list"][..],
    ] {
        let mut full = args.to_vec();
        full.extend(["--bootstrap", "127.0.0.1:1"]);
        let (status, _, err) = common::cli_raw(&full, b"x\n");
        assert!(!status.success());
        assert_eq!(
            err, "eddy: cannot connect to 127.0.0.1:1: connection refused\n",
            "{full:?}"
        );
    }
    // acks=-1 (not taken for a flag) and acks=0.
    ok(&broker, &["produce", "f", "--acks", "-1"], "k3:v3\n");
    ok(&broker, &["produce", "f", "--acks", "0"], "k4:v4\n");
    // The good records were written, empty lines included, CRLF stripped.
    ok(&broker, &["produce", "f"], "\r\nlast\r\n");
    let out = ok(
        &broker,
        &["consume", "f", "--from-beginning", "--print-key", "-n", "6"],
        "",
    );
    assert_eq!(
        out,
        "k\tv\nk2\tv2\nnull\tk3:v3\nnull\tk4:v4\nnull\t\nnull\tlast\n"
    );
}
