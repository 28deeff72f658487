"""Exceptions of a run mapped to a readable lastError {reason, message}. Pure."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import openai
from agents.exceptions import MaxTurnsExceeded, ModelBehaviorError, ModelRefusalError, ModelTimeoutError
from agents.sandbox.errors import SandboxError

from ..sandbox import KubeApiError, WorkspaceError
from .checkpoint import CheckpointError
from .protocol import Reason

MESSAGE_MAX_CHARS = 2048


class RunFailureError(Exception):
    """A failure the driver detected itself, with its reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Classified:
    reason: str
    message: str


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _api_message(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
    return str(error.message)


def _status_reason(status: int) -> str:
    if status == 401:
        return Reason.MODEL_AUTHENTICATION_FAILED
    if status == 403:
        return Reason.MODEL_PERMISSION_DENIED
    if status == 404:
        return Reason.MODEL_NOT_FOUND
    if status == 429:
        return Reason.RATE_LIMITED
    return Reason.MODEL_ERROR


def classify(error: BaseException, *, retries: int | None = None) -> Classified:
    """The reason and message for the first recognizable exception in the cause chain."""
    for current in _chain(error):
        if isinstance(current, RunFailureError):
            return Classified(current.reason, _cut(str(current)))
        if isinstance(current, MaxTurnsExceeded):
            return Classified(Reason.MAX_TURNS_EXCEEDED, _cut(f"the run reached limits.maxTurns: {current}"))
        if isinstance(current, openai.APIStatusError):
            reason = _status_reason(current.status_code)
            message = f"the model endpoint answered {current.status_code}: {_api_message(current)}"
            if reason == Reason.RATE_LIMITED and retries is not None:
                message += f" (after {retries} retries with backoff)"
            return Classified(reason, _cut(message))
        if isinstance(current, openai.APITimeoutError | ModelTimeoutError):
            return Classified(Reason.MODEL_UNAVAILABLE, _cut(f"the model request timed out: {current}"))
        if isinstance(current, openai.APIConnectionError):
            return Classified(Reason.MODEL_UNAVAILABLE, _cut(f"cannot reach the model endpoint: {current}"))
        if isinstance(current, ModelBehaviorError | ModelRefusalError):
            return Classified(Reason.MODEL_BEHAVIOR_ERROR, _cut(f"the model misbehaved: {current}"))
        if isinstance(current, openai.OpenAIError):
            return Classified(Reason.MODEL_ERROR, _cut(f"model client error: {current}"))
        if isinstance(current, WorkspaceError):
            return Classified(Reason.SANDBOX_UNAVAILABLE, _cut(f"the workspace is not usable: {current}"))
        if isinstance(current, SandboxError | KubeApiError):
            return Classified(
                Reason.SANDBOX_UNAVAILABLE, _cut(f"the sandbox failed: {type(current).__name__}: {current}")
            )
        if isinstance(current, CheckpointError):
            return Classified(Reason.CHECKPOINT_UNREADABLE, _cut(str(current)))
    return Classified(Reason.HARNESS_ERROR, _cut(f"{type(error).__name__}: {error}"))


def _cut(message: str) -> str:
    return message if len(message) <= MESSAGE_MAX_CHARS else message[: MESSAGE_MAX_CHARS - 1] + "…"
