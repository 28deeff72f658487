"""Pure rendering of transcript entries (see driver/transcript.py for their shape): a compact form for the
live view of `run`, and a complete, greppable form for `logs`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, Final

from .render import LINE_CHARS, PLAIN, Paint, describe_patch, first_line

LIVE_OUTPUT_LINES: Final = 4
LIVE_TEXT_LINES: Final = 3
_EXIT = re.compile(r"^Process exited with code (-?\d+)\s*$", re.MULTILINE)
_HIDDEN_LIVE: Final = frozenset({"prompt", "final", "approval_requested"})
"""The prompt was typed by the user, the answer is printed at the end, approval requests come from status."""


def merge_parts(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Join the parts of split entries (long messages, the final answer) back into one entry each."""
    merged: list[dict[str, Any]] = []
    for entry in entries:
        prev = merged[-1] if merged else None
        if (
            prev is not None
            and entry.get("part")
            and prev.get("kind") == entry.get("kind")
            and prev.get("parts") == entry.get("parts")
            and prev.get("part") == int(entry["part"]) - 1
        ):
            merged[-1] = {**prev, **entry, "text": str(prev.get("text", "")) + str(entry.get("text", ""))}
        else:
            merged.append(dict(entry))
    return merged


def incomplete_tail(entries: list[dict[str, Any]]) -> int:
    """How many trailing entries belong to a split entry whose remaining parts are not written yet."""
    if not entries:
        return 0
    last = entries[-1]
    if "parts" not in last or int(last.get("part", 0)) >= int(last["parts"]) - 1:
        return 0
    return int(last.get("part", 0)) + 1


def parse_tool_output(text: str) -> tuple[int | None, str]:
    """(exit code, output body) of an Agents SDK shell tool result; (None, text) for anything else."""
    found = _EXIT.search(text)
    code = int(found.group(1)) if found else None
    if text.startswith("Output:\n"):
        return code, text[len("Output:\n") :]
    head, sep, body = text.partition("\nOutput:\n")
    if sep and (found or head.startswith("Chunk ID:")):
        return code, body
    return code, text


def _clip(line: str) -> str:
    return line if len(line) <= LINE_CHARS else line[: LINE_CHARS - 1] + "…"


def truncation_note(entry: dict[str, Any]) -> str | None:
    if not entry.get("truncated"):
        return None
    size = entry.get("size")
    original = f"; the original was {int(size):,} bytes" if isinstance(size, int) else ""
    return f"[truncated{original}]"


def call_summary(entry: dict[str, Any], paint: Paint = PLAIN) -> str:
    """One line for a tool call: `$ ls -la`, `patch: add hello.py`, ..."""
    tool = str(entry.get("tool") or "")
    text = str(entry.get("text") or "")
    if tool == "exec_command":
        lines = text.strip().splitlines() or [""]
        more = paint(f" (+{len(lines) - 1} lines)", "dim") if len(lines) > 1 else ""
        return f"{paint('$', 'bold')} {_clip(lines[0])}{more}"
    if tool == "write_stdin":
        return f"{paint('stdin', 'bold')} {_clip(json.dumps(text))}"
    if tool == "apply_patch":
        return f"{paint('patch', 'bold')} {describe_patch(text)}"
    return f"{paint(tool or 'tool', 'bold')} {first_line(text)}"


def live_lines(entry: dict[str, Any], paint: Paint = PLAIN) -> list[str]:
    """The compact view of one entry while following a run ([] for entries the live view leaves out)."""
    kind = str(entry.get("kind") or "")
    text = str(entry.get("text") or "")
    call = paint(f"({entry['callId']})", "dim") if entry.get("callId") else ""
    if kind in _HIDDEN_LIVE:
        return []
    if kind == "tool_call":
        return [f"{call_summary(entry, paint)}  {call}".rstrip()]
    if kind == "tool_output":
        code, body = parse_tool_output(text)
        lines = body.rstrip("\n").splitlines()
        status = []
        if code is not None:
            status.append(paint(f"exit {code}", "green" if code == 0 else "red"))
        if not lines:
            status.append(paint("no output", "dim"))
        out = ["  " + " · ".join(status)] if status else []
        out += ["  " + paint("│", "dim") + " " + _clip(line) for line in lines[:LIVE_OUTPUT_LINES]]
        hidden = len(lines) - LIVE_OUTPUT_LINES
        if hidden > 0:
            out.append("  " + paint(f"… {hidden} more line{'s' if hidden > 1 else ''}", "dim"))
        note = truncation_note(entry)
        if note:
            out.append("  " + paint(note, "dim"))
        return out
    if kind == "message":
        lines = [_clip(line) for line in text.strip().splitlines() if line.strip()]
        shown = lines[:LIVE_TEXT_LINES] + (["…"] if len(lines) > LIVE_TEXT_LINES else [])
        return [paint("» ", "bold") + line if i == 0 else "  " + line for i, line in enumerate(shown)]
    if kind == "reasoning":
        return [paint(f"thinking: {first_line(text)}", "dim")]
    if kind == "approval_requested":
        what = call_summary(entry, paint)
        return [paint(f"? approval needed for {entry.get('callId')}:", "yellow", "bold") + f" {what}"]
    if kind == "approval":
        if entry.get("decision") == "approved":
            return [paint(f"✓ {entry.get('callId')} approved", "green")]
        reason = f": {entry['reason']}" if entry.get("reason") else ""
        return [paint(f"✗ {entry.get('callId')} rejected{reason}", "red")]
    if kind == "restart":
        return [paint(f"! {first_line(text)}", "yellow")]
    if kind == "error":
        reason = f"{entry['reason']}: " if entry.get("reason") else ""
        return [paint(f"✗ {reason}{first_line(text)}", "red")]
    return [f"[{kind}] {first_line(text)}"]


def _header(entry: dict[str, Any]) -> str:
    """`[18:55:04] tool_call · exec_command · call_ls · turn 1`."""
    time = str(entry.get("time") or "")
    stamp = time[11:19] if len(time) >= 19 else time
    kind = str(entry.get("kind") or "?")
    fields = [kind]
    if entry.get("tool") and kind != "tool_output":
        fields.append(str(entry["tool"]))
    if entry.get("callId"):
        fields.append(str(entry["callId"]))
    if kind == "tool_output":
        code, _ = parse_tool_output(str(entry.get("text") or ""))
        if code is not None:
            fields.append(f"exit {code}")
    if entry.get("decision"):
        fields.append(str(entry["decision"]))
    if entry.get("reason"):
        fields.append(f"reason: {entry['reason']}")
    if entry.get("turn") is not None:
        fields.append(f"turn {entry['turn']}")
    return (f"[{stamp}] " if stamp else "") + " · ".join(fields)


def log_lines(entry: dict[str, Any], paint: Paint = PLAIN) -> list[str]:
    """The full view of one entry for `logs`: a header, then the text, indented, nothing left out."""
    text = str(entry.get("text") or "")
    kind = entry.get("kind")
    if kind == "tool_call" and entry.get("tool") == "exec_command":
        text = f"$ {text}"
    elif kind == "tool_output":
        _, text = parse_tool_output(text)
    out = [paint(_header(entry), "bold")]
    out += ["  " + line for line in text.rstrip("\n").splitlines()]
    note = truncation_note(entry)
    if note:
        out.append("  " + paint(note, "yellow"))
    return out
