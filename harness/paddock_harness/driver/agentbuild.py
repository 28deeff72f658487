"""From an AgentRunSpec to a SandboxAgent: model client, model settings, capabilities, manifest, approvals.

Every sandbox tool is built with ``needs_approval`` always true. That is not the human approval policy: it
makes the SDK stop at an interruption after each model response that calls tools, which is the driver's
durable checkpoint barrier (see driver.run). Which pending calls a HUMAN must decide is `needs_human`.
"""

from __future__ import annotations

import base64
import fnmatch
import json
from dataclasses import dataclass
from typing import Any, Final

from agents import ModelSettings
from agents.models.openai_responses import OpenAIResponsesModel
from agents.run_context import RunContextWrapper
from agents.sandbox import Manifest, SandboxAgent
from agents.sandbox.capabilities import Capability, Compaction, Filesystem, FilesystemToolSet, Shell, ShellToolSet
from agents.sandbox.capabilities.tools.shell_tool import ExecCommandArgs, ExecCommandTool
from agents.sandbox.entries import BaseEntry, Dir, File, GitRepo
from openai import AsyncOpenAI
from openai.types.shared import Reasoning

from paddock_operator.api import AgentRunSpec, Approval, ApprovalPolicy
from paddock_operator.api import Manifest as SpecManifest

from . import protocol

SHELL_TOOLS: Final = frozenset({"exec_command", "write_stdin"})
PATCH_TOOL: Final = "apply_patch"
AGENT_NAME: Final = "paddock"
COMMAND_MAX_CHARS: Final = 16384


async def checkpoint_gate(_ctx: RunContextWrapper[Any], _params: dict[str, Any], _call_id: str) -> bool:
    """Every tool call interrupts the run once; the driver checkpoints, then approves or asks a human."""
    return True


class BoundedExecCommandTool(ExecCommandTool):
    """exec_command with the run's commandTimeoutSeconds.

    Backends without a PTY (the Kubernetes one) run one-shot commands whose timeout the SDK derives from
    the model's ``yield_time_ms`` (default 10 s, meant as "yield", not "kill"): there the limit is exactly
    commandTimeoutSeconds. With a PTY the command keeps running after the yield; the yield is capped.
    """

    def __init__(self, base: ExecCommandTool, timeout_seconds: float) -> None:
        super().__init__(
            session=base.session, user=base.user, workspace_scope=base.workspace_scope, needs_approval=checkpoint_gate
        )
        self.command_timeout_seconds = timeout_seconds

    async def _run(self, args: ExecCommandArgs, wrapped_command: str) -> str:
        limit_ms = int(self.command_timeout_seconds * 1000)
        yield_ms = min(args.yield_time_ms, limit_ms) if self.session.supports_pty() else limit_ms
        return await super()._run(args.model_copy(update={"yield_time_ms": yield_ms}), wrapped_command)


def _configure_shell(timeout_seconds: float) -> Any:
    def configure(toolset: ShellToolSet) -> None:
        toolset.exec_command = BoundedExecCommandTool(toolset.exec_command, timeout_seconds)
        if toolset.write_stdin is not None:
            toolset.write_stdin.needs_approval = checkpoint_gate

    return configure


def _configure_filesystem(toolset: FilesystemToolSet) -> None:
    toolset.apply_patch.needs_approval = True
    toolset.view_image.needs_approval = checkpoint_gate


def build_capabilities(spec: AgentRunSpec) -> list[Capability]:
    capabilities: list[Capability] = []
    if spec.capabilities.shell:
        capabilities.append(Shell(configure_tools=_configure_shell(float(spec.limits.command_timeout_seconds))))
    if spec.capabilities.filesystem:
        capabilities.append(Filesystem(configure_tools=_configure_filesystem))
    if spec.capabilities.compaction:
        capabilities.append(Compaction())
    return capabilities


def build_manifest(manifest: SpecManifest, root: str | None = None) -> Manifest:
    """Our typed subset to the SDK's Manifest. Without a root the sandbox client picks the volume's mount."""
    entries: dict[str, BaseEntry] = {}
    for entry in manifest.entries:
        if entry.file is not None:
            if entry.file.content is not None:
                content = entry.file.content.encode("utf-8")
            else:
                content = base64.b64decode(entry.file.content_base64 or "")
            entries[entry.path] = File(content=content)
        elif entry.git_repo is not None:
            repo = entry.git_repo
            entries[entry.path] = GitRepo(host=repo.host, repo=repo.repo, ref=repo.ref, subpath=repo.subpath)
        else:
            entries[entry.path] = Dir()
    environment = {"value": {var.name: var.value for var in manifest.environment}}
    if root is None:
        return Manifest(entries=entries, environment=environment)
    return Manifest(root=root, entries=entries, environment=environment)


def describe_call(tool: str, arguments: str | None) -> str:
    """The exact command a tool call wants to run (for approvals, the transcript and pattern matching)."""
    raw = arguments or ""
    if tool in SHELL_TOOLS:
        try:
            parsed = json.loads(raw)
        except ValueError:
            return raw[:COMMAND_MAX_CHARS]
        if isinstance(parsed, dict):
            value = parsed.get("cmd") if tool == "exec_command" else parsed.get("chars")
            if isinstance(value, str):
                return value[:COMMAND_MAX_CHARS]
    return raw[:COMMAND_MAX_CHARS]


def needs_human(approval: Approval, tool: str, command: str) -> bool:
    """Whether spec.approval asks a human about this call. Pure.

    Always: every shell command (exec_command, write_stdin) and every patch. CommandPatterns: shell
    commands whose whole text matches one of the fnmatch patterns (case-sensitive; write '*git push*' to
    match it anywhere in a compound command). Read-only tools (view_image) never need approval.
    """
    if approval.policy == ApprovalPolicy.NEVER:
        return False
    if approval.policy == ApprovalPolicy.ALWAYS:
        return tool in SHELL_TOOLS or tool == PATCH_TOOL
    if tool not in SHELL_TOOLS:
        return False
    text = command.strip()
    return any(fnmatch.fnmatchcase(text, pattern) for pattern in approval.command_patterns)


@dataclass(frozen=True)
class ModelTarget:
    """Where a run's model requests go. The key is held only in memory, in the openai client."""

    model: str
    base_url: str | None
    api_key: str = ""

    def __repr__(self) -> str:  # never print the key
        return f"ModelTarget(model={self.model!r}, base_url={self.base_url!r})"


def build_model(target: ModelTarget, run_ref: str, *, max_retries: int, timeout: float) -> OpenAIResponsesModel:
    client = AsyncOpenAI(
        base_url=target.base_url,
        api_key=target.api_key,
        max_retries=max_retries,
        timeout=timeout,
        default_headers={protocol.RUN_HEADER: run_ref},
    )
    return OpenAIResponsesModel(model=target.model, openai_client=client)


def build_model_settings(spec: AgentRunSpec) -> ModelSettings:
    if spec.model.reasoning_effort is None:
        return ModelSettings()
    return ModelSettings(reasoning=Reasoning(effort=spec.model.reasoning_effort.value))


def build_agent(
    spec: AgentRunSpec,
    target: ModelTarget,
    *,
    run_ref: str,
    default_instructions: str,
    max_retries: int = 5,
    timeout: float = 600.0,
) -> SandboxAgent[Any]:
    return SandboxAgent(
        name=AGENT_NAME,
        instructions=spec.instructions or default_instructions,
        model=build_model(target, run_ref, max_retries=max_retries, timeout=timeout),
        model_settings=build_model_settings(spec),
        capabilities=build_capabilities(spec),
    )
