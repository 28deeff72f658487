"""The harness's contract with users and other components: annotations, labels, conditions, reasons.

Approvals take ONE kubectl command (the harness removes the annotation once it has recorded the decision)::

    kubectl annotate agentrun NAME paddock.dev/approve=call_abc          # one call
    kubectl annotate agentrun NAME paddock.dev/approve=call_a,call_b     # several
    kubectl annotate agentrun NAME paddock.dev/approve=all               # everything pending
    kubectl annotate agentrun NAME paddock.dev/reject=call_abc paddock.dev/reject-reason="use a branch"

A call named by both approve and reject is rejected (the safe choice). Names that are not pending are
ignored with a Warning event. Decisions are recorded in the run's checkpoint, in an Event per call and in
the ``Approval`` condition before the annotations are removed, so a harness crash in between loses nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from paddock_operator.naming import LABEL_RUN, bounded

PREFIX: Final = "paddock.dev/"
ANNOTATION_APPROVE: Final = PREFIX + "approve"
ANNOTATION_REJECT: Final = PREFIX + "reject"
ANNOTATION_REJECT_REASON: Final = PREFIX + "reject-reason"
APPROVAL_ANNOTATIONS: Final = (ANNOTATION_APPROVE, ANNOTATION_REJECT, ANNOTATION_REJECT_REASON)
ALL: Final = "all"

# Labels of the objects the harness owns (all carry an ownerReference to the run).
LABEL_RUN_NAME: Final = LABEL_RUN
LABEL_RUN_UID: Final = PREFIX + "run-uid"
LABEL_KIND: Final = PREFIX + "harness-object"
KIND_STATE: Final = "state"
KIND_STATE_CHUNK: Final = "state-chunk"
KIND_TRANSCRIPT: Final = "transcript"
KIND_LEASE: Final = "lease"

COMPONENT: Final = "paddock-harness"
RUN_HEADER: Final = "x-paddock-run"

# Condition types the harness writes (the operator writes WorkspaceReady; both write Finished).
CONDITION_CLAIMED: Final = "Claimed"
CONDITION_APPROVAL: Final = "Approval"
CONDITION_RESUMED: Final = "Resumed"


class Reason:
    """Reasons the harness writes into conditions and lastError. CamelCase and stable."""

    CLAIMED: Final = "Claimed"
    SUCCEEDED: Final = "Succeeded"
    APPROVAL_REQUIRED: Final = "ApprovalRequired"
    APPROVALS_RESOLVED: Final = "ApprovalsResolved"
    RESUMED: Final = "ResumedFromCheckpoint"
    COMMAND_INTERRUPTED: Final = "CommandInterrupted"
    # failures
    MAX_TURNS_EXCEEDED: Final = "MaxTurnsExceeded"
    MAX_TOTAL_TOKENS_EXCEEDED: Final = "MaxTotalTokensExceeded"
    MODEL_AUTHENTICATION_FAILED: Final = "ModelAuthenticationFailed"
    MODEL_PERMISSION_DENIED: Final = "ModelPermissionDenied"
    MODEL_NOT_FOUND: Final = "ModelNotFound"
    MODEL_CREDENTIALS_UNAVAILABLE: Final = "ModelCredentialsUnavailable"
    RATE_LIMITED: Final = "RateLimited"
    MODEL_UNAVAILABLE: Final = "ModelUnavailable"
    MODEL_ERROR: Final = "ModelError"
    MODEL_BEHAVIOR_ERROR: Final = "ModelBehaviorError"
    SANDBOX_UNAVAILABLE: Final = "SandboxUnavailable"
    INVALID_SPEC: Final = "InvalidSpec"
    CHECKPOINT_UNREADABLE: Final = "CheckpointUnreadable"
    HARNESS_ERROR: Final = "HarnessError"


def run_label_value(run_name: str) -> str:
    return bounded(run_name)


def lease_name(run_name: str) -> str:
    return bounded(f"{run_name}-harness")


@dataclass(frozen=True)
class ApprovalDecisions:
    """What the annotations on a run say about its pending calls."""

    approved: frozenset[str] = frozenset()
    rejected: frozenset[str] = frozenset()
    reject_reason: str | None = None
    unknown: tuple[str, ...] = ()
    present: tuple[str, ...] = field(default=())
    """Approval annotation keys found on the object (to remove once recorded)."""

    @property
    def empty(self) -> bool:
        return not self.approved and not self.rejected


def _names(value: str) -> list[str]:
    return [part.strip() for part in value.replace(" ", ",").split(",") if part.strip()]


def parse_decisions(annotations: Mapping[str, str] | None, pending: Iterable[str]) -> ApprovalDecisions:
    """Decisions for the pending call ids from approve/reject annotations. Pure."""
    annotations = annotations or {}
    pending_ids = list(pending)
    present = tuple(key for key in APPROVAL_ANNOTATIONS if key in annotations)
    unknown: list[str] = []

    def resolve(key: str) -> set[str]:
        raw = annotations.get(key)
        if raw is None:
            return set()
        chosen: set[str] = set()
        for name in _names(raw):
            if name.lower() == ALL:
                chosen.update(pending_ids)
            elif name in pending_ids:
                chosen.add(name)
            else:
                unknown.append(name)
        return chosen

    rejected = resolve(ANNOTATION_REJECT)
    approved = resolve(ANNOTATION_APPROVE) - rejected  # reject wins over approve
    reason = (annotations.get(ANNOTATION_REJECT_REASON) or "").strip() or None
    return ApprovalDecisions(
        approved=frozenset(approved),
        rejected=frozenset(rejected),
        reject_reason=reason,
        unknown=tuple(unknown),
        present=present,
    )


def rejection_message(reason: str | None) -> str:
    """What the model is told when a human rejects its tool call."""
    base = "A human reviewer rejected this tool call; it was not executed."
    return f"{base} Reason: {reason}" if reason else base


RESTART_MESSAGE: Final = (
    "This tool call was started but the harness driving the run restarted before its result was recorded. "
    "It may or may not have run (fully or partly); it was NOT retried. Check the workspace state before "
    "running it again."
)
