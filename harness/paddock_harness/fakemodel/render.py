"""Render a scripted turn as OpenAI Responses API payloads: a Response object and its SSE events.

The shapes follow the `openai` package's types (``openai.types.responses``); the unit tests
validate every payload against them, so a drift in the SDK shows up as a test failure.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from .script import (
    CustomToolCallItem,
    FunctionCallItem,
    MessageItem,
    OutputItem,
    ReasoningItem,
    Turn,
)

# Deltas are cut into pieces this long so streaming clients really assemble them.
DELTA_CHUNK = 24


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _item_json(item: OutputItem) -> dict[str, Any]:
    """The completed output item."""
    if isinstance(item, MessageItem):
        message: dict[str, Any] = {
            "id": new_id("msg"),
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": item.text, "annotations": [], "logprobs": []}],
        }
        if item.phase is not None:
            message["phase"] = item.phase
        return message
    if isinstance(item, ReasoningItem):
        return {
            "id": new_id("rs"),
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": item.summary}],
        }
    if isinstance(item, FunctionCallItem):
        return {
            "id": new_id("fc"),
            "type": "function_call",
            "status": "completed",
            "call_id": item.call_id,
            "name": item.name,
            "arguments": item.arguments_text(),
        }
    assert isinstance(item, CustomToolCallItem)
    return {
        "id": new_id("ctc"),
        "type": "custom_tool_call",
        "status": "completed",
        "call_id": item.call_id,
        "name": item.name,
        "input": item.input,
    }


def output_items(turn: Turn) -> list[dict[str, Any]]:
    return [_item_json(item) for item in turn.items()]


def _estimate_tokens(text: str) -> int:
    # Roughly four characters a token: enough for budgets and status displays to look plausible.
    return max(1, (len(text) + 3) // 4)


def usage_json(turn: Turn, body: Mapping[str, Any], output: list[dict[str, Any]]) -> dict[str, Any]:
    usage = turn.usage
    input_tokens = usage.input_tokens
    if input_tokens is None:
        prompt = json.dumps([body.get("instructions"), body.get("input"), body.get("tools")])
        input_tokens = _estimate_tokens(prompt)
    output_tokens = usage.output_tokens
    if output_tokens is None:
        output_tokens = _estimate_tokens(json.dumps(output)) + usage.reasoning_tokens
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": input_tokens + output_tokens,
    }


def response_json(
    body: Mapping[str, Any],
    *,
    response_id: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    status: str = "completed",
) -> dict[str, Any]:
    """A Response object echoing the request's settings, as the real API does."""
    now = time.time()
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(now),
        "completed_at": int(now) if status == "completed" else None,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": body.get("metadata") or {},
        "model": body.get("model") or "fake-model",
        "output": output,
        "parallel_tool_calls": bool(body.get("parallel_tool_calls", True)),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
        "store": bool(body.get("store", True)),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation") or "disabled",
        "usage": usage,
        "user": None,
    }


def _chunks(text: str) -> list[str]:
    return [text[i : i + DELTA_CHUNK] for i in range(0, len(text), DELTA_CHUNK)] or [""]


def _item_events(item: dict[str, Any], index: int) -> Iterator[dict[str, Any]]:
    """Events for one output item, without sequence numbers."""
    item_id = item["id"]
    kind = item["type"]
    base = {"item_id": item_id, "output_index": index}
    if kind == "message":
        text = item["content"][0]["text"]
        yield {
            "type": "response.output_item.added",
            "output_index": index,
            "item": {**item, "status": "in_progress", "content": []},
        }
        empty_part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        yield {"type": "response.content_part.added", **base, "content_index": 0, "part": empty_part}
        for piece in _chunks(text):
            yield {
                "type": "response.output_text.delta",
                **base,
                "content_index": 0,
                "delta": piece,
                "logprobs": [],
            }
        yield {"type": "response.output_text.done", **base, "content_index": 0, "text": text, "logprobs": []}
        yield {"type": "response.content_part.done", **base, "content_index": 0, "part": item["content"][0]}
    elif kind == "reasoning":
        text = item["summary"][0]["text"]
        yield {"type": "response.output_item.added", "output_index": index, "item": {**item, "summary": []}}
        part = {"type": "summary_text", "text": ""}
        yield {"type": "response.reasoning_summary_part.added", **base, "summary_index": 0, "part": part}
        for piece in _chunks(text):
            yield {
                "type": "response.reasoning_summary_text.delta",
                **base,
                "summary_index": 0,
                "delta": piece,
            }
        yield {"type": "response.reasoning_summary_text.done", **base, "summary_index": 0, "text": text}
        yield {
            "type": "response.reasoning_summary_part.done",
            **base,
            "summary_index": 0,
            "part": {"type": "summary_text", "text": text},
        }
    elif kind == "function_call":
        arguments = item["arguments"]
        yield {
            "type": "response.output_item.added",
            "output_index": index,
            "item": {**item, "status": "in_progress", "arguments": ""},
        }
        for piece in _chunks(arguments):
            yield {"type": "response.function_call_arguments.delta", **base, "delta": piece}
        yield {"type": "response.function_call_arguments.done", **base, "arguments": arguments}
    elif kind == "custom_tool_call":
        patch = item["input"]
        yield {
            "type": "response.output_item.added",
            "output_index": index,
            "item": {**item, "status": "in_progress", "input": ""},
        }
        for piece in _chunks(patch):
            yield {"type": "response.custom_tool_call_input.delta", **base, "delta": piece}
        yield {"type": "response.custom_tool_call_input.done", **base, "input": patch}
    yield {"type": "response.output_item.done", "output_index": index, "item": item}


def stream_events(response: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The SSE event sequence the Responses API emits for a finished response."""
    pending = {**response, "status": "in_progress", "output": [], "usage": None, "completed_at": None}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": pending},
        {"type": "response.in_progress", "response": pending},
    ]
    for index, item in enumerate(response["output"]):
        events.extend(_item_events(item, index))
    events.append({"type": "response.completed", "response": response})
    for sequence, event in enumerate(events):
        yield {**event, "sequence_number": sequence}


def sse_frame(event: Mapping[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n".encode()


def error_json(status: int, message: str | None = None, code: str | None = None) -> dict[str, Any]:
    """An error body shaped like OpenAI's for the usual statuses."""
    kinds: dict[int, tuple[str, str | None, str]] = {
        400: ("invalid_request_error", None, "Bad request."),
        401: (
            "invalid_request_error",
            "invalid_api_key",
            "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
        ),
        403: ("invalid_request_error", "unsupported_country_region_territory", "Forbidden."),
        404: ("invalid_request_error", "model_not_found", "The model does not exist."),
        429: (
            "requests",
            "rate_limit_exceeded",
            "Rate limit reached for requests (scripted by the Paddock fake model). Please try again shortly.",
        ),
        500: (
            "server_error",
            None,
            "The server had an error while processing your request. Sorry about that!",
        ),
        503: ("server_error", None, "The engine is currently overloaded, please try again later."),
    }
    kind, default_code, default_message = kinds.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None, f"HTTP {status}.")
    )
    return {
        "error": {
            "message": message or default_message,
            "type": kind,
            "param": None,
            "code": code if code is not None else default_code,
        }
    }
