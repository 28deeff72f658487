"""The fake model server, driven by the real openai client and the real Agents SDK runner.

These tests are the proof that the script format matches what the SDK sends and expects: the
sandbox tests run `exec_command` and `apply_patch` turns through `SandboxAgent` + UnixLocal.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
import pytest_asyncio
from agents import (
    Agent,
    ModelSettings,
    RunConfig,
    Runner,
    RunResult,
    RunResultStreaming,
    function_tool,
    set_tracing_disabled,
)
from agents.models.openai_responses import OpenAIResponsesModel
from agents.sandbox import Manifest, SandboxAgent, SandboxRunConfig
from agents.sandbox.capabilities.tools.apply_patch_tool import _parse_apply_patch_input
from agents.sandbox.capabilities.tools.shell_tool import ExecCommandArgs
from agents.sandbox.sandboxes.unix_local import UnixLocalSandboxClient
from openai import AsyncOpenAI, OpenAI
from openai.types.responses import (
    Response,
    ResponseCustomToolCall,
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseReasoningItem,
    ResponseStreamEvent,
)
from pydantic import TypeAdapter, ValidationError

from paddock_harness.fakemodel import (
    RUN_HEADER,
    FakeModelServer,
    FakeModelThread,
    builtin_script,
    load_script,
)
from paddock_harness.fakemodel.script import CustomToolCallItem, FunctionCallItem

set_tracing_disabled(True)

MODEL = "gpt-5.4-mini"
SCRIPTS = Path(builtin_script("demo")).parent
EVENTS: TypeAdapter[ResponseStreamEvent] = TypeAdapter(ResponseStreamEvent)

TOOL_TURNS: list[dict[str, Any]] = [
    {
        "output": [
            {"type": "reasoning", "summary": "I should ask the weather tool."},
            {"type": "function_call", "name": "get_weather", "arguments": {"city": "Oslo"}, "callId": "c1"},
        ],
        "usage": {"inputTokens": 100, "outputTokens": 20},
    },
    {
        "expect": {"callOutputs": [{"callId": "c1", "contains": "sunny in Oslo"}], "tools": ["get_weather"]},
        "output": [{"type": "message", "text": "It is sunny in Oslo."}],
        "usage": {"inputTokens": 150, "outputTokens": 10},
    },
]


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


_CLIENTS: list[AsyncOpenAI] = []


def _client(server: FakeModelServer, **options: Any) -> AsyncOpenAI:
    client = AsyncOpenAI(base_url=server.base_url, api_key="sk-test", **options)
    _CLIENTS.append(client)
    return client


def _model(server: FakeModelServer, **client_options: Any) -> OpenAIResponsesModel:
    return OpenAIResponsesModel(model=MODEL, openai_client=_client(server, **client_options))


@pytest_asyncio.fixture(autouse=True, loop_scope="function")
async def _close_clients() -> AsyncIterator[None]:
    yield
    while _CLIENTS:
        await _CLIENTS.pop().close()


# Same loop as the tests (the project's default fixture loop is the session's).
@pytest_asyncio.fixture(loop_scope="function")
async def tool_server() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer(TOOL_TURNS) as server:
        yield server


async def _post(server: FakeModelServer, body: dict[str, Any], **headers: str) -> tuple[int, str]:
    headers.setdefault("Authorization", "Bearer sk-test")
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{server.base_url}/responses", json=body, headers=headers) as resp,
    ):
        return resp.status, await resp.text()


# -- the script format -------------------------------------------------------------------------


def test_script_shapes_shorthands_and_error_folding() -> None:
    turns = [
        {"error": {"status": 429, "retryAfter": 1, "times": 2}},
        {"output": [{"type": "exec_command", "cmd": "ls"}, {"type": "apply_patch", "patch": ["a", "b"]}]},
        {"output": [{"type": "message", "text": "done"}], "error": {"status": 500}},
    ]
    for data in (turns, {"turns": turns}, {"scenarios": [{"name": "x", "turns": turns}]}):
        scenario = load_script(data).scenarios[0]
        assert len(scenario.turns) == 2
        first = scenario.turns[0]
        assert [(e.status, e.times, e.retry_after) for e in first.errors()] == [(429, 2, 1.0)]
        shell, patch = first.items()
        assert isinstance(shell, FunctionCallItem)
        assert (shell.name, shell.arguments_text(), shell.call_id) == ("exec_command", '{"cmd":"ls"}', "call_0_0")
        assert isinstance(patch, CustomToolCallItem)
        assert (patch.name, patch.input, patch.call_id) == ("apply_patch", "a\nb\n", "call_0_1")
        assert [e.status for e in scenario.turns[1].errors()] == [500]


@pytest.mark.parametrize(
    "bad",
    [
        [{"output": [{"type": "message", "txt": "typo"}]}],
        [{"output": [{"type": "message", "text": "x"}]}, {"error": {"status": 500}}],
        [{"name": "empty"}],
        [],
    ],
)
def test_script_rejects_mistakes(bad: Any) -> None:
    with pytest.raises(ValidationError):
        load_script(bad)


@pytest.mark.parametrize("name", ["demo.json", "rate-limited.yaml"])
def test_shipped_scripts_match_the_sdk_tools(name: str) -> None:
    script = load_script(SCRIPTS / name)
    for turn in script.scenarios[0].turns:
        for item in turn.items():
            if isinstance(item, FunctionCallItem):
                assert item.name == "exec_command"
                ExecCommandArgs.model_validate_json(item.arguments_text())
            elif isinstance(item, CustomToolCallItem):
                assert item.name == "apply_patch"
                assert _parse_apply_patch_input(item.input)


# -- raw openai client ---------------------------------------------------------------------------


async def test_non_streaming_response_is_a_valid_response(tool_server: FakeModelServer) -> None:
    status, text = await _post(tool_server, {"model": MODEL, "input": "weather?"})
    assert status == 200
    Response.model_validate(json.loads(text))  # strict: every required field is present

    client = _client(tool_server)
    response = await client.responses.create(model=MODEL, input="weather in Oslo?")
    reasoning, call = response.output
    assert isinstance(reasoning, ResponseReasoningItem)
    assert isinstance(call, ResponseFunctionToolCall)
    assert (call.name, json.loads(call.arguments), call.call_id) == ("get_weather", {"city": "Oslo"}, "c1")
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (
        100,
        20,
        120,
    )
    assert response.model == MODEL


async def test_streaming_events_are_valid_and_assemble(tool_server: FakeModelServer) -> None:
    status, text = await _post(tool_server, {"model": MODEL, "input": "weather?", "stream": True})
    assert status == 200
    frames = [f for f in text.split("\n\n") if f.strip()]
    events = [EVENTS.validate_python(json.loads(f.split("data: ", 1)[1])) for f in frames]
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert "response.function_call_arguments.delta" in types
    assert [e.sequence_number for e in events] == list(range(len(events)))

    # The openai helper rebuilds the response from the deltas and checks it against the events.
    client = _client(tool_server)
    async with client.responses.stream(model=MODEL, input="weather in Oslo, please") as stream:
        final = await stream.get_final_response()
    call = final.output[1]
    assert isinstance(call, ResponseFunctionToolCall)
    assert json.loads(call.arguments) == {"city": "Oslo"}


async def test_streamed_messages_and_patches_assemble() -> None:
    patch = "*** Begin Patch\n*** Add File: a.txt\n+" + "x" * 100 + "\n*** End Patch\n"
    turns = [
        {
            "output": [
                {"type": "message", "text": "A longer message, streamed in several deltas."},
                {"type": "apply_patch", "patch": patch},
            ]
        }
    ]
    async with FakeModelServer(turns) as server:
        client = _client(server)
        async with client.responses.stream(model=MODEL, input="go") as stream:
            deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
            final = await stream.get_final_response()
    assert len(deltas) > 1
    message, call = final.output
    assert isinstance(message, ResponseOutputMessage)
    assert final.output_text == "A longer message, streamed in several deltas."
    assert isinstance(call, ResponseCustomToolCall)
    assert call.input == patch


async def test_previous_response_id_chains_turns(tool_server: FakeModelServer) -> None:
    client = _client(tool_server)
    first = await client.responses.create(model=MODEL, input="weather?")
    second = await client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": "c1", "output": "sunny in Oslo"}],
        tools=[{"type": "function", "name": "get_weather", "parameters": {}, "strict": False}],
    )
    assert second.output_text == "It is sunny in Oslo."
    assert [r.turn for r in tool_server.model_requests()] == [0, 1]
    assert len({r.key for r in tool_server.requests}) == 1

    with pytest.raises(openai.BadRequestError, match="not found"):
        await client.responses.create(model=MODEL, previous_response_id="resp_nope", input="x")


async def test_conversation_parameter_keeps_position(tool_server: FakeModelServer) -> None:
    client = _client(tool_server)
    first = await client.responses.create(model=MODEL, conversation="conv_1", input="weather?")
    assert isinstance(first.output[1], ResponseFunctionToolCall)
    output: Any = {"type": "function_call_output", "call_id": "c1", "output": "sunny in Oslo"}
    tools: Any = [{"type": "function", "name": "get_weather", "parameters": {}, "strict": False}]
    second = await client.responses.create(model=MODEL, conversation="conv_1", input=[output], tools=tools)
    assert second.output_text == "It is sunny in Oslo."
    assert [(r.key, r.turn) for r in tool_server.requests] == [("conversation:conv_1", 0), ("conversation:conv_1", 1)]
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{tool_server.base_url}/responses", data=b"{nope", headers={"Authorization": "Bearer k"}) as r,
    ):
        assert r.status == 400


async def test_scenarios_are_picked_by_the_first_user_message() -> None:
    script = {
        "scenarios": [
            {"name": "a", "match": "apples", "turns": [{"output": [{"type": "message", "text": "A"}]}]},
            {"name": "b", "turns": [{"output": [{"type": "message", "text": "B"}]}]},
        ]
    }
    async with FakeModelServer(script) as server:
        client = _client(server)
        assert (await client.responses.create(model=MODEL, input="about apples")).output_text == "A"
        assert (await client.responses.create(model=MODEL, input="about pears")).output_text == "B"
        assert [r.scenario for r in server.requests] == ["a", "b"]


# -- the Agents SDK runner -----------------------------------------------------------------------


@pytest.mark.parametrize("streamed", [False, True])
async def test_agent_function_tool_round_trip(tool_server: FakeModelServer, streamed: bool) -> None:
    agent = Agent(name="weather", instructions="Answer.", model=_model(tool_server), tools=[get_weather])
    result: RunResult | RunResultStreaming
    if streamed:
        result = Runner.run_streamed(agent, "Weather in Oslo?")
        async for _ in result.stream_events():
            pass
    else:
        result = await Runner.run(agent, "Weather in Oslo?")
    assert result.final_output == "It is sunny in Oslo."
    assert tool_server.failures == []
    assert [r.stream for r in tool_server.requests] == [streamed, streamed]
    usage = result.context_wrapper.usage
    assert (usage.requests, usage.input_tokens, usage.output_tokens) == (2, 250, 30)


async def test_parallel_tool_calls_in_one_turn() -> None:
    turns = [
        {
            "output": [
                {"type": "function_call", "name": "get_weather", "arguments": {"city": "Oslo"}, "callId": "a"},
                {"type": "function_call", "name": "get_weather", "arguments": {"city": "Rome"}, "callId": "b"},
            ]
        },
        {
            "expect": {"callOutputs": [{"callId": "a", "contains": "Oslo"}, {"callId": "b", "contains": "Rome"}]},
            "output": [{"type": "message", "text": "Both sunny."}],
        },
    ]
    async with FakeModelServer(turns) as server:
        agent = Agent(name="w", model=_model(server), tools=[get_weather])
        result = await Runner.run(agent, "Oslo and Rome?")
        assert result.final_output == "Both sunny."
        assert server.failures == []


async def test_concurrent_runs_each_get_their_own_turns(tool_server: FakeModelServer) -> None:
    agent = Agent(name="weather", model=_model(tool_server), tools=[get_weather])
    prompts = [f"Weather in Oslo? ({n})" for n in range(4)]
    results = await asyncio.gather(*(Runner.run(agent, p) for p in prompts))
    assert [r.final_output for r in results] == ["It is sunny in Oslo."] * 4
    assert tool_server.failures == []
    assert len({r.key for r in tool_server.requests}) == 4


async def test_run_header_keys_error_injection_per_run() -> None:
    turns = [{"error": {"status": 429, "retryAfter": 0.01}}, *TOOL_TURNS]
    async with FakeModelServer(turns) as server:
        results = []
        for run in ("run-a", "run-b"):
            settings = ModelSettings(extra_headers={RUN_HEADER: run})
            agent = Agent(name="w", model=_model(server), tools=[get_weather], model_settings=settings)
            results.append(await Runner.run(agent, "Same prompt"))
        assert [r.final_output for r in results] == ["It is sunny in Oslo."] * 2
        # Each run was rate limited once, although both sent the same first message.
        assert [(r.key, r.status) for r in server.requests] == [
            ("run:run-a", 429),
            ("run:run-a", 200),
            ("run:run-a", 200),
            ("run:run-b", 429),
            ("run:run-b", 200),
            ("run:run-b", 200),
        ]


@pytest.mark.parametrize("streamed", [False, True])
async def test_sandbox_agent_runs_the_demo_script(tmp_path: Path, streamed: bool) -> None:
    async with FakeModelServer(builtin_script("demo")) as server:
        agent = SandboxAgent(name="dev", instructions="Do the task.", model=_model(server))
        config = RunConfig(
            sandbox=SandboxRunConfig(client=UnixLocalSandboxClient(), manifest=Manifest(root=str(tmp_path)))
        )
        prompt = "Write hello.py and run it."
        result: RunResult | RunResultStreaming
        if streamed:
            result = Runner.run_streamed(agent, prompt, run_config=config)
            async for _ in result.stream_events():
                pass
        else:
            result = await Runner.run(agent, prompt, run_config=config)
        assert "Hello from Paddock" in str(result.final_output)
        assert 'print(f"Hello from Paddock on {platform.node()}!")' in (tmp_path / "hello.py").read_text()
        # Every `expect` in the script held: the loop carried each tool's output back.
        assert server.failures == []
        assert [r.turn for r in server.requests] == [0, 1, 2, 3]
        assert {"exec_command", "apply_patch"} <= {t["name"] for t in server.requests[0].body["tools"]}


async def test_malformed_tool_call_is_reported_to_the_model(tmp_path: Path) -> None:
    turns = [
        {"output": [{"type": "function_call", "name": "exec_command", "arguments": '{"cmd": "ls', "callId": "bad"}]},
        {
            # The SDK's exec_command answers unparsable arguments with a recoverable tool error.
            "expect": {"callOutputs": [{"callId": "bad", "contains": "Invalid tool arguments"}]},
            "output": [{"type": "message", "text": "Sorry, my command was garbled."}],
        },
    ]
    async with FakeModelServer(turns) as server:
        agent = SandboxAgent(name="dev", model=_model(server))
        config = RunConfig(
            sandbox=SandboxRunConfig(client=UnixLocalSandboxClient(), manifest=Manifest(root=str(tmp_path)))
        )
        result = await Runner.run(agent, "List files.", run_config=config)
        assert result.final_output == "Sorry, my command was garbled."
        assert server.failures == []


# -- errors --------------------------------------------------------------------------------------


async def test_rate_limit_is_retried_by_the_client() -> None:
    turns = [{"error": {"status": 429, "retryAfter": 0.05, "times": 2}}, *TOOL_TURNS]
    async with FakeModelServer(turns) as server:
        client = _client(server, max_retries=2)
        response = await client.responses.create(model=MODEL, input="weather?")
        assert isinstance(response.output[1], ResponseFunctionToolCall)
        assert [r.status for r in server.requests] == [429, 429, 200]
        status, text = await _post(server, {"model": MODEL, "input": "other conversation"})
        assert status == 429
        assert json.loads(text)["error"]["code"] == "rate_limit_exceeded"


async def test_rate_limit_beyond_retries_fails() -> None:
    turns = [{"error": {"status": 429, "retryAfter": 0.01, "times": 3}}, *TOOL_TURNS]
    async with FakeModelServer(turns) as server:
        client = _client(server, max_retries=2)
        with pytest.raises(openai.RateLimitError):
            await client.responses.create(model=MODEL, input="weather?")
        assert len(server.requests) == 3


async def test_server_error_retried_then_fatal() -> None:
    turns = [{"error": {"status": 500, "times": 1, "retryAfter": 0.01}}, *TOOL_TURNS]
    async with FakeModelServer(turns) as server:
        agent = Agent(name="w", model=_model(server), tools=[get_weather])
        result = await Runner.run(agent, "Weather?")
        assert result.final_output == "It is sunny in Oslo."
        assert [r.status for r in server.requests] == [500, 200, 200]

    turns = [{"error": {"status": 500, "times": 5, "retryAfter": 0.01}}, *TOOL_TURNS]
    async with FakeModelServer(turns) as server:
        agent = Agent(name="w", model=_model(server, max_retries=1), tools=[get_weather])
        with pytest.raises(openai.InternalServerError):
            await Runner.run(agent, "Weather?")


async def test_wrong_api_key_is_a_401() -> None:
    async with FakeModelServer(TOOL_TURNS, api_key="sk-right-key-1234") as server:
        agent = Agent(name="w", model=_model(server), tools=[get_weather])
        with pytest.raises(openai.AuthenticationError) as caught:
            await Runner.run(agent, "Weather?")
        assert caught.value.code == "invalid_api_key"
        assert "sk-test" not in str(caught.value)  # the key is masked, as OpenAI does
        assert len(server.requests) == 1  # 401 is not retried

        status, text = await _post(server, {"model": MODEL, "input": "x"}, Authorization="")
        assert status == 401
        assert "didn't provide an API key" in text
        status, _ = await _post(server, {"model": MODEL, "input": "x"}, Authorization="Bearer sk-right-key-1234")
        assert status == 200
        assert server.requests[-1].headers["authorization"] == "Bearer ***"


async def test_scripted_401() -> None:
    turns = [{"error": {"status": 401}}, *TOOL_TURNS]
    async with FakeModelServer(turns) as server:
        client = _client(server)
        with pytest.raises(openai.AuthenticationError):
            await client.responses.create(model=MODEL, input="weather?")


async def test_failed_expectation_and_exhausted_script_are_failures(tool_server: FakeModelServer) -> None:
    client = _client(tool_server)
    history: list[Any] = [
        {"role": "user", "content": "weather?"},
        {"type": "function_call", "name": "get_weather", "arguments": "{}", "call_id": "c1"},
        {"type": "function_call_output", "call_id": "c1", "output": "rainy"},
    ]
    with pytest.raises(openai.BadRequestError, match="lacks 'sunny in Oslo'"):
        await client.responses.create(model=MODEL, input=history)
    history += [{"role": "assistant", "content": "ok"}, {"role": "user", "content": "more?"}]
    with pytest.raises(openai.BadRequestError, match="script exhausted"):
        await client.responses.create(model=MODEL, input=history)
    assert len(tool_server.failures) == 2


# -- test endpoints, threads and the process -----------------------------------------------------


async def test_requests_and_reset_endpoints(tool_server: FakeModelServer) -> None:
    await _post(tool_server, {"model": MODEL, "input": "weather?"})
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{tool_server.url}/_requests") as resp:
            data = await resp.json()
        assert [r["turn"] for r in data["requests"]] == [0]
        assert data["requests"][0]["body"]["input"] == "weather?"
        assert data["failures"] == []
        async with session.post(f"{tool_server.url}/_reset") as resp:
            assert resp.status == 200
    assert tool_server.requests == []


def test_thread_runner_with_the_sync_client() -> None:
    with FakeModelThread(TOOL_TURNS) as server:
        with OpenAI(base_url=server.base_url, api_key="sk-test") as client:
            response = client.responses.create(model=MODEL, input="weather?")
        assert isinstance(response.output[1], ResponseFunctionToolCall)
        assert len(server.requests) == 1


def test_module_runs_as_a_process_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "paddock_harness.fakemodel", "--script", "demo", "--port", "0"]
    with (
        (tmp_path / "stderr.log").open("w") as stderr,
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env) as process,
    ):
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line.startswith("fake model listening on http://127.0.0.1:"), line
            base_url = line.split()[-1]
            with OpenAI(base_url=base_url, api_key="sk-test") as client:
                response = client.responses.create(model=MODEL, input="Write hello.py")
            assert isinstance(response.output[1], ResponseFunctionToolCall)
            with urllib.request.urlopen(base_url.removesuffix("/v1") + "/healthz") as health:
                assert json.load(health) == {"ok": True}
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
    assert "turn 0 of 'default'" in (tmp_path / "stderr.log").read_text()
