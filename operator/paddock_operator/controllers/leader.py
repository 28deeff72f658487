"""Leader election with a coordination.k8s.io Lease, so that replicas never reconcile at the same time.

Only the holder of the Lease reconciles; the others keep their watches warm and take over when the holder
stops renewing for lease_duration_seconds. Renewals use the Lease's resourceVersion, so two replicas can
never both believe they won.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes.client.exceptions import ApiException

from ..reconcile.timeutil import parse_time
from .kube import Kube

log = logging.getLogger("paddock.leader")


def _micro(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def try_acquire_or_renew(kube: Kube, namespace: str, name: str, identity: str, duration: float) -> bool:
    """One round of the election; True while this identity holds the Lease."""
    now = datetime.now(UTC)
    spec = {"holderIdentity": identity, "leaseDurationSeconds": int(duration), "renewTime": _micro(now)}
    lease = kube.get("coordination.k8s.io/v1", "Lease", namespace, name)
    try:
        if lease is None:
            kube.create(
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": name, "namespace": namespace},
                    "spec": {**spec, "acquireTime": _micro(now), "leaseTransitions": 0},
                }
            )
            return _holder(kube.get("coordination.k8s.io/v1", "Lease", namespace, name)) == identity
        current: dict[str, Any] = lease.get("spec") or {}
        holder = current.get("holderIdentity")
        renewed = parse_time(current.get("renewTime")) or datetime.min.replace(tzinfo=UTC)
        expired = now > renewed + timedelta(seconds=float(current.get("leaseDurationSeconds") or duration))
        if holder != identity and holder and not expired:
            return False
        patch: dict[str, Any] = {"spec": spec}
        if holder != identity:
            patch["spec"]["acquireTime"] = _micro(now)
            patch["spec"]["leaseTransitions"] = int(current.get("leaseTransitions") or 0) + 1
            log.info("taking over the leader Lease from %s", holder or "nobody")
        kube.patch_merge(
            "coordination.k8s.io/v1",
            "Lease",
            namespace,
            name,
            patch,
            resource_version=lease["metadata"]["resourceVersion"],
        )
        return True
    except ApiException as error:
        if error.status == 409:
            return False  # another replica wrote first
        raise


def release(kube: Kube, namespace: str, name: str, identity: str) -> None:
    """Give the Lease up on a clean shutdown so that a successor does not wait for it to expire."""
    lease = kube.get("coordination.k8s.io/v1", "Lease", namespace, name)
    if lease is None or _holder(lease) != identity:
        return
    with contextlib.suppress(ApiException):  # someone renewed meanwhile: nothing to give up
        kube.patch_merge(
            "coordination.k8s.io/v1",
            "Lease",
            namespace,
            name,
            {"spec": {"holderIdentity": None, "renewTime": None}},
            resource_version=lease["metadata"]["resourceVersion"],
        )


def _holder(lease: dict[str, Any] | None) -> str | None:
    return ((lease or {}).get("spec") or {}).get("holderIdentity")
