# Host networking for the cluster: the pod bridge, sysctls and the iptables guards that keep
# pod and service traffic on this VM (sourced by up.sh, down.sh and check-clean.sh).
# shellcheck shell=bash

SAVED_SYSCTLS="$STATE_DIR/saved-sysctls"
SAVED_NFT_TABLES="$STATE_DIR/saved-nft-tables"
# sysctls we change: forwarding (pod <-> service traffic is routed through the host) and
# bridge netfilter (replies between pods on one bridge must be un-DNATed by iptables).
SYSCTLS=(net/ipv4/ip_forward net/bridge/bridge-nf-call-iptables)
# Chain prefixes that belong to the cluster: ours, kube-proxy's/kubelet's/kube-router's, CNI's.
CHAIN_RE='^(PADDOCK-|KUBE-|CNI-)'

# Our guards live in the mangle table: its hooks run before the filter table's, so no ACCEPT
# of kube-proxy (KUBE-FORWARD) or kube-router (policy-compliant traffic) can come before them.
_ipt() { iptables -w 5 -t mangle "$@"; }

network_up() {
  local s
  # Remember the host's values only once, so an up after a failed up keeps the originals.
  if [[ ! -f $SAVED_SYSCTLS ]]; then
    for s in "${SYSCTLS[@]}"; do
      [[ -e /proc/sys/$s ]] && echo "$s $(cat "/proc/sys/$s")"
    done >"$SAVED_SYSCTLS.tmp"
    mv "$SAVED_SYSCTLS.tmp" "$SAVED_SYSCTLS"
  fi
  if [[ ! -f $SAVED_NFT_TABLES ]] && command -v nft >/dev/null; then
    nft list tables >"$SAVED_NFT_TABLES"
  fi
  echo 1 >/proc/sys/net/ipv4/ip_forward
  [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]] && echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables

  # The pod bridge exists before the kubelet so the node IP (its gateway address) is local;
  # the CNI bridge plugin adopts it.
  if [[ ! -d /sys/class/net/$CNI_BRIDGE ]]; then
    ip link add "$CNI_BRIDGE" type bridge
  fi
  # Pin the bridge's MAC: otherwise Linux gives it the lowest MAC of its ports, which changes
  # as pods come and go, and pods holding the old gateway MAC lose the node and services.
  ip link set "$CNI_BRIDGE" address "$(cat "/sys/class/net/$CNI_BRIDGE/address")"
  ip addr replace "$NODE_IP/${POD_CIDR#*/}" dev "$CNI_BRIDGE"
  ip link set "$CNI_BRIDGE" up
  # Host-originated traffic to an unassigned service IP stays on the bridge instead of
  # following the default route off the VM.
  ip route replace "$SERVICE_CIDR" dev "$CNI_BRIDGE" src "$NODE_IP"

  _guard_chain PADDOCK-FORWARD FORWARD \
    "-s $CLUSTER_CIDR ! -o $CNI_BRIDGE -j DROP" \
    "-d $CLUSTER_CIDR ! -i $CNI_BRIDGE -j DROP" \
    "-s $SERVICE_CIDR -j DROP" \
    "-d $SERVICE_CIDR -j DROP"
  _guard_chain PADDOCK-OUTPUT OUTPUT \
    "-o lo -j RETURN" \
    "-o $CNI_BRIDGE -j RETURN" \
    "-d $CLUSTER_CIDR -j DROP" \
    "-d $SERVICE_CIDR -j DROP"
  # The API server listens on all addresses (pods reach it on the node IP); the kubelet on
  # the node IP. Nobody outside the VM gets to either.
  _guard_chain PADDOCK-INPUT INPUT \
    "-i lo -j RETURN" \
    "-i $CNI_BRIDGE -j RETURN" \
    "-p tcp -m multiport --dports $APISERVER_PORT,10250 -j DROP"
}

