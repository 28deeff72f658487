"""The cluster can do what Paddock relies on: run sandbox pods, exec into them, give them
persistent volumes, and let them reach the API server through the `kubernetes` Service."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# The `kubectl` fixture of conftest.py: kubectl(*args, input=None, check=True, timeout=120).
Kubectl = Callable[..., subprocess.CompletedProcess[str]]

POD_TIMEOUT_S = 120


def sandbox_image() -> str:
    """The sandbox image ref: PADDOCK_SANDBOX_IMAGE, else the last one images/build.sh built."""
    ref = os.environ.get("PADDOCK_SANDBOX_IMAGE")
    if ref:
        return ref
    cache = os.environ.get("PADDOCK_IMAGE_CACHE") or str(
        Path(os.environ.get("PADDOCK_CACHE") or Path.home() / ".cache" / "paddock") / "images"
    )
    refs = Path(cache) / "refs.env"
    if refs.is_file():
        for line in refs.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "SANDBOX_IMAGE" and value.strip():
                return value.strip().strip("\"'")
    pytest.fail(f"no sandbox image: set PADDOCK_SANDBOX_IMAGE or build it with images/build.sh ({refs} missing)")


def pod_manifest(
    name: str,
    *,
    volumes: list[dict[str, Any]] | None = None,
    mounts: list[dict[str, Any]] | None = None,
    run_as_root: bool = False,
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "main",
        "image": sandbox_image(),
        # No registry anywhere: images are imported into the node's containerd.
        "imagePullPolicy": "Never",
        "command": ["sleep", "infinity"],
        "volumeMounts": mounts or [],
    }
    if run_as_root:
        container["securityContext"] = {"runAsUser": 0, "runAsGroup": 0}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [container],
            "volumes": volumes or [],
            "terminationGracePeriodSeconds": 1,
            "automountServiceAccountToken": True,
        },
    }


def run_pod(kubectl: Kubectl, core_v1: Any, namespace: str, manifest: dict[str, Any]) -> None:
    """Creates the pod and waits until it is Running, with its events on failure."""
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))
    name = manifest["metadata"]["name"]
    deadline = time.monotonic() + POD_TIMEOUT_S
    phase = "?"
    while time.monotonic() < deadline:
        pod = core_v1.read_namespaced_pod(name, namespace)
        phase = pod.status.phase
        if phase == "Running":
            return
        if phase in ("Failed", "Succeeded"):
            break
        time.sleep(0.5)
    events = kubectl("get", "events", "-n", namespace, "--sort-by=.lastTimestamp", check=False).stdout
    describe = kubectl("describe", "pod", "-n", namespace, name, check=False).stdout
    pytest.fail(f"pod {name} not Running (phase {phase}) after {POD_TIMEOUT_S}s\n{describe}\n{events}")


def test_sandbox_pod_exec_output_and_exit_codes(kubectl: Kubectl, core_v1: Any, namespace: str) -> None:
    run_pod(kubectl, core_v1, namespace, pod_manifest("sandbox"))

    ok = kubectl("exec", "-n", namespace, "sandbox", "--", "bash", "-c", "echo hello from $(uname -s); id -un")
    assert ok.returncode == 0
    assert ok.stdout.splitlines()[0] == "hello from Linux"

    failed = kubectl("exec", "-n", namespace, "sandbox", "--", "bash", "-c", "echo to-stderr >&2; exit 7", check=False)
    assert failed.returncode == 7
    assert "to-stderr" in failed.stderr

    # What the agents' tools need is in the image.
    check_tools = "for t in python3 git tar find grep sed awk sudo; do command -v $t >/dev/null || echo no $t; done"
    tools = kubectl("exec", "-n", namespace, "sandbox", "--", "bash", "-c", check_tools)
    assert tools.stdout == ""


def test_pvc_binds_and_is_writable(kubectl: Kubectl, core_v1: Any, namespace: str) -> None:
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "16Mi"}}},
    }
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(pvc))
    deadline = time.monotonic() + 60
    while core_v1.read_namespaced_persistent_volume_claim("data", namespace).status.phase != "Bound":
        assert time.monotonic() < deadline, "PVC did not bind through the default StorageClass within 60 s"
        time.sleep(0.5)

    # The hostpath provisioner creates root-owned 0750 directories: write as root.
    manifest = pod_manifest(
        "writer",
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
        mounts=[{"name": "data", "mountPath": "/data"}],
        run_as_root=True,
    )
    run_pod(kubectl, core_v1, namespace, manifest)
    kubectl("exec", "-n", namespace, "writer", "--", "bash", "-c", "echo persisted > /data/file && sync")
    read = kubectl("exec", "-n", namespace, "writer", "--", "cat", "/data/file")
    assert read.stdout == "persisted\n"

    # The data outlives the pod: a second pod on the same claim sees it.
    kubectl("delete", "pod", "-n", namespace, "writer", "--wait=true", "--timeout=60s")
    manifest["metadata"]["name"] = "reader"
    run_pod(kubectl, core_v1, namespace, manifest)
    assert kubectl("exec", "-n", namespace, "reader", "--", "cat", "/data/file").stdout == "persisted\n"


REACH_APISERVER = r"""
import json, os, ssl, urllib.request
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
ctx = ssl.create_default_context(cafile=sa + "/ca.crt")
ctx.check_hostname = False  # the Service IP is in the serving cert, but not as a hostname
token = open(sa + "/token").read()
req = urllib.request.Request(f"https://{host}:{port}/version", headers={"Authorization": "Bearer " + token})
with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
    print(json.dumps({"host": host, "port": port, "version": json.load(resp)["gitVersion"]}))
