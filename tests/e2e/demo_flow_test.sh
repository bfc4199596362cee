#!/usr/bin/env bash
# The README's demo, automated with the real binaries: seed the SQLite
# database, start the items resolver and entitysync-server on free ports,
# subscribe with the CLI, change the item with `items set --notify`, and see
# the change arrive as a JSON line. Then SIGTERM stops the server cleanly.
set -euo pipefail

runfiles="${TEST_SRCDIR:-$PWD/..}/entitysync"
server="$runfiles/server/entitysync-server"
items="$runfiles/examples/items/items"
cli="$runfiles/client/entitysync"
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
db="$tmp/items.db"
pids=()
cleanup() { for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$tmp"/*.log; do echo "== $f" >&2; cat "$f" >&2; done; exit 1; }
wait_for() {  # wait_for SECONDS COMMAND...
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do [ "$SECONDS" -lt "$deadline" ] || return 1; sleep 0.1; done
}

"$items" seed --db="$db" > "$tmp/seed.log" 2>&1 || fail "seed"

"$items" serve --db="$db" --listen=127.0.0.1:0 2> "$tmp/resolver.log" &
pids+=($!)
wait_for 10 grep -q "listening on" "$tmp/resolver.log" || fail "resolver did not start"
resolver_addr=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$tmp/resolver.log" | head -1)

cat > "$tmp/config.textproto" <<CONFIG
entities { name: "items" resolver { target: "$resolver_addr" } }
CONFIG
"$server" --config="$tmp/config.textproto" --public_address=127.0.0.1:0 \
  --internal_address=127.0.0.1:0 --metrics_address=127.0.0.1:0 2> "$tmp/server.log" &
server_pid=$!
pids+=($server_pid)
wait_for 10 grep -q "entitysync serving" "$tmp/server.log" || fail "server did not start"
public=$(sed -n 's/.*public (Subscribe) on port \([0-9]*\).*/\1/p' "$tmp/server.log")
internal=$(sed -n 's/.*internal (Notify, health) on port \([0-9]*\).*/\1/p' "$tmp/server.log")

# items/100 and items/*: an update matching both is printed once, so three
# lines are expected: the two snapshots and the change.
"$cli" --target="127.0.0.1:$public" subscribe --count=3 --timeout=30 items/100 'items/*' \
  > "$tmp/updates.jsonl" 2> "$tmp/cli.log" &
cli_pid=$!
pids+=($cli_pid)
wait_for 10 grep -q '"id":"100"' "$tmp/updates.jsonl" || fail "no snapshot for items/100"

"$items" set --db="$db" --id=100 --name="Desk lamp" --notify="127.0.0.1:$internal" \
  > "$tmp/set.log" 2>&1 || fail "items set"
version=$(sed -n 's|items/100 version \([0-9]*\)|\1|p' "$tmp/set.log")
wait "$cli_pid" || fail "the CLI did not receive three updates"
if [ "$(sort "$tmp/updates.jsonl" | uniq -d | wc -l)" -ne 0 ]; then
  fail "an update was printed twice: $(cat "$tmp/updates.jsonl")"
fi

last=$(tail -1 "$tmp/updates.jsonl")
echo "last update: $last"
case "$last" in *Desk\ lamp*) ;; *) fail "the change did not arrive: $last" ;; esac
case "$last" in *"\"version\":$version"*) ;; *) fail "expected version $version: $last" ;; esac

# Prometheus metrics: what just happened shows in the counters.
metrics_port=$(sed -n 's/.*metrics (Prometheus) on port \([0-9]*\).*/\1/p' "$tmp/server.log")
[ -n "$metrics_port" ] || fail "no metrics port in the server log"
curl -sf "http://127.0.0.1:$metrics_port/metrics" > "$tmp/metrics.txt" || fail "GET /metrics"
metric() { awk -v name="$1" '$1 == name { print $2 }' "$tmp/metrics.txt"; }
for name in entitysync_notices_published_total entitysync_notices_received_total \
    entitysync_updates_delivered_total 'entitysync_resolves_total{entity="items"}' \
    'entitysync_resolve_duration_seconds_count{entity="items"}' \
    entitysync_notify_duration_seconds_count; do
  value=$(metric "$name")
  case "$value" in ''|0) fail "metric $name is '${value}' after a change: $(grep -v '^#' "$tmp/metrics.txt")" ;; esac
done
[ "$(metric entitysync_bus_connected)" = 1 ] || fail "entitysync_bus_connected is not 1"
for name in entitysync_streams entitysync_subscriptions entitysync_updates_conflated_total \
    entitysync_updates_dropped_total entitysync_slow_consumer_disconnects_total \
    entitysync_bus_reconnects_total; do
  [ -n "$(metric "$name")" ] || fail "metric $name is missing"
done

# The CLI notifies too (no inline rows: the server resolves).
"$cli" --target="127.0.0.1:$internal" notify items/100 > "$tmp/notify.log" 2>&1 \
  || fail "CLI notify"
grep -q "accepted 1" "$tmp/notify.log" || fail "CLI notify output"

# The operator's view, from the CLI.
"$cli" --target="127.0.0.1:$internal" stats > "$tmp/stats.json" 2>&1 || fail "CLI stats"
grep -q '"bus_state": "connected"' "$tmp/stats.json" || fail "stats: $(cat "$tmp/stats.json")"
grep -q '"entity": "items"' "$tmp/stats.json" || fail "stats: $(cat "$tmp/stats.json")"

# Secrets never reach the logs.
"$cli" --target="127.0.0.1:$public" --credentials=hunter2-secret subscribe \
  --count=1 --timeout=10 items/101 > /dev/null 2>> "$tmp/cli.log" || fail "subscribe with credentials"

kill -TERM "$server_pid"
wait_for 10 bash -c "! kill -0 $server_pid 2>/dev/null" || fail "server did not stop on SIGTERM"
wait "$server_pid" || fail "server exited non-zero"
if grep -q hunter2 "$tmp"/*.log; then fail "a secret appeared in a log"; fi
echo "PASS"
