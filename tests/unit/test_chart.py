"""The Helm chart: lint, render in every mode, and check the objects it makes.

Uses the pinned helm that cluster/build.sh builds (like tests/cluster/conftest.py's cluster_bin_dir()),
else one on PATH. Without helm the tests skip, except under CI=true where that is a failure.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from paddock_operator.builders.common import OwnerRef
from paddock_operator.builders.workspace import build_exec_role

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "paddock"
RELEASE = "paddock"
NAMESPACE = "paddock-system"
OPERATOR = f"{RELEASE}-operator"
HARNESS = f"{RELEASE}-harness"

Doc = dict[str, Any]
Rule = dict[str, Any]


# --- helm -----------------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in (ROOT / "cluster" / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip("\"'")
    return values


def _pinned_helm() -> Path:
    """Mirrors tests/cluster/conftest.py cluster_bin_dir() (and cluster/lib/common.sh)."""
    v = _versions()
    cache = os.environ.get("PADDOCK_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "paddock"
    )
    return Path(cache) / f"k8s-{v['K8S_VERSION']}_etcd-{v['ETCD_VERSION']}_helm-{v['HELM_VERSION']}" / "bin" / "helm"


@pytest.fixture(scope="session")
def helm() -> str:
    pinned = _pinned_helm()
    if pinned.is_file():
        return str(pinned)
    found = shutil.which("helm")
    if found:
        return found
    reason = f"no helm: neither {pinned} (build it with cluster/build.sh) nor one on PATH"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true)", pytrace=False)
    pytest.skip(reason)


# A helm built from the Go module proxy without Helm's ldflags assumes Kubernetes v1.20 for
# `template`/`lint`, below the chart's kubeVersion: always say which cluster version we target.
KUBE_VERSION = _versions()["K8S_VERSION"]


def _run_helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=120, check=False)


def _values_file(tmp_path: Path, values: dict[str, Any]) -> Path:
    path = tmp_path / f"values-{len(list(tmp_path.glob('values-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def render_raw(
    helm: str, tmp_path: Path, values: dict[str, Any] | None = None, *, release: str = RELEASE, chart: Path = CHART
) -> subprocess.CompletedProcess[str]:
    return _run_helm(
        helm,
        "template",
        release,
        str(chart),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
        "-f",
        str(_values_file(tmp_path, values or {})),
    )


def render(helm: str, tmp_path: Path, values: dict[str, Any] | None = None, *, release: str = RELEASE) -> list[Doc]:
    result = render_raw(helm, tmp_path, values, release=release)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(docs: list[Doc], kind: str, name: str | None = None, namespace: str | None = None) -> list[Doc]:
    return [
        d
        for d in docs
        if d["kind"] == kind
        and (name is None or d["metadata"]["name"] == name)
        and (namespace is None or d["metadata"].get("namespace") == namespace)
    ]


def one(docs: list[Doc], kind: str, name: str, namespace: str | None = None) -> Doc:
    found = find(docs, kind, name, namespace)
    assert len(found) == 1, f"expected one {kind} {name} in {namespace}, found {len(found)}"
    return found[0]


def container(deployment: Doc) -> Doc:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def env_of(deployment: Doc) -> dict[str, Doc]:
    return {e["name"]: e for e in container(deployment).get("env", [])}


def env_value(deployment: Doc, name: str) -> str:
    return str(env_of(deployment)[name]["value"])


def rules_of(docs: list[Doc], kind: str, name: str, namespace: str | None = None) -> list[Rule]:
    return list(one(docs, kind, name, namespace)["rules"])


def allows(rules: list[Rule], group: str, resource: str, verb: str, name: str | None = None) -> bool:
    """Whether the rules grant verb on group/resource (on the object `name`, when given)."""
    for rule in rules:
        if group not in rule["apiGroups"] or resource not in rule["resources"] or verb not in rule["verbs"]:
            continue
        names = rule.get("resourceNames")
        if not names or (name is not None and name in names):
            return True
    return False


# Every scenario the tests render; lint and the generic checks run over all of them.
SCENARIOS: dict[str, dict[str, Any]] = {
    "default": {},
    "namespaced": {"watchNamespaces": ["team-a", "team-b"]},
    "api-key": {"harness": {"openai": {"apiKey": "sk-test-key"}}},
    "existing-secret": {"harness": {"openai": {"existingSecret": "openai", "existingSecretKey": "token"}}},
    "crds-templated": {"crds": {"templated": True}},
    "service-monitor": {"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}}},
    "ha": {"operator": {"replicaCount": 3}, "harness": {"replicaCount": 2}},
    "no-metrics": {"metrics": {"enabled": False}},
}


@pytest.fixture(params=sorted(SCENARIOS))
def scenario(request: pytest.FixtureRequest, helm: str, tmp_path: Path) -> list[Doc]:
    return render(helm, tmp_path, SCENARIOS[request.param])


@pytest.fixture
def default_docs(helm: str, tmp_path: Path) -> list[Doc]:
    return render(helm, tmp_path)


# --- chart metadata and lint ------------------------------------------------------------------------


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "paddock"
    assert chart["appVersion"] == "0.1.0"
    assert chart["type"] == "application"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_helm_lint_is_clean(helm: str, tmp_path: Path, name: str) -> None:
    values = _values_file(tmp_path, SCENARIOS[name])
    result = _run_helm(helm, "lint", str(CHART), "--strict", "--kube-version", KUBE_VERSION, "-f", str(values))
    assert result.returncode == 0, result.stdout + result.stderr
    # Not even INFO/WARNING findings.
    assert not re.search(r"\[(INFO|WARNING|ERROR)\]", result.stdout), result.stdout


# --- generic properties of every rendering ------------------------------------------------------------

# API versions served by Kubernetes 1.37 (plus the Prometheus Operator's, behind its switch).
KNOWN_KINDS = {
    ("v1", "ServiceAccount"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("coordination.k8s.io/v1", "Lease"),
}
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


def test_every_object_has_a_known_api_version_labels_and_namespace(scenario: list[Doc]) -> None:
    for doc in scenario:
        assert (doc["apiVersion"], doc["kind"]) in KNOWN_KINDS, (doc["apiVersion"], doc["kind"])
        meta = doc["metadata"]
        if doc["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in meta
        else:
            assert meta.get("namespace"), f"{doc['kind']} {meta['name']} has no namespace"
        if doc["kind"] != "CustomResourceDefinition":  # generated files, emitted verbatim
            assert meta["labels"]["app.kubernetes.io/instance"] == RELEASE
            assert meta["labels"]["app.kubernetes.io/part-of"] == "paddock"


def test_rbac_has_no_wildcards(scenario: list[Doc]) -> None:
    for doc in scenario:
        for rule in doc.get("rules", []) if doc["kind"] in ("Role", "ClusterRole") else []:
            for key in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(key, []), f"{doc['kind']} {doc['metadata']['name']}: wildcard {key}"
            assert "nonResourceURLs" not in rule
            # Nobody gets the RBAC escape hatches.
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])


def test_bindings_point_at_rendered_roles_and_release_service_accounts(scenario: list[Doc]) -> None:
    accounts = {d["metadata"]["name"] for d in find(scenario, "ServiceAccount")}
    assert accounts == {OPERATOR, HARNESS}
    for binding in find(scenario, "RoleBinding") + find(scenario, "ClusterRoleBinding"):
        ref = binding["roleRef"]
        role_namespace = binding["metadata"].get("namespace") if ref["kind"] == "Role" else None
        one(scenario, ref["kind"], ref["name"], role_namespace)
        for subject in binding["subjects"]:
            assert subject["kind"] == "ServiceAccount"
            assert subject["name"] in accounts
            assert subject["namespace"] == NAMESPACE


def test_pods_follow_the_restricted_profile(scenario: list[Doc]) -> None:
    deployments = find(scenario, "Deployment")
    assert {d["metadata"]["name"] for d in deployments} == {OPERATOR, HARNESS}
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 65532
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["enableServiceLinks"] is False
        assert "hostNetwork" not in pod
        assert "hostPID" not in pod
        c = container(deployment)
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc.get("privileged") is not True
        # The read-only root needs a writable /tmp, and HOME points there.
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes["tmp"]
        assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
        assert env_value(deployment, "HOME") == "/tmp"
        # No secret ever reaches a pod as a volume.
        assert all("secret" not in v for v in pod["volumes"])
        assert "envFrom" not in c


def test_probes_hit_a_declared_port(scenario: list[Doc]) -> None:
    for deployment in find(scenario, "Deployment"):
        c = container(deployment)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        for probe in ("livenessProbe", "readinessProbe"):
            get = c[probe]["httpGet"]
            assert get["port"] in ports
            assert get["path"] in ("/healthz", "/readyz")
        assert env_value(deployment, "PADDOCK_HEALTH_PORT") == str(ports["health"])


# --- the model key ------------------------------------------------------------------------------------


def _secret_refs(deployment: Doc) -> list[Doc]:
    return [e for e in container(deployment).get("env", []) if "secretKeyRef" in e.get("valueFrom", {})]


def test_no_key_means_no_secret_and_no_key_env(default_docs: list[Doc]) -> None:
    assert find(default_docs, "Secret") == []
    for deployment in find(default_docs, "Deployment"):
        assert _secret_refs(deployment) == []
        assert "OPENAI_API_KEY" not in env_of(deployment)


def test_api_key_value_becomes_a_secret_mounted_only_in_the_harness(helm: str, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, SCENARIOS["api-key"])
    secret = one(docs, "Secret", f"{HARNESS}-openai", NAMESPACE)
    assert base64.b64decode(secret["data"]["api-key"]).decode() == "sk-test-key"
    harness = one(docs, "Deployment", HARNESS)
    assert _secret_refs(harness) == [
        {"name": "OPENAI_API_KEY", "valueFrom": {"secretKeyRef": {"name": f"{HARNESS}-openai", "key": "api-key"}}}
    ]
    assert _secret_refs(one(docs, "Deployment", OPERATOR)) == []
    # A changed key rolls the harness pods.
    assert "checksum/model-secret" in harness["spec"]["template"]["metadata"]["annotations"]
    # The key itself appears nowhere but in the Secret.
    for doc in docs:
        if doc["kind"] != "Secret":
            assert "sk-test-key" not in json.dumps(doc)


def test_existing_secret_is_referenced_not_created(helm: str, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, SCENARIOS["existing-secret"])
    assert find(docs, "Secret") == []
    assert _secret_refs(one(docs, "Deployment", HARNESS)) == [
        {"name": "OPENAI_API_KEY", "valueFrom": {"secretKeyRef": {"name": "openai", "key": "token"}}}
    ]
    assert _secret_refs(one(docs, "Deployment", OPERATOR)) == []


def test_api_key_and_existing_secret_together_are_rejected(helm: str, tmp_path: Path) -> None:
    result = render_raw(helm, tmp_path, {"harness": {"openai": {"apiKey": "sk-x", "existingSecret": "openai"}}})
    assert result.returncode != 0
    assert "set at most one of harness.openai.apiKey and harness.openai.existingSecret" in result.stderr


def test_tracing_is_off_unless_asked_for(helm: str, tmp_path: Path) -> None:
    off = one(render(helm, tmp_path), "Deployment", HARNESS)
    assert env_value(off, "PADDOCK_TRACING") == "false"
    assert env_value(off, "OPENAI_AGENTS_DISABLE_TRACING") == "1"
    on = one(render(helm, tmp_path, {"harness": {"openai": {"tracing": True}}}), "Deployment", HARNESS)
    assert env_value(on, "PADDOCK_TRACING") == "true"
    assert "OPENAI_AGENTS_DISABLE_TRACING" not in env_of(on)


# --- RBAC, cluster-wide mode ----------------------------------------------------------------------------


def test_cluster_wide_mode_uses_cluster_roles(default_docs: list[Doc]) -> None:
    assert {d["metadata"]["name"] for d in find(default_docs, "ClusterRole")} == {OPERATOR, HARNESS}
    assert {d["metadata"]["name"] for d in find(default_docs, "ClusterRoleBinding")} == {OPERATOR, HARNESS}
    # The only namespaced Role is the operator's leader-election Lease in the release namespace.
    assert [(d["metadata"]["name"], d["metadata"]["namespace"]) for d in find(default_docs, "Role")] == [
        (f"{OPERATOR}-leader-election", NAMESPACE)
    ]
    for deployment in find(default_docs, "Deployment"):
        assert "PADDOCK_NAMESPACES" not in env_of(deployment)


def test_operator_never_touches_secrets_or_configmaps(scenario: list[Doc]) -> None:
    for kind in ("ClusterRole", "Role"):
        for doc in find(scenario, kind):
            if doc["metadata"]["name"].startswith(OPERATOR):
                resources = {r for rule in doc["rules"] for r in rule["resources"]}
                assert not resources & {"secrets", "configmaps", "serviceaccounts/token"}, doc["metadata"]


def test_operator_can_do_what_reconciling_needs(default_docs: list[Doc]) -> None:
    rules = rules_of(default_docs, "ClusterRole", OPERATOR)
    expected = {
        ("paddock.dev", "agentworkspaces"): {"get", "list", "watch", "create", "patch", "delete"},
        ("paddock.dev", "agentruns"): {"get", "list", "watch", "delete"},
        ("paddock.dev", "agentworkspaces/status"): {"patch"},
        ("paddock.dev", "agentruns/status"): {"patch"},
        ("", "pods"): {"get", "list", "watch", "create", "delete"},
        ("", "persistentvolumeclaims"): {"get", "list", "watch", "create", "patch"},
        ("", "serviceaccounts"): {"get", "list", "watch", "create", "patch"},
        ("networking.k8s.io", "networkpolicies"): {"get", "list", "watch", "create", "patch"},
        ("rbac.authorization.k8s.io", "roles"): {"get", "list", "watch", "create", "patch"},
        ("rbac.authorization.k8s.io", "rolebindings"): {"get", "list", "watch", "create", "patch"},
        ("", "events"): {"create"},
    }
    for (group, resource), verbs in expected.items():
        for verb in verbs:
            assert allows(rules, group, resource, verb), f"operator lacks {verb} {group}/{resource}"
    # It never updates or deletes what it converges by server-side apply (owner references clean up).
    assert not allows(rules, "", "persistentvolumeclaims", "delete")
    assert not allows(rules, "paddock.dev", "agentruns", "patch")  # the run spec belongs to the user


def test_operator_watches_every_child_kind_its_handlers_watch(default_docs: list[Doc]) -> None:
    from paddock_operator.handlers import CHILD_KINDS

    rules = rules_of(default_docs, "ClusterRole", OPERATOR)
    for api_version, plural in CHILD_KINDS:
        group = api_version.rpartition("/")[0]
        for verb in ("list", "watch", "get"):
            assert allows(rules, group, plural, verb), f"operator lacks {verb} on {api_version} {plural}"


def test_operator_holds_every_permission_of_the_exec_roles_it_creates(scenario: list[Doc]) -> None:
    """RBAC escalation prevention: a Role can only grant what its creator holds (no `escalate`)."""
    owner = OwnerRef("paddock.dev/v1alpha1", "AgentWorkspace", "demo", "team-a", "uid-1")
    exec_role = build_exec_role(owner)
    operator_rules = [
        rule
        for kind in ("ClusterRole", "Role")
        for doc in find(scenario, kind)
        if doc["metadata"]["name"] == OPERATOR
        for rule in doc["rules"]
    ]
    assert operator_rules
    for rule in exec_role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    for name in rule.get("resourceNames") or [None]:
                        assert allows(operator_rules, group, resource, verb, name), (group, resource, verb)


def test_harness_gets_only_what_driving_runs_needs(scenario: list[Doc]) -> None:
    for kind in ("ClusterRole", "Role"):
        for doc in find(scenario, kind, HARNESS):
            rules = doc["rules"]
            # No exec and no pods at all: the operator grants exec per workspace pod.
            resources = {r for rule in rules for r in rule["resources"]}
            assert not resources & {"pods", "pods/exec", "pods/attach", "pods/portforward"}
            # Cannot hand out permissions or create workloads.
            groups = {g for rule in rules for g in rule["apiGroups"]}
            assert "rbac.authorization.k8s.io" not in groups
            assert "apps" not in groups
            # Secrets: get only, never list or watch (which would dump every Secret).
            for rule in rules:
                if "secrets" in rule["resources"]:
                    assert rule["verbs"] == ["get"]
            # Reads workspaces and runs; writes status; never creates or deletes them.
            assert allows(rules, "paddock.dev", "agentruns", "watch")
            assert allows(rules, "paddock.dev", "agentruns/status", "patch")
            assert allows(rules, "paddock.dev", "agentworkspaces/status", "patch")
            assert allows(rules, "", "configmaps", "create")
            assert allows(rules, "coordination.k8s.io", "leases", "create")
            for verb in ("create", "delete"):
                assert not allows(rules, "paddock.dev", "agentruns", verb)
                assert not allows(rules, "paddock.dev", "agentworkspaces", verb)


def test_run_secrets_can_be_narrowed_or_turned_off(helm: str, tmp_path: Path) -> None:
    rules = rules_of(render(helm, tmp_path), "ClusterRole", HARNESS)
    assert allows(rules, "", "secrets", "get", "anything")
    narrowed = render(helm, tmp_path, {"harness": {"runSecrets": {"names": ["openai", "team-key"]}}})
    rules = rules_of(narrowed, "ClusterRole", HARNESS)
    assert allows(rules, "", "secrets", "get", "openai")
    assert not allows(rules, "", "secrets", "get", "other")
    off = render(helm, tmp_path, {"harness": {"runSecrets": {"enabled": False}}})
    rules = rules_of(off, "ClusterRole", HARNESS)
    assert not any("secrets" in rule["resources"] for rule in rules)


def test_operator_tells_the_harness_identity_and_its_lease(default_docs: list[Doc]) -> None:
    operator = one(default_docs, "Deployment", OPERATOR)
    assert env_value(operator, "PADDOCK_HARNESS_SERVICE_ACCOUNT") == HARNESS
    assert env_value(operator, "PADDOCK_HARNESS_NAMESPACE") == NAMESPACE
    assert env_value(operator, "PADDOCK_LEADER_ELECTION") == "true"
    assert env_value(operator, "PADDOCK_LEASE_NAMESPACE") == NAMESPACE
    lease = env_value(operator, "PADDOCK_LEASE_NAME")
    assert env_of(operator)["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    rules = rules_of(default_docs, "Role", f"{OPERATOR}-leader-election", NAMESPACE)
    assert allows(rules, "coordination.k8s.io", "leases", "create")
    for verb in ("get", "patch"):
        assert allows(rules, "coordination.k8s.io", "leases", verb, lease)
        assert not allows(rules, "coordination.k8s.io", "leases", verb, "someone-elses-lease")
    assert not allows(rules, "coordination.k8s.io", "leases", "delete")
    # The chart owns the Lease, so that `helm uninstall` removes it with the release.
    assert one(default_docs, "Lease", lease)["metadata"]["namespace"] == NAMESPACE


def test_no_leader_election_means_no_lease_role(helm: str, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, {"operator": {"leaderElection": {"enabled": False}}})
    assert find(docs, "Role") == []
    assert find(docs, "Lease") == []
    assert env_value(one(docs, "Deployment", OPERATOR), "PADDOCK_LEADER_ELECTION") == "false"


def test_several_operator_replicas_need_leader_election(helm: str, tmp_path: Path) -> None:
    result = render_raw(helm, tmp_path, {"operator": {"replicaCount": 2, "leaderElection": {"enabled": False}}})
    assert result.returncode != 0
    assert "operator.replicaCount > 1 needs operator.leaderElection.enabled" in result.stderr
    docs = render(helm, tmp_path, SCENARIOS["ha"])
    assert one(docs, "Deployment", OPERATOR)["spec"]["replicas"] == 3
    assert one(docs, "Deployment", HARNESS)["spec"]["replicas"] == 2


# --- RBAC, namespaced mode ------------------------------------------------------------------------------


def test_namespaced_mode_uses_roles_in_each_watched_namespace(helm: str, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, SCENARIOS["namespaced"])
    assert find(docs, "ClusterRole") == []
    assert find(docs, "ClusterRoleBinding") == []
    for ns in ("team-a", "team-b"):
        for name in (OPERATOR, HARNESS):
            role = one(docs, "Role", name, ns)
            binding = one(docs, "RoleBinding", name, ns)
            assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}
            assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}]
            assert role["rules"]
        # The same rules as cluster-wide, minus the cluster-scoped CRD watch.
        operator_rules = rules_of(docs, "Role", OPERATOR, ns)
        assert not allows(operator_rules, "apiextensions.k8s.io", "customresourcedefinitions", "list")
        assert allows(operator_rules, "", "pods/exec", "create")
        assert not allows(rules_of(docs, "Role", HARNESS, ns), "", "pods/exec", "create")
    one(docs, "Role", f"{OPERATOR}-leader-election", NAMESPACE)
    # No grants anywhere else, not even in the release namespace.
    namespaces = {d["metadata"]["namespace"] for d in find(docs, "Role") + find(docs, "RoleBinding")}
    assert namespaces == {"team-a", "team-b", NAMESPACE}
    assert [d["metadata"]["name"] for d in find(docs, "Role", namespace=NAMESPACE)] == [f"{OPERATOR}-leader-election"]
    for deployment in find(docs, "Deployment"):
        assert env_value(deployment, "PADDOCK_NAMESPACES") == "team-a,team-b"


def test_namespaced_mode_without_rbac_creation_renders_no_rbac(helm: str, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, {**SCENARIOS["namespaced"], "rbac": {"create": False}})
    for kind in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"):
        assert find(docs, kind) == []


# --- Services, ServiceMonitors, placement, image -----------------------------------------------------


def test_metrics_services_select_their_component(default_docs: list[Doc]) -> None:
    for name in (OPERATOR, HARNESS):
        service = one(default_docs, "Service", f"{name}-metrics", NAMESPACE)
        deployment = one(default_docs, "Deployment", name)
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items()
        assert deployment["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
        port = service["spec"]["ports"][0]
        assert port["name"] == "metrics"
        assert port["targetPort"] in {p["name"] for p in container(deployment)["ports"]}
        assert env_value(deployment, "PADDOCK_METRICS_PORT") == "8080"
    # The two selectors never overlap.
    selectors = [one(default_docs, "Service", f"{n}-metrics")["spec"]["selector"] for n in (OPERATOR, HARNESS)]
    assert selectors[0] != selectors[1]


def test_metrics_can_be_turned_off(helm: str, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, SCENARIOS["no-metrics"])
    assert find(docs, "Service") == []
    for deployment in find(docs, "Deployment"):
        assert env_value(deployment, "PADDOCK_METRICS_PORT") == "0"
        assert "metrics" not in {p["name"] for p in container(deployment)["ports"]}


def test_service_monitors_only_when_enabled(helm: str, tmp_path: Path, default_docs: list[Doc]) -> None:
    assert find(default_docs, "ServiceMonitor") == []
    docs = render(helm, tmp_path, SCENARIOS["service-monitor"])
    monitors = find(docs, "ServiceMonitor")
    assert {m["metadata"]["name"] for m in monitors} == {OPERATOR, HARNESS}
    for monitor in monitors:
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor["metadata"]["labels"]["release"] == "prom"
        service = one(docs, "Service", f"{monitor['metadata']['name']}-metrics")
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
        assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}


def test_placement_resources_and_image_settings_pass_through(helm: str, tmp_path: Path) -> None:
    tolerations = [{"key": "dedicated", "operator": "Equal", "value": "paddock", "effect": "NoSchedule"}]
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["agents"]}]}]
            }
        }
    }
    values: dict[str, Any] = {"image": {"repository": "registry.example/paddock", "tag": "abc", "pullPolicy": "Never"}}
    for component in ("operator", "harness"):
        values[component] = {
            "nodeSelector": {"pool": component},
            "tolerations": tolerations,
            "affinity": affinity,
            "resources": {"requests": {"cpu": "7m"}},
            "extraArgs": ["--flag"],
        }
    docs = render(helm, tmp_path, values)
    for component in ("operator", "harness"):
        deployment = one(docs, "Deployment", f"{RELEASE}-{component}")
        pod = deployment["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"pool": component}
        assert pod["tolerations"] == tolerations
        assert pod["affinity"] == affinity
        c = container(deployment)
        assert c["resources"]["requests"]["cpu"] == "7m"  # Helm merges over the default requests
        assert c["image"] == "registry.example/paddock:abc"
        assert c["imagePullPolicy"] == "Never"
        assert c["command"] == ["python", "-m", f"paddock_{component}"]
        assert c["args"] == ["--flag"]


def test_image_tag_defaults_to_app_version_and_digest_wins(helm: str, tmp_path: Path) -> None:
    default = container(one(render(helm, tmp_path), "Deployment", OPERATOR))
    assert default["image"] == "localhost/paddock/paddock:0.1.0"
    digest = "sha256:" + "a" * 64
    pinned = render(helm, tmp_path, {"image": {"tag": "dev", "digest": digest}})
    assert container(one(pinned, "Deployment", HARNESS))["image"] == f"localhost/paddock/paddock@{digest}"


def test_long_release_names_still_give_valid_object_names(helm: str, tmp_path: Path) -> None:
    release = "a-very-long-release-name-that-helm-still-accepts-x"  # 50 characters
    docs = render(helm, tmp_path, SCENARIOS["namespaced"], release=release)
    for doc in docs:
        # Services are DNS labels; Deployments name their pods; RBAC object names may be longer.
        limit = 253 if doc["kind"] in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding") else 63
        assert len(doc["metadata"]["name"]) <= limit, doc["metadata"]["name"]
    assert len({(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs}) == len(docs)


# --- CRDs ---------------------------------------------------------------------------------------------


def _crd_files() -> dict[str, Doc]:
    return {doc["metadata"]["name"]: doc for p in sorted((CHART / "crds").glob("*.yaml")) for doc in [_load(p)]}


def _load(path: Path) -> Doc:
    loaded = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_crds_are_not_templates_by_default(default_docs: list[Doc]) -> None:
    assert find(default_docs, "CustomResourceDefinition") == []


@pytest.mark.parametrize("keep", [True, False])
def test_templated_crds_are_the_generated_files(helm: str, tmp_path: Path, keep: bool) -> None:
    docs = render(helm, tmp_path, {"crds": {"templated": True, "keep": keep}})
    rendered = {d["metadata"]["name"]: d for d in find(docs, "CustomResourceDefinition")}
    files = _crd_files()
    assert sorted(rendered) == sorted(files) == ["agentruns.paddock.dev", "agentworkspaces.paddock.dev"]
    for name, crd in rendered.items():
        annotations = crd["metadata"].pop("annotations", {})
        assert annotations == ({"helm.sh/resource-policy": "keep"} if keep else {})
        assert crd == files[name], f"{name}: the template changed the generated CRD"


# --- values.schema.json -------------------------------------------------------------------------------

BAD_VALUES = [
    pytest.param({"operator": {"replicaCount": 0}}, "/operator/replicaCount", id="operator-replicas-0"),
    pytest.param({"harness": {"replicaCount": 0}}, "/harness/replicaCount", id="harness-replicas-0"),
    pytest.param({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy", id="pull-policy"),
    pytest.param({"imageTag": "dev"}, "additional properties 'imageTag' not allowed", id="unknown-top-level-key"),
    pytest.param({"operator": {"replicas": 2}}, "additional properties 'replicas' not allowed", id="unknown-nested"),
    pytest.param({"image": {"repository": ""}}, "/image/repository", id="empty-repository"),
    pytest.param({"operator": {"workers": "four"}}, "/operator/workers", id="wrong-type"),
    pytest.param({"watchNamespaces": ["team-*"]}, "/watchNamespaces/0", id="namespace-glob"),
    pytest.param({"watchNamespaces": "team-a"}, "/watchNamespaces", id="namespaces-not-a-list"),
    pytest.param({"crds": {"templated": "yes"}}, "/crds/templated", id="bool-as-string"),
    pytest.param({"metrics": {"serviceMonitor": {"interval": "soon"}}}, "/metrics/serviceMonitor/interval", id="dur"),
    pytest.param({"image": {"digest": "latest"}}, "/image/digest", id="digest"),
    pytest.param({"harness": {"maxConcurrentRuns": 0}}, "/harness/maxConcurrentRuns", id="max-runs-0"),
    pytest.param({"operator": {"ports": {"metrics": 70000, "health": 8081}}}, "/operator/ports/metrics", id="port"),
]


@pytest.mark.parametrize(("values", "message"), BAD_VALUES)
def test_bad_values_fail_with_a_schema_error(helm: str, tmp_path: Path, values: dict[str, Any], message: str) -> None:
    result = render_raw(helm, tmp_path, values)
    assert result.returncode != 0, f"{values} was accepted"
    assert "values don't meet the specifications of the schema" in result.stderr, result.stderr
    assert message in result.stderr, result.stderr


def test_schema_is_strict_at_the_top_and_requires_the_image() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) >= set(yaml.safe_load((CHART / "values.yaml").read_text()))
    assert "repository" in schema["properties"]["image"]["required"]
    assert schema["properties"]["operator"]["properties"]["replicaCount"]["minimum"] == 1


# --- NOTES.txt and README -------------------------------------------------------------------------------


def _notes(helm: str, tmp_path: Path, values: dict[str, Any]) -> str:
    """NOTES.txt as `helm install` would print it (helm template skips NOTES, so render it via tpl)."""
    copy = tmp_path / f"chart-{len(list(tmp_path.glob('chart-*')))}"
    shutil.copytree(CHART, copy)
    shutil.copy(copy / "templates" / "NOTES.txt", copy / "notes.txt")
    (copy / "templates" / "zz-notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n"
        'data:\n  notes: {{ tpl (.Files.Get "notes.txt") . | quote }}\n'
    )
    result = _run_helm(
        helm,
        "template",
        RELEASE,
        str(copy),
        "-n",
        NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
        "-s",
        "templates/zz-notes.yaml",
        "-f",
        str(_values_file(tmp_path, values)),
    )
    assert result.returncode == 0, result.stderr
    return str(yaml.safe_load(result.stdout)["data"]["notes"])


def test_notes_tell_the_next_commands(helm: str, tmp_path: Path) -> None:
    notes = _notes(helm, tmp_path, {})
    assert f"kubectl -n {NAMESPACE} rollout status deployment/{OPERATOR} deployment/{HARNESS}" in notes
    assert "kubectl paddock run -n default --workspace demo" in notes
    assert "kind: AgentWorkspace" in notes
    assert "kind: AgentRun" in notes
    assert "WARNING: no default model key" in notes
    assert "kubectl apply --server-side --force-conflicts -f charts/paddock/crds/" in notes
    # Pasted into a shell, every heredoc must end: its terminator starts at column 0.
    assert notes.count("<<'YAML'") == len(re.findall(r"^YAML$", notes, flags=re.M)) == 2
    namespaced = _notes(helm, tmp_path, {**SCENARIOS["namespaced"], **SCENARIOS["existing-secret"]})
    assert "Mode: namespaced" in namespaced
    assert "team-a, team-b" in namespaced
    assert "kubectl paddock run -n team-a" in namespaced
    assert 'Secret "openai"' in namespaced
    assert "WARNING" not in namespaced


def _described_values() -> dict[str, str]:
    """Rows of the README's values table: key -> default cell."""
    rows = re.findall(r"^\| `([\w.]+)` \| (.*?) \| .+ \|$", (CHART / "README.md").read_text(), flags=re.M)
    return dict(rows)


