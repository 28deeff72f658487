"""The harness controller: watches AgentRuns and drives each active one, one asyncio task per run.

- A plain list+watch per namespace (or cluster-wide) runs in a thread with the kubernetes client and feeds
  the event loop; every ``resync_seconds`` it relists, which also retries runs whose claim was held by a
  replica that has since died (its Lease goes stale). No kopf, no finalizers.
- Running runs are driven; AwaitingApproval runs are driven only when an approve/reject annotation is
  present. The number of runs driven at once is capped by a semaphore (--max-concurrent-runs).
- Each drive holds the run's Lease (lease.py) and renews it; losing it, or seeing the run end (cancelled,
  timed out, deleted), cancels the drive task promptly.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import AsyncIterator
from typing import Any, Final

from aiohttp import web
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from paddock_operator.api import GROUP, VERSION, RunPhase

from . import metrics
from .lease import RunClaim
from .run import DriverDeps, RunDriver
from .status import RUN_API, approval_annotations_present, run_ended_reason

log = logging.getLogger("paddock.harness")
Key = tuple[str, str]
NOT_CLAIMED: Final = "NotClaimed"
PLURAL: Final = "agentruns"


def _key(body: dict[str, Any]) -> Key:
    return body["metadata"]["namespace"], body["metadata"]["name"]


def wants_drive(body: dict[str, Any]) -> bool:
    """Whether a run needs a driver now. Pure."""
    if run_ended_reason(body) is not None:
        return False
    phase = (body.get("status") or {}).get("phase")
    if phase == RunPhase.RUNNING.value:
        return True
    return phase == RunPhase.AWAITING_APPROVAL.value and approval_annotations_present(body)


class Controller:
    def __init__(self, deps: DriverDeps) -> None:
        self.deps = deps
        self.settings = deps.settings
        self.drives: dict[Key, asyncio.Task[str]] = {}
        self.drivers: dict[Key, RunDriver] = {}
        self.latest: dict[Key, dict[str, Any]] = {}
        self._slots = asyncio.Semaphore(self.settings.max_concurrent_runs)
        self.ready = False
        self.last_event = time.monotonic()

    # -- event intake --------------------------------------------------------------------------------

    def observe(self, event_type: str, body: dict[str, Any]) -> None:
        key = _key(body)
        self.last_event = time.monotonic()
        task = self.drives.get(key)
        if event_type == "DELETED":
            self.latest.pop(key, None)
            if task is not None:
                task.cancel()
            return
        self.latest[key] = body
        if task is not None:
            if run_ended_reason(body) is not None and (body.get("status") or {}).get("phase") != RunPhase.PENDING.value:
                driver = self.drivers.get(key)
                if driver is not None and driver.finishing:
                    return  # our own final status coming back: let the drive tear down and release the claim
                log.info("run ended elsewhere (%s): stopping its drive", run_ended_reason(body), extra=_log(key))
                task.cancel()
            return
        if wants_drive(body):
            task = asyncio.create_task(self._drive(key), name=f"drive {key[0]}/{key[1]}")
            self.drives[key] = task
            task.add_done_callback(functools.partial(self._finished, key))

    def _finished(self, key: Key, task: asyncio.Task[str]) -> None:
        if self.drives.get(key) is task:
            del self.drives[key]
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.error("drive crashed: %r", error, extra=_log(key))
            return
        if task.result() == RunPhase.AWAITING_APPROVAL.value and key in self.latest:
            # An annotation may have arrived while we were busy: look once more.
            self.observe("MODIFIED", self.latest[key])

    async def settle(self) -> None:
        """Wait until no drive is running (tests)."""
        while self.drives:
            await asyncio.gather(*list(self.drives.values()), return_exceptions=True)

    async def shutdown(self) -> None:
        for task in list(self.drives.values()):
            task.cancel()
        await asyncio.gather(*list(self.drives.values()), return_exceptions=True)

    # -- one drive -----------------------------------------------------------------------------------

    async def _drive(self, key: Key) -> str:
        metrics.QUEUED_DRIVES.inc()
        try:
            await self._slots.acquire()
        finally:
            metrics.QUEUED_DRIVES.dec()
        started = time.monotonic()
        metrics.ACTIVE_DRIVES.inc()
        outcome = NOT_CLAIMED
        try:
            body = await self.deps.kube.get(RUN_API, "AgentRun", key[0], key[1])
            if body is None or not wants_drive(body):
                return outcome
            claim = RunClaim(self.deps.kube, body, self.settings.identity, self.settings.lease_duration_seconds)
            if not await claim.acquire():
                return outcome
            current = asyncio.current_task()
            assert current is not None
            renewer = asyncio.create_task(self._renew(claim, current))
            driver = RunDriver(self.deps, body)
            self.drivers[key] = driver
            try:
                outcome = await driver.drive()
            finally:
                renewer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewer
                await asyncio.shield(claim.release())
                # Only now: until the claim is released, our own final status event must still find the
                # finishing driver, or observe() would cancel this task as "ended elsewhere".
                self.drivers.pop(key, None)
            return outcome
        except asyncio.CancelledError:
            outcome = "Cancelled"
            raise
        finally:
            metrics.ACTIVE_DRIVES.dec()
            metrics.DRIVES.labels(outcome).inc()
            metrics.DRIVE_SECONDS.observe(time.monotonic() - started)
            self._slots.release()

    async def _renew(self, claim: RunClaim, drive: asyncio.Task[Any]) -> None:
        interval = max(0.5, self.settings.lease_duration_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                still_ours = await claim.renew()
            except Exception as error:  # API trouble: try again until the lease would expire
                log.warning("claim renewal failed: %s", error)
                continue
            if not still_ours:
                log.warning("lost the claim on %s/%s: stopping", claim.namespace, claim.name)
                drive.cancel()
                return

    # -- the process ---------------------------------------------------------------------------------

    async def run(self, source: RunWatcher, health_port: int = 0) -> None:
        health = await start_health(self, health_port) if health_port else None
        try:
            async for event_type, body in source.events():
                if event_type == "SYNCED":
                    self.ready = True
                    continue
                self.observe(event_type, body)
        finally:
            source.stop()
            await self.shutdown()
            if health is not None:
                await health.cleanup()


def _log(key: Key) -> dict[str, str]:
    return {"namespace": key[0], "object": key[1]}


class RunWatcher:
    """List+watch of AgentRuns in threads; yields (type, body), and ("SYNCED", {}) after each full list."""

    def __init__(self, api_client: client.ApiClient, namespaces: tuple[str, ...], resync_seconds: float) -> None:
        self.api = client.CustomObjectsApi(api_client)
        self.namespaces: tuple[str | None, ...] = namespaces or (None,)
        self.resync_seconds = resync_seconds
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    async def events(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

        def put(item: tuple[str, dict[str, Any]]) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        for namespace in self.namespaces:
            threading.Thread(target=self._loop, args=(namespace, put), daemon=True, name=f"watch {namespace}").start()
        while True:
            yield await queue.get()

    def _list(self, namespace: str | None, **kwargs: Any) -> Any:
        if namespace is None:
            return self.api.list_cluster_custom_object(GROUP, VERSION, PLURAL, **kwargs)
        return self.api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, **kwargs)

    def _loop(self, namespace: str | None, put: Any) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            metrics.WATCH_RESTARTS.inc()
            try:
                listed = self._list(namespace)
                for item in listed.get("items", []):
                    item.setdefault("apiVersion", RUN_API)
                    item.setdefault("kind", "AgentRun")
                    put(("SYNC", item))
                put(("SYNCED", {}))
                backoff = 1.0
                self._watch(namespace, str(listed["metadata"]["resourceVersion"]), put)
            except ApiException as error:
                if error.status != 410:
                    log.warning("AgentRun watch failed (%s): retrying in %.0fs", error.status, backoff)
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 30.0)
            except Exception as error:
                log.warning("AgentRun watch failed: %s: retrying in %.0fs", error, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)

    def _watch(self, namespace: str | None, resource_version: str, put: Any) -> None:
        deadline = time.monotonic() + self.resync_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            timeout = max(1, int(min(60.0, deadline - time.monotonic())))
            func = self.api.list_cluster_custom_object if namespace is None else self.api.list_namespaced_custom_object
            args: tuple[Any, ...] = (
                (GROUP, VERSION, PLURAL) if namespace is None else (GROUP, VERSION, namespace, PLURAL)
            )
            stream = watch.Watch().stream(
                func, *args, resource_version=resource_version, timeout_seconds=timeout, allow_watch_bookmarks=True
            )
            for event in stream:
                obj = event["object"]
                if event["type"] == "ERROR":
                    return  # typically 410 Gone: relist
                resource_version = str(obj["metadata"]["resourceVersion"])
                if event["type"] != "BOOKMARK":
                    put((event["type"], obj))
                if self._stop.is_set():
                    return


async def start_health(controller: Controller, port: int) -> web.AppRunner:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True, "drives": len(controller.drives)})

    async def readyz(_: web.Request) -> web.Response:
        return web.json_response({"ready": controller.ready}, status=200 if controller.ready else 503)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    return runner
