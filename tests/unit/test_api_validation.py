"""Bad input is rejected by the generated schema + CEL rules (as the apiserver would) and by the models."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from crd_validation import validate
from pydantic import ValidationError

from paddock_operator import crdgen
from paddock_operator.api import AgentRun, AgentWorkspace

ROOT = Path(__file__).resolve().parents[2]
WORKSPACE_CRD = crdgen.build_crd(crdgen.WORKSPACE)
RUN_CRD = crdgen.build_crd(crdgen.RUN)
MODELS = {"AgentWorkspace": (AgentWorkspace, WORKSPACE_CRD), "AgentRun": (AgentRun, RUN_CRD)}


def workspace(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "paddock.dev/v1alpha1",
        "kind": "AgentWorkspace",
        "metadata": {"name": "w"},
        "spec": {"image": "sandbox:1", **spec},
    }


def run(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "paddock.dev/v1alpha1",
        "kind": "AgentRun",
        "metadata": {"name": "r"},
        "spec": {"prompt": "do it", **spec},
    }


def assert_rejected(obj: dict[str, Any], expected: str, old: dict[str, Any] | None = None) -> None:
    model, crd = MODELS[obj["kind"]]
    errors = validate(crd, obj, old)
    assert any(expected in error for error in errors), f"expected {expected!r} in {errors}"
    if old is None:  # transition rules exist only in the CRD
        with pytest.raises(ValidationError):
            model.model_validate(obj)


def assert_accepted(obj: dict[str, Any], old: dict[str, Any] | None = None) -> None:
    model, crd = MODELS[obj["kind"]]
    assert validate(crd, obj, old) == []
    model.model_validate(obj)


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_examples_are_valid(path: Path) -> None:
    for document in yaml.safe_load_all(path.read_text()):
        assert_accepted(document)


def test_minimal_workspace_gets_documented_defaults() -> None:
    parsed = AgentWorkspace.model_validate(workspace())
    assert parsed.spec.storage.size == "1Gi"
    assert parsed.spec.storage.mount_path == "/workspace"
    assert parsed.spec.storage.access_modes == ["ReadWriteOnce"]
    assert parsed.spec.network.egress == "None"
    assert parsed.spec.network.allow_dns is False
    assert parsed.spec.lifecycle.suspend is False


@pytest.mark.parametrize(
    "reference",
    [{"secretKeyRef": {"name": "openai", "key": "api-key"}}, {"configMapKeyRef": {"name": "c", "key": "k"}}],
)
def test_env_referencing_a_secret_is_rejected(reference: dict[str, Any]) -> None:
    obj = workspace(env=[{"name": "OPENAI_API_KEY", "valueFrom": reference}])
    assert_rejected(obj, "credentials never enter a sandbox")


def test_literal_env_is_accepted() -> None:
    assert_accepted(workspace(env=[{"name": "LANG", "value": "C.UTF-8"}]))


def test_run_needs_exactly_one_workspace_source() -> None:
    both = run(workspaceRef={"name": "w"}, workspaceTemplate={"spec": {"image": "i"}})
    assert_rejected(both, "exactly one of workspaceRef or workspaceTemplate")
    assert_rejected(run(), "exactly one of workspaceRef or workspaceTemplate")
    assert_accepted(run(workspaceRef={"name": "w"}))
    assert_accepted(run(workspaceTemplate={"spec": {"image": "i"}}))


@pytest.mark.parametrize("field", ["timeoutSeconds", "maxTurns", "commandTimeoutSeconds", "maxTotalTokens"])
def test_negative_or_zero_limits_are_rejected(field: str) -> None:
    assert_rejected(run(workspaceRef={"name": "w"}, limits={field: -5}), field)
    assert_rejected(run(workspaceRef={"name": "w"}, limits={field: 0}), field)


def test_negative_ttl_is_rejected() -> None:
    assert_rejected(run(workspaceRef={"name": "w"}, ttlSecondsAfterFinished=-1), "ttlSecondsAfterFinished")


def test_storage_may_only_grow() -> None:
    old = workspace(storage={"size": "2Gi"})
    errors = validate(WORKSPACE_CRD, workspace(storage={"size": "1500Mi"}), old)
    assert any("storage.size may only grow" in e for e in errors), errors
    assert_accepted(workspace(storage={"size": "3Gi"}), old)


def test_storage_class_and_access_modes_are_immutable() -> None:
    old = workspace(storage={"storageClassName": "fast"})
    errors = validate(WORKSPACE_CRD, workspace(storage={"storageClassName": "slow"}), old)
    assert any("storageClassName is immutable" in e for e in errors), errors
    errors = validate(WORKSPACE_CRD, workspace(storage={"accessModes": ["ReadWriteMany"]}), workspace())
    assert any("accessModes is immutable" in e for e in errors), errors


def test_run_workspace_and_prompt_are_immutable() -> None:
    old = run(workspaceRef={"name": "a"})
    for changed, message in [
        (run(workspaceRef={"name": "b"}), "workspaceRef is immutable"),
        ({**old, "spec": {**old["spec"], "prompt": "something else"}}, "prompt is immutable"),
        (run(workspaceRef={"name": "a"}, instructions="new"), "instructions is immutable"),
    ]:
        errors = validate(RUN_CRD, changed, old)
        assert any(message in e for e in errors), errors


def test_cancel_cannot_be_undone_but_limits_may_change() -> None:
    cancelled = run(workspaceRef={"name": "a"}, cancel=True)
    errors = validate(RUN_CRD, run(workspaceRef={"name": "a"}, cancel=False), cancelled)
    assert any("cancel cannot be undone" in e for e in errors), errors
    assert_accepted(cancelled, run(workspaceRef={"name": "a"}))
    assert_accepted(run(workspaceRef={"name": "a"}, limits={"maxTurns": 3}), run(workspaceRef={"name": "a"}))


def test_egress_rules_only_with_custom_and_valid_cidrs() -> None:
    rules = [{"cidr": "203.0.113.0/24", "ports": [{"port": 443}]}]
    assert_rejected(workspace(network={"egress": "Internet", "rules": rules}), "requires egress: Custom")
    assert_accepted(workspace(network={"egress": "Custom", "rules": rules}))
    errors = validate(WORKSPACE_CRD, workspace(network={"egress": "Custom", "rules": [{"cidr": "999.1.1.1/8"}]}))
    assert any("valid CIDR" in e for e in errors), errors
    assert_rejected(workspace(network={"egress": "Everything"}), "egress")


def test_security_context_cannot_run_as_root() -> None:
    assert_rejected(workspace(securityContext={"runAsUser": 0}), "runAsUser")
    assert_accepted(workspace(securityContext={"runAsUser": 2000, "readOnlyRootFilesystem": True}))


def test_manifest_entries_are_checked() -> None:
    escape = {"entries": [{"path": "../etc/passwd", "file": {"content": "x"}}]}
    assert_rejected(run(workspaceRef={"name": "w"}, manifest=escape), "may not contain '..'")
    two_kinds = {"entries": [{"path": "a", "file": {"content": "x"}, "dir": {}}]}
    assert_rejected(run(workspaceRef={"name": "w"}, manifest=two_kinds), "exactly one of file, dir or gitRepo")
    absolute = {"entries": [{"path": "/etc/passwd", "dir": {}}]}
    assert_rejected(run(workspaceRef={"name": "w"}, manifest=absolute), "path")


def test_approval_patterns_match_policy() -> None:
    assert_rejected(run(workspaceRef={"name": "w"}, approval={"policy": "CommandPatterns"}), "commandPatterns")
    assert_rejected(
        run(workspaceRef={"name": "w"}, approval={"policy": "Always", "commandPatterns": ["x"]}),
        "commandPatterns",
    )


def test_wire_round_trip_keeps_camel_case() -> None:
    obj = run(workspaceRef={"name": "w"}, model={"baseURL": "http://127.0.0.1:9/v1", "reasoningEffort": "low"})
    wire = AgentRun.model_validate(copy.deepcopy(obj)).to_wire()
    assert wire["spec"]["model"]["baseURL"] == "http://127.0.0.1:9/v1"
    assert wire["spec"]["workspaceRef"] == {"name": "w"}
    assert "ttlSecondsAfterFinished" not in wire["spec"]