"""


def test_pod_reaches_apiserver_through_kubernetes_service(kubectl: Kubectl, core_v1: Any, namespace: str) -> None:
    run_pod(kubectl, core_v1, namespace, pod_manifest("client"))
    result = kubectl("exec", "-n", namespace, "client", "--", "python3", "-c", REACH_APISERVER)
    seen = json.loads(result.stdout)

    service = core_v1.read_namespaced_service("kubernetes", "default")
    assert seen["host"] == service.spec.cluster_ip
    assert seen["port"] == str(service.spec.ports[0].port)
    server_version = kubectl("version", "-o", "json").stdout
    assert seen["version"] == json.loads(server_version)["serverVersion"]["gitVersion"]


def test_namespace_fixture_gives_a_fresh_namespace(core_v1: Any, namespace: str) -> None:
    assert core_v1.read_namespace(namespace).status.phase == "Active"
    assert core_v1.list_namespaced_pod(namespace).items == []


def can_connect(kubectl: Kubectl, namespace: str, pod: str, ip: str, port: int) -> bool:
    probe = f"exec 3<>/dev/tcp/{ip}/{port}"
    return kubectl("exec", "-n", namespace, pod, "--", "timeout", "2", "bash", "-c", probe, check=False).returncode == 0


def wait_connectivity(kubectl: Kubectl, namespace: str, ip: str, expected: bool) -> None:
    """Policies apply asynchronously: poll until the client sees `expected`."""
    deadline = time.monotonic() + 30
    while can_connect(kubectl, namespace, "client", ip, 8080) != expected:
        assert time.monotonic() < deadline, f"client -> {ip}:8080 still {'blocked' if expected else 'open'} after 30 s"
        time.sleep(1)


def test_network_policy_is_enforced(kubectl: Kubectl, core_v1: Any, namespace: str) -> None:
    server = pod_manifest("server")
    server["metadata"]["labels"] = {"app": "server"}
    server["spec"]["containers"][0]["command"] = ["python3", "-m", "http.server", "8080"]
    client = pod_manifest("client")
    client["metadata"]["labels"] = {"app": "client"}
    run_pod(kubectl, core_v1, namespace, server)
    run_pod(kubectl, core_v1, namespace, client)
    server_ip = core_v1.read_namespaced_pod("server", namespace).status.pod_ip
    wait_connectivity(kubectl, namespace, server_ip, expected=True)

    spec: dict[str, Any] = {"podSelector": {"matchLabels": {"app": "client"}}, "policyTypes": ["Egress"]}
    deny_egress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "client-egress"},
        "spec": spec,
    }
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(deny_egress))
    wait_connectivity(kubectl, namespace, server_ip, expected=False)

    spec["egress"] = [
        {"to": [{"podSelector": {"matchLabels": {"app": "server"}}}], "ports": [{"port": 8080, "protocol": "TCP"}]}
    ]
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(deny_egress))
    wait_connectivity(kubectl, namespace, server_ip, expected=True)
