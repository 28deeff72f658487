"""What the driver does with the SDK's stream events: transcript entries, counters, throttled status."""

from __future__ import annotations

from typing import Any

from agents import ItemHelpers
from agents.items import MessageOutputItem, ReasoningItem, ToolCallItem, ToolCallOutputItem
from agents.result import RunResultStreaming
from agents.stream_events import StreamEvent

from . import metrics
from .agentbuild import describe_call
from .approvals import call_info
from .status import StatusWriter
from .transcript import TranscriptWriter

_KNOWN_TOOLS = frozenset({"exec_command", "write_stdin", "apply_patch", "view_image"})


def _reasoning_text(item: ReasoningItem) -> str:
    raw = item.raw_item
    parts = [getattr(part, "text", "") for part in (getattr(raw, "summary", None) or [])]
    return "\n".join(p for p in parts if p)


def _output_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):  # structured outputs (e.g. an image and text)
        return "\n".join(_output_text(part) for part in output)
    text = getattr(output, "text", None) if not isinstance(output, dict) else output.get("text")
    return str(text) if text is not None else str(output)


class SegmentObserver:
    def __init__(
        self,
        transcript: TranscriptWriter,
        status: StatusWriter,
        *,
        tool_calls: int = 0,
        turns: int = 0,
        usage: tuple[int, int] = (0, 0),
    ) -> None:
        """Counters start where the checkpoint left them, so metrics count each turn and token once."""
        self.transcript = transcript
        self.status = status
        self.tool_calls = tool_calls
        self._seen_calls: set[str] = set()
        self._turns_seen = turns
        self._usage_seen = usage

    async def on_event(self, event: StreamEvent, result: RunResultStreaming) -> None:
        if event.type != "run_item_stream_event":
            return
        item = event.item
        turn = result.current_turn
        if isinstance(item, ToolCallItem):
            tool, call_id, arguments = call_info(item.raw_item)
            if call_id and call_id in self._seen_calls:
                return
            self._seen_calls.add(call_id)
            self.tool_calls += 1
            metrics.TOOL_CALLS.labels(tool if tool in _KNOWN_TOOLS else "other").inc()
            await self.transcript.add("tool_call", describe_call(tool, arguments), tool=tool, callId=call_id, turn=turn)
        elif isinstance(item, ToolCallOutputItem):
            _, call_id, _ = call_info(item.raw_item)
            await self.transcript.add("tool_output", _output_text(item.output), callId=call_id, turn=turn)
        elif isinstance(item, MessageOutputItem):
            await self.transcript.add("message", ItemHelpers.text_message_output(item), split=True, turn=turn)
        elif isinstance(item, ReasoningItem):
            text = _reasoning_text(item)
            if text:
                await self.transcript.add("reasoning", text, turn=turn)
        self.stage_counters(result)
        await self.status.maybe_flush()

    def stage_counters(self, result: RunResultStreaming) -> None:
        usage = result.context_wrapper.usage
        turns = result.current_turn
        if turns > self._turns_seen:
            metrics.TURNS.inc(turns - self._turns_seen)
            self._turns_seen = turns
        input_seen, output_seen = self._usage_seen
        metrics.TOKENS.labels("input").inc(max(0, usage.input_tokens - input_seen))
        metrics.TOKENS.labels("output").inc(max(0, usage.output_tokens - output_seen))
        self._usage_seen = (max(input_seen, usage.input_tokens), max(output_seen, usage.output_tokens))
        self.status.stage(
            turns=turns,
            toolCalls=self.tool_calls,
            usage={
                "inputTokens": usage.input_tokens,
                "outputTokens": usage.output_tokens,
                "totalTokens": usage.total_tokens,
            },
        )
