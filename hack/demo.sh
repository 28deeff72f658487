#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR disable=SC2317 # the check functions are called through wait_until
# `make demo`: the whole of Paddock on one machine, from a fresh clone.
#
#   1. a cluster: the local single-node cluster built from source (cluster/up.sh, the default), or
#      with CLUSTER=kind a kind cluster (kind-config.yaml; needs Docker, kind >= 0.24, kubectl, helm);
#   2. the images: built offline and imported into containerd (images/build.sh), or with Docker and
#      `kind load docker-image`;
#   3. the CRDs (kubectl apply --server-side) and the chart (helm upgrade --install, pullPolicy Never);
#   4. the model: with OPENAI_API_KEY set, the real OpenAI API; without it, the bundled scripted model
#      server, deployed in the cluster — a replay of a recorded run, not a model;
#   5. the "demo" workspace (examples/workspace.yaml) and a run with the prompt of examples/run.yaml,
#      followed live with the kubectl plugin (kubectl paddock run).
#
# Idempotent: a second `make demo` upgrades what changed and starts a new run. Environment:
#   CLUSTER=local|kind       (default local; `make demo CLUSTER=kind`)
#   OPENAI_API_KEY           use the real model (the key goes into the harness only)
#   DEMO_NAMESPACE=default   where the workspace and the runs live
#   KIND_CLUSTER_NAME=paddock
#
# The release watches only DEMO_NAMESPACE (namespaced mode): the cluster tests run operators of
# their own in paddock-test-* namespaces, and two operators must never reconcile the same objects.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CLUSTER=${CLUSTER:-local}
DEMO_NAMESPACE=${DEMO_NAMESPACE:-default}
KIND_CLUSTER_NAME=${KIND_CLUSTER_NAME:-paddock}
RELEASE=paddock
RELEASE_NAMESPACE=paddock-system
WORKSPACE=demo
VPY=$ROOT/.venv/bin/python
START=$SECONDS

# Bold and colour only on a terminal (`make demo | tee log` stays plain text).
if [[ -t 1 ]]; then B=$'\033[1m' WARN=$'\033[1;33m' RED=$'\033[1;31m' N=$'\033[0m'; else B="" WARN="" RED="" N=""; fi

say() { printf '%s[demo %4ss]%s %s\n' "$B" "$((SECONDS - START))" "$N" "$*"; }
note() { printf '            %s\n' "$*"; }
# Not "die": cluster/lib/common.sh, sourced below, defines one of its own.
fail() {
    printf '%s[demo] ERROR:%s %s\n' "$RED" "$N" "$*" >&2
    exit 1
}

# wait_until WHAT TIMEOUT_S CHECK [ARGS...]: runs CHECK every 2 s until it succeeds; every 10 s it
# prints the elapsed time and what CHECK last said (the current state), so long waits show progress.
wait_until() {
    local what=$1 timeout=$2 started=$SECONDS printed=$SECONDS state=""
    shift 2
    while true; do
        if state=$("$@" 2>&1); then
            say "$what: done in $((SECONDS - started))s"
            return 0
        fi
        if ((SECONDS - started >= timeout)); then
            printf '%s\n' "$state" >&2
            fail "timed out after ${timeout}s waiting for $what"
        fi
        if ((SECONDS - printed >= 10)); then
            note "waiting for $what ($((SECONDS - started))s): $(tr '\n' ' ' <<<"$state" | cut -c1-110)"
            printed=$SECONDS
        fi
        sleep 2
    done
}

[[ -x $VPY ]] || fail "no .venv: run 'make demo' (it runs 'make install' first) or 'make install'"
[[ -x $ROOT/.venv/bin/kubectl-paddock ]] || fail "the kubectl plugin is missing from .venv/bin: run 'make install'"


# --- 1 + 2: cluster and images --------------------------------------------------------------------

