"""Prometheus metrics. Labels are bounded: kinds, phases and outcomes, never object names."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter("paddock_reconcile_total", "Reconciles by kind and outcome.", ["kind", "outcome"])
RECONCILE_SECONDS = Histogram(
    "paddock_reconcile_duration_seconds",
    "Time spent in one reconcile.",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WORKSPACES = Gauge("paddock_workspaces", "AgentWorkspaces by phase.", ["phase"])
RUNS = Gauge("paddock_runs", "AgentRuns by phase.", ["phase"])
WORKSPACE_READY_SECONDS = Histogram(
    "paddock_workspace_ready_seconds",
    "Time from AgentWorkspace creation to its first Ready.",
    buckets=(1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 300),
)
RUN_DURATION_SECONDS = Histogram(
    "paddock_run_duration_seconds",
    "Duration of finished AgentRuns, by final phase.",
    ["phase"],
    buckets=(5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200),
)
IS_LEADER = Gauge("paddock_operator_leader", "1 while this replica holds the leader Lease.")
