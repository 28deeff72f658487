"""`BaseSandboxSession` that executes inside a workspace pod through pods/exec."""

from __future__ import annotations

import asyncio
import io
import logging
import tarfile
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Final, cast

from agents.sandbox.errors import (
    ExecTimeoutError,
    ExecTransportError,
    WorkspaceArchiveReadError,
    WorkspaceArchiveWriteError,
    WorkspaceReadNotFoundError,
    WorkspaceStartError,
)
from agents.sandbox.manifest import Manifest
from agents.sandbox.session.base_sandbox_session import BaseSandboxSession
from agents.sandbox.session.runtime_helpers import RESOLVE_WORKSPACE_PATH_HELPER, RuntimeHelperScript
from agents.sandbox.session.workspace_payloads import coerce_write_payload
from agents.sandbox.snapshot import SnapshotBase, SnapshotSpec, resolve_snapshot
from agents.sandbox.types import ExecResult, User
from agents.sandbox.util.tar_utils import UnsafeTarMemberError, strip_tar_member_prefix, validate_tarfile
from agents.sandbox.workspace_paths import posix_path_for_error, sandbox_path_str

from . import commands
from .exec_stream import ExecStreamError, ExecStreamTimeoutError, RawExecResult, kill_exec, run_exec
from .kube import TRANSIENT_STATUS, KubeApi, KubeApiError
from .state import KubernetesSandboxSessionState
from .workspace_api import ActivityReporter, PodTarget, WorkspaceApi, WorkspaceError, pod_is_running, pod_path

logger = logging.getLogger(__name__)

DEFAULT_MAX_OUTPUT_BYTES: Final = 256 * 1024 * 1024
_ARCHIVE_TIMEOUT_S: Final = 900.0
_SPOOL_MAX: Final = 16 * 1024 * 1024


