"""The run driver: drives AgentRuns with the OpenAI Agents SDK in their workspaces.

Modules, by responsibility:
  protocol     annotations (approve/reject), labels, condition types and reasons
  settings     HarnessSettings from flags / PADDOCK_* environment
  agentbuild   AgentRunSpec -> SandboxAgent (model client, capabilities, manifest, approval policy)
  approvals    pending calls, human decisions, applying them to a RunState
  run          RunDriver: the think/execute segment loop with durable checkpoints
  segment      stream events -> transcript, counters, throttled status
  checkpoint   RunState checkpoints in owned, chunked ConfigMaps (torn-write safe)
  transcript   append-only transcript pages; read_transcript() for the CLI
  status       optimistic-concurrency status writes at a bounded rate
  lease        per-run Lease claims between harness replicas
  controller   watch loop, scheduling, concurrency cap, health endpoint
  sandboxes    which sandbox a run uses (Kubernetes, or local for tests), session lifecycle
  kubeio       the async Kubernetes interface (KubeAdapter) and memory.InMemoryKube for tests
"""

from .protocol import (
    ANNOTATION_APPROVE,
    ANNOTATION_REJECT,
    ANNOTATION_REJECT_REASON,
    ApprovalDecisions,
    parse_decisions,
)
from .transcript import aread_transcript, read_transcript

__all__ = [
    "ANNOTATION_APPROVE",
    "ANNOTATION_REJECT",
    "ANNOTATION_REJECT_REASON",
    "ApprovalDecisions",
    "aread_transcript",
    "parse_decisions",
    "read_transcript",
]
