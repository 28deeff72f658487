"""AgentRun status writes with optimistic concurrency and a bounded rate.

Every write is a merge patch of the status subresource carrying metadata.resourceVersion: if the run
changed since we read it (the operator cancelled it, timed it out, or another writer raced us) the patch
fails with 409 and we re-read. A run that became terminal, was cancelled or deleted raises `RunEndedError`:
the driver stops without writing anything more (the operator owns that outcome).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from paddock_operator import conditions as cond
from paddock_operator import phases
from paddock_operator.api import RunPhase

from . import protocol
from .kubeio import AsyncKube, ConflictError, GoneError

RUN_API: Final = "paddock.dev/v1alpha1"
_MAX_ATTEMPTS: Final = 8


class RunEndedError(Exception):
    """The run is no longer ours to drive: finished, cancelled, deleted, or its phase moved elsewhere."""


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def run_ended_reason(body: dict[str, Any] | None) -> str | None:
    """Why a run must not be driven any more (None when it may)."""
    if body is None:
        return "the run was deleted"
    if body["metadata"].get("deletionTimestamp"):
        return "the run is being deleted"
    if (body.get("spec") or {}).get("cancel"):
        return "the run was cancelled"
    phase = (body.get("status") or {}).get("phase")
    if phases.is_terminal(phase):
        return f"the run is {phase}"
    if phase not in (RunPhase.RUNNING.value, RunPhase.AWAITING_APPROVAL.value):
        return f"the run is {phase or 'not started'}"
    return None


class StatusWriter:
    def __init__(
        self,
        kube: AsyncKube,
        body: dict[str, Any],
        *,
        interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.body = body
        self.namespace: str = body["metadata"]["namespace"]
        self.name: str = body["metadata"]["name"]
        self.interval = interval
        self._clock = clock
        self._staged: dict[str, Any] = {}
        self._last_write = float("-inf")

    @property
    def phase(self) -> str | None:
        phase = (self.body.get("status") or {}).get("phase")
        return str(phase) if phase is not None else None

    @property
    def generation(self) -> int | None:
        generation = self.body["metadata"].get("generation")
        return int(generation) if generation is not None else None

    async def refresh(self) -> dict[str, Any]:
        body = await self.kube.get(RUN_API, "AgentRun", self.namespace, self.name)
        reason = run_ended_reason(body)
        if reason is not None or body is None:
            raise RunEndedError(reason or "gone")
        self.body = body
        return body

    def stage(self, **fields: Any) -> None:
        """Fields for the next write (counters, usage); written by maybe_flush/flush/write."""
        self._staged.update(fields)

    async def maybe_flush(self) -> None:
        if self._staged and self._clock() - self._last_write >= self.interval:
            await self.write({})

    async def flush(self) -> None:
        if self._staged:
            await self.write({})

    def condition(self, type_: str, status: bool, reason: str, message: str) -> dict[str, Any]:
        return cond.make_condition(type_, status, reason, message, datetime.now(UTC), self.generation)

    async def write(
        self,
        fields: dict[str, Any],
        *,
        phase: RunPhase | None = None,
        conditions: list[dict[str, Any]] | None = None,
        event: tuple[str, str, str] | None = None,
    ) -> None:
        """Patch status (staged fields + fields), moving to `phase` if given. Raises RunEndedError."""
        for _ in range(_MAX_ATTEMPTS):
            reason = run_ended_reason(self.body)
            if reason is not None:
                raise RunEndedError(reason)
            current = self.phase
            status = {**self._staged, **fields}
            if phase is not None:
                phases.check_transition(RunPhase(current) if current else None, phase)
                status["phase"] = phase.value
            if conditions:
                existing = (self.body.get("status") or {}).get("conditions") or []
                status["conditions"] = cond.merge_conditions(existing, [dict(c) for c in conditions])
            try:
                self.body = await self.kube.patch_merge(
                    RUN_API,
                    "AgentRun",
                    self.namespace,
                    self.name,
                    {"status": status},
                    subresource="status",
                    resource_version=self.body["metadata"]["resourceVersion"],
                )
            except ConflictError:
                await self.refresh()
                continue
            except GoneError as error:
                raise RunEndedError("the run was deleted") from error
            self._staged.clear()
            self._last_write = self._clock()
            if event is not None:
                await self.kube.post_event(self.body, *event)
            return
        raise ConflictError(f"status of {self.namespace}/{self.name} kept changing; giving up this write")

    async def remove_annotations(self, consumed: dict[str, str]) -> None:
        """Drop consumed approval annotations, only while they still hold the consumed value (a newer
        annotation written meanwhile is left for the next round). Optimistic concurrency."""
        for _ in range(_MAX_ATTEMPTS):
            current = annotations_of(self.body)
            keys = [key for key, value in consumed.items() if current.get(key) == value]
            if not keys:
                return
            try:
                self.body = await self.kube.patch_merge(
                    RUN_API,
                    "AgentRun",
                    self.namespace,
                    self.name,
                    {"metadata": {"annotations": dict.fromkeys(keys)}},
                    resource_version=self.body["metadata"]["resourceVersion"],
                )
                return
            except ConflictError:
                await self.refresh()
            except GoneError as error:
                raise RunEndedError("the run was deleted") from error

    async def event(self, event_type: str, reason: str, message: str) -> None:
        await self.kube.post_event(self.body, event_type, reason, message)


def annotations_of(body: dict[str, Any]) -> dict[str, str]:
    return dict((body.get("metadata") or {}).get("annotations") or {})


def approval_annotations_present(body: dict[str, Any]) -> bool:
    annotations = annotations_of(body)
    return any(key in annotations for key in (protocol.ANNOTATION_APPROVE, protocol.ANNOTATION_REJECT))
