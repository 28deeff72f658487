"""Pure rendering of runs and workspaces: progress lines, summaries, approval prompts, tables.

Everything here takes data and a clock value and returns strings, so it is tested without a cluster.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from paddock_operator.api import RunPhase

from ..driver import protocol

TERMINAL: Final = frozenset({RunPhase.SUCCEEDED.value, RunPhase.FAILED.value, RunPhase.CANCELLED.value})
SPINNER: Final = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
_ANSI: Final = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}


class Paint:
    """ANSI styles, or plain text when disabled (not a TTY, or NO_COLOR)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, *styles: str) -> str:
        if not self.enabled or not styles or not text:
            return text
        codes = ";".join(_ANSI[s] for s in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"


PLAIN: Final = Paint(False)
LINE_CHARS: Final = 160
_PATCH_FILE = re.compile(r"^\*\*\* (Add|Update|Delete) File: (.+)$", re.MULTILINE)


def describe_patch(text: str) -> str:
    """`add hello.py, update src/x.py` from an apply_patch call (raw patch text or JSON arguments)."""
    source = text
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        operation = parsed.get("operation")
        if isinstance(operation, dict) and operation.get("path"):
            kind = str(operation.get("type", "update")).removesuffix("_file")
            return f"{kind} {operation['path']}"
        source = str(parsed.get("input") or parsed.get("patch") or text)
    files = [f"{verb.lower()} {path.strip()}" for verb, path in _PATCH_FILE.findall(source)]
    return ", ".join(files) if files else first_line(source)


def first_line(text: str, limit: int = LINE_CHARS) -> str:
    lines = text.strip().splitlines()
    line = lines[0] if lines else ""
    more = len(lines) > 1 or len(line) > limit
    return line[:limit] + (" …" if more else "")


def exit_code(phase: str | None) -> int:
    """0 only for Succeeded; 1 Failed; 2 Cancelled or anything else (a run we stopped following)."""
    if phase == RunPhase.SUCCEEDED.value:
        return 0
    if phase == RunPhase.FAILED.value:
        return 1
    return 2


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def clock(seconds: float) -> str:
    """Elapsed time as m:ss or h:mm:ss."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def human_age(seconds: float) -> str:
    """kubectl's AGE column (HumanDuration): 45s, 5m12s, 42m, 5h3m, 20h, 3d4h, 30d, 2y."""
    s = max(0, int(seconds))
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if s < 120:
        return f"{s}s"
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 192:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y"


def count(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


@dataclass(frozen=True)
class Pending:
    call_id: str
    tool: str
    command: str


@dataclass(frozen=True)
class RunView:
    """What the CLI shows of an AgentRun, read defensively from its JSON."""

    name: str
    namespace: str
    phase: str | None = None
    turns: int = 0
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    workspace: str | None = None
    created: datetime | None = None
    start: datetime | None = None
    completion: datetime | None = None
    pending: tuple[Pending, ...] = ()
    error_reason: str | None = None
    error_message: str | None = None
    output: str | None = None
    detail: str | None = None
    uid: str | None = None

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL

    @classmethod
    def from_object(cls, obj: dict[str, Any]) -> RunView:
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        usage = status.get("usage") or {}
        error = status.get("lastError") or {}
        workspace = status.get("workspaceName") or (spec.get("workspaceRef") or {}).get("name")
        if workspace is None and spec.get("workspaceTemplate"):
            workspace = meta.get("name")
        return cls(
            name=str(meta.get("name", "")),
            namespace=str(meta.get("namespace", "")),
            phase=status.get("phase"),
            turns=int(status.get("turns") or 0),
            tool_calls=int(status.get("toolCalls") or 0),
            input_tokens=int(usage.get("inputTokens") or 0),
            output_tokens=int(usage.get("outputTokens") or 0),
            total_tokens=int(usage.get("totalTokens") or 0),
            workspace=workspace,
            created=parse_time(meta.get("creationTimestamp")),
            start=parse_time(status.get("startTime")),
            completion=parse_time(status.get("completionTime")),
            pending=tuple(
                Pending(str(p.get("callId", "")), str(p.get("tool", "")), str(p.get("command", "")))
                for p in status.get("pendingApprovals") or []
            ),
            error_reason=error.get("reason"),
            error_message=error.get("message"),
            output=status.get("output"),
            detail=_detail(status),
            uid=meta.get("uid"),
        )


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == type_), None)


