"""plan_run: workspace resolution, template workspaces, the per-workspace queue, resume, cancel, deadline, TTL."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from paddock_operator import phases
from paddock_operator.api.run import AgentRun, RunPhase
from paddock_operator.api.workspace import AgentWorkspace
from paddock_operator.conditions import Reason
from paddock_operator.reconcile.run import (
    PENDING_RECHECK_SECONDS,
    RunPlan,
    build_template_workspace,
    plan_run,
    queue_order,
    workspace_of,
)
from paddock_operator.reconcile.timeutil import format_time

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
NOW_TEXT = "2025-03-01T12:00:00Z"


def ago(seconds: float) -> str:
    return format_time(NOW - timedelta(seconds=seconds))


def run(
    name: str = "r1",
    *,
    workspace: str | None = "ws",
    template: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    created: str = "2025-03-01T10:00:00Z",
    generation: int = 1,
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "paddock.dev/v1alpha1",
        "kind": "AgentRun",
        "metadata": {
            "name": name,
            "namespace": "team-a",
            "uid": f"uid-{name}",
            "generation": generation,
            "creationTimestamp": created,
            "resourceVersion": "100",
        },
        "spec": {"prompt": "fix the tests", **spec},
    }
    if template is not None:
        body["spec"]["workspaceTemplate"] = template
    elif workspace is not None:
        body["spec"]["workspaceRef"] = {"name": workspace}
    if status is not None:
        body["status"] = status
    AgentRun.model_validate(body)  # only bodies the apiserver could hold
    return body


def workspace(
    phase: str | None = "Ready", *, suspend: bool = False, message: str | None = None, name: str = "ws"
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "paddock.dev/v1alpha1",
        "kind": "AgentWorkspace",
        "metadata": {"name": name, "namespace": "team-a", "uid": f"uid-{name}"},
        "spec": {"image": "sandbox:1", "lifecycle": {"suspend": suspend}},
    }
    if phase is not None:
        body["status"] = {"phase": phase, **({"message": message} if message else {})}
    AgentWorkspace.model_validate(body)
    return body


def plan(body: dict[str, Any], ws: dict[str, Any] | None, siblings: list[dict[str, Any]] | None = None) -> RunPlan:
    result = plan_run(body, ws, [body] if siblings is None else siblings, NOW)
    if result.transition is not None:  # whatever the operator decides is a legal move
        old, new = result.transition
        phases.check_transition(RunPhase(old) if old else None, RunPhase(new))
    return result


def workspace_ready(result: RunPlan) -> dict[str, Any]:
    assert result.status is not None
    (condition,) = [c for c in result.status["conditions"] if c["type"] == "WorkspaceReady"]
    return dict(condition)


def stored(body: dict[str, Any], result: RunPlan) -> dict[str, Any]:
    """The run as the apiserver holds it after the plan's status patch (a JSON merge patch)."""
    assert result.status is not None
    body = copy.deepcopy(body)
    merged = {**(body.get("status") or {}), **result.status}
    body["status"] = {k: v for k, v in merged.items() if v is not None}
    return body


# ---- workspace resolution -----------------------------------------------------------------------


def test_missing_workspace_ref_is_reported_and_rechecked() -> None:
    body = run(workspace="nope")
    result = plan(body, None)
    assert result.status is not None
    assert result.status["phase"] == "Pending"
    assert result.status["workspaceName"] == "nope"
    condition = workspace_ready(result)
    assert (condition["status"], condition["reason"]) == ("False", Reason.WORKSPACE_NOT_FOUND)
    assert "'nope'" in condition["message"]
    assert "'team-a'" in condition["message"]
    assert result.requeue_after == PENDING_RECHECK_SECONDS
    assert result.create_workspace is None
    assert result.transition == (None, "Pending")
    # ... and the run recovers when the workspace appears.
    recovered = plan(stored(body, result), workspace("Ready", name="nope"))
    assert recovered.status is not None
    assert recovered.status["phase"] == "Running"
    assert workspace_ready(recovered)["status"] == "True"


