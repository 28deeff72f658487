"""Operator settings: one typed object, filled from flags or PADDOCK_* environment variables (for the chart)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from .api.workspace import ResourceList, Resources


def _env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


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
    env = os.environ.get
    defaults = OperatorSettings()
    parser = argparse.ArgumentParser(
        prog="python -m paddock_operator",
        description="Paddock operator: reconciles AgentWorkspace and AgentRun resources. "
        "Every flag can also be set by the PADDOCK_* environment variable named in its help.",
    )
    parser.add_argument(
        "-n",
        "--namespace",
        action="append",
        dest="namespaces",
        default=None,
        help="namespace to watch, repeatable, globs allowed (PADDOCK_NAMESPACES, comma-separated; default: all)",
    )
    parser.add_argument(
        "--harness-service-account",
        default=env("PADDOCK_HARNESS_SERVICE_ACCOUNT", defaults.harness_service_account),
        help="harness ServiceAccount name (PADDOCK_HARNESS_SERVICE_ACCOUNT)",
    )
    parser.add_argument(
        "--harness-namespace",
        default=env("PADDOCK_HARNESS_NAMESPACE", defaults.harness_namespace),
        help="namespace of the harness ServiceAccount (PADDOCK_HARNESS_NAMESPACE)",
    )
    parser.add_argument(
        "--sandbox-uid",
        type=int,
        default=int(env("PADDOCK_SANDBOX_UID", defaults.sandbox_uid)),
        help="default non-root UID of sandbox processes (PADDOCK_SANDBOX_UID)",
    )
    parser.add_argument(
        "--sandbox-gid",
        type=int,
        default=int(env("PADDOCK_SANDBOX_GID", defaults.sandbox_gid)),
        help="default GID and fsGroup of sandboxes (PADDOCK_SANDBOX_GID)",
    )
    parser.add_argument(
        "--cluster-cidr",
        action="append",
        dest="cluster_cidrs",
        default=None,
        help="pod/service CIDR blocked for egress Internet, repeatable (PADDOCK_CLUSTER_CIDRS)",
    )
    parser.add_argument(
        "--resync-seconds",
        type=float,
        default=float(env("PADDOCK_RESYNC_SECONDS", defaults.resync_seconds)),
        help="full resync period (PADDOCK_RESYNC_SECONDS)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=int(env("PADDOCK_WORKERS", defaults.workers)),
        help="concurrent reconciles (PADDOCK_WORKERS)",
    )
    parser.add_argument(
        "--no-leader-election",
        action="store_true",
        default=env("PADDOCK_LEADER_ELECTION", "true").lower() == "false",
        help="run without a Lease (single replica only) (PADDOCK_LEADER_ELECTION=false)",
    )
    parser.add_argument(
        "--lease-name",
        default=env("PADDOCK_LEASE_NAME", defaults.lease_name),
        help="name of the leader-election Lease (PADDOCK_LEASE_NAME)",
    )
    parser.add_argument(
        "--lease-namespace",
        default=env("PADDOCK_LEASE_NAMESPACE", defaults.lease_namespace),
        help="namespace of the leader-election Lease (PADDOCK_LEASE_NAMESPACE)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=int(env("PADDOCK_METRICS_PORT", defaults.metrics_port)),
        help="Prometheus metrics port, 0 to disable (PADDOCK_METRICS_PORT)",
    )
    parser.add_argument(
        "--health-port",
        type=int,
        default=int(env("PADDOCK_HEALTH_PORT", defaults.health_port)),
        help="liveness/readiness port, /healthz (PADDOCK_HEALTH_PORT)",
    )
    args = parser.parse_args(argv)
    namespaces = args.namespaces or _env_list("PADDOCK_NAMESPACES", "")
    cluster_cidrs = args.cluster_cidrs or _env_list("PADDOCK_CLUSTER_CIDRS", ",".join(defaults.cluster_cidrs))
    return OperatorSettings(
        namespaces=tuple(namespaces),
        harness_service_account=args.harness_service_account,
        harness_namespace=args.harness_namespace,
        sandbox_uid=args.sandbox_uid,
        sandbox_gid=args.sandbox_gid,
        cluster_cidrs=tuple(cluster_cidrs),
        resync_seconds=args.resync_seconds,
        workers=args.workers,
        leader_election=not args.no_leader_election,
        lease_name=args.lease_name,
        lease_namespace=args.lease_namespace,
        metrics_port=args.metrics_port,
        health_port=args.health_port,
    )
