"""`BaseSandboxClient` for Paddock AgentWorkspaces (and plain pods)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from pathlib import PurePosixPath

from agents.sandbox.manifest import Manifest
from agents.sandbox.session.dependencies import Dependencies
from agents.sandbox.session.manager import Instrumentation
from agents.sandbox.session.sandbox_client import BaseSandboxClient
from agents.sandbox.session.sandbox_session import SandboxSession
from agents.sandbox.session.sandbox_session_state import SandboxSessionState
from agents.sandbox.snapshot import SnapshotBase, SnapshotSpec, resolve_snapshot

from .kube import KubeApi, KubeConfigSource
from .session import DEFAULT_MAX_OUTPUT_BYTES, KubernetesSandboxSession
from .state import BACKEND_ID, KubernetesSandboxClientOptions, KubernetesSandboxSessionState
from .workspace_api import (
    ACTIVITY_DEBOUNCE_SECONDS,
    ActivityReporter,
    WorkspaceApi,
    WorkspaceError,
    default_container,
    is_ready,
    mount_path_of,
    pod_is_running,
    pod_path,
)

logger = logging.getLogger(__name__)


def manifest_for_root(manifest: Manifest | None, mount_path: str) -> Manifest:
    """Put the manifest root on the workspace volume.

    An unset root follows the volume's mount path; an explicit root must be that path or below
    it, because anything else would not survive a pod restart.
    """
    if manifest is None:
        return Manifest(root=mount_path)
    root = PurePosixPath(manifest.root)
    mount = PurePosixPath(mount_path)
    if root == mount or mount in root.parents:
        return manifest
    if "root" not in manifest.model_fields_set:
        return manifest.model_copy(update={"root": mount_path})
    raise ValueError(
        f"manifest root {manifest.root} is outside the workspace volume mounted at {mount_path}; "
        "files written there would not persist"
    )


class KubernetesSandboxClient(BaseSandboxClient[KubernetesSandboxClientOptions]):
    """Run Agents SDK sandbox sessions inside Paddock AgentWorkspace pods via pods/exec.

    `kubeconfig`/`context` select the cluster for sessions whose options or state do not name
    one (None: in-cluster config when running in a pod, else the default kubeconfig). Pass
    `api` to share an already connected `KubeApi`. Call `aclose()` when done with the client.
    """

    backend_id = BACKEND_ID
    supports_default_options = False

    def __init__(
        self,
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        api: KubeApi | None = None,
        instrumentation: Instrumentation | None = None,
        dependencies: Dependencies | None = None,
        activity_debounce_seconds: float = ACTIVITY_DEBOUNCE_SECONDS,
        max_exec_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    ) -> None:
        super().__init__()
        self._default_source = KubeConfigSource(kubeconfig=kubeconfig, context=context)
        self._apis: dict[KubeConfigSource, KubeApi] = {}
        if api is not None:
            self._apis[self._default_source] = api
        self._shared_api = api
        self._api_lock = asyncio.Lock()
        self._instrumentation = instrumentation if instrumentation is not None else Instrumentation()
        self._dependencies = dependencies
        self._activity_debounce = activity_debounce_seconds
        self._max_output = max_exec_output_bytes

    async def api_for(self, kubeconfig: str | None = None, context: str | None = None) -> KubeApi:
        if self._shared_api is not None:
            return self._shared_api
        source = (
            KubeConfigSource(kubeconfig=kubeconfig, context=context)
            if kubeconfig is not None or context is not None
            else self._default_source
        )
        async with self._api_lock:
            api = self._apis.get(source)
            if api is None:
                api = await KubeApi.connect(source)
                self._apis[source] = api
            return api

    async def aclose(self) -> None:
        for api in self._apis.values():
            await api.aclose()
        self._apis.clear()
        if self._shared_api is not None:
            self._apis[self._default_source] = self._shared_api

    def _new_session(
        self, state: KubernetesSandboxSessionState, api: KubeApi, *, ready_timeout_s: float = 300.0
    ) -> KubernetesSandboxSession:
        activity = (
            ActivityReporter(api, state.namespace, state.workspace, debounce=self._activity_debounce)
            if state.workspace is not None
            else None
        )
        return KubernetesSandboxSession(
            state=state,
            api=api,
            activity=activity,
            ready_timeout_s=ready_timeout_s,
            max_output_bytes=self._max_output,
        )

    async def create(
        self,
        *,
        snapshot: SnapshotSpec | SnapshotBase | None = None,
        manifest: Manifest | None = None,
        options: KubernetesSandboxClientOptions,
    ) -> SandboxSession:
        api = await self.api_for(options.kubeconfig, options.context)
        workspaces = WorkspaceApi(api)
        ns = options.namespace
        created = False
        if options.workspace is not None:
            name = options.workspace
            obj = await workspaces.get(ns, name)
            if obj is None:
                raise WorkspaceError(f"AgentWorkspace {ns}/{name} not found", reason="not_found")
        else:
            obj = await workspaces.create(
                ns,
                options.spec_dict(),
                name=options.workspace_name,
                generate_name=options.generate_name,
                labels=options.labels,
            )
            name = str(obj["metadata"]["name"])
            created = True
        try:
            manifest = manifest_for_root(manifest, mount_path_of(obj))
            self._validate_manifest_for_create(manifest)
            target = await workspaces.wait_pod(ns, name, options.container, timeout_s=options.ready_timeout_seconds)
        except BaseException:
            if created:
                # Nothing of the user's is in a workspace that never became usable.
                with contextlib.suppress(Exception):
                    await workspaces.delete(ns, name)
            raise
        session_id = uuid.uuid4()
        state = KubernetesSandboxSessionState(
            session_id=session_id,
            manifest=manifest,
            snapshot=resolve_snapshot(snapshot, str(session_id)),
            namespace=ns,
            workspace=name,
            pod_name=target.name,
            pod_uid=target.uid or None,
            container=target.container,
            created_by_client=created,
            delete_workspace_on_delete=created and options.delete_created_workspace,
            kubeconfig=options.kubeconfig,
            context=options.context,
        )
        inner = self._new_session(state, api, ready_timeout_s=options.ready_timeout_seconds)
        return self._wrap_session(inner, instrumentation=self._instrumentation)

    async def session_for_pod(
        self,
        *,
        namespace: str,
        pod: str,
        container: str | None = None,
        manifest: Manifest | None = None,
        snapshot: SnapshotSpec | SnapshotBase | None = None,
    ) -> SandboxSession:
        """A session bound directly to an existing pod, without an AgentWorkspace."""
        api = await self.api_for()
        target = await WorkspaceApi(api).pod_target(namespace, pod, container)
        inner = KubernetesSandboxSession.bind(
            api,
            namespace=namespace,
            pod=pod,
            container=target.container,
            manifest=manifest,
            snapshot=snapshot,
        )
        inner.state.pod_uid = target.uid or None
        inner.state.kubeconfig = self._default_source.kubeconfig
        inner.state.context = self._default_source.context
        return self._wrap_session(inner, instrumentation=self._instrumentation)

    async def delete(self, session: SandboxSession) -> SandboxSession:
        """Release the session. Never removes user data.

        The runner calls this after every run it owns. An attached workspace (and any pod) is
        left alone; a workspace this client created is deleted only when the options said so.
        """
        inner = session._inner
        if not isinstance(inner, KubernetesSandboxSession):
            raise TypeError("KubernetesSandboxClient.delete expects a KubernetesSandboxSession")
        await inner.shutdown()
        state = inner.state
        if state.workspace is not None and state.created_by_client and state.delete_workspace_on_delete:
            api = await self.api_for(state.kubeconfig, state.context)
            await WorkspaceApi(api).delete(state.namespace, state.workspace)
        return session

    async def resume(self, state: SandboxSessionState) -> SandboxSession:
        """Reattach to the sandbox of a saved state (e.g. after the harness restarted).

        The workspace volume survives pod restarts, so workspace files count as preserved; OS
        state (users, /tmp helpers) is preserved only if it is still the very same pod.
        """
        if not isinstance(state, KubernetesSandboxSessionState):
            raise TypeError("KubernetesSandboxClient.resume expects a KubernetesSandboxSessionState")
        state.assert_path_grants_rebound()
        api = await self.api_for(state.kubeconfig, state.context)
        workspaces = WorkspaceApi(api)
        ns = state.namespace
        same_pod = False
        if state.workspace is not None:
            obj = await workspaces.get(ns, state.workspace)
            if obj is None:
                raise WorkspaceError(
                    f"cannot resume: AgentWorkspace {ns}/{state.workspace} no longer exists",
                    reason="not_found",
                )
            pod_name = str((obj.get("status") or {}).get("podName") or "")
            pod = await api.get_or_none(pod_path(ns, pod_name)) if is_ready(obj) else None
            if pod is not None and pod_is_running(pod, state.container or default_container(pod)):
                uid = str((pod.get("metadata") or {}).get("uid") or "")
                same_pod = bool(state.pod_uid) and uid == state.pod_uid
                state.pod_name, state.pod_uid = pod_name, uid or None
            # Otherwise start() waits for the workspace's next running pod (same volume).
            preserved_workspace = True
        else:
            target = await workspaces.pod_target(ns, state.pod_name, state.container)
            same_pod = bool(state.pod_uid) and target.uid == state.pod_uid
            state.pod_uid = target.uid or None
            preserved_workspace = same_pod
        if not same_pod:
            state.workspace_root_ready = False  # /tmp helpers and probes must be redone
        inner = self._new_session(state, api)
        inner._set_start_state_preserved(preserved_workspace, system=same_pod)
        return self._wrap_session(inner, instrumentation=self._instrumentation)

    def deserialize_session_state(self, payload: dict[str, object]) -> SandboxSessionState:
        return self._deserialize_session_state_payload(payload, KubernetesSandboxSessionState)