TEMPLATE = {
    "metadata": {"labels": {"team": "a"}, "annotations": {"note": "hi"}},
    "spec": {"image": "sandbox:2", "network": {"egress": "Internet", "allowDNS": True}},
}


def test_template_creates_a_workspace_owned_by_the_run() -> None:
    body = run("task-7", template=TEMPLATE)
    assert workspace_of(body) == "task-7"
    result = plan(body, None)
    created = result.create_workspace
    assert created is not None
    assert created["apiVersion"] == "paddock.dev/v1alpha1"
    assert created["kind"] == "AgentWorkspace"
    meta = created["metadata"]
    assert meta["name"] == "task-7"
    assert meta["namespace"] == "team-a"
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "paddock.dev/v1alpha1",
            "kind": "AgentRun",
            "name": "task-7",
            "uid": "uid-task-7",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert meta["labels"] == {"team": "a", "paddock.dev/run": "task-7"}
    assert meta["annotations"] == {"note": "hi"}
    assert created["spec"]["image"] == "sandbox:2"
    assert created["spec"]["network"] == {"egress": "Internet", "allowDNS": True, "rules": []}
    AgentWorkspace.model_validate(created)
    condition = workspace_ready(result)
    assert (condition["status"], condition["reason"]) == ("False", Reason.WORKSPACE_NOT_READY)
    assert result.status is not None
    assert result.status["workspaceName"] == "task-7"


def test_template_without_metadata() -> None:
    created = build_template_workspace(run("r", template={"spec": {"image": "x"}}))
    assert created["metadata"]["labels"] == {"paddock.dev/run": "r"}
    assert "annotations" not in created["metadata"]


def test_template_workspace_is_not_created_twice() -> None:
    body = run("task-7", template=TEMPLATE)
    result = plan(body, workspace("Pending", name="task-7"))
    assert result.create_workspace is None
    assert workspace_ready(result)["reason"] == Reason.WORKSPACE_NOT_READY
    started = plan(body, workspace("Ready", name="task-7"))
    assert started.status is not None
    assert started.status["phase"] == "Running"


@pytest.mark.parametrize(
    ("ws", "reason", "message_part"),
    [
        (workspace("Pending"), Reason.WORKSPACE_NOT_READY, "phase Pending"),
        (workspace(None), Reason.WORKSPACE_NOT_READY, "phase unknown"),
        (workspace("Suspended"), Reason.WORKSPACE_NOT_READY, "phase Suspended"),  # idle-suspended: busy resumes it
        (workspace("Failed", message="image 'x' cannot be pulled"), Reason.WORKSPACE_FAILED, "cannot be pulled"),
        (workspace("Failed"), Reason.WORKSPACE_FAILED, "see its status"),
    ],
)
def test_waiting_for_the_workspace(ws: dict[str, Any], reason: str, message_part: str) -> None:
    result = plan(run(), ws)
    assert result.status is not None
    assert result.status["phase"] == "Pending"
    condition = workspace_ready(result)
    assert (condition["status"], condition["reason"]) == ("False", reason)
    assert message_part in condition["message"]
    assert result.resume_workspace is None


def test_ready_workspace_starts_the_head_of_the_queue() -> None:
    body = run(status={"phase": "Pending"}, limits={"timeoutSeconds": 900})
    result = plan(body, workspace("Ready"))
    assert result.status is not None
    assert result.status["phase"] == "Running"
    assert result.status["startTime"] == NOW_TEXT
    assert result.status["queuePosition"] is None
    assert result.status["observedGeneration"] == 1
    condition = workspace_ready(result)
    assert (condition["status"], condition["reason"]) == ("True", Reason.WORKSPACE_READY)
    assert result.transition == ("Pending", "Running")
    assert result.events == [("Normal", Reason.STARTED, "running in workspace ws")]
    assert result.requeue_after == 900.0


