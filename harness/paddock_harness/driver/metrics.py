"""Prometheus metrics of the harness. Labels are bounded: phases, reasons, tool kinds, never object names."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ACTIVE_DRIVES = Gauge("paddock_harness_active_drives", "Runs this replica is driving right now.")
QUEUED_DRIVES = Gauge("paddock_harness_queued_drives", "Runs waiting for a free --max-concurrent-runs slot.")
DRIVES = Counter("paddock_harness_drives_total", "Drives of a run by how they ended.", ["outcome"])
DRIVE_SECONDS = Histogram(
    "paddock_harness_drive_duration_seconds",
    "Time from claiming a run to releasing it.",
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
FINISHED = Counter("paddock_harness_runs_finished_total", "Runs finished by the harness.", ["phase", "reason"])
TURNS = Counter("paddock_harness_model_turns_total", "Model turns.")
TOKENS = Counter("paddock_harness_tokens_total", "Model tokens.", ["kind"])
TOOL_CALLS = Counter("paddock_harness_tool_calls_total", "Tool calls by tool.", ["tool"])
APPROVALS = Counter("paddock_harness_approval_decisions_total", "Human approval decisions.", ["decision"])
INTERRUPTED_CALLS = Counter(
    "paddock_harness_interrupted_calls_total", "Tool calls whose outcome a harness restart made unknown."
)
CLAIMS = Counter("paddock_harness_claims_total", "Run claim attempts by result.", ["result"])
WATCH_RESTARTS = Counter("paddock_harness_watch_restarts_total", "AgentRun watch (re)starts.")
