"""Options and persisted session state of the Kubernetes sandbox backend."""

from __future__ import annotations

import uuid
from typing import Any, Literal, Self

from agents.sandbox.session.sandbox_client import BaseSandboxClientOptions
from agents.sandbox.session.sandbox_session_state import SandboxSessionState
from pydantic import BaseModel, Field, field_validator, model_validator

from paddock_operator.api import AgentWorkspaceSpec

BACKEND_ID: Literal["kubernetes"] = "kubernetes"
DEFAULT_MOUNT_PATH = "/workspace"


class KubernetesSandboxClientOptions(BaseSandboxClientOptions):
    """How `KubernetesSandboxClient.create()` finds or makes the sandbox.

    Exactly one of `workspace` (attach to an existing AgentWorkspace by name) or `workspace_spec`
    (create an AgentWorkspace from this spec: an `AgentWorkspaceSpec` or its wire form, a camelCase
    dict) must be given. The spec is validated against the API model and kept in wire form.
    """

    type: Literal["kubernetes"] = "kubernetes"
    namespace: str = "default"
    workspace: str | None = None
    workspace_spec: dict[str, Any] | None = None
    # Name for a created workspace; when unset the API server generates one from the prefix.
    workspace_name: str | None = None
    generate_name: str = "sandbox-"
    labels: dict[str, str] = Field(default_factory=dict)
    # The runner calls delete() after every run it owns; only a workspace this client created,
    # and only when this is set, is ever deleted. User data is never removed otherwise.
    delete_created_workspace: bool = False
    # Where to load cluster access from; None means in-cluster, else the default kubeconfig.
    kubeconfig: str | None = None
    context: str | None = None
    container: str | None = None
    ready_timeout_seconds: float = Field(default=300.0, gt=0)

    @field_validator("workspace_spec", mode="before")
    @classmethod
    def _spec_to_wire(cls, value: object) -> object:
        if value is None:
            return None
        if isinstance(value, AgentWorkspaceSpec):
            return value.to_wire()
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json", by_alias=True, exclude_none=True)
        return AgentWorkspaceSpec.model_validate(value).to_wire()

    @model_validator(mode="after")
    def _exactly_one_target(self) -> Self:
        if (self.workspace is None) == (self.workspace_spec is None):
            raise ValueError("set exactly one of `workspace` or `workspace_spec`")
        if self.workspace_name is not None and self.workspace is not None:
            raise ValueError("`workspace_name` names a workspace to create; use `workspace` to attach")
        return self

    def spec_dict(self) -> dict[str, Any]:
        return dict(self.workspace_spec or {})


class KubernetesSandboxSessionState(SandboxSessionState):
    """What a RunState needs to find the sandbox again. Never holds credentials.

    `workspace` is None when the session was bound directly to a pod (no AgentWorkspace).
    """

    type: Literal["kubernetes"] = "kubernetes"
    namespace: str
    workspace: str | None = None
    pod_name: str
    pod_uid: str | None = None
    container: str | None = None
    created_by_client: bool = False
    delete_workspace_on_delete: bool = False
    # Cluster access *location* (a path and a context name), so a resumed client talks to the
    # same cluster; credentials are loaded from there at run time.
    kubeconfig: str | None = None
    context: str | None = None

    def _sanitize_persisted_provider_identity(self, data: dict[str, Any], *, mount_authority_redacted: bool) -> None:
        if mount_authority_redacted:
            # Same policy as the SDK's Docker backend: a state whose mount authority was redacted
            # must not silently reconnect to the live sandbox.
            data["pod_uid"] = None
            data["session_id"] = uuid.uuid5(
                uuid.NAMESPACE_URL, f"openai-agents:mount-authority-redacted:{self.session_id}"
            )
            data["workspace_root_ready"] = False
