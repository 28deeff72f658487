"""The pure builders of an AgentWorkspace's children: security of the pod, storage, egress, harness RBAC."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import pytest
from pydantic import ValidationError

from paddock_operator import naming
from paddock_operator.api.workspace import AgentWorkspaceSpec, ResourceList, Resources
from paddock_operator.builders import workspace as build
from paddock_operator.builders.common import OwnerRef
from paddock_operator.settings import OperatorSettings

SETTINGS = OperatorSettings(identity="unit-test")
OWNER = OwnerRef("paddock.dev/v1alpha1", "AgentWorkspace", "ws", "team-a", "uid-ws")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def spec(**fields: Any) -> AgentWorkspaceSpec:
    return AgentWorkspaceSpec.model_validate({"image": "sandbox:1", **fields})


def owner(name: str) -> OwnerRef:
    return OwnerRef("paddock.dev/v1alpha1", "AgentWorkspace", name, "team-a", f"uid-{name}")


def pod_of(workspace_spec: AgentWorkspaceSpec, settings: OperatorSettings = SETTINGS) -> dict[str, Any]:
    return build.build_pod(OWNER, workspace_spec, settings)


def container_of(pod: dict[str, Any]) -> dict[str, Any]:
    containers = pod["spec"]["containers"]
    assert len(containers) == 1
    assert containers[0]["name"] == build.SANDBOX_CONTAINER
    return dict(containers[0])


# Every variant of a spec a user can write: the security invariants hold for all of them.
SPEC_VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "read-only-root": {"securityContext": {"readOnlyRootFilesystem": True}},
    "own-uid-gid": {"securityContext": {"runAsUser": 4242, "runAsGroup": 4343}},
    "env-command-args": {
        "env": [{"name": "A", "value": "1"}, {"name": "B"}],
        "command": ["/bin/app"],
        "args": ["--flag"],
        "imagePullPolicy": "Never",
    },
    "scheduling": {
        "runtimeClassName": "gvisor",
        "nodeSelector": {"pool": "sandbox"},
        "tolerations": [{"key": "sandbox", "operator": "Exists", "effect": "NoSchedule"}],
    },
    "network-internet": {"network": {"egress": "Internet", "allowDNS": True}},
    "storage-custom": {
        "storage": {"size": "5Gi", "mountPath": "/data", "retainOnDelete": True, "storageClassName": "fast"}
    },
    "resources": {"resources": {"requests": {"cpu": "1"}, "limits": {"memory": "8Gi"}}},
    "lifecycle": {"lifecycle": {"suspend": True, "idleTimeoutSeconds": 600}},
}


@pytest.mark.parametrize("fields", SPEC_VARIANTS.values(), ids=SPEC_VARIANTS.keys())
def test_pod_is_locked_down_for_every_spec(fields: dict[str, Any]) -> None:
    pod = pod_of(spec(**fields))
    pod_spec = pod["spec"]
    container = container_of(pod)

    pod_security = pod_spec["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["runAsUser"] > 0
    assert pod_security["runAsGroup"] > 0
    assert pod_security["fsGroup"] == pod_security["runAsGroup"]
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}

    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == pod_security["runAsUser"]
    assert security["runAsGroup"] == pod_security["runAsGroup"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["privileged"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}

    assert pod_spec["automountServiceAccountToken"] is False
    assert pod_spec["enableServiceLinks"] is False
    assert pod_spec["hostNetwork"] is False
    assert pod_spec["hostPID"] is False
    assert pod_spec["hostIPC"] is False
    assert pod_spec["serviceAccountName"] == naming.service_account_name(OWNER.name)
    assert "initContainers" not in pod_spec
    assert "ephemeralContainers" not in pod_spec

    # No secret ever reaches the sandbox: neither volumes nor env references.
    for volume in pod_spec["volumes"]:
        assert set(volume) - {"name"} <= {"persistentVolumeClaim", "emptyDir"}, volume
    assert "envFrom" not in container
    for env in container["env"]:
        assert set(env) == {"name", "value"}, env
    assert "secret" not in repr(pod_spec).lower()


@pytest.mark.parametrize("fields", SPEC_VARIANTS.values(), ids=SPEC_VARIANTS.keys())
def test_pod_mounts_the_workspace_claim_and_a_tmp_empty_dir(fields: dict[str, Any]) -> None:
    workspace_spec = spec(**fields)
    pod = pod_of(workspace_spec)
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes == {
        build.WORKSPACE_VOLUME: {
            "name": build.WORKSPACE_VOLUME,
            "persistentVolumeClaim": {"claimName": naming.pvc_name(OWNER.name)},
        },
        build.TMP_VOLUME: {"name": build.TMP_VOLUME, "emptyDir": {"sizeLimit": SETTINGS.tmp_size_limit}},
    }
    mounts = {m["mountPath"]: m["name"] for m in container_of(pod)["volumeMounts"]}
    assert mounts == {workspace_spec.storage.mount_path: build.WORKSPACE_VOLUME, "/tmp": build.TMP_VOLUME}
    assert container_of(pod)["workingDir"] == workspace_spec.storage.mount_path


@pytest.mark.parametrize(
    ("security", "settings", "expected_uid", "expected_gid"),
    [
        ({}, SETTINGS, 1000, 1000),
        ({}, OperatorSettings(identity="t", sandbox_uid=2000, sandbox_gid=3000), 2000, 3000),
        ({"runAsUser": 4242}, SETTINGS, 4242, 1000),
        ({"runAsGroup": 4343}, SETTINGS, 1000, 4343),
        ({"runAsUser": 4242, "runAsGroup": 4343}, OperatorSettings(identity="t", sandbox_uid=7), 4242, 4343),
    ],
)
def test_uid_gid_and_fs_group(
    security: dict[str, Any], settings: OperatorSettings, expected_uid: int, expected_gid: int
) -> None:
    pod = pod_of(spec(securityContext=security), settings)
    pod_security = pod["spec"]["securityContext"]
    assert (pod_security["runAsUser"], pod_security["runAsGroup"], pod_security["fsGroup"]) == (
        expected_uid,
        expected_gid,
        expected_gid,
    )
    container_security = container_of(pod)["securityContext"]
    assert (container_security["runAsUser"], container_security["runAsGroup"]) == (expected_uid, expected_gid)


@pytest.mark.parametrize("field", ["runAsUser", "runAsGroup"])
def test_root_ids_are_rejected_by_the_api(field: str) -> None:
    with pytest.raises(ValidationError):
        spec(securityContext={field: 0})


@pytest.mark.parametrize("read_only", [False, True])
def test_read_only_root_filesystem_keeps_a_writable_tmp(read_only: bool) -> None:
    pod = pod_of(spec(securityContext={"readOnlyRootFilesystem": read_only}))
    container = container_of(pod)
    assert container["securityContext"]["readOnlyRootFilesystem"] is read_only
    assert {"name": build.TMP_VOLUME, "mountPath": "/tmp"} in container["volumeMounts"]
    assert any(v.get("emptyDir") is not None and v["name"] == build.TMP_VOLUME for v in pod["spec"]["volumes"])


@pytest.mark.parametrize(
    "env",
    [
        {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        {"name": "KEY", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
        {"name": "KEY", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ],
)
def test_env_references_never_reach_the_builder(env: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="valueFrom"):
        spec(env=[env])


def test_env_is_passed_literally() -> None:
    pod = pod_of(spec(env=[{"name": "A", "value": "1"}, {"name": "EMPTY"}]))
    assert container_of(pod)["env"] == [{"name": "A", "value": "1"}, {"name": "EMPTY", "value": ""}]


DEFAULT_REQUESTS = {"cpu": "100m", "memory": "256Mi", "ephemeral-storage": "256Mi"}
DEFAULT_LIMITS = {"cpu": "2", "memory": "2Gi", "ephemeral-storage": "4Gi"}


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        pytest.param(None, {"requests": DEFAULT_REQUESTS, "limits": DEFAULT_LIMITS}, id="unset"),
        pytest.param({}, {"requests": DEFAULT_REQUESTS, "limits": DEFAULT_LIMITS}, id="empty"),
        pytest.param(
            {"requests": {"cpu": "500m"}},
            {"requests": {**DEFAULT_REQUESTS, "cpu": "500m"}, "limits": DEFAULT_LIMITS},
            id="one-request",
        ),
        pytest.param(
            {"limits": {"memory": "1Gi", "ephemeral-storage": "1Gi"}},
            {"requests": DEFAULT_REQUESTS, "limits": {**DEFAULT_LIMITS, "memory": "1Gi", "ephemeral-storage": "1Gi"}},
            id="some-limits",
        ),
        pytest.param(
            {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1500m", "memory": "1Gi"}},
            {
                "requests": {**DEFAULT_REQUESTS, "cpu": "1", "memory": "1Gi"},
                "limits": {**DEFAULT_LIMITS, "cpu": "1500m", "memory": "1Gi"},
            },
            id="both",
        ),
        # A default never contradicts the user's value (the API rejects requests above limits).
        pytest.param(
            {"limits": {"cpu": "50m", "memory": "128Mi"}},
            {
                "requests": {**DEFAULT_REQUESTS, "cpu": "50m", "memory": "128Mi"},
                "limits": {**DEFAULT_LIMITS, "cpu": "50m", "memory": "128Mi"},
            },
            id="limit-below-default-request",
        ),
        pytest.param(
            {"requests": {"memory": "4Gi", "cpu": "3"}},
            {
                "requests": {**DEFAULT_REQUESTS, "cpu": "3", "memory": "4Gi"},
                "limits": {**DEFAULT_LIMITS, "cpu": "3", "memory": "4Gi"},
            },
            id="request-above-default-limit",
        ),
        pytest.param(
            {"requests": {"memory": "4Gi"}, "limits": {"memory": "1Gi"}},
            {"requests": {**DEFAULT_REQUESTS, "memory": "4Gi"}, "limits": {**DEFAULT_LIMITS, "memory": "1Gi"}},
            id="user-contradiction-left-for-the-api",
        ),
    ],
)
def test_resources_merge_with_defaults(resources: dict[str, Any] | None, expected: dict[str, Any]) -> None:
    fields = {} if resources is None else {"resources": resources}
    assert container_of(pod_of(spec(**fields)))["resources"] == expected


def test_resource_defaults_come_from_settings() -> None:
    settings = OperatorSettings(
        identity="t", default_resources=Resources(requests=ResourceList(cpu="1"), limits=ResourceList(memory="1Gi"))
    )
    resources = container_of(pod_of(spec(), settings))["resources"]
    assert resources == {"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}}


def test_scheduling_fields_pass_through() -> None:
    tolerations = [
        {"key": "sandbox", "operator": "Equal", "value": "yes", "effect": "NoExecute", "tolerationSeconds": 30},
        {"operator": "Exists"},
    ]
    pod_spec = pod_of(
        spec(runtimeClassName="kata", nodeSelector={"pool": "agents", "zone": "a"}, tolerations=tolerations)
    )["spec"]
    assert pod_spec["runtimeClassName"] == "kata"
    assert pod_spec["nodeSelector"] == {"pool": "agents", "zone": "a"}
    assert pod_spec["tolerations"] == tolerations


def test_scheduling_fields_absent_when_unset() -> None:
    pod_spec = pod_of(spec())["spec"]
    assert "runtimeClassName" not in pod_spec
    assert "nodeSelector" not in pod_spec
    assert "tolerations" not in pod_spec


@pytest.mark.parametrize(
    ("mount_path", "expected_test"),
    [
        ("/workspace", "test -d /workspace -a -w /workspace"),
        ("/my work/dir", "test -d '/my work/dir' -a -w '/my work/dir'"),
        ("/x';rm -rf /;'", "test -d '/x'\"'\"';rm -rf /;'\"'\"'' -a -w '/x'\"'\"';rm -rf /;'\"'\"''"),
    ],
)
def test_readiness_probe_checks_the_workspace_is_writable(mount_path: str, expected_test: str) -> None:
    probe = container_of(pod_of(spec(storage={"mountPath": mount_path})))["readinessProbe"]
    assert probe["exec"]["command"] == ["/bin/sh", "-c", expected_test]
    assert probe["periodSeconds"] > 0
    assert probe["failureThreshold"] >= 1


@pytest.mark.parametrize(
    ("fields", "command", "args", "pull_policy"),
    [
        ({}, build.KEEP_ALIVE, None, None),
        ({"command": ["/bin/app", "serve"]}, ["/bin/app", "serve"], None, None),
        ({"args": ["-v"]}, build.KEEP_ALIVE, ["-v"], None),
        ({"imagePullPolicy": "IfNotPresent"}, build.KEEP_ALIVE, None, "IfNotPresent"),
    ],
)
def test_command_args_and_pull_policy(
    fields: dict[str, Any], command: list[str], args: list[str] | None, pull_policy: str | None
) -> None:
    container = container_of(pod_of(spec(**fields)))
    assert container["image"] == "sandbox:1"
    assert container["command"] == command
    assert container.get("args") == args
    assert container.get("imagePullPolicy") == pull_policy


def test_pod_metadata() -> None:
    pod = pod_of(spec())
    meta = pod["metadata"]
    assert meta["name"] == naming.pod_name("ws") == "ws-sandbox"
    assert meta["namespace"] == "team-a"
    assert meta["labels"] == naming.workspace_labels("ws", "sandbox")
    assert meta["labels"][naming.LABEL_WORKSPACE] == "ws"
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "paddock.dev/v1alpha1",
            "kind": "AgentWorkspace",
            "name": "ws",
            "uid": "uid-ws",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert meta["annotations"][naming.ANNOTATION_SPEC_HASH] == naming.spec_hash(pod["spec"])
    assert pod["spec"]["restartPolicy"] == "Always"


def _hash(fields: dict[str, Any]) -> str:
    return str(pod_of(spec(**fields))["metadata"]["annotations"][naming.ANNOTATION_SPEC_HASH])


@pytest.mark.parametrize(
    "changed",
    [
        {"image": "sandbox:2"},
        {"env": [{"name": "A", "value": "2"}]},
        {"command": ["/bin/other"]},
        {"resources": {"limits": {"cpu": "3"}}},
        {"securityContext": {"readOnlyRootFilesystem": True}},
        {"storage": {"mountPath": "/data"}},
        {"runtimeClassName": "gvisor"},
        {"nodeSelector": {"pool": "b"}},
    ],
    ids=lambda fields: next(iter(fields)),
)
def test_spec_hash_changes_with_the_pod_spec(changed: dict[str, Any]) -> None:
    assert _hash({"env": [{"name": "A", "value": "1"}], **changed}) != _hash({"env": [{"name": "A", "value": "1"}]})


@pytest.mark.parametrize(
    "unrelated",
    [
        {"lifecycle": {"suspend": True}},
        {"lifecycle": {"idleTimeoutSeconds": 120}},
        {"network": {"egress": "Internet", "allowDNS": True}},
        {"storage": {"size": "20Gi", "retainOnDelete": True}},
    ],
    ids=lambda fields: next(iter(fields)),
)
def test_spec_hash_ignores_what_does_not_need_a_new_pod(unrelated: dict[str, Any]) -> None:
    assert _hash(unrelated) == _hash({})


def test_spec_hash_is_stable() -> None:
    assert _hash({}) == _hash({})
    assert re.fullmatch(r"[0-9a-f]{16}", _hash({}))


@pytest.mark.parametrize(
    ("storage", "expected_spec"),
    [
        ({}, {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}),
        (
            {"size": "10Gi", "storageClassName": "fast-ssd", "accessModes": ["ReadWriteMany", "ReadOnlyMany"]},
            {
                "accessModes": ["ReadWriteMany", "ReadOnlyMany"],
                "resources": {"requests": {"storage": "10Gi"}},
                "storageClassName": "fast-ssd",
            },
        ),
        (
            {"size": "500Mi", "accessModes": ["ReadWriteOncePod"]},
            {"accessModes": ["ReadWriteOncePod"], "resources": {"requests": {"storage": "500Mi"}}},
        ),
    ],
)
def test_pvc_spec(storage: dict[str, Any], expected_spec: dict[str, Any]) -> None:
    pvc = build.build_pvc(OWNER, spec(storage=storage))
    assert pvc["apiVersion"] == "v1"
    assert pvc["kind"] == "PersistentVolumeClaim"
    assert pvc["spec"] == expected_spec
    assert pvc["metadata"]["name"] == naming.pvc_name("ws") == "ws-workspace"
    assert pvc["metadata"]["namespace"] == "team-a"


@pytest.mark.parametrize("retain", [False, True])
def test_pvc_retain_on_delete_orphans_and_labels(retain: bool) -> None:
    pvc = build.build_pvc(OWNER, spec(storage={"retainOnDelete": retain}))
    meta = pvc["metadata"]
    if retain:
        assert "ownerReferences" not in meta
        assert meta["labels"][naming.LABEL_RETAINED] == "true"
    else:
        assert meta["ownerReferences"][0]["uid"] == "uid-ws"
        assert meta["ownerReferences"][0]["controller"] is True
        assert naming.LABEL_RETAINED not in meta["labels"]
    assert meta["labels"][naming.LABEL_WORKSPACE] == "ws"


def test_service_account_mounts_no_token() -> None:
    account = build.build_service_account(OWNER)
    assert account["kind"] == "ServiceAccount"
    assert account["automountServiceAccountToken"] is False
    assert account["metadata"]["name"] == naming.service_account_name("ws")
    assert account["metadata"]["ownerReferences"][0]["uid"] == "uid-ws"
    assert set(account) == {"apiVersion", "kind", "metadata", "automountServiceAccountToken"}


def _policy(network: dict[str, Any], settings: OperatorSettings = SETTINGS) -> dict[str, Any]:
    return build.build_network_policy(OWNER, spec(network=network), settings)


DNS_RULE = {
    "to": [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ],
    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
}


@pytest.mark.parametrize(
    "network",
    [{}, {"egress": "None", "allowDNS": True}, {"egress": "Internet"}, {"egress": "Custom"}],
)
def test_network_policy_selects_only_this_pod_and_denies_ingress(network: dict[str, Any]) -> None:
    policy = _policy(network)
    assert policy["apiVersion"] == "networking.k8s.io/v1"
    assert policy["metadata"]["name"] == naming.network_policy_name("ws")
    assert policy["metadata"]["ownerReferences"][0]["uid"] == "uid-ws"
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector[naming.LABEL_WORKSPACE] == "ws"
    assert selector.items() <= pod_of(spec())["metadata"]["labels"].items()
    other_pod = build.build_pod(owner("ws2"), spec(), SETTINGS)
    assert not selector.items() <= other_pod["metadata"]["labels"].items()
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert policy["spec"]["ingress"] == []


@pytest.mark.parametrize(
    ("network", "expected_egress"),
    [
        ({}, []),
        ({"egress": "None"}, []),
        ({"egress": "None", "allowDNS": True}, [DNS_RULE]),
        ({"egress": "Custom"}, []),
        (
            {
                "egress": "Custom",
                "rules": [
                    {"cidr": "203.0.113.0/24", "exceptCIDRs": ["203.0.113.7/32"], "ports": [{"port": 443}]},
                    {"cidr": "198.51.100.10/32", "ports": [{"port": 53, "protocol": "UDP"}, {"port": 8080}]},
                    {"cidr": "2001:db8::/32"},
                ],
            },
            [
                {
                    "to": [{"ipBlock": {"cidr": "203.0.113.0/24", "except": ["203.0.113.7/32"]}}],
                    "ports": [{"protocol": "TCP", "port": 443}],
                },
                {
                    "to": [{"ipBlock": {"cidr": "198.51.100.10/32"}}],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 8080}],
                },
                {"to": [{"ipBlock": {"cidr": "2001:db8::/32"}}]},
            ],
        ),
        (
            {"egress": "Custom", "allowDNS": True, "rules": [{"cidr": "192.0.2.0/24"}]},
            [DNS_RULE, {"to": [{"ipBlock": {"cidr": "192.0.2.0/24"}}]}],
        ),
    ],
)
def test_egress_rules_exactly(network: dict[str, Any], expected_egress: list[dict[str, Any]]) -> None:
    assert _policy(network)["spec"]["egress"] == expected_egress


def test_dns_rule_follows_settings() -> None:
    settings = OperatorSettings(identity="t", dns_namespace="dns", dns_pod_label=("app", "coredns"))
    (rule,) = _policy({"allowDNS": True}, settings)["spec"]["egress"]
    assert rule["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "dns"}},
            "podSelector": {"matchLabels": {"app": "coredns"}},
        }
    ]
    assert {p["port"] for p in rule["ports"]} == {53}


def _internet_rule(policy: dict[str, Any]) -> tuple[list[str], list[str]]:
    rules = [r for r in policy["spec"]["egress"] if any("ipBlock" in peer for peer in r["to"])]
    assert len(rules) == 1
    (rule,) = rules
    assert "ports" not in rule  # every port, to public addresses
    blocks = {peer["ipBlock"]["cidr"]: peer["ipBlock"]["except"] for peer in rule["to"]}
    assert set(blocks) == {"0.0.0.0/0", "::/0"}
    return blocks["0.0.0.0/0"], blocks["::/0"]


@pytest.mark.parametrize(
    "cidr",
    [
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "10.244.0.0/16",
        "10.96.0.0/12",
    ],
)
def test_internet_egress_blocks_private_cgnat_link_local_and_cluster(cidr: str) -> None:
    v4, _ = _internet_rule(_policy({"egress": "Internet"}))
    assert cidr in v4


@pytest.mark.parametrize(
    ("address", "blocked"),
    [
        ("169.254.169.254", True),  # cloud metadata
        ("10.1.2.3", True),
        ("172.31.255.255", True),
        ("192.168.1.1", True),
        ("100.100.100.200", True),
        ("127.0.0.1", True),
        ("8.8.8.8", False),
        ("1.1.1.1", False),
        ("172.32.0.1", False),
        ("fd00::1", True),
        ("fe80::1", True),
        ("2606:4700::1111", False),
    ],
)
def test_internet_egress_by_address(address: str, blocked: bool) -> None:
    v4, v6 = _internet_rule(_policy({"egress": "Internet"}))
    ip = ipaddress.ip_address(address)
    excepts = v4 if ip.version == 4 else v6
    assert any(ip in ipaddress.ip_network(c) for c in excepts) is blocked


def test_internet_egress_blocks_configured_cluster_cidrs() -> None:
    settings = OperatorSettings(identity="t", cluster_cidrs=("172.30.0.0/16", "198.18.0.0/15", "fd10:96::/108"))
    v4, v6 = _internet_rule(_policy({"egress": "Internet"}, settings))
    assert {"172.30.0.0/16", "198.18.0.0/15"} <= set(v4)
    assert "fd10:96::/108" in v6
    assert "10.244.0.0/16" not in v4  # only the configured ranges
    # Every exception is a valid network inside its block, listed once, in a stable order.
    for block, excepts in (("0.0.0.0/0", v4), ("::/0", v6)):
        assert excepts == sorted(set(excepts))
        for cidr in excepts:
            assert ipaddress.ip_network(cidr).subnet_of(ipaddress.ip_network(block))  # type: ignore[arg-type]


@pytest.mark.parametrize(("allow_dns", "rule_count"), [(False, 1), (True, 2)])
def test_internet_egress_dns_only_when_allowed(allow_dns: bool, rule_count: int) -> None:
    egress = _policy({"egress": "Internet", "allowDNS": allow_dns})["spec"]["egress"]
    assert len(egress) == rule_count
    assert (DNS_RULE in egress) is allow_dns


def test_exec_role_grants_exec_into_this_pod_only() -> None:
    role = build.build_exec_role(OWNER)
    assert role["kind"] == "Role"
    assert role["apiVersion"] == "rbac.authorization.k8s.io/v1"
    assert role["metadata"]["name"] == naming.exec_role_name("ws")
    assert role["metadata"]["namespace"] == "team-a"
    grants = {(r["resources"][0], verb) for r in role["rules"] for verb in r["verbs"]}
    # get on pods/exec is what the apiserver checks for exec over WebSocket (a GET upgrade) before 1.35.
    assert grants == {("pods", "get"), ("pods/exec", "create"), ("pods/exec", "get")}
    for rule in role["rules"]:
        assert rule["apiGroups"] == [""]
        assert len(rule["resources"]) == 1
        assert rule["resourceNames"] == ["ws-sandbox"]
        assert "*" not in rule["verbs"]
        assert set(rule) == {"apiGroups", "resources", "resourceNames", "verbs"}


@pytest.mark.parametrize(
    "settings",
    [SETTINGS, OperatorSettings(identity="t", harness_service_account="h", harness_namespace="agents")],
)
def test_exec_role_binding_binds_only_the_harness(settings: OperatorSettings) -> None:
    binding = build.build_exec_role_binding(OWNER, settings)
    assert binding["kind"] == "RoleBinding"
    assert binding["metadata"]["name"] == naming.exec_role_name("ws")
    assert binding["metadata"]["namespace"] == "team-a"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": build.build_exec_role(OWNER)["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": settings.harness_service_account, "namespace": settings.harness_namespace}
    ]


def _children(name: str) -> list[dict[str, Any]]:
    ref = owner(name)
    workspace_spec = spec()
    return [
        build.build_pvc(ref, workspace_spec),
        build.build_service_account(ref),
        build.build_network_policy(ref, workspace_spec, SETTINGS),
        build.build_exec_role(ref),
        build.build_exec_role_binding(ref, SETTINGS),
        build.build_pod(ref, workspace_spec, SETTINGS),
    ]


@pytest.mark.parametrize(
    "name",
    ["ws", "a" * 63, "a" * 64, "x" * 253, "team.project-" + "b" * 200, "w-" + "9" * 80],
)
def test_children_names_and_labels_are_valid(name: str) -> None:
    for child in _children(name):
        meta = child["metadata"]
        assert len(meta["name"]) <= naming.MAX_NAME
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", meta["name"]), meta["name"]
        for key, value in meta["labels"].items():
            assert len(value) <= 63, key
            assert LABEL_VALUE.fullmatch(value), (key, value)
        assert meta["labels"][naming.LABEL_WORKSPACE] == naming.bounded(name)


def test_two_workspaces_never_share_children() -> None:
    names = ["ws", "ws2", "ws-sandbox", "a" * 250 + "x", "a" * 250 + "y"]
    seen: dict[tuple[str, str], str] = {}
    for name in names:
        for child in _children(name):
            key = (child["kind"], child["metadata"]["name"])
            assert key not in seen, (key, seen.get(key), name)
            seen[key] = name