def test_suspended_workspace_is_resumed_by_the_head_run() -> None:
    result = plan(run(), workspace("Suspended", suspend=True))
    assert result.resume_workspace == "ws"
    assert result.status is not None
    assert result.status["phase"] == "Pending"
    assert workspace_ready(result)["reason"] == Reason.WORKSPACE_RESUMING
    assert [e[1] for e in result.events] == [Reason.WORKSPACE_RESUMING]


def test_suspended_workspace_is_not_resumed_by_a_waiting_run() -> None:
    head = run("r1", status={"phase": "Running", "startTime": ago(10)})
    waiting = run("r2", created="2025-03-01T10:05:00Z")
    result = plan(waiting, workspace("Suspended", suspend=True), [head, waiting])
    assert result.resume_workspace is None
    assert workspace_ready(result)["reason"] == Reason.WORKSPACE_BUSY


# ---- the queue ----------------------------------------------------------------------------------


def _sibling(name: str, created: str, phase: str | None) -> dict[str, Any]:
    status: dict[str, Any] | None = None
    if phase in ("Running", "AwaitingApproval"):
        status = {"phase": phase, "startTime": ago(10)}
    elif phase in ("Succeeded", "Failed", "Cancelled"):
        status = {"phase": phase, "completionTime": ago(5)}
    elif phase is not None:
        status = {"phase": phase}
    return run(name, created=created, status=status)


@pytest.mark.parametrize(
    ("siblings", "expected_order"),
    [
        pytest.param(
            [("c", "10:02", None), ("a", "10:00", None), ("b", "10:01", "Pending")],
            ["a", "b", "c"],
            id="creation-order",
        ),
        pytest.param(
            [("a", "10:00", "Pending"), ("b", "10:01", "Running")],
            ["b", "a"],
            id="active-first",
        ),
        pytest.param(
            [("a", "10:00", "Pending"), ("b", "10:01", "AwaitingApproval")],
            ["b", "a"],
            id="awaiting-approval-holds-it",
        ),
        pytest.param(
            [("a", "10:00", "Succeeded"), ("b", "10:01", "Failed"), ("c", "10:02", "Cancelled"), ("d", "10:03", None)],
            ["d"],
            id="finished-leave",
        ),
        pytest.param(
            [("b", "10:00", None), ("a", "10:00", None), ("c", "10:00", None)],
            ["a", "b", "c"],
            id="name-breaks-ties",
        ),
        pytest.param([], [], id="empty"),
    ],
)
def test_queue_order(siblings: list[tuple[str, str, str | None]], expected_order: list[str]) -> None:
    runs = [_sibling(name, f"2025-03-01T{hhmm}:00Z", phase) for name, hhmm, phase in siblings]
    assert [r["metadata"]["name"] for r in queue_order(runs)] == expected_order


def test_three_runs_queue_with_positions() -> None:
    runs = [run(f"r{i}", created=f"2025-03-01T10:0{i}:00Z") for i in (1, 2, 3)]
    ws = workspace("Ready")
    results = {r["metadata"]["name"]: plan(r, ws, runs) for r in runs}

    head = results["r1"]
    assert head.status is not None
    assert head.status["phase"] == "Running"
    assert head.status["queuePosition"] is None
    for name, position in (("r2", 1), ("r3", 2)):
        result = results[name]
        assert result.status is not None
        assert result.status["phase"] == "Pending"
        assert result.status["queuePosition"] == position
        condition = workspace_ready(result)
        assert (condition["status"], condition["reason"]) == ("False", Reason.WORKSPACE_BUSY)
        assert "waiting for r1" in condition["message"]
        assert f"position {position}" in condition["message"]
        assert "startTime" not in result.status
        assert result.events == []

    # r1 runs, then finishes: r2 takes the workspace and r3 moves up.
    running = stored(runs[0], head)
    assert plan(runs[1], ws, [running, *runs[1:]]).status == results["r2"].status
    finished = copy.deepcopy(running)
    finished["status"].update(phase="Succeeded", completionTime=NOW_TEXT)
    siblings = [finished, *runs[1:]]
    second = plan(runs[1], ws, siblings)
    assert second.status is not None
    assert second.status["phase"] == "Running"
    third = plan(stored(runs[2], results["r3"]), ws, siblings)
    assert third.status is not None
    assert third.status["queuePosition"] == 1
    assert third.transition is None  # still Pending


