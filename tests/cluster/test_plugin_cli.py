"""kubectl-paddock against a real cluster with the operator running: ls, run --no-follow, approve/reject,
logs, shell (through kubectl and through the client's own exec stream) and its errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import kubectl_binary
from paddock_helpers import GROUP, VERSION, Paddock, run_manifest, sandbox_image, wait_for, workspace_manifest

from paddock_harness.cli import main
from paddock_harness.driver import protocol
from paddock_harness.driver.transcript import encode_entry, page_name


def cli(kube: Path, namespace: str, *args: str) -> list[str]:
    return ["--kubeconfig", str(kube), "-n", namespace, *args]


def ready_workspace(paddock: Paddock, name: str = "demo") -> dict[str, Any]:
    paddock.create(workspace_manifest(name))
    return paddock.wait_workspace_phase(name, "Ready", timeout=90)


def test_ls_shows_workspaces_and_runs(paddock: Paddock, kube: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ready_workspace(paddock)
    paddock.create(run_manifest("first", workspaceRef={"name": "demo"}))
    assert main(cli(kube, paddock.namespace, "ls")) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "WORKSPACES"
    assert out[1].split() == ["NAME", "PHASE", "READY", "EGRESS", "RUN", "BY", "AGE"]
    assert out[2].split()[:5] == ["demo", "Ready", "True", "None", "-"]
    runs = out[out.index("RUNS") + 1 :]
    assert runs[1].split()[0] == "first"
    assert runs[1].split()[2] == "demo"

    assert main(["--kubeconfig", str(kube), "ls", "-A"]) == 0
    wide = capsys.readouterr().out
    assert any(line.split()[:2] == [paddock.namespace, "demo"] for line in wide.splitlines())


def test_run_no_follow_creates_a_valid_run(paddock: Paddock, kube: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ready_workspace(paddock)
    args = ["run", "--workspace", "demo", "--model", "gpt-5-mini", "--base-url", "http://127.0.0.1:9/v1"]
    args += ["--max-turns", "3", "--timeout", "600", "--approval", "Always", "--no-follow", "say", "hello"]
    assert main(cli(kube, paddock.namespace, *args)) == 0
    out = capsys.readouterr().out
    name = out.split()[0].removeprefix("agentrun/")
    assert name.startswith("demo-")
    assert f"kubectl paddock -n {paddock.namespace} logs {name} -f" in out
    run = paddock.run(name)
    assert run is not None
    assert run["spec"]["prompt"] == "say hello"
    assert run["spec"]["workspaceRef"] == {"name": "demo"}
    assert run["spec"]["model"] == {"name": "gpt-5-mini", "baseURL": "http://127.0.0.1:9/v1"}
    assert run["spec"]["limits"]["maxTurns"] == 3
    assert run["spec"]["approval"]["policy"] == "Always"
    paddock.wait_run_phase(name, "Running", timeout=60)  # the operator accepted it and gave it the workspace

    image = ["run", "--image", sandbox_image(), "--name", "throwaway", "--no-follow", "look around"]
    assert main(cli(kube, paddock.namespace, *image)) == 0
    assert "agentrun/throwaway created" in capsys.readouterr().out
    workspace = wait_for("the run's own workspace", lambda: paddock.workspace("throwaway"), timeout=30)
    assert workspace["metadata"]["ownerReferences"][0]["kind"] == "AgentRun"


def set_status(paddock: Paddock, name: str, status: dict[str, Any]) -> None:
    """Write status the way the harness does (the operator leaves a claimed run's phase alone)."""
    paddock.custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, paddock.namespace, "agentruns", name, {"status": status}
    )


