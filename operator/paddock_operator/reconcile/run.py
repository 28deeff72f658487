"""What an AgentRun needs now (the operator's half): its workspace, its place in the queue, its deadline,
cancellation and expiry. The harness drives Running runs; see paddock_operator.phases."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .. import conditions as cond
from .. import naming, phases
from ..api.run import AgentRun, RunPhase
from ..api.workspace import WorkspacePhase
from ..builders.common import OwnerRef, child_metadata
from ..conditions import Reason
from .timeutil import format_time, parse_time

PENDING_RECHECK_SECONDS = 30.0


@dataclass
class RunPlan:
    status: dict[str, Any] | None = None
    transition: tuple[str | None, str] | None = None
    create_workspace: dict[str, Any] | None = None
    resume_workspace: str | None = None
    delete_run: bool = False
    requeue_after: float | None = None
    events: list[tuple[str, str, str]] = field(default_factory=list)


def workspace_of(body: dict[str, Any]) -> str:
    """The workspace a run executes in: its workspaceRef, or the one its template creates."""
    ref = (body.get("spec") or {}).get("workspaceRef")
    return ref["name"] if ref else naming.run_workspace_name(body["metadata"]["name"])


def queue_order(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Unfinished runs of one workspace in the order they get it: the one already active first, then by
    creation time (name breaks ties, creation timestamps have one-second resolution)."""
    unfinished = [r for r in runs if not phases.is_terminal((r.get("status") or {}).get("phase"))]

    def key(run: dict[str, Any]) -> tuple[int, str, str]:
        active = RunPhase((run.get("status") or {}).get("phase") or "Pending") in phases.ACTIVE
        return (0 if active else 1, run["metadata"].get("creationTimestamp") or "", run["metadata"]["name"])

    return sorted(unfinished, key=key)


def build_template_workspace(body: dict[str, Any]) -> dict[str, Any]:
    run = AgentRun.model_validate(body)
    template = run.spec.workspace_template
    assert template is not None
    owner = OwnerRef.of(body)
    labels = dict(template.metadata.labels) if template.metadata else {}
    labels[naming.LABEL_RUN] = naming.bounded(owner.name)
    metadata = child_metadata(owner, naming.run_workspace_name(owner.name), labels)
    if template.metadata and template.metadata.annotations:
        metadata["annotations"] = dict(template.metadata.annotations)
    return {
        "apiVersion": "paddock.dev/v1alpha1",
        "kind": "AgentWorkspace",
        "metadata": metadata,
        "spec": template.spec.to_wire(),
    }


def _finish(plan: RunPlan, body: dict[str, Any], phase: RunPhase, reason: str, message: str, now: datetime) -> RunPlan:
    generation = body["metadata"].get("generation")
    previous = body.get("status") or {}
    plan.status = {
        "phase": phase.value,
        "completionTime": format_time(now),
        "queuePosition": None,  # a finished run waits for nothing (null removes it in the merge patch)
        "pendingApprovals": [],
        "conditions": cond.merge_conditions(
            previous.get("conditions") or [],
            [cond.make_condition(cond.FINISHED, True, reason, message, now, generation)],
        ),
    }
    if phase == RunPhase.FAILED:
        plan.status["lastError"] = {"reason": reason, "message": message, "time": format_time(now)}
    plan.transition = (previous.get("phase"), phase.value)
    plan.events.append(("Warning" if phase == RunPhase.FAILED else "Normal", reason, message))
    return plan


