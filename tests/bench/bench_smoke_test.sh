#!/usr/bin/env bash
# The benchmark suite at a tiny size: `bench/run --smoke` starts a
# nats-server, replicas, the load generator and the calibration tools (the
# fastbuild binaries of this test's runfiles), runs every scenario, and
# check_smoke_results.py checks that each one ran and left well-formed
# results (figures present, deliveries and latency samples, plots when gnuplot
# is installed). Performance targets are not judged here: speed is measured by
# the benchmarks (bench/run), never asserted in tests.
set -euo pipefail

runfiles="${TEST_SRCDIR:-$PWD/..}/entitysync"
out="${TEST_TMPDIR:-$(mktemp -d)}/bench-smoke"
mkdir -p "$out"

command -v nats-server > /dev/null || [ -x /usr/sbin/nats-server ] \
  || { echo "FAIL: nats-server not installed (scripts/setup)"; exit 1; }

started=$SECONDS
if ! "$runfiles/bench/run" --smoke --out="$out" \
    --bin="$runfiles" > "$out/run.stdout" 2> "$out/run.stderr"; then
  echo "FAIL: bench/run --smoke failed"
  tail -n 60 "$out/run.stderr"
  exit 1
fi
echo "bench/run --smoke took $((SECONDS - started))s"
cat "$out/run.stdout"
/usr/bin/python3 "$runfiles/tests/bench/check_smoke_results.py" "$out"
