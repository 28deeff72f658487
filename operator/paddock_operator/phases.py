"""The AgentRun phase machine, shared by the operator and the harness.

    Pending ──▶ Running ◀──▶ AwaitingApproval
       │           │               │
       └───────────┴───────────────┴──▶ Succeeded | Failed | Cancelled   (terminal)

The operator moves runs Pending → Running (the workspace is Ready and the run heads its queue) and into
Failed (DeadlineExceeded) or Cancelled. The harness moves Running ↔ AwaitingApproval and into Succeeded or
Failed. Every write goes through `check_transition`, and through an optimistic-concurrency status patch, so
two writers can never both win a race.
"""

from __future__ import annotations

from typing import Final

from .api.run import RunPhase

TERMINAL: Final = frozenset({RunPhase.SUCCEEDED, RunPhase.FAILED, RunPhase.CANCELLED})
ACTIVE: Final = frozenset({RunPhase.RUNNING, RunPhase.AWAITING_APPROVAL})

_ALLOWED: Final[dict[RunPhase, frozenset[RunPhase]]] = {
    RunPhase.PENDING: frozenset({RunPhase.RUNNING, RunPhase.FAILED, RunPhase.CANCELLED}),
    RunPhase.RUNNING: frozenset({RunPhase.AWAITING_APPROVAL, *TERMINAL}),
    RunPhase.AWAITING_APPROVAL: frozenset({RunPhase.RUNNING, *TERMINAL}),
    RunPhase.SUCCEEDED: frozenset(),
    RunPhase.FAILED: frozenset(),
    RunPhase.CANCELLED: frozenset(),
}


class IllegalTransitionError(ValueError):
    pass


def can_transition(current: RunPhase | None, target: RunPhase) -> bool:
    if current is None:
        return target == RunPhase.PENDING or target in _ALLOWED[RunPhase.PENDING]
    return current == target or target in _ALLOWED[current]


def check_transition(current: RunPhase | None, target: RunPhase) -> None:
    if not can_transition(current, target):
        raise IllegalTransitionError(f"an AgentRun cannot go from {current} to {target}")


def is_terminal(phase: RunPhase | str | None) -> bool:
    return phase is not None and RunPhase(phase) in TERMINAL
