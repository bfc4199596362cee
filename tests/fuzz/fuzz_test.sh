#!/usr/bin/env bash
# libFuzzer targets for what untrusted peers send: NATS subject tokens,
# client requests and keys, the resolver table, and the gateway's decoding
# of WebSocket and grpc-web input. Each target is built here with Debian's
# clang (-fsanitize=fuzzer,address,undefined) from the sources in the
# runfiles, replays its committed corpus (tests/fuzz/corpus/<target>: seeds,
# and any input that once crashed it, kept as a regression), then fuzzes for
# FUZZ_SECONDS (default 15). A crash fails the test and prints the input in
# base64: add it to the target's corpus with the fix.
set -euo pipefail

R="${TEST_SRCDIR:-$PWD/..}/entitysync"
out="${TEST_TMPDIR:-$(mktemp -d)}"
seconds="${FUZZ_SECONDS:-15}"
CXX="${CXX_FUZZ:-clang++}"
command -v "$CXX" >/dev/null || { echo "FAIL: $CXX not found (scripts/setup installs clang)"; exit 1; }

INC=(-I"$R" -I"$R/proto")
SAN=(-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined)
LIBS=(-lgrpc++ -lgrpc -lgpr -lprotobuf
  -labsl_statusor -labsl_status -labsl_cord -labsl_cordz_info -labsl_cord_internal
  -labsl_cordz_functions -labsl_cordz_handle -labsl_hash -labsl_city
  -labsl_low_level_hash -labsl_raw_hash_set -labsl_hashtablez_sampler
  -labsl_exponential_biased -labsl_synchronization -labsl_graphcycles_internal
  -labsl_stacktrace -labsl_symbolize -labsl_debugging_internal
  -labsl_demangle_internal -labsl_malloc_internal -labsl_time -labsl_civil_time
  -labsl_time_zone -labsl_str_format_internal -labsl_strings
  -labsl_strings_internal -labsl_int128 -labsl_bad_optional_access
  -labsl_bad_variant_access -labsl_throw_delegate -labsl_base
  -labsl_spinlock_wait -labsl_raw_logging_internal -labsl_log_severity
  -labsl_strerror -lpthread)

# Generated protobuf code is not fuzzed itself: built once, without
# sanitizers (faster), and linked into every target.
# Waits for every background job; fails when one did.
wait_all() {
  local pid failed=0
  for pid in "$@"; do wait "$pid" || failed=1; done
  [ "$failed" -eq 0 ] || { echo "FAIL: a fuzz target did not build"; exit 1; }
}

pids=()
for p in entitysync config; do
  "$CXX" -std=c++17 -O1 -w "${INC[@]}" -c "$R/proto/entitysync/v1/$p.pb.cc" \
    -o "$out/$p.pb.o" &
  pids+=($!)
done
wait_all "${pids[@]}"

build() {  # build NAME SOURCES... (paths under the runfiles)
  local name=$1; shift
  local srcs=()
  for s in "$@"; do srcs+=("$R/$s"); done
  "$CXX" -std=c++17 -O1 -g "${SAN[@]}" "${INC[@]}" "$R/tests/fuzz/${name}_fuzzer.cc" \
    "${srcs[@]}" "$out/entitysync.pb.o" "$out/config.pb.o" "${LIBS[@]}" -o "$out/$name"
}

build subject_token adapters/bus/subject_token.cc & a=$!
build request server/core/entity_key.cc common/utf8.cc & b=$!
wait_all "$a" "$b"
build config server/core/config.cc server/core/entity_key.cc common/utf8.cc & a=$!
build gateway_codec adapters/gateway/ws_codec.cc adapters/gateway/grpc_web_codec.cc common/utf8.cc & b=$!
wait_all "$a" "$b"

failed=0
for name in subject_token request config gateway_codec; do
  work="$out/corpus-$name"
  mkdir -p "$work"
  echo "== $name: corpus replay, then ${seconds}s of fuzzing"
  if ! ASAN_OPTIONS=detect_leaks=1 "$out/$name" -max_total_time="$seconds" \
      -timeout=10 -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 \
      -artifact_prefix="$out/$name-" "$work" "$R/tests/fuzz/corpus/$name" \
      > "$out/$name.log" 2>&1; then
    failed=$((failed + 1))
    tail -40 "$out/$name.log"
    for crash in "$out/$name"-*; do
      [ -f "$crash" ] || continue
      echo "FAIL: $name crashed on $(basename "$crash"); base64 of the input:"
      base64 -w0 "$crash"; echo
    done
  else
    grep -E "^stat::number_of_executed_units|^stat::new_units_added" "$out/$name.log" \
      | tr '\n' ' '; echo
  fi
done
[ "$failed" -eq 0 ] || { echo "FAIL: $failed fuzz target(s) crashed"; exit 1; }
echo "4 fuzz targets: no crash"
