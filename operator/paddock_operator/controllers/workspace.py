"""Applies a workspace plan: children, the pod, status, events."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import partial
from typing import Any

from .. import metrics, naming
from ..api import API_VERSION
from ..reconcile.run import workspace_of
from ..reconcile.timeutil import parse_time
from ..reconcile.workspace import Observed, PodAction, plan_workspace
from ..settings import OperatorSettings
from .kube import Kube

log = logging.getLogger("paddock.workspace")
STATUS_KEYS = ("phase", "conditions", "podName", "pvcName", "observedGeneration", "message")


def _busy(kube: Kube, namespace: str, workspace: str) -> bool:
    for run in kube.list(API_VERSION, "AgentRun", namespace):
        phase = (run.get("status") or {}).get("phase")
        if workspace_of(run) == workspace and phase not in ("Succeeded", "Failed", "Cancelled"):
            return True
    return False


def reconcile_workspace(kube: Kube, settings: OperatorSettings, namespace: str, name: str) -> float | None:
    body = kube.get(API_VERSION, "AgentWorkspace", namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return None  # owner references take the children away
    pvc, pod, network_policy, busy = kube.gather(
        lambda: kube.get("v1", "PersistentVolumeClaim", namespace, naming.pvc_name(name)),
        lambda: kube.get("v1", "Pod", namespace, naming.pod_name(name)),
        lambda: kube.get("networking.k8s.io/v1", "NetworkPolicy", namespace, naming.network_policy_name(name)),
        lambda: _busy(kube, namespace, name),
    )
    observed = Observed(pvc=pvc, pod=pod, network_policy=network_policy, busy=bool(busy))
    now = datetime.now(UTC)
    plan = plan_workspace(body, observed, now, settings)
    for event_type, reason, message in plan.events:
        kube.post_event(body, event_type, reason, message, "paddock-operator")
    if plan.delete_workspace:
        kube.delete(API_VERSION, "AgentWorkspace", namespace, name, uid=body["metadata"]["uid"])
        log.info("deleted workspace at its shutdownTime", extra={"namespace": namespace, "object": name})
        return None

    kube.gather(*(partial(kube.apply, child) for child in plan.apply))
    if plan.pod_action is PodAction.CREATE and plan.pod is not None:
        kube.create(plan.pod)
        log.info("created sandbox pod", extra={"namespace": namespace, "object": name})
    elif plan.pod_action is PodAction.DELETE and observed.pod is not None:
        kube.delete("v1", "Pod", namespace, observed.pod["metadata"]["name"], uid=observed.pod["metadata"]["uid"])
        log.info("deleted sandbox pod (%s)", plan.pod_delete_reason, extra={"namespace": namespace, "object": name})

    previous = body.get("status") or {}
    if any(previous.get(key) != plan.status.get(key) for key in STATUS_KEYS):
        kube.patch_merge(API_VERSION, "AgentWorkspace", namespace, name, {"status": plan.status}, subresource="status")
        if plan.status["phase"] != previous.get("phase"):
            log.info(
                "phase %s -> %s",
                previous.get("phase"),
                plan.status["phase"],
                extra={"namespace": namespace, "object": name},
            )
            if plan.status["phase"] == "Ready" and previous.get("phase") != "Ready":
                created = parse_time(body["metadata"].get("creationTimestamp"))
                if created is not None and previous.get("phase") in (None, "Pending"):
                    metrics.WORKSPACE_READY_SECONDS.observe((now - created).total_seconds())
    if plan.pod_action is not PodAction.NONE or plan.status["phase"] == "Pending":
        # Pod and PVC events re-queue us; this is a safety net for changes that raise no event.
        return min(plan.requeue_after or 10.0, 10.0)
    return plan.requeue_after


def workspace_key_of_child(body: dict[str, Any]) -> str | None:
    """Which workspace a child object (pod, PVC, ...) belongs to, from its controller owner reference."""
    for ref in body.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("kind") == "AgentWorkspace" and ref.get("apiVersion", "").startswith("paddock.dev/"):
            return str(ref["name"])
    return None