def test_only_one_run_of_a_workspace_is_ever_started() -> None:
    runs = [run(f"r{i}", created="2025-03-01T10:00:00Z") for i in range(5)]
    started = [r for r in runs if (plan(r, workspace("Ready"), runs).status or {}).get("phase") == "Running"]
    assert [r["metadata"]["name"] for r in started] == ["r0"]


def test_run_missing_from_its_list_waits_at_the_end() -> None:
    other = run("r0", status={"phase": "Running", "startTime": ago(1)})
    late = run("r9")
    result = plan(late, workspace("Ready"), [other])
    assert result.status is not None
    assert result.status["queuePosition"] == 1


def test_waiting_run_is_not_rewritten_when_nothing_changed() -> None:
    runs = [run("r1", status={"phase": "Running", "startTime": ago(1)}), run("r2", created="2025-03-01T10:01:00Z")]
    first = plan(runs[1], workspace("Ready"), runs)
    again = plan_run(stored(runs[1], first), workspace("Ready"), runs, NOW + timedelta(minutes=5))
    assert again.status is None
    assert again.transition is None
    assert again.events == []


def test_status_is_rewritten_when_the_position_changes() -> None:
    runs = [run(f"r{i}", created=f"2025-03-01T10:0{i}:00Z") for i in (1, 2, 3)]
    waiting = stored(runs[2], plan(runs[2], workspace("Ready"), runs))
    result = plan(waiting, workspace("Ready"), [runs[0], waiting])
    assert result.status is not None
    assert result.status["queuePosition"] == 1
    assert workspace_ready(result)["lastTransitionTime"] == NOW_TEXT


# ---- cancel, deadline, TTL ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "status",
    [
        None,
        {"phase": "Pending", "queuePosition": 2},
        {"phase": "Running", "startTime": ago(10)},
        {"phase": "Running", "startTime": ago(99999)},  # cancel wins over the deadline
        {
            "phase": "AwaitingApproval",
            "startTime": ago(10),
            "pendingApprovals": [{"callId": "c1", "tool": "exec_command", "command": "rm -rf /"}],
        },
    ],
)
def test_cancel(status: dict[str, Any] | None) -> None:
    body = run(status=status, cancel=True)
    result = plan(body, workspace("Ready"))
    assert result.status is not None
    assert result.status["phase"] == "Cancelled"
    assert result.status["completionTime"] == NOW_TEXT
    assert result.status["pendingApprovals"] == []
    assert "queuePosition" not in stored(body, result)["status"]
    assert "lastError" not in result.status
    (finished,) = [c for c in result.status["conditions"] if c["type"] == "Finished"]
    assert (finished["status"], finished["reason"]) == ("True", Reason.CANCELLED)
    assert result.transition == ((status or {}).get("phase"), "Cancelled")
    assert result.events == [("Normal", Reason.CANCELLED, "cancelled by spec.cancel")]
    assert result.create_workspace is None
    assert result.resume_workspace is None


