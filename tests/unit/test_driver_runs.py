"""Whole runs through the driver: the real Agents SDK runner, the fake model server, a UnixLocal sandbox
per workspace directory, and an in-memory Kubernetes API (status, checkpoints, transcript, leases)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from agents import set_tracing_disabled

from paddock_harness.driver import protocol
from paddock_harness.driver.checkpoint import CheckpointStore
from paddock_harness.driver.controller import Controller
from paddock_harness.driver.memory import InMemoryKube
from paddock_harness.driver.run import DriverDeps
from paddock_harness.driver.sandboxes import LocalSandboxProvider
from paddock_harness.driver.settings import HarnessSettings
from paddock_harness.driver.transcript import aread_transcript
from paddock_harness.fakemodel import FakeModelServer, builtin_script

set_tracing_disabled(True)
RUN_API = "paddock.dev/v1alpha1"
NS = "team"
KEY = "sk-harness-default-key-123456"


class World:
    def __init__(self, tmp: Path) -> None:
        self.kube = InMemoryKube()
        self.tmp = tmp
        self.sandboxes = LocalSandboxProvider(tmp / "workspaces")

    def settings(self, identity: str = "harness-a", **overrides: Any) -> HarnessSettings:
        values: dict[str, Any] = {
            "identity": identity,
            "default_api_key": KEY,
            "status_interval_seconds": 0.0,
            "model_max_retries": 3,
            "model_timeout_seconds": 30.0,
            "lease_duration_seconds": 15.0,
        }
        values.update(overrides)
        return HarnessSettings(**values)

    def controller(self, identity: str = "harness-a", **overrides: Any) -> Controller:
        return Controller(DriverDeps(self.kube, self.settings(identity, **overrides), self.sandboxes))

    def add_run(self, name: str, base_url: str, **spec: Any) -> dict[str, Any]:
        body = {
            "apiVersion": RUN_API,
            "kind": "AgentRun",
            "metadata": {"name": name, "namespace": NS, "generation": 1},
            "spec": {
                "workspaceRef": {"name": f"ws-{name}"},
                "prompt": spec.pop("prompt", "Write hello.py and run it."),
                "model": {"baseURL": base_url, **spec.pop("model", {})},
                **spec,
            },
            "status": {"phase": "Running", "workspaceName": f"ws-{name}", "startTime": "2026-01-01T00:00:00Z"},
        }
        return self.kube.put(body)

    def run(self, name: str) -> dict[str, Any]:
        body = self.kube.peek(RUN_API, "AgentRun", NS, name)
        assert body is not None
        return body

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.run(name).get("status") or {})

    def root(self, name: str) -> Path:
        return self.sandboxes.root(NS, f"ws-{name}")

    async def drive(self, name: str, controller: Controller | None = None) -> Controller:
        controller = controller or self.controller()
        controller.observe("MODIFIED", self.run(name))
        await controller.settle()
        return controller

    def condition(self, name: str, type_: str) -> dict[str, Any] | None:
        return next((c for c in self.status(name).get("conditions", []) if c["type"] == type_), None)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


@pytest_asyncio.fixture(loop_scope="function")
async def demo() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer(builtin_script("demo")) as server:
        yield server


def exec_turn(cmd: str, call_id: str, **extra: Any) -> dict[str, Any]:
    return {"output": [{"type": "exec_command", "cmd": cmd, "callId": call_id}], **extra}


def final_turn(text: str, **extra: Any) -> dict[str, Any]:
    return {"output": [{"type": "message", "text": text, "phase": "final_answer"}], **extra}


def everything_written(world: World) -> str:
    """All harness-written state, to check that no key leaks into it."""
    return json.dumps([o for o in world.kube.objects.values() if o["kind"] != "Secret"]) + json.dumps(world.kube.events)


async def decoded_checkpoint(world: World, name: str) -> str:
    checkpoint = await CheckpointStore(world.kube, world.run(name)).load()
    assert checkpoint is not None
    return checkpoint.run_state + json.dumps(checkpoint.sandbox_session)


async def test_demo_run_succeeds(world: World, demo: FakeModelServer) -> None:
    world.add_run("demo", demo.base_url)
    await world.drive("demo")

    status = world.status("demo")
    assert status["phase"] == "Succeeded", status
    assert status["turns"] == 4
    assert status["toolCalls"] == 3
    assert status["usage"]["inputTokens"] == 1850 + 2100 + 2260 + 2390
    assert status["usage"]["totalTokens"] == status["usage"]["inputTokens"] + status["usage"]["outputTokens"]
    assert "hello.py" in status["output"]
    assert status["completionTime"]
    assert world.condition("demo", "Finished")["reason"] == "Succeeded"  # type: ignore[index]
    assert (world.root("demo") / "hello.py").exists()
    assert demo.failures == []
    # every model request names the run; the key is the harness default
    requests = demo.model_requests()
    assert {r.headers.get(protocol.RUN_HEADER) for r in requests} == {f"{NS}/demo"}
    # transcript: prompt, tool calls with outputs, the final answer
    entries = await aread_transcript(world.kube, NS, "demo")
    kinds = [e["kind"] for e in entries]
    assert kinds[0] == "prompt"
    assert kinds[-1] == "final"
    calls = [e for e in entries if e["kind"] == "tool_call"]
    assert [c["callId"] for c in calls] == ["call_ls", "call_write", "call_run"]
    assert calls[0]["text"] == "ls -la"
    outputs = {e["callId"]: e["text"] for e in entries if e["kind"] == "tool_output"}
    assert "Hello from Paddock" in outputs["call_run"]
    assert [e["index"] for e in entries] == list(range(len(entries)))
    # objects are owned by the run; the claim was released; the key appears nowhere
    run_uid = world.run("demo")["metadata"]["uid"]
    for kind in ("ConfigMap", "Lease"):
        for obj in world.kube.of_kind(kind):
            assert obj["metadata"]["ownerReferences"][0]["uid"] == run_uid
    lease = world.kube.peek("coordination.k8s.io/v1", "Lease", NS, protocol.lease_name("demo"))
    assert lease is not None
    assert "holderIdentity" not in lease["spec"]
    assert KEY not in everything_written(world)
    saved = await decoded_checkpoint(world, "demo")
    assert "call_run" in saved  # the checkpoint holds the conversation ...
    assert KEY not in saved  # ... but never the key


async def test_approval_pause_then_approve(world: World) -> None:
    script = [
        exec_turn("echo hi > a.txt", "c_write"),
        exec_turn("rm a.txt", "c_rm"),
        final_turn("removed", expect={"callOutputs": [{"callId": "c_rm", "contains": "exited with code 0"}]}),
    ]
    async with FakeModelServer(script) as server:
        world.add_run("gated", server.base_url, approval={"policy": "CommandPatterns", "commandPatterns": ["rm *"]})
        controller = await world.drive("gated")

        status = world.status("gated")
        assert status["phase"] == "AwaitingApproval"
        assert status["pendingApprovals"] == [
            {"callId": "c_rm", "tool": "exec_command", "command": "rm a.txt", "requestedTime": mock_any()}
        ]
        assert world.condition("gated", "Approval")["reason"] == "ApprovalRequired"  # type: ignore[index]
        assert (world.root("gated") / "a.txt").exists()  # the auto-approved command ran, the gated one not

        # a name that is not pending is ignored (and reported), the real one approves
        world.kube.set_annotations(RUN_API, "AgentRun", NS, "gated", {protocol.ANNOTATION_APPROVE: "c_rm,bogus"})
        await world.drive("gated", controller)

        status = world.status("gated")
        assert status["phase"] == "Succeeded", status
        assert status["pendingApprovals"] == []
        assert not (world.root("gated") / "a.txt").exists()
        assert protocol.ANNOTATION_APPROVE not in (world.run("gated")["metadata"].get("annotations") or {})
        reasons = [e["reason"] for e in world.kube.events]
        assert "ApprovalRequired" in reasons
        assert "Approved" in reasons
        assert "UnknownApproval" in reasons
        assert server.failures == []
        entries = await aread_transcript(world.kube, NS, "gated")
        assert any(e["kind"] == "approval" and e["decision"] == "approved" for e in entries)


async def test_reject_is_reported_to_the_model(world: World) -> None:
    script = [
        exec_turn("rm -rf data", "c_rm"),
        final_turn("ok, kept it", expect={"callOutputs": [{"callId": "c_rm", "contains": "keep the data"}]}),
    ]
    async with FakeModelServer(script) as server:
        world.add_run("rej", server.base_url, approval={"policy": "Always"})
        (world.root("rej") / "data").mkdir(parents=True)
        controller = await world.drive("rej")
        assert world.status("rej")["phase"] == "AwaitingApproval"

        world.kube.set_annotations(
            RUN_API,
            "AgentRun",
            NS,
            "rej",
            {protocol.ANNOTATION_REJECT: "all", protocol.ANNOTATION_REJECT_REASON: "keep the data"},
        )
        await world.drive("rej", controller)
        assert world.status("rej")["phase"] == "Succeeded", world.status("rej")
        assert (world.root("rej") / "data").is_dir()
        assert server.failures == []
        annotations = world.run("rej")["metadata"].get("annotations") or {}
        assert not set(annotations) & set(protocol.APPROVAL_ANNOTATIONS)


async def test_401_from_secret_key_fails_clearly(world: World) -> None:
    async with FakeModelServer([final_turn("never")], api_key="the-right-key") as server:
        world.kube.put(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "model-key", "namespace": NS},
                "data": {"key": base64.b64encode(b"sk-wrong-key-000000").decode()},
            }
        )
        world.add_run("auth", server.base_url, model={"apiKeySecretRef": {"name": "model-key", "key": "key"}})
        await world.drive("auth")
        status = world.status("auth")
        assert status["phase"] == "Failed"
        assert status["lastError"]["reason"] == "ModelAuthenticationFailed"
        assert "401" in status["lastError"]["message"]
        assert "sk-wrong-key-000000" not in everything_written(world)
        assert [r.status for r in server.requests] == [401]  # 401 is not retried


async def test_missing_secret_fails(world: World) -> None:
    world.add_run("nokey", "http://127.0.0.1:9/v1", model={"apiKeySecretRef": {"name": "absent", "key": "k"}})
    await world.drive("nokey")
    assert world.status("nokey")["lastError"]["reason"] == "ModelCredentialsUnavailable"


async def test_429_is_retried_with_backoff(world: World) -> None:
    script = [{"error": {"status": 429, "retryAfter": 0.05, "times": 2}}, final_turn("done after retries")]
    async with FakeModelServer(script) as server:
        world.add_run("limited", server.base_url)
        await world.drive("limited")
        assert world.status("limited")["phase"] == "Succeeded"
        assert [r.status for r in server.requests] == [429, 429, 200]


async def test_429_after_retries_fails_rate_limited(world: World) -> None:
    script = [{"error": {"status": 429, "retryAfter": 0.01, "times": 10}}, final_turn("never")]
    async with FakeModelServer(script) as server:
        world.add_run("throttled", server.base_url)
        await world.drive("throttled", world.controller(model_max_retries=2))
        status = world.status("throttled")
        assert status["lastError"]["reason"] == "RateLimited"
        assert "after 2 retries" in status["lastError"]["message"]
        assert len(server.requests) == 3


async def test_max_turns(world: World) -> None:
    script = [exec_turn(f"echo {i}", f"c{i}") for i in range(5)] + [final_turn("never")]
    async with FakeModelServer(script) as server:
        world.add_run("loop", server.base_url, limits={"maxTurns": 2})
        await world.drive("loop")
        status = world.status("loop")
        assert status["phase"] == "Failed"
        assert status["lastError"]["reason"] == "MaxTurnsExceeded"
        assert len(server.model_requests()) == 2


async def test_max_total_tokens(world: World) -> None:
    usage = {"inputTokens": 600, "outputTokens": 10}
    script = [exec_turn("echo 1", "c1", usage=usage), exec_turn("echo 2", "c2", usage=usage), final_turn("x")]
    async with FakeModelServer(script) as server:
        world.add_run("budget", server.base_url, limits={"maxTotalTokens": 1000})
        await world.drive("budget")
        status = world.status("budget")
        assert status["lastError"]["reason"] == "MaxTotalTokensExceeded", status
        assert len(server.model_requests()) == 2


async def test_restart_resumes_without_rerunning_commands(world: World) -> None:
    script = [
        exec_turn("echo ran >> count.txt", "c_count"),
        {**exec_turn("echo second >> log.txt", "c_2"), "delaySeconds": 2},
        final_turn("done"),
    ]
    async with FakeModelServer(script) as server:
        world.add_run("crash", server.base_url)
        first = world.controller("harness-a")
        first.observe("MODIFIED", world.run("crash"))
        for _ in range(200):  # wait until the second model call is in flight
            await asyncio.sleep(0.05)
            if len(server.requests) >= 2:
                break
        await first.shutdown()  # the harness process dies mid-turn
        assert (world.root("crash") / "count.txt").read_text() == "ran\n"
        assert world.status("crash")["phase"] == "Running"

        second = world.controller("harness-b")  # a new process: resumes from the checkpoint
        server.script.scenarios[0].turns[1].delay_seconds = 0
        await world.drive("crash", second)
        assert world.status("crash")["phase"] == "Succeeded", world.status("crash")
        assert (world.root("crash") / "count.txt").read_text() == "ran\n"  # not run twice
        assert (world.root("crash") / "log.txt").read_text() == "second\n"
        assert server.failures == []


async def test_restart_while_command_in_flight_is_reported_not_rerun(world: World) -> None:
    script = [
        exec_turn("rm precious.txt", "c_rm"),
        final_turn("noted", expect={"callOutputs": [{"callId": "c_rm", "contains": "harness"}]}),
    ]
    async with FakeModelServer(script) as server:
        world.add_run("inflight", server.base_url, approval={"policy": "Always"})
        world.root("inflight").mkdir(parents=True)
        (world.root("inflight") / "precious.txt").write_text("x")
        await world.drive("inflight")
        assert world.status("inflight")["phase"] == "AwaitingApproval"
        # What a crash right after releasing the approved call leaves behind: the call marked in flight.
        store = CheckpointStore(world.kube, world.run("inflight"))
        checkpoint = await store.load()
        assert checkpoint is not None
        await store.update_meta(checkpoint.meta.model_copy(update={"inflight": ["c_rm"]}))
        world.kube.set_status(RUN_API, "AgentRun", NS, "inflight", {"phase": "Running", "pendingApprovals": []})

        await world.drive("inflight")
        status = world.status("inflight")
        assert status["phase"] == "Succeeded", status
        resumed = world.condition("inflight", "Resumed")
        assert resumed is not None
        assert resumed["reason"] == "CommandInterrupted"
        assert "may have been interrupted by a harness restart" in resumed["message"]
        assert (world.root("inflight") / "precious.txt").exists()  # at most once: not re-run
        assert server.failures == []


async def test_operator_cancel_stops_the_drive(world: World) -> None:
    async with FakeModelServer([{**final_turn("late"), "delaySeconds": 3}]) as server:
        world.add_run("cancelme", server.base_url)
        controller = world.controller()
        controller.observe("MODIFIED", world.run("cancelme"))
        for _ in range(100):
            await asyncio.sleep(0.05)
            if server.requests:
                break
        world.kube.set_status(RUN_API, "AgentRun", NS, "cancelme", {"phase": "Cancelled"})
        controller.observe("MODIFIED", world.run("cancelme"))
        await asyncio.wait_for(controller.settle(), timeout=1)  # promptly, not after the model answers
        assert world.status("cancelme")["phase"] == "Cancelled"  # the harness did not overwrite it


async def test_two_replicas_never_drive_the_same_run(world: World, demo: FakeModelServer) -> None:
    world.add_run("shared", demo.base_url)
    a, b = world.controller("harness-a"), world.controller("harness-b")
    a.observe("MODIFIED", world.run("shared"))
    b.observe("MODIFIED", world.run("shared"))
    await asyncio.gather(a.settle(), b.settle())
    assert world.status("shared")["phase"] == "Succeeded"
    assert len(demo.model_requests()) == 4  # each turn asked once: only one replica drove
    claimed = world.condition("shared", "Claimed")
    assert claimed is not None


class _Any:
    def __eq__(self, other: object) -> bool:
        return True


def mock_any() -> Any:
    return _Any()