def _detail(status: dict[str, Any]) -> str | None:
    """Why a run is not making progress yet, in a few words."""
    phase = status.get("phase")
    if phase in (None, RunPhase.PENDING.value):
        if status.get("queuePosition"):
            return f"queued behind another run (#{status['queuePosition']})"
        ready = _condition(status, "WorkspaceReady")
        if ready and ready.get("status") != "True":
            message = str(ready.get("message") or "")
            return f"{ready.get('reason')}: {message}"[:160] if message else str(ready.get("reason"))
        return "waiting for the operator" if phase is None else "waiting for the workspace"
    if phase == RunPhase.RUNNING.value:
        claimed = _condition(status, protocol.CONDITION_CLAIMED)
        if claimed is None or claimed.get("status") != "True":
            return "waiting for a harness to pick it up"
    return None


def elapsed(view: RunView, now: datetime) -> float:
    """Seconds since the run was created (waiting for its workspace included), up to its completion."""
    begin = view.created or view.start
    if begin is None:
        return 0.0
    end = view.completion or now
    return max(0.0, (end - begin).total_seconds())


def progress_line(view: RunView, now: datetime, *, frame: int | None = None, paint: Paint = PLAIN) -> str:
    """The live status: `⠹ Running · turn 3 · 4 tool calls · 2,345 tokens · 0:42` (frame None: no spinner)."""
    phase = view.phase or "Pending"
    colour = {"Succeeded": "green", "Failed": "red", "AwaitingApproval": "yellow"}.get(phase, "cyan")
    parts = [paint(phase, "bold", colour)]
    if view.turns or view.phase not in (None, RunPhase.PENDING.value):
        parts.append(f"turn {view.turns}")
        parts.append(count(view.tool_calls, "tool call"))
        parts.append(f"{view.total_tokens:,} tokens")
    if view.detail:
        parts.append(paint(view.detail, "dim"))
    body = " · ".join(parts)
    spent = clock(elapsed(view, now))
    if frame is None:
        return f"[{spent}] {body}"
    return f"{paint(SPINNER[frame % len(SPINNER)], 'cyan')} {body} · {spent}"


def summary_lines(view: RunView, now: datetime, paint: Paint = PLAIN) -> list[str]:
    """The closing lines of a followed run: outcome, counters, error."""
    phase = view.phase or "Unknown"
    colour = {"Succeeded": "green", "Failed": "red"}.get(phase, "yellow")
    usage = f"{view.total_tokens:,} tokens (in {view.input_tokens:,} / out {view.output_tokens:,})"
    head = (
        f"{paint(phase, 'bold', colour)} after {clock(elapsed(view, now))} · {count(view.turns, 'turn')} · "
        f"{count(view.tool_calls, 'tool call')} · {usage}"
    )
    lines = [head]
    if view.error_reason and phase != RunPhase.SUCCEEDED.value:
        message = f": {view.error_message}" if view.error_message else ""
        lines.append(paint(f"{view.error_reason}{message}", colour))
    return lines


def answer_lines(answer: str, paint: Paint = PLAIN) -> list[str]:
    text = answer.rstrip()
    if not text:
        return []
    return ["", paint("Answer:", "bold"), *[f"  {line}" for line in text.splitlines()]]


def call_text(tool: str, command: str, limit: int = LINE_CHARS) -> str:
    """What a pending call would do, on one line."""
    return describe_patch(command) if tool == "apply_patch" else first_line(command, limit)