class KubernetesSandboxSession(BaseSandboxSession):
    """A sandbox session bound to one pod (normally the pod of an AgentWorkspace).

    With `state.workspace` set, the session follows the workspace: if its pod is recreated the
    session rebinds to the new pod on the same volume. With `state.workspace` None it is bound to
    exactly (namespace, pod, container) — see `KubernetesSandboxClient.session_for_pod`.
    """

    state: KubernetesSandboxSessionState

    def __init__(
        self,
        *,
        state: KubernetesSandboxSessionState,
        api: KubeApi,
        activity: ActivityReporter | None = None,
        ready_timeout_s: float = 300.0,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    ) -> None:
        self.state = state
        self._api = api
        self._workspaces = WorkspaceApi(api)
        self._activity = activity
        self._ready_timeout_s = ready_timeout_s
        self._max_output_bytes = max_output_bytes

    @classmethod
    def bind(
        cls,
        api: KubeApi,
        *,
        namespace: str,
        pod: str,
        container: str | None = None,
        manifest: Manifest | None = None,
        snapshot: SnapshotSpec | SnapshotBase | None = None,
    ) -> KubernetesSandboxSession:
        """A session bound directly to an existing pod (no AgentWorkspace involved)."""
        session_id = uuid.uuid4()
        state = KubernetesSandboxSessionState(
            session_id=session_id,
            manifest=manifest or Manifest(),
            snapshot=resolve_snapshot(snapshot, str(session_id)),
            namespace=namespace,
            pod_name=pod,
            container=container,
        )
        return cls(state=state, api=api)

    # ---- lifecycle -------------------------------------------------------------------------

    def _runtime_helpers(self) -> tuple[RuntimeHelperScript, ...]:
        return (RESOLVE_WORKSPACE_PATH_HELPER,)

    def _current_runtime_helper_cache_key(self) -> object | None:
        # Helpers live in the pod's /tmp: a new pod needs them installed again.
        return self.state.pod_uid or self.state.pod_name

    async def _validate_path_access(self, path: Path | str, *, for_write: bool = False) -> Path:
        # Resolve symlinks and `..` inside the pod, where the files are.
        return await self._validate_remote_path_access(path, for_write=for_write)

    async def _ensure_backend_started(self) -> None:
        try:
            if self.state.workspace is not None:
                if self._activity is not None:
                    self._activity.touch()  # tell an idle-suspending operator we are back
                target = await self._workspaces.wait_pod(
                    self.state.namespace, self.state.workspace, self.state.container, timeout_s=self._ready_timeout_s
                )
            else:
                target = await self._workspaces.pod_target(
                    self.state.namespace, self.state.pod_name, self.state.container
                )
        except (WorkspaceError, KubeApiError) as e:
            raise WorkspaceStartError(
                path=Path(self.state.manifest.root),
                context={"reason": getattr(e, "reason", "api_error"), "detail": str(e)},
                cause=e,
            ) from e
        self._bind_target(target)

    def _bind_target(self, target: PodTarget) -> None:
        if target.uid != self.state.pod_uid or target.name != self.state.pod_name:
            if self.state.pod_uid is not None:
                logger.info(
                    "sandbox %s/%s now runs in pod %s (uid %s)",
                    self.state.namespace,
                    self.state.workspace,
                    target.name,
                    target.uid,
                )
            self.state.pod_name = target.name
            self.state.pod_uid = target.uid or None
        self.state.container = target.container

    async def running(self) -> bool:
        try:
            pod = await self._api.get_or_none(pod_path(self.state.namespace, self.state.pod_name))
            if pod is not None and pod_is_running(pod, self.state.container):
                return True
            if self.state.workspace is None:
                return False
            obj = await self._workspaces.get(self.state.namespace, self.state.workspace)
            if obj is None or (obj.get("status") or {}).get("phase") != "Ready":
                return False
            target = await self._workspaces.resolve_pod(self.state.namespace, obj, self.state.container)
            pod = await self._api.get_or_none(pod_path(self.state.namespace, target.name))
            return pod is not None and pod_is_running(pod, target.container)
        except (KubeApiError, WorkspaceError):
            return False

    async def _shutdown_backend(self) -> None:
        # The pod belongs to the workspace (and the user): nothing to tear down here.
        if self._activity is not None:
            await self._activity.aclose()

    # ---- exec ------------------------------------------------------------------------------

    # The SDK fixes this signature, `timeout` parameter included.
    async def _exec_internal(
        self,
        *command: str | Path,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> ExecResult:
        raw = await self._run([str(c) for c in command], timeout_s=timeout, command_for_errors=command)
        return ExecResult(stdout=raw.stdout, stderr=raw.stderr, exit_code=raw.exit_code)

    async def _run(
        self,
        argv: list[str],
        *,
        timeout_s: float | None,
        command_for_errors: Sequence[str | Path],
        stdin: bytes | IO[bytes] | None = None,
        stdin_length: int | None = None,
        stdout_sink: IO[bytes] | None = None,
    ) -> RawExecResult:
        env = await self.state.manifest.environment.resolve()
        exec_id = uuid.uuid4().hex
        wrapped = commands.wrap_command(argv, root=self.state.manifest.root, env=env, exec_id=exec_id)
        if self._activity is not None:
            self._activity.touch()
        retried = False
        while True:
            try:
                return await run_exec(
                    self._api,
                    namespace=self.state.namespace,
                    pod=self.state.pod_name,
                    container=self.state.container,
                    argv=wrapped,
                    timeout_s=timeout_s,
                    stdin=stdin,
                    stdin_length=stdin_length,
                    stdout_sink=stdout_sink,
                    max_output=self._max_output_bytes,
                )
            except ExecStreamTimeoutError as e:
                killed = await self._kill(e.pgid, exec_id)
                raise ExecTimeoutError(
                    command=command_for_errors,
                    timeout_s=timeout_s,
                    context={"pgid": e.pgid, "killed": killed, "pod": self.state.pod_name},
                    cause=e,
                ) from e
            except ExecStreamError as e:
                if e.reason == "output_limit_exceeded":
                    await self._kill(e.pgid, exec_id)
                if not retried and e.retry_safe and e.status not in (401, 403) and await self._recover_target(e):
                    retried = True
                    continue  # the command never started, so running it once more is safe
                workspace_mode = self.state.workspace is not None
                retryable = e.retry_safe and (
                    e.status == 0 or e.status in TRANSIENT_STATUS or (e.status == 404 and workspace_mode)
                )
                raise ExecTransportError(
                    command=command_for_errors,
                    message=str(e),
                    context={
                        "reason": e.reason,
                        "http_status": e.status,
                        "retry_safe": e.retry_safe,
                        "pod": self.state.pod_name,
                    },
                    cause=e,
                    retryable=retryable,
                ) from e

    async def _kill(self, pgid: int | None, exec_id: str) -> bool:
        return await kill_exec(
            self._api,
            namespace=self.state.namespace,
            pod=self.state.pod_name,
            container=self.state.container,
            pgid=pgid,
            exec_id=exec_id,
        )

    async def _recover_target(self, error: ExecStreamError) -> bool:
        """After a refused exec handshake, decide whether one more attempt makes sense.

        A workspace session waits (bounded) for the workspace's running pod, which may be a new
        one (recreated, resumed from idle suspension) and rebinds to it. A session bound to a
        bare pod only retries a connection-level failure (e.g. a pooled connection the server
        had closed).
        """
        if self.state.workspace is None:
            return error.status == 0
        if self._activity is not None:
            self._activity.touch()  # activity wakes an idle-suspended workspace
        try:
            target = await self._workspaces.wait_pod(
                self.state.namespace, self.state.workspace, self.state.container, timeout_s=self._ready_timeout_s
            )
        except (KubeApiError, WorkspaceError) as e:
            logger.warning("sandbox %s/%s has no usable pod: %s", self.state.namespace, self.state.workspace, e)
            return False
        self._bind_target(target)
        return True

    # ---- files -----------------------------------------------------------------------------

    async def read(self, path: Path, *, user: str | User | None = None) -> io.IOBase:
        workspace_path = await self._validate_path_access(path)
        path_arg = sandbox_path_str(workspace_path)
        result = await self.exec("cat", "--", path_arg, shell=False, user=user)
        if not result.ok():
            await self._raise_read_error_from_exec(
                path=path,
                workspace_path=workspace_path,
                command=("cat", "--", path_arg),
                result=result,
                user=user,
            )
        return io.BytesIO(result.stdout)

    async def _read_bounded(self, path: Path, *, max_bytes: int) -> bytes:
        workspace_path = await self._validate_path_access(path)
        result = await self.exec(
            "/bin/sh",
            "-c",
            'PATH=/usr/bin:/bin; [ -e "$1" ] || exit 44; [ -f "$1" ] || exit 45; head -c "$2" < "$1"',
            "sh",
            sandbox_path_str(workspace_path),
            str(max_bytes),
            shell=False,
            timeout=60.0,
        )
        if result.exit_code == 44:
            raise WorkspaceReadNotFoundError(path=path)
        if not result.ok():
            raise WorkspaceArchiveReadError(path=path, context={"exit_code": result.exit_code})
        return result.stdout

    async def _feed(
        self, argv: list[str], stdin: IO[bytes], length: int, what: tuple[str, str], error_path: Path
    ) -> None:
        """Run `argv` with `length` bytes of `stdin`; any failure is the SDK's WorkspaceArchiveWriteError."""
        try:
            result = await self._run(
                argv, timeout_s=_ARCHIVE_TIMEOUT_S, command_for_errors=what, stdin=stdin, stdin_length=length
            )
        except (ExecTransportError, ExecTimeoutError) as e:
            raise WorkspaceArchiveWriteError(path=error_path, cause=e, retryable=e.retryable) from e
        if result.exit_code != 0:
            stderr = result.stderr.decode("utf-8", "replace")[-4096:]
            raise WorkspaceArchiveWriteError(path=error_path, context={"exit_code": result.exit_code, "stderr": stderr})

    async def write(self, path: Path, data: io.IOBase, *, user: str | User | None = None) -> None:
        payload = coerce_write_payload(path=path, data=data)
        workspace_path = await self._validate_path_access(path, for_write=True)
        path_arg = sandbox_path_str(workspace_path)
        length, stream = await asyncio.to_thread(_spool, cast(IO[bytes], payload.stream))
        argv = self._prepare_exec_command(*commands.write_file_command(path_arg, length), shell=False, user=user)
        with stream:
            await self._feed(argv, stream, length, ("write", path_arg), workspace_path)

    async def persist_workspace(self) -> io.IOBase:
        root = self._workspace_root_path()
        error_root = posix_path_for_error(root)
        if not root.name:
            raise WorkspaceArchiveReadError(path=error_root, context={"reason": "root_is_filesystem_root"})
        excludes = [
            f"--exclude={root.name}/{rel.as_posix().strip('/')}"
            for rel in sorted(self._persist_workspace_skip_relpaths(), key=lambda p: p.as_posix())
            if rel.as_posix().strip("/") not in ("", ".")
        ]
        argv = ["tar", "--anchored", "--no-wildcards", *excludes, "-C", root.parent.as_posix(), "-cf", "-", root.name]
        # Not a `with`: on success the spool is handed to the caller inside the returned stream.
        spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MAX)  # noqa: SIM115
        try:
            result = await self._run(argv, timeout_s=_ARCHIVE_TIMEOUT_S, command_for_errors=argv, stdout_sink=spool)
            # GNU tar exits 1 when a file changed while it was read: the archive is still valid.
            if result.exit_code not in (0, 1):
                raise WorkspaceArchiveReadError(
                    path=error_root,
                    context={"exit_code": result.exit_code, "stderr": result.stderr.decode("utf-8", "replace")[-4096:]},
                )
            spool.seek(0)
            return await asyncio.to_thread(
                strip_tar_member_prefix,
                cast(io.IOBase, spool),
                prefix=root.name,
                relativize_symlinks_under=root,
            )
        except (ExecTransportError, ExecTimeoutError) as e:
            spool.close()
            raise WorkspaceArchiveReadError(path=error_root, cause=e, retryable=e.retryable) from e
        except (UnsafeTarMemberError, tarfile.TarError, OSError) as e:
            spool.close()
            raise WorkspaceArchiveReadError(path=error_root, cause=e) from e
        except BaseException:
            spool.close()
            raise

    async def hydrate_workspace(self, data: io.IOBase) -> None:
        root = self._workspace_root_path()
        error_root = posix_path_for_error(root)
        try:
            length, archive = await asyncio.to_thread(_spool, cast(IO[bytes], data), validate=True)
        except UnsafeTarMemberError as e:
            raise WorkspaceArchiveWriteError(
                path=error_root, context={"reason": e.reason, "member": e.member}, cause=e
            ) from e
        except (tarfile.TarError, OSError, TypeError) as e:
            raise WorkspaceArchiveWriteError(path=error_root, cause=e) from e
        root_arg = root.as_posix()
        argv = [
            "sh",
            "-c",
            'mkdir -p -- "$1" && shift && exec "$@"',
            "sh",
            root_arg,
            *commands.framed_stdin_command(
                length, ["tar", "-x", "--no-same-owner", "--no-overwrite-dir", "-C", root_arg]
            ),
        ]
        with archive:
            await self._feed(argv, archive, length, ("hydrate", root_arg), error_root)


def _spool(stream: IO[bytes], *, validate: bool = False) -> tuple[int, IO[bytes]]:
    """Copy a payload into a seekable temp file (RAM, then disk) to learn its length.

    Blocking: call through `asyncio.to_thread`. Length framing needs the size before sending.
    """
    out = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MAX)  # noqa: SIM115 - returned open to the caller
    try:
        while True:
            chunk = stream.read(1024 * 1024)
            if not chunk:
                break
            if isinstance(chunk, str):
                raise TypeError("workspace payloads must be bytes")
            out.write(chunk)
        length = out.tell()
        if validate:
            out.seek(0)
            with tarfile.open(fileobj=out, mode="r:*") as tar:
                validate_tarfile(tar, allow_external_symlink_targets=False)
        out.seek(0)
        return length, cast(IO[bytes], out)
    except BaseException:
        out.close()
        raise
