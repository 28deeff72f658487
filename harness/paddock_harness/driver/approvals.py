"""Pending tool calls: who must decide, what the decisions are, and how they are applied to a RunState."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agents.items import ToolApprovalItem
from agents.run_state import RunState

from paddock_operator.api import Approval

from . import protocol
from .agentbuild import describe_call, needs_human
from .checkpoint import CheckpointMeta, Decision, PendingCall


def call_info(raw: Any) -> tuple[str, str, str]:
    """(tool name, call id, raw arguments) of a tool call item, SDK object or dict."""

    def pick(name: str) -> Any:
        return raw.get(name) if isinstance(raw, dict) else getattr(raw, name, None)

    tool = pick("name") or pick("type") or "unknown"
    call_id = pick("call_id") or pick("id") or ""
    arguments = pick("arguments")
    if arguments is None:
        arguments = pick("input")
    return (
        str(tool),
        str(call_id),
        arguments if isinstance(arguments, str) else ("" if arguments is None else str(arguments)),
    )


def pending_calls(items: list[ToolApprovalItem], approval: Approval, requested_time: str) -> list[PendingCall]:
    calls = []
    for item in items:
        tool, call_id, arguments = call_info(item.raw_item)
        tool = item.tool_name or tool
        command = describe_call(tool, arguments)
        calls.append(
            PendingCall(
                call_id=call_id,
                tool=tool,
                command=command,
                needs_human=needs_human(approval, tool, command),
                requested_time=requested_time,
            )
        )
    return calls


def undecided(meta: CheckpointMeta) -> list[PendingCall]:
    """Calls still waiting for a human (none once they were released to execute)."""
    if meta.inflight:
        return []
    return [p for p in meta.pending if p.needs_human and p.call_id not in meta.decisions]


def status_entries(calls: list[PendingCall]) -> list[dict[str, Any]]:
    return [
        {"callId": c.call_id, "tool": c.tool, "command": c.command, "requestedTime": c.requested_time} for c in calls
    ]


def record_decisions(
    meta: CheckpointMeta, decisions: protocol.ApprovalDecisions, time: str
) -> tuple[CheckpointMeta, list[tuple[PendingCall, Decision]]]:
    """Meta with the human decisions added (only for undecided calls), and what was newly decided."""
    waiting = {p.call_id: p for p in undecided(meta)}
    recorded = dict(meta.decisions)
    new: list[tuple[PendingCall, Decision]] = []
    for call_id in sorted(decisions.rejected):
        if call_id in waiting:
            decision = Decision(approved=False, reason=decisions.reject_reason, time=time)
            recorded[call_id] = decision
            new.append((waiting[call_id], decision))
    for call_id in sorted(decisions.approved):
        if call_id in waiting:
            decision = Decision(approved=True, time=time)
            recorded[call_id] = decision
            new.append((waiting[call_id], decision))
    return meta.model_copy(update={"decisions": recorded}), new


def release(meta: CheckpointMeta) -> CheckpointMeta:
    """Meta with every approved call marked in flight: from here on a crash must not re-run them."""
    approved = [
        p.call_id
        for p in meta.pending
        if (meta.decisions[p.call_id].approved if p.call_id in meta.decisions else not p.needs_human)
    ]
    return meta.model_copy(update={"inflight": approved or ["-"]})  # "-" marks "released, nothing approved"


@dataclass
class Applied:
    approved: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    interrupted: list[PendingCall] = field(default_factory=list)
    """Released calls whose outcome a crash made unknown; rejected towards the model, never re-run."""


def apply(state: RunState[Any, Any], meta: CheckpointMeta, *, after_crash: bool) -> Applied:
    """Approve/reject the state's interruptions per meta. With after_crash, released calls are rejected
    with an honest message instead of running a second time (at-most-once)."""
    applied = Applied()
    by_id = {p.call_id: p for p in meta.pending}
    released = set(meta.inflight)
    for item in state.get_interruptions():
        _, call_id, _ = call_info(item.raw_item)
        call = by_id.get(call_id)
        decision = meta.decisions.get(call_id)
        if after_crash and call_id in released:
            state.reject(item, rejection_message=protocol.RESTART_MESSAGE)
            applied.rejected.append(call_id)
            if call is not None:
                applied.interrupted.append(call)
        elif decision is not None and not decision.approved:
            state.reject(item, rejection_message=protocol.rejection_message(decision.reason))
            applied.rejected.append(call_id)
        elif decision is not None or (call is not None and not call.needs_human):
            state.approve(item)
            applied.approved.append(call_id)
        else:
            # Not in the checkpoint's list or undecided: never run a call nobody approved.
            state.reject(item, rejection_message=protocol.rejection_message("no approval was recorded"))
            applied.rejected.append(call_id)
    return applied
