#!/usr/bin/env bash
# TLS with the real binaries and their flags: certificates made by openssl;
# entitysync-server with mutual TLS on both ports and the internal token;
# the CLI subscribing, notifying and asking for stats over TLS with a client
# certificate; the standalone gateway reaching the TLS public port with one;
# plaintext and certificate-less clients refused; bad TLS flags
# exit 2 with the file named.
set -euo pipefail

runfiles="${TEST_SRCDIR:-$PWD/..}/entitysync"
server="$runfiles/server/entitysync-server"
cli="$runfiles/client/entitysync"
gateway="$runfiles/adapters/gateway/entitysync-gateway"
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
pids=()
cleanup() { for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$tmp"/*.log; do echo "== $f" >&2; cat "$f" >&2; done; exit 1; }
wait_for() {  # wait_for SECONDS COMMAND...
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do [ "$SECONDS" -lt "$deadline" ] || return 1; sleep 0.1; done
}

cd "$tmp"
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1"
openssl req -x509 $ec -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=ca 2>> openssl.log
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > server.ext
printf 'extendedKeyUsage=clientAuth\n' > client.ext
for name in server client; do
  openssl req $ec -nodes -keyout $name.key -out $name.csr -subj /CN=$name 2>> openssl.log
  openssl x509 -req -in $name.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
    -out $name.pem -days 2 -extfile $name.ext 2>> openssl.log
done
printf 'tok-%s\n' "$RANDOM$RANDOM" > token

# Open mode (no resolver): Notify's inline rows are pushed as they are.
"$server" --public_address=127.0.0.1:0 --internal_address=127.0.0.1:0 --metrics_address= \
  --tls_cert_file=server.pem --tls_key_file=server.key --tls_client_ca_file=ca.pem \
  --internal_tls_cert_file=server.pem --internal_tls_key_file=server.key \
  --internal_tls_client_ca_file=ca.pem --internal_token_file=token \
  --gateway_address=127.0.0.1:0 2> server.log &
pids+=($!)
wait_for 10 grep -q "entitysync serving" server.log || fail "server did not start"
public=$(sed -n 's/.*public (Subscribe) on port \([0-9]*\).*/\1/p' server.log)
internal=$(sed -n 's/.*internal (Notify, health) on port \([0-9]*\).*/\1/p' server.log)
hosted=$(sed -n 's/.*gateway (WebSocket, grpc-web) on port \([0-9]*\).*/\1/p' server.log)
mtls=(--tls_ca_file=ca.pem --tls_cert_file=client.pem --tls_key_file=client.key)

"$cli" --target="127.0.0.1:$public" "${mtls[@]}" subscribe --count=1 --timeout=20 \
  notes/1 > updates.jsonl 2> cli-subscribe.log &
cli_pid=$!
pids+=($cli_pid)
wait_for 10 grep -q "subscribed" cli-subscribe.log || fail "no subscription over mutual TLS"

# Notify over TLS: refused without a client certificate, and in plaintext.
if ENTITYSYNC_INTERNAL_TOKEN="$(cat token)" "$cli" --target="127.0.0.1:$internal" \
    --tls_ca_file=ca.pem notify notes/1 --row='{"n":1}' > notify-nocert.log 2>&1; then
  fail "Notify without a client certificate was accepted"
fi
if ENTITYSYNC_INTERNAL_TOKEN="$(cat token)" "$cli" --target="127.0.0.1:$internal" \
    notify notes/1 --row='{"n":1}' > notify-plain.log 2>&1; then
  fail "plaintext Notify to a TLS port was accepted"
fi
ENTITYSYNC_INTERNAL_TOKEN="$(cat token)" "$cli" --target="127.0.0.1:$internal" "${mtls[@]}" \
  notify notes/1 --row='{"n":2}' > notify.log 2>&1 || fail "Notify over mutual TLS"
wait "$cli_pid" || fail "the subscriber over TLS got no update"
grep -qF '\"n\":2' updates.jsonl || fail "wrong update: $(cat updates.jsonl)"
ENTITYSYNC_INTERNAL_TOKEN="$(cat token)" "$cli" --target="127.0.0.1:$internal" "${mtls[@]}" \
  stats > stats.json 2> stats.log || fail "stats over mutual TLS"
grep -q '"streams"' stats.json || fail "stats: $(cat stats.json)"
# The standalone gateway reaches the mutual-TLS public port; a long poll
# through it times out normally (200), which needs the upstream call to work.
"$gateway" --address=127.0.0.1:0 --upstream="127.0.0.1:$public" \
  --upstream_tls_ca_file=ca.pem --upstream_tls_cert_file=client.pem \
  --upstream_tls_key_file=client.key 2> gateway.log &
gateway_pid=$!
pids+=($gateway_pid)
wait_for 10 grep -q "listening on port" gateway.log || fail "gateway did not start"
gw_port=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' gateway.log)
code=$(curl -s -o await.json -w '%{http_code}' --max-time 10 \
  "http://127.0.0.1:$gw_port/v1/await?entity=notes&id=1&after_version=99999999999999999&timeout_ms=300")
[ "$code" = 200 ] || fail "await through the TLS gateway: HTTP $code $(cat await.json)"
kill -TERM "$gateway_pid"
wait "$gateway_pid" || fail "the gateway did not stop cleanly on SIGTERM"

# The gateway the replica hosts speaks TLS with the public port's files,
# mutual TLS included: https with the client certificate, nothing without
# it or in the clear.
await="entity=notes&id=1&after_version=99999999999999999&timeout_ms=300"
code=$(curl -s -o hosted.json -w '%{http_code}' --max-time 10 --cacert ca.pem \
  --cert client.pem --key client.key "https://127.0.0.1:$hosted/v1/await?$await")
[ "$code" = 200 ] || fail "await over https from the hosted gateway: HTTP $code"
if curl -s -o /dev/null --max-time 5 --cacert ca.pem \
    "https://127.0.0.1:$hosted/v1/await?$await"; then
  fail "the hosted gateway served https without a client certificate"
fi
if curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$hosted/v1/await?$await"; then
  fail "the hosted gateway served a TLS port in the clear"
fi

# The standalone gateway with --tls_cert_file: https for browsers.
"$gateway" --address=127.0.0.1:0 --upstream="127.0.0.1:$public" \
  --upstream_tls_ca_file=ca.pem --upstream_tls_cert_file=client.pem \
  --upstream_tls_key_file=client.key --tls_cert_file=server.pem \
  --tls_key_file=server.key 2> gateway-tls.log &
gateway_pid=$!
pids+=($gateway_pid)
wait_for 10 grep -q "listening on port" gateway-tls.log || fail "TLS gateway did not start"
gw_port=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' gateway-tls.log)
code=$(curl -s -o await-tls.json -w '%{http_code}' --max-time 10 --cacert ca.pem \
  "https://127.0.0.1:$gw_port/v1/await?$await")
[ "$code" = 200 ] || fail "await over https from the standalone gateway: HTTP $code"
kill -TERM "$gateway_pid"
wait "$gateway_pid" || fail "the TLS gateway did not stop cleanly on SIGTERM"
"$gateway" --address=127.0.0.1:0 --tls_cert_file=/nonexistent.pem \
  --tls_key_file=server.key 2> bad-gateway.log && fail "gateway started with a missing certificate"
grep -q "/nonexistent.pem" bad-gateway.log || fail "gateway error names no file: $(cat bad-gateway.log)"

# A plaintext subscriber gets nothing.
if "$cli" --target="127.0.0.1:$public" subscribe --count=1 --timeout=3 notes/1 \
    > plain.jsonl 2> plain.log; then
  fail "a plaintext subscriber was served"
fi

# Bad TLS flags: exit 2, the file named.
set +e
"$server" --public_address=127.0.0.1:0 --internal_address=127.0.0.1:0 --metrics_address= \
  --tls_cert_file=server.pem 2> bad1.log
rc1=$?
"$server" --public_address=127.0.0.1:0 --internal_address=127.0.0.1:0 --metrics_address= \
  --tls_cert_file=/nonexistent.pem --tls_key_file=server.key 2> bad2.log
rc2=$?
"$cli" --tls_ca_file=/nonexistent-ca.pem stats > bad3.log 2>&1
rc3=$?
set -e
[ "$rc1" -eq 2 ] && grep -q "needs its key" bad1.log || fail "cert without key: rc=$rc1"
[ "$rc2" -eq 2 ] && grep -q "cannot read /nonexistent.pem" bad2.log || fail "missing cert: rc=$rc2"
[ "$rc3" -eq 2 ] && grep -q "cannot read /nonexistent-ca.pem" bad3.log || fail "CLI missing CA: rc=$rc3"
echo "mutual TLS on both ports, the CLI over TLS, and bad TLS flags: ok"