def plan_run(
    body: dict[str, Any],
    workspace: dict[str, Any] | None,
    workspace_runs: list[dict[str, Any]],
    now: datetime,
) -> RunPlan:
    run = AgentRun.model_validate(body)
    status = run.status
    phase = status.phase if status else None
    generation = body["metadata"].get("generation")
    plan = RunPlan()

    if phase is not None and phase in phases.TERMINAL:
        ttl = run.spec.ttl_seconds_after_finished
        finished = parse_time(status.completion_time) if status else None
        if ttl is not None and finished is not None:
            expiry = finished + timedelta(seconds=ttl)
            if now >= expiry:
                plan.delete_run = True
                plan.events.append(("Normal", "Expired", f"deleting {ttl}s after it finished"))
            else:
                plan.requeue_after = (expiry - now).total_seconds()
        return plan

    if run.spec.cancel:
        return _finish(plan, body, RunPhase.CANCELLED, Reason.CANCELLED, "cancelled by spec.cancel", now)

    started = parse_time(status.start_time) if status else None
    if phase in phases.ACTIVE and started is not None:
        deadline = started + timedelta(seconds=run.spec.limits.timeout_seconds)
        if now >= deadline:
            return _finish(
                plan,
                body,
                RunPhase.FAILED,
                Reason.DEADLINE_EXCEEDED,
                f"the run exceeded limits.timeoutSeconds ({run.spec.limits.timeout_seconds}s)",
                now,
            )
        plan.requeue_after = (deadline - now).total_seconds()
        return plan  # the harness drives active runs

    # Pending: find the workspace and wait for a Ready one that this run heads the queue of.
    name = workspace_of(body)
    workspace_ready: dict[str, Any]
    new_phase = RunPhase.PENDING
    queue_position: int | None = None
    start_time: str | None = None
    if workspace is None:
        if run.spec.workspace_template is not None:
            plan.create_workspace = build_template_workspace(body)
            workspace_ready = cond.make_condition(
                cond.WORKSPACE_READY,
                False,
                Reason.WORKSPACE_NOT_READY,
                f"creating AgentWorkspace {name}",
                now,
                generation,
            )
        else:
            workspace_ready = cond.make_condition(
                cond.WORKSPACE_READY,
                False,
                Reason.WORKSPACE_NOT_FOUND,
                f"AgentWorkspace {name!r} does not exist in namespace {body['metadata']['namespace']!r}; "
                "the run starts when it appears",
                now,
                generation,
            )
            plan.requeue_after = PENDING_RECHECK_SECONDS
    else:
        ws_status = workspace.get("status") or {}
        ws_phase = ws_status.get("phase")
        order = [r["metadata"]["name"] for r in queue_order(workspace_runs)]
        position = order.index(body["metadata"]["name"]) if body["metadata"]["name"] in order else len(order)
        suspended_in_spec = bool(((workspace.get("spec") or {}).get("lifecycle") or {}).get("suspend"))
        if position > 0:
            queue_position = position
            workspace_ready = cond.make_condition(
                cond.WORKSPACE_READY,
                False,
                Reason.WORKSPACE_BUSY,
                f"waiting for {order[0]} to finish; position {position} in the queue of workspace {name}",
                now,
                generation,
            )
        elif suspended_in_spec:
            plan.resume_workspace = name
            plan.events.append(("Normal", Reason.WORKSPACE_RESUMING, f"resuming suspended workspace {name}"))
            workspace_ready = cond.make_condition(
                cond.WORKSPACE_READY, False, Reason.WORKSPACE_RESUMING, f"resuming workspace {name}", now, generation
            )
        elif ws_phase == WorkspacePhase.READY.value:
            new_phase = RunPhase.RUNNING
            start_time = format_time(now)
            workspace_ready = cond.make_condition(
                cond.WORKSPACE_READY, True, Reason.WORKSPACE_READY, "", now, generation
            )
            plan.requeue_after = float(run.spec.limits.timeout_seconds)
        elif ws_phase == WorkspacePhase.FAILED.value:
            workspace_ready = cond.make_condition(
                cond.WORKSPACE_READY,
                False,
                Reason.WORKSPACE_FAILED,
                f"workspace {name} failed: {ws_status.get('message') or 'see its status'}",
                now,
                generation,
            )
        else:
            workspace_ready = cond.make_condition(
                cond.WORKSPACE_READY,
                False,
                Reason.WORKSPACE_NOT_READY,
                f"waiting for workspace {name} to become Ready (phase {ws_phase or 'unknown'})",
                now,
                generation,
            )

    previous = body.get("status") or {}
    desired: dict[str, Any] = {
        "phase": new_phase.value,
        "workspaceName": name,
        "queuePosition": queue_position,
        "observedGeneration": generation,
        "conditions": cond.merge_conditions(previous.get("conditions") or [], [workspace_ready]),
    }
    if start_time is not None:
        desired["startTime"] = start_time
    if any(previous.get(k) != v for k, v in desired.items() if k != "conditions") or _conditions_changed(
        previous.get("conditions") or [], desired["conditions"]
    ):
        plan.status = desired
    if previous.get("phase") != new_phase.value:
        plan.transition = (previous.get("phase"), new_phase.value)
        if new_phase == RunPhase.RUNNING:
            plan.events.append(("Normal", Reason.STARTED, f"running in workspace {name}"))
    return plan


def _conditions_changed(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> bool:
    def strip(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in items]

    return strip(old) != strip(new)
