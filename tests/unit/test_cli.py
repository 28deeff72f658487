"""kubectl-paddock without a cluster: argument parsing, the manifests and patches it builds, and every piece
of rendering (progress lines, tables, transcript entries), plus the follow loop against a fake cluster."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from paddock_harness.cli import main
from paddock_harness.cli.args import parse
from paddock_harness.cli.cluster import (
    CliError,
    Cluster,
    Connection,
    connect,
    context_namespace,
    describe_connection_error,
)
from paddock_harness.cli.commands import choose_calls, decision_patch, read_prompt, run_manifest
from paddock_harness.cli.entries import (
    incomplete_tail,
    live_lines,
    log_lines,
    merge_parts,
    parse_tool_output,
)
from paddock_harness.cli.follow import Follower, TranscriptCursor, transcript_selector
from paddock_harness.cli.render import (
    Paint,
    RunView,
    answer_lines,
    approval_lines,
    clock,
    describe_patch,
    exit_code,
    human_age,
    ls_lines,
    progress_line,
    summary_lines,
)
from paddock_harness.cli.shell import kubectl_argv, sandbox_pod, shell_command
from paddock_harness.driver import protocol
from paddock_harness.driver.transcript import encode_entry

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def run_obj(name: str = "hello", phase: str | None = "Running", **status: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "paddock.dev/v1alpha1",
        "kind": "AgentRun",
        "metadata": {
            "name": name,
            "namespace": "team",
            "uid": "uid-1",
            "resourceVersion": "7",
            "creationTimestamp": iso(NOW - timedelta(seconds=90)),
        },
        "spec": {"workspaceRef": {"name": "demo"}, "prompt": "hi"},
        "status": {"phase": phase, **status},
    }
    if phase is None:
        del body["status"]["phase"]
    return body


def claimed() -> list[dict[str, Any]]:
    return [{"type": "Claimed", "status": "True", "reason": "Claimed", "lastTransitionTime": iso(NOW)}]


# --- arguments ---------------------------------------------------------------------------------------------
def test_global_flags_before_or_after_the_command() -> None:
    before = parse(["--kubeconfig", "/k", "--context", "c", "-n", "ns", "ls"])
    after = parse(["ls", "-A", "--kubeconfig=/k", "--context", "c", "--namespace", "ns"])
    for args in (before, after):
        assert (args.kubeconfig, args.context, args.namespace) == ("/k", "c", "ns")
    assert after.all_namespaces is True
    bare = parse(["ls"])
    assert not hasattr(bare, "namespace")
    assert not hasattr(bare, "kubeconfig")


def test_run_arguments() -> None:
    args = parse(
        [
            "run",
            "-w",
            "demo",
            "--model",
            "m",
            "--max-turns",
            "5",
            "--timeout",
            "60",
            "--approval",
            "always",
            "--no-follow",
            "fix",
            "the",
            "tests",
        ]
    )
    assert args.workspace == "demo"
    assert args.image is None
    assert (args.model, args.max_turns, args.timeout, args.approval, args.no_follow) == ("m", 5, 60, "Always", True)
    assert args.prompt == ["fix", "the", "tests"]


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "prompt"],  # neither --workspace nor --image
        ["run", "-w", "a", "--image", "b", "prompt"],  # both
        ["run", "-w", "a", "--max-turns", "0", "prompt"],
        ["run", "-w", "a", "--approval", "Sometimes", "prompt"],
        ["run", "-w", "a"],  # no prompt
        ["logs"],
        ["frobnicate"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse(argv)
    assert exited.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_shell_command_after_double_dash() -> None:
    assert parse(["shell", "demo", "--", "ls", "-la"]).cmd == ["ls", "-la"]
    assert parse(["shell", "demo"]).cmd == []
    args = parse(["approve", "hello", "call_a", "call_b"])
    assert (args.command, args.run, args.calls) == ("approve", "hello", ["call_a", "call_b"])
    assert parse(["reject", "hello", "--reason", "no"]).reason == "no"


# --- the run manifest ------------------------------------------------------------------------------------------
def test_run_manifest_with_a_workspace() -> None:
    args = parse(
        [
            "run",
            "-w",
            "demo",
            "--model",
            "gpt-5-mini",
            "--base-url",
            "http://127.0.0.1:8765/v1",
            "--max-turns",
            "7",
            "--approval",
            "Always",
            "do it",
        ]
    )
    manifest = run_manifest(args, "do it")
    assert manifest["metadata"]["generateName"] == "demo-"
    assert manifest["metadata"]["labels"] == {"app.kubernetes.io/created-by": "kubectl-paddock"}
    assert manifest["spec"] == {
        "prompt": "do it",
        "workspaceRef": {"name": "demo"},
        "model": {"name": "gpt-5-mini", "baseURL": "http://127.0.0.1:8765/v1"},
        "limits": {"maxTurns": 7},
        "approval": {"policy": "Always"},
    }


def test_run_manifest_with_an_image_and_a_name() -> None:
    manifest = run_manifest(parse(["run", "--image", "img:1", "--name", "mine", "--timeout", "30", "x"]), "x")
    assert manifest["metadata"]["name"] == "mine"
    assert "generateName" not in manifest["metadata"]
    assert manifest["spec"]["workspaceTemplate"] == {"spec": {"image": "img:1"}}
    assert manifest["spec"]["limits"] == {"timeoutSeconds": 30}
    assert "model" not in manifest["spec"]
    assert "approval" not in manifest["spec"]


def test_run_manifest_is_validated_before_sending() -> None:
    with pytest.raises(CliError, match=r"invalid run: model.baseURL"):
        run_manifest(parse(["run", "-w", "demo", "--base-url", "ftp://x", "p"]), "p")


def test_generated_name_prefix_fits() -> None:
    manifest = run_manifest(parse(["run", "-w", "w" * 63, "p"]), "p")
    assert len(manifest["metadata"]["generateName"]) + 5 <= 63


def test_prompt_from_words_or_stdin() -> None:
    assert read_prompt(["a", "b"], io.StringIO()) == "a b"
    assert read_prompt(["-"], io.StringIO("from stdin\n")) == "from stdin"
    with pytest.raises(CliError, match="empty"):
        read_prompt(["-"], io.StringIO("  "))


# --- approve / reject --------------------------------------------------------------------------------------
def pending_run(*ids: str, phase: str = "AwaitingApproval") -> RunView:
    pending = [{"callId": i, "tool": "exec_command", "command": f"rm {i}"} for i in ids]
    if ids:
        pending.append({"callId": "call_p", "tool": "apply_patch", "command": "*** Begin Patch\n*** Add File: x.py"})
    return RunView.from_object(run_obj(phase=phase, pendingApprovals=pending))


def test_approve_patch_names_the_calls_and_pins_the_version() -> None:
    patch = decision_patch({}, True, ["call_a", "call_b"], "42")
    assert patch == {
        "metadata": {"annotations": {protocol.ANNOTATION_APPROVE: "call_a,call_b"}, "resourceVersion": "42"}
    }
    decided = protocol.parse_decisions(patch["metadata"]["annotations"], ["call_a", "call_b", "call_c"])
    assert decided.approved == {"call_a", "call_b"}
    assert not decided.rejected


def test_patch_keeps_unconsumed_ids_of_the_same_verb() -> None:
    existing = {protocol.ANNOTATION_APPROVE: "call_a", protocol.ANNOTATION_REJECT: "call_z"}
    patch = decision_patch(existing, True, ["call_b", "call_a"], "1")
    assert patch["metadata"]["annotations"] == {protocol.ANNOTATION_APPROVE: "call_a,call_b"}


def test_reject_patch_with_reason() -> None:
    patch = decision_patch({}, False, ["call_a"], "3", "use a branch")
    annotations = patch["metadata"]["annotations"]
    assert annotations == {protocol.ANNOTATION_REJECT: "call_a", protocol.ANNOTATION_REJECT_REASON: "use a branch"}
    decided = protocol.parse_decisions(annotations, ["call_a"])
    assert decided.rejected == {"call_a"}
    assert decided.reject_reason == "use a branch"


def test_choose_calls() -> None:
    view = pending_run("call_a", "call_b")
    assert choose_calls(view, []) == ["call_a", "call_b", "call_p"]  # every pending call, named explicitly
    assert choose_calls(view, ["call_b", "call_b"]) == ["call_b"]
    with pytest.raises(CliError, match=r"not pending on hello: call_x \(pending: call_a, call_b, call_p\)"):
        choose_calls(view, ["call_x"])
    with pytest.raises(CliError, match="no tool calls waiting for approval"):
        choose_calls(pending_run(phase="Running"), [])
    with pytest.raises(CliError, match="already finished"):
        choose_calls(pending_run("call_a", phase="Succeeded"), [])


# --- status rendering --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("phase", "code"),
    [("Succeeded", 0), ("Failed", 1), ("Cancelled", 2), ("Running", 2), (None, 2)],
)
def test_exit_codes(phase: str | None, code: int) -> None:
    assert exit_code(phase) == code


@pytest.mark.parametrize(
    ("seconds", "age"),
    [
        (5, "5s"),
        (119, "119s"),
        (125, "2m5s"),
        (600, "10m"),
        (7200, "120m"),
        (3 * 3600 + 60, "3h1m"),
        (20 * 3600, "20h"),
        (3 * 86400 + 4 * 3600, "3d4h"),
        (30 * 86400, "30d"),
        (800 * 86400, "2y"),
    ],
)
def test_human_age_like_kubectl(seconds: int, age: str) -> None:
    assert human_age(seconds) == age


def test_clock() -> None:
    assert (clock(0), clock(42), clock(62), clock(3723)) == ("0:00", "0:42", "1:02", "1:02:03")


def test_progress_line_tty_and_plain() -> None:
    obj = run_obj(
        turns=3,
        toolCalls=4,
        usage={"totalTokens": 2345},
        startTime=iso(NOW - timedelta(seconds=42)),
        conditions=claimed(),
    )
    view = RunView.from_object(obj)
    # elapsed counts from creation (90 s ago), the wait for the workspace included
    assert progress_line(view, NOW, frame=2) == "⠹ Running · turn 3 · 4 tool calls · 2,345 tokens · 1:30"
    assert progress_line(view, NOW) == "[1:30] Running · turn 3 · 4 tool calls · 2,345 tokens"
    coloured = progress_line(view, NOW, frame=0, paint=Paint(True))
    assert "\x1b[1;36mRunning\x1b[0m" in coloured


def test_progress_detail_says_why_a_run_waits() -> None:
    queued = RunView.from_object(run_obj(phase="Pending", queuePosition=2))
    assert progress_line(queued, NOW) == "[1:30] Pending · queued behind another run (#2)"
    ws = [
        {
            "type": "WorkspaceReady",
            "status": "False",
            "reason": "WorkspaceNotReady",
            "message": "pod starting",
            "lastTransitionTime": iso(NOW),
        }
    ]
    waiting = RunView.from_object(run_obj(phase="Pending", conditions=ws))
    assert waiting.detail == "WorkspaceNotReady: pod starting"
    unclaimed = RunView.from_object(run_obj(phase="Running"))
    assert unclaimed.detail == "waiting for a harness to pick it up"
    assert RunView.from_object(run_obj(phase="Running", conditions=claimed())).detail is None


def test_summary_and_answer() -> None:
    obj = run_obj(
        phase="Failed",
        turns=2,
        toolCalls=1,
        usage={"inputTokens": 900, "outputTokens": 100, "totalTokens": 1000},
        startTime=iso(NOW - timedelta(seconds=65)),
        completionTime=iso(NOW - timedelta(seconds=5)),
        lastError={"reason": "MaxTurnsExceeded", "message": "2 turns"},
    )
    lines = summary_lines(RunView.from_object(obj), NOW)
    assert lines == [
        "Failed after 1:25 · 2 turns · 1 tool call · 1,000 tokens (in 900 / out 100)",
        "MaxTurnsExceeded: 2 turns",
    ]
    assert answer_lines("It printed 1 4 9.\nDone.") == ["", "Answer:", "  It printed 1 4 9.", "  Done."]
    assert answer_lines("  ") == []


def test_approval_lines_show_exact_commands() -> None:
    view = pending_run("call_a", "call_bb")
    lines = approval_lines(view, "-n team")
    assert lines[0] == "Waiting for approval of 3 tool calls:"
    assert lines[1] == "  call_a   exec_command  rm call_a"
    assert lines[3] == "  call_p   apply_patch   add x.py"
    assert "  kubectl paddock -n team approve hello call_a" in lines
    assert '  kubectl paddock -n team reject hello call_a --reason "why"' in lines
    assert any(line.startswith("  kubectl paddock -n team approve hello ") and "every" in line for line in lines)
    assert approval_lines(pending_run()) == []


def test_ls_tables() -> None:
    ws = {
        "metadata": {"name": "demo", "namespace": "team", "creationTimestamp": iso(NOW - timedelta(minutes=5))},
        "spec": {"image": "x", "network": {"egress": "Internet"}},
        "status": {"phase": "Ready", "conditions": [{"type": "Ready", "status": "True"}]},
    }
    throwaway = {
        "metadata": {
            "name": "run-abc",
            "namespace": "other",
            "creationTimestamp": iso(NOW - timedelta(hours=2)),
            "ownerReferences": [{"kind": "AgentRun", "name": "run-abc"}],
        },
        "spec": {"image": "x"},
    }
    run = run_obj(phase="Succeeded", turns=4, toolCalls=3, usage={"totalTokens": 8590})
    lines = ls_lines([ws], [run], NOW, namespace="team", all_namespaces=False)
    assert lines == [
        "WORKSPACES",
        "NAME   PHASE   READY   EGRESS     RUN BY   AGE",
        "demo   Ready   True    Internet   -        5m",
        "",
        "RUNS",
        "NAME    PHASE       WORKSPACE   TURNS   TOOL CALLS   TOKENS   AGE",
        "hello   Succeeded   demo        4       3            8,590    90s",
    ]
    wide = ls_lines([throwaway, ws], [], NOW, namespace="team", all_namespaces=True)
    assert wide[1].split() == ["NAMESPACE", "NAME", "PHASE", "READY", "EGRESS", "RUN", "BY", "AGE"]
    assert wide[2].split() == ["other", "run-abc", "Pending", "Unknown", "None", "run-abc", "120m"]
    assert wide[-1] == "  none in any namespace"


# --- transcript entries ------------------------------------------------------------------------------------
SHELL_OUTPUT = "Chunk ID: ab12cd\nWall time: 0.0100 seconds\nProcess exited with code 0\nOutput:\n1\n4\n9\n16\n25\n36\n"


def test_parse_tool_output() -> None:
    assert parse_tool_output(SHELL_OUTPUT) == (0, "1\n4\n9\n16\n25\n36\n")
    failed = "Chunk ID: x\nWall time: 1 seconds\nProcess exited with code 127\nOutput:\nsh: nope: not found\n"
    assert parse_tool_output(failed) == (127, "sh: nope: not found\n")
    assert parse_tool_output("Updated file hello.py") == (None, "Updated file hello.py")


def test_describe_patch() -> None:
    raw = "*** Begin Patch\n*** Add File: hello.py\n+print(1)\n*** Update File: a/b.py\n@@\n*** End Patch"
    assert describe_patch(raw) == "add hello.py, update a/b.py"
    assert describe_patch(json.dumps({"input": raw})) == "add hello.py, update a/b.py"
    assert describe_patch(json.dumps({"operation": {"type": "delete_file", "path": "x.txt"}})) == "delete x.txt"


def test_live_lines_for_a_command_and_its_output() -> None:
    call = {"kind": "tool_call", "tool": "exec_command", "callId": "call_run", "text": "python3 hello.py", "turn": 3}
    assert live_lines(call) == ["$ python3 hello.py  (call_run)"]
    output = {"kind": "tool_output", "callId": "call_run", "text": SHELL_OUTPUT}
    assert live_lines(output) == ["  exit 0", "  │ 1", "  │ 4", "  │ 9", "  │ 16", "  … 2 more lines"]
    cut = {
        "kind": "tool_output",
        "callId": "c",
        "text": "Process exited with code 1\nOutput:\n",
        "truncated": True,
        "size": 40000,
    }
    assert live_lines(cut) == ["  exit 1 · no output", "  [truncated; the original was 40,000 bytes]"]


def test_live_lines_for_other_entries() -> None:
    patch = {"kind": "tool_call", "tool": "apply_patch", "callId": "w", "text": "*** Begin Patch\n*** Add File: h.py"}
    assert live_lines(patch) == ["patch add h.py  (w)"]
    assert live_lines({"kind": "message", "text": "I'll add a script.\n\nThen run it."}) == [
        "» I'll add a script.",
        "  Then run it.",
    ]
    assert live_lines({"kind": "reasoning", "text": "Look around first."}) == ["thinking: Look around first."]
    assert live_lines({"kind": "prompt", "text": "p"}) == [] == live_lines({"kind": "final", "text": "a"})
    requested = {"kind": "approval_requested", "tool": "exec_command", "callId": "c1", "text": "rm -rf build"}
    assert live_lines(requested) == []  # the status's pending list is shown instead, with the commands to answer
    assert live_lines({"kind": "approval", "callId": "c1", "decision": "approved"}) == ["✓ c1 approved"]
    rejected = {"kind": "approval", "callId": "c1", "decision": "rejected", "reason": "no"}
    assert live_lines(rejected) == ["✗ c1 rejected: no"]
    error = {"kind": "error", "reason": "RateLimited", "text": "429 from the model"}
    assert live_lines(error) == ["✗ RateLimited: 429 from the model"]
    assert live_lines({"kind": "novel", "text": "x\ny"}) == ["[novel] x …"]


def test_log_lines_are_complete() -> None:
    call = {
        "kind": "tool_call",
        "tool": "exec_command",
        "callId": "call_ls",
        "text": "ls -la",
        "turn": 1,
        "time": "2026-05-01T12:00:04.123Z",
    }
    assert log_lines(call) == ["[12:00:04] tool_call · exec_command · call_ls · turn 1", "  $ ls -la"]
    output = {
        "kind": "tool_output",
        "callId": "call_ls",
        "text": SHELL_OUTPUT,
        "time": "2026-05-01T12:00:05.000Z",
        "truncated": True,
        "size": 99999,
    }
    lines = log_lines(output)
    assert lines[0] == "[12:00:05] tool_output · call_ls · exit 0"
    assert lines[1:7] == ["  1", "  4", "  9", "  16", "  25", "  36"]
    assert lines[-1] == "  [truncated; the original was 99,999 bytes]"
    approval = {
        "kind": "approval",
        "callId": "c",
        "tool": "exec_command",
        "decision": "rejected",
        "reason": "no",
        "text": "rm x",
        "time": "2026-05-01T12:00:06Z",
    }
    assert log_lines(approval)[0] == "[12:00:06] approval · exec_command · c · rejected · reason: no"


def test_merge_parts_and_incomplete_tail() -> None:
    parts = [
        {"kind": "final", "text": "Hel", "part": 0, "parts": 3, "index": 5},
        {"kind": "final", "text": "lo ", "part": 1, "parts": 3, "index": 6},
        {"kind": "final", "text": "world", "part": 2, "parts": 3, "index": 7},
    ]
    merged = merge_parts([{"kind": "prompt", "text": "p", "index": 4}, *parts])
    assert [e["text"] for e in merged] == ["p", "Hello world"]
    assert incomplete_tail(parts[:2]) == 2
    assert incomplete_tail(parts) == 0
    assert incomplete_tail([{"kind": "message", "text": "x"}]) == 0


# --- shell ------------------------------------------------------------------------------------------------
def test_sandbox_pod() -> None:
    ready = {"metadata": {"name": "demo"}, "spec": {}, "status": {"phase": "Ready", "podName": "demo-sandbox"}}
    assert sandbox_pod(ready) == "demo-sandbox"
    with pytest.raises(CliError, match=r"demo is suspended .*suspend\":false"):
        sandbox_pod({"metadata": {"name": "demo"}, "status": {"phase": "Suspended"}})
    with pytest.raises(CliError, match=r"not ready \(phase Pending: the sandbox pod is starting\)"):
        sandbox_pod(
            {"metadata": {"name": "demo"}, "status": {"phase": "Pending", "message": "the sandbox pod is starting"}}
        )


def test_shell_command_and_kubectl_argv() -> None:
    ws = {"spec": {"storage": {"mountPath": "/work"}}}
    default = shell_command(ws, [])
    assert default[:2] == ["/bin/sh", "-c"]
    assert default[-1] == "/work"
    assert "exec bash" in default[2]
    assert shell_command(ws, ["ls", "-la"]) == ["ls", "-la"]
    argv = kubectl_argv(
        "kubectl", kubeconfig="/k", context="c", namespace="team", pod="demo-sandbox", command=["ls"], tty=True
    )
    assert argv == [
        "kubectl",
        "--kubeconfig",
        "/k",
        "--context",
        "c",
        "exec",
        "-it",
        "-n",
        "team",
        "demo-sandbox",
        "-c",
        "sandbox",
        "--",
        "ls",
    ]
    piped = kubectl_argv("kubectl", kubeconfig=None, context=None, namespace="n", pod="p", command=["x"], tty=False)
    assert piped == ["kubectl", "exec", "-i", "-n", "n", "p", "-c", "sandbox", "--", "x"]


# --- kubeconfig and errors ---------------------------------------------------------------------------------
def write_kubeconfig(path: Path, server: str = "https://127.0.0.1:1") -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [
                    {"name": "plain", "context": {"cluster": "c", "user": "u"}},
                    {"name": "team", "context": {"cluster": "c", "user": "u", "namespace": "team"}},
                ],
                "current-context": "team",
            }
        )
    )
    return path


def test_namespace_comes_from_the_context(tmp_path: Path) -> None:
    config = str(write_kubeconfig(tmp_path / "config"))
    assert context_namespace(config, None) == "team"
    assert context_namespace(config, "plain") == "default"
    connection = connect(config, None)
    assert (connection.default_namespace, connection.server) == ("team", "https://127.0.0.1:1")


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--kubeconfig", str(tmp_path / "missing"), "ls"]) == 1
    assert capsys.readouterr().err == f"error: kubeconfig {tmp_path / 'missing'} does not exist\n"
    config = str(write_kubeconfig(tmp_path / "config"))
    assert main(["--kubeconfig", config, "--context", "nope", "ls"]) == 1
    assert capsys.readouterr().err.startswith(f"error: cannot use kubeconfig {config}: ")
    assert main(["--kubeconfig", config, "ls"]) == 1  # nothing listens on port 1
    err = capsys.readouterr().err
    assert err == (
        "error: cannot reach the Kubernetes API server at https://127.0.0.1:1 (connection refused): "
        "is the cluster running?\n"
    )


def test_describe_connection_error() -> None:
    reason = (
        "<urllib3.connection.HTTPSConnection object at 0x7f>: Failed to resolve 'nohost' (Name or service not known)"
    )
    error = type("E", (Exception,), {"reason": reason})()
    assert "(unknown host)" in describe_connection_error(error, "https://nohost:6443")


# --- following, against a fake cluster ---------------------------------------------------------------------
def page(run: str, number: int, entries: dict[int, dict[str, Any]], uid: str = "uid-1") -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"{run}-transcript-{number}",
            "labels": {protocol.PREFIX + "page": str(number)},
            "ownerReferences": [{"uid": uid}],
        },
        "data": {f"{i:08d}": encode_entry(e) for i, e in entries.items()},
    }


class FakeCluster:
    """Enough of Cluster for Follower: a scripted watch and a transcript that grows as the run moves on."""

    def __init__(self, states: list[dict[str, Any]], pages_by_state: list[list[dict[str, Any]]]) -> None:
        self.states = states
        self.pages_by_state = pages_by_state
        self.seen = 0
        self.selectors: list[str] = []

    def find(self, plural: str, name: str) -> dict[str, Any] | None:
        return self.states[0]

    def watch(self, plural: str, name: str, version: str | None) -> Iterator[dict[str, Any]]:
        for number, state in enumerate(self.states[1:], start=1):
            self.seen = number
            yield {"type": "MODIFIED", "object": state}
        while True:  # a quiet watch
            yield {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "99"}}}
            import time

            time.sleep(0.05)

    def list_config_maps(self, selector: str) -> list[dict[str, Any]]:
        self.selectors.append(selector)
        return self.pages_by_state[min(self.seen, len(self.pages_by_state) - 1)]


def test_follow_prints_tool_calls_approvals_and_returns_the_final_view() -> None:
    entries: dict[int, dict[str, Any]] = {
        0: {"kind": "prompt", "text": "Write hello.py"},
        1: {"kind": "tool_call", "tool": "exec_command", "callId": "call_ls", "text": "ls -la", "turn": 1},
        2: {"kind": "tool_output", "callId": "call_ls", "text": SHELL_OUTPUT},
        3: {"kind": "approval_requested", "tool": "exec_command", "callId": "call_rm", "text": "rm -rf x"},
        4: {"kind": "message", "text": "Now I will summarise."},
        5: {"kind": "message", "text": "It printed squares. Done."},
        6: {"kind": "final", "text": "It printed squares.", "part": 0, "parts": 2},
        7: {"kind": "final", "text": " Done.", "part": 1, "parts": 2},
    }
    waiting = run_obj(
        phase="AwaitingApproval",
        conditions=claimed(),
        pendingApprovals=[{"callId": "call_rm", "tool": "exec_command", "command": "rm -rf x"}],
    )
    done = run_obj(phase="Succeeded", turns=2, toolCalls=1, usage={"totalTokens": 10}, output="It printed squares.")
    states = [run_obj(phase="Running", conditions=claimed()), waiting, done]
    pages = [
        [page("hello", 0, {i: entries[i] for i in (0, 1)})],
        [page("hello", 0, {i: entries[i] for i in range(7)})],  # a split answer, half written
        [page("hello", 0, entries), page("hello", 0, {7: {"kind": "x"}}, uid="someone-else")],
    ]
    fake = FakeCluster(states, pages)
    out = io.StringIO()
    follower = Follower(
        cast(Cluster, fake), "hello", out, live=True, tty=False, ns_flag="-n team", now=lambda: NOW, poll_seconds=0.01
    )
    view = follower.follow()
    assert view.phase == "Succeeded"
    text = out.getvalue()
    assert "$ ls -la  (call_ls)" in text
    assert "  exit 0" in text
    assert "kubectl paddock -n team approve hello call_rm" in text
    assert text.count("Waiting for approval") == 1
    assert text.index("$ ls -la") < text.index("Waiting for approval")  # asked after the call was shown
    assert "Write hello.py" not in text
    assert "[x]" not in text
    assert follower.final_text == "It printed squares. Done."
    assert "» Now I will summarise." in text
    assert "» It printed squares" not in text  # the last message is the answer, printed once by the caller
    assert all(protocol.PREFIX + "page in (0,1,2)" in s for s in fake.selectors)


def test_transcript_cursor_reads_on_past_a_full_window() -> None:
    entries = {i: {"kind": "message", "text": str(i)} for i in range(100)}
    pages = [page("r", n, {i: e for i, e in entries.items() if i // 32 == n}) for n in range(4)]

    class Pages:
        def list_config_maps(self, selector: str) -> list[dict[str, Any]]:
            wanted = selector.rsplit("(", 1)[1].rstrip(")").split(",")
            return [p for p in pages if p["metadata"]["labels"][protocol.PREFIX + "page"] in wanted]

    cursor = TranscriptCursor(cast(Cluster, Pages()), "r")
    found = cursor.poll("uid-1")
    assert [e["index"] for e in found] == list(range(100))
    assert cursor.poll("uid-1") == []
    assert transcript_selector("r", range(2, 4)).endswith("paddock.dev/page in (2,3)")


def fake_api(group_installed: bool) -> Any:
    """Cluster.request answering 404 for every object, with or without our API group."""

    def request(method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        if path == "/apis/paddock.dev/v1alpha1" and group_installed:
            return {"resources": [{"name": "agentruns"}, {"name": "agentruns/status"}, {"name": "agentworkspaces"}]}
        raise ApiException(status=404, reason="Not Found")

    return request


def test_a_404_says_whether_the_crds_or_the_object_are_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = Cluster(Connection(ApiClient(), "team", "https://example:6443"), "team")
    monkeypatch.setattr(cluster, "request", fake_api(group_installed=False))
    for call in (lambda: cluster.find("agentruns", "x"), lambda: cluster.list_objects("agentworkspaces")):
        with pytest.raises(CliError, match=r"^Paddock's CRDs are not installed in this cluster: kubectl apply"):
            call()
    monkeypatch.setattr(cluster, "request", fake_api(group_installed=True))
    assert cluster.find("agentruns", "x") is None
    with pytest.raises(CliError, match=r'^agentrun "x" not found in namespace team$'):
        cluster.require("agentruns", "x")