# Sets KUBECONFIG, PATH, PADDOCK_IMAGE, SANDBOX_IMAGE and TEARDOWN for the local cluster.
local_cluster() {
    [[ $(id -u) -eq 0 ]] || fail "the local cluster needs root (it starts containerd and the kubelet); use sudo, or CLUSTER=kind"
    # shellcheck source=../cluster/lib/common.sh
    . "$ROOT/cluster/lib/common.sh"
    say "cluster: cluster/up.sh (builds Kubernetes from source on first use; a no-op when it is up)"
    bash "$ROOT/cluster/up.sh"
    # up.sh leaves a running cluster alone, images included: make sure they match the sources.
    say "images: images/build.sh all (rebuilds only what changed, imports into the cluster's containerd)"
    CONTAINERD_ADDRESS=$CONTAINERD_SOCK bash "$ROOT/images/build.sh" all
    local refs=${PADDOCK_CACHE}/images/refs.env
    [[ -f $refs ]] || fail "no $refs: images/build.sh did not record its images"
    PADDOCK_IMAGE=$(sed -n 's/^PADDOCK_IMAGE=//p' "$refs")
    SANDBOX_IMAGE=$(sed -n 's/^SANDBOX_IMAGE=//p' "$refs")
    export KUBECONFIG=$KUBECONFIG_FILE
    export PATH="$BIN_DIR:$ROOT/.venv/bin:$PATH"
    EXPORTS=("export PATH=\"$BIN_DIR:$ROOT/.venv/bin:\$PATH\"" "export KUBECONFIG=\"$KUBECONFIG_FILE\"")
    TEARDOWN="make cluster-down"
}

# The version of kind as "MAJOR MINOR".
kind_version() { kind version | sed -n 's/^kind v\([0-9]*\)\.\([0-9]*\).*/\1 \2/p'; }

# Sets the same variables for a kind cluster (Docker builds, kind load).
kind_cluster() {
    local tool major minor id
    for tool in docker kind kubectl helm; do
        command -v "$tool" >/dev/null || fail "CLUSTER=kind needs $tool on PATH"
    done
    docker info >/dev/null 2>&1 || fail "docker is installed but its daemon does not answer (docker info)"
    read -r major minor <<<"$(kind_version)"
    [[ -n ${major:-} ]] || fail "could not read the version of kind ($(kind version))"
    if ((major == 0 && minor < 24)); then
        fail "kind $(kind version | awk '{print $2}') is too old: kind >= 0.24 enforces NetworkPolicy, which the sandboxes rely on"
    fi
    if kind get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER_NAME"; then
        say "cluster: kind cluster '$KIND_CLUSTER_NAME' exists"
    else
        say "cluster: kind create cluster --config kind-config.yaml --name $KIND_CLUSTER_NAME"
        kind create cluster --config "$ROOT/kind-config.yaml" --name "$KIND_CLUSTER_NAME" --wait 180s
    fi
    mkdir -p "$ROOT/.cluster"
    export KUBECONFIG=$ROOT/.cluster/kind-$KIND_CLUSTER_NAME.kubeconfig
    kind get kubeconfig --name "$KIND_CLUSTER_NAME" >"$KUBECONFIG"
    export PATH="$ROOT/.venv/bin:$PATH"
    # Tags from the image IDs: a rebuilt image gets a new tag, so that helm upgrade rolls the pods.
    say "images: docker build (images/Dockerfile.paddock, images/Dockerfile.sandbox)"
    docker build -f "$ROOT/images/Dockerfile.paddock" -t localhost/paddock/paddock:dev "$ROOT"
    docker build -f "$ROOT/images/Dockerfile.sandbox" -t localhost/paddock/sandbox:dev "$ROOT"
    id=$(docker image inspect --format '{{.Id}}' localhost/paddock/paddock:dev | sed 's/^sha256://' | cut -c1-12)
    PADDOCK_IMAGE=localhost/paddock/paddock:$id
    id=$(docker image inspect --format '{{.Id}}' localhost/paddock/sandbox:dev | sed 's/^sha256://' | cut -c1-12)
    SANDBOX_IMAGE=localhost/paddock/sandbox:$id
    docker tag localhost/paddock/paddock:dev "$PADDOCK_IMAGE"
    docker tag localhost/paddock/sandbox:dev "$SANDBOX_IMAGE"
    say "images: kind load docker-image $PADDOCK_IMAGE $SANDBOX_IMAGE"
    kind load docker-image --name "$KIND_CLUSTER_NAME" "$PADDOCK_IMAGE" "$SANDBOX_IMAGE"
    EXPORTS=("export PATH=\"$ROOT/.venv/bin:\$PATH\"" "export KUBECONFIG=\"$KUBECONFIG\"")
    TEARDOWN="kind delete cluster --name $KIND_CLUSTER_NAME"
}

