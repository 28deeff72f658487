"""AgentWorkspace objects and their pods: create, look up, wait for Ready, record activity."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any, Final

from .kube import JsonObj, KubeApi, KubeApiError, q
from .state import DEFAULT_MOUNT_PATH

logger = logging.getLogger(__name__)

GROUP: Final = "paddock.dev"
VERSION: Final = "v1alpha1"
PLURAL: Final = "agentworkspaces"
KIND: Final = "AgentWorkspace"
DEFAULT_CONTAINER_ANNOTATION: Final = "kubectl.kubernetes.io/default-container"
ACTIVITY_DEBOUNCE_SECONDS: Final = 30.0
# Bound on a watch that waits for a replacement pod: the pod is re-checked at least this often.
_RECHECK_SECONDS: Final = 5


class WorkspaceError(Exception):
    """The workspace cannot be used (failed, deleted, not found, or not Ready in time)."""

    def __init__(self, message: str, *, reason: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.retryable = retryable


def workspaces_path(namespace: str) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{q(namespace)}/{PLURAL}"


def workspace_path(namespace: str, name: str) -> str:
    return f"{workspaces_path(namespace)}/{q(name)}"


def pod_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{q(namespace)}/pods/{q(name)}"


@dataclass(frozen=True)
class PodTarget:
    name: str
    uid: str
    container: str | None


def phase_of(obj: JsonObj) -> str:
    return str((obj.get("status") or {}).get("phase") or "")


def mount_path_of(obj: JsonObj) -> str:
    storage = (obj.get("spec") or {}).get("storage") or {}
    return str(storage.get("mountPath") or DEFAULT_MOUNT_PATH)


def is_ready(obj: JsonObj) -> bool:
    status = obj.get("status") or {}
    return status.get("phase") == "Ready" and bool(status.get("podName"))


def pod_is_running(pod: JsonObj, container: str | None = None) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") != "Running" or (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    statuses = status.get("containerStatuses") or []
    for cs in statuses:
        if (container is None or cs.get("name") == container) and "running" in (cs.get("state") or {}):
            return True
    return False


def default_container(pod: JsonObj) -> str | None:
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    if annotations.get(DEFAULT_CONTAINER_ANNOTATION):
        return str(annotations[DEFAULT_CONTAINER_ANNOTATION])
    containers = (pod.get("spec") or {}).get("containers") or []
    return str(containers[0]["name"]) if containers else None


def rfc3339_now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class WorkspaceApi:
    def __init__(self, api: KubeApi) -> None:
        self.api = api

    async def get(self, namespace: str, name: str) -> JsonObj | None:
        return await self.api.get_or_none(workspace_path(namespace, name))

    async def create(
        self,
        namespace: str,
        spec: dict[str, Any],
        *,
        name: str | None,
        generate_name: str,
        labels: dict[str, str],
    ) -> JsonObj:
        metadata: dict[str, Any] = {"labels": {"app.kubernetes.io/managed-by": "paddock-sandbox", **labels}}
        if name:
            metadata["name"] = name
        else:
            metadata["generateName"] = generate_name
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": metadata, "spec": spec}
        return await self.api.request("POST", workspaces_path(namespace), body=body)

    async def delete(self, namespace: str, name: str) -> bool:
        try:
            await self.api.request("DELETE", workspace_path(namespace, name))
        except KubeApiError as e:
            if e.status == 404:
                return False
            raise
        return True

    async def wait_ready(self, namespace: str, name: str, *, timeout_s: float) -> JsonObj:
        """Wait with a watch (no polling loop) until the workspace is Ready; return it."""
        try:
            async with asyncio.timeout(timeout_s):
                return await self._next_ready(namespace, name, stale_rv=None)
        except TimeoutError as e:
            raise WorkspaceError(
                f"AgentWorkspace {namespace}/{name} not Ready after {timeout_s:.0f}s",
                reason="ready_timeout",
                retryable=True,
            ) from e

    async def wait_pod(self, namespace: str, name: str, container: str | None, *, timeout_s: float) -> PodTarget:
        """Wait until the workspace is Ready *and* the pod its status names is running.

        Right after a pod is deleted the status can still say Ready with the old (terminating)
        pod; then this waits for the operator's next status update instead of using that pod.
        """
        try:
            async with asyncio.timeout(timeout_s):
                stale_rv: str | None = None
                while True:
                    obj = await self._next_ready(namespace, name, stale_rv=stale_rv)
                    pod_name = str((obj.get("status") or {}).get("podName") or "")
                    pod = await self.api.get_or_none(pod_path(namespace, pod_name))
                    if pod is not None:
                        target_container = container or default_container(pod)
                        if pod_is_running(pod, target_container):
                            uid = str((pod.get("metadata") or {}).get("uid") or "")
                            return PodTarget(name=pod_name, uid=uid, container=target_container)
                    stale_rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        except TimeoutError as e:
            raise WorkspaceError(
                f"AgentWorkspace {namespace}/{name} has no running pod after {timeout_s:.0f}s",
                reason="ready_timeout",
                retryable=True,
            ) from e

    async def _next_ready(self, namespace: str, name: str, *, stale_rv: str | None) -> JsonObj:
        """Return the workspace once Ready; with `stale_rv`, only a newer version of it.

        With `stale_rv` a watch that ends without news also returns (after at most
        `_RECHECK_SECONDS`), so the caller re-checks the pod even if the status never changes.
        """
        while True:
            obj = await self.get(namespace, name)
            if obj is None:
                raise WorkspaceError(f"AgentWorkspace {namespace}/{name} not found", reason="not_found")
            self._check_usable(obj, namespace, name)
            rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
            if is_ready(obj) and rv != stale_rv:
                return obj
            params = {"fieldSelector": f"metadata.name={name}", "resourceVersion": rv}
            watch_s = _RECHECK_SECONDS if stale_rv is not None else 300
            try:
                async for event in self.api.watch(workspaces_path(namespace), params=params, timeout_seconds=watch_s):
                    etype = event.get("type")
                    wobj = event.get("object") or {}
                    if etype == "ERROR":
                        break  # e.g. 410 Gone: re-list from a fresh resourceVersion
                    if etype == "DELETED":
                        raise WorkspaceError(f"AgentWorkspace {namespace}/{name} was deleted", reason="deleted")
                    self._check_usable(wobj, namespace, name)
                    if is_ready(wobj):
                        return dict(wobj)
                else:
                    if stale_rv is not None and is_ready(obj):
                        return obj  # no news within the bound: let the caller look at the pod again
            except KubeApiError as e:
                if e.status not in (0, 410) and not e.transient:
                    raise
                logger.debug("workspace watch ended (%s); re-listing", e)

    @staticmethod
    def _check_usable(obj: JsonObj, namespace: str, name: str) -> None:
        phase = phase_of(obj)
        message = (obj.get("status") or {}).get("message") or ""
        if phase in ("Failed", "Terminating"):
            raise WorkspaceError(
                f"AgentWorkspace {namespace}/{name} is {phase}: {message}".rstrip(": "),
                reason=phase.lower(),
            )
        lifecycle = (obj.get("spec") or {}).get("lifecycle") or {}
        if lifecycle.get("suspend"):
            # Suspended on purpose: only a person un-suspends it. (An idle-suspended workspace
            # wakes up on recorded activity, so that case is waited for.)
            raise WorkspaceError(
                f"AgentWorkspace {namespace}/{name} is suspended (spec.lifecycle.suspend)", reason="suspended"
            )

    async def resolve_pod(self, namespace: str, workspace: JsonObj, container: str | None) -> PodTarget:
        pod_name = str((workspace.get("status") or {}).get("podName") or "")
        if not pod_name:
            raise WorkspaceError("workspace has no pod", reason="no_pod", retryable=True)
        return await self.pod_target(namespace, pod_name, container)

    async def pod_target(self, namespace: str, pod_name: str, container: str | None) -> PodTarget:
        pod = await self.api.get_or_none(pod_path(namespace, pod_name))
        if pod is None:
            raise WorkspaceError(f"pod {namespace}/{pod_name} not found", reason="pod_not_found", retryable=True)
        uid = str((pod.get("metadata") or {}).get("uid") or "")
        return PodTarget(name=pod_name, uid=uid, container=container or default_container(pod))


class ActivityReporter:
    """Patch `status.lastActivityTime` at most once per `debounce` seconds, in the background.

    Best-effort: failures are logged, never raised, and never delay an exec.
    """

    def __init__(
        self, api: KubeApi, namespace: str, workspace: str, *, debounce: float = ACTIVITY_DEBOUNCE_SECONDS
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.workspace = workspace
        self.debounce = debounce
        self._last: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._warned = False
        self.patches = 0

    def touch(self) -> None:
        now = time.monotonic()
        if self._last is not None and now - self._last < self.debounce:
            return
        if self._task is not None and not self._task.done():
            return
        self._last = now
        self._task = asyncio.get_running_loop().create_task(self._patch())

    async def _patch(self) -> None:
        body = {"status": {"lastActivityTime": rfc3339_now()}}
        try:
            await self.api.request(
                "PATCH",
                workspace_path(self.namespace, self.workspace) + "/status",
                body=body,
                content_type="application/merge-patch+json",
                timeout_s=10.0,
            )
            self.patches += 1
        except KubeApiError as e:
            if not self._warned and e.status != 404:
                self._warned = True
                logger.warning("cannot record activity on AgentWorkspace %s/%s: %s", self.namespace, self.workspace, e)
            if e.transient:
                # Let the next exec try again rather than waiting a full debounce period.
                self._last = None
        except Exception:  # never let a background bookkeeping task surface an error
            logger.debug("activity patch failed", exc_info=True)
            self._last = None

    async def aclose(self) -> None:
        task = self._task
        if task is not None and not task.done():
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, 5.0)
