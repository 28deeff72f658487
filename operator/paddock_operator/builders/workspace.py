"""Desired children of an AgentWorkspace: PVC, ServiceAccount, NetworkPolicy, Role/RoleBinding, Pod."""

from __future__ import annotations

import shlex
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from .. import naming
from ..api.workspace import AgentWorkspaceSpec, EgressMode, ResourceList, Resources
from ..settings import OperatorSettings
from .common import OwnerRef, child_metadata

SANDBOX_CONTAINER = "sandbox"
TMP_VOLUME = "tmp"
WORKSPACE_VOLUME = "workspace"

# Private and special-purpose IPv4 ranges that egress "Internet" never reaches (RFC 1918, RFC 6598 CGNAT,
# RFC 3927 link-local: cloud metadata endpoints such as 169.254.169.254 live there, loopback, multicast
# and reserved space).
BLOCKED_FOR_INTERNET: tuple[str, ...] = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "127.0.0.0/8",
    "0.0.0.0/8",
    "224.0.0.0/4",
    "240.0.0.0/4",
)
BLOCKED_FOR_INTERNET_V6: tuple[str, ...] = ("fc00::/7", "fe80::/10", "::1/128", "ff00::/8")

# PID 1 of the default sandbox: exits promptly on SIGTERM (a bare `sleep` as PID 1 ignores it and every
# delete would wait out the grace period) and reaps the children of finished agent commands.
KEEP_ALIVE = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"]


def _merge_resources(user: Resources | None, defaults: Resources) -> dict[str, Any]:
    def merged(mine: ResourceList | None, fallback: ResourceList | None) -> dict[str, str]:
        out = (fallback or ResourceList()).model_dump(by_alias=True, exclude_none=True)
        out.update((mine or ResourceList()).model_dump(by_alias=True, exclude_none=True))
        return out

    requests = merged(user.requests if user else None, defaults.requests)
    limits = merged(user.limits if user else None, defaults.limits)
    # A default must not contradict a value the user set: the API rejects a pod whose request exceeds its
    # limit, so a user's limit below the default request lowers the request, and a user's request above
    # the default limit raises the limit.
    mine_requests = (user.requests if user and user.requests else ResourceList()).model_dump(
        by_alias=True, exclude_none=True
    )
    mine_limits = (user.limits if user and user.limits else ResourceList()).model_dump(by_alias=True, exclude_none=True)
    for resource in requests.keys() & limits.keys():
        try:
            too_high = parse_quantity(requests[resource]) > parse_quantity(limits[resource])
        except ValueError:
            continue  # not a quantity the client understands: the API server reports it
        if too_high and resource in mine_limits and resource not in mine_requests:
            requests[resource] = limits[resource]
        elif too_high and resource in mine_requests and resource not in mine_limits:
            limits[resource] = requests[resource]
    return {"requests": requests, "limits": limits}


def build_pvc(owner: OwnerRef, spec: AgentWorkspaceSpec) -> dict[str, Any]:
    """The workspace volume. With retainOnDelete it has no owner reference, so deleting the workspace keeps
    it (labelled paddock.dev/retained); a workspace of the same name later adopts it again."""
    storage = spec.storage
    labels = naming.workspace_labels(owner.name, "workspace-storage")
    if storage.retain_on_delete:
        labels[naming.LABEL_RETAINED] = "true"
    claim: dict[str, Any] = {
        "accessModes": list(storage.access_modes),
        "resources": {"requests": {"storage": storage.size}},
    }
    if storage.storage_class_name:
        claim["storageClassName"] = storage.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": child_metadata(owner, naming.pvc_name(owner.name), labels, owned=not storage.retain_on_delete),
        "spec": claim,
    }


def build_service_account(owner: OwnerRef) -> dict[str, Any]:
    """The sandbox's own identity: no token is mounted and no RBAC is bound to it."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": child_metadata(
            owner, naming.service_account_name(owner.name), naming.workspace_labels(owner.name, "sandbox")
        ),
        "automountServiceAccountToken": False,
    }


def _egress_rules(spec: AgentWorkspaceSpec, settings: OperatorSettings) -> list[dict[str, Any]]:
    network = spec.network
    rules: list[dict[str, Any]] = []
    if network.allow_dns:
        key, value = settings.dns_pod_label
        rules.append(
            {
                "to": [
                    {
                        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": settings.dns_namespace}},
                        "podSelector": {"matchLabels": {key: value}},
                    }
                ],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
            }
        )
    if network.egress == EgressMode.INTERNET:
        blocked_v4 = sorted(set(BLOCKED_FOR_INTERNET) | {c for c in settings.cluster_cidrs if ":" not in c})
        blocked_v6 = sorted(set(BLOCKED_FOR_INTERNET_V6) | {c for c in settings.cluster_cidrs if ":" in c})
        rules.append(
            {
                "to": [
                    {"ipBlock": {"cidr": "0.0.0.0/0", "except": blocked_v4}},
                    {"ipBlock": {"cidr": "::/0", "except": blocked_v6}},
                ]
            }
        )
    elif network.egress == EgressMode.CUSTOM:
        for rule in network.rules:
            peer: dict[str, Any] = {"cidr": rule.cidr}
            if rule.except_cidrs:
                peer["except"] = list(rule.except_cidrs)
            entry: dict[str, Any] = {"to": [{"ipBlock": peer}]}
            if rule.ports:
                entry["ports"] = [{"protocol": p.protocol, "port": p.port} for p in rule.ports]
            rules.append(entry)
    return rules


def build_network_policy(owner: OwnerRef, spec: AgentWorkspaceSpec, settings: OperatorSettings) -> dict[str, Any]:
    """Selects only this workspace's pod. Ingress: none at all (the harness reaches the sandbox through the
    API server's exec, never over the pod network). Egress: exactly what spec.network grants."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": child_metadata(
            owner, naming.network_policy_name(owner.name), naming.workspace_labels(owner.name, "network-policy")
        ),
        "spec": {
            "podSelector": {
                "matchLabels": {
                    naming.LABEL_WORKSPACE: naming.bounded(owner.name),
                    "app.kubernetes.io/component": "sandbox",
                }
            },
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": _egress_rules(spec, settings),
        },
    }