def plugin_command(verb: str, *args: str, ns_flag: str = "") -> str:
    ns = f" {ns_flag}" if ns_flag else ""
    return " ".join(["kubectl paddock" + ns, verb, *args])


def approval_lines(view: RunView, ns_flag: str = "", paint: Paint = PLAIN) -> list[str]:
    """The pending calls and the exact commands that answer them."""
    if not view.pending:
        return []
    lines = [paint(f"Waiting for approval of {count(len(view.pending), 'tool call')}:", "bold", "yellow")]
    width = max(len(p.call_id) for p in view.pending)
    for p in view.pending:
        lines.append(f"  {p.call_id:<{width}}  {p.tool:<13} {call_text(p.tool, p.command, 100)}")
    first = view.pending[0].call_id
    lines.append("Answer with:")
    lines.append(f"  {plugin_command('approve', view.name, first, ns_flag=ns_flag)}")
    lines.append(
        f"  {plugin_command('reject', view.name, first, '--reason', chr(34) + 'why' + chr(34), ns_flag=ns_flag)}"
    )
    if len(view.pending) > 1:
        lines.append(f"  {plugin_command('approve', view.name, ns_flag=ns_flag)}   # every pending call")
    return lines


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns separated by three spaces, like kubectl get."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    return ["   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in [headers, *rows]]


def _ready(obj: dict[str, Any]) -> str:
    ready = _condition(obj.get("status") or {}, "Ready")
    return str(ready.get("status")) if ready else "Unknown"


def _age(obj: dict[str, Any], now: datetime) -> str:
    created = parse_time((obj.get("metadata") or {}).get("creationTimestamp"))
    return human_age((now - created).total_seconds()) if created else "<unknown>"


def workspace_table(workspaces: Sequence[dict[str, Any]], now: datetime, all_namespaces: bool) -> list[str]:
    headers = ["NAME", "PHASE", "READY", "EGRESS", "RUN BY", "AGE"]
    rows = []
    for ws in sorted(workspaces, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])):
        owner = next((r for r in ws["metadata"].get("ownerReferences") or [] if r.get("kind") == "AgentRun"), None)
        row = [
            ws["metadata"]["name"],
            str((ws.get("status") or {}).get("phase") or "Pending"),
            _ready(ws),
            str(((ws.get("spec") or {}).get("network") or {}).get("egress") or "None"),
            owner["name"] if owner else "-",
            _age(ws, now),
        ]
        rows.append([ws["metadata"].get("namespace", ""), *row] if all_namespaces else row)
    return table(["NAMESPACE", *headers] if all_namespaces else headers, rows)


def run_table(runs: Sequence[dict[str, Any]], now: datetime, all_namespaces: bool) -> list[str]:
    headers = ["NAME", "PHASE", "WORKSPACE", "TURNS", "TOOL CALLS", "TOKENS", "AGE"]
    rows = []
    for obj in sorted(runs, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])):
        view = RunView.from_object(obj)
        row = [
            view.name,
            view.phase or "Pending",
            view.workspace or "-",
            str(view.turns),
            str(view.tool_calls),
            f"{view.total_tokens:,}",
            _age(obj, now),
        ]
        rows.append([view.namespace, *row] if all_namespaces else row)
    return table(["NAMESPACE", *headers] if all_namespaces else headers, rows)


def ls_lines(
    workspaces: Sequence[dict[str, Any]],
    runs: Sequence[dict[str, Any]],
    now: datetime,
    *,
    namespace: str,
    all_namespaces: bool,
) -> list[str]:
    where = "any namespace" if all_namespaces else f"namespace {namespace}"
    lines = ["WORKSPACES"]
    lines += workspace_table(workspaces, now, all_namespaces) if workspaces else [f"  none in {where}"]
    lines += ["", "RUNS"]
    lines += run_table(runs, now, all_namespaces) if runs else [f"  none in {where}"]
    return lines
