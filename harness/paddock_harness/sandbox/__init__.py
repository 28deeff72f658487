"""Kubernetes sandbox backend for the OpenAI Agents SDK (`agents.sandbox`).

Sessions run every command inside a Paddock AgentWorkspace pod through the Kubernetes API
(pods/exec over a websocket); files move through the same channel. Usable on its own::

    client = KubernetesSandboxClient()
    options = KubernetesSandboxClientOptions(namespace="dev", workspace="my-workspace")
    session = await client.create(options=options)
"""

from .client import KubernetesSandboxClient, manifest_for_root
from .kube import KubeApi, KubeApiError, KubeConfigSource
from .session import KubernetesSandboxSession
from .state import KubernetesSandboxClientOptions, KubernetesSandboxSessionState
from .workspace_api import WorkspaceError

__all__ = [
    "KubeApi",
    "KubeApiError",
    "KubeConfigSource",
    "KubernetesSandboxClient",
    "KubernetesSandboxClientOptions",
    "KubernetesSandboxSession",
    "KubernetesSandboxSessionState",
    "WorkspaceError",
    "manifest_for_root",
]
