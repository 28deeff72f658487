#!/usr/bin/env bash
# Starts the local single-node Kubernetes cluster as plain processes (no systemd here):
# etcd -> kube-apiserver -> controller-manager -> scheduler -> containerd -> kubelet -> kube-proxy.
# Idempotent: a healthy running cluster is left alone; a stale or half-started one is torn
# down with down.sh first. Everything it creates is listed in down.sh, which removes it.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
. "$CLUSTER_DIR/lib/proc.sh"

[[ $(id -u) -eq 0 ]] || die "cluster/up.sh must run as root (it starts containerd and the kubelet, and sets up the pod network and iptables rules)"
cluster_lock

t0=$SECONDS
"$CLUSTER_DIR/install-deps.sh"
"$CLUSTER_DIR/build.sh"
export PATH="$BIN_DIR:$PATH"

print_usage() {
  cat <<EOF

Cluster is up (node $NODE_NAME Ready). To use it:
  export PATH="$BIN_DIR:\$PATH"
  export KUBECONFIG="$KUBECONFIG_FILE"
EOF
}

# --- already running? -------------------------------------------------------------------
if cluster_healthy; then
  log "cluster already running and healthy (nothing to do)"
  print_usage
  exit 0
fi
if [[ -e $RUN_DIR/owner && $(cat "$RUN_DIR/owner") != "$STATE_DIR" ]]; then
  other=$(cat "$RUN_DIR/owner")
  if PADDOCK_CLUSTER_DIR="$other" "$CLUSTER_DIR/lib/any-alive.sh"; then
    die "another paddock cluster (state in $other) is running; stop it with its cluster/down.sh first"
  fi
  log "cleaning up stale cluster state left by $other"
  PADDOCK_CLUSTER_DIR="$other" "$CLUSTER_DIR/down.sh"
fi
if [[ -d $STATE_DIR/run || -e $RUN_DIR || -d /sys/class/net/$CNI_BRIDGE ]]; then
  log "found a stale or half-started cluster: cleaning it up first"
  "$CLUSTER_DIR/down.sh"
fi

mkdir -p "$PID_DIR" "$LOG_DIR" "$PKI_DIR" "$RUN_DIR" "$STATE_DIR/config"
echo "$STATE_DIR" >"$RUN_DIR/owner"
chmod 700 "$STATE_DIR"
# The kubelet creates some host paths whatever its --root-dir (device-plugins socket dir, log
# symlinks): remember which existed before, so down.sh removes only the ones it made.
if [[ ! -f $SAVED_HOST_PATHS ]]; then
  for p in "${KUBELET_HOST_PATHS[@]}"; do
    if [[ -e $p ]]; then echo "$p"; fi
  done >"$SAVED_HOST_PATHS"
fi

# --- host network: sysctls, bridge, routes, iptables guards -----------------------------
. "$CLUSTER_DIR/lib/network.sh"
network_up

# --- PKI ---------------------------------------------------------------------------------
. "$CLUSTER_DIR/lib/pki.sh"
pki_generate

# kubeconfig NAME CERT_BASENAME: a kubeconfig for one component, certs embedded.
kubeconfig() {
  local file=$1 cert=$2
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: paddock
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 "$PKI_DIR/ca.crt")
users:
- name: $cert
  user:
    client-certificate-data: $(base64 -w0 "$PKI_DIR/$cert.crt")
    client-key-data: $(base64 -w0 "$PKI_DIR/$cert.key")
contexts:
- name: paddock
  context: {cluster: paddock, user: $cert}
current-context: paddock
EOF
  chmod 600 "$file"
}
CFG=$STATE_DIR/config
kubeconfig "$CFG/controller-manager.kubeconfig" controller-manager
kubeconfig "$CFG/scheduler.kubeconfig" scheduler
kubeconfig "$CFG/kubelet.kubeconfig" kubelet
kubeconfig "$CFG/kube-proxy.kubeconfig" kube-proxy
# The user's kubeconfig is written last, once the node is Ready: its presence means "usable".
kubeconfig "$CFG/admin.kubeconfig" admin
ADMIN=("$BIN_DIR/kubectl" --kubeconfig "$CFG/admin.kubeconfig")

# --- etcd (loopback only; fsync off: this is a throwaway dev/CI cluster) ----------------
start_proc etcd "$BIN_DIR/etcd" \
  --name paddock --data-dir "$STATE_DIR/etcd" \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster paddock=http://127.0.0.1:2380 --initial-cluster-state new \
  --listen-metrics-urls '' --unsafe-no-fsync --log-level warn
wait_for etcd 30 curl -fsS --max-time 2 http://127.0.0.1:2379/health

