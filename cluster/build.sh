#!/usr/bin/env bash
# Builds the pinned cluster binaries from the Go module proxy into the shared cache dir
# (see versions.env). Binaries already present are skipped, so a warm run is instant.
# The Go modules (k8s/, etcd/, helm/, kube-router/) carry committed go.sum files.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

command -v go >/dev/null || die "Go is required to build the cluster binaries (go 1.26+)"
mkdir -p "$BIN_DIR"

export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
# Keep the go.sum files authoritative: a build never edits the repo's modules.
export GOFLAGS="$GOFLAGS -mod=readonly"

k8s_ver="${K8S_VERSION#v}"
k8s_major="${k8s_ver%%.*}"
k8s_minor="$(cut -d. -f2 <<<"$k8s_ver")"
build_date="1970-01-01T00:00:00Z" # fixed so rebuilds are reproducible
k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$k8s_major -X $pkg.gitMinor=$k8s_minor"
  k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

total_start=$SECONDS
built=0

# build NAME MODULE_DIR PACKAGE LDFLAGS [STAMP]: STAMP (a version) is recorded next to the
# binary for tools whose version is not part of the cache dir name; a mismatch rebuilds.
build() {
  local name=$1 moddir=$2 pkg=$3 ldflags=$4 stamp=${5:-}
  if [[ -x "$BIN_DIR/$name" ]] && { [[ -z $stamp ]] || [[ $(cat "$BIN_DIR/.$name.version" 2>/dev/null) == "$stamp" ]]; }; then
    return 0
  fi
  local start=$SECONDS
  log "building $name ($pkg) ..."
  (cd "$CLUSTER_DIR/$moddir" && go build -trimpath -ldflags "$ldflags" -o "$BIN_DIR/.$name.tmp" "$pkg")
  mv -f "$BIN_DIR/.$name.tmp" "$BIN_DIR/$name"
  [[ -n $stamp ]] && echo "$stamp" >"$BIN_DIR/.$name.version"
  log "built $name in $((SECONDS - start)) s"
  built=$((built + 1))
}

for c in kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubectl; do
  build "$c" k8s "k8s.io/kubernetes/cmd/$c" "$k8s_ldflags"
done
build etcd etcd go.etcd.io/etcd/server/v3 \
  "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION"
build helm helm helm.sh/helm/v3/cmd/helm \
  "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
# NetworkPolicy enforcement (firewall-only kube-router, see up.sh).
build kube-router kube-router github.com/cloudnativelabs/kube-router/v2/cmd/kube-router \
  "-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION -X github.com/cloudnativelabs/kube-router/v2/pkg/version.BuildDate=$build_date" \
  "$KUBE_ROUTER_VERSION"

if ((built > 0)); then
  log "built $built binaries in $((SECONDS - total_start)) s into $BIN_DIR"
fi
