"""Condition types, reasons, and the pure merge that keeps lastTransitionTime honest."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from .reconcile.timeutil import format_time

# AgentWorkspace condition types.
STORAGE_READY: Final = "StorageReady"
POD_READY: Final = "PodReady"
NETWORK_POLICY_READY: Final = "NetworkPolicyReady"
READY: Final = "Ready"

# AgentRun condition types.
WORKSPACE_READY: Final = "WorkspaceReady"
FINISHED: Final = "Finished"


class Reason:
    """Every reason the operator writes. CamelCase, stable: tools may match on them."""

    # workspace
    BOUND: Final = "Bound"
    PVC_PENDING: Final = "PvcPending"
    PVC_LOST: Final = "PvcLost"
    CREATING: Final = "Creating"
    APPLIED: Final = "Applied"
    POD_RUNNING: Final = "PodRunning"
    POD_STARTING: Final = "PodStarting"
    IMAGE_PULL_FAILED: Final = "ImagePullFailed"
    CONTAINER_FAILING: Final = "ContainerFailing"
    UNSCHEDULABLE: Final = "Unschedulable"
    POD_NOT_READY: Final = "PodNotReady"
    POD_RECREATING: Final = "PodRecreating"
    SUSPENDED: Final = "Suspended"
    IDLE_TIMEOUT: Final = "IdleTimeout"
    TERMINATING: Final = "Terminating"
    READY: Final = "Ready"
    # run
    WORKSPACE_NOT_FOUND: Final = "WorkspaceNotFound"
    WORKSPACE_NOT_READY: Final = "WorkspaceNotReady"
    WORKSPACE_BUSY: Final = "WorkspaceBusy"
    WORKSPACE_RESUMING: Final = "WorkspaceResuming"
    WORKSPACE_FAILED: Final = "WorkspaceFailed"
    WORKSPACE_READY: Final = "WorkspaceReady"
    STARTED: Final = "Started"
    DEADLINE_EXCEEDED: Final = "DeadlineExceeded"
    CANCELLED: Final = "Cancelled"
    SUCCEEDED: Final = "Succeeded"


def make_condition(
    type_: str, status: bool | str, reason: str, message: str, now: datetime, generation: int | None
) -> dict[str, Any]:
    if isinstance(status, bool):
        status = "True" if status else "False"
    condition: dict[str, Any] = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": format_time(now),
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    return condition


def merge_conditions(existing: list[dict[str, Any]], desired: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Desired conditions, keeping each one's lastTransitionTime while its status is unchanged; conditions
    of other types (written by another controller) are kept as they are."""
    by_type = {c.get("type"): c for c in existing}
    merged: list[dict[str, Any]] = []
    for condition in desired:
        previous = by_type.pop(condition["type"], None)
        if previous is not None and previous.get("status") == condition["status"]:
            condition = {**condition, "lastTransitionTime": previous.get("lastTransitionTime")}
        merged.append(condition)
    merged.extend(by_type.values())
    return merged


def find(conditions: list[dict[str, Any]] | None, type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions or [] if c.get("type") == type_), None)


def is_true(conditions: list[dict[str, Any]] | None, type_: str) -> bool:
    condition = find(conditions, type_)
    return condition is not None and condition.get("status") == "True"