def build_exec_role(owner: OwnerRef) -> dict[str, Any]:
    """Lets its subject exec into this workspace's pod, and nothing else."""
    pod = naming.pod_name(owner.name)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": child_metadata(
            owner, naming.exec_role_name(owner.name), naming.workspace_labels(owner.name, "harness-access")
        ),
        "rules": [
            {"apiGroups": [""], "resources": ["pods"], "resourceNames": [pod], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["pods/exec"], "resourceNames": [pod], "verbs": ["create", "get"]},
        ],
    }


def build_exec_role_binding(owner: OwnerRef, settings: OperatorSettings) -> dict[str, Any]:
    name = naming.exec_role_name(owner.name)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": child_metadata(owner, name, naming.workspace_labels(owner.name, "harness-access")),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [
            {
                "kind": "ServiceAccount",
                "name": settings.harness_service_account,
                "namespace": settings.harness_namespace,
            }
        ],
    }


def _pod_spec(owner: OwnerRef, spec: AgentWorkspaceSpec, settings: OperatorSettings) -> dict[str, Any]:
    security = spec.security_context
    uid = security.run_as_user or settings.sandbox_uid
    gid = security.run_as_group or settings.sandbox_gid
    mount_path = spec.storage.mount_path
    container: dict[str, Any] = {
        "name": SANDBOX_CONTAINER,
        "image": spec.image,
        "command": list(spec.command) if spec.command is not None else list(KEEP_ALIVE),
        "workingDir": mount_path,
        "env": [{"name": e.name, "value": e.value} for e in spec.env],
        "resources": _merge_resources(spec.resources, settings.default_resources),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": uid,
            "runAsGroup": gid,
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": security.read_only_root_filesystem,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": WORKSPACE_VOLUME, "mountPath": mount_path},
            {"name": TMP_VOLUME, "mountPath": "/tmp"},
        ],
        # Ready means the agent can work: the workspace directory exists and is writable by the sandbox user.
        "readinessProbe": {
            "exec": {
                "command": ["/bin/sh", "-c", f"test -d {shlex.quote(mount_path)} -a -w {shlex.quote(mount_path)}"]
            },
            "periodSeconds": 2,
            "failureThreshold": 3,
            "timeoutSeconds": 5,
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if spec.args is not None:
        container["args"] = list(spec.args)
    if spec.image_pull_policy:
        container["imagePullPolicy"] = spec.image_pull_policy
    pod_spec: dict[str, Any] = {
        "serviceAccountName": naming.service_account_name(owner.name),
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostNetwork": False,
        "hostPID": False,
        "hostIPC": False,
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 5,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": uid,
            "runAsGroup": gid,
            "fsGroup": gid,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {"name": WORKSPACE_VOLUME, "persistentVolumeClaim": {"claimName": naming.pvc_name(owner.name)}},
            {"name": TMP_VOLUME, "emptyDir": {"sizeLimit": settings.tmp_size_limit}},
        ],
    }
    if spec.runtime_class_name:
        pod_spec["runtimeClassName"] = spec.runtime_class_name
    if spec.node_selector:
        pod_spec["nodeSelector"] = dict(spec.node_selector)
    if spec.tolerations:
        pod_spec["tolerations"] = [t.to_wire() for t in spec.tolerations]
    return pod_spec


def build_pod(owner: OwnerRef, spec: AgentWorkspaceSpec, settings: OperatorSettings) -> dict[str, Any]:
    """The sandbox pod. Its spec hash (an annotation) tells the reconciler when a spec change needs a new pod;
    the PVC, and so the workspace's data, outlives every pod."""
    pod_spec = _pod_spec(owner, spec, settings)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": child_metadata(
            owner,
            naming.pod_name(owner.name),
            naming.workspace_labels(owner.name, "sandbox"),
            annotations={naming.ANNOTATION_SPEC_HASH: naming.spec_hash(pod_spec)},
        ),
        "spec": pod_spec,
    }
