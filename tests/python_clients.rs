//! Interop with independent Python clients (kafka-python, a pure-Python protocol
//! implementation with an idempotent producer by default, and confluent-kafka), driven by
//! `tests/python/clients.py` against the real broker. `.ci/run` installs both packages;
//! where they are missing the test says so and passes without checking (it cannot install
//! them itself).

mod common;

use std::process::Command;

fn python_has_clients() -> bool {
    Command::new("python3")
        .args(["-c", "import kafka, confluent_kafka"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn kafka_python_and_confluent_kafka_interoperate() {
    if !python_has_clients() {
        eprintln!("SKIPPED: python3 with kafka-python and confluent-kafka is not installed (pip install kafka-python confluent-kafka)");
        return;
    }
    let broker = common::Broker::start();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/python/clients.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(broker.bootstrap())
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python interop failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- broker log\n{}",
        broker.log_text()
    );
    assert!(stdout.contains("all interop checks passed"), "{stdout}");
}
