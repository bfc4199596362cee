#!/usr/bin/env bash
# No secret reaches a log or /metrics: a full run of the real binaries (items
# resolver, entitysync-server with the internal token and the gateway, the
# CLI) in which a user credential and the internal token travel through
# every path that takes them (subscribe, denied subscribe, long poll through
# the gateway, Notify with the right and a wrong token, Admin.Stats), then
# every log, the CLI's output and a /metrics scrape are searched for them.
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

user_secret="user-Secret-7f3a91c2"
internal_token="internal-Token-b84e55d0"
wrong_token="wrong-Token-0c1d2e3f"

"$items" seed --db="$db" > "$tmp/seed.log" 2>&1 || fail "seed"
"$items" set --db="$db" --id=200 --name="Private" --acl="$user_secret" \
  --notify= > "$tmp/set0.log" 2>&1 || fail "set private item"

"$items" serve --db="$db" --listen=127.0.0.1:0 2> "$tmp/resolver.log" &
pids+=($!)
wait_for 10 grep -q "listening on" "$tmp/resolver.log" || fail "resolver did not start"
resolver_addr=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$tmp/resolver.log" | head -1)

cat > "$tmp/config.textproto" <<CONFIG
entities { name: "items" resolver { target: "$resolver_addr" } }
CONFIG
printf '%s\n' "$internal_token" > "$tmp/internal-token"
"$server" --config="$tmp/config.textproto" --public_address=127.0.0.1:0 \
  --internal_address=127.0.0.1:0 --metrics_address=127.0.0.1:0 \
  --gateway_address=127.0.0.1:0 --internal_token_file="$tmp/internal-token" \
  2> "$tmp/server.log" &
server_pid=$!
pids+=($server_pid)
wait_for 10 grep -q "gateway (WebSocket" "$tmp/server.log" || fail "server did not start"
public=$(sed -n 's/.*public (Subscribe) on port \([0-9]*\).*/\1/p' "$tmp/server.log")
internal=$(sed -n 's/.*internal (Notify, health) on port \([0-9]*\).*/\1/p' "$tmp/server.log")
metrics=$(sed -n 's/.*metrics (Prometheus) on port \([0-9]*\).*/\1/p' "$tmp/server.log")
gateway=$(sed -n 's/.*gateway (WebSocket, grpc-web) on port \([0-9]*\).*/\1/p' "$tmp/server.log")

# A subscriber with the user's credential: the snapshot, then the change.
"$cli" --target="127.0.0.1:$public" --credentials="$user_secret" subscribe \
  --count=2 --timeout=30 items/200 > "$tmp/updates.jsonl" 2> "$tmp/cli-subscribe.log" &
cli_pid=$!
pids+=($cli_pid)
wait_for 10 grep -q '"id":"200"' "$tmp/updates.jsonl" || fail "no snapshot for items/200"
# A subscriber with a wrong credential is denied.
"$cli" --target="127.0.0.1:$public" --credentials="$wrong_token" subscribe \
  --count=1 --timeout=3 items/200 > "$tmp/denied.jsonl" 2> "$tmp/cli-denied.log" \
  && fail "a wrong credential was let in"
# The long poll through the gateway, with the credential in a header.
curl -sS --max-time 10 -H "Authorization: $user_secret" \
  "http://127.0.0.1:$gateway/v1/await?entity=items&id=200" > "$tmp/await.json" \
  2> "$tmp/curl.log" || fail "await through the gateway"
grep -q '"Private"' "$tmp/await.json" || fail "await returned $(cat "$tmp/await.json")"

# Notify: refused without the token and with a wrong one, then accepted.
if "$cli" --target="127.0.0.1:$internal" notify items/200 > "$tmp/cli-notify-none.log" 2>&1; then
  fail "Notify without the token was accepted"
fi
grep -q UNAUTHENTICATED "$tmp/cli-notify-none.log" || fail "no UNAUTHENTICATED: $(cat "$tmp/cli-notify-none.log")"
if ENTITYSYNC_INTERNAL_TOKEN="$wrong_token" "$cli" --target="127.0.0.1:$internal" \
    notify items/200 > "$tmp/cli-notify-wrong.log" 2>&1; then
  fail "Notify with a wrong token was accepted"
fi
ENTITYSYNC_INTERNAL_TOKEN="$internal_token" "$items" set --db="$db" --id=200 \
  --name="Private, renamed" --acl="$user_secret" --notify="127.0.0.1:$internal" \
  > "$tmp/set.log" 2>&1 || fail "items set --notify with the token"
wait "$cli_pid" || fail "the subscriber did not see the change"
grep -q 'Private, renamed' "$tmp/updates.jsonl" || fail "the change did not arrive"
ENTITYSYNC_INTERNAL_TOKEN="$internal_token" "$cli" --target="127.0.0.1:$internal" \
  stats > "$tmp/stats.json" 2> "$tmp/cli-stats.log" || fail "stats with the token"

curl -sS --max-time 5 "http://127.0.0.1:$metrics/metrics" > "$tmp/metrics.txt" \
  || fail "metrics scrape"
grep -q '^entitysync_' "$tmp/metrics.txt" || fail "metrics look empty"
kill -TERM "$server_pid"
wait "$server_pid" || true

leaks=0
for f in "$tmp"/*.log "$tmp"/*.json "$tmp"/*.jsonl "$tmp/metrics.txt"; do
  for secret in "$user_secret" "$internal_token" "$wrong_token"; do
    if grep -qF "$secret" "$f"; then
      echo "LEAK: $(basename "$f") contains a secret: $(grep -nF "$secret" "$f" | head -3)" >&2
      leaks=$((leaks + 1))
    fi
  done
done
[ "$leaks" -eq 0 ] || fail "$leaks secret(s) found in logs or metrics"
echo "searched $(ls "$tmp"/*.log | wc -l) logs, the CLI's output and /metrics: no secret"
