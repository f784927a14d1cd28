#!/usr/bin/env bash
# eddy-client beside librdkafka on one broker, in one run: starts a release
# broker on a temporary data dir, measures librdkafka (eddy-bench) and then
# `eddy perf produce` / `eddy perf consume` with the same record size and
# count, and prints both.
#
#   benches/compare.sh [RECORDS] [RECORD_SIZE] [PARTITIONS] [-- extra eddy perf produce args]
#
# Defaults: 5000000 records of 100 bytes, 1 partition. `eddy perf produce`
# runs twice: with librdkafka's settings in eddy-bench (acks=1,
# batch.size=1 MiB, linger.ms=5), then with the Java client's defaults
# (acks=all, idempotence, batch.size=16384, linger.ms=5).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
records=${1:-5000000}
size=${2:-100}
partitions=${3:-1}
shift $(( $# < 3 ? $# : 3 ))
[[ "${1:-}" == "--" ]] && shift
cargo build --release -p eddy -p eddy-bench >&2
target="${CARGO_TARGET_DIR:-target}/release"
data=$(mktemp -d /tmp/eddy-compare.XXXXXX)
port=$(( 20000 + RANDOM % 20000 ))
"$target/eddy" broker --data-dir "$data" --listen "127.0.0.1:$port" >"$data.log" 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null; wait $broker 2>/dev/null; rm -rf "$data" "$data.log"' EXIT
for _ in $(seq 100); do
    grep -q "ready" "$data.log" 2>/dev/null && break
    sleep 0.05
done
bootstrap="127.0.0.1:$port"
echo "== librdkafka (eddy-bench) =="
"$target/eddy-bench" --bootstrap "$bootstrap" --sizes "$size" --partitions "$partitions" \
    --small-records "$records" --large-records "$records" 2>/dev/null | tail -3
echo
"$target/eddy" topic create perf-compare -p "$partitions" -b "$bootstrap" >/dev/null
echo "== eddy-client: eddy perf produce, librdkafka's settings (acks=1, batch.size=1048576) =="
"$target/eddy" perf produce -b "$bootstrap" --topic perf-compare --records "$records" \
    --record-size "$size" --acks 1 --producer-config batch.size=1048576 "$@" 2>&1 | tail -1
echo
echo "== eddy-client: eddy perf produce, the Java client's defaults =="
"$target/eddy" perf produce -b "$bootstrap" --topic perf-compare --records "$records" \
    --record-size "$size" "$@" 2>&1 | tail -1
echo
echo "== eddy-client: eddy perf consume =="
"$target/eddy" perf consume -b "$bootstrap" --topic perf-compare --records "$records" 2>&1 | tail -2
