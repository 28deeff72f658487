"""`python -m paddock_operator [--namespace NS]...`: run the operator (all namespaces when none is given)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import kopf
from prometheus_client import start_http_server

from . import handlers, logs
from .settings import parse_args


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    logs.configure()
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    liveness = f"http://0.0.0.0:{settings.health_port}/healthz" if settings.health_port else None
    kopf.run(
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        standalone=True,  # our own Lease elects the leader; kopf's peering would need extra CRDs
        liveness_endpoint=liveness,
        memo=kopf.Memo(settings=settings),
        registry=kopf.get_default_registry() if handlers else None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
