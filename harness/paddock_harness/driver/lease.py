"""Per-run claims, so that several harness replicas never drive the same run.

Each run has a coordination.k8s.io/v1 Lease ``<run>-harness`` in its namespace, owned by the run (deleted
with it). A replica drives a run only while it holds that Lease:

- acquire: create it (409: someone else was faster), or take it over when it is free, already ours, or
  stale (renewTime + leaseDurationSeconds in the past: its holder died). Every update is a merge patch
  carrying the Lease's resourceVersion, so of two replicas racing for a stale Lease exactly one wins.
- renew every duration/3 while driving; a failed renewal (the Lease changed hands) stops the drive at once.
- release when the drive ends (the holder is cleared, so another replica may continue without waiting).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from paddock_operator.reconcile.timeutil import parse_time

from . import metrics, protocol
from .kubeio import AsyncKube, ConflictError, GoneError, owner_reference

API: Final = "coordination.k8s.io/v1"
log = logging.getLogger("paddock.harness.lease")


def _micro(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def is_stale(spec: dict[str, Any], now: datetime) -> bool:
    """A Lease nobody holds, or whose holder stopped renewing it. Pure."""
    if not spec.get("holderIdentity"):
        return True
    renewed = parse_time(spec.get("renewTime") or spec.get("acquireTime"))
    duration = float(spec.get("leaseDurationSeconds") or 0)
    return renewed is None or renewed + timedelta(seconds=duration) < now


class RunClaim:
    def __init__(
        self,
        kube: AsyncKube,
        run: dict[str, Any],
        identity: str,
        duration_seconds: float,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.kube = kube
        self.run = run
        self.identity = identity
        self.duration = duration_seconds
        self.namespace: str = run["metadata"]["namespace"]
        self.name = protocol.lease_name(run["metadata"]["name"])
        self._clock = clock
        self._rv: str | None = None

    def _spec(self, now: datetime, *, acquired: bool, transitions: int) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.duration)),
            "renewTime": _micro(now),
            "leaseTransitions": transitions,
        }
        if acquired:
            spec["acquireTime"] = _micro(now)
        return spec

    async def acquire(self) -> bool:
        now = self._clock()
        lease = await self.kube.get(API, "Lease", self.namespace, self.name)
        if lease is None:
            body = {
                "apiVersion": API,
                "kind": "Lease",
                "metadata": {
                    "name": self.name,
                    "namespace": self.namespace,
                    "labels": {
                        protocol.LABEL_RUN_NAME: protocol.run_label_value(self.run["metadata"]["name"]),
                        protocol.LABEL_RUN_UID: self.run["metadata"]["uid"],
                        protocol.LABEL_KIND: protocol.KIND_LEASE,
                    },
                    "ownerReferences": [owner_reference(self.run)],
                },
                "spec": self._spec(now, acquired=True, transitions=0),
            }
            try:
                created = await self.kube.create(body)
            except ConflictError:
                metrics.CLAIMS.labels("lost_race").inc()
                return False
            self._rv = created["metadata"]["resourceVersion"]
            metrics.CLAIMS.labels("created").inc()
            return True
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        if holder != self.identity and not is_stale(spec, now):
            metrics.CLAIMS.labels("held").inc()
            return False
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if holder == self.identity else 1)
        try:
            patched = await self.kube.patch_merge(
                API,
                "Lease",
                self.namespace,
                self.name,
                {"spec": self._spec(now, acquired=holder != self.identity, transitions=transitions)},
                resource_version=lease["metadata"]["resourceVersion"],
            )
        except (ConflictError, GoneError):
            metrics.CLAIMS.labels("lost_race").inc()
            return False
        self._rv = patched["metadata"]["resourceVersion"]
        metrics.CLAIMS.labels("taken_over" if holder and holder != self.identity else "acquired").inc()
        if holder and holder != self.identity:
            log.info(
                "took over the stale claim of %s", holder, extra={"namespace": self.namespace, "object": self.name}
            )
        return True

    async def renew(self) -> bool:
        """Extend the claim; False when it is no longer ours."""
        try:
            patched = await self.kube.patch_merge(
                API,
                "Lease",
                self.namespace,
                self.name,
                {"spec": {"holderIdentity": self.identity, "renewTime": _micro(self._clock())}},
                resource_version=self._rv,
            )
        except GoneError:
            return False
        except ConflictError:
            lease = await self.kube.get(API, "Lease", self.namespace, self.name)
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return False
            self._rv = lease["metadata"]["resourceVersion"]
            return await self.renew()
        self._rv = patched["metadata"]["resourceVersion"]
        return True

    async def release(self) -> None:
        if self._rv is None:
            return
        with contextlib.suppress(ConflictError, GoneError):  # not ours any more, or gone with the run
            await self.kube.patch_merge(
                API,
                "Lease",
                self.namespace,
                self.name,
                {"spec": {"holderIdentity": None, "renewTime": _micro(self._clock())}},
                resource_version=self._rv,
            )
        self._rv = None
