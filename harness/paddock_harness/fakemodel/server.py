"""An aiohttp server speaking the OpenAI Responses API (``POST /v1/responses``) from a script.

Endpoints:
  POST /v1/responses (also /responses)  the model; JSON or SSE (``"stream": true``)
  GET  /_requests                       {"requests": [...], "failures": [...]} for tests
  POST /_reset                          forget requests, failures, error counters and responses
  GET  /healthz                         liveness

Conversation keys (for error-injection counters and the request log): the ``x-paddock-run``
header when present, else the chain of ``previous_response_id`` / ``conversation``, else a hash of
the first user message. Which turn answers is derived from the request itself (see script.py).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from .render import error_json, new_id, output_items, response_json, sse_frame, stream_events, usage_json
from .script import (
    ErrorInjection,
    Script,
    Turn,
    check_expect,
    conversation_hash,
    count_model_turns,
    first_user_text,
    input_items,
    load_script,
)

log = logging.getLogger(__name__)

RUN_HEADER = "x-paddock-run"
_MAX_REMEMBERED_RESPONSES = 10_000


@dataclass(frozen=True)
class _Position:
    key: str
    scenario: int
    turn: int


class _RejectionError(Exception):
    """A request the script cannot answer: becomes a 400 and, if it is a script failure, a failure."""

    def __init__(self, message: str, *, failure: bool = True, code: str = "paddock_fake_model") -> None:
        super().__init__(message)
        self.failure = failure
        self.code = code


@dataclass
class RecordedRequest:
    """One request as the server saw it and what it answered."""

    seq: int
    time: float
    path: str
    headers: dict[str, str]
    body: Any
    status: int = 0
    stream: bool = False
    key: str | None = None
    scenario: str | None = None
    turn: int | None = None
    response_id: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _mask_headers(headers: Mapping[str, str]) -> dict[str, str]:
    masked = {name.lower(): value for name, value in headers.items()}
    if "authorization" in masked:
        # Tests need to see that a key was sent, never the key itself.
        scheme = masked["authorization"].split(" ", 1)[0]
        masked["authorization"] = f"{scheme} ***"
    return masked


def _mask_key(key: str) -> str:
    return key[:3] + "*" * max(0, len(key) - 7) + key[-4:] if len(key) > 8 else "***"


class FakeModelServer:
    """The fake model, in-process: ``async with FakeModelServer(script) as server: server.base_url``."""

    def __init__(
        self,
        script: Script | str | Path | list[Any] | dict[str, Any],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        require_auth: bool = True,
    ) -> None:
        self.script = load_script(script)
        self.host = host
        self.port = port
        self.api_key = api_key
        self.require_auth = require_auth
        # Guards everything below: tests read requests from other threads (FakeModelThread).
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._failures: list[str] = []
        self._responses: OrderedDict[str, _Position] = OrderedDict()
        self._conversations: dict[str, _Position] = {}
        self._errors_served: dict[_Position, int] = {}
        self._runner: web.AppRunner | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/responses", self._handle_responses)
        app.router.add_post("/responses", self._handle_responses)
        app.router.add_get("/_requests", self._handle_requests)
        app.router.add_post("/_reset", self._handle_reset)
        app.router.add_get("/healthz", self._handle_health)
        return app

    async def start(self) -> None:
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        # With port 0 the OS picked one: read it back from the bound socket.
        self.port = int(runner.addresses[0][1])
        log.info("fake model listening on %s", self.base_url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeModelServer:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as ``base_url``."""
        return f"{self.url}/v1"

    # -- test API --------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def failures(self) -> list[str]:
        """Script violations: failed expectations, exhausted scripts, unmatched conversations."""
        with self._lock:
            return list(self._failures)

    def model_requests(self) -> list[RecordedRequest]:
        """Requests that were answered with a scripted turn."""
        return [r for r in self.requests if r.status == 200 and r.turn is not None]

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._failures.clear()
            self._responses.clear()
            self._conversations.clear()
            self._errors_served.clear()

    # -- handlers --------------------------------------------------------------------------------

    async def _handle_health(self, _: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def _handle_requests(self, _: web.Request) -> web.Response:
        return web.json_response({"requests": [r.to_json() for r in self.requests], "failures": self.failures})

    async def _handle_reset(self, _: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    async def _handle_responses(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            record = RecordedRequest(
                seq=len(self._requests),
                time=time.time(),
                path=request.path,
                headers=_mask_headers(request.headers),
                body=None,
            )
            self._requests.append(record)
        try:
            body = await request.json()
        except ValueError:
            return self._error(record, 400, "request body is not JSON")
        record.body = body
        if not isinstance(body, dict):
            return self._error(record, 400, "request body must be a JSON object")
        record.stream = body.get("stream") is True

        denied = self._check_auth(request.headers.get("Authorization"))
        if denied is not None:
            return self._error(record, 401, denied, code="invalid_api_key")

        try:
            position = self._locate(body, request.headers.get(RUN_HEADER))
        except _RejectionError as exc:
            return self._reject(record, exc)
        scenario = self.script.scenarios[position.scenario]
        turn = scenario.turns[position.turn]
        record.key, record.scenario, record.turn = position.key, scenario.name, position.turn

        injected = self._take_error(position, turn)
        if injected is not None:
            return self._injected_error(record, injected)

        if turn.expect is not None:
            problems = check_expect(turn.expect, body, input_items(body))
            if problems:
                label = turn.name or str(position.turn)
                message = f"turn {label} of scenario {scenario.name!r}: " + "; ".join(problems)
                return self._reject(record, _RejectionError(message, code="paddock_expectation_failed"))

        if turn.delay_seconds:
            await asyncio.sleep(turn.delay_seconds)
        return await self._answer(request, record, body, position, turn)

    # -- the pieces ------------------------------------------------------------------------------

    def _check_auth(self, header: str | None) -> str | None:
        """None when the Authorization header is acceptable, else OpenAI's wording of the problem."""
        if not self.require_auth:
            return None
        if not header or not header.startswith("Bearer ") or not header[7:].strip():
            return (
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            )
        key = header[7:].strip()
        if self.api_key is not None and key != self.api_key:
            return (
                f"Incorrect API key provided: {_mask_key(key)}. You can find your API key at "
                "https://platform.openai.com/account/api-keys."
            )
        return None

    def _locate(self, body: Mapping[str, Any], run_header: str | None) -> _Position:
        items = input_items(body)
        previous_id = body.get("previous_response_id")
        conversation = body.get("conversation")
        conversation_id = conversation.get("id") if isinstance(conversation, Mapping) else conversation
        before: _Position | None = None
        with self._lock:
            if isinstance(previous_id, str):
                before = self._responses.get(previous_id)
                if before is None:
                    raise _RejectionError(f"Previous response with id '{previous_id}' not found.", failure=False)
            elif isinstance(conversation_id, str):
                before = self._conversations.get(conversation_id)
        if before is not None:
            scenario, key, base = before.scenario, before.key, before.turn + 1
        else:
            text = first_user_text(items)
            found = self.script.scenario_for(text)
            if found is None:
                raise _RejectionError(f"no scenario matches the first user message {text!r}")
            scenario, base = found, 0
            key = f"conversation:{conversation_id}" if isinstance(conversation_id, str) else ""
            key = key or f"input:{conversation_hash(text or '')}"
        if run_header:
            key = f"run:{run_header}"
        turn = base + count_model_turns(items)
        turns = self.script.scenarios[scenario].turns
        if turn >= len(turns):
            name = self.script.scenarios[scenario].name
            raise _RejectionError(
                f"script exhausted: scenario {name!r} has {len(turns)} turns, request asks for turn {turn}",
                code="paddock_script_exhausted",
            )
        return _Position(key=key, scenario=scenario, turn=turn)

    def _take_error(self, position: _Position, turn: Turn) -> ErrorInjection | None:
        """The error to serve now, if this turn still has injections left for this conversation."""
        with self._lock:
            served = self._errors_served.get(position, 0)
            remaining = served
            for injection in turn.errors():
                if remaining < injection.times:
                    self._errors_served[position] = served + 1
                    return injection
                remaining -= injection.times
        return None

    def _remember(self, response_id: str, position: _Position, body: Mapping[str, Any]) -> None:
        with self._lock:
            self._responses[response_id] = position
            while len(self._responses) > _MAX_REMEMBERED_RESPONSES:
                self._responses.popitem(last=False)
            conversation = body.get("conversation")
            conversation_id = conversation.get("id") if isinstance(conversation, Mapping) else conversation
            if isinstance(conversation_id, str):
                self._conversations[conversation_id] = position

    async def _answer(
        self,
        request: web.Request,
        record: RecordedRequest,
        body: Mapping[str, Any],
        position: _Position,
        turn: Turn,
    ) -> web.StreamResponse:
        output = output_items(turn)
        response_id = new_id("resp")
        response = response_json(body, response_id=response_id, output=output, usage=usage_json(turn, body, output))
        self._remember(response_id, position, body)
        record.status, record.response_id = 200, response_id
        log.info(
            "turn %d of %r for %s -> %s (%s)",
            position.turn,
            record.scenario,
            position.key,
            response_id,
            "stream" if record.stream else "json",
        )
        headers = {"x-request-id": new_id("req")}
        if not record.stream:
            return web.json_response(response, headers=headers)
        stream = web.StreamResponse(
            status=200, headers={**headers, "Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await stream.prepare(request)
        try:
            for event in stream_events(response):
                await stream.write(sse_frame(event))
            await stream.write_eof()
        except ConnectionResetError:
            # The client went away mid-stream (a harness being killed, say): nothing to clean up.
            log.info("client left during the stream of %s", response_id)
        return stream

    def _error(self, record: RecordedRequest, status: int, message: str, code: str | None = None) -> web.Response:
        record.status, record.error = status, message
        log.info("request %d -> %d: %s", record.seq, status, message)
        headers = {"x-request-id": new_id("req")}
        return web.json_response(error_json(status, message, code), status=status, headers=headers)

    def _reject(self, record: RecordedRequest, exc: _RejectionError) -> web.Response:
        if exc.failure:
            with self._lock:
                self._failures.append(str(exc))
            log.warning("script failure: %s", exc)
        return self._error(record, 400, str(exc), code=exc.code)

    def _injected_error(self, record: RecordedRequest, injection: ErrorInjection) -> web.Response:
        record.status = injection.status
        body = error_json(injection.status, injection.message, injection.code)
        record.error = str(body["error"]["message"])
        headers = {"x-request-id": new_id("req")}
        if injection.retry_after is not None:
            # The openai client prefers the millisecond header; plain clients read seconds.
            headers["retry-after-ms"] = str(int(injection.retry_after * 1000))
            headers["retry-after"] = str(math.ceil(injection.retry_after))
        if injection.should_retry is not None:
            headers["x-should-retry"] = "true" if injection.should_retry else "false"
        log.info("turn %s of %r -> injected %d", record.turn, record.scenario, injection.status)
        return web.json_response(body, status=injection.status, headers=headers)
