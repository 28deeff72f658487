"""Operator settings: one typed object, filled from flags or PADDOCK_* environment variables (for the chart)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

from .api.workspace import ResourceList, Resources
from .envflags import add_env_flag, add_env_switch, add_namespace_flag, env_list


@dataclass(frozen=True)
class OperatorSettings:
    namespaces: tuple[str, ...] = ()
    """Namespaces to watch; empty means all namespaces."""
    harness_service_account: str = "paddock-harness"
    """ServiceAccount of the harness, the only identity granted pods/exec into sandboxes."""
    harness_namespace: str = "paddock-system"
    sandbox_uid: int = 1000
    sandbox_gid: int = 1000
    default_resources: Resources = field(
        default_factory=lambda: Resources(
            requests=ResourceList(cpu="100m", memory="256Mi", ephemeral_storage="256Mi"),
            limits=ResourceList(cpu="2", memory="2Gi", ephemeral_storage="4Gi"),
        )
    )
    tmp_size_limit: str = "1Gi"
    cluster_cidrs: tuple[str, ...] = ("10.244.0.0/16", "10.96.0.0/12")
    """Pod and service ranges of the cluster, always blocked for egress Internet."""
    dns_namespace: str = "kube-system"
    dns_pod_label: tuple[str, str] = ("k8s-app", "kube-dns")
    resync_seconds: float = 60.0
    workers: int = 4
    leader_election: bool = True
    lease_name: str = "paddock-operator"
    lease_namespace: str = "paddock-system"
    lease_duration_seconds: float = 15.0
    identity: str = field(default_factory=lambda: os.environ.get("POD_NAME") or os.uname().nodename + f"-{os.getpid()}")
    metrics_port: int = 8080
    health_port: int = 8081


def parse_args(argv: Sequence[str] | None = None) -> OperatorSettings:
    d = OperatorSettings()
    parser = argparse.ArgumentParser(
        prog="python -m paddock_operator",
        description="Paddock operator: reconciles AgentWorkspace and AgentRun resources. "
        "Every flag can also be set by the PADDOCK_* environment variable named in its help.",
    )
    add_namespace_flag(parser)
    flag = partial(add_env_flag, parser)
    flag(
        "--harness-service-account",
        "PADDOCK_HARNESS_SERVICE_ACCOUNT",
        d.harness_service_account,
        "harness ServiceAccount, the only identity granted pods/exec into sandboxes",
    )
    flag(
        "--harness-namespace",
        "PADDOCK_HARNESS_NAMESPACE",
        d.harness_namespace,
        "namespace of the harness ServiceAccount",
    )
    flag("--sandbox-uid", "PADDOCK_SANDBOX_UID", d.sandbox_uid, "default non-root UID of sandbox processes", type=int)
    flag("--sandbox-gid", "PADDOCK_SANDBOX_GID", d.sandbox_gid, "default GID and fsGroup of sandboxes", type=int)
    parser.add_argument(
        "--cluster-cidr",
        action="append",
        dest="cluster_cidrs",
        default=None,
        help="pod/service CIDR blocked for egress Internet, repeatable (PADDOCK_CLUSTER_CIDRS)",
    )
    flag("--resync-seconds", "PADDOCK_RESYNC_SECONDS", d.resync_seconds, "full resync period", type=float)
    flag("--workers", "PADDOCK_WORKERS", d.workers, "concurrent reconciles", type=int)
    add_env_switch(
        parser,
        "--no-leader-election",
        "PADDOCK_LEADER_ELECTION",
        "run without a Lease (a single replica only)",
        on_value="false",
    )
    flag("--lease-name", "PADDOCK_LEASE_NAME", d.lease_name, "name of the leader-election Lease")
    flag("--lease-namespace", "PADDOCK_LEASE_NAMESPACE", d.lease_namespace, "namespace of the leader-election Lease")
    flag("--metrics-port", "PADDOCK_METRICS_PORT", d.metrics_port, "Prometheus metrics port, 0 to disable", type=int)
    flag(
        "--health-port",
        "PADDOCK_HEALTH_PORT",
        d.health_port,
        "liveness/readiness port (/healthz), 0 to disable",
        type=int,
    )
    args = parser.parse_args(argv)
    return OperatorSettings(
        namespaces=tuple(args.namespaces or env_list("PADDOCK_NAMESPACES")),
        harness_service_account=args.harness_service_account,
        harness_namespace=args.harness_namespace,
        sandbox_uid=args.sandbox_uid,
        sandbox_gid=args.sandbox_gid,
        cluster_cidrs=tuple(args.cluster_cidrs or env_list("PADDOCK_CLUSTER_CIDRS", ",".join(d.cluster_cidrs))),
        resync_seconds=args.resync_seconds,
        workers=args.workers,
        leader_election=not args.no_leader_election,
        lease_name=args.lease_name,
        lease_namespace=args.lease_namespace,
        metrics_port=args.metrics_port,
        health_port=args.health_port,
    )
