"""A small synchronous Kubernetes client over the dynamic client: dicts in, dicts out.

The operator calls it from worker threads (asyncio.to_thread), never on the event loop.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient, Resource
from kubernetes.dynamic.exceptions import NotFoundError

FIELD_MANAGER = "paddock-operator"


def load_api_client(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """In-cluster config inside a pod, else the kubeconfig (KUBECONFIG or ~/.kube/config)."""
    configuration = client.Configuration()
    try:
        if kubeconfig is None and context is None:
            config.load_incluster_config(client_configuration=configuration)
        else:
            raise config.ConfigException("explicit kubeconfig")
    except config.ConfigException:
        config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
    return client.ApiClient(configuration)


class Kube:
    def __init__(self, api_client: client.ApiClient, field_manager: str = FIELD_MANAGER) -> None:
        self.api_client = api_client
        self.field_manager = field_manager
        self._dynamic = DynamicClient(api_client)
        self._resources: dict[tuple[str, str], Resource] = {}
        self._lock = threading.Lock()
        # Independent requests of one reconcile go out together: one round trip instead of several.
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="paddock-kube")

    def gather(self, *calls: Callable[[], Any]) -> list[Any]:
        """Run independent API calls concurrently; results in order, the first error raised."""
        return [future.result() for future in [self._pool.submit(call) for call in calls]]

    def resource(self, api_version: str, kind: str) -> Resource:
        with self._lock:
            key = (api_version, kind)
            if key not in self._resources:
                self._resources[key] = self._dynamic.resources.get(api_version=api_version, kind=kind)
            return self._resources[key]

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found = self._dynamic.get(self.resource(api_version, kind), name=name, namespace=namespace)
        except NotFoundError:
            return None
        return dict(found.to_dict())

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {}
        if label_selector:
            kwargs["label_selector"] = label_selector
        found = self._dynamic.get(self.resource(api_version, kind), namespace=namespace, **kwargs)
        return [dict(item) for item in found.to_dict().get("items", [])]

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply: the apiserver merges our fields and writes nothing when nothing changed."""
        meta = obj["metadata"]
        applied = self._dynamic.server_side_apply(
            self.resource(obj["apiVersion"], obj["kind"]),
            body=obj,
            name=meta["name"],
            namespace=meta.get("namespace"),
            field_manager=self.field_manager,
            force_conflicts=True,
        )
        return dict(applied.to_dict())

    def create(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Create; None when an object of that name already exists (a deterministic name makes that safe)."""
        try:
            created = self._dynamic.create(
                self.resource(obj["apiVersion"], obj["kind"]),
                body=obj,
                namespace=obj["metadata"].get("namespace"),
                field_manager=self.field_manager,
            )
        except ApiException as error:
            if error.status == 409:
                return None
            raise
        return dict(created.to_dict())

    def delete(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        *,
        uid: str | None = None,
        propagation: str = "Background",
    ) -> bool:
        """Delete (only the object with `uid`, when given); False when it was already gone."""
        body: dict[str, Any] = {"propagationPolicy": propagation}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self._dynamic.delete(self.resource(api_version, kind), name=name, namespace=namespace, body=body)
        except NotFoundError:
            return False
        except ApiException as error:
            if error.status in (404, 409):
                return False
            raise
        return True

    def patch_merge(
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
        """JSON merge patch; with resource_version the write fails with 409 if the object changed meanwhile."""
        if resource_version is not None:
            patch = {**patch, "metadata": {**patch.get("metadata", {}), "resourceVersion": resource_version}}
        resource = self.resource(api_version, kind)
        if subresource:
            resource = resource.subresources[subresource]
        patched = self._dynamic.patch(
            resource,
            body=patch,
            name=name,
            namespace=namespace,
            content_type="application/merge-patch+json",
            field_manager=self.field_manager,
        )
        return dict(patched.to_dict())

    def post_event(self, involved: dict[str, Any], event_type: str, reason: str, message: str, component: str) -> None:
        """A core/v1 Event about `involved`, the kind `kubectl describe` shows. Best effort."""
        meta = involved["metadata"]
        now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": involved["apiVersion"],
                "kind": involved["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": event_type,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": component},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        # Events are for humans: never fail a reconcile over one.
        with contextlib.suppress(ApiException):
            self._dynamic.create(self.resource("v1", "Event"), body=event, namespace=meta["namespace"])


def api_error_message(error: ApiException) -> str:
    try:
        return str(json.loads(error.body or "").get("message", error.reason))
    except (TypeError, ValueError):
        return str(error.reason)
