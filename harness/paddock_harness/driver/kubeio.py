"""The slice of the Kubernetes API the driver uses, as an async interface.

`KubeAdapter` runs the operator's synchronous `Kube` wrapper in worker threads (never blocking the event
loop); `memory.InMemoryKube` implements the same interface for unit tests. Both raise `ConflictError` when
an optimistic-concurrency precondition (metadata.resourceVersion) fails or a created name exists.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any, Protocol

from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import NotFoundError as DynamicNotFoundError

from paddock_operator.controllers.kube import Kube, api_error_message


class ConflictError(Exception):
    """The object changed since we read it (409), or a name we created already exists."""


class GoneError(Exception):
    """The object does not exist (404)."""


class AsyncKube(Protocol):
    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def list(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]: ...

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create; ConflictError when the name exists."""
        ...

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
        """JSON merge patch; ConflictError on a stale resource_version, GoneError when absent."""
        ...

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool: ...

    async def post_event(self, involved: dict[str, Any], event_type: str, reason: str, message: str) -> None: ...


class KubeAdapter:
    """AsyncKube over the synchronous dynamic-client wrapper, one worker thread per call."""

    def __init__(self, kube: Kube, component: str = "paddock-harness") -> None:
        self.kube = kube
        self.component = component

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return await asyncio.to_thread(self.kube.get, api_version, kind, namespace, name)

    async def list(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.kube.list, api_version, kind, namespace, label_selector)

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        created = await asyncio.to_thread(self.kube.create, obj)
        if created is None:
            raise ConflictError(f"{obj['kind']} {obj['metadata'].get('name')} already exists")
        return created

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
        try:
            return await asyncio.to_thread(
                lambda: self.kube.patch_merge(
                    api_version,
                    kind,
                    namespace,
                    name,
                    patch,
                    subresource=subresource,
                    resource_version=resource_version,
                )
            )
        except DynamicNotFoundError as error:
            raise GoneError(f"{kind} {namespace}/{name} not found") from error
        except ApiException as error:
            if error.status == 409:
                raise ConflictError(api_error_message(error)) from error
            if error.status == 404:
                raise GoneError(api_error_message(error)) from error
            raise

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        return await asyncio.to_thread(self.kube.delete, api_version, kind, namespace, name)

    async def post_event(self, involved: dict[str, Any], event_type: str, reason: str, message: str) -> None:
        await asyncio.to_thread(self.kube.post_event, involved, event_type, reason, message, self.component)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (what the apiserver applies for application/merge-patch+json)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: dict[str, Any] = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def owner_reference(run: dict[str, Any]) -> dict[str, Any]:
    """The run as owner of a harness object. Not blocking deletion: that would need finalizer rights."""
    return {
        "apiVersion": run["apiVersion"],
        "kind": run["kind"],
        "name": run["metadata"]["name"],
        "uid": run["metadata"]["uid"],
        "controller": False,
        "blockOwnerDeletion": False,
    }


def owned_by(obj: dict[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in (obj.get("metadata") or {}).get("ownerReferences") or [])
