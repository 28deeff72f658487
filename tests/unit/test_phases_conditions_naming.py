"""The AgentRun phase machine, condition merging, deterministic names, and RFC 3339 times."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from paddock_operator import conditions as cond
from paddock_operator import naming, phases
from paddock_operator.api.meta import Condition
from paddock_operator.api.run import RunPhase
from paddock_operator.reconcile.timeutil import format_time, parse_time

P = RunPhase
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
EARLIER = "2025-03-01T11:00:00Z"

# The whole machine, written out independently of the module: (from, to) pairs that are allowed.
ALLOWED: set[tuple[RunPhase | None, RunPhase]] = {
    (None, P.PENDING),
    (None, P.RUNNING),
    (None, P.FAILED),
    (None, P.CANCELLED),
    (P.PENDING, P.PENDING),
    (P.PENDING, P.RUNNING),
    (P.PENDING, P.FAILED),
    (P.PENDING, P.CANCELLED),
    (P.RUNNING, P.RUNNING),
    (P.RUNNING, P.AWAITING_APPROVAL),
    (P.RUNNING, P.SUCCEEDED),
    (P.RUNNING, P.FAILED),
    (P.RUNNING, P.CANCELLED),
    (P.AWAITING_APPROVAL, P.AWAITING_APPROVAL),
    (P.AWAITING_APPROVAL, P.RUNNING),
    (P.AWAITING_APPROVAL, P.SUCCEEDED),
    (P.AWAITING_APPROVAL, P.FAILED),
    (P.AWAITING_APPROVAL, P.CANCELLED),
    (P.SUCCEEDED, P.SUCCEEDED),
    (P.FAILED, P.FAILED),
    (P.CANCELLED, P.CANCELLED),
}
ALL_PAIRS = list(itertools.product([None, *RunPhase], RunPhase))


@pytest.mark.parametrize(("current", "target"), ALL_PAIRS, ids=lambda p: str(p))
def test_transition_table(current: RunPhase | None, target: RunPhase) -> None:
    allowed = (current, target) in ALLOWED
    assert phases.can_transition(current, target) is allowed
    if allowed:
        phases.check_transition(current, target)
    else:
        with pytest.raises(phases.IllegalTransitionError, match="cannot go from"):
            phases.check_transition(current, target)


def test_illegal_transition_is_a_value_error() -> None:
    assert issubclass(phases.IllegalTransitionError, ValueError)


@pytest.mark.parametrize("terminal", [P.SUCCEEDED, P.FAILED, P.CANCELLED])
def test_terminal_phases_are_final(terminal: RunPhase) -> None:
    assert [t for t in RunPhase if phases.can_transition(terminal, t)] == [terminal]


@pytest.mark.parametrize(
    ("phase", "terminal"),
    [
        (None, False),
        (P.PENDING, False),
        (P.RUNNING, False),
        (P.AWAITING_APPROVAL, False),
        (P.SUCCEEDED, True),
        (P.FAILED, True),
        (P.CANCELLED, True),
        ("Pending", False),
        ("AwaitingApproval", False),
        ("Succeeded", True),
        ("Cancelled", True),
    ],
)
def test_is_terminal(phase: RunPhase | str | None, terminal: bool) -> None:
    assert phases.is_terminal(phase) is terminal


def test_phase_sets() -> None:
    assert set(phases.TERMINAL) == {P.SUCCEEDED, P.FAILED, P.CANCELLED}
    assert set(phases.ACTIVE) == {P.RUNNING, P.AWAITING_APPROVAL}
    assert not phases.TERMINAL & phases.ACTIVE


# ---- conditions -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [(True, "True"), (False, "False"), ("Unknown", "Unknown"), ("True", "True")],
)
def test_make_condition_status(status: bool | str, expected: str) -> None:
    condition = cond.make_condition(cond.READY, status, cond.Reason.READY, "msg", NOW, 3)
    assert condition == {
        "type": "Ready",
        "status": expected,
        "reason": "Ready",
        "message": "msg",
        "lastTransitionTime": "2025-03-01T12:00:00Z",
        "observedGeneration": 3,
    }
    Condition.model_validate(condition)  # what the CRD schema accepts


def test_make_condition_without_generation() -> None:
    assert "observedGeneration" not in cond.make_condition(cond.READY, True, "Ready", "", NOW, None)


def _c(type_: str, status: str, time: str = EARLIER, reason: str = "R", message: str = "") -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message, "lastTransitionTime": time}


NEW_TIME = "2025-03-01T12:00:00Z"


@pytest.mark.parametrize(
    ("existing", "desired", "expected"),
    [
        pytest.param([], [_c("A", "True", NEW_TIME)], [_c("A", "True", NEW_TIME)], id="new"),
        pytest.param(
            [_c("A", "True")],
            [_c("A", "True", NEW_TIME, reason="Other", message="changed")],
            [_c("A", "True", EARLIER, reason="Other", message="changed")],
            id="same-status-keeps-time-takes-reason",
        ),
        pytest.param([_c("A", "True")], [_c("A", "False", NEW_TIME)], [_c("A", "False", NEW_TIME)], id="flip"),
        pytest.param(
            [_c("A", "Unknown")], [_c("A", "True", NEW_TIME)], [_c("A", "True", NEW_TIME)], id="unknown-to-true"
        ),
        pytest.param(
            [_c("Foreign", "True"), _c("A", "False")],
            [_c("A", "False", NEW_TIME), _c("B", "True", NEW_TIME)],
            [_c("A", "False"), _c("B", "True", NEW_TIME), _c("Foreign", "True")],
            id="foreign-kept-after-desired",
        ),
        pytest.param(
            [_c("A", "True"), _c("B", "True")],
            [_c("B", "True", NEW_TIME), _c("A", "False", NEW_TIME)],
            [_c("B", "True"), _c("A", "False", NEW_TIME)],
            id="desired-order",
        ),
    ],
)
def test_merge_conditions(
    existing: list[dict[str, Any]], desired: list[dict[str, Any]], expected: list[dict[str, Any]]
) -> None:
    before = [dict(c) for c in existing], [dict(c) for c in desired]
    assert cond.merge_conditions(existing, desired) == expected
    assert (existing, desired) == before  # inputs untouched


def test_merge_is_idempotent() -> None:
    first = cond.merge_conditions([], [_c("A", "True", NEW_TIME)])
    later = cond.merge_conditions(first, [_c("A", "True", "2025-03-02T00:00:00Z")])
    assert later == first


@pytest.mark.parametrize(
    ("conditions", "type_", "found", "true"),
    [
        (None, "A", False, False),
        ([], "A", False, False),
        ([_c("A", "True")], "A", True, True),
        ([_c("A", "False")], "A", True, False),
        ([_c("A", "Unknown")], "A", True, False),
        ([_c("B", "True")], "A", False, False),
    ],
)
def test_find_and_is_true(conditions: list[dict[str, Any]] | None, type_: str, found: bool, true: bool) -> None:
    assert (cond.find(conditions, type_) is not None) is found
    assert cond.is_true(conditions, type_) is true


def _reasons() -> dict[str, str]:
    return {k: v for k, v in vars(cond.Reason).items() if k.isupper()}


def test_reasons_are_valid_camel_case_and_distinct() -> None:
    reasons = _reasons()
    assert len(set(reasons.values())) == len(reasons)
    for value in reasons.values():
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]*", value), value
        Condition.model_validate({"type": "T", "status": "True", "reason": value, "lastTransitionTime": NEW_TIME})


def test_issue_reason_names() -> None:
    reasons = set(_reasons().values())
    assert {"WorkspaceNotFound", "WorkspaceBusy", "DeadlineExceeded", "Cancelled", "IdleTimeout"} <= reasons
    assert (cond.STORAGE_READY, cond.POD_READY, cond.NETWORK_POLICY_READY, cond.READY) == (
        "StorageReady",
        "PodReady",
        "NetworkPolicyReady",
        "Ready",
    )
    assert cond.WORKSPACE_READY == "WorkspaceReady"


# ---- naming -----------------------------------------------------------------------------------------

LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@pytest.mark.parametrize("name", ["", "a", "ws-1", "a" * 62, "a" * 63])
def test_bounded_keeps_short_names(name: str) -> None:
    assert naming.bounded(name) == name


@pytest.mark.parametrize(
    "name",
    ["a" * 64, "a" * 253, "x-" * 40, "a." * 40 + "b", "prefix-" + "z" * 100, "a" * 51 + "-" + "b" * 20],
)
def test_bounded_hashes_long_names(name: str) -> None:
    bounded = naming.bounded(name)
    assert len(bounded) <= naming.MAX_NAME
    assert re.fullmatch(r".*[a-z0-9]-[0-9a-f]{10}", bounded), bounded
    assert "--" not in bounded[-12:]
    assert ".-" not in bounded
    assert bounded == naming.bounded(name)  # deterministic
    assert LABEL_VALUE.fullmatch(bounded)
    assert bounded.startswith(name[:40].rstrip("-."))


@pytest.mark.parametrize("limit", [20, 40, 63])
def test_bounded_respects_limit(limit: int) -> None:
    assert len(naming.bounded("n" * 100, limit)) <= limit


def test_bounded_names_with_a_shared_prefix_stay_unique() -> None:
    prefix = "p" * 70
    names = [prefix + suffix for suffix in ("a", "b", "c", "-a", "aa")] + ["p" * n for n in range(60, 80)]
    bounded = [naming.bounded(n) for n in names]
    assert len(set(bounded)) == len(names)


@pytest.mark.parametrize(
    "function",
    [
        naming.pod_name,
        naming.pvc_name,
        naming.service_account_name,
        naming.network_policy_name,
        naming.exec_role_name,
    ],
)
@pytest.mark.parametrize("workspace", ["w", "a" * 50, "a" * 60, "a" * 253, "team.a-" + "b" * 100])
def test_child_names_fit_and_are_deterministic(function: Any, workspace: str) -> None:
    name = function(workspace)
    assert len(name) <= naming.MAX_NAME
    assert name == function(workspace)
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name)
    assert function(workspace + "x") != name


def test_child_names_of_a_short_workspace() -> None:
    assert naming.pod_name("demo") == "demo-sandbox"
    assert naming.pvc_name("demo") == "demo-workspace"
    assert naming.service_account_name("demo") == "demo-sandbox"
    assert naming.network_policy_name("demo") == "demo-sandbox"
    assert naming.exec_role_name("demo") == "demo-harness-exec"
    assert naming.run_workspace_name("run-1") == "run-1"


@pytest.mark.parametrize("workspace", ["w", "a" * 253, "a.b.c"])
def test_workspace_labels(workspace: str) -> None:
    labels = naming.workspace_labels(workspace, "sandbox")
    assert labels["app.kubernetes.io/managed-by"] == naming.MANAGED_BY
    assert labels["app.kubernetes.io/component"] == "sandbox"
    assert labels[naming.LABEL_WORKSPACE] == naming.bounded(workspace)
    for value in labels.values():
        assert len(value) <= 63
        assert LABEL_VALUE.fullmatch(value)


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        ({"x": 1, "y": [1, 2]}, {"y": [1, 2], "x": 1}, True),
        ({"x": 1}, {"x": 2}, False),
        ({"x": [1, 2]}, {"x": [2, 1]}, False),
        ({"x": None}, {}, False),
    ],
)
def test_spec_hash(a: dict[str, Any], b: dict[str, Any], equal: bool) -> None:
    assert (naming.spec_hash(a) == naming.spec_hash(b)) is equal
    assert re.fullmatch(r"[0-9a-f]{16}", naming.spec_hash(a))


# ---- times ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("2025-03-01T12:00:00Z", NOW),
        ("2025-03-01T13:00:00+01:00", NOW),
        ("2025-03-01T12:00:00", NOW),
        ("2025-03-01T12:00:00.5Z", NOW + timedelta(milliseconds=500)),
        (NOW, NOW),
        (datetime(2025, 3, 1, 12, 0, 0), NOW),  # naive means UTC
    ],
)
def test_parse_time(value: str | datetime | None, expected: datetime | None) -> None:
    parsed = parse_time(value)
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo is not None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (NOW, "2025-03-01T12:00:00Z"),
        (NOW + timedelta(microseconds=999), "2025-03-01T12:00:00Z"),
        (datetime(2025, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))), "2025-03-01T12:00:00Z"),
    ],
)
def test_format_time(value: datetime, expected: str) -> None:
    assert format_time(value) == expected
    assert parse_time(format_time(value)) == value.replace(microsecond=0)