# --- kube-apiserver ----------------------------------------------------------------------
# Binds all addresses so pods reach it on the node IP (the kubernetes Service's endpoint);
# network.sh drops connections to it from any interface other than lo and the pod bridge.
start_proc kube-apiserver "$BIN_DIR/kube-apiserver" \
  --etcd-servers=http://127.0.0.1:2379 \
  --bind-address=0.0.0.0 --secure-port="$APISERVER_PORT" --advertise-address="$NODE_IP" \
  --tls-cert-file="$PKI_DIR/apiserver.crt" --tls-private-key-file="$PKI_DIR/apiserver.key" \
  --client-ca-file="$PKI_DIR/ca.crt" \
  --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
  --allow-privileged=true \
  --service-account-issuer="https://kubernetes.default.svc.$DNS_DOMAIN" \
  --service-account-key-file="$PKI_DIR/sa.pub" --service-account-signing-key-file="$PKI_DIR/sa.key" \
  --service-cluster-ip-range="$SERVICE_CIDR" \
  --kubelet-client-certificate="$PKI_DIR/apiserver-kubelet-client.crt" \
  --kubelet-client-key="$PKI_DIR/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority="$PKI_DIR/ca.crt" \
  --kubelet-preferred-address-types=InternalIP \
  --profiling=false --v=1
wait_for kube-apiserver 90 "${ADMIN[@]}" get --raw=/readyz

# --- controller-manager and scheduler ----------------------------------------------------
start_proc kube-controller-manager "$BIN_DIR/kube-controller-manager" \
  --kubeconfig="$CFG/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$CFG/controller-manager.kubeconfig" \
  --authorization-kubeconfig="$CFG/controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --leader-elect=false \
  --use-service-account-credentials=true \
  --service-account-private-key-file="$PKI_DIR/sa.key" --root-ca-file="$PKI_DIR/ca.crt" \
  --cluster-signing-cert-file="$PKI_DIR/ca.crt" --cluster-signing-key-file="$PKI_DIR/ca.key" \
  --allocate-node-cidrs=true --cluster-cidr="$CLUSTER_CIDR" --node-cidr-mask-size=24 \
  --configure-cloud-routes=false --service-cluster-ip-range="$SERVICE_CIDR" \
  --enable-hostpath-provisioner=true --profiling=false --v=1
start_proc pv-permissions bash "$CLUSTER_DIR/lib/pv-permissions.sh" /tmp/hostpath_pv
start_proc kube-scheduler "$BIN_DIR/kube-scheduler" \
  --kubeconfig="$CFG/scheduler.kubeconfig" \
  --authentication-kubeconfig="$CFG/scheduler.kubeconfig" \
  --authorization-kubeconfig="$CFG/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --leader-elect=false --profiling=false --v=1

# Default StorageClass backed by the controller-manager's hostpath provisioner (dirs under
# /tmp/hostpath_pv), so PVCs bind on this single node.
"${ADMIN[@]}" apply -f - >/dev/null <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kubernetes.io/host-path
reclaimPolicy: Delete
volumeBindingMode: Immediate
EOF

# --- containerd --------------------------------------------------------------------------
mkdir -p "$STATE_DIR/containerd" "$RUN_DIR/containerd" "$STATE_DIR/cni/net.d"
cat >"$STATE_DIR/containerd/config.toml" <<EOF
# Generated by cluster/up.sh.
version = 2
root = "$STATE_DIR/containerd/root"
state = "$RUN_DIR/containerd/state"
# The VM lacks CAP_SYS_RESOURCE: never try to lower OOM scores.
oom_score = 0

[grpc]
  address = "$CONTAINERD_SOCK"

[plugins."io.containerd.internal.v1.opt"]
  path = "$STATE_DIR/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE_DIR/cni/net.d"
    max_conf_num = 1
EOF
# Pods get addresses from POD_CIDR on our bridge, and routes only to the cluster and service
# CIDRs: no default route, no masquerade, so nothing a pod sends can leave the VM.
cat >"$STATE_DIR/cni/net.d/10-paddock.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "paddock",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$CNI_BRIDGE",
      "isGateway": true,
      "isDefaultGateway": false,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$RUN_DIR/cni/networks",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "$CLUSTER_CIDR"}, {"dst": "$SERVICE_CIDR"}]
      }
    }
  ]
}
EOF
start_proc containerd containerd --config "$STATE_DIR/containerd/config.toml" --log-level warn
wait_for containerd 30 ctr --address "$CONTAINERD_SOCK" version

# Images (pause, sandbox, paddock) are built offline and imported by images/build.sh.
# `all` rebuilds only images whose inputs changed, then imports into our running containerd.
if [[ -x $REPO_ROOT/images/build.sh ]]; then
  log "building/importing images (images/build.sh all)"
  CONTAINERD_ADDRESS="$CONTAINERD_SOCK" "$REPO_ROOT/images/build.sh" all
else
  log "WARNING: images/build.sh not found: pods need $PAUSE_IMAGE imported into containerd"
fi

