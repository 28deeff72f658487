"""Async access to the Kubernetes API for the sandbox client.

The `kubernetes` package is only used to *load* configuration (kubeconfig, in-cluster service
account, exec plugins); every request goes through one shared aiohttp session so no call blocks
the event loop and HTTP connections are pooled. The websocket for pods/exec is opened through the
same session (see `exec_stream`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import aiohttp
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

logger = logging.getLogger(__name__)

_IN_CLUSTER_TOKEN: Final = "/var/run/secrets/kubernetes.io/serviceaccount/token"
# Status codes that mean "the request did not take effect, try again".
TRANSIENT_STATUS: Final = frozenset({429, 500, 502, 503, 504})

JsonObj = dict[str, Any]
_IDEMPOTENT: Final = frozenset({"GET", "PUT", "PATCH", "DELETE", "HEAD"})


class KubeApiError(Exception):
    """A Kubernetes API request failed. `status` is the HTTP status (0 when no response)."""

    def __init__(self, message: str, *, status: int = 0, reason: str = "", body: object = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.body = body

    @property
    def transient(self) -> bool:
        return self.status == 0 or self.status in TRANSIENT_STATUS


@dataclass(frozen=True)
class KubeConfigSource:
    """Where to load cluster credentials from. Never holds the credentials themselves."""

    kubeconfig: str | None = None
    context: str | None = None

    def load(self) -> k8s_client.Configuration:
        """Blocking: run in a worker thread (it may read files or run an exec plugin)."""
        cfg = k8s_client.Configuration()
        if self.kubeconfig is None and self.context is None and _in_cluster():
            k8s_config.load_incluster_config(client_configuration=cfg)
        else:
            k8s_config.load_kube_config(config_file=self.kubeconfig, context=self.context, client_configuration=cfg)
        return cfg


def _in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and os.path.exists(_IN_CLUSTER_TOKEN)


def build_ssl_context(cfg: k8s_client.Configuration) -> ssl.SSLContext | bool:
    if not cfg.host.startswith("https"):
        return False
    ctx = (
        ssl.create_default_context(cafile=cfg.ssl_ca_cert)
        if cfg.verify_ssl
        else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    )
    if not cfg.verify_ssl:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cfg.cert_file:
        ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    return ctx


class KubeApi:
    """A small async Kubernetes REST client bound to one event loop.

    Create with `await KubeApi.connect(source)`; close with `await api.aclose()`.
    """

    def __init__(self, cfg: k8s_client.Configuration, *, source: KubeConfigSource | None = None) -> None:
        self.cfg = cfg
        self.source = source or KubeConfigSource()
        self.host = cfg.host.rstrip("/")
        self._ssl = build_ssl_context(cfg)
        self._server_hostname: str | None = getattr(cfg, "tls_server_name", None) or None
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    async def connect(cls, source: KubeConfigSource | None = None) -> KubeApi:
        source = source or KubeConfigSource()
        cfg = await asyncio.to_thread(source.load)
        return cls(cfg, source=source)

    @property
    def session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            # aiohttp sessions are bound to a loop; a new loop (e.g. a second asyncio.run) gets its
            # own pool instead of failing on a closed one.
            connector = aiohttp.TCPConnector(ssl=self._ssl, limit=64, keepalive_timeout=60)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False)
            self._loop = loop
        return self._session

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def auth_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        # The kubernetes client stores tokens (in-cluster and kubeconfig) under "BearerToken";
        # "authorization" is the older key, kept as the alias.
        if self.cfg.refresh_api_key_hook is not None:
            # The hook re-reads a rotated token file or runs an exec plugin: keep it off the loop.
            token = await asyncio.to_thread(self.cfg.get_api_key_with_prefix, "BearerToken", "authorization")
        else:
            token = self.cfg.get_api_key_with_prefix("BearerToken", alias="authorization")
        if token:
            headers["Authorization"] = token
        elif self.cfg.username and self.cfg.password:
            basic = self.cfg.get_basic_auth_token()
            if basic:
                headers["Authorization"] = basic
        return headers

    def url(self, path: str) -> str:
        return self.host + path

    def request_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if self._server_hostname:
            kwargs["server_hostname"] = self._server_hostname
        return kwargs

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: object = None,
        content_type: str = "application/json",
        timeout_s: float = 30.0,
    ) -> JsonObj:
        headers = await self.auth_headers()
        headers["Accept"] = "application/json"
        data: bytes | None = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        # A pooled keep-alive connection can have been closed by the server just before reuse;
        # idempotent requests get one more try on a fresh connection.
        attempts = 2 if method in _IDEMPOTENT else 1
        for attempt in range(attempts):
            try:
                async with self.session.request(
                    method,
                    self.url(path),
                    params=params,
                    data=data,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=timeout_s),
                    **self.request_kwargs(),
                ) as resp:
                    raw = await resp.read()
                    payload = _decode(raw)
                    if resp.status >= 400:
                        raise _api_error(method, path, resp.status, payload)
                    return payload if isinstance(payload, dict) else {}
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as e:
                if attempt + 1 < attempts:
                    continue
                raise KubeApiError(f"{method} {path}: {type(e).__name__}: {e}") from e
            except (aiohttp.ClientError, TimeoutError) as e:
                raise KubeApiError(f"{method} {path}: {type(e).__name__}: {e}") from e
        raise AssertionError("unreachable")

    async def get(self, path: str, **kw: Any) -> JsonObj:
        return await self.request("GET", path, **kw)

    async def get_or_none(self, path: str) -> JsonObj | None:
        try:
            return await self.get(path)
        except KubeApiError as e:
            if e.status == 404:
                return None
            raise

    async def watch(
        self, path: str, *, params: Mapping[str, str], timeout_seconds: int = 300
    ) -> AsyncIterator[JsonObj]:
        """Yield watch events ({type, object}) until the server ends the watch."""
        headers = await self.auth_headers()
        query = {**params, "watch": "1", "timeoutSeconds": str(timeout_seconds)}
        try:
            async with self.session.get(
                self.url(path),
                params=query,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_read=timeout_seconds + 30),
                **self.request_kwargs(),
            ) as resp:
                if resp.status >= 400:
                    raise _api_error("WATCH", path, resp.status, _decode(await resp.read()))
                async for line in resp.content:
                    if line.strip():
                        event = json.loads(line)
                        if isinstance(event, dict):
                            yield event
        except (aiohttp.ClientError, TimeoutError) as e:
            raise KubeApiError(f"WATCH {path}: {type(e).__name__}: {e}") from e

    async def ws_connect(
        self, path: str, *, params: Sequence[tuple[str, str]], protocols: Sequence[str], handshake_timeout_s: float
    ) -> aiohttp.ClientWebSocketResponse[bool]:
        """Open a websocket (pods/exec); `handshake_timeout_s` bounds the handshake only."""
        headers = await self.auth_headers()
        return await asyncio.wait_for(
            self.session.ws_connect(
                self.url(path),
                params=list(params),
                headers=headers,
                protocols=tuple(protocols),
                # No receive timeout: a silent command is legitimate; callers own the deadline.
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
                max_msg_size=0,  # the total is bounded by the caller, frames by the kubelet
                compress=0,
                **self.request_kwargs(),
            ),
            handshake_timeout_s,
        )


def _decode(raw: bytes) -> object:
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        return {"message": raw[:2000].decode("utf-8", errors="replace")}


def _api_error(method: str, path: str, status: int, payload: object) -> KubeApiError:
    message = ""
    reason = ""
    if isinstance(payload, dict):
        message = str(payload.get("message", ""))
        reason = str(payload.get("reason", ""))
    return KubeApiError(
        f"{method} {path}: HTTP {status} {reason}: {message}".strip(),
        status=status,
        reason=reason,
        body=payload,
    )


def q(segment: str) -> str:
    """Quote one path segment (names are DNS labels, but never trust input in a URL)."""
    return quote(segment, safe="")
