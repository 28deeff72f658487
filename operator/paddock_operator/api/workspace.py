"""AgentWorkspace: a sandbox (pod + PVC + NetworkPolicy) where an agent's commands run."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from .meta import (
    DNS_SUBDOMAIN_PATTERN,
    ENV_NAME_PATTERN,
    QUANTITY_PATTERN,
    ApiModel,
    Condition,
    cel,
    cel_config,
    conditions_field,
)

Quantity = Annotated[str, Field(max_length=64, pattern=QUANTITY_PATTERN)]


class WorkspacePhase(StrEnum):
    PENDING = "Pending"
    READY = "Ready"
    SUSPENDED = "Suspended"
    FAILED = "Failed"
    TERMINATING = "Terminating"


class EgressMode(StrEnum):
    NONE = "None"
    INTERNET = "Internet"
    CUSTOM = "Custom"


ENV_VALUE_FROM_MESSAGE = (
    "env must be literal name/value pairs: valueFrom (secretKeyRef, configMapKeyRef, ...) is not allowed "
    "because credentials never enter a sandbox"
)


class EnvVar(ApiModel):
    """A literal environment variable. Secret references are rejected: credentials never enter a sandbox."""

    name: str = Field(min_length=1, max_length=256, pattern=ENV_NAME_PATTERN)
    """Name of the variable."""
    value: str = Field(default="", max_length=32768)
    """Literal value."""
    value_from: dict[str, Any] | None = Field(
        default=None,
        description="Not allowed. Present in the schema only so that a reference to a Secret or "
        "ConfigMap is rejected with a clear message instead of being silently pruned.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )

    model_config = cel_config(cel("!has(self.valueFrom)", ENV_VALUE_FROM_MESSAGE))

    @model_validator(mode="after")
    def _no_references(self) -> EnvVar:
        if self.value_from is not None:
            raise ValueError(ENV_VALUE_FROM_MESSAGE)
        return self


class ResourceList(ApiModel):
    """Amounts of compute resources."""

    cpu: Quantity | None = None
    """CPU, e.g. 500m or 2."""
    memory: Quantity | None = None
    """Memory, e.g. 512Mi."""
    ephemeral_storage: Quantity | None = Field(default=None, alias="ephemeral-storage")
    """Local ephemeral storage (container writable layer, emptyDirs), e.g. 1Gi."""


class Resources(ApiModel):
    """Compute resources of the sandbox container. Unset values get the operator's defaults."""

    requests: ResourceList | None = None
    """Minimum resources reserved for the sandbox."""
    limits: ResourceList | None = None
    """Maximum resources the sandbox may use."""


AccessMode = Literal["ReadWriteOnce", "ReadWriteOncePod", "ReadWriteMany", "ReadOnlyMany"]


