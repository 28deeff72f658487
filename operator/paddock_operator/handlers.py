"""kopf wiring. Handlers only translate watch events into work-queue keys; reconcilers do the rest.

Deliberately no kopf daemons, timers or on.delete handlers on our resources: each of those puts a kopf
finalizer on every object, which blocks namespace deletion once the operator is gone. Owner references
remove children; the resync loop and delayed keys replace timers.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from . import naming
from .controllers.kube import Kube, load_api_client
from .controllers.manager import Manager
from .controllers.workspace import workspace_key_of_child
from .reconcile.run import workspace_of
from .settings import OperatorSettings, parse_args

GROUP = "paddock.dev"
CHILD_KINDS = (
    ("v1", "pods"),
    ("v1", "persistentvolumeclaims"),
    ("v1", "serviceaccounts"),
    ("networking.k8s.io/v1", "networkpolicies"),
    ("rbac.authorization.k8s.io/v1", "roles"),
    ("rbac.authorization.k8s.io/v1", "rolebindings"),
)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    settings.persistence.finalizer = "paddock.dev/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="paddock.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="paddock.dev", key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    settings.networking.request_timeout = 60
    settings.batching.worker_limit = 64
    operator_settings: OperatorSettings = memo.get("settings") or parse_args([])
    memo["settings"] = operator_settings
    # Exact namespace names need no cluster-wide namespace/CRD scanning; without this a namespaced
    # install (Roles only) retries forbidden cluster-scoped lists for about a minute before kopf falls back.
    if operator_settings.namespaces and not any(set(ns) & set("*?[]!") for ns in operator_settings.namespaces):
        settings.scanning.disabled = True
    kube = Kube(load_api_client())
    manager = Manager(kube, operator_settings)
    await manager.start()
    memo["manager"] = manager


@kopf.on.cleanup()
async def shutdown(memo: Any, **_: Any) -> None:
    manager: Manager | None = memo.get("manager")
    if manager is not None:
        await manager.stop()


@kopf.index(GROUP, "v1alpha1", "agentruns")
def runs_by_workspace(body: kopf.Body, namespace: str | None, name: str, **_: Any) -> dict[tuple[str, str], str]:
    return {(namespace or "", workspace_of(dict(body))): name}


@kopf.on.event(GROUP, "v1alpha1", "agentworkspaces")
def workspace_event(namespace: str | None, name: str, memo: Any, **kwargs: Any) -> None:
    assert namespace is not None  # a namespaced resource
    manager: Manager = memo["manager"]
    manager.enqueue("AgentWorkspace", namespace, name)
    for run in kwargs["runs_by_workspace"].get((namespace, name), []):
        manager.enqueue("AgentRun", namespace, run)


@kopf.on.event(GROUP, "v1alpha1", "agentruns")
def run_event(body: kopf.Body, namespace: str | None, name: str, memo: Any, **kwargs: Any) -> None:
    assert namespace is not None
    manager: Manager = memo["manager"]
    workspace = workspace_of(dict(body))
    manager.enqueue("AgentRun", namespace, name)
    manager.enqueue("AgentWorkspace", namespace, workspace)  # its idleness depends on its runs
    for sibling in kwargs["runs_by_workspace"].get((namespace, workspace), []):
        manager.enqueue("AgentRun", namespace, sibling)  # the queue moves when a run finishes


def _child_event(body: kopf.Body, namespace: str | None, memo: Any, **_: Any) -> None:
    workspace = workspace_key_of_child(dict(body))
    if workspace is not None and namespace is not None:
        memo["manager"].enqueue("AgentWorkspace", namespace, workspace)


for _api_version, _plural in CHILD_KINDS:
    _group, _, _version = _api_version.rpartition("/")
    kopf.on.event(_group, _version, _plural, labels={naming.LABEL_WORKSPACE: kopf.PRESENT})(_child_event)
