#!/usr/bin/env bash
# The Kubernetes manifests of deploy/k8s, checked against the Kubernetes API
# schemas and against the binaries they run: renders every overlay with
# `kubectl kustomize`, then tests/deploy/manifests_check.mjs validates every
# object (kubernetes-models' JSON schemas, kubernetes-types' API types with
# the TypeScript compiler), checks the wiring (ports, probes, config names,
# Services, NetworkPolicy, drain timings, Dockerfile), and starts the real
# binaries with the manifests' flags adapted to loopback (a browser's
# WebSocket through the Service entitysync-gateway included). Hermetic: free
# ports, files in TEST_TMPDIR.
set -euo pipefail

runfiles="${TEST_SRCDIR:-$PWD/..}/entitysync"
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
fail() { echo "FAIL: $*" >&2; exit 1; }

command -v kubectl >/dev/null || fail "kubectl not found (Debian: apt-get install kubernetes-client)"
command -v node >/dev/null || fail "node not found (scripts/setup installs it)"
# The checker runs from the source tree, where the npm packages are.
checker=$(readlink -f "$runfiles/tests/deploy/manifests_check.mjs")
repo=$(cd "$(dirname "$checker")/../.." && pwd)
for pkg in kubernetes-models kubernetes-types yaml typescript ws; do
  [ -d "$repo/node_modules/$pkg" ] || fail "npm package $pkg missing in $repo/node_modules (run scripts/setup)"
done

# kustomize wants real files under its root: a dereferenced copy.
rm -rf "$tmp/deploy"
cp -RL "$runfiles/deploy" "$tmp/deploy"
echo "kubectl: $(kubectl version --client 2>/dev/null | head -2 | tr '\n' ' ')"
overlays=()
for dir in "$tmp"/deploy/k8s/overlays/*/; do
  name=$(basename "$dir")
  kubectl kustomize "$dir" > "$tmp/$name.yaml" 2> "$tmp/$name.kustomize.log" \
    || { cat "$tmp/$name.kustomize.log" >&2; fail "kubectl kustomize overlays/$name"; }
  overlays+=("$name=$tmp/$name.yaml")
done
[ "${#overlays[@]}" -ge 3 ] || fail "expected the dev, prod and prod-standalone-gateway overlays, found ${overlays[*]}"

node "$checker" --bin="$runfiles" --tmp="$tmp/run" \
  --dockerfile="$tmp/deploy/Dockerfile" "${overlays[@]}"
