"""Generate the CustomResourceDefinitions from the pydantic API models.

pydantic's JSON Schema breaks Kubernetes' structural-schema rules in a few ways, which this module mends:
`$defs`/`$ref` are inlined, `anyOf [X, null]` becomes plain optional X, `additionalProperties: false`
and `title` are dropped, and nested objects built by a default factory get their full default so that the
apiserver fills them in when omitted.

Run as `python -m paddock_operator.crdgen --out crds --out charts/paddock/crds`.
"""

from __future__ import annotations

import argparse
import copy
import sys
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from .api import GROUP, VERSION, AgentRun, AgentWorkspace
from .api.meta import ApiModel

JsonSchema = dict[str, Any]

_DROPPED_KEYS = frozenset({"title", "$defs"})


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    json_path: str
    type: str = "string"
    priority: int = 0
    description: str = ""

    def to_crd(self) -> dict[str, Any]:
        column: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.priority:
            column["priority"] = self.priority
        if self.description:
            column["description"] = self.description
        return column


@dataclass(frozen=True)
class ResourceKind:
    model: type[ApiModel]
    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    printer_columns: tuple[PrinterColumn, ...]
    categories: tuple[str, ...] = ("paddock",)
    extra_root_validations: tuple[dict[str, str], ...] = field(default_factory=tuple)

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"

    @property
    def file_name(self) -> str:
        return f"{self.crd_name}.yaml"


READY_COLUMN = PrinterColumn("Ready", '.status.conditions[?(@.type=="Ready")].status')
AGE_COLUMN = PrinterColumn("Age", ".metadata.creationTimestamp", type="date")

WORKSPACE = ResourceKind(
    model=AgentWorkspace,
    kind="AgentWorkspace",
    plural="agentworkspaces",
    singular="agentworkspace",
    short_names=("aw",),
    printer_columns=(
        PrinterColumn("Phase", ".status.phase", description="Pending, Ready, Suspended, Failed or Terminating"),
        READY_COLUMN,
        PrinterColumn("Egress", ".spec.network.egress"),
        PrinterColumn("Pod", ".status.podName", priority=1),
        PrinterColumn("Image", ".spec.image", priority=1),
        PrinterColumn("Message", ".status.message", priority=1),
        AGE_COLUMN,
    ),
)

RUN = ResourceKind(
    model=AgentRun,
    kind="AgentRun",
    plural="agentruns",
    singular="agentrun",
    short_names=("ar",),
    printer_columns=(
        PrinterColumn("Phase", ".status.phase", description="Pending, Running, AwaitingApproval, Succeeded, ..."),
        PrinterColumn("Workspace", ".status.workspaceName"),
        PrinterColumn("Turns", ".status.turns", type="integer"),
        PrinterColumn("Tokens", ".status.usage.totalTokens", type="integer"),
        PrinterColumn("Model", ".spec.model.name", priority=1),
        PrinterColumn("Error", ".status.lastError.reason", priority=1),
        AGE_COLUMN,
    ),
)

RESOURCE_KINDS: tuple[ResourceKind, ...] = (WORKSPACE, RUN)


def _models_below(model: type[BaseModel]) -> Iterator[type[BaseModel]]:
    """Every pydantic model reachable from `model`'s fields, `model` included."""
    seen: set[type[BaseModel]] = set()
    stack = [model]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        yield current
        for info in current.model_fields.values():
            stack.extend(_model_types_in(info.annotation))


def _model_types_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for argument in typing.get_args(annotation):
        yield from _model_types_in(argument)


def _factory_defaults(model: type[BaseModel]) -> dict[str, dict[str, Any]]:
    """Per `$defs` name, the defaults of fields built by a default factory, in wire form.

    pydantic leaves these out of the JSON Schema; the apiserver needs a default on a nested object
    for the object's own field defaults to apply when the user omits it.
    """
    defaults: dict[str, dict[str, Any]] = {}
    for current in _models_below(model):
        for name, info in current.model_fields.items():
            if info.default_factory is None or info.default is not PydanticUndefined:
                continue
            value = info.default_factory()  # type: ignore[call-arg]
            wire_name = info.alias or name
            if isinstance(value, BaseModel):
                # The whole default, not {}: the apiserver checks defaults against the CEL rules too.
                defaults.setdefault(current.__name__, {})[wire_name] = value.model_dump(
                    mode="json", by_alias=True, exclude_none=True
                )
            elif isinstance(value, list) and value:
                defaults.setdefault(current.__name__, {})[wire_name] = [getattr(item, "value", item) for item in value]
    return defaults


