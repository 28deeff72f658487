"""Harness settings: one typed object, filled from flags or PADDOCK_* environment variables (for the chart)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

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
    defaults = HarnessSettings()
    parser = argparse.ArgumentParser(
        prog="python -m paddock_harness",
        description="Paddock harness: drives AgentRuns with the OpenAI Agents SDK in Kubernetes sandboxes. "
        "Every flag can also be set by the PADDOCK_* environment variable named in its help. The default "
        "model key comes from OPENAI_API_KEY; a run's spec.model.apiKeySecretRef overrides it.",
    )
    parser.add_argument(
        "-n",
        "--namespace",
        action="append",
        dest="namespaces",
        default=None,
        help="namespace to watch, repeatable (PADDOCK_NAMESPACES, comma-separated; default: all)",
    )
    parser.add_argument(
        "--max-concurrent-runs",
        type=int,
        default=int(env("PADDOCK_MAX_CONCURRENT_RUNS", defaults.max_concurrent_runs)),
        help="runs driven at once by this replica (PADDOCK_MAX_CONCURRENT_RUNS)",
    )
    parser.add_argument(
        "--default-model",
        default=env("PADDOCK_DEFAULT_MODEL", defaults.default_model),
        help="model for runs that name none (PADDOCK_DEFAULT_MODEL)",
    )
    parser.add_argument(
        "--default-base-url",
        default=env("PADDOCK_DEFAULT_BASE_URL") or env("OPENAI_BASE_URL"),
        help="OpenAI-compatible endpoint for runs that name none (PADDOCK_DEFAULT_BASE_URL, OPENAI_BASE_URL)",
    )
    parser.add_argument(
        "--tracing",
        action="store_true",
        default=env("PADDOCK_TRACING", "false").lower() == "true",
        help="export Agents SDK traces to OpenAI (PADDOCK_TRACING=true; default off)",
    )
    parser.add_argument(
        "--model-max-retries",
        type=int,
        default=int(env("PADDOCK_MODEL_MAX_RETRIES", defaults.model_max_retries)),
        help="retries of a failed model request, with backoff (PADDOCK_MODEL_MAX_RETRIES)",
    )
    parser.add_argument(
        "--model-timeout-seconds",
        type=float,
        default=float(env("PADDOCK_MODEL_TIMEOUT_SECONDS", defaults.model_timeout_seconds)),
        help="timeout of one model request (PADDOCK_MODEL_TIMEOUT_SECONDS)",
    )
    parser.add_argument(
        "--lease-duration-seconds",
        type=float,
        default=float(env("PADDOCK_LEASE_DURATION_SECONDS", defaults.lease_duration_seconds)),
        help="per-run claim Lease duration; a replica that stops renewing loses runs after it "
        "(PADDOCK_LEASE_DURATION_SECONDS)",
    )
    parser.add_argument(
        "--resync-seconds",
        type=float,
        default=float(env("PADDOCK_RESYNC_SECONDS", defaults.resync_seconds)),
        help="full relist period, also how soon stale claims are taken over (PADDOCK_RESYNC_SECONDS)",
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
        help="liveness/readiness port serving /healthz and /readyz, 0 to disable (PADDOCK_HEALTH_PORT)",
    )
    parser.add_argument("--kubeconfig", default=env("KUBECONFIG"), help="kubeconfig path (KUBECONFIG)")
    parser.add_argument("--context", default=env("PADDOCK_KUBE_CONTEXT"), help="kubeconfig context")
    args = parser.parse_args(argv)
    namespaces = args.namespaces or [item.strip() for item in env("PADDOCK_NAMESPACES", "").split(",") if item.strip()]
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
