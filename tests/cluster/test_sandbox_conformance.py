"""Conformance of the Kubernetes sandbox client against real pods (issue 5, section 1).

Most checks run against a plain pod on a PVC that the test builds itself (the client's exec layer
works against any pod); the AgentWorkspace checks use the CRDs and the session operator (fixture `paddock`).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from agents import RunConfig, Runner, set_tracing_disabled
from agents.editor import ApplyPatchOperation
from agents.run_config import SandboxRunConfig
from agents.sandbox import Manifest, SandboxAgent
from agents.sandbox.errors import (
    ExecTimeoutError,
    InvalidManifestPathError,
    WorkspaceReadNotFoundError,
)
from agents.sandbox.session.sandbox_session import SandboxSession
from agents.sandbox.snapshot import NoopSnapshotSpec
from agents.testing import ScriptedModel, assistant_message, function_call
from openai.types.responses import ResponseCustomToolCall
from paddock_helpers import Paddock

from paddock_harness.sandbox import (
    KubeApi,
    KubeConfigSource,
    KubernetesSandboxClient,
    KubernetesSandboxClientOptions,
    KubernetesSandboxSession,
    KubernetesSandboxSessionState,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

Kubectl = Callable[..., subprocess.CompletedProcess[str]]
ROOT = "/workspace"
UID = 1000


def sandbox_image() -> str:
    ref = os.environ.get("PADDOCK_SANDBOX_IMAGE")
    if ref:
        return ref
    cache = Path(os.environ.get("PADDOCK_CACHE") or Path.home() / ".cache" / "paddock")
    refs = cache / "images" / "refs.env"
    if refs.is_file():
        for line in refs.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "SANDBOX_IMAGE" and value.strip():
                return value.strip().strip("\"'")
    pytest.fail(f"no sandbox image: set PADDOCK_SANDBOX_IMAGE or build it with images/build.sh ({refs})")


def pod_body(name: str, claim: str) -> dict[str, Any]:
    """A locked-down pod like the operator's: non-root, read-only root, /tmp emptyDir, PVC workspace."""
    image = sandbox_image()
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "sandbox-conformance"}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "automountServiceAccountToken": False,
            "securityContext": {"fsGroup": UID, "seccompProfile": {"type": "RuntimeDefault"}},
            # The hostpath provisioner makes root-owned 0750 directories (fsGroup does not apply).
            "initContainers": [
                {
                    "name": "chown",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["chown", f"{UID}:{UID}", ROOT],
                    "securityContext": {"runAsUser": 0},
                    "volumeMounts": [{"name": "ws", "mountPath": ROOT}],
                }
            ],
            "containers": [
                {
                    "name": "sandbox",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["sleep", "infinity"],
                    "workingDir": "/",
                    "securityContext": {
                        "runAsUser": UID,
                        "runAsGroup": UID,
                        "runAsNonRoot": True,
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [{"name": "ws", "mountPath": ROOT}, {"name": "tmp", "mountPath": "/tmp"}],
                }
            ],
            "volumes": [
                {"name": "ws", "persistentVolumeClaim": {"claimName": claim}},
                {"name": "tmp", "emptyDir": {}},
            ],
        },
    }


@dataclass
class SandboxPod:
    namespace: str
    name: str
    claim: str
    kubectl: Kubectl

    def create(self) -> None:
        self.kubectl("apply", "-n", self.namespace, "-f", "-", input=json.dumps(pod_body(self.name, self.claim)))
        self.kubectl(
            "wait", "-n", self.namespace, f"pod/{self.name}", "--for=condition=Ready", "--timeout=180s", timeout=200
        )

    def recreate(self) -> None:
        self.kubectl("delete", "pod", "-n", self.namespace, self.name, "--wait=true", "--timeout=60s")
        self.create()

    def uid(self) -> str:
        return self.kubectl("get", "pod", "-n", self.namespace, self.name, "-o", "jsonpath={.metadata.uid}").stdout


