"""The real harness process against the cluster (issue 5, "Acceptance (cluster tests)").

Each test runs the session operator, a `python -m paddock_harness --namespace <test ns>` child process and
the fake model server in this process on 127.0.0.1 (the harness runs on the host, so loopback reaches it).
Runs point at the fake model with spec.model.baseURL; the sandbox pods are real, and what the agent did is
checked in them with kubectl exec, independently of the harness's own exec client.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness_helpers import DEFAULT_KEY, HarnessProcess, exec_turn, final_turn, free_port, pod_exec, transcript
from kubernetes import client
from paddock_helpers import REPO, Paddock, condition, run_manifest, sandbox_image, wait_for, workspace_manifest
from prometheus_client.parser import text_string_to_metric_families

from paddock_harness.driver import protocol
from paddock_harness.fakemodel import FakeModelThread
from paddock_operator.naming import pod_name

Kubectl = Callable[..., subprocess.CompletedProcess[str]]
# The machine is small and busy: pods and runs get generous (but bounded) time.
WORKSPACE_READY_S = 180
RUN_DONE_S = 180
SMALL = {"requests": {"cpu": "10m", "memory": "32Mi"}}


@pytest.fixture
def harness(kube: Path, paddock: Paddock, tmp_path: Path) -> Iterator[Callable[..., HarnessProcess]]:
    """Starts harness processes for this test's namespace (ready when returned); stops them afterwards."""
    started: list[HarnessProcess] = []

    def start(*extra: str, api_key: str | None = DEFAULT_KEY) -> HarnessProcess:
        log = tmp_path / f"harness-{len(started)}.log"
        process = HarnessProcess(kube, paddock.namespace, log, *extra, api_key=api_key).start()
        started.append(process)
        process.wait_ready()
        return process

    yield start
    for process in started:
        process.stop()
        print(f"harness log: {process.log_path}")


@pytest.fixture
def fake_model() -> Iterator[Callable[..., FakeModelThread]]:
    servers: list[FakeModelThread] = []

    def start(script: Any, **options: Any) -> FakeModelThread:
        server = FakeModelThread(script, **options)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def ready_workspace(paddock: Paddock, name: str, **spec: Any) -> str:
    """Creates a workspace, waits for Ready; the name of its pod."""
    paddock.create(workspace_manifest(name, **spec))
    paddock.wait_workspace_phase(name, "Ready", timeout=WORKSPACE_READY_S)
    return pod_name(name)


def model(server: FakeModelThread, **extra: Any) -> dict[str, Any]:
    return {"name": "gpt-5-mini", "baseURL": server.base_url, **extra}


def wait_phase(paddock: Paddock, harness: HarnessProcess, name: str, phase: str, timeout: float = RUN_DONE_S) -> Any:
    """The run once it has `phase`; fails early (with the harness log) when the harness dies or the run ends
    in another terminal phase."""

    def probe() -> dict[str, Any] | None:
        harness.check_alive()
        run = paddock.run(name)
        current = ((run or {}).get("status") or {}).get("phase")
        if current == phase:
            return run
        if current in {"Succeeded", "Failed", "Cancelled"}:
            raise AssertionError(f"run {name} ended {current}, not {phase}:\n{yaml.safe_dump(run)}")
        return None

    try:
        return wait_for(f"run {name} phase {phase}", probe, timeout=timeout, interval=0.5)
    except AssertionError as error:
        raise AssertionError(f"{error}\nharness log (tail):\n{harness.logs()[-3000:]}") from None


def tool_outputs(body: Any) -> dict[str, str]:
    """call_id -> output of every tool output item in a Responses request body."""
    found: dict[str, str] = {}
    for item in body.get("input") or []:
        if isinstance(item, dict) and str(item.get("type", "")).endswith("_call_output"):
            output = item.get("output")
            found[item["call_id"]] = output if isinstance(output, str) else json.dumps(output)
    return found


# -- 1. examples/run.yaml ------------------------------------------------------------------------------

