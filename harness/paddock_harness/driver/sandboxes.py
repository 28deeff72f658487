"""Which sandbox a run executes in, and the session lifecycle the driver owns.

The driver creates (or resumes) ONE live session per drive and hands it to every Runner segment through
``SandboxRunConfig(session=...)``, so the runner never creates or deletes sessions itself. The session
state is saved in the run's checkpoint, so a restarted harness resumes the same sandbox.

`SandboxProvider` is injectable: `KubernetesSandboxProvider` binds runs to their AgentWorkspace pod;
`LocalSandboxProvider` (UnixLocal, one host directory per workspace) makes the driver testable without a
cluster. It offers no isolation: tests and local development only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from agents.sandbox import Manifest
from agents.sandbox.sandboxes.unix_local import UnixLocalSandboxClient
from agents.sandbox.session.sandbox_client import BaseSandboxClient
from agents.sandbox.session.sandbox_session import SandboxSession
from agents.sandbox.session.sandbox_session_state import SandboxSessionState
from agents.sandbox.snapshot import NoopSnapshotSpec

from ..sandbox import KubernetesSandboxClient, KubernetesSandboxClientOptions

log = logging.getLogger("paddock.harness.sandbox")
CLOSE_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class SandboxTarget:
    client: BaseSandboxClient[Any]
    options: Any
    manifest_root: str | None = None
    """Root to put in the manifest; None lets the client choose (the workspace volume's mount path)."""


class SandboxProvider(Protocol):
    def target(self, namespace: str, workspace: str) -> SandboxTarget: ...


class KubernetesSandboxProvider:
    """Runs execute in their AgentWorkspace pod through pods/exec."""

    def __init__(self, client: KubernetesSandboxClient, *, ready_timeout_seconds: float = 300.0) -> None:
        self.client = client
        self.ready_timeout_seconds = ready_timeout_seconds

    def target(self, namespace: str, workspace: str) -> SandboxTarget:
        options = KubernetesSandboxClientOptions(
            namespace=namespace, workspace=workspace, ready_timeout_seconds=self.ready_timeout_seconds
        )
        return SandboxTarget(client=self.client, options=options)


class _PreservingLocalClient(UnixLocalSandboxClient):
    """UnixLocal whose resume keeps the workspace directory as it is (like a PVC), instead of
    re-materializing the manifest over the agent's changes."""

    async def resume(self, state: SandboxSessionState) -> SandboxSession:
        session = await super().resume(state)
        session._inner._set_start_state_preserved(True, system=False)
        return session


class LocalSandboxProvider:
    """One host directory per workspace under `base_dir` (tests and local development; no isolation)."""

    def __init__(self, base_dir: str | Path) -> None:
        self.base_dir = Path(base_dir)
        self.client = _PreservingLocalClient()

    def root(self, namespace: str, workspace: str) -> Path:
        return self.base_dir / namespace / workspace

    def target(self, namespace: str, workspace: str) -> SandboxTarget:
        root = self.root(namespace, workspace)
        root.mkdir(parents=True, exist_ok=True)
        return SandboxTarget(client=self.client, options=None, manifest_root=str(root))


async def open_session(
    target: SandboxTarget, manifest: Manifest, saved_state: dict[str, Any] | None
) -> tuple[SandboxSession, bool]:
    """A started session: resumed from `saved_state` when there is one, else created. (session, resumed)."""
    client = target.client
    if saved_state is not None:
        state = client.deserialize_session_state(saved_state)
        session = await client.resume(state)
        resumed = True
    else:
        session = await client.create(snapshot=NoopSnapshotSpec(), manifest=manifest, options=target.options)
        resumed = False
    try:
        await session.start()
    except BaseException:
        await close_session(target, session)
        raise
    return session, resumed


def session_state(target: SandboxTarget, session: SandboxSession) -> dict[str, Any]:
    return dict(target.client.serialize_session_state(session.state))


async def close_session(target: SandboxTarget, session: SandboxSession) -> None:
    """Release the session. Clients keep user data: KubernetesSandboxClient never deletes an attached
    workspace; the local provider's roots are not owned by the session."""
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
            with contextlib.suppress(Exception):
                await session.shutdown()
            await target.client.delete(session)
    except Exception as error:  # teardown must never mask the run's outcome
        log.warning("releasing the sandbox session failed: %s", error)
