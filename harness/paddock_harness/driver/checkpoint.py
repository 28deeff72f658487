"""Durable run checkpoints: the SDK RunState (plus the sandbox session state) in ConfigMaps owned by the run.

Layout, all in the run's namespace, labelled ``paddock.dev/run``, ``paddock.dev/run-uid`` and
``paddock.dev/harness-object`` and owned by the run (deleted with it; the sandbox pod has no API token, so
it cannot read them):

- ``<run>-state``: the index. ``data["meta.json"]`` is `CheckpointMeta` (generation, chunk count, sha256,
  pending tool calls, recorded approval decisions, calls released to execute, counters). A payload that fits
  (zlib-compressed, <= INLINE_MAX bytes) sits inline in ``binaryData["state"]``: one write per checkpoint.
- ``<run>-state-<generation>-<i>``: chunks of larger payloads (``binaryData["chunk"]``, <= CHUNK_BYTES each).

A save never leaves a torn state: chunks are written under a NEW generation number first, then the index is
flipped to it with an optimistic-concurrency patch (the commit point), then the old generation's chunks are
deleted. A crash before the flip leaves the previous checkpoint intact; leftovers are overwritten by the next
save of that generation or collected with the run.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from paddock_operator.naming import bounded

from . import protocol
from .kubeio import AsyncKube, ConflictError, owned_by, owner_reference

CHUNK_BYTES: Final = 900 * 1024
INLINE_MAX: Final = 768 * 1024
PAYLOAD_VERSION: Final = 1


class CheckpointError(Exception):
    """A checkpoint exists but cannot be used (corrupt, foreign, or of an unknown version)."""


class LostOwnershipError(Exception):
    """Someone else wrote this run's checkpoint index: we no longer drive it."""


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class PendingCall(_Model):
    call_id: str
    tool: str
    command: str = ""
    needs_human: bool = False
    requested_time: str | None = None


class Decision(_Model):
    approved: bool
    reason: str | None = None
    time: str | None = None


class CheckpointMeta(_Model):
    generation: int = 0
    chunks: int = 0
    size: int = 0
    sha256: str = ""
    saved_time: str | None = None
    pending: list[PendingCall] = Field(default_factory=list)
    """Tool calls of the saved interruption (every tool call passes through one; see driver.run)."""
    decisions: dict[str, Decision] = Field(default_factory=dict)
    """Human decisions recorded for pending calls."""
    inflight: list[str] = Field(default_factory=list)
    """Pending calls released to execute. After a crash their outcome is unknown: they are never re-run."""
    turns: int = 0
    tool_calls: int = 0


class Checkpoint(_Model):
    meta: CheckpointMeta
    run_state: str
    """RunState.to_string() of the SDK."""
    sandbox_session: dict[str, Any] | None = None
    """The sandbox client's serialized session state (never credentials)."""


# -- pure functions -------------------------------------------------------------------------------


def encode_payload(run_state: str, sandbox_session: dict[str, Any] | None) -> bytes:
    document = {"version": PAYLOAD_VERSION, "runState": run_state, "sandboxSession": sandbox_session}
    return zlib.compress(json.dumps(document, separators=(",", ":")).encode("utf-8"), 6)


def decode_payload(blob: bytes) -> tuple[str, dict[str, Any] | None]:
    try:
        document = json.loads(zlib.decompress(blob).decode("utf-8"))
    except (zlib.error, ValueError) as error:
        raise CheckpointError(f"checkpoint payload is corrupt: {error}") from error
    if not isinstance(document, dict) or document.get("version") != PAYLOAD_VERSION:
        raise CheckpointError("checkpoint payload has an unknown version")
    session = document.get("sandboxSession")
    return str(document["runState"]), session if isinstance(session, dict) else None


def split_chunks(blob: bytes, chunk_bytes: int = CHUNK_BYTES) -> list[bytes]:
    if chunk_bytes <= 0:
        raise ValueError("chunk_bytes must be positive")
    return [blob[i : i + chunk_bytes] for i in range(0, len(blob), chunk_bytes)] or [b""]


def join_chunks(chunks: list[bytes], *, size: int, sha256: str) -> bytes:
    blob = b"".join(chunks)
    if len(blob) != size or hashlib.sha256(blob).hexdigest() != sha256:
        raise CheckpointError("checkpoint chunks do not match the index (size or sha256)")
    return blob


def index_name(run_name: str) -> str:
    return bounded(f"{run_name}-state")


def chunk_name(run_name: str, generation: int, index: int) -> str:
    return bounded(f"{run_name}-state-{generation}-{index}")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"))


# -- the store ------------------------------------------------------------------------------------