SQUARES_SCRIPT = {
    "scenarios": [
        {
            "name": "squares",
            "match": "first ten square numbers",
            "turns": [
                {
                    "name": "look around",
                    "output": [{"type": "exec_command", "cmd": "ls -la", "callId": "call_ls"}],
                    "usage": {"inputTokens": 1200, "outputTokens": 30},
                },
                {
                    "name": "write hello.py",
                    "expect": {"callOutputs": [{"callId": "call_ls", "contains": "exited with code 0"}]},
                    "output": [
                        {"type": "message", "phase": "commentary", "text": "Writing hello.py."},
                        {
                            "type": "apply_patch",
                            "callId": "call_write",
                            "patch": [
                                "*** Begin Patch",
                                "*** Add File: hello.py",
                                "+print(*[n * n for n in range(1, 11)])",
                                "*** End Patch",
                            ],
                        },
                    ],
                    "usage": {"inputTokens": 1400, "outputTokens": 60},
                },
                {
                    "name": "run it",
                    "expect": {"callOutputs": [{"callId": "call_write", "contains": "hello.py"}]},
                    "output": [{"type": "exec_command", "cmd": "python3 hello.py", "callId": "call_run"}],
                    "usage": {"inputTokens": 1500, "outputTokens": 20},
                },
                {
                    "name": "answer",
                    "expect": {"callOutputs": [{"callId": "call_run", "contains": "1 4 9 16 25 36 49 64 81 100"}]},
                    "output": [{"type": "message", "phase": "final_answer", "text": "It printed 1 4 9 ... 100."}],
                    "usage": {"inputTokens": 1600, "outputTokens": 15},
                },
            ],
        }
    ]
}


