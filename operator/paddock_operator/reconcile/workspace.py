"""What an AgentWorkspace needs now: children to apply, what to do with the pod, and its status."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from .. import conditions as cond
from .. import naming
from ..api.workspace import AgentWorkspace, WorkspacePhase
from ..builders import workspace as build
from ..builders.common import OwnerRef
from ..conditions import Reason
from ..settings import OperatorSettings
from .timeutil import format_time, parse_time

# Waiting reasons that will not fix themselves soon: the workspace is Failed until the spec changes.
IMAGE_PULL_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
CONTAINER_FAILURE_REASONS = frozenset(
    {"CrashLoopBackOff", "CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
)


class PodAction(Enum):
    NONE = "none"
    CREATE = "create"
    DELETE = "delete"


@dataclass(frozen=True)
class Observed:
    """Children as they are now (None when absent)."""

    pvc: dict[str, Any] | None = None
    pod: dict[str, Any] | None = None
    network_policy: dict[str, Any] | None = None
    busy: bool = False
    """A run that is not finished uses this workspace: it is not idle."""


@dataclass
class WorkspacePlan:
    apply: list[dict[str, Any]] = field(default_factory=list)
    pod_action: PodAction = PodAction.NONE
    pod: dict[str, Any] | None = None
    pod_delete_reason: str = ""
    status: dict[str, Any] = field(default_factory=dict)
    delete_workspace: bool = False
    requeue_after: float | None = None
    events: list[tuple[str, str, str]] = field(default_factory=list)


def _pod_is_ready(pod: dict[str, Any]) -> bool:
    return cond.is_true(pod.get("status", {}).get("conditions"), "Ready")


def _pod_problem(pod: dict[str, Any]) -> tuple[str, str, bool] | None:
    """(reason, message, permanent) for a pod that cannot become ready, else None."""
    status = pod.get("status", {})
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return Reason.UNSCHEDULABLE, condition.get("message") or "the pod cannot be scheduled", False
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason", "")
        message = waiting.get("message") or reason
        if reason in IMAGE_PULL_REASONS:
            return Reason.IMAGE_PULL_FAILED, f"image {container.get('image')!r} cannot be pulled: {message}", True
        if reason in CONTAINER_FAILURE_REASONS:
            return Reason.CONTAINER_FAILING, f"the sandbox container keeps failing: {message}", True
    return None


def _activity_baseline(ws: AgentWorkspace, observed: Observed) -> datetime | None:
    """The later of the last command the harness ran and the moment the pod became ready."""
    times = []
    if ws.status and ws.status.last_activity_time:
        times.append(parse_time(ws.status.last_activity_time))
    if ws.status:
        pod_ready = cond.find([c.to_wire() for c in ws.status.conditions], cond.POD_READY)
        if pod_ready and pod_ready.get("status") == "True":
            times.append(parse_time(pod_ready.get("lastTransitionTime")))
    known = [t for t in times if t is not None]
    return max(known) if known else None


def _idle_deadline(ws: AgentWorkspace, observed: Observed) -> datetime | None:
    timeout = ws.spec.lifecycle.idle_timeout_seconds
    if timeout is None or observed.busy:
        return None
    # Idleness counts only while the pod is ready: a pod coming back from spec.lifecycle.suspend would
    # otherwise be suspended again at once by a lastActivityTime older than the timeout.
    if not cond.is_true([c.to_wire() for c in ws.status.conditions] if ws.status else [], cond.POD_READY):
        return None
    baseline = _activity_baseline(ws, observed)
    return baseline + timedelta(seconds=timeout) if baseline else None


def _still_idle_suspended(ws: AgentWorkspace) -> bool:
    """Suspended for idleness, and no activity since: the harness wakes a workspace by writing
    status.lastActivityTime, a run by needing it (Observed.busy)."""
    if not ws.status:
        return False
    pod_ready = cond.find([c.to_wire() for c in ws.status.conditions], cond.POD_READY)
    if pod_ready is None or pod_ready.get("reason") != Reason.IDLE_TIMEOUT:
        return False
    suspended_at = parse_time(pod_ready.get("lastTransitionTime"))
    last_activity = parse_time(ws.status.last_activity_time)
    return last_activity is None or suspended_at is None or last_activity <= suspended_at


def plan_workspace(
    body: dict[str, Any], observed: Observed, now: datetime, settings: OperatorSettings
) -> WorkspacePlan:
    ws = AgentWorkspace.model_validate(body)
    owner = OwnerRef.of(body)
    generation = body["metadata"].get("generation")
    plan = WorkspacePlan()
    deadlines: list[datetime] = []

    shutdown = parse_time(ws.spec.lifecycle.shutdown_time)
    if shutdown is not None:
        if now >= shutdown:
            plan.delete_workspace = True
            plan.events.append(("Normal", "ShutdownTime", f"shutdownTime {format_time(shutdown)} reached"))
            return plan
        deadlines.append(shutdown)

    plan.apply = [
        build.build_service_account(owner),
        build.build_pvc(owner, ws.spec),
        build.build_network_policy(owner, ws.spec, settings),
        build.build_exec_role(owner),
        build.build_exec_role_binding(owner, settings),
    ]
    desired_pod = build.build_pod(owner, ws.spec, settings)

    # Suspension: asked for in the spec, or reached by idling (recorded in status only: a controller never
    # writes the spec). Idle suspension ends when activity appears again (a run, or the harness).
    idle_deadline = _idle_deadline(ws, observed)
    if idle_deadline is None:
        # No baseline left (the pod's readiness no longer counts once suspended): stay idle until activity.
        idle = ws.spec.lifecycle.idle_timeout_seconds is not None and not observed.busy and _still_idle_suspended(ws)
    else:
        idle = now >= idle_deadline
    suspended_reason = Reason.SUSPENDED if ws.spec.lifecycle.suspend else Reason.IDLE_TIMEOUT if idle else None
    if idle_deadline is not None and not idle:
        deadlines.append(idle_deadline)

    pod = observed.pod
    pod_condition: dict[str, Any]
    permanent_failure = False
    if suspended_reason is not None:
        if pod is not None:
            plan.pod_action = PodAction.DELETE
            plan.pod_delete_reason = suspended_reason
            plan.events.append(("Normal", suspended_reason, "suspending: the sandbox pod is deleted, the volume kept"))
        message = (
            "suspended by spec.lifecycle.suspend"
            if suspended_reason == Reason.SUSPENDED
            else ("suspended after idleTimeoutSeconds without activity; a new run resumes it")
        )
        pod_condition = cond.make_condition(cond.POD_READY, False, suspended_reason, message, now, generation)
    elif pod is None:
        plan.pod_action = PodAction.CREATE
        plan.pod = desired_pod
        pod_condition = cond.make_condition(
            cond.POD_READY, False, Reason.CREATING, "creating the sandbox pod", now, generation
        )
    elif pod["metadata"].get("deletionTimestamp"):
        pod_condition = cond.make_condition(
            cond.POD_READY,
            False,
            Reason.POD_RECREATING,
            "waiting for the old sandbox pod to terminate",
            now,
            generation,
        )
        plan.requeue_after = 2.0
    elif (pod["metadata"].get("annotations") or {}).get(naming.ANNOTATION_SPEC_HASH) != desired_pod["metadata"][
        "annotations"
    ][naming.ANNOTATION_SPEC_HASH]:
        plan.pod_action = PodAction.DELETE
        plan.pod_delete_reason = "SpecChanged"
        plan.events.append(("Normal", Reason.POD_RECREATING, "the sandbox spec changed: recreating the pod"))
        pod_condition = cond.make_condition(
            cond.POD_READY, False, Reason.POD_RECREATING, "recreating the sandbox pod for the new spec", now, generation
        )
    elif pod.get("status", {}).get("phase") in ("Failed", "Succeeded"):
        reason = pod.get("status", {}).get("reason") or pod["status"]["phase"]
        message = pod.get("status", {}).get("message") or f"the sandbox pod ended ({reason})"
        plan.pod_action = PodAction.DELETE
        plan.pod_delete_reason = reason
        plan.events.append(("Warning", Reason.POD_RECREATING, f"{message}; recreating it"))
        pod_condition = cond.make_condition(cond.POD_READY, False, Reason.POD_RECREATING, message, now, generation)
    elif _pod_is_ready(pod):
        pod_condition = cond.make_condition(cond.POD_READY, True, Reason.POD_RUNNING, "", now, generation)
    else:
        problem = _pod_problem(pod)
        if problem is not None:
            reason, message, permanent_failure = problem
        else:
            reason, message = Reason.POD_STARTING, "the sandbox pod is starting"
        pod_condition = cond.make_condition(cond.POD_READY, False, reason, message, now, generation)

    pvc = observed.pvc
    pvc_phase = (pvc or {}).get("status", {}).get("phase")
    if pvc_phase == "Bound":
        storage = cond.make_condition(cond.STORAGE_READY, True, Reason.BOUND, "", now, generation)
    elif pvc_phase == "Lost":
        storage = cond.make_condition(
            cond.STORAGE_READY, False, Reason.PVC_LOST, "the workspace volume was lost", now, generation
        )
        permanent_failure = True
    elif pvc is None:
        storage = cond.make_condition(
            cond.STORAGE_READY, False, Reason.CREATING, "creating the volume claim", now, generation
        )
    else:
        storage = cond.make_condition(
            cond.STORAGE_READY,
            False,
            Reason.PVC_PENDING,
            f"PersistentVolumeClaim {naming.pvc_name(owner.name)} is Pending",
            now,
            generation,
        )
    netpol = cond.make_condition(
        cond.NETWORK_POLICY_READY,
        observed.network_policy is not None,
        Reason.APPLIED if observed.network_policy is not None else Reason.CREATING,
        "",
        now,
        generation,
    )
    parts = [storage, netpol, pod_condition]
    # A permanent pod failure explains more than a volume that is still binding: report it first.
    order = [pod_condition, storage, netpol] if permanent_failure else parts
    failing = next((c for c in order if c["status"] != "True"), None)
    ready = cond.make_condition(
        cond.READY,
        failing is None,
        Reason.READY if failing is None else failing["reason"],
        "" if failing is None else failing["message"],
        now,
        generation,
    )

    if body["metadata"].get("deletionTimestamp"):
        phase = WorkspacePhase.TERMINATING
    elif suspended_reason is not None:
        phase = WorkspacePhase.SUSPENDED
    elif permanent_failure:
        phase = WorkspacePhase.FAILED
    elif failing is None:
        phase = WorkspacePhase.READY
    else:
        phase = WorkspacePhase.PENDING

    previous = body.get("status") or {}
    plan.status = {
        "phase": phase.value,
        "conditions": cond.merge_conditions(previous.get("conditions") or [], [*parts, ready]),
        "podName": naming.pod_name(owner.name),
        "pvcName": naming.pvc_name(owner.name),
        "observedGeneration": generation,
        "message": ready["message"][:4096] or None,  # the CRD's maxLength
    }
    if deadlines:
        wait = (min(deadlines) - now).total_seconds()
        plan.requeue_after = max(1.0, wait) if plan.requeue_after is None else min(plan.requeue_after, wait)
    return plan