@pytest.fixture
def sandbox_pod(kubectl: Kubectl, namespace: str) -> SandboxPod:
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "ws"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "256Mi"}}},
    }
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(claim))
    pod = SandboxPod(namespace, "sandbox", "ws", kubectl)
    pod.create()
    return pod


@pytest.fixture
async def kube_api(kube: Path) -> AsyncIterator[KubeApi]:
    api = await KubeApi.connect(KubeConfigSource(kubeconfig=str(kube)))
    yield api
    await api.aclose()


@pytest.fixture
async def session(kube: Path, sandbox_pod: SandboxPod) -> AsyncIterator[SandboxSession]:
    client = KubernetesSandboxClient(kubeconfig=str(kube))
    sess = await client.session_for_pod(
        namespace=sandbox_pod.namespace, pod=sandbox_pod.name, manifest=Manifest(root=ROOT)
    )
    await sess.start()
    yield sess
    await sess.aclose()
    await client.aclose()


async def test_exit_codes_and_stream_separation(session: SandboxSession) -> None:
    for code in (0, 1, 2, 111):
        result = await session.exec(f"echo to-out; echo to-err >&2; exit {code}")
        assert (result.exit_code, result.stdout, result.stderr) == (code, b"to-out\n", b"to-err\n")
    assert (await session.exec("kill -9 $$")).exit_code == 137
    assert (await session.exec("[ a -ef ]")).exit_code == 2
    assert (await session.exec("no-such-tool")).exit_code == 127
    assert (await session.exec("pwd")).stdout == f"{ROOT}\n".encode()


async def test_large_output(session: SandboxSession) -> None:
    result = await session.exec("head -c 10485760 /dev/urandom | tee /tmp/big | sha256sum >&2; cat /tmp/big")
    assert result.exit_code == 0
    assert len(result.stdout) == 10 * 1024 * 1024
    import hashlib

    assert result.stderr.split()[0].decode() == hashlib.sha256(result.stdout).hexdigest()


async def test_binary_round_trip_byte_exact(session: SandboxSession) -> None:
    blob = bytes(range(256)) * 4096 + os.urandom(1024 * 1024 + 3)
    await session.write(Path("data/blob.bin"), io.BytesIO(blob))
    assert (await session.read(Path("data/blob.bin"))).read() == blob
    import hashlib

    remote = await session.exec("sha256sum data/blob.bin")
    assert remote.stdout.split()[0].decode() == hashlib.sha256(blob).hexdigest()
    await session.write(Path("data/empty"), io.BytesIO(b""))
    assert (await session.read(Path("data/empty"))).read() == b""


async def test_missing_file_errors(session: SandboxSession) -> None:
    with pytest.raises(WorkspaceReadNotFoundError):
        await session.read(Path("missing.txt"))
    with pytest.raises(WorkspaceReadNotFoundError):
        await session.read_bounded(Path("missing.txt"), max_bytes=10)


async def test_timeout_kills_the_process(session: SandboxSession) -> None:
    tag = str(uuid.uuid4().int)[:9]
    with pytest.raises(ExecTimeoutError) as info:
        await session.exec(f"sleep 9{tag} & setsid sleep 8{tag} & sleep 7{tag}", timeout=2.0)
    assert info.value.context.get("killed") is True
    count = await session.exec(
        f"for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done 2>/dev/null"
        f" | grep -c 'sleep [789]{tag}' || true"
    )
    assert count.stdout.strip() == b"0", "a timed-out command survived"


async def test_workspace_escape_is_blocked(session: SandboxSession) -> None:
    await session.exec("ln -sfn /etc/passwd passwd-link && ln -sfn /etc etc-link")
    for path in ("../etc/passwd", "passwd-link", "etc-link/hostname"):
        with pytest.raises((InvalidManifestPathError, ValueError)):
            await session.read(Path(path))
    with pytest.raises((InvalidManifestPathError, ValueError)):
        await session.write(Path("etc-link/evil"), io.BytesIO(b"x"))
    with pytest.raises((InvalidManifestPathError, ValueError)):
        await session.write(Path("/tmp/outside"), io.BytesIO(b"x"))


