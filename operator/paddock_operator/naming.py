"""Deterministic names and labels of the objects the operator creates.

Names are derived from the owner's name so that a re-create after a crash finds the same object instead of
making a second one. Kubernetes caps names and label values at 63 characters in several places; longer
derived names keep a readable prefix and end in a hash of the full name, so they stay unique.
"""

from __future__ import annotations

import hashlib
import json

MAX_NAME = 63
MANAGED_BY = "paddock-operator"

LABEL_WORKSPACE = "paddock.dev/workspace"
LABEL_RUN = "paddock.dev/run"
LABEL_RETAINED = "paddock.dev/retained"
ANNOTATION_SPEC_HASH = "paddock.dev/spec-hash"


def bounded(name: str, limit: int = MAX_NAME) -> str:
    """`name` if it fits, else a prefix plus a 10-character hash of the whole name."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{name[: limit - 11].rstrip('-.')}-{digest}"


def pod_name(workspace: str) -> str:
    return bounded(f"{workspace}-sandbox")


def pvc_name(workspace: str) -> str:
    return bounded(f"{workspace}-workspace")


def service_account_name(workspace: str) -> str:
    return bounded(f"{workspace}-sandbox")


def network_policy_name(workspace: str) -> str:
    return bounded(f"{workspace}-sandbox")


def exec_role_name(workspace: str) -> str:
    return bounded(f"{workspace}-harness-exec")


def run_workspace_name(run: str) -> str:
    """The workspace a run's workspaceTemplate creates carries the run's name."""
    return run


def workspace_labels(workspace: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "paddock",
        "app.kubernetes.io/instance": bounded(workspace),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/part-of": "paddock",
        LABEL_WORKSPACE: bounded(workspace),
    }


def spec_hash(document: object) -> str:
    """A short stable hash of a JSON-able document, to detect drift of immutable pod specs."""
    encoded = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]
