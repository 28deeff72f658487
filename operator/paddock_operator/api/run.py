"""AgentRun: a task for an agent, executed in an AgentWorkspace."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from .meta import (
    DNS_SUBDOMAIN_PATTERN,
    ENV_NAME_PATTERN,
    ApiModel,
    Condition,
    LocalObjectReference,
    SecretKeySelector,
    cel,
    cel_config,
    conditions_field,
)
from .workspace import AgentWorkspaceSpec

OUTPUT_MAX_CHARS = 16384
"""status.output keeps at most this many characters; the full answer stays in the transcript."""


class RunPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    AWAITING_APPROVAL = "AwaitingApproval"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


class ReasoningEffort(StrEnum):
    MINIMAL = "minimal"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class ApprovalPolicy(StrEnum):
    NEVER = "Never"
    ALWAYS = "Always"
    COMMAND_PATTERNS = "CommandPatterns"


class WorkspaceTemplateMetadata(ApiModel):
    """Labels and annotations for the workspace a run creates."""

    labels: dict[str, Annotated[str, Field(max_length=63)]] = Field(default_factory=dict, max_length=64)
    """Labels added to the workspace."""
    annotations: dict[str, Annotated[str, Field(max_length=65536)]] = Field(default_factory=dict, max_length=64)
    """Annotations added to the workspace."""


class WorkspaceTemplate(ApiModel):
    """An inline workspace, created for the run, owned by it and deleted with it."""

    metadata: WorkspaceTemplateMetadata | None = None
    """Labels and annotations of the created workspace (its name is the run's name)."""
    spec: AgentWorkspaceSpec
    """Spec of the created workspace."""


class ModelSettings(ApiModel):
    """Which model drives the run, and where it is served."""

    name: str | None = Field(default=None, min_length=1, max_length=256)
    """Model name, e.g. gpt-5.1 (default: the harness's --default-model)."""
    base_url: str | None = Field(default=None, alias="baseURL", max_length=2048, pattern=r"^https?://")
    """An OpenAI-compatible endpoint that serves the Responses API (default: OpenAI)."""
    api_key_secret_ref: SecretKeySelector | None = None
    """Secret in the run's namespace with the API key, read by the harness at run time (default: the
    harness's own key). It is never passed to the sandbox."""
    reasoning_effort: ReasoningEffort | None = None
    """Reasoning effort for reasoning models."""


class ManifestFile(ApiModel):
    """A file written into the workspace before the agent starts."""

    content: str | None = Field(default=None, max_length=1048576)
    """UTF-8 text content."""
    content_base64: str | None = Field(default=None, max_length=1398104)
    """Binary content, base64-encoded."""

    model_config = cel_config(
        cel(
            "has(self.content) != has(self.contentBase64)",
            "a file needs exactly one of content or contentBase64",
        )
    )

    @model_validator(mode="after")
    def _exactly_one_content(self) -> ManifestFile:
        if (self.content is None) == (self.content_base64 is None):
            raise ValueError("a file needs exactly one of content or contentBase64")
        return self


class ManifestGitRepo(ApiModel):
    """A git repository cloned into the workspace (needs egress to the git host)."""

    host: str = Field(default="github.com", max_length=253)
    """Git host (default github.com)."""
    repo: str = Field(min_length=1, max_length=512)
    """Repository path on the host, e.g. owner/name."""
    ref: str = Field(min_length=1, max_length=256)
    """Branch, tag or commit."""
    subpath: str | None = Field(default=None, max_length=1024)
    """Only this directory of the repository."""


class ManifestEntry(ApiModel):
    """One entry of the workspace manifest: exactly one of file, dir or gitRepo at path."""

    path: str = Field(min_length=1, max_length=1024, pattern=r"^[^/\x00]")
    """Path relative to the workspace root. It may not escape the workspace."""
    file: ManifestFile | None = None
    """A file with inline content."""
    dir: dict[str, Any] | None = Field(default=None, json_schema_extra={"maxProperties": 0})
    """An empty directory ({})."""
    git_repo: ManifestGitRepo | None = None
    """A git repository."""

    model_config = cel_config(
        cel(
            "[has(self.file), has(self.dir), has(self.gitRepo)].filter(x, x).size() == 1",
            "a manifest entry needs exactly one of file, dir or gitRepo",
        ),
        cel(
            "!self.path.split('/').exists(p, p == '..')",
            "a manifest path may not contain '..'",
            field_path=".path",
        ),
    )

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> ManifestEntry:
        if sum(x is not None for x in (self.file, self.dir, self.git_repo)) != 1:
            raise ValueError("a manifest entry needs exactly one of file, dir or gitRepo")
        if ".." in self.path.split("/"):
            raise ValueError("a manifest path may not contain '..'")
        return self


class ManifestEnvVar(ApiModel):
    """An environment variable for the agent's commands."""

    name: str = Field(min_length=1, max_length=256, pattern=ENV_NAME_PATTERN)
    """Name of the variable."""
    value: str = Field(default="", max_length=32768)
    """Literal value."""


class Manifest(ApiModel):
    """The workspace contract of the Agents SDK (a typed subset of agents.sandbox.Manifest), materialized
    by the SDK when the run starts."""

    entries: list[ManifestEntry] = Field(
        default_factory=list,
        max_length=256,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["path"]},
    )
    """Files, directories and repositories to put into the workspace."""
    environment: list[ManifestEnvVar] = Field(
        default_factory=list,
        max_length=128,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    """Environment of every command the agent runs. Literal values only."""


class Capabilities(ApiModel):
    """Which sandbox tools the agent gets. Each is on by default."""

    shell: bool = True
    """Run shell commands (exec_command)."""
    filesystem: bool = True
    """Edit files (apply_patch) and view images."""
    compaction: bool = True
    """Compact the conversation when it grows long."""


class Limits(ApiModel):
    """Bounds on a run. When one is reached the run fails with a reason saying which."""

    max_turns: int = Field(default=50, ge=1, le=10000)
    """Maximum model turns (default 50)."""
    timeout_seconds: int = Field(default=3600, ge=1)
    """Wall-clock limit from the start of the run (default 3600); then Failed with reason DeadlineExceeded."""
    max_total_tokens: int | None = Field(default=None, ge=1)
    """Maximum input + output tokens over the whole run (default: unlimited)."""
    command_timeout_seconds: int = Field(default=300, ge=1, le=86400)
    """Time limit of a single command in the sandbox (default 300)."""


class Approval(ApiModel):
    """Which tool calls need a human's yes before they run."""

    policy: ApprovalPolicy = ApprovalPolicy.NEVER
    """Never (default), Always (every shell command and patch), or CommandPatterns."""
    command_patterns: list[Annotated[str, Field(min_length=1, max_length=1024)]] = Field(
        default_factory=list, max_length=64
    )
    """Shell-style glob patterns (fnmatch) matched against each command, e.g. 'git push*' or '*rm -rf*'."""

    model_config = cel_config(
        cel(
            "(self.policy == 'CommandPatterns') == (has(self.commandPatterns) && size(self.commandPatterns) > 0)",
            "commandPatterns is required with, and only allowed with, policy CommandPatterns",
        )
    )

    @model_validator(mode="after")
    def _patterns_match_policy(self) -> Approval:
        if (self.policy == ApprovalPolicy.COMMAND_PATTERNS) != bool(self.command_patterns):
            raise ValueError("commandPatterns is required with, and only allowed with, policy CommandPatterns")
        return self


_IMMUTABLE_RUN_FIELDS = (
    "workspaceRef",
    "workspaceTemplate",
    "prompt",
    "instructions",
    "model",
    "manifest",
    "capabilities",
    "approval",
)


def _run_spec_rules() -> list[dict[str, str]]:
    rules = [
        cel(
            "has(self.workspaceRef) != has(self.workspaceTemplate)",
            "exactly one of workspaceRef or workspaceTemplate is required",
        ),
        cel("!has(oldSelf.cancel) || !oldSelf.cancel || self.cancel", "cancel cannot be undone"),
    ]
    for field in _IMMUTABLE_RUN_FIELDS:
        rules.append(
            cel(
                f"has(self.{field}) == has(oldSelf.{field}) && (!has(self.{field}) || self.{field} == oldSelf.{field})",
                f"{field} is immutable",
                field_path=f".{field}",
            )
        )
    return rules


class AgentRunSpec(ApiModel):
    """Desired state of an AgentRun."""

    workspace_ref: LocalObjectReference | None = None
    """An existing AgentWorkspace in the run's namespace. Exactly one of workspaceRef or workspaceTemplate."""
    workspace_template: WorkspaceTemplate | None = None
    """An inline workspace, created for this run and deleted with it."""
    prompt: str = Field(min_length=1, max_length=262144)
    """The task for the agent."""
    instructions: str | None = Field(default=None, max_length=262144)
    """System instructions for the agent (default: the harness's)."""
    model: ModelSettings = Field(default_factory=ModelSettings)
    """The model and its endpoint."""
    manifest: Manifest = Field(default_factory=Manifest)
    """Files, repositories and environment the workspace gets before the agent starts."""
    capabilities: Capabilities = Field(default_factory=Capabilities)
    """Sandbox tools the agent may use."""
    limits: Limits = Field(default_factory=Limits)
    """Turn, time, token and per-command bounds."""
    approval: Approval = Field(default_factory=Approval)
    """Which tool calls wait for a human's approval."""
    ttl_seconds_after_finished: int | None = Field(default=None, ge=0)
    """Delete the run (and what it owns) this long after it finished. Unset: keep it."""
    cancel: bool = False
    """Set to true to cancel the run. Cannot be undone."""

    model_config = cel_config(*_run_spec_rules())

    @model_validator(mode="after")
    def _exactly_one_workspace(self) -> AgentRunSpec:
        if (self.workspace_ref is None) == (self.workspace_template is None):
            raise ValueError("exactly one of workspaceRef or workspaceTemplate is required")
        return self


class Usage(ApiModel):
    """Tokens used by the run so far."""

    input_tokens: int = Field(default=0, ge=0)
    """Input tokens."""
    output_tokens: int = Field(default=0, ge=0)
    """Output tokens."""
    total_tokens: int = Field(default=0, ge=0)
    """Input plus output tokens."""


class PendingApproval(ApiModel):
    """A tool call waiting for a human's decision."""

    call_id: str = Field(max_length=256)
    """The tool call's id; name it when approving or rejecting."""
    tool: str = Field(max_length=256)
    """The tool, e.g. exec_command or apply_patch."""
    command: str = Field(default="", max_length=16384)
    """The exact command or patch summary the agent wants to run."""
    requested_time: datetime | None = None
    """When the approval was requested."""


class RunError(ApiModel):
    """Why a run failed or what went wrong last."""

    reason: str = Field(max_length=256)
    """CamelCase reason, e.g. ModelAuthenticationFailed, RateLimited, SandboxGone, MaxTurnsExceeded."""
    message: str = Field(default="", max_length=8192)
    """Readable details."""
    time: datetime | None = None
    """When it happened."""


class AgentRunStatus(ApiModel):
    """Observed state of an AgentRun. Written by the operator and the harness only."""

    phase: RunPhase | None = None
    """Pending, Running, AwaitingApproval, Succeeded, Failed or Cancelled."""
    conditions: list[Condition] = conditions_field("WorkspaceReady, Claimed and Finished conditions, with reasons.")
    workspace_name: str | None = Field(default=None, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    """The workspace the run executes in."""
    queue_position: int | None = Field(default=None, ge=0)
    """Position in the workspace's queue while another run holds it (reason WorkspaceBusy)."""
    start_time: datetime | None = None
    """When the run started Running."""
    completion_time: datetime | None = None
    """When the run finished."""
    turns: int = Field(default=0, ge=0)
    """Model turns so far."""
    tool_calls: int = Field(default=0, ge=0)
    """Tool calls so far."""
    usage: Usage = Field(default_factory=Usage)
    """Token usage so far."""
    output: str | None = Field(default=None, max_length=OUTPUT_MAX_CHARS)
    """The final answer, truncated to 16 KiB; the full text is in the transcript."""
    pending_approvals: list[PendingApproval] = Field(default_factory=list, max_length=64)
    """Tool calls waiting for approval (phase AwaitingApproval)."""
    last_error: RunError | None = None
    """The last error, readable."""
    observed_generation: int | None = Field(default=None, ge=0)
    """The .metadata.generation the status was computed from."""


class AgentRun(ApiModel):
    """A task for an AI agent, run by the harness in an AgentWorkspace."""

    api_version: Literal["paddock.dev/v1alpha1"] = "paddock.dev/v1alpha1"
    kind: Literal["AgentRun"] = "AgentRun"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: AgentRunSpec
    status: AgentRunStatus | None = None