async def test_apply_patch_add_update_delete(session: SandboxSession) -> None:
    await session.apply_patch(ApplyPatchOperation(type="create_file", path="src/a.txt", diff="+alpha\n+beta\n"))
    assert (await session.read(Path("src/a.txt"))).read().rstrip(b"\n") == b"alpha\nbeta"
    await session.apply_patch(
        ApplyPatchOperation(type="update_file", path="src/a.txt", diff="@@\n alpha\n-beta\n+gamma\n")
    )
    assert (await session.read(Path("src/a.txt"))).read().rstrip(b"\n") == b"alpha\ngamma"
    await session.apply_patch(ApplyPatchOperation(type="delete_file", path="src/a.txt"))
    assert (await session.exec("test -e src/a.txt")).exit_code == 1


async def test_persist_hydrate_round_trip(session: SandboxSession) -> None:
    blob = os.urandom(200_000)
    await session.write(Path("proj/bin.dat"), io.BytesIO(blob))
    await session.exec("cd proj && ln -s bin.dat alias && mkdir -p empty/dir && chmod 755 empty")
    archive = await session.persist_workspace()
    await session.exec("rm -rf proj")
    await session.hydrate_workspace(archive)
    assert (await session.read(Path("proj/bin.dat"))).read() == blob
    check = await session.exec("readlink proj/alias && test -d proj/empty/dir")
    assert (check.exit_code, check.stdout) == (0, b"bin.dat\n")


async def test_resume_with_a_fresh_client(kube: Path, session: SandboxSession) -> None:
    await session.write(Path("notes.txt"), io.BytesIO(b"before restart"))
    payload = json.loads(json.dumps(KubernetesSandboxClient().serialize_session_state(session.state)))
    client = KubernetesSandboxClient(kubeconfig=str(kube))  # a new process would build exactly this
    try:
        state = client.deserialize_session_state(payload)
        resumed = await client.resume(state)
        inner = resumed._inner
        assert isinstance(inner, KubernetesSandboxSession)
        assert inner._workspace_state_preserved_on_start()
        assert inner._system_state_preserved_on_start()
        await resumed.start()
        assert (await resumed.read(Path("notes.txt"))).read() == b"before restart"
        await client.delete(resumed)  # must leave the pod and its data alone
        assert (await session.read(Path("notes.txt"))).read() == b"before restart"
    finally:
        await client.aclose()


async def test_resume_after_the_pod_was_recreated(kube: Path, sandbox_pod: SandboxPod, session: SandboxSession) -> None:
    await session.write(Path("keep/me.txt"), io.BytesIO(b"on the volume"))
    old_uid = sandbox_pod.uid()
    payload = json.loads(json.dumps(KubernetesSandboxClient().serialize_session_state(session.state)))
    await asyncio.to_thread(sandbox_pod.recreate)
    assert sandbox_pod.uid() != old_uid
    client = KubernetesSandboxClient(kubeconfig=str(kube))
    try:
        resumed = await client.resume(client.deserialize_session_state(payload))
        state = resumed.state
        assert isinstance(state, KubernetesSandboxSessionState)
        assert state.pod_uid == sandbox_pod.uid()
        await resumed.start()
        assert (await resumed.read(Path("keep/me.txt"))).read() == b"on the volume"
        await resumed.write(Path("keep/new.txt"), io.BytesIO(b"ok"))  # helpers reinstalled in the new /tmp
    finally:
        await client.aclose()


def scripted_model() -> ScriptedModel:
    patch = "*** Begin Patch\n*** Add File: hello.sh\n+echo hello from paddock\n*** End Patch\n"
    return ScriptedModel(
        [
            {
                "output": [
                    ResponseCustomToolCall(
                        type="custom_tool_call", name="apply_patch", call_id="c1", input=patch, id="ctc1"
                    )
                ]
            },
            {"output": [function_call("exec_command", {"cmd": "sh hello.sh > out.txt && cat out.txt"}, call_id="c2")]},
            {"output": [assistant_message("done")]},
        ]
    )


