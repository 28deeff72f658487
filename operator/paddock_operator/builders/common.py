"""Object metadata shared by every child."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class OwnerRef:
    """Identity of the owning custom resource."""

    api_version: str
    kind: str
    name: str
    namespace: str
    uid: str

    @classmethod
    def of(cls, body: dict[str, Any]) -> OwnerRef:
        meta = body["metadata"]
        return cls(body["apiVersion"], body["kind"], meta["name"], meta["namespace"], meta["uid"])

    def reference(self, *, controller: bool = True) -> dict[str, Any]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": controller,
            "blockOwnerDeletion": True,
        }


def child_metadata(
    owner: OwnerRef,
    name: str,
    labels: dict[str, str],
    *,
    owned: bool = True,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": owner.namespace, "labels": dict(labels)}
    if owned:
        metadata["ownerReferences"] = [owner.reference()]
    if annotations:
        metadata["annotations"] = dict(annotations)
    return metadata
