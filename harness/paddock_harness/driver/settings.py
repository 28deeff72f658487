"""Harness settings: one typed object, filled from flags or PADDOCK_* environment variables (for the chart)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

from paddock_operator.envflags import add_env_flag, add_env_switch, add_namespace_flag, env_list

DEFAULT_INSTRUCTIONS = (
    "You are an autonomous software agent working in a sandboxed workspace. Use the tools to inspect and "
    "change files and to run commands. Work step by step, verify your changes, and finish with a short "
    "summary of what you did and what the user should know."
)


def _default_identity() -> str:
    return os.environ.get("POD_NAME") or f"{os.uname().nodename}-{os.getpid()}"


@dataclass(frozen=True)
class HarnessSettings:
    namespaces: tuple[str, ...] = ()
    """Namespaces to watch; empty means all namespaces."""
    max_concurrent_runs: int = 16
    default_model: str = "gpt-5.4-mini"
    default_base_url: str | None = None
    """Base URL of the default endpoint (None: the openai client's default, i.e. OpenAI)."""
    default_api_key: str | None = field(default=None, repr=False)
    """The harness's own model key (OPENAI_API_KEY). Never logged, never written anywhere."""
    default_instructions: str = DEFAULT_INSTRUCTIONS
    tracing: bool = False
    model_max_retries: int = 5
    """Retries of one model request by the openai client (exponential backoff, honours Retry-After)."""
    model_timeout_seconds: float = 600.0
    status_interval_seconds: float = 2.0
    """Status writes happen at most this often, plus at every turn boundary and phase change."""
    lease_duration_seconds: float = 30.0
    resync_seconds: float = 30.0
    identity: str = field(default_factory=_default_identity)
    metrics_port: int = 8080
    health_port: int = 8081
    kubeconfig: str | None = None
    context: str | None = None


def parse_args(argv: Sequence[str] | None = None) -> HarnessSettings:
    env = os.environ.get
    d = HarnessSettings()
    parser = argparse.ArgumentParser(
        prog="python -m paddock_harness",
        description="Paddock harness: drives AgentRuns with the OpenAI Agents SDK in Kubernetes sandboxes. "
        "Every flag can also be set by the PADDOCK_* environment variable named in its help. The default "
        "model key comes from OPENAI_API_KEY; a run's spec.model.apiKeySecretRef overrides it.",
    )
    add_namespace_flag(parser)
    flag = partial(add_env_flag, parser)
    flag(
        "--max-concurrent-runs",
        "PADDOCK_MAX_CONCURRENT_RUNS",
        d.max_concurrent_runs,
        "runs driven at once by this replica",
        type=int,
    )
    flag("--default-model", "PADDOCK_DEFAULT_MODEL", d.default_model, "model for runs that name none")
    flag(
        "--default-base-url",
        "PADDOCK_DEFAULT_BASE_URL",
        env("OPENAI_BASE_URL"),
        "OpenAI-compatible endpoint for runs that name none; OPENAI_BASE_URL works too",
    )
    add_env_switch(
        parser, "--tracing", "PADDOCK_TRACING", "export Agents SDK traces to OpenAI (default off)", on_value="true"
    )
    flag(
        "--model-max-retries",
        "PADDOCK_MODEL_MAX_RETRIES",
        d.model_max_retries,
        "retries of a failed model request, with backoff",
        type=int,
    )
    flag(
        "--model-timeout-seconds",
        "PADDOCK_MODEL_TIMEOUT_SECONDS",
        d.model_timeout_seconds,
        "timeout of one model request",
        type=float,
    )
    flag(
        "--lease-duration-seconds",
        "PADDOCK_LEASE_DURATION_SECONDS",
        d.lease_duration_seconds,
        "per-run claim Lease duration; a replica that stops renewing loses runs after it",
        type=float,
    )
    flag(
        "--resync-seconds",
        "PADDOCK_RESYNC_SECONDS",
        d.resync_seconds,
        "full relist period, also how soon stale claims are taken over",
        type=float,
    )
    flag("--metrics-port", "PADDOCK_METRICS_PORT", d.metrics_port, "Prometheus metrics port, 0 to disable", type=int)
    flag(
        "--health-port",
        "PADDOCK_HEALTH_PORT",
        d.health_port,
        "liveness/readiness port serving /healthz and /readyz, 0 to disable",
        type=int,
    )
    flag("--kubeconfig", "KUBECONFIG", None, "kubeconfig path")
    flag("--context", "PADDOCK_KUBE_CONTEXT", None, "kubeconfig context")
    args = parser.parse_args(argv)
    namespaces = args.namespaces or env_list("PADDOCK_NAMESPACES")
    if args.max_concurrent_runs < 1:
        parser.error("--max-concurrent-runs must be at least 1")
    return HarnessSettings(
        namespaces=tuple(namespaces),
        max_concurrent_runs=args.max_concurrent_runs,
        default_model=args.default_model,
        default_base_url=args.default_base_url or None,
        default_api_key=env("OPENAI_API_KEY") or None,
        tracing=args.tracing,
        model_max_retries=args.model_max_retries,
        model_timeout_seconds=args.model_timeout_seconds,
        lease_duration_seconds=args.lease_duration_seconds,
        resync_seconds=args.resync_seconds,
        metrics_port=args.metrics_port,
        health_port=args.health_port,
        kubeconfig=args.kubeconfig,
        context=args.context,
    )
