"""Pure parts of the Kubernetes sandbox client: status parsing, channel demux, options, state."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from agents.sandbox.manifest import Manifest
from agents.sandbox.snapshot import NoopSnapshot
from pydantic import ValidationError

from paddock_harness.sandbox import (
    KubernetesSandboxClient,
    KubernetesSandboxClientOptions,
    KubernetesSandboxSessionState,
    manifest_for_root,
)
from paddock_harness.sandbox.commands import PGID_MARKER
from paddock_harness.sandbox.exec_stream import (
    Demuxer,
    ExecStreamError,
    close_stdin_frame,
    exec_params,
    exit_code_from_status,
    stdin_frame,
)
from paddock_harness.sandbox.workspace_api import default_container, is_ready, pod_is_running, rfc3339_now
from paddock_operator.api import AgentWorkspaceSpec


def nonzero(code: str) -> dict[str, Any]:
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command, exit status {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code}]},
    }


@pytest.mark.parametrize("code", ["1", "2", "111", "127", "137", "255"])
def test_nonzero_exit_codes_are_exact(code: str) -> None:
    assert exit_code_from_status(nonzero(code)) == int(code)


def test_success_is_zero() -> None:
    assert exit_code_from_status({"metadata": {}, "status": "Success"}) == 0


@pytest.mark.parametrize(
    "status",
    [
        {"status": "Failure", "reason": "InternalError", "message": 'exec: "nope": executable file not found'},
        {"status": "Failure", "reason": "NonZeroExitCode", "details": {"causes": []}},
        {"status": "Failure", "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode"}]}},
        {"status": "Failure"},
    ],
)
def test_failures_without_exit_code_are_transport_errors(status: dict[str, Any]) -> None:
    with pytest.raises(ExecStreamError) as info:
        exit_code_from_status(status)
    assert info.value.retry_safe is False


def test_demux_separates_channels_and_strips_pgid_marker() -> None:
    d = Demuxer()
    d.feed(b"\x01")  # channel announcement frames carry no data
    d.feed(b"\x02" + PGID_MARKER[:5])
    d.feed(b"\x02" + PGID_MARKER[5:] + b"4242\nfirst err ")
    d.feed(b"\x01out1 ")
    d.feed(b"\x02line\n")
    d.feed(b"\x01out2")
    status = json.dumps(nonzero("3")).encode()
    d.feed(b"\x03" + status[:10])
    assert d.status is None
    d.feed(b"\x03" + status[10:])
    d.finish()
    assert d.pgid == 4242
    assert bytes(d.stdout) == b"out1 out2"
    assert bytes(d.stderr) == b"first err line\n"
    assert d.status is not None
    assert exit_code_from_status(d.status) == 3


def test_demux_without_marker_keeps_stderr_intact() -> None:
    d = Demuxer()
    d.feed(b"\x02sh: cannot cd\n")
    d.finish()
    assert d.pgid is None
    assert bytes(d.stderr) == b"sh: cannot cd\n"
    d2 = Demuxer()
    d2.feed(b"\x02\x1epa")  # a prefix of the marker, then the stream ends
    d2.finish()
    assert bytes(d2.stderr) == b"\x1epa"


def test_demux_binary_stdout_to_sink_and_limit() -> None:
    sink = io.BytesIO()
    d = Demuxer(stdout_sink=sink, max_output=10)
    payload = bytes(range(256)) * 4
    d.feed(b"\x01" + payload)  # a sink is not limited: it is the caller's spool
    assert sink.getvalue() == payload
    assert d.stdout_bytes == len(payload)
    with pytest.raises(ExecStreamError) as info:
        d.feed(b"\x02" + b"x" * 11)
    assert info.value.reason == "output_limit_exceeded"


def test_frames_and_params() -> None:
    assert stdin_frame(b"ab") == b"\x00ab"
    assert close_stdin_frame() == b"\xff\x00"
    params = exec_params(["sh", "-c", "a b"], container="c1", stdin=True)
    assert params[:3] == [("command", "sh"), ("command", "-c"), ("command", "a b")]
    assert ("stdin", "true") in params
    assert ("container", "c1") in params


def test_options_require_exactly_one_target() -> None:
    KubernetesSandboxClientOptions(namespace="ns", workspace="w")
    KubernetesSandboxClientOptions(namespace="ns", workspace_spec={"image": "x"})
    with pytest.raises(ValidationError):
        KubernetesSandboxClientOptions(namespace="ns")
    with pytest.raises(ValidationError):
        KubernetesSandboxClientOptions(namespace="ns", workspace="w", workspace_spec={"image": "x"})


def test_options_accept_the_api_model_and_round_trip() -> None:
    spec = AgentWorkspaceSpec.model_validate({"image": "img", "storage": {"mountPath": "/data"}})
    opts = KubernetesSandboxClientOptions(namespace="ns", workspace_spec=spec)
    wire = opts.spec_dict()
    assert wire["image"] == "img"
    assert wire["storage"]["mountPath"] == "/data"
    from_dict = KubernetesSandboxClientOptions(namespace="ns", workspace_spec={"image": "img"})
    assert from_dict.spec_dict()["storage"]["mountPath"] == "/workspace"
    with pytest.raises(ValidationError):
        KubernetesSandboxClientOptions(namespace="ns", workspace_spec={"storage": {}})  # no image
    dumped = opts.model_dump(mode="json")
    assert dumped["type"] == "kubernetes"
    parsed = KubernetesSandboxClientOptions.parse(dumped)
    assert isinstance(parsed, KubernetesSandboxClientOptions)
    assert parsed.spec_dict() == wire


def test_manifest_root_follows_the_volume() -> None:
    assert manifest_for_root(None, "/data").root == "/data"
    assert manifest_for_root(Manifest(), "/data").root == "/data"
    assert manifest_for_root(Manifest(root="/data/sub"), "/data").root == "/data/sub"
    assert manifest_for_root(Manifest(root="/workspace"), "/workspace").root == "/workspace"
    with pytest.raises(ValueError, match="outside the workspace volume"):
        manifest_for_root(Manifest(root="/elsewhere"), "/data")


def test_state_round_trips_through_the_client_and_holds_no_credentials() -> None:
    state = KubernetesSandboxSessionState(
        manifest=Manifest(root="/workspace"),
        snapshot=NoopSnapshot(id="x"),
        namespace="ns",
        workspace="w",
        pod_name="w-pod",
        pod_uid="123",
        container="main",
        created_by_client=True,
    )
    client = KubernetesSandboxClient()
    payload = client.serialize_session_state(state)
    text = json.dumps(payload)
    for secret_word in ("token", "password", "certificate", "Bearer"):
        assert secret_word not in text
    restored = client.deserialize_session_state(json.loads(text))
    assert isinstance(restored, KubernetesSandboxSessionState)
    assert (restored.namespace, restored.workspace, restored.pod_name, restored.pod_uid) == (
        "ns",
        "w",
        "w-pod",
        "123",
    )
    assert restored.created_by_client is True
    assert restored.delete_workspace_on_delete is False


def test_pod_and_workspace_predicates() -> None:
    pod: dict[str, Any] = {
        "metadata": {"annotations": {"kubectl.kubernetes.io/default-container": "b"}},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [{"name": "a", "state": {"waiting": {}}}, {"name": "b", "state": {"running": {}}}],
        },
    }
    assert default_container(pod) == "b"
    assert pod_is_running(pod, "b")
    assert not pod_is_running(pod, "a")
    pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert not pod_is_running(pod, "b")
    assert is_ready({"status": {"phase": "Ready", "podName": "p"}})
    assert not is_ready({"status": {"phase": "Ready"}})
    assert not is_ready({"status": {"phase": "Pending", "podName": "p"}})
    assert rfc3339_now().endswith("Z")
    assert "T" in rfc3339_now()