class Storage(ApiModel):
    """The persistent volume that holds the workspace directory."""

    size: Quantity = "1Gi"
    """Requested capacity (default 1Gi). May only grow."""
    storage_class_name: str | None = Field(default=None, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    """StorageClass of the claim (default: the cluster's default class). Immutable."""
    access_modes: list[AccessMode] = Field(
        default_factory=lambda: list[AccessMode](["ReadWriteOnce"]), min_length=1, max_length=4
    )
    """Access modes of the claim (default [ReadWriteOnce]). Immutable."""
    mount_path: str = Field(default="/workspace", max_length=1024, pattern=r"^/[^\x00]*$")
    """Absolute path where the volume is mounted; the agent's workspace root (default /workspace)."""
    retain_on_delete: bool = False
    """Keep the PVC (orphaned, labelled paddock.dev/retained) when the workspace is deleted (default false)."""

    model_config = cel_config(
        cel(
            "quantity(self.size).compareTo(quantity(oldSelf.size)) >= 0",
            "storage.size may only grow",
            field_path=".size",
        ),
        cel(
            "has(self.storageClassName) == has(oldSelf.storageClassName) && "
            "(!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)",
            "storage.storageClassName is immutable",
            field_path=".storageClassName",
        ),
        cel(
            "self.accessModes == oldSelf.accessModes",
            "storage.accessModes is immutable",
            field_path=".accessModes",
        ),
    )


class PortRule(ApiModel):
    """A destination port."""

    port: int = Field(ge=1, le=65535)
    """Port number."""
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    """Protocol (default TCP)."""


class EgressRule(ApiModel):
    """Allows traffic to an IP block, optionally only to some ports."""

    cidr: str = Field(max_length=64, pattern=r"^[0-9a-fA-F:.]+/[0-9]{1,3}$")
    """Destination IP block, e.g. 203.0.113.0/24."""
    except_cidrs: list[Annotated[str, Field(max_length=64, pattern=r"^[0-9a-fA-F:.]+/[0-9]{1,3}$")]] = Field(
        default_factory=list, max_length=32, alias="exceptCIDRs"
    )
    """IP blocks inside cidr that stay blocked."""
    ports: list[PortRule] = Field(default_factory=list, max_length=32)
    """Destination ports; empty means every port."""

    model_config = cel_config(
        cel("isCIDR(self.cidr)", "cidr must be a valid CIDR, e.g. 203.0.113.0/24", field_path=".cidr"),
        cel(
            "!has(self.exceptCIDRs) || self.exceptCIDRs.all(c, isCIDR(c))",
            "exceptCIDRs must be valid CIDRs",
            field_path=".exceptCIDRs",
        ),
    )


class Network(ApiModel):
    """What the sandbox may reach. Ingress is always denied."""

    egress: EgressMode = EgressMode.NONE
    """None (default): no egress at all. Internet: public addresses only (private ranges, CGNAT, link-local
    and cloud metadata, and the cluster's pod and service ranges stay blocked). Custom: exactly `rules`."""
    allow_dns: bool = Field(default=False, alias="allowDNS")
    """Allow DNS (UDP/TCP 53) to the cluster DNS service (default false)."""
    rules: list[EgressRule] = Field(default_factory=list, max_length=64)
    """Allowed destinations; only with egress Custom."""

    model_config = cel_config(
        cel(
            "self.egress == 'Custom' || !has(self.rules) || size(self.rules) == 0",
            "network.rules requires egress: Custom",
            field_path=".rules",
        ),
    )

    @model_validator(mode="after")
    def _rules_only_custom(self) -> Network:
        if self.rules and self.egress != EgressMode.CUSTOM:
            raise ValueError("network.rules requires egress: Custom")
        return self


class Toleration(ApiModel):
    """A pod toleration, passed through to the sandbox pod."""

    key: str | None = Field(default=None, max_length=316)
    """Taint key; empty with operator Exists matches every taint."""
    operator: Literal["Exists", "Equal"] | None = None
    """Exists or Equal (default Equal)."""
    value: str | None = Field(default=None, max_length=63)
    """Taint value for operator Equal."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Effect to match; empty matches all effects."""
    toleration_seconds: int | None = Field(default=None, ge=0)
    """For NoExecute: how long the pod stays bound after the taint appears."""


class SandboxSecurity(ApiModel):
    """Choices that can only tighten the restricted default (non-root, no capabilities, RuntimeDefault
    seccomp, no privilege escalation, no service-account token). None of them can loosen it."""

    read_only_root_filesystem: bool = False
    """Mount the image's root filesystem read-only; /tmp becomes a writable emptyDir (default false)."""
    run_as_user: int | None = Field(default=None, ge=1, le=2147483647)
    """Non-root UID for the sandbox process (default: the operator's sandbox UID, 1000)."""
    run_as_group: int | None = Field(default=None, ge=1, le=2147483647)
    """Non-root GID for the sandbox process and the workspace volume (default: the operator's, 1000)."""


class Lifecycle(ApiModel):
    """When the sandbox runs."""

    suspend: bool = False
    """Delete the pod but keep the volume (default false). Set back to false to resume with the same data."""
    idle_timeout_seconds: int | None = Field(default=None, ge=60)
    """Suspend the workspace when no command ran for this long (status.lastActivityTime). Unset: never."""
    shutdown_time: datetime | None = None
    """Delete the workspace at this time (RFC 3339). Unset: never."""


class AgentWorkspaceSpec(ApiModel):
    """Desired state of an AgentWorkspace."""

    image: str = Field(min_length=1, max_length=1024)
    """Container image of the sandbox. It needs a POSIX shell and GNU coreutils."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    """Image pull policy (default: Kubernetes' default for the tag)."""
    command: list[Annotated[str, Field(max_length=4096)]] | None = Field(default=None, max_length=64)
    """Entrypoint override (default: a process that keeps the container alive)."""
    args: list[Annotated[str, Field(max_length=4096)]] | None = Field(default=None, max_length=256)
    """Arguments to the entrypoint."""
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=128,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    """Literal environment variables of the sandbox. Secret references are rejected."""
    resources: Resources | None = None
    """CPU, memory and ephemeral storage requests and limits (default: the operator's defaults)."""
    storage: Storage = Field(default_factory=Storage)
    """The persistent workspace volume."""
    network: Network = Field(default_factory=Network)
    """Network access of the sandbox (default: no egress, no ingress)."""
    runtime_class_name: str | None = Field(default=None, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    """RuntimeClass for stronger isolation, e.g. gvisor or kata."""
    node_selector: dict[str, Annotated[str, Field(max_length=63)]] = Field(default_factory=dict, max_length=64)
    """Node labels the sandbox pod must match."""
    tolerations: list[Toleration] = Field(default_factory=list, max_length=32)
    """Tolerations of the sandbox pod."""
    security_context: SandboxSecurity = Field(default_factory=SandboxSecurity)
    """Ways to tighten the sandbox's restricted security profile."""
    lifecycle: Lifecycle = Field(default_factory=Lifecycle)
    """Suspension, idle timeout and shutdown time."""


class AgentWorkspaceStatus(ApiModel):
    """Observed state of an AgentWorkspace. Written only by the operator (and lastActivityTime by the harness)."""

    phase: WorkspacePhase | None = None
    """Short summary for humans: Pending, Ready, Suspended, Failed or Terminating. Use conditions in code."""
    conditions: list[Condition] = conditions_field(
        "StorageReady, PodReady, NetworkPolicyReady and Ready, each with a reason and observedGeneration."
    )
    pod_name: str | None = Field(default=None, max_length=253)
    """Name of the sandbox pod."""
    pvc_name: str | None = Field(default=None, max_length=253)
    """Name of the workspace PersistentVolumeClaim."""
    last_activity_time: datetime | None = None
    """When the harness last ran a command in the sandbox; drives idle suspension."""
    observed_generation: int | None = Field(default=None, ge=0)
    """The .metadata.generation the status was computed from."""
    message: str | None = Field(default=None, max_length=4096)
    """Readable explanation of the current phase, e.g. why the pod cannot start."""


class AgentWorkspace(ApiModel):
    """A sandbox where an agent's shell commands and file edits run: a locked-down pod, its persistent
    workspace volume and a default-deny NetworkPolicy. It holds no credentials."""

    api_version: Literal["paddock.dev/v1alpha1"] = "paddock.dev/v1alpha1"
    kind: Literal["AgentWorkspace"] = "AgentWorkspace"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: AgentWorkspaceSpec
    status: AgentWorkspaceStatus | None = None
