#!/usr/bin/env bash
# Stops the local cluster started by up.sh and removes everything it made: processes (by PID
# file; container shims and container processes of our containerd only), mounts, network
# namespaces, the pod bridge, iptables chains, kubelet cgroups, /run/containerd, /run/paddock;
# restores the sysctls up.sh changed. Idempotent; logs in .cluster/logs are kept.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
. "$CLUSTER_DIR/lib/proc.sh"
. "$CLUSTER_DIR/lib/network.sh"

[[ $(id -u) -eq 0 ]] || die "cluster/down.sh must run as root"
cluster_lock

t0=$SECONDS

# pids_with_arg TEXT: processes whose command line contains TEXT (e.g. our containerd socket).
pids_with_arg() {
  local p
  for p in /proc/[0-9]*; do
    tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qF -- "$1" && echo "${p#/proc/}"
  done
  return 0
}

# Kubelet-created cgroups (cgroup v1: one tree per controller; v2: one tree).
kubepods_cgroups() {
  find /sys/fs/cgroup -maxdepth 2 -name kubepods -type d 2>/dev/null || true
}

# 1. Control loops first, so nothing restarts what we stop next.
for name in kube-router kube-proxy kubelet kube-scheduler pv-permissions kube-controller-manager; do
  if pid=$(pid_of "$name"); then
    log "stopping $name ($pid)"
    stop_component "$name"
  fi
done

# 2. Containers: kill every task of our containerd, then containerd itself, then any shim
#    left (shims name our containerd's socket on their command line).
if pid=$(pid_of containerd); then
  if ctr --address "$CONTAINERD_SOCK" version >/dev/null 2>&1; then
    mapfile -t tasks < <(ctr --address "$CONTAINERD_SOCK" -n k8s.io tasks ls -q 2>/dev/null || true)
    if ((${#tasks[@]} > 0)); then
      log "killing ${#tasks[@]} container tasks"
      for t in "${tasks[@]}"; do
        ctr --address "$CONTAINERD_SOCK" -n k8s.io tasks kill -a -s SIGKILL "$t" >/dev/null 2>&1 || true
      done
      for t in "${tasks[@]}"; do
        timeout 10 ctr --address "$CONTAINERD_SOCK" -n k8s.io tasks rm -f "$t" >/dev/null 2>&1 || true
      done
    fi
  fi
  log "stopping containerd ($pid)"
  stop_component containerd
fi
for pid in $(pids_with_arg "$CONTAINERD_SOCK"); do
  log "stopping leftover containerd shim ($pid)"
  kill -KILL "$pid" 2>/dev/null || true
done
# Anything still inside the kubelet's cgroups is a container process of this cluster.
for cg in $(kubepods_cgroups); do
  while read -r pid; do
    if [[ -n $pid ]]; then kill -KILL "$pid" 2>/dev/null || true; fi
  done < <(find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null)
done

# 3. Control plane and etcd.
for name in kube-apiserver etcd; do
  if pid=$(pid_of "$name"); then
    log "stopping $name ($pid)"
    stop_component "$name"
  fi
done

log "unmounting"
# 4. Mounts under our dirs (deepest first): container rootfs, pod volumes, netns bind mounts.
umount_under() {
  local prefix=$1 m
  findmnt -rn -o TARGET | awk -v p="$prefix" 'index($0, p) == 1' | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "  could not unmount $m"
  done || true
}
for dir in "$STATE_DIR" "$RUN_DIR" /run/containerd; do
  [[ -e $dir ]] && umount_under "$dir/"
done

log "removing network setup"
# 5. Network: pod veths go with their netns (unmounted above); bridge, routes, iptables.
network_down

log "removing cgroups and files"
# 6. Cgroups the kubelet created, deepest first (empty now that their processes are gone).
for cg in $(kubepods_cgroups); do
  for _ in 1 2 3 4 5; do
    find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
    [[ -d $cg ]] || break
    sleep 0.2
  done
  [[ -d $cg ]] && log "  could not remove cgroup $cg"
done

# 7. Files: runtime dirs, the cluster's state (logs are kept for post-mortems), hostpath PVs,
#    and the kubelet's log symlinks that point into our state dir.
# Never delete through a mount that survived: it could be a bind mount of host files.
safe_rm() {
  local d
  for d in "$@"; do
    [[ -e $d ]] || continue
    if findmnt -rn -o TARGET | awk -v p="$d/" 'index($0 "/", p) == 1' | grep -q .; then
      log "  keeping $d: something is still mounted under it"
      continue
    fi
    rm -rf --one-file-system "$d"
  done
}
safe_rm "$RUN_DIR" /tmp/hostpath_pv
if [[ -n $(foreign_containerd) ]]; then
  log "  keeping /run/containerd: another containerd ($(foreign_containerd | head -n 3 | paste -sd,)) uses it"
else
  safe_rm /run/containerd
fi
if [[ -d /var/log/containers ]]; then
  find /var/log/containers -maxdepth 1 -type l -lname "$STATE_DIR/*" -delete 2>/dev/null || true
fi
if [[ -f $SAVED_HOST_PATHS ]]; then
  for p in "${KUBELET_HOST_PATHS[@]}"; do
    grep -qxF "$p" "$SAVED_HOST_PATHS" || safe_rm "$p"
  done
fi
if [[ -d $STATE_DIR ]]; then
  mapfile -t entries < <(find "$STATE_DIR" -mindepth 1 -maxdepth 1 ! -name logs)
  safe_rm "${entries[@]}"
fi
log "cluster down ($((SECONDS - t0)) s)"
