#!/usr/bin/env bash
# Verifies that no trace of the local cluster is left on the host after down.sh: processes,
# mounts, network namespaces, the pod bridge, routes, iptables rules/chains, ipsets, kubelet
# cgroups, runtime dirs. Prints what is left and exits 1 if anything is.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
. "$CLUSTER_DIR/lib/network.sh"
. "$CLUSTER_DIR/lib/proc.sh"

left=0
report() {
  printf 'LEFT: %s\n' "$*"
  left=1
}

# Processes: cluster components (our binaries, containerd and its shims) started for this
# cluster. Clients (kubectl, helm) someone still runs against it are not the cluster's.
for p in /proc/[0-9]*; do
  pid=${p#/proc/}
  [[ $pid == "$$" ]] && continue
  exe=$(readlink "$p/exe" 2>/dev/null) || continue
  case "${exe##*/}" in
  kubectl | helm) continue ;;
  esac
  cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
  if [[ $exe == "$BIN_DIR"/* ]] || grep -qF -- "$STATE_DIR/" <<<"$cmd" || grep -qF -- "$RUN_DIR/" <<<"$cmd"; then
    report "process $pid: $cmd"
  fi
done

# Mounts under our dirs.
while read -r m; do
  case "$m" in
  "$STATE_DIR"/* | "$RUN_DIR"/* | /run/containerd/* | /run/netns/cni-* | /var/run/netns/cni-* | /tmp/hostpath_pv/*)
    report "mount $m"
    ;;
  esac
done < <(findmnt -rn -o TARGET)

# Network namespaces, links, routes.
for d in /run/netns /var/run/netns; do
  [[ -d $d ]] && find "$d" -maxdepth 1 -name 'cni-*' | while read -r n; do report "netns $n"; done
done
if [[ -d /sys/class/net/$CNI_BRIDGE ]]; then report "bridge $CNI_BRIDGE"; fi
while read -r l; do report "link $l"; done < <(ip -o link show type veth 2>/dev/null | awk -F': ' '{sub(/@.*/, "", $2); print $2}' | grep -E '^veth[0-9a-f]{8}$' || true)
while read -r r; do report "route $r"; done < <(ip route show | grep -E "^(${CLUSTER_CIDR%.*.*}\.|${SERVICE_CIDR%.*.*}\.)" || true)

# iptables rules/chains and ipsets.
while read -r r; do report "iptables $r"; done < <(network_rules_left)
if command -v ipset >/dev/null; then
  while read -r s; do report "ipset $s"; done < <(ipset list -n 2>/dev/null | grep -E '^(KUBE-|kube-router)' || true)
fi

# Cgroups and runtime dirs.
while read -r cg; do report "cgroup $cg"; done < <(find /sys/fs/cgroup -maxdepth 2 -name kubepods -type d 2>/dev/null)
if [[ -S /var/lib/kubelet/device-plugins/kubelet.sock ]]; then report "socket /var/lib/kubelet/device-plugins/kubelet.sock"; fi
for d in "$RUN_DIR" /tmp/hostpath_pv "$PID_DIR"; do
  if [[ -e $d ]]; then report "path $d"; fi
done
if [[ -e /run/containerd ]]; then
  if [[ -n $(foreign_containerd) ]]; then
    echo "note: /run/containerd kept, another containerd uses it: $(foreign_containerd | paste -sd,)"
  else
    report "path /run/containerd"
  fi
fi

if ((left)); then
  echo "check-clean: cluster leftovers found" >&2
  exit 1
fi
echo "check-clean: nothing of the cluster is left"
