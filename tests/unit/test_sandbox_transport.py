"""The exec transport and the session against an in-process fake of the pods/exec endpoint.

The fake speaks the real channel protocol (v5/v4 subprotocols, channel-prefixed binary frames, a
metav1.Status on channel 3) and runs the argv as a local process, like the kubelet does in the
container. Like the kubelet, it does not kill the process when the websocket goes away. The
same checks run against real pods in tests/cluster/test_sandbox_conformance.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from agents.sandbox.errors import (
    ExecTimeoutError,
    ExecTransportError,
    InvalidManifestPathError,
    WorkspaceReadNotFoundError,
)
from agents.sandbox.manifest import Manifest
from agents.sandbox.session.sandbox_session import SandboxSession
from aiohttp import WSMsgType, web
from kubernetes import client as k8s_client

from paddock_harness.sandbox import (
    KubeApi,
    KubernetesSandboxClient,
    KubernetesSandboxSession,
    KubernetesSandboxSessionState,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


WS_PATH = "/apis/paddock.dev/v1alpha1/namespaces/{ns}/agentworkspaces"


class FakeWorkspaces:
    """AgentWorkspace objects with a watch, and an "operator" that makes them Ready shortly after."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.rv = 0
        self.changed = asyncio.Condition()
        self.status_patches: list[dict[str, Any]] = []
        self.ready_delay = 0.3

    def routes(self, app: web.Application) -> None:
        app.router.add_post(WS_PATH, self.create)
        app.router.add_get(WS_PATH, self.watch)
        app.router.add_get(WS_PATH + "/{name}", self.get)
        app.router.add_delete(WS_PATH + "/{name}", self.delete)
        app.router.add_patch(WS_PATH + "/{name}/status", self.patch_status)

    async def _bump(self, obj: dict[str, Any]) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        async with self.changed:
            self.changed.notify_all()

    async def create(self, request: web.Request) -> web.Response:
        body = await request.json()
        meta = body["metadata"]
        name = meta.get("name") or meta["generateName"] + f"{len(self.objects):05d}"
        meta["name"] = name
        body["status"] = {"phase": "Pending"}
        self.objects[name] = body
        await self._bump(body)

        async def become_ready() -> None:
            await asyncio.sleep(self.ready_delay)
            if name in self.objects:
                body["status"] = {"phase": "Ready", "podName": "p1"}
                await self._bump(body)

        asyncio.get_running_loop().create_task(become_ready())
        return web.json_response(body, status=201)

    async def get(self, request: web.Request) -> web.Response:
        obj = self.objects.get(request.match_info["name"])
        return web.json_response(obj) if obj else web.json_response({"reason": "NotFound"}, status=404)

    async def delete(self, request: web.Request) -> web.Response:
        obj = self.objects.pop(request.match_info["name"], None)
        return web.json_response(obj) if obj else web.json_response({"reason": "NotFound"}, status=404)

    async def patch_status(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/merge-patch+json"
        obj = self.objects.get(request.match_info["name"])
        if obj is None:
            return web.json_response({"reason": "NotFound"}, status=404)
        patch = await request.json()
        self.status_patches.append(patch)
        obj["status"].update(patch["status"])
        await self._bump(obj)
        return web.json_response(obj)

    async def watch(self, request: web.Request) -> web.StreamResponse:
        assert request.query.get("watch") == "1"
        name = request.query["fieldSelector"].removeprefix("metadata.name=")
        seen = int(request.query.get("resourceVersion") or 0)
        resp = web.StreamResponse()
        await resp.prepare(request)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(float(request.query.get("timeoutSeconds", "30"))):
                while True:
                    obj = self.objects.get(name)
                    if obj is not None and int(obj["metadata"]["resourceVersion"]) > seen:
                        seen = int(obj["metadata"]["resourceVersion"])
                        await resp.write(json.dumps({"type": "MODIFIED", "object": obj}).encode() + b"\n")
                    async with self.changed:
                        await self.changed.wait()
        return resp


class FakeApiServer:
    def __init__(self, protocols: tuple[str, ...]) -> None:
        self.protocols = protocols
        self.execs: list[list[str]] = []
        self.app = web.Application()
        self.app.router.add_get("/api/v1/namespaces/{ns}/pods/{pod}/exec", self.exec)
        self.app.router.add_get("/api/v1/namespaces/{ns}/pods/{pod}", self.pod)
        self.workspaces = FakeWorkspaces()
        self.workspaces.routes(self.app)
        self.pod_uid = "uid-1"
        self.runner = web.AppRunner(self.app)
        self.port = 0

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]

    async def pod(self, request: web.Request) -> web.Response:
        name = request.match_info["pod"]
        if name != "p1":
            return web.json_response({"kind": "Status", "reason": "NotFound", "code": 404}, status=404)
        return web.json_response(
            {
                "metadata": {"name": name, "uid": self.pod_uid},
                "spec": {"containers": [{"name": "sandbox"}]},
                "status": {"phase": "Running", "containerStatuses": [{"name": "sandbox", "state": {"running": {}}}]},
            }
        )

    async def exec(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["pod"] != "p1":
            return web.json_response({"reason": "NotFound"}, status=404)
        argv = request.query.getall("command")
        self.execs.append(argv)
        ws = web.WebSocketResponse(protocols=self.protocols, max_msg_size=0)
        await ws.prepare(request)
        use_stdin = request.query.get("stdin") == "true"
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if use_stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for channel in (1, 2, 3):
            await ws.send_bytes(bytes([channel]))

        async def pump(stream: asyncio.StreamReader | None, channel: int) -> None:
            assert stream is not None
            while chunk := await stream.read(32 * 1024):
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.send_bytes(bytes([channel]) + chunk)

        async def feed() -> None:
            async for msg in ws:
                if msg.type != WSMsgType.BINARY or proc.stdin is None:
                    continue
                channel, data = msg.data[0], msg.data[1:]
                if channel == 0:
                    with contextlib.suppress(ConnectionError):
                        proc.stdin.write(data)
                        await proc.stdin.drain()
                elif channel == 255 and data[:1] == b"\x00":
                    proc.stdin.close()

        feeder = asyncio.create_task(feed())
        await asyncio.gather(pump(proc.stdout, 1), pump(proc.stderr, 2))
        code = await proc.wait()
        code = 128 - code if code < 0 else code
        status: dict[str, Any] = {"metadata": {}, "status": "Success"}
        if code:
            status = {
                "metadata": {},
                "status": "Failure",
                "reason": "NonZeroExitCode",
                "message": f"command terminated with non-zero exit code: {code}",
                "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
            }
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_bytes(b"\x03" + json.dumps(status).encode())
            await ws.close()
        feeder.cancel()
        return ws

    def api(self) -> KubeApi:
        cfg = k8s_client.Configuration()
        cfg.host = f"http://127.0.0.1:{self.port}"
        return KubeApi(cfg)


@pytest.fixture(scope="module", params=[("v5.channel.k8s.io", "v4.channel.k8s.io"), ("v4.channel.k8s.io",)])
async def server(request: pytest.FixtureRequest) -> AsyncIterator[FakeApiServer]:
    srv = FakeApiServer(request.param)
    await srv.start()
    yield srv
    await srv.runner.cleanup()


@pytest.fixture
async def session(server: FakeApiServer, tmp_path: Path) -> AsyncIterator[SandboxSession]:
    root = tmp_path / "ws"
    root.mkdir()
    api = server.api()
    client = KubernetesSandboxClient(api=api)
    sess = await client.session_for_pod(namespace="ns", pod="p1", manifest=Manifest(root=str(root)))
    await sess.start()
    yield sess
    await sess.aclose()
    await api.aclose()


async def test_exit_codes_streams_and_cwd(session: SandboxSession) -> None:
    for code in (0, 1, 2, 111, 137):
        cmd = "kill -9 $$" if code == 137 else f"echo out; echo err >&2; exit {code}"
        result = await session.exec(cmd)
        assert result.exit_code == code
        if code != 137:
            assert (result.stdout, result.stderr) == (b"out\n", b"err\n")
    pwd = await session.exec("pwd")
    assert pwd.stdout.decode().strip() == session.state.manifest.root


async def test_large_output_and_binary_round_trip(session: SandboxSession) -> None:
    result = await session.exec("head -c 10485760 /dev/zero")
    assert result.exit_code == 0
    assert len(result.stdout) == 10 * 1024 * 1024
    blob = os.urandom(3 * 1024 * 1024 + 7) + bytes(range(256))
    await session.write(Path("bin/blob.dat"), io.BytesIO(blob))
    back = await session.read(Path("bin/blob.dat"))
    assert back.read() == blob
    assert (Path(session.state.manifest.root) / "bin/blob.dat").read_bytes() == blob


async def test_missing_file_and_escapes(session: SandboxSession, tmp_path: Path) -> None:
    with pytest.raises(WorkspaceReadNotFoundError):
        await session.read(Path("nope.txt"))
    (tmp_path / "outside.txt").write_text("secret")
    os.symlink(tmp_path / "outside.txt", Path(session.state.manifest.root) / "link")
    with pytest.raises(InvalidManifestPathError):  # resolved inside the "pod" by the SDK helper
        await session.read(Path("link"))
    with pytest.raises(InvalidManifestPathError):
        await session.read(Path("../outside.txt"))


async def test_timeout_kills_the_process_group(session: SandboxSession, server: FakeApiServer) -> None:
    marker = f"{os.getpid()}{len(server.execs)}"
    with pytest.raises(ExecTimeoutError) as info:
        await session.exec(f"sleep 7{marker} & sleep 8{marker}", timeout=1.0)
    assert info.value.context.get("killed") is True
    ps = await session.exec(f"ps -eo args | grep -c '[s]leep [78]{marker}' || true")
    assert ps.stdout.strip() == b"0"


async def test_persist_hydrate_round_trip(session: SandboxSession) -> None:
    await session.write(Path("a/x.txt"), io.BytesIO(b"hello"))
    await session.exec("ln -s a/x.txt rel-link && mkdir -p empty")
    archive = await session.persist_workspace()
    with tarfile.open(fileobj=archive, mode="r:*") as tar:
        names = tar.getnames()
    archive.seek(0)
    assert "a/x.txt" in names
    assert all(not n.startswith("/") for n in names)
    await session.exec("rm -rf a rel-link empty")
    await session.hydrate_workspace(archive)
    assert (await session.read(Path("a/x.txt"))).read() == b"hello"
    link = await session.exec("readlink rel-link && test -d empty")
    assert link.exit_code == 0
    assert link.stdout.strip() == b"a/x.txt"


async def test_apply_patch(session: SandboxSession) -> None:
    from agents.editor import ApplyPatchOperation

    await session.apply_patch(ApplyPatchOperation(type="create_file", path="p.txt", diff="+one\n+two\n"))
    await session.apply_patch(ApplyPatchOperation(type="update_file", path="p.txt", diff="@@\n one\n-two\n+three\n"))
    # The SDK's V4A editor decides about the final newline; the content is what matters here.
    assert (await session.read(Path("p.txt"))).read().rstrip(b"\n") == b"one\nthree"
    await session.apply_patch(ApplyPatchOperation(type="delete_file", path="p.txt"))
    assert (await session.exec("test -e p.txt")).exit_code == 1


async def test_transport_errors(server: FakeApiServer) -> None:
    api = server.api()
    try:
        inner = KubernetesSandboxSession.bind(api, namespace="ns", pod="gone")
        with pytest.raises(ExecTransportError) as info:
            await inner.exec("true")
        assert info.value.context["retry_safe"] is True
        assert info.value.context["http_status"] == 404
    finally:
        await api.aclose()


async def test_runner_with_scripted_model(session: SandboxSession) -> None:
    from agents import RunConfig, Runner, set_tracing_disabled
    from agents.run_config import SandboxRunConfig
    from agents.sandbox import SandboxAgent
    from agents.testing import ScriptedModel, assistant_message, function_call
    from openai.types.responses import ResponseCustomToolCall

    set_tracing_disabled(True)
    patch = "*** Begin Patch\n*** Add File: hello.sh\n+echo hi from paddock\n*** End Patch\n"
    model = ScriptedModel(
        [
            {
                "output": [
                    ResponseCustomToolCall(
                        type="custom_tool_call", name="apply_patch", call_id="c1", input=patch, id="t1"
                    )
                ]
            },
            {"output": [function_call("exec_command", {"cmd": "sh hello.sh > out.txt; cat out.txt"}, call_id="c2")]},
            {"output": [assistant_message("done")]},
        ]
    )
    agent = SandboxAgent(name="t", model=model, instructions="x")
    result = await Runner.run(agent, "go", run_config=RunConfig(sandbox=SandboxRunConfig(session=session)))
    assert result.final_output == "done"
    assert model.remaining_steps == 0
    assert (Path(session.state.manifest.root) / "out.txt").read_text() == "hi from paddock\n"


async def test_workspace_create_ready_activity_and_delete_policy(server: FakeApiServer) -> None:
    from paddock_harness.sandbox import KubernetesSandboxClientOptions, WorkspaceError

    api = server.api()
    client = KubernetesSandboxClient(api=api, activity_debounce_seconds=0.0)
    fake = server.workspaces
    try:
        spec = {"image": "img", "storage": {"mountPath": "/data"}}
        options = KubernetesSandboxClientOptions(namespace="ns", workspace_spec=spec)
        sess = await client.create(options=options)  # Pending at first: Ready arrives through the watch
        state = sess.state
        assert isinstance(state, KubernetesSandboxSessionState)
        assert (state.workspace, state.pod_name, state.pod_uid, state.container) == (
            "sandbox-00000",
            "p1",
            "uid-1",
            "sandbox",
        )
        assert state.manifest.root == "/data"
        assert state.created_by_client
        result = await sess.exec("true", shell=False)
        assert result.exit_code == 0
        await asyncio.sleep(0.05)  # the activity patch runs in the background
        assert fake.status_patches
        assert fake.objects["sandbox-00000"]["status"]["lastActivityTime"].endswith("Z")
        await client.delete(sess)
        assert "sandbox-00000" in fake.objects  # created, but the options did not ask for deletion

        attached = await client.create(
            options=KubernetesSandboxClientOptions(namespace="ns", workspace="sandbox-00000")
        )
        await client.delete(attached)
        assert "sandbox-00000" in fake.objects  # attached: never deleted

        doomed = await client.create(
            options=KubernetesSandboxClientOptions(namespace="ns", workspace_spec=spec, delete_created_workspace=True)
        )
        assert isinstance(doomed.state, KubernetesSandboxSessionState)
        name = doomed.state.workspace
        await client.delete(doomed)
        assert name not in fake.objects

        with pytest.raises(WorkspaceError, match="not found"):
            await client.create(options=KubernetesSandboxClientOptions(namespace="ns", workspace="nope"))
        fake.objects["sandbox-00000"]["spec"]["lifecycle"] = {"suspend": True}
        fake.objects["sandbox-00000"]["status"]["phase"] = "Suspended"
        with pytest.raises(WorkspaceError, match="suspended"):
            await client.create(options=KubernetesSandboxClientOptions(namespace="ns", workspace="sandbox-00000"))
    finally:
        await client.aclose()
        await api.aclose()


async def test_resume_same_pod_and_recreated_pod(server: FakeApiServer, tmp_path: Path) -> None:
    from paddock_harness.sandbox import KubernetesSandboxClientOptions

    api = server.api()
    client = KubernetesSandboxClient(api=api)
    root = tmp_path / "vol"
    root.mkdir()
    try:
        options = KubernetesSandboxClientOptions(
            namespace="ns", workspace_spec={"image": "i", "storage": {"mountPath": str(root)}}
        )
        sess = await client.create(options=options)
        await sess.start()
        await sess.write(Path("f.txt"), io.BytesIO(b"persisted"))
        payload = json.loads(json.dumps(client.serialize_session_state(sess.state)))

        fresh = KubernetesSandboxClient(api=api)  # "after a harness restart"
        same = await fresh.resume(fresh.deserialize_session_state(payload))
        inner = same._inner
        assert isinstance(inner, KubernetesSandboxSession)
        assert inner._workspace_state_preserved_on_start()
        assert inner._system_state_preserved_on_start()
        await same.start()
        assert (await same.read(Path("f.txt"))).read() == b"persisted"

        server.pod_uid = "uid-2"  # the operator recreated the pod (same name, new uid)
        moved = await fresh.resume(fresh.deserialize_session_state(dict(payload)))
        inner = moved._inner
        assert isinstance(inner, KubernetesSandboxSession)
        assert inner._workspace_state_preserved_on_start()
        assert not inner._system_state_preserved_on_start()
        assert inner.state.pod_uid == "uid-2"
        assert inner.state.workspace_root_ready is False
        await moved.start()
        assert (await moved.read(Path("f.txt"))).read() == b"persisted"
    finally:
        server.pod_uid = "uid-1"
        await client.aclose()
        await api.aclose()


async def test_bearer_token_of_in_cluster_and_kubeconfig_configs() -> None:
    # kubernetes>=3x stores tokens under "BearerToken" (in-cluster config does): a regression here made
    # every in-cluster request anonymous.
    for key in ("BearerToken", "authorization"):
        cfg = k8s_client.Configuration(host="https://127.0.0.1:6443")
        cfg.api_key[key] = "bearer abc"
        assert await KubeApi(cfg).auth_headers() == {"Authorization": "bearer abc"}
