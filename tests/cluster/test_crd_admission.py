"""The apiserver itself enforces the generated schemas and CEL rules, with readable messages."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from paddock_helpers import run_manifest, workspace_manifest


@pytest.fixture
def custom(api_client: Any, crds: None) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


def create(custom: client.CustomObjectsApi, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
    plural = {"AgentWorkspace": "agentworkspaces", "AgentRun": "agentruns"}[manifest["kind"]]
    created: dict[str, Any] = custom.create_namespaced_custom_object(
        "paddock.dev", "v1alpha1", namespace, plural, manifest
    )
    return created


def rejected(call: Any, *args: Any) -> str:
    with pytest.raises(ApiException) as caught:
        call(*args)
    assert caught.value.status == 422, caught.value.body
    return str(caught.value.body)


def test_env_with_a_secret_reference_is_rejected(custom: Any, namespace: str) -> None:
    manifest = workspace_manifest("w", env=[{"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}])
    assert "credentials never enter a sandbox" in rejected(create, custom, namespace, manifest)


def test_run_needs_exactly_one_workspace_source(custom: Any, namespace: str) -> None:
    both = run_manifest("both", workspaceRef={"name": "w"}, workspaceTemplate={"spec": {"image": "i"}})
    assert "exactly one of workspaceRef or workspaceTemplate" in rejected(create, custom, namespace, both)
    neither = run_manifest("neither")
    assert "exactly one of workspaceRef or workspaceTemplate" in rejected(create, custom, namespace, neither)


def test_negative_timeout_is_rejected(custom: Any, namespace: str) -> None:
    manifest = run_manifest("neg", workspaceRef={"name": "w"}, limits={"timeoutSeconds": -1})
    assert "timeoutSeconds" in rejected(create, custom, namespace, manifest)


def test_defaults_are_applied(custom: Any, namespace: str) -> None:
    created = create(custom, namespace, workspace_manifest("defaults"))
    spec = created["spec"]
    assert spec["storage"] == {
        "size": "1Gi",
        "accessModes": ["ReadWriteOnce"],
        "mountPath": "/workspace",
        "retainOnDelete": False,
    }
    assert spec["network"]["egress"] == "None"
    assert spec["network"]["allowDNS"] is False
    assert spec["lifecycle"]["suspend"] is False


def test_immutable_fields_stay_put(custom: Any, namespace: str) -> None:
    create(custom, namespace, workspace_manifest("grow", storage={"size": "2Gi"}))
    patch = custom.patch_namespaced_custom_object
    message = rejected(
        patch, "paddock.dev", "v1alpha1", namespace, "agentworkspaces", "grow", {"spec": {"storage": {"size": "1Gi"}}}
    )
    assert "storage.size may only grow" in message
    patch("paddock.dev", "v1alpha1", namespace, "agentworkspaces", "grow", {"spec": {"storage": {"size": "3Gi"}}})

    create(custom, namespace, run_manifest("r", workspaceRef={"name": "a"}))
    message = rejected(
        patch, "paddock.dev", "v1alpha1", namespace, "agentruns", "r", {"spec": {"workspaceRef": {"name": "b"}}}
    )
    assert "workspaceRef is immutable" in message
    message = rejected(patch, "paddock.dev", "v1alpha1", namespace, "agentruns", "r", {"spec": {"prompt": "x"}})
    assert "prompt is immutable" in message
    patch("paddock.dev", "v1alpha1", namespace, "agentruns", "r", {"spec": {"cancel": True}})
    message = rejected(patch, "paddock.dev", "v1alpha1", namespace, "agentruns", "r", {"spec": {"cancel": False}})
    assert "cancel cannot be undone" in message
