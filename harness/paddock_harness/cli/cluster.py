"""The CLI's view of the cluster: kubeconfig loading like kubectl, typed-enough access to our resources, and
API failures turned into one-line errors a user can act on."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from paddock_operator.api import GROUP, VERSION

RUNS: Final = "agentruns"
WORKSPACES: Final = "agentworkspaces"
KIND_OF: Final = {RUNS: "agentrun", WORKSPACES: "agentworkspace"}
PLURAL_OF: Final = {"AgentRun": RUNS, "AgentWorkspace": WORKSPACES}
REQUEST_TIMEOUT: Final = (5, 30)
"""(connect, read) seconds: a dead server fails fast instead of hanging the terminal."""
WATCH_SECONDS: Final = 30
CRDS_MISSING: Final = (
    "Paddock's CRDs are not installed in this cluster: "
    "kubectl apply --server-side -f crds/ or helm install paddock charts/paddock"
)
_SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class CliError(Exception):
    """A failure the user can act on; printed as one line, exit code 1 unless said otherwise."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Connection:
    api_client: client.ApiClient
    default_namespace: str
    server: str


def _kubeconfig_paths(explicit: str | None) -> list[Path]:
    if explicit:
        return [Path(explicit).expanduser()]
    env = os.environ.get("KUBECONFIG")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return [Path("~/.kube/config").expanduser()]


def context_namespace(kubeconfig: str | None, context: str | None) -> str:
    """The namespace of the chosen (or current) kubeconfig context, else "default" (what kubectl does)."""
    contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
    chosen = next((c for c in contexts if c.get("name") == context), None) if context else active
    return str(((chosen or {}).get("context") or {}).get("namespace") or "default")


def connect(kubeconfig: str | None, context: str | None) -> Connection:
    """Load credentials like kubectl: --kubeconfig, else $KUBECONFIG, else ~/.kube/config, else in-cluster."""
    configuration = client.Configuration()
    paths = _kubeconfig_paths(kubeconfig)
    if kubeconfig or context or any(p.is_file() for p in paths):
        shown = os.pathsep.join(str(p) for p in paths)
        if kubeconfig and not paths[0].is_file():
            raise CliError(f"kubeconfig {shown} does not exist")
        try:
            config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
            namespace = context_namespace(kubeconfig, context)
        except (config.ConfigException, OSError, ValueError) as error:
            raise CliError(f"cannot use kubeconfig {shown}: {error}") from error
    else:
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException as error:
            raise CliError(
                "no kubeconfig found (tried --kubeconfig, $KUBECONFIG and ~/.kube/config) and not running in a pod"
            ) from error
        namespace = _SA_NAMESPACE.read_text().strip() if _SA_NAMESPACE.is_file() else "default"
    # One retry instead of urllib3's three: an unreachable server is reported within seconds.
    configuration.retries = 1
    return Connection(client.ApiClient(configuration), namespace, str(configuration.host))


def api_message(error: ApiException) -> str:
    try:
        message = json.loads(error.body or "").get("message")
    except (TypeError, ValueError, AttributeError):
        message = None
    return str(message or error.reason or f"HTTP {error.status}")


def describe_connection_error(error: BaseException, server: str) -> str:
    """One line for a failure to talk to the API server at all."""
    reason = getattr(error, "reason", None) or error
    text = re.sub(r"<[^>]*>:\s*", "", str(reason))  # drop urllib3's object reprs
    lowered = text.lower()
    if "refused" in lowered:
        why = "connection refused"
    elif "timed out" in lowered or "timeout" in lowered:
        why = "timed out"
    elif "name or service not known" in lowered or "nodename nor servname" in lowered:
        why = "unknown host"
    elif "certificate" in lowered or "ssl" in lowered:
        why = f"TLS error: {text[:200]}"
    else:
        why = text[:200]
    return f"cannot reach the Kubernetes API server at {server} ({why}): is the cluster running?"


def describe_api_error(error: ApiException) -> str:
    if error.status == 401:
        return "the API server rejected the credentials (401 Unauthorized): check the kubeconfig's user"
    if error.status == 403:
        return f"forbidden: {api_message(error)}"
    return f"the API server answered {error.status}: {api_message(error)}"


CONNECTION_ERRORS: Final = (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)