case $CLUSTER in
local) local_cluster ;;
kind) kind_cluster ;;
*) fail "CLUSTER must be local or kind, not '$CLUSTER'" ;;
esac
[[ -n $PADDOCK_IMAGE && -n $SANDBOX_IMAGE ]] || fail "could not determine the images"
say "images: $PADDOCK_IMAGE, $SANDBOX_IMAGE"
kubectl get namespace "$DEMO_NAMESPACE" >/dev/null 2>&1 || kubectl create namespace "$DEMO_NAMESPACE"

# --- 3: CRDs and the chart ------------------------------------------------------------------------

say "CRDs: kubectl apply --server-side -f crds/"
kubectl apply --server-side --force-conflicts -f "$ROOT/crds" >/dev/null
kubectl wait --for=condition=Established --timeout=60s crd/agentworkspaces.paddock.dev crd/agentruns.paddock.dev >/dev/null

# The model key goes into a values file readable only by us (never on a command line); the chart
# turns it into a Secret mounted in the harness only.
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
chmod 700 "$WORK"
if [[ -n ${OPENAI_API_KEY:-} ]]; then
    MODE=real
    say "model: OPENAI_API_KEY is set: runs use the real model through the OpenAI API"
    MODEL_KEY=$OPENAI_API_KEY
else
    MODE=replay
    printf '\n%s%s%s\n\n' "$WARN" \
        "OPENAI_API_KEY is not set: using the bundled scripted model server — a REPLAY of a recorded run, not a model" "$N"
    # The replay server accepts any non-empty key; the harness needs one to send.
    MODEL_KEY=scripted-replay-not-a-key
fi
KEY_JSON=$(printf '%s' "$MODEL_KEY" | "$VPY" -c 'import json, sys; print(json.dumps(sys.stdin.read()))')
(
    umask 077
    cat >"$WORK/values.yaml" <<EOF
image:
  repository: "${PADDOCK_IMAGE%:*}"
  tag: "${PADDOCK_IMAGE##*:}"
  pullPolicy: Never
watchNamespaces: ["$DEMO_NAMESPACE"]
harness:
  openai:
    apiKey: $KEY_JSON
EOF
)

say "chart: helm upgrade --install $RELEASE charts/paddock -n $RELEASE_NAMESPACE (watching namespace $DEMO_NAMESPACE)"
if ! helm upgrade --install "$RELEASE" "$ROOT/charts/paddock" -n "$RELEASE_NAMESPACE" --create-namespace \
    -f "$WORK/values.yaml" >"$WORK/helm.log" 2>&1; then
    cat "$WORK/helm.log" >&2
    fail "helm upgrade --install failed"
fi
note "$(grep -E '^(STATUS|REVISION):' "$WORK/helm.log" | tr '\n' ' ')"

rolled_out() {
    local deployment out rc=0
    for deployment in "$@"; do
        out=$(kubectl -n "$RELEASE_NAMESPACE" rollout status "deployment/$deployment" --timeout=1s 2>&1) || rc=1
        # The last progress line ("Waiting for deployment ... 0 of 1 updated replicas are available"),
        # not kubectl's closing "timed out" error.
        printf '%s; ' "$(grep -v '^error: timed out' <<<"$out" | tail -n1)"
    done
    return "$rc"
}
wait_until "the operator and the harness to be Available" 300 rolled_out "$RELEASE-operator" "$RELEASE-harness"

# --- 4: the model ---------------------------------------------------------------------------------

FAKE_MODEL_YAML=$(sed "s#localhost/paddock/paddock:dev#$PADDOCK_IMAGE#" "$ROOT/hack/fake-model.yaml")
RUN_FLAGS=()
if [[ $MODE == replay ]]; then
    say "model: deploying the scripted model server (hack/fake-model.yaml) in $RELEASE_NAMESPACE"
    applied=$(kubectl -n "$RELEASE_NAMESPACE" apply -f - <<<"$FAKE_MODEL_YAML")
    # The server reads its script at start: a changed script needs a new pod.
    if grep -q 'configmap/paddock-fake-model-script configured' <<<"$applied"; then
        kubectl -n "$RELEASE_NAMESPACE" rollout restart deployment/paddock-fake-model >/dev/null
    fi
    wait_until "the scripted model server" 180 rolled_out paddock-fake-model
    # No cluster DNS on the local cluster: the harness reaches the Service by its ClusterIP.
    FAKE_IP=$(kubectl -n "$RELEASE_NAMESPACE" get service paddock-fake-model -o jsonpath='{.spec.clusterIP}')
    RUN_FLAGS+=(--base-url "http://$FAKE_IP:8080/v1")
