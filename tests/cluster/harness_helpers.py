"""Helpers for cluster tests that drive runs with the real harness: the harness as a child process, the
fake model in the test process, and access to what a run leaves behind (transcript, workspace files)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from paddock_helpers import REPO, wait_for

from paddock_harness.driver.transcript import read_transcript
from paddock_operator.controllers.kube import Kube, load_api_client

# What the harness holds as its default model key in these tests: distinctive, so a leak is easy to find.
DEFAULT_KEY = "sk-paddock-e2e-default-4f1c9a7e2b"


def free_port() -> int:
    """A TCP port nothing listens on right now (the harness binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HarnessProcess:
    """`python -m paddock_harness --namespace NS` as a child process, logging to a file.

    The health port is a free port so that `wait_ready` can tell when the first list of runs is done;
    metrics are off. Short lease and resync periods let a replacement take over a killed harness's runs
    within seconds instead of the production default of half a minute.
    """

    def __init__(
        self,
        kubeconfig: Path,
        namespace: str,
        log_path: Path,
        *extra: str,
        api_key: str | None = DEFAULT_KEY,
        lease_seconds: float = 6,
        resync_seconds: float = 3,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.log_path = log_path
        self.extra = list(extra)
        self.api_key = api_key
        self.lease_seconds = lease_seconds
        self.resync_seconds = resync_seconds
        self.health_port = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> HarnessProcess:
        self.health_port = free_port()
        args = [
            sys.executable,
            "-m",
            "paddock_harness",
            "--namespace",
            self.namespace,
            "--metrics-port",
            "0",
            "--health-port",
            str(self.health_port),
            "--lease-duration-seconds",
            str(self.lease_seconds),
            "--resync-seconds",
            str(self.resync_seconds),
            *self.extra,
        ]
        # Only what the harness needs: no stray OPENAI_* of the developer's shell reaches it.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PADDOCK_"))}
        env["KUBECONFIG"] = str(self.kubeconfig)
        if self.api_key is not None:
            env["OPENAI_API_KEY"] = self.api_key
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True
        )
        log.close()
        return self

    def ready(self) -> bool:
        self.check_alive()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/readyz", timeout=2) as answer:
                return bool(json.loads(answer.read()).get("ready"))
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def wait_ready(self, timeout: float = 90) -> None:
        """Until the harness has listed the runs of its namespace (it imports the Agents SDK first: slow)."""
        try:
            wait_for("the harness to be ready", self.ready, timeout=timeout, interval=0.5)
        except AssertionError as error:
            raise AssertionError(f"{error}\nharness log:\n{self.logs()[-4000:]}") from None

    def check_alive(self) -> None:
        assert self.process is not None, "the harness was not started"
        code = self.process.poll()
        if code is not None:
            raise AssertionError(f"the harness exited with {code}:\n{self.logs()[-4000:]}")

    def kill(self) -> None:
        """SIGKILL: the harness gets no chance to save or release anything."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=20)

    def stop(self) -> int | None:
        """SIGTERM and wait; the exit code (None when it had to be killed)."""
        if self.process is None:
            return None
        if self.process.poll() is not None:
            return self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            return None

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def transcript(kubeconfig: Path, namespace: str, run: str) -> list[dict[str, Any]]:
    """The run's transcript as `kubectl paddock logs` reads it."""
    api = load_api_client(str(kubeconfig))
    try:
        return read_transcript(Kube(api), namespace, run)
    finally:
        api.close()


def pod_exec(
    kubectl: Callable[..., subprocess.CompletedProcess[str]],
    namespace: str,
    pod: str,
    script: str,
    *,
    check: bool = True,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """`sh -c script` in the sandbox container, through kubectl exec (not through the harness's client)."""
    return kubectl(
        "exec", "-n", namespace, pod, "-c", "sandbox", "--", "sh", "-c", script, check=check, timeout=timeout
    )


def exec_turn(cmd: str, call_id: str, **extra: Any) -> dict[str, Any]:
    return {"output": [{"type": "exec_command", "cmd": cmd, "callId": call_id}], **extra}


def final_turn(text: str, **extra: Any) -> dict[str, Any]:
    return {"output": [{"type": "message", "text": text, "phase": "final_answer"}], **extra}