# --- kubelet -----------------------------------------------------------------------------
mkdir -p "$STATE_DIR/kubelet" "$STATE_DIR/pod-logs"
# No cluster DNS here: pods get a resolver that answers nothing rather than the host's (which
# would send queries off the VM).
printf 'nameserver 127.0.0.1\noptions ndots:1 timeout:1 attempts:1\n' >"$CFG/pod-resolv.conf"
cat >"$CFG/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
cgroupDriver: cgroupfs
failCgroupV1: false
# Bounds fork bombs in sandboxes: Kubernetes has no per-pod field for it, so it is a node setting.
podPidsLimit: 4096
# No CAP_SYS_RESOURCE in this VM: the kubelet must not lower its own OOM score.
oomScoreAdj: 0
tlsCertFile: $PKI_DIR/kubelet-serving.crt
tlsPrivateKeyFile: $PKI_DIR/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI_DIR/ca.crt}
authorization: {mode: Webhook}
clusterDomain: $DNS_DOMAIN
resolvConf: $CFG/pod-resolv.conf
podLogsDir: $STATE_DIR/pod-logs
hairpinMode: hairpin-veth
failSwapOn: false
# A dev VM's disk is shared with everything else: only evict when it is really full.
evictionHard:
  memory.available: 100Mi
  nodefs.available: 2%
  imagefs.available: 2%
  nodefs.inodesFree: 2%
imageGCHighThresholdPercent: 98
imageGCLowThresholdPercent: 95
serializeImagePulls: false
EOF
start_proc kubelet "$BIN_DIR/kubelet" \
  --config="$CFG/kubelet.yaml" --kubeconfig="$CFG/kubelet.kubeconfig" \
  --root-dir="$STATE_DIR/kubelet" --cert-dir="$STATE_DIR/kubelet/pki" \
  --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --v=1

# --- kube-proxy --------------------------------------------------------------------------
cat >"$CFG/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $CFG/kube-proxy.kubeconfig
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $CLUSTER_CIDR
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["$NODE_IP/32"]
oomScoreAdj: 0
iptables:
  masqueradeAll: false
  localhostNodePorts: false
  syncPeriod: 30s
  minSyncPeriod: 0s
# Leave the host's conntrack sysctls alone (down.sh would otherwise have to restore them).
conntrack:
  maxPerCore: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
start_kube_proxy() { start_proc kube-proxy "$BIN_DIR/kube-proxy" --config="$CFG/kube-proxy.yaml" --v=1; }
start_kube_proxy

# --- wait for Ready ----------------------------------------------------------------------
node_ready() {
  [[ $("${ADMIN[@]}" get node "$NODE_NAME" \
    -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}
wait_for "node $NODE_NAME Ready" 120 node_ready
wait_for "kube-proxy rules" 60 kube_proxy_synced

# --- NetworkPolicy enforcement (needs the Node object: started once the node is Ready) --
# kube-router in firewall-only mode enforces NetworkPolicy with iptables + ipsets; it routes
# and proxies nothing (the bridge CNI and kube-proxy do that).
if [[ -x $BIN_DIR/kube-router ]]; then
  node_cidr() { [[ -n $("${ADMIN[@]}" get node "$NODE_NAME" -o 'jsonpath={.spec.podCIDR}' 2>/dev/null) ]]; }
  wait_for "node pod CIDR" 30 node_cidr
  kubeconfig "$CFG/kube-router.kubeconfig" admin
  start_proc kube-router "$BIN_DIR/kube-router" \
    --kubeconfig="$CFG/kube-router.kubeconfig" --hostname-override="$NODE_NAME" \
    --run-firewall=true --run-router=false --run-service-proxy=false --run-loadbalancer=false \
    --enable-cni=false --enable-ipv4=true --enable-ipv6=false \
    --service-cluster-ip-range="$SERVICE_CIDR" --health-port=0 --metrics-port=0 --v=1
  kube_router_synced() { grep -q "sync iptables took" "$LOG_DIR/kube-router.log"; }
  wait_for "kube-router policy sync" 60 kube_router_synced
  # kube-router rewrites the whole filter table from a snapshot; should a kube-proxy change
  # have landed in between, kube-proxy is restarted to lay its rules down again.
  if ! kube_proxy_synced; then
    log "kube-proxy rules were lost to kube-router's first sync: restarting kube-proxy"
    stop_component kube-proxy
    start_kube_proxy
    wait_for "kube-proxy rules" 60 kube_proxy_synced
  fi
fi

# Pods can only be created once the namespace's default ServiceAccount exists.
wait_for "default ServiceAccount" 60 "${ADMIN[@]}" get serviceaccount default -n default
# Our guards stay the first rules of their mangle chains, whatever started since.
network_guard_first

cp "$CFG/admin.kubeconfig" "$KUBECONFIG_FILE"
chmod 600 "$KUBECONFIG_FILE"
log "cluster up in $((SECONDS - t0)) s"
print_usage
