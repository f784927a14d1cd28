//! The `eddy` command line against a running broker: topic administration,
//! produce from stdin, consume to stdout, and readable errors.

use std::process::ExitStatus;

use rdkafka::admin::{AdminOptions, ResourceSpecifier};
use rdkafka::message::Message;

use crate::common::{block_on, headers_of, run_cli, Broker, OP_TIMEOUT};

/// Runs the CLI with `--bootstrap` and asserts success; returns stdout.
fn ok(broker: &Broker, args: &[&str], stdin: &str) -> String {
    let mut full: Vec<&str> = args.to_vec();
    full.extend(["--bootstrap", broker.bootstrap()]);
    let (status, out, err) = run_cli(&full, stdin);
    assert!(
        status.success(),
        "`eddy {}` failed with {status}\nstdout: {out}\nstderr: {err}",
        full.join(" ")
    );
    out
}

/// Runs the CLI and asserts a failure reported as one readable sentence.
fn fails(args: &[&str]) -> (ExitStatus, String) {
    let (status, out, err) = run_cli(args, "");
    assert!(
        !status.success(),
        "`eddy {}` should fail\nstdout: {out}\nstderr: {err}",
        args.join(" ")
    );
    let msg = err.trim();
    assert!(
        !msg.is_empty(),
        "`eddy {}`: no error message",
        args.join(" ")
    );
    assert_eq!(
        msg.lines().count(),
        1,
        "`eddy {}`: error should be one line, got:\n{msg}",
        args.join(" ")
    );
    assert!(
        !msg.contains("panicked") && !msg.contains("RUST_BACKTRACE"),
        "`eddy {}` panicked: {msg}",
        args.join(" ")
    );
    (status, msg.to_string())
}

fn lists_topic(list_output: &str, topic: &str) -> bool {
    list_output.lines().any(|l| {
        l.split(|c: char| c.is_whitespace() || c == ',')
            .any(|w| w == topic)
    })
}

fn topic_config(broker: &Broker, topic: &str, key: &str) -> Option<String> {
    let admin = broker.admin();
    let spec = ResourceSpecifier::Topic(topic);
    let opts = AdminOptions::new().request_timeout(Some(OP_TIMEOUT));
    let res = block_on(admin.describe_configs([&spec], &opts)).expect("DescribeConfigs");
    let r = res.into_iter().next()?.ok()?;
    r.get(key).and_then(|e| e.value.clone())
}

#[test]
fn cli_topic_lifecycle() {
    let broker = Broker::start();

    ok(
        &broker,
        &["topic", "create", "cli-topic", "--partitions", "3"],
        "",
    );
    assert_eq!(broker.partition_count("cli-topic"), Some(3));
    ok(
        &broker,
        &[
            "topic",
            "create",
            "cli-cfg",
            "--partitions",
            "1",
            "--config",
            "retention.ms=86400000",
        ],
        "",
    );
    assert_eq!(
        topic_config(&broker, "cli-cfg", "retention.ms").as_deref(),
        Some("86400000")
    );

    let list = ok(&broker, &["topic", "list"], "");
    assert!(lists_topic(&list, "cli-topic"), "list output:\n{list}");
    assert!(lists_topic(&list, "cli-cfg"), "list output:\n{list}");

    let before = ok(&broker, &["topic", "describe", "cli-topic"], "");
    assert!(before.contains("cli-topic"), "describe output:\n{before}");

    ok(
        &broker,
        &["topic", "alter", "cli-topic", "--partitions", "5"],
        "",
    );
    assert_eq!(broker.partition_count("cli-topic"), Some(5));
    let after = ok(&broker, &["topic", "describe", "cli-topic"], "");
    assert_ne!(
        before, after,
        "describe output did not change after adding partitions"
    );

    ok(
        &broker,
        &[
            "topic",
            "alter",
            "cli-topic",
            "--config",
            "retention.ms=1234567",
        ],
        "",
    );
    assert_eq!(
        topic_config(&broker, "cli-topic", "retention.ms").as_deref(),
        Some("1234567")
    );

    // Shrinking is refused with a readable error and changes nothing.
    let b = broker.bootstrap().to_string();
    fails(&[
        "topic",
        "alter",
        "cli-topic",
        "--partitions",
        "2",
        "--bootstrap",
        &b,
    ]);
    assert_eq!(broker.partition_count("cli-topic"), Some(5));

    let info = ok(&broker, &["cluster", "info"], "");
    let port = b.rsplit(':').next().expect("port");
    assert!(
        info.contains(port),
        "cluster info does not show the broker's port:\n{info}"
    );

    ok(&broker, &["topic", "delete", "cli-topic"], "");
    assert_eq!(broker.partition_count("cli-topic"), None);
    let list = ok(&broker, &["topic", "list"], "");
    assert!(
        !lists_topic(&list, "cli-topic"),
        "deleted topic still listed:\n{list}"
    );
    assert!(lists_topic(&list, "cli-cfg"), "list output:\n{list}");
}