class CheckpointStore:
    """Checkpoints of one run. Only the claim holder writes; writes are optimistic-concurrency guarded."""

    def __init__(
        self, kube: AsyncKube, run: dict[str, Any], *, chunk_bytes: int = CHUNK_BYTES, inline_max: int = INLINE_MAX
    ) -> None:
        self.kube = kube
        self.run = run
        self.namespace: str = run["metadata"]["namespace"]
        self.name: str = run["metadata"]["name"]
        self.uid: str = run["metadata"]["uid"]
        self.chunk_bytes = chunk_bytes
        self.inline_max = inline_max
        self._index_rv: str | None = None
        self._index_exists = False
        self.meta: CheckpointMeta | None = None

    def _labels(self, kind: str, generation: int | None = None) -> dict[str, str]:
        labels = {
            protocol.LABEL_RUN_NAME: protocol.run_label_value(self.name),
            protocol.LABEL_RUN_UID: self.uid,
            protocol.LABEL_KIND: kind,
        }
        if generation is not None:
            labels[protocol.PREFIX + "state-generation"] = str(generation)
        return labels

    def _configmap(self, name: str, labels: dict[str, str]) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": labels,
                "ownerReferences": [owner_reference(self.run)],
            },
        }

    async def load(self) -> Checkpoint | None:
        index = await self.kube.get("v1", "ConfigMap", self.namespace, index_name(self.name))
        if index is None:
            self._index_exists, self._index_rv, self.meta = False, None, None
            return None
        if not owned_by(index, self.uid):
            raise CheckpointError(f"ConfigMap {index_name(self.name)} does not belong to this run")
        self._index_exists, self._index_rv = True, index["metadata"]["resourceVersion"]
        try:
            meta = CheckpointMeta.model_validate_json((index.get("data") or {})["meta.json"])
        except (KeyError, ValueError) as error:
            raise CheckpointError(f"checkpoint index is unreadable: {error}") from error
        self.meta = meta
        if meta.chunks == 0:
            blob = _unb64((index.get("binaryData") or {}).get("state", ""))
            blob = join_chunks([blob], size=meta.size, sha256=meta.sha256)
        else:
            parts: list[bytes] = []
            for i in range(meta.chunks):
                chunk = await self.kube.get(
                    "v1", "ConfigMap", self.namespace, chunk_name(self.name, meta.generation, i)
                )
                if chunk is None or not owned_by(chunk, self.uid):
                    raise CheckpointError(f"checkpoint chunk {i} of generation {meta.generation} is missing")
                parts.append(_unb64((chunk.get("binaryData") or {}).get("chunk", "")))
            blob = join_chunks(parts, size=meta.size, sha256=meta.sha256)
        run_state, session = decode_payload(blob)
        return Checkpoint(meta=meta, run_state=run_state, sandbox_session=session)

    async def save(
        self, run_state: str, sandbox_session: dict[str, Any] | None, meta: CheckpointMeta
    ) -> CheckpointMeta:
        """Write a new generation and flip the index to it. Returns the committed meta."""
        blob = encode_payload(run_state, sandbox_session)
        previous = self.meta
        generation = (previous.generation if previous else 0) + 1
        inline = len(blob) <= self.inline_max
        chunks = [] if inline else split_chunks(blob, self.chunk_bytes)
        new_meta = meta.model_copy(
            update={
                "generation": generation,
                "chunks": len(chunks),
                "size": len(blob),
                "sha256": hashlib.sha256(blob).hexdigest(),
                "saved_time": _now(),
            }
        )
        for i, part in enumerate(chunks):
            await self._write_chunk(generation, i, part)
        binary: dict[str, Any] = {"state": _b64(blob) if inline else None}
        await self._write_index(new_meta, binary)
        if previous is not None and previous.chunks:
            for i in range(previous.chunks):
                # Best effort: leftovers are owned by the run and collected with it.
                await self.kube.delete("v1", "ConfigMap", self.namespace, chunk_name(self.name, previous.generation, i))
        self.meta = new_meta
        return new_meta

    async def update_meta(self, meta: CheckpointMeta) -> CheckpointMeta:
        """Rewrite only the index's meta (decisions, in-flight calls); the payload is unchanged."""
        if self.meta is None or not self._index_exists:
            raise CheckpointError("no checkpoint to update")
        committed = meta.model_copy(
            update={k: getattr(self.meta, k) for k in ("generation", "chunks", "size", "sha256", "saved_time")}
        )
        await self._write_index(committed, None)
        self.meta = committed
        return committed

    async def _write_chunk(self, generation: int, index: int, data: bytes) -> None:
        name = chunk_name(self.name, generation, index)
        obj = self._configmap(name, self._labels(protocol.KIND_STATE_CHUNK, generation))
        obj["binaryData"] = {"chunk": _b64(data)}
        try:
            await self.kube.create(obj)
        except ConflictError:
            # A leftover of a save that crashed before its flip: this generation was never committed.
            patch = {"metadata": {k: obj["metadata"][k] for k in ("labels", "ownerReferences")}}
            await self.kube.patch_merge(
                "v1", "ConfigMap", self.namespace, name, {**patch, "binaryData": obj["binaryData"]}
            )

    async def _write_index(self, meta: CheckpointMeta, binary: dict[str, Any] | None) -> None:
        data = {"meta.json": meta.model_dump_json(by_alias=True)}
        try:
            if not self._index_exists:
                obj = self._configmap(index_name(self.name), self._labels(protocol.KIND_STATE))
                obj["data"] = data
                obj["binaryData"] = {k: v for k, v in (binary or {}).items() if v is not None}
                written = await self.kube.create(obj)
            else:
                patch: dict[str, Any] = {"data": data}
                if binary is not None:
                    patch["binaryData"] = binary
                written = await self.kube.patch_merge(
                    "v1", "ConfigMap", self.namespace, index_name(self.name), patch, resource_version=self._index_rv
                )
        except ConflictError as error:
            raise LostOwnershipError(
                f"checkpoint of {self.namespace}/{self.name} was written by someone else"
            ) from error
        self._index_exists, self._index_rv = True, written["metadata"]["resourceVersion"]
