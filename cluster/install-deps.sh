#!/usr/bin/env bash
# Installs the Debian packages the local cluster needs. Idempotent: apt is only touched
# (and its index only refreshed) when something is missing.
set -euo pipefail

# command -> package that provides it
declare -A need=(
  [containerd]=containerd
  [ctr]=containerd
  [runc]=runc
  [/usr/lib/cni/bridge]=containernetworking-plugins
  [iptables]=iptables
  [ipset]=ipset
  [openssl]=openssl
  [conntrack]=conntrack
  [debootstrap]=debootstrap
  [curl]=curl
  [ip]=iproute2
  [nsenter]=util-linux
  [findmnt]=util-linux
  [pgrep]=procps
  [nft]=nftables
)
missing=()
for cmd in "${!need[@]}"; do
  if [[ $cmd == /* ]]; then
    [[ -e $cmd ]] && continue
  else
    command -v "$cmd" >/dev/null 2>&1 && continue
  fi
  missing+=("${need[$cmd]}")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "ERROR: missing packages (${missing[*]}); run as root to install them" >&2
  exit 1
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
