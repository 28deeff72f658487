"""pods/exec over the Kubernetes websocket channel protocol (v5, falling back to v4).

Frames are binary; the first byte is the channel: 0 stdin, 1 stdout, 2 stderr, 3 status (a JSON
`metav1.Status` sent once when the process ends), 4 resize, and with v5 255 "close channel"
(used to close stdin). The exit code comes only from the status channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Final

import aiohttp

from .commands import PGID_MARKER, kill_command
from .kube import KubeApi, q

logger = logging.getLogger(__name__)

PROTOCOLS: Final = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, STATUS, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
_STDIN_CHUNK: Final = 256 * 1024
_MARKER_MAX: Final = len(PGID_MARKER) + 24


class ExecStreamError(Exception):
    """The exec could not be carried out or its result is unknown.

    `retry_safe` is True only when the command certainly did not start (the websocket handshake
    was refused), so running it again cannot duplicate side effects.
    """

    def __init__(
        self, message: str, *, reason: str, retry_safe: bool, status: int = 0, pgid: int | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_safe = retry_safe
        self.status = status
        self.pgid = pgid


class ExecStreamTimeoutError(Exception):
    def __init__(self, *, pgid: int | None, stdout: bytes, stderr: bytes) -> None:
        super().__init__("exec timed out")
        self.pgid = pgid
        self.stdout = stdout
        self.stderr = stderr


@dataclass
class RawExecResult:
    stdout: bytes
    stderr: bytes
    exit_code: int
    pgid: int | None = None
    protocol: str = ""


def exit_code_from_status(status: Mapping[str, Any]) -> int:
    """Map the status-channel object to an exit code.

    `Success` -> 0; `NonZeroExitCode` with a cause `{reason: ExitCode, message: N}` -> N (a signal
    death of the wrapper shell's child is already 128+N there). Anything else means the process
    never ran or its fate is unknown, which is a transport failure, not an exit code.
    """
    if status.get("status") == "Success":
        return 0
    details = status.get("details") or {}
    causes = details.get("causes") or [] if isinstance(details, Mapping) else []
    if status.get("reason") == "NonZeroExitCode":
        for cause in causes:
            if isinstance(cause, Mapping) and cause.get("reason") == "ExitCode":
                try:
                    return int(str(cause.get("message", "")).strip())
                except ValueError:
                    break
    message = str(status.get("message") or status)
    raise ExecStreamError(
        f"exec failed: {message}", reason=str(status.get("reason") or "exec_failed"), retry_safe=False
    )


@dataclass
class Demuxer:
    """Split channel frames into stdout/stderr/status and strip the PGID announcement.

    The wrapper prints `PGID_MARKER<pgid>\\n` on stderr before the command starts, so it is always
    the first stderr line when present.
    """

    stdout_sink: IO[bytes] | None = None
    max_output: int | None = None
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    status: dict[str, Any] | None = None
    pgid: int | None = None
    stdout_bytes: int = 0
    _marker_pending: bool = True
    _marker_buf: bytearray = field(default_factory=bytearray)
    _status_buf: bytearray = field(default_factory=bytearray)

    def feed(self, frame: bytes) -> None:
        if not frame:
            return
        channel, data = frame[0], frame[1:]
        if not data:
            return  # kubelet announces each channel with an empty frame
        if channel == STDOUT:
            self.stdout_bytes += len(data)
            if self.stdout_sink is not None:
                self.stdout_sink.write(data)
            else:
                self.stdout += data
        elif channel == STDERR:
            self._feed_stderr(data)
        elif channel == STATUS:
            self._status_buf += data
            try:
                parsed = json.loads(bytes(self._status_buf))
            except ValueError:
                return  # a status larger than one frame: wait for the rest
            self.status = parsed if isinstance(parsed, dict) else {"message": str(parsed)}
        self._check_limit()

    def _feed_stderr(self, data: bytes) -> None:
        if not self._marker_pending:
            self.stderr += data
            return
        self._marker_buf += data
        head = bytes(self._marker_buf[: len(PGID_MARKER)])
        if not PGID_MARKER.startswith(head):
            self._flush_marker_buf()
            return
        newline = self._marker_buf.find(b"\n")
        if newline < 0:
            if len(self._marker_buf) > _MARKER_MAX:
                self._flush_marker_buf()
            return
        line = bytes(self._marker_buf[len(PGID_MARKER) : newline])
        rest = self._marker_buf[newline + 1 :]
        with contextlib.suppress(ValueError):
            self.pgid = int(line)
        self._marker_pending = False
        self._marker_buf = bytearray()
        self.stderr += rest

    def _flush_marker_buf(self) -> None:
        self._marker_pending = False
        self.stderr += self._marker_buf
        self._marker_buf = bytearray()

    def finish(self) -> None:
        if self._marker_pending and self._marker_buf:
            self._flush_marker_buf()

    def _check_limit(self) -> None:
        if self.max_output is None:
            return
        in_memory = len(self.stderr) + (0 if self.stdout_sink is not None else len(self.stdout))
        if in_memory > self.max_output:
            raise ExecStreamError(
                f"exec output exceeded {self.max_output} bytes",
                reason="output_limit_exceeded",
                retry_safe=False,
                pgid=self.pgid,
            )


def stdin_frame(data: bytes) -> bytes:
    return bytes([STDIN]) + data


def close_stdin_frame() -> bytes:
    return bytes([CLOSE, STDIN])


def exec_params(argv: Sequence[str], *, container: str | None, stdin: bool) -> list[tuple[str, str]]:
    params: list[tuple[str, str]] = [("command", part) for part in argv]
    params += [("stdout", "true"), ("stderr", "true"), ("stdin", "true" if stdin else "false")]
    if container:
        params.append(("container", container))
    return params


async def _send_stdin(
    ws: aiohttp.ClientWebSocketResponse[bool], payload: bytes | IO[bytes], length: int, v5: bool
) -> None:
    remaining = length
    while remaining > 0:
        if isinstance(payload, bytes | bytearray | memoryview):
            offset = length - remaining
            chunk = bytes(payload[offset : offset + min(_STDIN_CHUNK, remaining)])
        elif isinstance(payload, io.BytesIO):
            chunk = payload.read(min(_STDIN_CHUNK, remaining))
        else:
            # A file on disk: read off the event loop.
            chunk = await asyncio.to_thread(payload.read, min(_STDIN_CHUNK, remaining))
        if not chunk:
            raise ExecStreamError(
                "stdin stream ended before its declared length", reason="short_stdin", retry_safe=False
            )
        await ws.send_bytes(stdin_frame(chunk))
        remaining -= len(chunk)
    if v5:
        await ws.send_bytes(close_stdin_frame())


async def run_exec(
    api: KubeApi,
    *,
    namespace: str,
    pod: str,
    container: str | None,
    argv: Sequence[str],
    timeout_s: float | None,
    stdin: bytes | IO[bytes] | None = None,
    stdin_length: int | None = None,
    stdout_sink: IO[bytes] | None = None,
    max_output: int | None = None,
    connect_timeout: float = 30.0,
) -> RawExecResult:
    """Run `argv` in the pod and return its output and exact exit code.

    Raises `ExecStreamTimeoutError` when `timeout_s` elapses (the caller kills the process group using
    `pgid`), `ExecStreamError` on API/transport failures.
    """
    path = f"/api/v1/namespaces/{q(namespace)}/pods/{q(pod)}/exec"
    if stdin is not None and stdin_length is None:
        if not isinstance(stdin, bytes | bytearray):
            raise ValueError("stdin_length is required for a stream")
        stdin_length = len(stdin)
    demux = Demuxer(stdout_sink=stdout_sink, max_output=max_output)
    ws: aiohttp.ClientWebSocketResponse[bool] | None = None
    protocol = ""
    sender: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(timeout_s):
            try:
                ws = await api.ws_connect(
                    path,
                    params=exec_params(argv, container=container, stdin=stdin is not None),
                    protocols=PROTOCOLS,
                    handshake_timeout_s=connect_timeout if timeout_s is None else min(connect_timeout, timeout_s),
                )
            except aiohttp.WSServerHandshakeError as e:
                raise ExecStreamError(
                    f"exec handshake refused: HTTP {e.status} {e.message}",
                    reason="handshake_refused",
                    retry_safe=True,
                    status=e.status,
                ) from e
            except (aiohttp.ClientError, OSError) as e:
                raise ExecStreamError(
                    f"exec connect failed: {type(e).__name__}: {e}", reason="connect_failed", retry_safe=True
                ) from e
            except TimeoutError as e:
                # The handshake's own bound (the caller's deadline surfaces as a cancellation).
                raise ExecStreamError("exec connect timed out", reason="connect_timeout", retry_safe=True) from e
            protocol = ws.protocol or ""
            if protocol not in PROTOCOLS:
                raise ExecStreamError(
                    f"apiserver selected unsupported exec protocol {protocol!r}",
                    reason="unsupported_protocol",
                    retry_safe=True,
                )
            if stdin is not None:
                assert stdin_length is not None
                sender = asyncio.create_task(_send_stdin(ws, stdin, stdin_length, protocol.startswith("v5")))
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    demux.feed(msg.data)
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    raise ExecStreamError(
                        f"exec stream error: {ws.exception()}", reason="stream_error", retry_safe=False
                    )
            if sender is not None and sender.done() and not sender.cancelled():
                exc = sender.exception()
                if exc is not None and demux.status is None:
                    raise exc
    except TimeoutError as e:
        demux.finish()
        raise ExecStreamTimeoutError(pgid=demux.pgid, stdout=bytes(demux.stdout), stderr=bytes(demux.stderr)) from e
    except ExecStreamError as e:
        if e.pgid is None:
            e.pgid = demux.pgid
        raise
    except (aiohttp.ClientError, OSError) as e:
        raise ExecStreamError(
            f"exec stream dropped: {type(e).__name__}: {e}",
            reason="stream_dropped",
            retry_safe=False,
            pgid=demux.pgid,
        ) from e
    finally:
        if sender is not None:
            if not sender.done():
                sender.cancel()
            # Retrieve its outcome: a send failing because the process already exited is normal.
            with contextlib.suppress(BaseException):
                await sender
        if ws is not None and not ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2.0)
    demux.finish()
    if demux.status is None:
        raise ExecStreamError(
            "exec stream closed without an exit status",
            reason="no_status",
            retry_safe=False,
            pgid=demux.pgid,
        )
    exit_code = exit_code_from_status(demux.status)
    return RawExecResult(
        stdout=bytes(demux.stdout),
        stderr=bytes(demux.stderr),
        exit_code=exit_code,
        pgid=demux.pgid,
        protocol=protocol,
    )


async def kill_exec(
    api: KubeApi, *, namespace: str, pod: str, container: str | None, pgid: int | None, exec_id: str
) -> bool:
    """Kill a timed-out command's process group (and tagged escapees) via a second exec.

    Returns True when the kill script confirmed nothing is left.
    """
    try:
        result = await run_exec(
            api,
            namespace=namespace,
            pod=pod,
            container=container,
            argv=kill_command(pgid, exec_id),
            timeout_s=20.0,
        )
    except (ExecStreamError, ExecStreamTimeoutError) as e:
        logger.warning("could not kill timed-out exec %s in %s/%s: %s", exec_id, namespace, pod, e)
        return False
    return result.exit_code == 0