def test_approve_and_reject_write_the_protocol_annotations(
    paddock: Paddock, kube: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paddock.create(run_manifest("gated", workspaceRef={"name": "absent"}))
    ns = paddock.namespace
    assert main(cli(kube, ns, "approve", "gated")) == 1
    assert "no tool calls waiting for approval" in capsys.readouterr().err

    pending = [
        {"callId": "call_a", "tool": "exec_command", "command": "rm -rf build"},
        {"callId": "call_b", "tool": "apply_patch", "command": "*** Begin Patch"},
    ]
    set_status(paddock, "gated", {"phase": "AwaitingApproval", "pendingApprovals": pending})
    assert main(cli(kube, ns, "approve", "gated", "call_x")) == 1
    assert "not pending on gated: call_x (pending: call_a, call_b)" in capsys.readouterr().err

    assert main(cli(kube, ns, "approve", "gated", "call_a")) == 0
    assert "Approved call_a (exec_command): rm -rf build" in capsys.readouterr().out
    annotations = (paddock.run("gated") or {})["metadata"]["annotations"]
    assert annotations[protocol.ANNOTATION_APPROVE] == "call_a"

    assert main(cli(kube, ns, "reject", "gated", "--reason", "not today")) == 0
    out = capsys.readouterr().out
    assert "Rejected call_a" in out
    assert "Rejected call_b" in out
    annotations = (paddock.run("gated") or {})["metadata"]["annotations"]
    assert annotations[protocol.ANNOTATION_REJECT] == "call_a,call_b"
    assert annotations[protocol.ANNOTATION_REJECT_REASON] == "not today"
    decided = protocol.parse_decisions(annotations, ["call_a", "call_b"])
    assert decided.rejected == {"call_a", "call_b"}
    assert not decided.approved  # reject wins


def test_logs_reads_the_transcript(paddock: Paddock, kube: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = paddock.create(run_manifest("talky", workspaceRef={"name": "absent"}))
    entries = [
        {"kind": "prompt", "text": "say hello", "time": "2026-05-01T12:00:00Z"},
        {"kind": "tool_call", "tool": "exec_command", "callId": "c1", "text": "echo hi", "turn": 1},
        {"kind": "tool_output", "callId": "c1", "text": "Process exited with code 0\nOutput:\nhi\n", "turn": 1},
        {"kind": "final", "text": "It said hi.", "time": "2026-05-01T12:00:03Z"},
    ]
    paddock.core.create_namespaced_config_map(
        paddock.namespace,
        {
            "metadata": {
                "name": page_name("talky", 0),
                "labels": {
                    protocol.LABEL_RUN_NAME: "talky",
                    protocol.LABEL_KIND: protocol.KIND_TRANSCRIPT,
                    protocol.PREFIX + "page": "0",
                },
                "ownerReferences": [
                    {
                        "apiVersion": f"{GROUP}/{VERSION}",
                        "kind": "AgentRun",
                        "name": "talky",
                        "uid": run["metadata"]["uid"],
                    }
                ],
            },
            "data": {f"{i:08d}": encode_entry(e) for i, e in enumerate(entries)},
        },
    )
    assert main(cli(kube, paddock.namespace, "logs", "talky")) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ["[12:00:00] prompt", "  say hello"]
    assert "  $ echo hi" in out
    assert "tool_output · c1 · exit 0 · turn 1" in out
    assert out[-2:] == ["[12:00:03] final", "  It said hi."]


def test_errors_name_the_missing_object(paddock: Paddock, kube: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ns = paddock.namespace
    assert main(cli(kube, ns, "run", "--workspace", "nope", "hello")) == 1
    assert capsys.readouterr().err == f'error: agentworkspace "nope" not found in namespace {ns}\n'
    assert main(cli(kube, ns, "logs", "nope")) == 1
    assert capsys.readouterr().err == f'error: agentrun "nope" not found in namespace {ns}\n'
    assert main(cli(kube, ns, "shell", "nope")) == 1
    assert capsys.readouterr().err == f'error: agentworkspace "nope" not found in namespace {ns}\n'
    paddock.create(workspace_manifest("sleepy", lifecycle={"suspend": True}))
    paddock.wait_workspace_phase("sleepy", "Suspended", timeout=60)
    assert main(cli(kube, ns, "shell", "sleepy")) == 1
    assert "workspace sleepy is suspended" in capsys.readouterr().err
    assert paddock.run("nope") is None


def shell(kube: Path, namespace: str, path: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PADDOCK_KUBECTL"}
    env["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "paddock_harness.cli", *cli(kube, namespace, "shell", *args)],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_shell_runs_in_the_sandbox_with_and_without_kubectl(paddock: Paddock, kube: Path, tmp_path: Path) -> None:
    ready_workspace(paddock)
    with_kubectl = f"{Path(kubectl_binary()).parent}{os.pathsep}/usr/bin{os.pathsep}/bin"
    without = str(tmp_path)  # no kubectl there: the client's own exec stream is used
    for path in (with_kubectl, without):
        done = shell(kube, paddock.namespace, path, "demo", "--", "sh", "-c", "pwd; id -u; exit 3")
        assert done.returncode == 3, done.stderr
        assert done.stdout.split() == ["/workspace", "1000"], done.stderr
        default = shell(kube, paddock.namespace, path, "demo", stdin="pwd; echo ok\n")
        assert default.returncode == 0, default.stderr
        assert default.stdout.split() == ["/workspace", "ok"], default.stderr
