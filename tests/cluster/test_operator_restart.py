"""Restarting the operator mid-reconcile changes nothing but the time it takes: no duplicates, all Ready."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from paddock_helpers import OperatorProcess, Paddock, wait_for, workspace_manifest

COUNT = 20
SMALL = {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}


@pytest.fixture
def own_namespace(core_v1: Any, crds: None) -> Iterator[str]:
    """A namespace outside the session operator's pattern: only this test's operators act in it."""
    name = f"paddock-restart-{uuid.uuid4().hex[:8]}"
    core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core_v1.delete_namespace(name, propagation_policy="Background")


def test_operator_restart_mid_reconcile(kube: Path, api_client: Any, own_namespace: str, tmp_path: Path) -> None:
    paddock = Paddock(api_client, own_namespace)
    operator = OperatorProcess(kube, [own_namespace], tmp_path / "operator.log")
    operator.start()
    try:
        for i in range(COUNT):
            # Small requests: twenty default-sized sandboxes do not fit on a 2-core test node.
            paddock.create(workspace_manifest(f"ws-{i:02d}", resources=SMALL))
        # Kill it hard while it is creating children, then start a fresh one.
        wait_for("some pods to exist", lambda: len(paddock.core.list_namespaced_pod(own_namespace).items) >= 3)
        operator.stop(kill=True)
        time.sleep(1)
        operator.start()

        def all_ready() -> bool:
            items = paddock.custom.list_namespaced_custom_object(
                "paddock.dev", "v1alpha1", own_namespace, "agentworkspaces"
            )["items"]
            return sum((i.get("status") or {}).get("phase") == "Ready" for i in items) == COUNT

        wait_for(f"all {COUNT} workspaces Ready", all_ready, timeout=240, interval=1)
    finally:
        operator.stop()
    pods = paddock.core.list_namespaced_pod(own_namespace).items
    assert sorted(p.metadata.name for p in pods) == [f"ws-{i:02d}-sandbox" for i in range(COUNT)]
    pvcs = paddock.core.list_namespaced_persistent_volume_claim(own_namespace).items
    assert len(pvcs) == COUNT
    policies = client.NetworkingV1Api(api_client).list_namespaced_network_policy(own_namespace).items
    assert len(policies) == COUNT
    assert "Traceback" not in operator.logs(), operator.logs()[-3000:]


def test_leader_election_lets_one_replica_reconcile(
    kube: Path, api_client: Any, own_namespace: str, tmp_path: Path
) -> None:
    """Two replicas with one Lease: only the holder acts; when it dies, the other takes over."""
    lease_args = ("--lease-namespace", own_namespace, "--lease-name", "paddock-test")
    first = OperatorProcess(kube, [own_namespace], tmp_path / "first.log", *lease_args)
    second = OperatorProcess(kube, [own_namespace], tmp_path / "second.log", *lease_args)
    for replica in (first, second):
        replica.leader_election = True
    paddock = Paddock(api_client, own_namespace)
    coordination = client.CoordinationV1Api(api_client)
    first.start()
    try:
        holder = wait_for("a leader", lambda: _holder(coordination, own_namespace))
        second.start()
        time.sleep(3)
        assert _holder(coordination, own_namespace) == holder
        paddock.create(workspace_manifest("led"))
        paddock.wait_workspace_phase("led", "Ready", timeout=60)
        first.stop(kill=True)  # no release: the second must wait out the lease, then take over
        wait_for(
            "the second replica to lead",
            lambda: (h := _holder(coordination, own_namespace)) and h != holder,
            timeout=60,
        )
        paddock.core.delete_namespaced_pod("led-sandbox", own_namespace, grace_period_seconds=0)
        paddock.wait_workspace_phase("led", "Ready", timeout=60)
        wait_for("the pod to come back", lambda: paddock.pod("led-sandbox") is not None, timeout=60)
    finally:
        first.stop()
        second.stop()
    assert "became the leader" in second.logs()


def _holder(coordination: Any, namespace: str) -> str | None:
    try:
        lease = coordination.read_namespaced_lease("paddock-test", namespace)
    except client.exceptions.ApiException:
        return None
    holder: str | None = lease.spec.holder_identity
    return holder