#[test]
fn cli_produce_and_consume() {
    let broker = Broker::start();
    let topic = "cli-io";
    ok(
        &broker,
        &["topic", "create", topic, "--partitions", "1"],
        "",
    );
    ok(
        &broker,
        &[
            "produce",
            topic,
            "--parse-key",
            "--header",
            "h1=v1",
            "--header",
            "h2=v2",
        ],
        "k1:hello\nk2:world\nk1:hello:again\n",
    );

    // What the CLI wrote, as librdkafka sees it.
    let msgs = broker.consume_all(topic, &[0]);
    type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);
    let got: Vec<KeyValue> = msgs.iter().map(|m| (m.key(), m.payload())).collect();
    assert_eq!(
        got,
        vec![
            (Some(&b"k1"[..]), Some(&b"hello"[..])),
            (Some(&b"k2"[..]), Some(&b"world"[..])),
            (Some(&b"k1"[..]), Some(&b"hello:again"[..])),
        ]
    );
    for m in &msgs {
        assert_eq!(
            headers_of(m),
            vec![
                ("h1".to_string(), Some(b"v1".to_vec())),
                ("h2".to_string(), Some(b"v2".to_vec()))
            ]
        );
    }

    let out = ok(
        &broker,
        &[
            "consume",
            topic,
            "--from-beginning",
            "--print-key",
            "--max-messages",
            "3",
        ],
        "",
    );
    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 3, "consume output:\n{out}");
    for (line, (k, v)) in
        lines
            .iter()
            .zip([("k1", "hello"), ("k2", "world"), ("k1", "hello:again")])
    {
        assert!(
            line.contains(k) && line.contains(v),
            "line {line:?} lacks {k}/{v}"
        );
        assert!(
            line.find(k) < line.rfind(v),
            "key should come before value: {line:?}"
        );
    }

    let out = ok(
        &broker,
        &[
            "consume",
            topic,
            "--partition",
            "0",
            "--offset",
            "1",
            "--print-offset",
            "--max-messages",
            "1",
        ],
        "",
    );
    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "consume --offset 1 output:\n{out}");
    assert!(
        lines[0].contains("world") && lines[0].contains('1'),
        "{out}"
    );
    assert!(!lines[0].contains("hello"), "{out}");

    // Plain values and a custom key separator.
    ok(&broker, &["produce", topic], "plain value\n");
    ok(
        &broker,
        &["produce", topic, "--parse-key", "--key-separator", "|"],
        "ka|va:b\n",
    );
    let msgs = broker.consume_all(topic, &[0]);
    assert_eq!(msgs.len(), 5);
    assert_eq!(msgs[3].key(), None);
    assert_eq!(msgs[3].payload(), Some(&b"plain value"[..]));
    assert_eq!(msgs[4].key(), Some(&b"ka"[..]));
    assert_eq!(msgs[4].payload(), Some(&b"va:b"[..]));
}

#[test]
fn cli_errors_are_one_readable_line() {
    let broker = Broker::start();
    let b = broker.bootstrap().to_string();
    fails(&["topic", "describe", "missing-topic", "--bootstrap", &b]);
    fails(&["topic", "delete", "missing-topic", "--bootstrap", &b]);
    let (_, msg) = fails(&[
        "topic",
        "create",
        "bad/name",
        "--partitions",
        "1",
        "--bootstrap",
        &b,
    ]);
    assert!(
        msg.to_lowercase().contains("topic"),
        "error for an illegal name should mention the topic: {msg}"
    );
    ok(
        &broker,
        &["topic", "create", "dup", "--partitions", "1"],
        "",
    );
    fails(&[
        "topic",
        "create",
        "dup",
        "--partitions",
        "1",
        "--bootstrap",
        &b,
    ]);
    // Nothing listens on port 1 of loopback.
    fails(&["topic", "list", "--bootstrap", "127.0.0.1:1"]);
    // Only "dup" was created (internal topics such as __consumer_offsets aside).
    let user_topics: Vec<String> = broker
        .topic_names()
        .into_iter()
        .filter(|n| !n.starts_with("__"))
        .collect();
    assert_eq!(user_topics, vec!["dup".to_string()]);
}

/// Users cannot write to the coordinators' internal topics: a produce to
/// `__consumer_offsets` (created by the group coordinator on first use) is refused with
/// INVALID_TOPIC_EXCEPTION, and nothing is appended.
#[test]
fn cli_produce_to_internal_topic_is_refused() {
    let broker = Broker::start();
    ok(
        &broker,
        &["topic", "create", "plain", "--partitions", "1"],
        "",
    );
    // A group consumer makes the coordinator create __consumer_offsets.
    ok(
        &broker,
        &["consume", "plain", "--group", "g", "--timeout-ms", "500"],
        "",
    );
    let b = broker.bootstrap().to_string();
    let (status, _, err) = run_cli(
        &[
            "produce",
            "__consumer_offsets",
            "--partition",
            "0",
            "--bootstrap",
            &b,
        ],
        "x\n",
    );
    assert!(
        !status.success(),
        "produce to an internal topic succeeded: {err}"
    );
    assert!(err.contains("INVALID_TOPIC_EXCEPTION"), "{err}");
    let (low, high) = broker.watermarks("__consumer_offsets", 0);
    assert_eq!(high - low, 0, "nothing appended to __consumer_offsets-0");
}
