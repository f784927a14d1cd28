#!/usr/bin/env bash
# Builds the release broker and the benchmark, then measures produce/consume
# throughput with librdkafka against a broker started on a temporary data dir.
# Extra arguments go to eddy-bench, e.g. --small-records 1000000 or
# --bootstrap 127.0.0.1:9092 (use a running broker).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release -p eddy -p eddy-bench
target="${CARGO_TARGET_DIR:-target}/release"
exec "$target/eddy-bench" --broker-bin "$target/eddy" "$@"
