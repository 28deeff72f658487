"""Drive one AgentRun with the Agents SDK, in segments separated by durable checkpoints.

Every sandbox tool asks for approval (agentbuild.checkpoint_gate), so a model response that calls tools
ends the Runner at an SDK interruption. The run then alternates between two kinds of segment:

- think: one model call, from the prompt or from a checkpoint. It ends with the final answer (Succeeded),
  an error (Failed), or an interruption, which is saved as a checkpoint listing the pending calls.
- execute: the approved calls of the last interruption run (``cancel(mode="after_turn")`` stops the
  Runner before the next model call) and the state with their outputs is saved again.

Before an execute segment the calls are marked "in flight" in the checkpoint. A harness that restarts
resumes from the last checkpoint: completed calls are in the saved state and never run again; calls that
were in flight have an unknown outcome and are NOT re-run: the model is told so (at-most-once), and the
run gets a ``Resumed`` condition with reason ``CommandInterrupted`` naming them. Pending calls that need a
human (spec.approval) park the run in AwaitingApproval; the driver exits and a later drive resumes it once
the approve/reject annotations arrive (protocol.py).
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass
from typing import Any

from agents import RunConfig, Runner
from agents.result import RunResultStreaming
from agents.run_state import RunState
from agents.sandbox import SandboxAgent, SandboxRunConfig
from agents.sandbox.session.sandbox_session import SandboxSession
from pydantic import ValidationError

from paddock_operator.api import OUTPUT_MAX_CHARS, AgentRunSpec, RunPhase
from paddock_operator.conditions import FINISHED
from paddock_operator.reconcile.run import workspace_of

from . import approvals, metrics, protocol
from .agentbuild import ModelTarget, build_agent, build_manifest
from .checkpoint import (
    Checkpoint,
    CheckpointError,
    CheckpointMeta,
    CheckpointStore,
    LostOwnershipError,
    PendingCall,
)
from .errors import RunFailureError, classify
from .kubeio import AsyncKube
from .protocol import Reason
from .sandboxes import SandboxProvider, SandboxTarget, close_session, open_session, session_state
from .segment import SegmentObserver
from .settings import HarnessSettings
from .status import RunEndedError, StatusWriter, annotations_of, now_rfc3339
from .transcript import TranscriptWriter

log = logging.getLogger("paddock.harness.run")


@dataclass
class DriverDeps:
    kube: AsyncKube
    settings: HarnessSettings
    sandboxes: SandboxProvider


class RunDriver:
    def __init__(self, deps: DriverDeps, body: dict[str, Any]) -> None:
        self.deps = deps
        self.settings = deps.settings
        self.namespace: str = body["metadata"]["namespace"]
        self.name: str = body["metadata"]["name"]
        self.status = StatusWriter(deps.kube, body, interval=deps.settings.status_interval_seconds)
        self.checkpoints = CheckpointStore(deps.kube, body)
        self.transcript = TranscriptWriter(deps.kube, body)
        self.meta = CheckpointMeta()
        self.finishing = False
        """The driver is writing the run's final phase: the watch event it causes must not cancel the drive."""
        self._crashed = False
        """The loaded checkpoint had calls in flight: the previous driver died while they ran."""
        self._result: RunResultStreaming | None = None
        self._log = {"namespace": self.namespace, "object": self.name}

    # -- entry point ---------------------------------------------------------------------------------

    async def drive(self) -> str:
        """Drive until the run finishes, waits for a human, or leaves our hands. Returns the outcome."""
        try:
            return await self._drive()
        except (RunEndedError, LostOwnershipError) as stop:
            log.info("stopped driving: %s", stop, extra=self._log)
            return "Released"
        except BaseException as error:
            if self._result is not None:
                self._result.cancel()
            if not isinstance(error, Exception):
                raise  # cancellation: the controller decided (run ended, claim lost, shutdown)
            classified = classify(error, retries=self.settings.model_max_retries)
            if classified.reason == Reason.HARNESS_ERROR:
                log.exception("run failed on an unexpected error", extra=self._log)
            return await self._fail(classified.reason, classified.message)
        finally:
            try:
                await self.transcript.flush()
            except Exception as error:
                log.warning("transcript flush failed: %s", error, extra=self._log)

    async def _drive(self) -> str:
        try:
            spec = AgentRunSpec.model_validate(self.status.body.get("spec") or {})
        except ValidationError as error:
            raise RunFailureError(Reason.INVALID_SPEC, f"the run's spec is invalid: {error}") from error
        await self.transcript.open()
        checkpoint = await self.checkpoints.load()
        if checkpoint is not None:
            self.meta = checkpoint.meta
            self._crashed = bool(checkpoint.meta.inflight)
            if not await self._decide(spec):
                return RunPhase.AWAITING_APPROVAL.value
        elif self.status.phase == RunPhase.AWAITING_APPROVAL.value:
            raise CheckpointError("the run awaits approval but its checkpoint is missing")
        else:
            await self.transcript.add("prompt", spec.prompt, split=True)

        agent = build_agent(
            spec,
            await self._model_target(spec),
            run_ref=f"{self.namespace}/{self.name}",
            default_instructions=self.settings.default_instructions,
            max_retries=self.settings.model_max_retries,
            timeout=self.settings.model_timeout_seconds,
        )
        workspace = (self.status.body.get("status") or {}).get("workspaceName") or workspace_of(self.status.body)
        target = self.deps.sandboxes.target(self.namespace, workspace)
        manifest = build_manifest(spec.manifest, target.manifest_root)
        session, _ = await open_session(target, manifest, checkpoint.sandbox_session if checkpoint else None)
        try:
            await self.status.write(
                {},
                phase=RunPhase.RUNNING,
                conditions=[
                    self.status.condition(
                        protocol.CONDITION_CLAIMED, True, Reason.CLAIMED, f"driven by {self.settings.identity}"
                    )
                ],
            )
            return await self._loop(spec, agent, target, session, checkpoint)
        finally:
            await close_session(target, session)

    # -- approvals -----------------------------------------------------------------------------------

    async def _decide(self, spec: AgentRunSpec) -> bool:
        """Consume approval annotations. True when nothing waits for a human any more."""
        waiting = approvals.undecided(self.meta)
        if not waiting:
            return True
        annotations = annotations_of(self.status.body)
        decisions = protocol.parse_decisions(annotations, [p.call_id for p in waiting])
        if decisions.present:
            self.meta, new = approvals.record_decisions(self.meta, decisions, now_rfc3339())
            if new:
                self.meta = await self.checkpoints.update_meta(self.meta)  # durable before the annotation goes
            for call, decision in new:
                verdict = "approved" if decision.approved else "rejected"
                metrics.APPROVALS.labels(verdict).inc()
                message = f"{call.call_id} ({call.tool}) {verdict}: {call.command[:200]}"
                if decision.reason:
                    message += f" — reason: {decision.reason}"
                await self.status.event("Normal", "Approved" if decision.approved else "Rejected", message)
                await self.transcript.add(
                    "approval",
                    call.command,
                    callId=call.call_id,
                    tool=call.tool,
                    decision=verdict,
                    reason=decision.reason,
                )
            if decisions.unknown:
                await self.status.event(
                    "Warning", "UnknownApproval", f"not pending, ignored: {', '.join(decisions.unknown)[:500]}"
                )
            await self.status.remove_annotations({k: annotations[k] for k in decisions.present})
        waiting = approvals.undecided(self.meta)
        if waiting:
            await self._await_approval(waiting)
            return False
        # Running first: a crash before the release below then still gets the run driven again.
        await self.status.write(
            {"pendingApprovals": []},
            phase=RunPhase.RUNNING,
            conditions=[
                self.status.condition(
                    protocol.CONDITION_APPROVAL, False, Reason.APPROVALS_RESOLVED, "every pending call was decided"
                )
            ],
        )
        self.meta = await self.checkpoints.update_meta(approvals.release(self.meta))
        return True

    async def _await_approval(self, waiting: list[PendingCall]) -> None:
        entries = approvals.status_entries(waiting)
        message = f"{len(waiting)} tool call(s) need approval: kubectl annotate agentrun {self.name} " + (
            f"{protocol.ANNOTATION_APPROVE}=<callId|all> (or {protocol.ANNOTATION_REJECT}=...)"
        )
        first_time = self.status.phase != RunPhase.AWAITING_APPROVAL.value
        await self.status.write(
            {"pendingApprovals": entries},
            phase=RunPhase.AWAITING_APPROVAL,
            conditions=[self.status.condition(protocol.CONDITION_APPROVAL, True, Reason.APPROVAL_REQUIRED, message)],
            event=("Normal", Reason.APPROVAL_REQUIRED, message) if first_time else None,
        )

    # -- the segment loop ----------------------------------------------------------------------------

    async def _loop(
        self,
        spec: AgentRunSpec,
        agent: SandboxAgent[Any],
        target: SandboxTarget,
        session: SandboxSession,
        checkpoint: Checkpoint | None,
    ) -> str:
        state: RunState[Any, Any] | None = None
        if checkpoint is not None:
            state = await RunState.from_string(agent, checkpoint.run_state)
        execute = False
        if state is not None and self.meta.pending:
            applied = approvals.apply(state, self.meta, after_crash=self._crashed)
            if applied.interrupted:
                await self._report_interrupted(applied.interrupted)
            execute = True
        elif checkpoint is not None:
            await self.status.write(
                {},
                conditions=[
                    self.status.condition(
                        protocol.CONDITION_RESUMED, True, Reason.RESUMED, "continued from the last saved turn"
                    )
                ],
            )
        run_config = RunConfig(
            sandbox=SandboxRunConfig(session=session),
            tracing_disabled=not self.settings.tracing,
            workflow_name="paddock",
            group_id=f"{self.namespace}/{self.name}",
        )
        start_usage = state._context.usage if state is not None and state._context is not None else None
        observer = SegmentObserver(
            self.transcript,
            self.status,
            tool_calls=self.meta.tool_calls,
            turns=self.meta.turns,
            usage=(start_usage.input_tokens, start_usage.output_tokens) if start_usage else (0, 0),
        )
        while True:
            if not execute:
                self._check_budget(spec, state)
            result = Runner.run_streamed(
                agent,
                state if state is not None else spec.prompt,
                max_turns=spec.limits.max_turns,
                run_config=run_config,
            )
            self._result = result
            if execute:
                result.cancel(mode="after_turn")  # run the released calls, stop before the next model call
            async for event in result.stream_events():
                await observer.on_event(event, result)
            if result.run_loop_exception is not None:
                raise result.run_loop_exception
            self._result = None
            observer.stage_counters(result)
            if result.interruptions:
                state = result.to_state()
                pending = approvals.pending_calls(result.interruptions, spec.approval, now_rfc3339())
                meta = CheckpointMeta(pending=pending, turns=result.current_turn, tool_calls=observer.tool_calls)
                if not any(p.needs_human for p in pending):
                    meta = approvals.release(meta)
                # Transcript first: a restart resumes after this checkpoint and never re-emits these entries.
                await self.transcript.flush()
                self.meta = await self.checkpoints.save(state.to_string(), session_state(target, session), meta)
                await self.status.flush()
                waiting = approvals.undecided(self.meta)
                if waiting:
                    for call in waiting:
                        await self.transcript.add(
                            "approval_requested", call.command, callId=call.call_id, tool=call.tool
                        )
                    await self._await_approval(waiting)
                    return RunPhase.AWAITING_APPROVAL.value
                approvals.apply(state, self.meta, after_crash=False)
                execute = True
            elif execute:
                # The released calls ran: save their outputs before the next model call.
                state = result.to_state()
                meta = CheckpointMeta(turns=result.current_turn, tool_calls=observer.tool_calls)
                await self.transcript.flush()
                self.meta = await self.checkpoints.save(state.to_string(), session_state(target, session), meta)
                await self.status.flush()
                execute = False
            elif result.final_output is None:
                raise RunFailureError(Reason.MODEL_BEHAVIOR_ERROR, "the model stopped without a final answer")
            else:
                return await self._succeed(str(result.final_output))

    def _check_budget(self, spec: AgentRunSpec, state: RunState[Any, Any] | None) -> None:
        limit = spec.limits.max_total_tokens
        if limit is None or state is None:
            return
        context = state._context  # the SDK keeps cumulative usage on the state's context
        used = context.usage.total_tokens if context is not None else 0
        if used >= limit:
            raise RunFailureError(
                Reason.MAX_TOTAL_TOKENS_EXCEEDED,
                f"the run used {used} tokens, reaching limits.maxTotalTokens ({limit}); no further model calls",
            )

    async def _report_interrupted(self, calls: list[PendingCall]) -> None:
        listed = "; ".join(f"{c.call_id} ({c.tool}): {c.command[:200]}" for c in calls)
        message = f"a command may have been interrupted by a harness restart and was not re-run: {listed}"
        metrics.INTERRUPTED_CALLS.inc(len(calls))
        await self.transcript.add("restart", message)
        await self.status.write(
            {},
            conditions=[
                self.status.condition(protocol.CONDITION_RESUMED, True, Reason.COMMAND_INTERRUPTED, message[:4000])
            ],
            event=("Warning", Reason.COMMAND_INTERRUPTED, message),
        )

    async def _model_target(self, spec: AgentRunSpec) -> ModelTarget:
        model = spec.model.name or self.settings.default_model
        base_url = spec.model.base_url or self.settings.default_base_url
        ref = spec.model.api_key_secret_ref
        if ref is None:
            if not self.settings.default_api_key:
                raise RunFailureError(
                    Reason.MODEL_CREDENTIALS_UNAVAILABLE,
                    "no model API key: the harness has no OPENAI_API_KEY and the run sets no model.apiKeySecretRef",
                )
            return ModelTarget(model=model, base_url=base_url, api_key=self.settings.default_api_key)
        secret = await self.deps.kube.get("v1", "Secret", self.namespace, ref.name)
        encoded = ((secret or {}).get("data") or {}).get(ref.key)
        if encoded is None:
            raise RunFailureError(
                Reason.MODEL_CREDENTIALS_UNAVAILABLE,
                f"model.apiKeySecretRef: Secret {ref.name!r} "
                + ("has no key " + repr(ref.key) if secret else "not found"),
            )
        try:
            key = base64.b64decode(encoded).decode("utf-8").strip()
        except (binascii.Error, UnicodeDecodeError) as error:
            raise RunFailureError(
                Reason.MODEL_CREDENTIALS_UNAVAILABLE, f"Secret {ref.name!r} key is not text"
            ) from error
        return ModelTarget(model=model, base_url=base_url, api_key=key)

    # -- outcomes ------------------------------------------------------------------------------------

    async def _succeed(self, output: str) -> str:
        self.finishing = True
        await self.transcript.add("final", output, split=True)
        await self.transcript.flush()
        await self.status.write(
            {
                "output": output[:OUTPUT_MAX_CHARS],
                "completionTime": now_rfc3339(),
                "pendingApprovals": [],
            },
            phase=RunPhase.SUCCEEDED,
            conditions=[self.status.condition(FINISHED, True, Reason.SUCCEEDED, "the agent gave its final answer")],
            event=("Normal", Reason.SUCCEEDED, "the agent gave its final answer"),
        )
        metrics.FINISHED.labels(RunPhase.SUCCEEDED.value, Reason.SUCCEEDED).inc()
        return RunPhase.SUCCEEDED.value

    async def _fail(self, reason: str, message: str) -> str:
        log.warning("run failed: %s: %s", reason, message, extra=self._log)
        self.finishing = True
        try:
            await self.transcript.add("error", message, reason=reason)
            await self.status.write(
                {
                    "lastError": {"reason": reason, "message": message, "time": now_rfc3339()},
                    "completionTime": now_rfc3339(),
                    "pendingApprovals": [],
                },
                phase=RunPhase.FAILED,
                conditions=[self.status.condition(FINISHED, True, reason, message[:4000])],
                event=("Warning", reason, message),
            )
        except (RunEndedError, LostOwnershipError) as stop:
            log.info("not recording the failure: %s", stop, extra=self._log)
            return "Released"
        metrics.FINISHED.labels(RunPhase.FAILED.value, reason).inc()
        return RunPhase.FAILED.value