@pytest.mark.parametrize("phase", ["Running", "AwaitingApproval"])
@pytest.mark.parametrize(
    ("started_ago", "timeout", "failed", "requeue_after"),
    [
        (3601, 3600, True, None),
        (3600, 3600, True, None),
        (3599, 3600, False, 1.0),
        (10, 60, False, 50.0),
        (61, 60, True, None),
    ],
)
def test_deadline(phase: str, started_ago: int, timeout: int, failed: bool, requeue_after: float | None) -> None:
    body = run(status={"phase": phase, "startTime": ago(started_ago)}, limits={"timeoutSeconds": timeout})
    result = plan(body, workspace("Ready"))
    if failed:
        assert result.status is not None
        assert result.status["phase"] == "Failed"
        assert result.status["completionTime"] == NOW_TEXT
        assert result.status["lastError"] == {
            "reason": Reason.DEADLINE_EXCEEDED,
            "message": f"the run exceeded limits.timeoutSeconds ({timeout}s)",
            "time": NOW_TEXT,
        }
        (finished,) = [c for c in result.status["conditions"] if c["type"] == "Finished"]
        assert finished["reason"] == Reason.DEADLINE_EXCEEDED
        assert result.transition == (phase, "Failed")
        assert [e[:2] for e in result.events] == [("Warning", Reason.DEADLINE_EXCEEDED)]
    else:
        assert result.status is None  # the harness drives active runs
        assert result.transition is None
    assert result.requeue_after == requeue_after


def test_active_run_ignores_the_workspace_and_queue() -> None:
    body = run(status={"phase": "Running", "startTime": ago(10)})
    result = plan(body, None, [])
    assert result.status is None
    assert result.create_workspace is None
    assert result.resume_workspace is None


def _finished(phase: str, completed_ago: float | None, **spec: Any) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "startTime": ago(99999)}
    if completed_ago is not None:
        status["completionTime"] = ago(completed_ago)
    return run(status=status, **spec)


@pytest.mark.parametrize("phase", ["Succeeded", "Failed", "Cancelled"])
@pytest.mark.parametrize(
    ("ttl", "completed_ago", "delete", "requeue_after"),
    [
        (None, 10**6, False, None),
        (0, 0, True, None),
        (0, 5, True, None),
        (100, 50, False, 50.0),
        (100, 100, True, None),
        (100, 101, True, None),
        (3600, None, False, None),  # no completion time: nothing to count from
    ],
)
def test_ttl_after_finished(
    phase: str, ttl: int | None, completed_ago: float | None, delete: bool, requeue_after: float | None
) -> None:
    spec = {} if ttl is None else {"ttlSecondsAfterFinished": ttl}
    result = plan(_finished(phase, completed_ago, **spec), workspace("Ready"))
    assert result.delete_run is delete
    assert result.requeue_after == requeue_after
    assert result.status is None
    assert result.transition is None
    if delete:
        assert [e[1] for e in result.events] == ["Expired"]


@pytest.mark.parametrize("phase", ["Succeeded", "Failed", "Cancelled"])
@pytest.mark.parametrize("variant", ["plain", "cancel", "deadline-passed", "template"])
def test_terminal_runs_are_untouched(phase: str, variant: str) -> None:
    variants: dict[str, dict[str, Any]] = {
        "cancel": {"cancel": True},
        "deadline-passed": {"limits": {"timeoutSeconds": 1}},
    }
    extra = variants.get(variant, {})
    template = {"spec": {"image": "x"}} if variant == "template" else None
    status = {"phase": phase, "startTime": ago(99999), "completionTime": ago(10)}
    body = run(status=status, template=template, **extra)
    for ws in (None, workspace("Ready"), workspace("Suspended", suspend=True)):
        assert plan(body, ws) == RunPlan()


def test_generation_is_observed() -> None:
    result = plan(run(generation=4), workspace("Pending"))
    assert result.status is not None
    assert result.status["observedGeneration"] == 4
    assert workspace_ready(result)["observedGeneration"] == 4


def test_foreign_conditions_survive() -> None:
    claimed = {"type": "Claimed", "status": "True", "reason": "Claimed", "message": "", "lastTransitionTime": ago(9)}
    result = plan(run(status={"phase": "Pending", "conditions": [claimed]}), workspace("Pending"))
    assert result.status is not None
    assert claimed in result.status["conditions"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (run("r", workspace="shared"), "shared"),
        (run("r", template={"spec": {"image": "x"}}), "r"),
    ],
)
def test_workspace_of(body: dict[str, Any], expected: str) -> None:
    assert workspace_of(body) == expected