else
    kubectl -n "$RELEASE_NAMESPACE" delete --ignore-not-found -f - <<<"$FAKE_MODEL_YAML" >/dev/null
fi

# --- 5: the workspace and the run -----------------------------------------------------------------

say "workspace: examples/workspace.yaml (image $SANDBOX_IMAGE) in namespace $DEMO_NAMESPACE"
sed "s#localhost/paddock/sandbox:dev#$SANDBOX_IMAGE#" "$ROOT/examples/workspace.yaml" |
    kubectl -n "$DEMO_NAMESPACE" apply -f - >/dev/null

workspace_ready() {
    local state
    state=$(kubectl -n "$DEMO_NAMESPACE" get agentworkspace "$WORKSPACE" \
        -o jsonpath='{.status.phase}{" "}{.status.conditions[?(@.type=="Ready")].message}')
    echo "phase ${state:-(none yet)}"
    # A Suspended workspace (idle for an hour) is fine: the run resumes it.
    [[ $state == Ready* || $state == Suspended* ]]
}
wait_until "workspace $WORKSPACE to be Ready" 300 workspace_ready

# The task of examples/run.yaml, so that the demo runs exactly the documented example.
{ IFS= read -r -d '' PROMPT && IFS= read -r -d '' MODEL && read -r -d '' MAX_TURNS && read -r -d '' TIMEOUT; } < <(
    "$VPY" -c '
import sys, yaml
spec = yaml.safe_load(open(sys.argv[1]))["spec"]
limits = spec.get("limits") or {}
model = (spec.get("model") or {}).get("name", "")
for value in (spec["prompt"], model, limits.get("maxTurns", 20), limits.get("timeoutSeconds", 600)):
    sys.stdout.write(f"{value}\0")' "$ROOT/examples/run.yaml"
)
RUN=hello-$(date +%m%d-%H%M%S)
[[ -n $MODEL ]] && RUN_FLAGS+=(--model "$MODEL")
say "run: kubectl paddock run -n $DEMO_NAMESPACE --workspace $WORKSPACE --name $RUN \"$PROMPT\""
[[ $MODE == replay ]] && note "(the answers below are a REPLAY of a recorded run, served by the scripted model server)"
echo
rc=0
kubectl paddock run -n "$DEMO_NAMESPACE" --workspace "$WORKSPACE" --name "$RUN" \
    --max-turns "$MAX_TURNS" --timeout "$TIMEOUT" "${RUN_FLAGS[@]}" "$PROMPT" || rc=$?
echo

ns_flag=""
[[ $DEMO_NAMESPACE != default ]] && ns_flag=" -n $DEMO_NAMESPACE"
if ((rc == 0)); then
    say "done in $((SECONDS - START))s: run $RUN Succeeded"
else
    printf '%s[demo] run %s did not succeed (kubectl paddock exit %s)%s\n' "$RED" "$RUN" "$rc" "$N"
fi
AGAIN="make demo"
[[ $CLUSTER == kind ]] && AGAIN="make demo CLUSTER=kind"
explore() { printf '  %-58s # %s\n' "$1" "$2"; }
echo
echo "Explore (in a new shell, first):"
printf '  %s\n' "${EXPORTS[@]}"
echo
explore "kubectl paddock$ns_flag ls" "workspaces and runs"
explore "kubectl paddock$ns_flag logs $RUN" "the run's whole transcript"
explore "kubectl paddock$ns_flag shell $WORKSPACE" "a shell in the sandbox (hello.py is there)"
if [[ $MODE == real ]]; then
    explore "kubectl paddock$ns_flag run --workspace $WORKSPACE \"your task\"" "a task of your own"
else
    explore "OPENAI_API_KEY=sk-... $AGAIN" "the same with a real model"
fi
explore "kubectl -n $RELEASE_NAMESPACE get pods" "the operator and the harness"
echo
echo "Run it again: $AGAIN   (a new run each time)"
echo "Tear down:    $TEARDOWN"
exit "$rc"