# _guard_chain CHAIN HOOK RULE...: (re)creates CHAIN with RULEs, jumped to first from HOOK.
_guard_chain() {
  local chain=$1 hook=$2 rule
  shift 2
  _ipt -N "$chain" 2>/dev/null || _ipt -F "$chain"
  for rule in "$@"; do
    # shellcheck disable=SC2086 # a rule is a list of words
    _ipt -A "$chain" $rule -m comment --comment "paddock: keep cluster traffic on this VM"
  done
  while _ipt -D "$hook" -j "$chain" 2>/dev/null; do :; done
  _ipt -I "$hook" 1 -j "$chain"
}

# network_guard_first: move our jumps back in front of anything inserted since network_up.
network_guard_first() {
  local pair
  # mangle hooks run before filter's, so only other mangle rules could come first.
  for pair in FORWARD:PADDOCK-FORWARD OUTPUT:PADDOCK-OUTPUT INPUT:PADDOCK-INPUT; do
    while _ipt -D "${pair%%:*}" -j "${pair#*:}" 2>/dev/null; do :; done
    _ipt -I "${pair%%:*}" 1 -j "${pair#*:}"
  done
}

# network_rules_left: prints any iptables rule or chain of the cluster still present.
network_rules_left() {
  local ipt t
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    for t in filter nat mangle raw; do
      "$ipt" -w 5 -t "$t" -S 2>/dev/null | grep -E -- "^-N (PADDOCK-|KUBE-|CNI-)|-j (PADDOCK-|KUBE-|CNI-)|paddock" |
        sed "s/^/$ipt -t $t: /" || true
    done
  done
}

network_down() {
  local ipt t s val
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    for t in filter nat mangle raw; do
      # One iptables-restore per table (kube-proxy and kube-router make hundreds of rules;
      # one iptables call each would take seconds): drop the jumps into cluster chains from
      # other chains, then flush and delete the cluster chains.
      local rules script
      rules=$("$ipt" -w 5 -t "$t" -S 2>/dev/null) || continue
      script=$(
        echo "*$t"
        grep -E -- '^-A ' <<<"$rules" | grep -E -- '-[jg] (PADDOCK-|KUBE-|CNI-)' |
          grep -vE -- '^-A (PADDOCK-|KUBE-|CNI-)' | sed 's/^-A /-D /' || true
        awk '$1 == "-N" {print $2}' <<<"$rules" | grep -E "$CHAIN_RE" | sed 's/^/-F /' || true
        awk '$1 == "-N" {print $2}' <<<"$rules" | grep -E "$CHAIN_RE" | sed 's/^/-X /' || true
        echo COMMIT
      )
      [[ $(wc -l <<<"$script") -gt 2 ]] || continue
      "$ipt-restore" -w 5 --noflush <<<"$script" || log "  $ipt-restore failed for table $t"
    done
  done
  # kube-router's ipsets (kube-proxy's iptables mode makes none).
  if command -v ipset >/dev/null; then
    ipset list -n 2>/dev/null | grep -E '^(KUBE-|kube-router)' | while read -r s; do
      ipset destroy "$s" 2>/dev/null || true
    done || true
  fi
  # nft tables that only exist because iptables-nft created them for us, now empty.
  if [[ -f $SAVED_NFT_TABLES ]] && command -v nft >/dev/null; then
    nft list tables | while read -r _ fam name; do
      grep -qx "table $fam $name" "$SAVED_NFT_TABLES" && continue
      # Only table/chain headers and closing braces left: nothing of anyone's in it.
      if ! nft list table "$fam" "$name" | grep -qvE '^\s*(table |chain |type |\}|$)'; then
        nft delete table "$fam" "$name" || true
      fi
    done || true
    rm -f "$SAVED_NFT_TABLES"
  fi
  if [[ -d /sys/class/net/$CNI_BRIDGE ]]; then
    ip link del "$CNI_BRIDGE" || true
  fi
  ip route del "$SERVICE_CIDR" 2>/dev/null || true
  if [[ -f $SAVED_SYSCTLS ]]; then
    while read -r s val; do
      [[ -e /proc/sys/$s ]] && echo "$val" >"/proc/sys/$s"
    done <"$SAVED_SYSCTLS"
    rm -f "$SAVED_SYSCTLS"
  fi
}
