#!/usr/bin/env bash
# A rolling restart under load, on the local cluster of deploy/local/cluster
# (nats-server, three replicas, the items resolver, HAProxy in front), with
# ports chosen at run time:
#
# - four `entitysync subscribe` clients hold streams through HAProxy to three
#   items, a writer changes the items (SQLite + Notify through HAProxy's
#   internal frontend) all the time;
# - each replica in turn gets SIGTERM, drains (goaway), exits cleanly and is
#   started again before the next one;
# - then one last change per item, and every client must converge to the
#   final version of every item: each was moved by a drain at least once,
#   received updates during the restarts and after them, the replicas hold
#   exactly the clients' streams (none stuck on a dead or draining one),
#   and clients, replicas and the cluster stop cleanly.
set -euo pipefail

runfiles="${TEST_SRCDIR:-$PWD/..}/entitysync"
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
cluster="$runfiles/deploy/local/cluster"
cli="$runfiles/client/entitysync"
items="$runfiles/examples/items/items"
dir="$tmp/cluster"
CLIENTS=4
IDS=(100 101 102)
started=$SECONDS

for tool in haproxy nats-server; do
  command -v "$tool" > /dev/null || [ -x "/usr/sbin/$tool" ] \
    || { echo "FAIL: $tool not installed (scripts/setup)"; exit 1; }
done

