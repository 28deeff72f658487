"""Shared building blocks of the paddock.dev API: the model base class, conditions, references."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "paddock.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# Kubernetes' own limits, used so that CEL cost estimation stays within budget.
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
QUANTITY_PATTERN = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"


def cel(rule: str, message: str, *, reason: str | None = None, field_path: str | None = None) -> dict[str, str]:
    """One `x-kubernetes-validations` entry."""
    validation = {"rule": rule, "message": message}
    if reason is not None:
        validation["reason"] = reason
    if field_path is not None:
        validation["fieldPath"] = field_path
    return validation


def validations(*rules: dict[str, str]) -> dict[str, Any]:
    """`json_schema_extra` carrying CEL rules into the generated CRD."""
    return {"x-kubernetes-validations": list(rules)}


def cel_config(*rules: dict[str, str]) -> ConfigDict:
    """Model config that puts CEL rules on the model's object schema."""
    return ConfigDict(json_schema_extra=validations(*rules))


class ApiModel(BaseModel):
    """Base of every API type: camelCase on the wire, unknown fields ignored (the apiserver prunes them)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        use_attribute_docstrings=True,
        validate_default=False,
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON form the apiserver stores: aliases, no unset optionals."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """The standard Kubernetes condition (metav1.Condition)."""

    type: str = Field(max_length=316, pattern=r"^([a-z0-9.-]+/)?[A-Za-z][A-Za-z0-9_]*$")
    """Type of the condition, in CamelCase (e.g. Ready)."""
    status: ConditionStatus
    """True, False or Unknown."""
    reason: str = Field(max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    """A programmatic CamelCase identifier for the condition's last transition."""
    message: str = Field(default="", max_length=32768)
    """A human readable message with details about the transition."""
    last_transition_time: datetime
    """When the condition last changed status."""
    observed_generation: int | None = Field(default=None, ge=0)
    """The .metadata.generation the condition was computed from."""

    list_type: ClassVar[dict[str, Any]] = {
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
    }


class LocalObjectReference(ApiModel):
    """A reference to an object in the same namespace."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    """Name of the referenced object."""


class SecretKeySelector(ApiModel):
    """A key of a Secret in the same namespace."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    """Name of the Secret."""
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")
    """Key within the Secret."""


def conditions_field(description: str) -> Any:
    return Field(
        default_factory=list,
        max_length=16,
        description=description,
        json_schema_extra=Condition.list_type,
    )
