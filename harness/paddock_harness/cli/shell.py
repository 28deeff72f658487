"""`kubectl paddock shell WORKSPACE [-- CMD...]`: a shell in the sandbox pod.

With a kubectl binary at hand we exec it (`kubectl exec -it`), which handles every terminal corner case;
otherwise the pods/exec websocket of the Kubernetes client is driven here, with the terminal in raw mode.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import shutil
import signal
import ssl
import sys
from collections.abc import Iterator, Sequence
from typing import Any, Final

from kubernetes.stream import stream

from paddock_operator.builders.workspace import SANDBOX_CONTAINER

from .cluster import WORKSPACES, CliError, Cluster
from .commands import Session

KUBECTL_ENV: Final = "PADDOCK_KUBECTL"
_STDIN, _STDOUT, _STDERR, _ERROR, _RESIZE = 0, 1, 2, 3, 4
_SHELL_SCRIPT: Final = 'cd "$1" 2>/dev/null; if command -v bash >/dev/null 2>&1; then exec bash; fi; exec sh'


def sandbox_pod(workspace: dict[str, Any]) -> str:
    """The pod to exec into, or a CliError saying why there is none. Pure."""
    name = workspace["metadata"]["name"]
    status = workspace.get("status") or {}
    phase = status.get("phase") or "Pending"
    if phase == "Suspended":
        raise CliError(
            f"workspace {name} is suspended (its pod is gone, its volume kept); resume it with: "
            f'kubectl patch agentworkspace {name} --type merge -p \'{{"spec":{{"lifecycle":{{"suspend":false}}}}}}\''
        )
    if phase != "Ready" or not status.get("podName"):
        message = f": {status['message']}" if status.get("message") else ""
        raise CliError(f"workspace {name} is not ready (phase {phase}{message})")
    return str(status["podName"])


def shell_command(workspace: dict[str, Any], cmd: Sequence[str]) -> list[str]:
    """The user's command, or bash (else sh) started in the workspace directory. Pure."""
    if cmd:
        return list(cmd)
    mount = ((workspace.get("spec") or {}).get("storage") or {}).get("mountPath") or "/workspace"
    return ["/bin/sh", "-c", _SHELL_SCRIPT, "sh", str(mount)]


def kubectl_argv(
    kubectl: str,
    *,
    kubeconfig: str | None,
    context: str | None,
    namespace: str,
    pod: str,
    command: Sequence[str],
    tty: bool,
) -> list[str]:
    """`kubectl exec` with the same cluster flags we were given. Pure."""
    argv = [kubectl]
    if kubeconfig:
        argv += ["--kubeconfig", kubeconfig]
    if context:
        argv += ["--context", context]
    argv += ["exec", "-it" if tty else "-i", "-n", namespace, pod, "-c", SANDBOX_CONTAINER, "--", *command]
    return argv


def find_kubectl() -> str | None:
    return os.environ.get(KUBECTL_ENV) or shutil.which("kubectl")


def cmd_shell(args: argparse.Namespace, session: Session) -> int:
    cluster = session.cluster()
    workspace = cluster.require(WORKSPACES, args.workspace)
    pod = sandbox_pod(workspace)
    command = shell_command(workspace, args.cmd)
    tty = sys.stdin.isatty() and sys.stdout.isatty()
    kubectl = find_kubectl()
    if kubectl:
        argv = kubectl_argv(
            kubectl,
            kubeconfig=session.kubeconfig,
            context=session.context,
            namespace=cluster.namespace,
            pod=pod,
            command=command,
            tty=tty,
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os.execvp(argv[0], argv)  # replaces this process: kubectl's exit code becomes ours
    return stream_exec(cluster, pod, command, tty=tty)


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def resize_message() -> str:
    size = shutil.get_terminal_size((80, 24))
    return json.dumps({"Width": size.columns, "Height": size.lines})


def stream_exec(cluster: Cluster, pod: str, command: Sequence[str], *, tty: bool) -> int:
    """pods/exec over the Kubernetes client's websocket; returns the command's exit code."""
    from kubernetes.client import CoreV1Api  # slow to import: only here, on the rare path without kubectl

    ws = stream(
        CoreV1Api(cluster.connection.api_client).connect_get_namespaced_pod_exec,
        pod,
        cluster.namespace,
        container=SANDBOX_CONTAINER,
        command=list(command),
        stdin=True,
        stdout=True,
        stderr=not tty,  # with a TTY the remote side merges stderr into stdout
        tty=tty,
        binary=True,
        _preload_content=False,
    )
    stdin_fd, stdout_fd, stderr_fd = sys.stdin.fileno(), sys.stdout.fileno(), sys.stderr.fileno()
    resized = [True]

    def on_winch(_signum: int, _frame: Any) -> None:
        resized[0] = True

    previous = signal.signal(signal.SIGWINCH, on_winch) if tty else None
    try:
        with raw_terminal(stdin_fd) if tty else contextlib.nullcontext():
            stdin_open = True
            while ws.is_open():
                if tty and resized[0]:
                    resized[0] = False
                    ws.write_channel(_RESIZE, resize_message().encode())
                sock = ws.sock.sock
                watched = [sock, stdin_fd] if stdin_open else [sock]
                pending = isinstance(sock, ssl.SSLSocket) and sock.pending()
                ready = [sock] if pending else select.select(watched, [], [], 1.0)[0]
                if sock in ready:
                    ws.update(timeout=0)
                for channel, fd in ((_STDOUT, stdout_fd), (_STDERR, stderr_fd)):
                    data = ws.read_channel(channel)
                    if data:
                        os.write(fd, data)
                if stdin_fd in ready:
                    data = os.read(stdin_fd, 4096)
                    if data:
                        ws.write_channel(_STDIN, data)
                    else:  # end of input: tell the remote side (v5 protocol), stop watching stdin
                        stdin_open = False
                        ws.close_channel(_STDIN)
    finally:
        if previous is not None:
            signal.signal(signal.SIGWINCH, previous)
        ws.close()
    code = ws.returncode
    return int(code) if code is not None else 1
