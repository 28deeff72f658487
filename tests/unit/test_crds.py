"""The generated CRDs are current and structural."""

from __future__ import annotations

import filecmp
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from crd_validation import cel_errors

from paddock_operator import crdgen
from paddock_operator.api import AgentWorkspaceSpec

ROOT = Path(__file__).resolve().parents[2]
OUT_DIRS = (ROOT / "crds", ROOT / "charts" / "paddock" / "crds")


def test_generated_crds_are_committed_and_current(tmp_path: Path) -> None:
    crdgen.write_all([tmp_path])
    for out_dir in OUT_DIRS:
        generated = sorted(p.name for p in tmp_path.iterdir())
        committed = sorted(p.name for p in out_dir.glob("*.yaml"))
        assert committed == generated, f"{out_dir}: run `make crds`"
        _, mismatch, errors = filecmp.cmpfiles(tmp_path, out_dir, generated, shallow=False)
        assert mismatch == [], f"{out_dir} drifted from the models: run `make crds`"
        assert errors == []


def test_regeneration_is_idempotent(tmp_path: Path) -> None:
    crdgen.write_all([tmp_path])
    first = {p.name: p.read_text() for p in tmp_path.iterdir()}
    crdgen.write_all([tmp_path])
    assert first == {p.name: p.read_text() for p in tmp_path.iterdir()}


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every schema node with its path."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, node))
        for name, sub in node.get("properties", {}).items():
            found += _walk(sub, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            found += _walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            found += _walk(node["additionalProperties"], f"{path}{{}}")
    return found


@pytest.fixture(params=crdgen.RESOURCE_KINDS, ids=lambda r: r.kind)
def crd(request: pytest.FixtureRequest) -> dict[str, Any]:
    text = (ROOT / "crds" / request.param.file_name).read_text()
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def test_schema_is_structural(crd: dict[str, Any]) -> None:
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    forbidden = {"$ref", "$defs", "anyOf", "oneOf", "allOf", "not", "title", "const"}
    for path, node in _walk(schema):
        if path in (".apiVersion", ".kind", ".metadata"):
            continue  # the apiserver validates these itself
        assert not forbidden & node.keys(), f"{path}: {forbidden & node.keys()} is not structural"
        assert "type" in node, f"{path}: every node needs a type"
        if "properties" in node:
            assert "additionalProperties" not in node, f"{path}: additionalProperties beside properties"
        if isinstance(node.get("additionalProperties"), dict):
            assert "maxProperties" in node, f"{path}: maps need maxProperties to keep CEL cost bounded"
        if node.get("type") == "array":
            assert "maxItems" in node, f"{path}: lists need maxItems to keep CEL cost bounded"
        if node.get("type") == "string" and "enum" not in node and "format" not in node:
            assert "maxLength" in node, f"{path}: strings need maxLength to keep CEL cost bounded"
        if path.count(".") >= 2 or path.endswith(("spec", "status")):
            assert node.get("description") or path.endswith(("{}", "[]")), f"{path}: needs a description"
        for rule in node.get("x-kubernetes-validations", []):
            assert rule.get("message"), f"{path}: CEL rule without a message: {rule['rule']}"


def test_crd_surface(crd: dict[str, Any]) -> None:
    version = crd["spec"]["versions"][0]
    assert crd["spec"]["group"] == "paddock.dev"
    assert version["name"] == "v1alpha1"
    assert version["subresources"] == {"status": {}}
    assert crd["spec"]["names"]["categories"] == ["paddock"]
    assert crd["spec"]["names"]["shortNames"] in (["aw"], ["ar"])
    columns = {c["name"] for c in version["additionalPrinterColumns"]}
    assert {"Phase", "Age"} <= columns
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]


def test_nested_defaults_are_applied_by_the_apiserver() -> None:
    """Objects built by default factories carry their full default, so an omitted object is filled in."""
    spec = crdgen.structural_schema(AgentWorkspaceSpec)
    assert spec["properties"]["storage"]["default"] == {
        "size": "1Gi",
        "accessModes": ["ReadWriteOnce"],
        "mountPath": "/workspace",
        "retainOnDelete": False,
    }
    assert spec["properties"]["storage"]["properties"]["size"]["default"] == "1Gi"
    assert spec["properties"]["storage"]["properties"]["accessModes"]["default"] == ["ReadWriteOnce"]
    assert spec["properties"]["network"]["properties"]["egress"]["default"] == "None"


def test_defaults_satisfy_the_schema_and_cel_rules(crd: dict[str, Any]) -> None:
    """The apiserver rejects a CRD whose defaults break its own rules (it evaluates CEL on them)."""
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    checked = 0
    for path, node in _walk(schema):
        if "default" not in node:
            continue
        checked += 1
        jsonschema.Draft7Validator(node).validate(node["default"])
        assert cel_errors(node, node["default"], node["default"], path) == [], path
    assert checked > 5


def test_api_reference_is_current() -> None:
    from paddock_operator import apidoc

    committed = (ROOT / "docs" / "api-reference.md").read_text()
    assert committed == apidoc.render(), "docs/api-reference.md drifted from the models: run `make crds`"