def _structural(node: Any, defs: dict[str, JsonSchema]) -> Any:
    """Inline references and drop what structural schemas forbid, recursively."""
    if isinstance(node, list):
        return [_structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        # Siblings of $ref (the property's own description, default) win over the definition's.
        node = {**copy.deepcopy(target), **node}
    if "anyOf" in node:
        branches = [branch for branch in node.pop("anyOf") if branch != {"type": "null"}]
        if len(branches) != 1:
            raise ValueError(f"unions are not structural: {branches}")
        node = {**_structural(branches[0], defs), **node}
        if node.get("default", PydanticUndefined) is None:
            del node["default"]
    if node.get("additionalProperties") in (True, False):
        del node["additionalProperties"]
    result: JsonSchema = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "description" and isinstance(value, str):
            # Docstrings wrap at source width; CRD descriptions read better as one paragraph.
            value = " ".join(value.split())
        if key in ("properties", "$defs"):
            result[key] = {name: _structural(sub, defs) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "anyOf", "allOf", "oneOf", "not"):
            result[key] = _structural(value, defs)
        else:
            result[key] = value
    return result


def _apply_factory_defaults(schema: JsonSchema, defs: dict[str, JsonSchema], model: type[BaseModel]) -> None:
    for def_name, field_defaults in _factory_defaults(model).items():
        target = schema if def_name == model.__name__ else defs.get(def_name)
        if target is None:
            continue
        for wire_name, default in field_defaults.items():
            target["properties"][wire_name].setdefault("default", default)


def structural_schema(model: type[BaseModel]) -> JsonSchema:
    """The structural OpenAPI v3 schema of `model`, as a CRD version's `openAPIV3Schema` subtree."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs: dict[str, JsonSchema] = raw.pop("$defs", {})
    _apply_factory_defaults(raw, defs, model)
    # Definitions may refer to each other: resolve them before use.
    resolved: dict[str, JsonSchema] = {}
    for name in defs:
        resolved[name] = defs[name]
    schema: JsonSchema = _structural(raw, resolved)
    while _has_ref(schema):
        schema = _structural(schema, resolved)
    return schema


def _has_ref(node: Any) -> bool:
    if isinstance(node, dict):
        return "$ref" in node or any(_has_ref(value) for value in node.values())
    if isinstance(node, list):
        return any(_has_ref(item) for item in node)
    return False


def _field_schema(model: type[ApiModel], name: str) -> JsonSchema:
    annotation = model.model_fields[name].annotation
    for candidate in _model_types_in(annotation):
        return structural_schema(candidate)
    raise TypeError(f"{model.__name__}.{name} is not a model")


def build_crd(resource: ResourceKind) -> dict[str, Any]:
    spec_schema = _field_schema(resource.model, "spec")
    status_schema = _field_schema(resource.model, "status")
    root: JsonSchema = {
        "type": "object",
        "description": " ".join((resource.model.__doc__ or "").split()),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion of this object."},
            "kind": {"type": "string", "description": "Kind of this object."},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
    }
    if resource.extra_root_validations:
        root["x-kubernetes-validations"] = list(resource.extra_root_validations)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": resource.crd_name,
            "labels": {"app.kubernetes.io/name": "paddock", "app.kubernetes.io/part-of": "paddock"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": resource.kind,
                "listKind": f"{resource.kind}List",
                "plural": resource.plural,
                "singular": resource.singular,
                "shortNames": list(resource.short_names),
                "categories": list(resource.categories),
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [column.to_crd() for column in resource.printer_columns],
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


class _Dumper(yaml.SafeDumper):
    """Block style, keys in insertion order, long strings folded readably."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def render(crd: dict[str, Any]) -> str:
    header = "# GENERATED by `make crds` from paddock_operator.api — do not edit by hand.\n"
    return header + yaml.dump(crd, Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)


def write_all(out_dirs: Sequence[Path]) -> list[Path]:
    written: list[Path] = []
    for out_dir in out_dirs:
        out_dir.mkdir(parents=True, exist_ok=True)
        for resource in RESOURCE_KINDS:
            path = out_dir / resource.file_name
            text = render(build_crd(resource))
            if not path.exists() or path.read_text() != text:
                path.write_text(text)
            written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", action="append", type=Path, required=True, help="output directory (repeatable)")
    args = parser.parse_args(argv)
    for path in write_all(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