class Cluster:
    """Our custom resources plus the ConfigMaps they own, in one namespace (or all of them).

    Plain REST calls through the client's ApiClient: the generated CoreV1Api/CustomObjectsApi classes take
    seconds to import, which a command-line tool cannot afford.
    """

    def __init__(self, connection: Connection, namespace: str) -> None:
        self.connection = connection
        self.namespace = namespace

    # --- raw REST ------------------------------------------------------------------------------------------
    def _send(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, Any]] | None = None,
        body: Any = None,
        content_type: str | None = None,
        timeout: tuple[float, float] = REQUEST_TIMEOUT,
    ) -> Any:
        """The raw (unread) response; an ApiException for any non-2xx status."""
        api = self.connection.api_client
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        method, url, headers, body, post = api.param_serialize(
            method, path, query_params=query or [], header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        response = api.call_api(
            method, url, header_params=headers, body=body, post_params=post, _request_timeout=timeout
        )
        if not 200 <= response.status <= 299:
            response.read()
            raise ApiException(http_resp=response)
        return response

    def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._send(method, path, **kwargs)
        response.read()
        return cast("dict[str, Any]", json.loads(response.data))

    def _path(self, plural: str, name: str | None = None, namespace: str | None = None) -> str:
        base = f"/apis/{GROUP}/{VERSION}"
        if namespace is not None:
            base += f"/namespaces/{namespace}"
        return f"{base}/{plural}" + (f"/{name}" if name else "")

    # --- our resources -------------------------------------------------------------------------------------
    def crds_installed(self) -> bool:
        try:
            found = self.request("GET", f"/apis/{GROUP}/{VERSION}")
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        names = {r.get("name") for r in found.get("resources") or []}
        return RUNS in names and WORKSPACES in names

    def _not_found(self, plural: str, name: str | None, namespace: str) -> CliError:
        """A 404 means either no such object or no such resource type: tell which."""
        if not self.crds_installed():
            return CliError(CRDS_MISSING)
        if name is None:
            return CliError(f"{plural}.{GROUP} cannot be listed in namespace {namespace}")
        return CliError(f'{KIND_OF[plural]} "{name}" not found in namespace {namespace}')

    def find(self, plural: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist (CRDs missing is an error)."""
        try:
            return self.request("GET", self._path(plural, name, self.namespace))
        except ApiException as error:
            if error.status == 404:
                if not self.crds_installed():
                    raise CliError(CRDS_MISSING) from error
                return None
            raise

    def require(self, plural: str, name: str) -> dict[str, Any]:
        found = self.find(plural, name)
        if found is None:
            raise CliError(f'{KIND_OF[plural]} "{name}" not found in namespace {self.namespace}')
        return found

    def list_objects(self, plural: str, all_namespaces: bool = False) -> list[dict[str, Any]]:
        try:
            listed = self.request("GET", self._path(plural, None, None if all_namespaces else self.namespace))
        except ApiException as error:
            if error.status == 404:
                raise self._not_found(plural, None, self.namespace) from error
            raise
        return list(listed.get("items") or [])

    def create(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.request("POST", self._path(plural, None, self.namespace), body=body)
        except ApiException as error:
            if error.status == 404:
                raise self._not_found(plural, None, self.namespace) from error
            if error.status == 409:
                name = body["metadata"].get("name")
                raise CliError(f'{KIND_OF[plural]} "{name}" already exists in namespace {self.namespace}') from error
            if error.status == 422:
                raise CliError(f"invalid {KIND_OF[plural]}: {api_message(error)}") from error
            raise

    def patch_merge(self, plural: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """A JSON merge patch (what `kubectl annotate --overwrite` sends). 409 when resourceVersion is stale."""
        try:
            return self.request(
                "PATCH",
                self._path(plural, name, self.namespace),
                body=patch,
                content_type="application/merge-patch+json",
            )
        except ApiException as error:
            if error.status == 404:
                raise self._not_found(plural, name, self.namespace) from error
            raise

    def watch(self, plural: str, name: str, resource_version: str | None) -> Iterator[dict[str, Any]]:
        """Watch events ({type, object}) for one object, ending after WATCH_SECONDS (the caller re-watches).
        An expired resourceVersion raises ApiException(410)."""
        query: list[tuple[str, Any]] = [
            ("watch", "true"),
            ("fieldSelector", f"metadata.name={name}"),
            ("timeoutSeconds", WATCH_SECONDS),
            ("allowWatchBookmarks", "true"),
        ]
        if resource_version:
            query.append(("resourceVersion", resource_version))
        response = self._send(
            "GET",
            self._path(plural, None, self.namespace),
            query=query,
            timeout=(REQUEST_TIMEOUT[0], WATCH_SECONDS + 15),
        )
        try:
            for line in iter_resp_lines(response.response):
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    raise ApiException(status=status.get("code"), reason=status.get("message"))
                yield {"type": event.get("type"), "object": event.get("object") or {}}
        finally:
            response.response.release_conn()

    # --- core objects --------------------------------------------------------------------------------------
    def list_config_maps(self, label_selector: str) -> list[dict[str, Any]]:
        found = self.request(
            "GET", f"/api/v1/namespaces/{self.namespace}/configmaps", query=[("labelSelector", label_selector)]
        )
        return list(found.get("items") or [])

    # --- transcript.SyncLister, so driver.transcript.read_transcript works on this client ---------------------
    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        if kind not in PLURAL_OF:
            raise ValueError(f"unsupported kind {kind}")
        return Cluster(self.connection, namespace).find(PLURAL_OF[kind], name)

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        if kind != "ConfigMap":
            raise ValueError(f"unsupported kind {kind}")
        return Cluster(self.connection, namespace or self.namespace).list_config_maps(label_selector or "")