client_pids=()
writer_pid=""
cleanup() {
  if [ -n "$writer_pid" ]; then kill "$writer_pid" 2> /dev/null || true; fi
  for p in "${client_pids[@]}"; do kill -KILL "$p" 2> /dev/null || true; done
  "$cluster" stop --dir "$dir" > /dev/null 2>&1 || true
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  for f in "$tmp"/*.log "$tmp"/client*.err "$dir"/logs/*.log; do
    [ -f "$f" ] && { echo "== $f"; tail -n 25 "$f"; }
  done
  exit 1
}
elapsed() { echo "$((SECONDS - started))s"; }

# Free loopback ports: 6 single ones and a block of 30 for the replicas
# (replica i: +10i .. +10i+2), none listening now, and all below the
# ephemeral range (32768 up), where the outgoing connections of tests
# running beside this one (10,000 at once in the WebSocket fault suite) may
# hold a port that nothing listens on but that no server can bind.
port_free() { ! (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null; }
pick_block() {  # pick_block SIZE
  local base p ok
  for _ in $(seq 200); do
    base=$((20000 + RANDOM % 600 * 20))
    ok=1
    for ((p = base; p < base + $1; p++)); do port_free "$p" || { ok=0; break; }; done
    [ "$ok" = 1 ] && { echo "$base"; return; }
  done
  return 1
}
single=$(pick_block 6) || fail "no free ports"
replicas=$(pick_block 30) || fail "no free ports"
[ "$single" != "$replicas" ] || replicas=$(pick_block 30) || fail "no free ports"
export CLUSTER_PUBLIC_PORT=$single
export CLUSTER_INTERNAL_PORT=$((single + 1))
export CLUSTER_RESOLVER_PORT=$((single + 2))
export CLUSTER_STATS_PORT=$((single + 3))
export CLUSTER_GATEWAY_PORT=$((single + 4))
export CLUSTER_NATS_PORT=$((single + 5))
export CLUSTER_REPLICA_PORT=$replicas
export CLUSTER_REPLICAS=3
export CLUSTER_SHUTDOWN_GRACE=10s

"$cluster" start --dir "$dir" --bin "$runfiles" > "$tmp/start.log" 2>&1 \
  || fail "cluster start: $(cat "$tmp/start.log")"
db="$dir/items.db"
echo "cluster up ($(elapsed)): public $CLUSTER_PUBLIC_PORT, internal $CLUSTER_INTERNAL_PORT"

keys=()
for id in "${IDS[@]}"; do keys+=("items/$id"); done
for ((c = 0; c < CLIENTS; c++)); do
  "$cli" --target="127.0.0.1:$CLUSTER_PUBLIC_PORT" subscribe "${keys[@]}" \
    > "$tmp/client$c.out" 2> "$tmp/client$c.err" &
  client_pids+=($!)
done
lines() { wc -l < "$tmp/client$1.out"; }
all_have() {  # all_have N: every client printed at least N updates
  for ((c = 0; c < CLIENTS; c++)); do [ "$(lines "$c")" -ge "$1" ] || return 1; done
}
deadline=$((SECONDS + 15))
until all_have "${#IDS[@]}"; do
  [ "$SECONDS" -lt "$deadline" ] || fail "clients did not get their snapshots"
  sleep 0.1
done
echo "clients subscribed ($(elapsed))"

# The writer: round after round, every item changes and is notified.
# Notify may fail while a replica goes away (the change is in SQLite; the
# next round covers it): counted, not fatal.
writer() {
  local round=0
  while [ ! -e "$tmp/stop-writer" ]; do
    round=$((round + 1))
    for id in "${IDS[@]}"; do
      "$items" set --db="$db" --id="$id" --name="round $round" \
        --notify="127.0.0.1:$CLUSTER_INTERNAL_PORT" >> "$tmp/writer.log" 2>&1 \
        || echo "round $round items/$id" >> "$tmp/writer-failures.log"
    done
    sleep 0.1
  done
}
writer &
writer_pid=$!
sleep 1

# The rolling restart: each replica drains on SIGTERM, exits, is started
# again and is SERVING (and up in HAProxy) before the next one.
declare -a during_before
for ((c = 0; c < CLIENTS; c++)); do during_before[c]=$(lines "$c"); done
for ((i = 0; i < CLUSTER_REPLICAS; i++)); do
  "$cluster" restart "r$i" --dir "$dir" >> "$tmp/restarts.log" 2>&1 \
    || fail "restart r$i: $(tail -n 3 "$tmp/restarts.log")"
  grep -q "^r$i: SIGTERM, drained and exited (clean)" "$tmp/restarts.log" \
    || fail "r$i did not exit cleanly on SIGTERM"
  sleep 1
done
cat "$tmp/restarts.log"
echo "rolling restart done ($(elapsed))"
for ((c = 0; c < CLIENTS; c++)); do
  [ "$(lines "$c")" -gt "${during_before[c]}" ] \
    || fail "client $c received nothing during the restarts"
done
touch "$tmp/stop-writer"
wait "$writer_pid"
writer_pid=""
rounds=$(grep -c ' version ' "$tmp/writer.log" || true)
failed_notify=0
[ -f "$tmp/writer-failures.log" ] && failed_notify=$(wc -l < "$tmp/writer-failures.log")
echo "writer: $rounds changes, $failed_notify notifies failed during restarts"

# The last change of every item, notified for sure.
declare -A final
after_restarts=()
for ((c = 0; c < CLIENTS; c++)); do after_restarts[c]=$(lines "$c"); done
for id in "${IDS[@]}"; do
  ok=""
  for _ in $(seq 20); do
    if out=$("$items" set --db="$db" --id="$id" --name="final" \
               --notify="127.0.0.1:$CLUSTER_INTERNAL_PORT" 2>&1); then
      ok=1
      break
    fi
    sleep 0.5
  done
  [ -n "$ok" ] || fail "final change of items/$id: $out"
  final[$id]=$(sed -n "s|^items/$id version \([0-9]*\)$|\1|p" <<< "$out")
  [ -n "${final[$id]}" ] || fail "no version in: $out"
done
echo "final versions: $(for id in "${IDS[@]}"; do printf 'items/%s=v%s ' "$id" "${final[$id]}"; done)"

# Every client converges to the final version of every item.
has_final() {  # has_final CLIENT ID
  grep -q "\"key\":{\"entity\":\"items\",\"id\":\"$2\"},\"version\":${final[$2]}," \
    "$tmp/client$1.out"
}
converged() {
  for ((c = 0; c < CLIENTS; c++)); do
    for id in "${IDS[@]}"; do has_final "$c" "$id" || return 1; done
  done
}
deadline=$((SECONDS + 30))
until converged; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    for ((c = 0; c < CLIENTS; c++)); do
      for id in "${IDS[@]}"; do
        has_final "$c" "$id" || echo "client $c lacks items/$id v${final[$id]}; last: $(grep "\"id\":\"$id\"" "$tmp/client$c.out" | tail -1 | cut -c1-80)"
      done
    done
    fail "clients did not converge to the final versions"
  fi
  sleep 0.1
done
echo "all $CLIENTS clients converged ($(elapsed))"

for ((c = 0; c < CLIENTS; c++)); do
  [ "$(lines "$c")" -gt "${after_restarts[c]}" ] \
    || fail "client $c received nothing after the restarts"
  moved=$(grep -c '^goaway from ' "$tmp/client$c.err" || true)
  [ "$moved" -ge 1 ] || fail "client $c was never told to move, yet every replica restarted"
  # The CLI prints a key's versions only upward; the file must say so too.
  for id in "${IDS[@]}"; do
    grep "\"id\":\"$id\"}" "$tmp/client$c.out" \
      | sed -n 's/.*"version":\([0-9]*\),.*/\1/p' | sort -n -c 2> /dev/null \
      || fail "client $c: versions of items/$id out of order"
  done
  echo "client $c: $(lines "$c") updates, moved $moved time(s)"
done

# No stream stuck anywhere: the replicas hold exactly the clients' streams.
streams=0
for ((i = 0; i < CLUSTER_REPLICAS; i++)); do
  n=$("$cli" --target="127.0.0.1:$((CLUSTER_REPLICA_PORT + 10 * i + 1))" stats \
        | sed -n 's/^ *"streams": "\([0-9]*\)".*/\1/p')
  [ -n "$n" ] || fail "stats of r$i"
  streams=$((streams + n))
done
[ "$streams" -eq "$CLIENTS" ] || fail "the replicas hold $streams streams for $CLIENTS clients"

# Clean exits: clients on SIGTERM, then the whole cluster.
for p in "${client_pids[@]}"; do kill -TERM "$p"; done
for p in "${client_pids[@]}"; do wait "$p" || fail "a client exited $? on SIGTERM"; done
client_pids=()
"$cluster" stop --dir "$dir" > "$tmp/stop.log" 2>&1 || fail "cluster stop: $(cat "$tmp/stop.log")"
"$cluster" status --dir "$dir" > "$tmp/status.log" 2>&1 || true
grep -q ' running ' "$tmp/status.log" && fail "still running after stop: $(cat "$tmp/status.log")"
for ((i = 0; i < CLUSTER_REPLICAS; i++)); do
  [ "$(grep -c ' stopped$' "$dir/logs/r$i.log")" -eq 2 ] \
    || fail "r$i did not stop cleanly twice (restart, stop)"
done
echo "PASS in $(elapsed)"
