# Shared settings for the cluster scripts (sourced, not executed).
# shellcheck shell=bash disable=SC2034 # variables used by the scripts that source this
CLUSTER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_ROOT="$(cd "$CLUSTER_DIR/.." && pwd)"
# shellcheck source=../versions.env
. "$CLUSTER_DIR/versions.env"

PADDOCK_CACHE="${PADDOCK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/paddock}"
BIN_DIR="$PADDOCK_CACHE/k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_helm-${HELM_VERSION}/bin"

# Everything a running cluster owns lives under STATE_DIR (git-ignored) or RUN_DIR.
STATE_DIR="${PADDOCK_CLUSTER_DIR:-$REPO_ROOT/.cluster}"
PID_DIR="$STATE_DIR/run"
LOG_DIR="$STATE_DIR/logs"
PKI_DIR="$STATE_DIR/pki"
KUBECONFIG_FILE="$STATE_DIR/kubeconfig"
RUN_DIR=/run/paddock
SAVED_HOST_PATHS="$STATE_DIR/saved-host-paths"
# Host paths the kubelet uses regardless of --root-dir.
KUBELET_HOST_PATHS=(/var/lib/kubelet /var/log/containers /var/log/pods)
CONTAINERD_SOCK="$RUN_DIR/containerd/containerd.sock"

# Networks. Pods get a /24 of the cluster CIDR; services live in 10.96/16.
CLUSTER_CIDR=10.244.0.0/16
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/16
SERVICE_IP=10.96.0.1
DNS_DOMAIN=cluster.local
CNI_BRIDGE=cni0
# The node's address is the pod bridge's gateway address (created by up.sh before anything
# starts), so neither pods nor the API server's Service endpoint involve the VM's own NIC.
NODE_IP=10.244.0.1
NODE_NAME="${PADDOCK_NODE_NAME:-paddock}"
APISERVER_PORT=6443
# Built and imported by images/build.sh; the sandbox image of every pod.
PAUSE_IMAGE=localhost/paddock/pause:3.10
# Components in start order; down.sh stops them in reverse.
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy kube-router)

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# cluster_lock: serialises up.sh/down.sh (e.g. a test fixture starting the cluster while a
# developer stops it). One lock per host: there is one set of ports, one /run/paddock.
cluster_lock() {
  [[ ${PADDOCK_CLUSTER_LOCK_HELD:-} == 1 ]] && return 0
  local lock=/run/lock/paddock-cluster.lock
  [[ -d /run/lock ]] || lock=/run/paddock-cluster.lock
  exec {CLUSTER_LOCK_FD}>"$lock"
  if ! flock -n "$CLUSTER_LOCK_FD"; then
    log "waiting for another cluster/up.sh or cluster/down.sh to finish"
    flock -w 3600 "$CLUSTER_LOCK_FD" || die "could not lock $lock within an hour"
  fi
  # Scripts we run while holding it (up.sh -> down.sh) must not wait for themselves.
  export PADDOCK_CLUSTER_LOCK_HELD=1
}
