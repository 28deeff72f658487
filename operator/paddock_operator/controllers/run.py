"""Applies a run plan: the template workspace, resuming, status with optimistic concurrency, expiry."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from kubernetes.client.exceptions import ApiException

from .. import metrics
from ..api import API_VERSION
from ..reconcile.run import plan_run, workspace_of
from ..reconcile.timeutil import parse_time
from .kube import Kube

log = logging.getLogger("paddock.run")


def reconcile_run(kube: Kube, namespace: str, name: str) -> float | None:
    body = kube.get(API_VERSION, "AgentRun", namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return None
    workspace_name = workspace_of(body)
    workspace = kube.get(API_VERSION, "AgentWorkspace", namespace, workspace_name)
    siblings = [r for r in kube.list(API_VERSION, "AgentRun", namespace) if workspace_of(r) == workspace_name]
    now = datetime.now(UTC)
    plan = plan_run(body, workspace, siblings, now)

    if plan.delete_run:
        kube.delete(API_VERSION, "AgentRun", namespace, name, uid=body["metadata"]["uid"])
        log.info("deleted after ttlSecondsAfterFinished", extra={"namespace": namespace, "object": name})
        return None
    if plan.create_workspace is not None:
        kube.create(plan.create_workspace)
        log.info(
            "created workspace %s from the run's template",
            workspace_name,
            extra={"namespace": namespace, "object": name},
        )
    if plan.resume_workspace is not None:
        kube.patch_merge(
            API_VERSION, "AgentWorkspace", namespace, plan.resume_workspace, {"spec": {"lifecycle": {"suspend": False}}}
        )
    if plan.status is not None:
        try:
            kube.patch_merge(
                API_VERSION,
                "AgentRun",
                namespace,
                name,
                {"status": plan.status},
                subresource="status",
                resource_version=body["metadata"]["resourceVersion"],
            )
        except ApiException as error:
            if error.status == 409:
                return 0.5  # someone (the harness) wrote first: look again at the new state
            raise
    for event_type, reason, message in plan.events:
        kube.post_event(body, event_type, reason, message, "paddock-operator")
    if plan.transition is not None:
        old, new = plan.transition
        log.info("phase %s -> %s", old, new, extra={"namespace": namespace, "object": name})
        started = parse_time((body.get("status") or {}).get("startTime"))
        if new in ("Succeeded", "Failed", "Cancelled") and started is not None:
            metrics.RUN_DURATION_SECONDS.labels(new).observe((now - started).total_seconds())
    return plan.requeue_after
