"""Helpers for cluster tests of Paddock: the operator as a real process, waiting on real objects."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

REPO = Path(__file__).resolve().parents[2]
GROUP, VERSION = "paddock.dev", "v1alpha1"
T = TypeVar("T")


def sandbox_image() -> str:
    """The offline-built sandbox image (images/build.sh), or PADDOCK_TEST_SANDBOX_IMAGE for other clusters."""
    override = os.environ.get("PADDOCK_TEST_SANDBOX_IMAGE")
    if override:
        return override
    refs = Path.home() / ".cache" / "paddock" / "images" / "refs.env"
    for line in refs.read_text().splitlines() if refs.is_file() else []:
        if line.startswith("SANDBOX_IMAGE="):
            return line.split("=", 1)[1].strip()
    return "localhost/paddock/sandbox:dev"


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60, interval: float = 0.25) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` and the last value otherwise."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


class OperatorProcess:
    """`python -m paddock_operator` as a child process, logging to a file."""

    def __init__(self, kubeconfig: Path, namespaces: list[str], log_path: Path, *extra: str) -> None:
        self.kubeconfig = kubeconfig
        self.namespaces = namespaces
        self.log_path = log_path
        self.extra = list(extra)
        self.process: subprocess.Popen[bytes] | None = None
        self.leader_election = False

    def start(self) -> None:
        args = [
            sys.executable,
            "-m",
            "paddock_operator",
            "--metrics-port",
            "0",
            "--health-port",
            "0",
            *([] if self.leader_election else ["--no-leader-election"]),
            "--resync-seconds",
            "20",
            *self.extra,
        ]
        for namespace in self.namespaces:
            args += ["--namespace", namespace]
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True
        )

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Paddock:
    """Typed-enough access to our custom resources in one namespace."""

    def __init__(self, api_client: Any, namespace: str) -> None:
        self.namespace = namespace
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        plural = {"AgentWorkspace": "agentworkspaces", "AgentRun": "agentruns"}[manifest["kind"]]
        created: dict[str, Any] = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, manifest
        )
        return created

    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, plural, name
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return found

    def patch(self, plural: str, name: str, patch: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, name, patch)

    def delete(self, plural: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, name)

    def workspace(self, name: str) -> dict[str, Any] | None:
        return self.get("agentworkspaces", name)

    def run(self, name: str) -> dict[str, Any] | None:
        return self.get("agentruns", name)

    def phase(self, plural: str, name: str) -> str | None:
        obj = self.get(plural, name)
        return ((obj or {}).get("status") or {}).get("phase")

    def wait_workspace_phase(self, name: str, phase: str, timeout: float = 60) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            ws = self.workspace(name)
            return ws if ws and (ws.get("status") or {}).get("phase") == phase else None

        try:
            return wait_for(f"workspace {name} phase {phase}", probe, timeout)
        except AssertionError as error:
            raise AssertionError(f"{error}\nworkspace: {yaml.safe_dump(self.workspace(name))}") from None

    def wait_run_phase(self, name: str, phase: str, timeout: float = 60) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            run = self.run(name)
            return run if run and (run.get("status") or {}).get("phase") == phase else None

        try:
            return wait_for(f"run {name} phase {phase}", probe, timeout)
        except AssertionError as error:
            raise AssertionError(f"{error}\nrun: {yaml.safe_dump(self.run(name))}") from None

    def pod(self, name: str) -> Any | None:
        try:
            return self.core.read_namespaced_pod(name, self.namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise


def workspace_manifest(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AgentWorkspace",
        "metadata": {"name": name},
        "spec": {"image": sandbox_image(), **spec},
    }


def run_manifest(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AgentRun",
        "metadata": {"name": name},
        "spec": {"prompt": "say hello", **spec},
    }


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), None)
