"""The control loop: a work queue fed by watch events and a periodic resync, drained by workers that run the
synchronous reconcilers in threads, while this replica holds the leader Lease."""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import time
from collections import Counter
from typing import Any, Literal

from kubernetes.client.exceptions import ApiException

from .. import metrics
from ..api import API_VERSION
from ..settings import OperatorSettings
from . import leader
from .kube import Kube, api_error_message
from .run import reconcile_run
from .workqueue import WorkQueue
from .workspace import reconcile_workspace

log = logging.getLogger("paddock.manager")

Kind = Literal["AgentWorkspace", "AgentRun"]
Key = tuple[Kind, str, str]


class Manager:
    def __init__(self, kube: Kube, settings: OperatorSettings) -> None:
        self.kube = kube
        self.settings = settings
        self.queue: WorkQueue[Key] = WorkQueue()
        self.leading = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def enqueue(self, kind: Kind, namespace: str, name: str, delay: float = 0.0) -> None:
        self.queue.add_after((kind, namespace, name), delay)

    def _watched(self, namespace: str) -> bool:
        # The same glob patterns kopf accepts for --namespace, e.g. "team-*".
        return not self.settings.namespaces or any(fnmatch.fnmatchcase(namespace, p) for p in self.settings.namespaces)

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self.queue.run_delayed(), name="paddock-delayed"),
            asyncio.create_task(self._elect(), name="paddock-leader"),
            asyncio.create_task(self._resync(), name="paddock-resync"),
            *(
                asyncio.create_task(self.queue.run_worker(self._handle), name=f"paddock-worker-{i}")
                for i in range(self.settings.workers)
            ),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.settings.leader_election and self.leading.is_set():
            await asyncio.to_thread(
                leader.release,
                self.kube,
                self.settings.lease_namespace,
                self.settings.lease_name,
                self.settings.identity,
            )

    async def _elect(self) -> None:
        if not self.settings.leader_election:
            self._set_leading(True)
            return
        period = self.settings.lease_duration_seconds / 3
        while True:
            try:
                held = await asyncio.to_thread(
                    leader.try_acquire_or_renew,
                    self.kube,
                    self.settings.lease_namespace,
                    self.settings.lease_name,
                    self.settings.identity,
                    self.settings.lease_duration_seconds,
                )
            except Exception as error:  # the API may be briefly unreachable: keep trying, stop leading
                log.warning("leader election failed: %s", error)
                held = False
            self._set_leading(held)
            await asyncio.sleep(period)

    def _set_leading(self, held: bool) -> None:
        if held and not self.leading.is_set():
            log.info("became the leader (%s)", self.settings.identity)
            self.leading.set()
            asyncio.get_running_loop().create_task(self._resync_once())
        elif not held and self.leading.is_set():
            log.warning("lost the leader Lease: pausing reconciliation")
            self.leading.clear()
        metrics.IS_LEADER.set(1 if held else 0)

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.settings.resync_seconds)
            if self.leading.is_set():
                await self._resync_once()

    async def _resync_once(self) -> None:
        """Level-based safety net: look at every object again, and refresh the phase gauges."""
        for kind, gauge in (("AgentWorkspace", metrics.WORKSPACES), ("AgentRun", metrics.RUNS)):
            try:
                items = await asyncio.to_thread(self._list_watched, kind)
            except Exception as error:
                log.warning("resync of %s failed: %s", kind, error)
                continue
            phases: Counter[str] = Counter()
            for item in items:
                meta = item["metadata"]
                if self._watched(meta["namespace"]):
                    self.enqueue(kind, meta["namespace"], meta["name"])  # type: ignore[arg-type]
                    phases[(item.get("status") or {}).get("phase") or "Pending"] += 1
            gauge.clear()
            for phase, count in phases.items():
                gauge.labels(phase).set(count)

    def _list_watched(self, kind: str) -> list[dict[str, Any]]:
        """List per namespace when they are named exactly (namespaced RBAC allows no cluster-wide list)."""
        names = self.settings.namespaces
        if names and not any(set(n) & set("*?[") for n in names):
            return [item for n in names for item in self.kube.list(API_VERSION, kind, n)]
        return self.kube.list(API_VERSION, kind)

    async def _handle(self, key: Key) -> float | None:
        if not self.leading.is_set():
            return None  # the resync after winning the Lease brings every key back
        kind, namespace, name = key
        started = time.perf_counter()
        extra = {"namespace": namespace, "object": name, "kind": kind}
        try:
            if kind == "AgentWorkspace":
                requeue = await asyncio.to_thread(reconcile_workspace, self.kube, self.settings, namespace, name)
            else:
                requeue = await asyncio.to_thread(reconcile_run, self.kube, namespace, name)
        except ApiException as error:
            metrics.RECONCILES.labels(kind, "error").inc()
            log.warning("reconcile failed: %s %s", error.status, api_error_message(error), extra=extra)
            return 5.0
        except Exception:
            metrics.RECONCILES.labels(kind, "error").inc()
            log.exception("reconcile crashed", extra=extra)
            return 10.0
        finally:
            metrics.RECONCILE_SECONDS.labels(kind).observe(time.perf_counter() - started)
        metrics.RECONCILES.labels(kind, "ok").inc()
        return requeue
