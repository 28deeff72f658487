#!/usr/bin/env bash
# Lifecycle test of the local cluster (outside pytest, since it stops the cluster the tests
# use): up, up again (a no-op), down, check-clean, down again (idempotent), check-clean.
# With --restart it brings the cluster back up at the end. Exits non-zero on any failure.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
restart=0
[[ ${1:-} == --restart ]] && restart=1

step() { printf '\n=== %s\n' "$*"; }

step "up"
s=$SECONDS
"$here/up.sh"
echo "up: $((SECONDS - s)) s"

step "up again (must be a quick no-op)"
s=$SECONDS
"$here/up.sh" | tail -n 3
noop=$((SECONDS - s))
echo "second up: ${noop} s"
((noop < 15)) || { echo "FAIL: up on a running cluster took ${noop} s" >&2; exit 1; }

step "down"
"$here/down.sh"
step "check-clean after down"
"$here/check-clean.sh"

step "down again (idempotent)"
"$here/down.sh"
"$here/check-clean.sh"

if ((restart)); then
  step "up (restart)"
  s=$SECONDS
  "$here/up.sh"
  echo "up: $((SECONDS - s)) s"
fi
echo "lifecycle: OK"
