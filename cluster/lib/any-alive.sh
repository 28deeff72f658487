#!/usr/bin/env bash
# Exits 0 when any component of the cluster in $PADDOCK_CLUSTER_DIR is still running.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
. "$CLUSTER_DIR/lib/proc.sh"
for name in "${COMPONENTS[@]}"; do
  pid_of "$name" >/dev/null && exit 0
done
exit 1
