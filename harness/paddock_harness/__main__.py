"""`python -m paddock_harness [--namespace NS]...`: drive AgentRuns (all namespaces when none is given)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

from agents import set_tracing_disabled
from prometheus_client import start_http_server

from paddock_operator import logs
from paddock_operator.controllers.kube import Kube, load_api_client

from .driver import protocol
from .driver.controller import Controller, RunWatcher
from .driver.kubeio import KubeAdapter
from .driver.run import DriverDeps
from .driver.sandboxes import KubernetesSandboxProvider
from .driver.settings import HarnessSettings, parse_args
from .sandbox import KubernetesSandboxClient

log = logging.getLogger("paddock.harness")


async def serve(settings: HarnessSettings) -> None:
    api_client = load_api_client(settings.kubeconfig, settings.context)
    kube = KubeAdapter(Kube(api_client, field_manager=protocol.COMPONENT), component=protocol.COMPONENT)
    sandbox_client = KubernetesSandboxClient(kubeconfig=settings.kubeconfig, context=settings.context)
    controller = Controller(DriverDeps(kube, settings, KubernetesSandboxProvider(sandbox_client)))
    watcher = RunWatcher(api_client, settings.namespaces, settings.resync_seconds)
    main = asyncio.current_task()
    assert main is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # Drives stop at once; their checkpoints let the next harness continue (in-flight calls are reported).
        loop.add_signal_handler(sig, main.cancel)
    log.info(
        "harness %s watching %s (at most %d runs at once, default model %s)",
        settings.identity,
        ", ".join(settings.namespaces) or "all namespaces",
        settings.max_concurrent_runs,
        settings.default_model,
    )
    try:
        await controller.run(watcher, settings.health_port)
    finally:
        with contextlib.suppress(Exception):
            await sandbox_client.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    logs.configure()
    set_tracing_disabled(not settings.tracing)
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    with contextlib.suppress(asyncio.CancelledError, KeyboardInterrupt):
        asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
