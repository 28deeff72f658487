#!/usr/bin/env bash
# Opens each new hostpath PV directory to every UID (mode 1777), as kind's local-path-provisioner
# does. The controller-manager's hostpath provisioner makes them 0750 root, and fsGroup cannot
# fix hostPath volumes, so without this non-root sandboxes could not write their workspace.
# Dev-cluster only; real clusters have CSI drivers that honour fsGroup.
set -euo pipefail
root="${1:-/tmp/hostpath_pv}"
while :; do
  if [ -d "$root" ]; then
    find "$root" -mindepth 1 -maxdepth 1 -type d ! -perm -1777 -exec chmod 1777 {} + 2>/dev/null || true
  fi
  sleep 0.3
done
