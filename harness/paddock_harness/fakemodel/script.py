"""The script a fake model server replays, and the pure logic that picks a turn for a request.

A script is a list of *turns*; each turn is one model response. Accepted top-level shapes::

    [turn, turn, ...]                                  # one default scenario
    {"turns": [turn, ...]}                             # same
    {"scenarios": [{"name": "edit", "match": "hello.py", "turns": [...]},
                   {"name": "other", "turns": [...]}]} # picked by the first user message

A turn (keys are camelCase or snake_case)::

    {
      "name": "write the file",                         # optional, shows up in the request log
      "output": [item, ...],                            # what the model "says"
      "usage": {"inputTokens": 900, "outputTokens": 40, # optional; estimated from sizes if absent
                "cachedTokens": 0, "reasoningTokens": 0},
      "error": {"status": 429, "retryAfter": 1, "times": 2},  # optional; or a list of them
      "expect": {"callOutputs": [{"callId": "call_ls", "contains": "hello.py"}],
                 "inputContains": ["..."], "tools": ["exec_command"]},
      "delaySeconds": 0.2                               # optional think time before answering
    }

Output items (``type`` selects the kind):

- ``{"type": "message", "text": "Done.", "phase": "final_answer"}`` -- an assistant message;
  a turn ending with only messages ends the agent run.
- ``{"type": "reasoning", "summary": "Looking around first."}``
- ``{"type": "function_call", "name": "exec_command", "arguments": {"cmd": "ls -la"}}`` --
  ``arguments`` as an object is JSON-encoded; as a *string* it is sent verbatim, which is how a
  malformed tool call (arguments that are not valid JSON) is injected.
- ``{"type": "custom_tool_call", "name": "apply_patch", "input": "*** Begin Patch\\n..."}``
- Shorthands for the sandbox tools of the Agents SDK (``Shell`` and ``Filesystem`` capabilities):
  ``{"type": "exec_command", "cmd": "python3 hello.py", "workdir": null}`` becomes the
  ``exec_command`` function call; ``{"type": "apply_patch", "patch": [lines...] | "text"}``
  becomes the ``apply_patch`` custom tool call (a list of lines is joined with newlines).

Every tool call may set ``callId``; otherwise it is ``call_<turn>_<item>`` (stable, so ``expect``
can name it). An ``error`` is served ``times`` times at that turn before the turn's output; a
turn with an ``error`` but no ``output`` is folded into the next turn, so
``[{"error": {"status": 500}}, {"output": [...]}]`` is "fail once, then answer".

Turn selection is stateless where possible: the Nth model call of a conversation gets turn N,
where N counts the model turns already present in the request's ``input`` (the Agents SDK resends
the whole history) plus the turn of ``previous_response_id`` when the client chains responses.
Client retries, resumed runs and concurrent runs therefore all land on the right turn.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

SHELL_TOOL = "exec_command"
PATCH_TOOL = "apply_patch"


class _Model(BaseModel):
    # camelCase in files (like our Kubernetes resources), snake_case in Python; typos are errors.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class MessageItem(_Model):
    type: Literal["message"]
    text: str
    phase: Literal["commentary", "final_answer"] | None = None


class ReasoningItem(_Model):
    type: Literal["reasoning"]
    summary: str


class FunctionCallItem(_Model):
    type: Literal["function_call"]
    name: str
    arguments: dict[str, Any] | str = Field(default_factory=dict)
    call_id: str | None = None

    def arguments_text(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments  # verbatim, possibly malformed on purpose
        return json.dumps(self.arguments, separators=(",", ":"))


class CustomToolCallItem(_Model):
    type: Literal["custom_tool_call"]
    name: str
    input: str
    call_id: str | None = None


class ExecCommandItem(_Model):
    type: Literal["exec_command"]
    cmd: str = Field(min_length=1)
    workdir: str | None = None
    yield_time_ms: int | None = None
    call_id: str | None = None

    def expand(self) -> FunctionCallItem:
        args: dict[str, Any] = {"cmd": self.cmd}
        if self.workdir is not None:
            args["workdir"] = self.workdir
        if self.yield_time_ms is not None:
            args["yield_time_ms"] = self.yield_time_ms
        return FunctionCallItem(type="function_call", name=SHELL_TOOL, arguments=args, call_id=self.call_id)


class ApplyPatchItem(_Model):
    type: Literal["apply_patch"]
    patch: str | list[str]
    call_id: str | None = None

    def expand(self) -> CustomToolCallItem:
        body = self.patch if isinstance(self.patch, str) else "\n".join(self.patch) + "\n"
        return CustomToolCallItem(type="custom_tool_call", name=PATCH_TOOL, input=body, call_id=self.call_id)


ScriptItem = Annotated[
    MessageItem | ReasoningItem | FunctionCallItem | CustomToolCallItem | ExecCommandItem | ApplyPatchItem,
    Field(discriminator="type"),
]
# After loading, shorthands are expanded and call ids filled in: only these remain.
OutputItem = MessageItem | ReasoningItem | FunctionCallItem | CustomToolCallItem


class Usage(_Model):
    input_tokens: int | None = Field(default=None, ge=0)
    output_tokens: int | None = Field(default=None, ge=0)
    cached_tokens: int = Field(default=0, ge=0)
    reasoning_tokens: int = Field(default=0, ge=0)


class ErrorInjection(_Model):
    status: int = Field(ge=400, le=599)
    times: int = Field(default=1, ge=1)
    retry_after: float | None = Field(default=None, ge=0)
    message: str | None = None
    code: str | None = None
    should_retry: bool | None = None  # sets x-should-retry, which the openai client obeys


class ExpectCallOutput(_Model):
    call_id: str
    contains: str | None = None


class Expect(_Model):
    call_outputs: list[ExpectCallOutput] = Field(default_factory=list)
    input_contains: list[str] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=list)


class Turn(_Model):
    name: str | None = None
    output: list[ScriptItem] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    error: ErrorInjection | list[ErrorInjection] | None = None
    expect: Expect | None = None
    delay_seconds: float = Field(default=0.0, ge=0)

    def errors(self) -> list[ErrorInjection]:
        if self.error is None:
            return []
        return self.error if isinstance(self.error, list) else [self.error]

    def items(self) -> list[OutputItem]:
        out: list[OutputItem] = []
        for item in self.output:
            out.append(item.expand() if isinstance(item, ExecCommandItem | ApplyPatchItem) else item)
        return out


class Scenario(_Model):
    name: str = "default"
    match: str | None = None  # substring of the first user message; None = fallback scenario
    turns: list[Turn] = Field(min_length=1)

    @model_validator(mode="after")
    def _normalize(self) -> Scenario:
        # Fold output-less error turns into the following turn, expand shorthands, fix call ids.
        pending: list[ErrorInjection] = []
        turns: list[Turn] = []
        for turn in self.turns:
            if not turn.output:
                if turn.error is None:
                    raise ValueError(f"turn {turn.name or len(turns)} has neither output nor error")
                pending.extend(turn.errors())
                continue
            errors = pending + turn.errors()
            pending = []
            index = len(turns)
            items: list[ScriptItem] = []
            for pos, item in enumerate(turn.items()):
                if isinstance(item, FunctionCallItem | CustomToolCallItem) and item.call_id is None:
                    item = item.model_copy(update={"call_id": f"call_{index}_{pos}"})
                items.append(item)
            turns.append(turn.model_copy(update={"output": items, "error": errors or None}))
        if pending:
            raise ValueError("error-only turns at the end of a scenario have no turn to precede")
        self.turns = turns
        return self


class Script(_Model):
    scenarios: list[Scenario] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _shapes(cls, data: Any) -> Any:
        if isinstance(data, list):
            return {"scenarios": [{"turns": data}]}
        if isinstance(data, Mapping) and "turns" in data:
            return {"scenarios": [dict(data)]}
        return data

    def scenario_for(self, first_user_text: str | None) -> int | None:
        """Index of the scenario serving a conversation that starts with this user message."""
        text = first_user_text or ""
        for index, scenario in enumerate(self.scenarios):
            if scenario.match is not None and scenario.match in text:
                return index
        for index, scenario in enumerate(self.scenarios):
            if scenario.match is None:
                return index
        return None


def load_script(source: str | Path | Script | list[Any] | dict[str, Any]) -> Script:
    """A Script from a model, plain data, or a .json/.yaml/.yml file path."""
    if isinstance(source, Script):
        return source
    if isinstance(source, list | dict):
        return Script.model_validate(source)
    path = Path(source)
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text) if path.suffix in {".yaml", ".yml"} else json.loads(text)
    return Script.model_validate(data)


# Item types a model produces; everything else in a request's input came from the user or tools.
_MODEL_ITEM_TYPES = frozenset(
    {
        "function_call",
        "custom_tool_call",
        "reasoning",
        "computer_call",
        "local_shell_call",
        "shell_call",
        "apply_patch_call",
        "web_search_call",
        "file_search_call",
        "image_generation_call",
        "code_interpreter_call",
        "mcp_call",
        "mcp_list_tools",
        "mcp_approval_request",
        "tool_search_call",
        "compaction",
    }
)


def _is_model_item(item: Any) -> bool:
    if not isinstance(item, Mapping):
        return False
    return item.get("role") == "assistant" or item.get("type") in _MODEL_ITEM_TYPES


def input_items(body: Mapping[str, Any]) -> list[Any]:
    raw = body.get("input")
    if isinstance(raw, str):
        return [{"role": "user", "content": raw}]
    return list(raw) if isinstance(raw, list) else []


def count_model_turns(items: list[Any]) -> int:
    """Model responses already in the history: runs of consecutive model-produced items."""
    turns = 0
    previous = False
    for item in items:
        current = _is_model_item(item)
        if current and not previous:
            turns += 1
        previous = current
    return turns


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts: list[str] = []
    if isinstance(content, list):
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
    return "".join(parts)


def first_user_text(items: list[Any]) -> str | None:
    for item in items:
        if isinstance(item, Mapping) and item.get("role") == "user":
            return _content_text(item.get("content"))
    return None


def conversation_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def tool_outputs(items: list[Any]) -> dict[str, str]:
    """call_id -> output text of every tool output item in the history."""
    outputs: dict[str, str] = {}
    for item in items:
        if not isinstance(item, Mapping):
            continue
        if str(item.get("type", "")).endswith("_call_output") and isinstance(item.get("call_id"), str):
            output = item.get("output")
            outputs[item["call_id"]] = output if isinstance(output, str) else json.dumps(output)
    return outputs


def check_expect(expect: Expect, body: Mapping[str, Any], items: list[Any]) -> list[str]:
    """Human-readable violations of a turn's expectations by a request (empty when it passes)."""
    problems: list[str] = []
    outputs = tool_outputs(items)
    for want in expect.call_outputs:
        got = outputs.get(want.call_id)
        if got is None:
            problems.append(f"no tool output for call {want.call_id!r} (have {sorted(outputs)})")
        elif want.contains is not None and want.contains not in got:
            problems.append(f"output of call {want.call_id!r} lacks {want.contains!r}: {got[:300]!r}")
    if expect.input_contains:
        haystack = json.dumps(items, ensure_ascii=False)
        for needle in expect.input_contains:
            if needle not in haystack:
                problems.append(f"request input lacks {needle!r}")
    offered = {
        str(tool.get("name"))
        for tool in body.get("tools") or []
        if isinstance(tool, Mapping) and tool.get("name") is not None
    }
    for name in expect.tools:
        if name not in offered:
            problems.append(f"tool {name!r} not offered (offered: {sorted(offered)})")
    return problems