def _leaves(values: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in values.items():
        path = f"{prefix}{key}"
        yield path, value
        if isinstance(value, dict):
            yield from _leaves(value, path + ".")


def test_readme_values_table_matches_values_yaml() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    all_paths = dict(_leaves(values))
    table = _described_values()
    assert table, "no values table in charts/paddock/README.md"
    for key, cell in table.items():
        assert key in all_paths, f"README documents {key}, which values.yaml does not have"
        if cell != "(see values.yaml)":
            assert json.loads(cell.strip("`")) == all_paths[key], f"README default of {key} is stale"
    # Every value is documented by its own row or by a row for an enclosing object.
    for path in all_paths:
        parts = path.split(".")
        covered = any(".".join(parts[:i]) in table for i in range(1, len(parts) + 1))
        assert covered or isinstance(all_paths[path], dict), f"{path} is missing from the README values table"


def test_chart_sets_only_settings_the_programs_read() -> None:
    """Every PADDOCK_* variable the chart sets is one the operator's or the harness's --help names."""
    from paddock_harness.driver import settings as harness_settings
    from paddock_operator import settings as operator_settings

    def help_text(parse: Any) -> str:
        import contextlib
        import io

        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
            parse(["--help"])
        return out.getvalue()

    known = {
        "operator": help_text(operator_settings.parse_args),
        "harness": help_text(harness_settings.parse_args),
    }
    for component in ("operator", "harness"):
        template = (CHART / "templates" / f"{component}-deployment.yaml").read_text()
        helpers = (CHART / "templates" / "_helpers.tpl").read_text()
        names = set(re.findall(r"name: (PADDOCK_[A-Z_]+)", template + helpers))
        assert names
        for name in sorted(names):
            # Whole words: PADDOCK_LEASE_NAME must not pass on the strength of PADDOCK_LEASE_NAMESPACE.
            assert re.search(rf"\b{name}\b", known[component]), f"the {component} does not read {name} (--help)"
    assert "OPENAI_API_KEY" in known["harness"]
