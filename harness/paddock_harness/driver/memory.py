"""An in-memory AsyncKube: enough apiserver semantics (resourceVersion preconditions, the status
subresource, label selectors, merge patches) to run the whole driver in unit tests without a cluster."""

from __future__ import annotations

import copy
import itertools
import uuid
from datetime import UTC, datetime
from typing import Any

from .kubeio import ConflictError, GoneError, merge_patch

Key = tuple[str, str, str, str]  # kind, namespace, name, apiVersion-group


def _key(api_version: str, kind: str, namespace: str | None, name: str) -> Key:
    return (kind, namespace or "", name, api_version.split("/")[0] if "/" in api_version else "")


def _matches(labels: dict[str, str], selector: str | None) -> bool:
    if not selector:
        return True
    for term in selector.split(","):
        term = term.strip()
        if not term:
            continue
        if "!=" in term:
            name, value = term.split("!=", 1)
            if labels.get(name.strip()) == value.strip():
                return False
        elif "=" in term:
            name, value = term.replace("==", "=").split("=", 1)
            if labels.get(name.strip()) != value.strip():
                return False
        elif term.strip() not in labels:
            return False
    return True


class InMemoryKube:
    """Objects keyed by kind/namespace/name; every write bumps a global resourceVersion."""

    def __init__(self) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.writes: list[tuple[str, str, str]] = []  # (verb, kind, name), for assertions on write rates
        self._rv = itertools.count(1)

    # -- helpers for tests -----------------------------------------------------------------------

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store an object as-is (filling uid/resourceVersion), like a test fixture applying YAML."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"))
        meta["resourceVersion"] = str(next(self._rv))
        self.objects[_key(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])] = obj
        return copy.deepcopy(obj)

    def peek(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get(_key(api_version, kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(obj) for key, obj in self.objects.items() if key[0] == kind]

    # -- AsyncKube ---------------------------------------------------------------------------------

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.peek(api_version, kind, namespace, name)

    async def list(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        group = _key(api_version, kind, namespace, "")[3]
        found = []
        for (k, ns, _, g), obj in sorted(self.objects.items()):
            if k != kind or g != group or (namespace is not None and ns != namespace):
                continue
            if _matches((obj.get("metadata") or {}).get("labels") or {}, label_selector):
                found.append(copy.deepcopy(obj))
        return found

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        key = _key(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
        if key in self.objects:
            raise ConflictError(f"{obj['kind']} {meta['name']} already exists")
        self.writes.append(("create", obj["kind"], meta["name"]))
        return self.put(obj)

    async def patch_merge(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        patch: dict[str, Any],
        *,
        subresource: str | None = None,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        key = _key(api_version, kind, namespace, name)
        current = self.objects.get(key)
        if current is None:
            raise GoneError(f"{kind} {namespace}/{name} not found")
        expected = resource_version or (patch.get("metadata") or {}).get("resourceVersion")
        if expected is not None and expected != current["metadata"]["resourceVersion"]:
            raise ConflictError(f"{kind} {namespace}/{name} changed (have {current['metadata']['resourceVersion']})")
        patch = copy.deepcopy(patch)
        (patch.get("metadata") or {}).pop("resourceVersion", None)
        if subresource == "status":
            # The status subresource ignores everything but status.
            patch = {"status": patch.get("status")} if "status" in patch else {}
        elif "status" in patch and kind not in ("ConfigMap", "Lease", "Secret"):
            patch.pop("status")  # the main resource ignores status for kinds with the subresource
        updated = merge_patch(current, patch)
        updated["metadata"]["resourceVersion"] = str(next(self._rv))
        self.objects[key] = updated
        self.writes.append(("patch" + (f"/{subresource}" if subresource else ""), kind, name))
        return copy.deepcopy(updated)

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        self.writes.append(("delete", kind, name))
        return self.objects.pop(_key(api_version, kind, namespace, name), None) is not None

    async def post_event(self, involved: dict[str, Any], event_type: str, reason: str, message: str) -> None:
        self.events.append(
            {
                "object": involved["metadata"]["name"],
                "namespace": involved["metadata"].get("namespace"),
                "type": event_type,
                "reason": reason,
                "message": message,
            }
        )

    # -- test conveniences -------------------------------------------------------------------------

    def set_annotations(
        self, api_version: str, kind: str, namespace: str, name: str, annotations: dict[str, Any]
    ) -> None:
        key = _key(api_version, kind, namespace, name)
        obj = self.objects[key]
        obj["metadata"] = merge_patch(obj["metadata"], {"annotations": annotations})
        obj["metadata"]["resourceVersion"] = str(next(self._rv))

    def set_status(self, api_version: str, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        key = _key(api_version, kind, namespace, name)
        obj = self.objects[key]
        obj["status"] = merge_patch(obj.get("status") or {}, status)
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
