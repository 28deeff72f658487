"""The operator turns AgentWorkspaces into locked-down sandboxes, on a real cluster with real pods."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from paddock_helpers import REPO, Paddock, condition, sandbox_image, wait_for, workspace_manifest


def exec_in(kubectl: Any, namespace: str, pod: str, script: str, check: bool = True) -> Any:
    return kubectl("exec", "-n", namespace, pod, "-c", "sandbox", "--", "sh", "-c", script, check=check)


def test_example_workspace_is_ready_and_locked_down(paddock: Paddock, kubectl: Any) -> None:
    manifest = yaml.safe_load((REPO / "examples" / "workspace.yaml").read_text())
    manifest["spec"]["image"] = sandbox_image()
    started = time.monotonic()
    paddock.create(manifest)
    ws = paddock.wait_workspace_phase("demo", "Ready", timeout=30)
    print(f"workspace Ready after {time.monotonic() - started:.1f}s")
    status = ws["status"]
    for type_ in ("StorageReady", "PodReady", "NetworkPolicyReady", "Ready"):
        assert (condition(ws, type_) or {}).get("status") == "True", type_
        assert condition(ws, type_)["observedGeneration"] == ws["metadata"]["generation"]
    assert status["podName"] == "demo-sandbox"
    assert status["pvcName"] == "demo-workspace"

    ns = paddock.namespace
    pod = paddock.pod("demo-sandbox")
    assert pod.spec.automount_service_account_token is False
    assert pod.spec.enable_service_links is False
    assert pod.spec.security_context.run_as_non_root is True
    container = pod.spec.containers[0]
    assert container.security_context.allow_privilege_escalation is False
    assert container.security_context.capabilities.drop == ["ALL"]
    assert all(v.secret is None and v.projected is None for v in pod.spec.volumes)
    assert all(e.value_from is None for e in container.env or [])
    assert pod.metadata.owner_references[0].kind == "AgentWorkspace"

    assert exec_in(kubectl, ns, "demo-sandbox", "id -u").stdout.strip() == "1000"
    no_token = exec_in(kubectl, ns, "demo-sandbox", "ls /var/run/secrets/kubernetes.io", check=False)
    assert no_token.returncode != 0, no_token.stdout
    exec_in(kubectl, ns, "demo-sandbox", "echo data > /workspace/probe && cat /workspace/probe")
    mounts = exec_in(kubectl, ns, "demo-sandbox", "grep ' /workspace ' /proc/mounts").stdout
    assert "/workspace" in mounts

    rbac = client.RbacAuthorizationV1Api(paddock.core.api_client)
    role = rbac.read_namespaced_role("demo-harness-exec", ns)
    assert {tuple(r.resource_names) for r in role.rules} == {("demo-sandbox",)}
    assert sorted(r.resources[0] for r in role.rules) == ["pods", "pods/exec"]
    binding = rbac.read_namespaced_role_binding("demo-harness-exec", ns)
    assert [s.name for s in binding.subjects] == ["paddock-harness"]
    sa = paddock.core.read_namespaced_service_account("demo-sandbox", ns)
    assert sa.automount_service_account_token is False


def _egress(api_client: Any, namespace: str, name: str) -> list[dict[str, Any]]:
    networking = client.NetworkingV1Api(api_client)
    policy = wait_for(
        f"networkpolicy {name}-sandbox",
        lambda: _read_or_none(lambda: networking.read_namespaced_network_policy(f"{name}-sandbox", namespace)),
    )
    spec = api_client.sanitize_for_serialization(policy.spec)
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec.get("ingress", []) == []
    assert spec["podSelector"]["matchLabels"]["paddock.dev/workspace"] == name
    egress: list[dict[str, Any]] = spec.get("egress") or []
    return egress


def _read_or_none(read: Any) -> Any:
    try:
        return read()
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def test_network_policy_per_egress_mode(paddock: Paddock) -> None:
    paddock.create(workspace_manifest("closed"))
    paddock.create(workspace_manifest("dns", network={"allowDNS": True}))
    paddock.create(workspace_manifest("web", network={"egress": "Internet"}))
    rules = [{"cidr": "203.0.113.0/24", "ports": [{"port": 443}]}]
    paddock.create(workspace_manifest("custom", network={"egress": "Custom", "rules": rules}))
    api = paddock.core.api_client

    assert _egress(api, paddock.namespace, "closed") == []
    dns = _egress(api, paddock.namespace, "dns")
    assert len(dns) == 1
    assert {p["port"] for p in dns[0]["ports"]} == {53}
    web = _egress(api, paddock.namespace, "web")
    v4 = next(peer["ipBlock"] for peer in web[0]["to"] if peer["ipBlock"]["cidr"] == "0.0.0.0/0")
    for blocked in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16"):
        assert blocked in v4["except"]
    custom = _egress(api, paddock.namespace, "custom")
    assert custom == [{"to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}], "ports": [{"protocol": "TCP", "port": 443}]}]


def test_deleted_children_come_back(paddock: Paddock) -> None:
    paddock.create(workspace_manifest("heal"))
    paddock.wait_workspace_phase("heal", "Ready")
    ns, api = paddock.namespace, paddock.core.api_client
    old_uid = paddock.pod("heal-sandbox").metadata.uid
    paddock.core.delete_namespaced_pod("heal-sandbox", ns, grace_period_seconds=0)
    networking = client.NetworkingV1Api(api)
    rbac = client.RbacAuthorizationV1Api(api)
    networking.delete_namespaced_network_policy("heal-sandbox", ns)
    rbac.delete_namespaced_role("heal-harness-exec", ns)
    wait_for("a new pod", lambda: (p := paddock.pod("heal-sandbox")) is not None and p.metadata.uid != old_uid)
    wait_for(
        "the network policy",
        lambda: _read_or_none(lambda: networking.read_namespaced_network_policy("heal-sandbox", ns)),
    )
    wait_for("the role", lambda: _read_or_none(lambda: rbac.read_namespaced_role("heal-harness-exec", ns)))
    paddock.wait_workspace_phase("heal", "Ready")


def test_image_change_recreates_pod_and_keeps_data(paddock: Paddock, kubectl: Any) -> None:
    paddock.create(workspace_manifest("drift"))
    paddock.wait_workspace_phase("drift", "Ready")
    ns = paddock.namespace
    exec_in(kubectl, ns, "drift-sandbox", "echo kept > /workspace/file")
    old_uid = paddock.pod("drift-sandbox").metadata.uid
    other_tag = "localhost/paddock/sandbox:dev" if sandbox_image() != "localhost/paddock/sandbox:dev" else None
    if other_tag is None:
        pytest.skip("needs a second tag of the sandbox image")
    paddock.patch("agentworkspaces", "drift", {"spec": {"image": other_tag}})
    wait_for(
        "the pod to be recreated",
        lambda: (
            (p := paddock.pod("drift-sandbox")) is not None
            and p.metadata.uid != old_uid
            and p.spec.containers[0].image == other_tag
        ),
        timeout=60,
    )
    paddock.wait_workspace_phase("drift", "Ready")
    assert exec_in(kubectl, ns, "drift-sandbox", "cat /workspace/file").stdout.strip() == "kept"


def test_suspend_keeps_the_volume_and_resume_brings_the_data_back(paddock: Paddock, kubectl: Any) -> None:
    paddock.create(workspace_manifest("nap"))
    paddock.wait_workspace_phase("nap", "Ready")
    ns = paddock.namespace
    exec_in(kubectl, ns, "nap-sandbox", "echo still-here > /workspace/note")
    paddock.patch("agentworkspaces", "nap", {"spec": {"lifecycle": {"suspend": True}}})
    paddock.wait_workspace_phase("nap", "Suspended")
    wait_for("the pod to go", lambda: paddock.pod("nap-sandbox") is None, timeout=60)
    assert paddock.core.read_namespaced_persistent_volume_claim("nap-workspace", ns).status.phase == "Bound"
    paddock.patch("agentworkspaces", "nap", {"spec": {"lifecycle": {"suspend": False}}})
    paddock.wait_workspace_phase("nap", "Ready")
    assert exec_in(kubectl, ns, "nap-sandbox", "cat /workspace/note").stdout.strip() == "still-here"


def test_unpullable_image_fails_with_a_readable_message(paddock: Paddock) -> None:
    paddock.create(workspace_manifest("broken", image="localhost/paddock/does-not-exist:1", imagePullPolicy="Never"))
    ws = paddock.wait_workspace_phase("broken", "Failed", timeout=60)
    assert "does-not-exist" in ws["status"]["message"]
    assert condition(ws, "PodReady")["reason"] == "ImagePullFailed"


def test_deletion_keeps_only_retained_volumes(paddock: Paddock) -> None:
    paddock.create(workspace_manifest("keep", storage={"retainOnDelete": True}))
    paddock.create(workspace_manifest("drop"))
    paddock.wait_workspace_phase("keep", "Ready")
    paddock.wait_workspace_phase("drop", "Ready")
    paddock.delete("agentworkspaces", "keep")
    paddock.delete("agentworkspaces", "drop")
    ns = paddock.namespace
    wait_for(
        "the pods to go",
        lambda: paddock.pod("keep-sandbox") is None and paddock.pod("drop-sandbox") is None,
        timeout=60,
    )
    wait_for(
        "the unretained PVC to go",
        lambda: (
            _read_or_none(lambda: paddock.core.read_namespaced_persistent_volume_claim("drop-workspace", ns)) is None
        ),
        timeout=60,
    )
    kept = paddock.core.read_namespaced_persistent_volume_claim("keep-workspace", ns)
    assert kept.metadata.labels["paddock.dev/retained"] == "true"
    assert not kept.metadata.owner_references


def test_shutdown_time_deletes_the_workspace(paddock: Paddock) -> None:
    when = (datetime.now(UTC) + timedelta(seconds=4)).isoformat(timespec="seconds").replace("+00:00", "Z")
    paddock.create(workspace_manifest("shortlived", lifecycle={"shutdownTime": when}))
    wait_for("the workspace to be deleted", lambda: paddock.workspace("shortlived") is None, timeout=30)


def test_idle_workspace_is_suspended_and_a_new_run_wakes_it(paddock: Paddock) -> None:
    """idleTimeoutSeconds (60 s at least) suspends through status only; a run needing the workspace resumes it."""
    paddock.create(workspace_manifest("sleepy", lifecycle={"idleTimeoutSeconds": 60}))
    paddock.wait_workspace_phase("sleepy", "Ready", timeout=60)
    ws = paddock.wait_workspace_phase("sleepy", "Suspended", timeout=150)
    assert condition(ws, "PodReady")["reason"] == "IdleTimeout"
    assert ws["spec"]["lifecycle"]["suspend"] is False  # the operator never writes the spec
    wait_for("the idle pod to go", lambda: paddock.pod("sleepy-sandbox") is None, timeout=60)
    paddock.create(
        {
            "apiVersion": "paddock.dev/v1alpha1",
            "kind": "AgentRun",
            "metadata": {"name": "wake"},
            "spec": {"workspaceRef": {"name": "sleepy"}, "prompt": "wake up"},
        }
    )
    paddock.wait_workspace_phase("sleepy", "Ready", timeout=90)
    paddock.wait_run_phase("wake", "Running", timeout=60)