async def test_runner_with_scripted_model(session: SandboxSession) -> None:
    set_tracing_disabled(True)
    model = scripted_model()
    agent = SandboxAgent(name="conformance", model=model, instructions="Edit and run.")
    result = await Runner.run(agent, "go", run_config=RunConfig(sandbox=SandboxRunConfig(session=session)))
    assert result.final_output == "done"
    assert model.remaining_steps == 0
    outputs = [str(getattr(item, "output", "")) for item in result.new_items]
    assert any("hello from paddock" in out for out in outputs)
    assert (await session.read(Path("out.txt"))).read() == b"hello from paddock\n"


# ---- AgentWorkspace mode (CRDs + operator) ------------------------------------------------


async def test_agentworkspace_create_attach_delete_and_runner(
    kube: Path, kube_api: KubeApi, namespace: str, paddock: Paddock
) -> None:
    # `paddock`: the CRDs are installed and the session operator reconciles this test's namespace.
    set_tracing_disabled(True)
    ws1, ws2 = (f"{prefix}-{uuid.uuid4().hex[:6]}" for prefix in ("keep", "temp"))
    client = KubernetesSandboxClient(kubeconfig=str(kube), activity_debounce_seconds=0.0)
    spec = {"image": sandbox_image(), "imagePullPolicy": "Never", "storage": {"size": "64Mi"}}
    try:
        # create from a spec and wait for Ready; delete() keeps it (delete_created_workspace=False)
        created = await client.create(
            options=KubernetesSandboxClientOptions(namespace=namespace, workspace_spec=spec, workspace_name=ws1)
        )
        await created.start()
        await created.write(Path("data.txt"), io.BytesIO(b"kept"))
        await client.delete(created)
        ws = await kube_api.get(f"/apis/paddock.dev/v1alpha1/namespaces/{namespace}/agentworkspaces/{ws1}")
        assert ws["status"].get("lastActivityTime"), "exec did not record activity"

        # attach by name through the Runner (the runner calls delete() at the end: data stays)
        model = scripted_model()
        agent = SandboxAgent(name="ws", model=model, instructions="x")
        run_config = RunConfig(
            sandbox=SandboxRunConfig(
                client=client,
                options=KubernetesSandboxClientOptions(namespace=namespace, workspace=ws1),
                snapshot=NoopSnapshotSpec(),
            )
        )
        result = await Runner.run(agent, "go", run_config=run_config)
        assert result.final_output == "done"
        attached = await client.create(options=KubernetesSandboxClientOptions(namespace=namespace, workspace=ws1))
        await attached.start()
        assert (await attached.read(Path("data.txt"))).read() == b"kept"
        assert (await attached.read(Path("out.txt"))).read() == b"hello from paddock\n"

        # the pod is recreated by the operator: the same session follows it, data intact
        assert isinstance(attached.state, KubernetesSandboxSessionState)
        old_pod = attached.state.pod_name
        payload = client.serialize_session_state(attached.state)
        await kube_api.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{old_pod}")
        resumed = await client.resume(client.deserialize_session_state(json.loads(json.dumps(payload))))
        await resumed.start()
        assert (await resumed.read(Path("data.txt"))).read() == b"kept"

        # a created workspace is deleted only when the options say so
        temp = await client.create(
            options=KubernetesSandboxClientOptions(
                namespace=namespace, workspace_spec=spec, workspace_name=ws2, delete_created_workspace=True
            )
        )
        await client.delete(temp)
        gone = await kube_api.get_or_none(f"/apis/paddock.dev/v1alpha1/namespaces/{namespace}/agentworkspaces/{ws2}")
        assert gone is None or gone["metadata"].get("deletionTimestamp")
    finally:
        await client.aclose()