def test_example_run_succeeds_with_files_status_and_transcript(
    paddock: Paddock, kube: Path, kubectl: Kubectl, harness: Callable[..., HarnessProcess], fake_model: Any
) -> None:
    server = fake_model(SQUARES_SCRIPT, api_key=DEFAULT_KEY)
    workspace = yaml.safe_load((REPO / "examples" / "workspace.yaml").read_text())
    workspace["spec"]["image"] = sandbox_image()
    workspace["spec"]["resources"] = {**SMALL, **workspace["spec"].get("resources", {})}
    paddock.create(workspace)
    run = yaml.safe_load((REPO / "examples" / "run.yaml").read_text())
    run["spec"]["model"]["baseURL"] = server.base_url
    name, ws = run["metadata"]["name"], run["spec"]["workspaceRef"]["name"]
    paddock.wait_workspace_phase(ws, "Ready", timeout=WORKSPACE_READY_S)
    metrics_port = free_port()
    process = harness("--metrics-port", str(metrics_port))
    paddock.create(run)

    done = wait_phase(paddock, process, name, "Succeeded")
    status = done["status"]
    assert server.failures == []
    assert status["turns"] == 4
    assert status["toolCalls"] == 3
    assert status["usage"]["inputTokens"] == 1200 + 1400 + 1500 + 1600
    assert status["usage"]["outputTokens"] == 30 + 60 + 20 + 15
    assert status["usage"]["totalTokens"] == status["usage"]["inputTokens"] + status["usage"]["outputTokens"]
    assert status["output"] == "It printed 1 4 9 ... 100."
    assert status["completionTime"]
    assert (condition(done, "Finished") or {}).get("reason") == "Succeeded"

    # The file is on the workspace volume, written by the sandbox user; the pod sees it without the harness.
    pod = pod_name(ws)
    # (The SDK's apply_patch writes an added file without a final newline: `echo` supplies one.)
    listing = pod_exec(kubectl, paddock.namespace, pod, "cat /workspace/hello.py; echo; python3 /workspace/hello.py")
    assert listing.stdout == "print(*[n * n for n in range(1, 11)])\n1 4 9 16 25 36 49 64 81 100\n"
    mounts = pod_exec(kubectl, paddock.namespace, pod, "grep ' /workspace ' /proc/mounts").stdout
    assert mounts.strip(), "the workspace is not a separate mount (the PVC)"

    entries = transcript(kube, paddock.namespace, name)
    kinds = [e["kind"] for e in entries]
    assert kinds[0] == "prompt"
    assert "first ten square numbers" in entries[0]["text"]
    assert kinds[-1] == "final"
    assert entries[-1]["text"] == "It printed 1 4 9 ... 100."
    assert [e["index"] for e in entries] == list(range(len(entries)))  # nothing missing
    calls = [(e["callId"], e["tool"]) for e in entries if e["kind"] == "tool_call"]
    assert calls == [("call_ls", "exec_command"), ("call_write", "apply_patch"), ("call_run", "exec_command")]
    outputs = {e["callId"]: e["text"] for e in entries if e["kind"] == "tool_output"}
    assert set(outputs) == {"call_ls", "call_write", "call_run"}
    assert "1 4 9 16 25 36 49 64 81 100" in outputs["call_run"]
    assert "hello.py" in outputs["call_write"]
    # each output comes after its call
    position = {(e["kind"], e.get("callId")): i for i, e in enumerate(entries)}
    for call_id, _ in calls:
        assert position[("tool_call", call_id)] < position[("tool_output", call_id)]
    assert any(e["kind"] == "message" and "Writing hello.py" in e["text"] for e in entries), kinds
    # Every model request named the run and carried the harness's key (the server checks it).
    assert {r.headers.get(protocol.RUN_HEADER) for r in server.requests} == {f"{paddock.namespace}/{name}"}
    assert [r.status for r in server.requests] == [200, 200, 200, 200]

    # The drive ended as a success (not as a cancelled drive) and let go of the run's claim.
    def drive_outcomes() -> dict[str, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as answer:
            families = text_string_to_metric_families(answer.read().decode())
            drives = next(f for f in families if f.name == "paddock_harness_drives")
            return {s.labels["outcome"]: s.value for s in drives.samples if s.name.endswith("_total")}

    assert wait_for("the drive to end", drive_outcomes, timeout=30) == {"Succeeded": 1.0}

    # The claim is let go when the drive ends: released, or (if the release lost a race with a last renewal)
    # no longer renewed, so that it expires. Either way no replica holds the run any more.
    def let_go() -> bool:
        spec = json.loads(
            kubectl("get", "lease", "-n", paddock.namespace, protocol.lease_name(name), "-o", "json").stdout
        )["spec"]
        if "holderIdentity" not in spec:
            return True
        renewed = datetime.fromisoformat(spec["renewTime"].replace("Z", "+00:00"))
        return datetime.now(UTC) > renewed + timedelta(seconds=spec["leaseDurationSeconds"])

    wait_for("the run's claim to be let go", let_go, timeout=30, interval=0.5)


# -- 2. approvals --------------------------------------------------------------------------------------

APPROVAL_SCRIPT = {
    "scenarios": [
        {
            "name": "approve",
            "match": "tidy up",
            "turns": [
                exec_turn("echo hi > a.txt", "c_write"),
                exec_turn("rm a.txt", "c_rm"),
                final_turn("removed", expect={"callOutputs": [{"callId": "c_rm", "contains": "exited with code 0"}]}),
            ],
        },
        {
            "name": "reject",
            "match": "clean the data",
            "turns": [
                exec_turn("mkdir -p data && echo keep > data/x", "c_mkdir"),
                exec_turn("rm -rf data", "c_rej"),
                final_turn("ok, kept it", expect={"callOutputs": [{"callId": "c_rej", "contains": "keep the data"}]}),
            ],
        },
    ]
}


def test_approval_waits_then_approve_and_reject(
    paddock: Paddock, kube: Path, kubectl: Kubectl, harness: Callable[..., HarnessProcess], fake_model: Any
) -> None:
    server = fake_model(APPROVAL_SCRIPT, api_key=DEFAULT_KEY)
    ns = paddock.namespace
    pod = ready_workspace(paddock, "gated", resources=SMALL)
    process = harness()
    gate = {"policy": "CommandPatterns", "commandPatterns": ["rm *"]}
    paddock.create(
        run_manifest("approve", workspaceRef={"name": "gated"}, prompt="tidy up", model=model(server), approval=gate)
    )

    waiting = wait_phase(paddock, process, "approve", "AwaitingApproval")
    pending = waiting["status"]["pendingApprovals"]
    assert [{k: p[k] for k in ("callId", "tool", "command")} for p in pending] == [
        {"callId": "c_rm", "tool": "exec_command", "command": "rm a.txt"}
    ]
    assert pending[0]["requestedTime"]
    assert (condition(waiting, "Approval") or {}).get("reason") == "ApprovalRequired"
    # The command that matched no pattern ran; the gated one did not. And it stays that way while waiting.
    time.sleep(3)
    assert pod_exec(kubectl, ns, pod, "cat a.txt").stdout == "hi\n"
    assert paddock.phase("agentruns", "approve") == "AwaitingApproval"
    assert [r.status for r in server.requests] == [200, 200]

    kubectl("annotate", "-n", ns, "agentrun", "approve", f"{protocol.ANNOTATION_APPROVE}=c_rm")
    done = wait_phase(paddock, process, "approve", "Succeeded")
    assert done["status"]["pendingApprovals"] == []
    assert done["status"]["output"] == "removed"
    assert not set(done["metadata"].get("annotations") or {}) & set(protocol.APPROVAL_ANNOTATIONS)
    assert pod_exec(kubectl, ns, pod, "test ! -e a.txt && echo gone").stdout == "gone\n"
    entries = transcript(kube, ns, "approve")
    assert any(e["kind"] == "approval" and e["callId"] == "c_rm" and e["decision"] == "approved" for e in entries)

    # A rejected call: through the kubectl plugin this time. The model hears about it and the run goes on.
    gate = {"policy": "CommandPatterns", "commandPatterns": ["rm -rf *"]}
    paddock.create(
        run_manifest(
            "reject", workspaceRef={"name": "gated"}, prompt="clean the data", model=model(server), approval=gate
        )
    )
    waiting = wait_phase(paddock, process, "reject", "AwaitingApproval")
    assert [p["command"] for p in waiting["status"]["pendingApprovals"]] == ["rm -rf data"]
    plugin = [sys.executable, "-m", "paddock_harness.cli", "--kubeconfig", str(kube), "-n", ns]
    answer = subprocess.run(
        [*plugin, "reject", "reject", "c_rej", "--reason", "keep the data"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert answer.returncode == 0, answer.stderr
    assert "Rejected c_rej" in answer.stdout
    done = wait_phase(paddock, process, "reject", "Succeeded")
    assert done["status"]["output"] == "ok, kept it"
    assert pod_exec(kubectl, ns, pod, "cat data/x").stdout == "keep\n"  # never executed
    assert server.failures == []
    # The request after the rejection carries the call's output: the rejection and the human's reason.
    reject_requests = [r for r in server.requests if r.headers.get(protocol.RUN_HEADER) == f"{ns}/reject"]
    assert [r.status for r in reject_requests] == [200, 200, 200]
    told = tool_outputs(reject_requests[-1].body)["c_rej"]
    assert "rejected" in told
    assert "keep the data" in told
    entries = transcript(kube, ns, "reject")
    assert any(e["kind"] == "approval" and e["callId"] == "c_rej" and e["decision"] == "rejected" for e in entries)


# -- 3. a harness killed mid-run -------------------------------------------------------------------------

RESTART_SCRIPT = [
    exec_turn("echo first >> count.txt", "c_first"),
    exec_turn("echo started >> started.txt; sleep 8; echo second >> count.txt", "c_slow"),
    exec_turn("echo third >> count.txt", "c_third"),
    {**final_turn("counted"), "delaySeconds": 6},
]


def test_killed_harness_is_resumed_without_rerunning_commands(
    paddock: Paddock, kube: Path, kubectl: Kubectl, harness: Callable[..., HarnessProcess], fake_model: Any
) -> None:
    server = fake_model(RESTART_SCRIPT, api_key=DEFAULT_KEY)
    ns = paddock.namespace
    pod = ready_workspace(paddock, "durable", resources=SMALL)
    first = harness()
    paddock.create(run_manifest("crash", workspaceRef={"name": "durable"}, prompt="count things", model=model(server)))

    # Kill while the slow command runs (the first one has completed): SIGKILL, nothing saved on the way out.
    def slow_started() -> bool:
        first.check_alive()
        return pod_exec(kubectl, ns, pod, "cat started.txt 2>/dev/null || true").stdout == "started\n"

    wait_for("the slow command to start", slow_started, timeout=RUN_DONE_S, interval=0.5)
    assert pod_exec(kubectl, ns, pod, "cat count.txt").stdout == "first\n"
    first.kill()
    assert paddock.phase("agentruns", "crash") == "Running"

    second = harness()
    # Second kill: while the model "thinks" about its final answer, after every command completed.
    wait_for("the final model request", lambda: len(server.requests) >= 4, timeout=RUN_DONE_S, interval=0.5)
    second.check_alive()
    second.kill()
    third = harness()
    done = wait_phase(paddock, third, "crash", "Succeeded")
    assert done["status"]["output"] == "counted"

    # Each command ran at most once: the completed ones were not re-run; the one killed in flight was not
    # retried (its remote process may finish on its own: "second" at most once) and that is reported.
    count = pod_exec(kubectl, ns, pod, "cat count.txt").stdout.splitlines()
    assert count.count("first") == 1, count
    assert count.count("third") == 1, count
    assert count.count("second") <= 1, count
    assert pod_exec(kubectl, ns, pod, "cat started.txt").stdout == "started\n"
    resumed = condition(done, "Resumed") or {}
    assert resumed.get("reason") in {"CommandInterrupted", "ResumedFromCheckpoint"}, done["status"]
    entries = transcript(kube, ns, "crash")
    restart = [e for e in entries if e["kind"] == "restart"]
    assert len(restart) == 1 and "c_slow" in restart[0]["text"], restart
    # The transcript survived both kills: every call once, every output once (the interrupted one says so).
    assert [e["callId"] for e in entries if e["kind"] == "tool_call"] == ["c_first", "c_slow", "c_third"]
    outputs = {e["callId"]: e["text"] for e in entries if e["kind"] == "tool_output"}
    assert [e["callId"] for e in entries if e["kind"] == "tool_output"] == ["c_first", "c_slow", "c_third"]
    assert "restarted" in outputs["c_slow"]
    assert [e["kind"] for e in entries][-1] == "final"
    assert server.failures == []
    # What the model was told about the interrupted call.
    final_requests = [r for r in server.requests if r.status == 200 and r.turn == 3]
    assert final_requests, [(r.status, r.turn) for r in server.requests]
    assert "restarted" in tool_outputs(final_requests[-1].body)["c_slow"]


# -- 4. the key never reaches the sandbox ---------------------------------------------------------------

SECRET_KEY = "sk-paddock-e2e-secret-9d3b77c1aa0e"


def test_sandbox_pod_never_sees_the_api_key(
    paddock: Paddock, kube: Path, kubectl: Kubectl, harness: Callable[..., HarnessProcess], fake_model: Any
) -> None:
    ns = paddock.namespace
    script = [exec_turn("env | sort", "c_env"), final_turn("looked")]
    with_secret = fake_model(script, api_key=SECRET_KEY)
    with_default = fake_model(script, api_key=DEFAULT_KEY)
    secret = {"model-key": base64.b64encode(SECRET_KEY.encode()).decode()}
    paddock.core.create_namespaced_secret(
        ns, client.V1Secret(metadata=client.V1ObjectMeta(name="model-key"), data=secret)
    )
    pod = ready_workspace(paddock, "private", resources=SMALL)
    process = harness()
    ref = {"name": "model-key", "key": "model-key"}
    paddock.create(
        run_manifest("by-secret", workspaceRef={"name": "private"}, model=model(with_secret, apiKeySecretRef=ref))
    )
    wait_phase(paddock, process, "by-secret", "Succeeded")
    paddock.create(run_manifest("by-default", workspaceRef={"name": "private"}, model=model(with_default)))
    wait_phase(paddock, process, "by-default", "Succeeded")
    # Each endpoint got its key (it answers 401 otherwise).
    assert [r.status for r in with_secret.requests] == [200, 200]
    assert [r.status for r in with_default.requests] == [200, 200]

    keys = (SECRET_KEY, DEFAULT_KEY)
    # What the agent's command saw.
    for name in ("by-secret", "by-default"):
        outputs = [e["text"] for e in transcript(kube, ns, name) if e["kind"] == "tool_output"]
        assert outputs and "PATH=" in outputs[0]
        assert not any(k in outputs[0] for k in keys)
        assert "OPENAI" not in outputs[0]
    # The pod's spec: no env or envFrom from secrets, no secret or projected volumes, no token.
    spec = paddock.core.read_namespaced_pod(pod, ns).to_dict()["spec"]
    text = json.dumps(spec, default=str)
    assert not any(k in text for k in keys)
    assert "model-key" not in text
    for container in spec["containers"] + (spec.get("init_containers") or []):
        for env in container.get("env") or []:
            assert env.get("value_from") is None, env
        assert not container.get("env_from"), container["name"]
    for volume in spec["volumes"] or []:
        assert volume.get("secret") is None and volume.get("projected") is None, volume
    assert spec["automount_service_account_token"] is False
    # Inside the pod: the environment, and every readable file outside /proc and /sys.
    pattern = "\n".join(keys)
    env = pod_exec(kubectl, ns, pod, f"cat /proc/1/environ | tr '\\0' '\\n'; env; printf '%s\\n' '{pattern}' > /tmp/k")
    assert "PATH=" in env.stdout
    assert not any(k in env.stdout for k in keys)
    found = pod_exec(
        kubectl,
        ns,
        pod,
        # Fixed strings from /tmp/k (written just above, excluded). Exit 1: no match; 2: no match but some
        # file was unreadable (root-only files: unreadable to the agent too); 124 would be the timeout.
        "timeout 90 grep -rlsF -f /tmp/k --exclude-dir=proc --exclude-dir=sys --exclude=k / ; echo exit=$?",
        timeout=120,
    )
    assert found.stdout.strip() in {"exit=1", "exit=2"}, found.stdout
    mounted = pod_exec(kubectl, ns, pod, "cat /proc/mounts").stdout
    assert "serviceaccount" not in mounted and "secret" not in mounted, mounted
    # Nor is it in anything the harness wrote into the namespace (checkpoints, transcript, events, status).
    written = kubectl("get", "-n", ns, "configmaps,leases,events,agentruns", "-o", "json").stdout
    assert not any(k in written for k in keys)


# -- 5. model errors -----------------------------------------------------------------------------------


def test_rate_limits_are_retried_and_bad_keys_fail_clearly(
    paddock: Paddock, harness: Callable[..., HarnessProcess], fake_model: Any
) -> None:
    limited = fake_model(
        [{"error": {"status": 429, "retryAfter": 1, "times": 2}}, exec_turn("echo ok", "c_ok"), final_turn("ok")],
        api_key=DEFAULT_KEY,
    )
    locked = fake_model([final_turn("never")], api_key="sk-some-other-key-0000")
    ready_workspace(paddock, "models", resources=SMALL)
    process = harness()
    paddock.create(run_manifest("limited", workspaceRef={"name": "models"}, model=model(limited)))
    done = wait_phase(paddock, process, "limited", "Succeeded")
    assert done["status"]["output"] == "ok"
    first_turn = [r for r in limited.requests if r.turn == 0]
    assert [r.status for r in first_turn] == [429, 429, 200]
    gaps = [b.time - a.time for a, b in itertools.pairwise(first_turn)]
    assert all(gap >= 0.9 for gap in gaps), gaps  # Retry-After: 1 honoured
    assert limited.failures == []

    paddock.create(run_manifest("locked", workspaceRef={"name": "models"}, model=model(locked)))
    failed = wait_phase(paddock, process, "locked", "Failed")
    error = failed["status"]["lastError"]
    assert error["reason"] == "ModelAuthenticationFailed"
    assert "401" in error["message"]
    assert "Incorrect API key" in error["message"]
    assert DEFAULT_KEY not in json.dumps(failed)
    assert [r.status for r in locked.requests] == [401]  # not retried
    assert (condition(failed, "Finished") or {}).get("reason") == "ModelAuthenticationFailed"


@pytest.mark.skipif(not os.environ.get("OPENAI_API_KEY"), reason="opt-in: set OPENAI_API_KEY to run against OpenAI")
def test_one_small_run_against_the_real_openai_api(
    paddock: Paddock, harness: Callable[..., HarnessProcess], kubectl: Kubectl
) -> None:
    """The same path as every other test, with a real model: the harness's default key, no baseURL."""
    pod = ready_workspace(paddock, "real", resources=SMALL)
    process = harness(api_key=os.environ["OPENAI_API_KEY"])
    prompt = "Create a file answer.txt containing the number 42 (just the digits), then reply with the word done."
    paddock.create(
        run_manifest(
            "real",
            workspaceRef={"name": "real"},
            prompt=prompt,
            model={"name": os.environ.get("PADDOCK_TEST_MODEL", "gpt-5-mini")},
            limits={"maxTurns": 10, "timeoutSeconds": 300},
        )
    )
    run = wait_phase(paddock, process, "real", "Succeeded", timeout=300)
    assert run["status"]["usage"]["totalTokens"] > 0
    assert pod_exec(kubectl, paddock.namespace, pod, "cat /workspace/answer.txt").stdout.strip() == "42"
