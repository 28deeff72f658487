"""The per-run transcript: every prompt, message, reasoning summary, tool call, tool output, approval and
error, in append-only pages of ConfigMaps owned by the run.

Page ``<run>-transcript-<p>`` holds entries ``p*ENTRIES_PER_PAGE ..`` as ``data["<index:08d>"] = <json>``.
Appending is a merge patch that adds keys (no read, no conflict: keys are unique), so batches are cheap.
Tool calls and outputs are truncated to ITEM_MAX_BYTES each (the entry says so and keeps the original
size); assistant messages and the final answer are split into parts instead, so the full text survives.
`read_transcript` (sync, for the CLI) and `aread_transcript` return entries in order.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from paddock_operator.naming import bounded

from . import protocol
from .kubeio import AsyncKube, ConflictError, owned_by, owner_reference

ITEM_MAX_BYTES: Final = 16 * 1024
ENCODED_MAX_BYTES: Final = 24 * 1024
"""Cap of one encoded entry (JSON escapes can inflate control characters 6x); 32 of them fit a ConfigMap."""
ENTRIES_PER_PAGE: Final = 32
MAX_PARTS: Final = 64
FLUSH_INTERVAL_SECONDS: Final = 2.0
_RUN_API = "paddock.dev/v1alpha1"


def page_name(run_name: str, page: int) -> str:
    return bounded(f"{run_name}-transcript-{page}")


def truncate_utf8(text: str, max_bytes: int = ITEM_MAX_BYTES) -> tuple[str, bool, int]:
    """(text cut to at most max_bytes of UTF-8 on a character boundary, whether it was cut, original size)."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text, False, len(encoded)
    return encoded[:max_bytes].decode("utf-8", errors="ignore"), True, len(encoded)


def split_utf8(text: str, max_bytes: int = ITEM_MAX_BYTES, max_parts: int = MAX_PARTS) -> list[str]:
    """Text in parts of at most max_bytes of UTF-8 each (at most max_parts; the last one is truncated)."""
    parts: list[str] = []
    rest = text.encode("utf-8")
    while rest and len(parts) < max_parts:
        piece = rest[:max_bytes].decode("utf-8", errors="ignore")
        if not piece:  # a lone multi-byte character straddles the edge: take it whole
            piece = rest[:4].decode("utf-8", errors="ignore")[:1]
        parts.append(piece)
        rest = rest[len(piece.encode("utf-8")) :]
    return parts or [""]


def make_entry(kind: str, text: str = "", *, split: bool = False, **fields: Any) -> list[dict[str, Any]]:
    """Transcript entries (without index) for one item: one truncated entry, or parts when split."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    base = {"kind": kind, "time": now, **{k: v for k, v in fields.items() if v is not None}}
    if split:
        parts = split_utf8(text)
        total = len(text.encode("utf-8"))
        truncated = sum(len(p.encode("utf-8")) for p in parts) < total
        entries = []
        for number, part in enumerate(parts):
            entry = {**base, "text": part}
            if len(parts) > 1:
                entry["part"], entry["parts"] = number, len(parts)
            entries.append(entry)
        if truncated:
            entries[-1].update(truncated=True, size=total)
        return entries
    cut, truncated, size = truncate_utf8(text)
    entry = {**base, "text": cut}
    if truncated:
        entry.update(truncated=True, size=size)
    return [entry]


def encode_entry(entry: dict[str, Any]) -> str:
    """Compact JSON of an entry, its text cut further if escaping pushed it past ENCODED_MAX_BYTES."""
    encoded = json.dumps(entry, ensure_ascii=False, separators=(",", ":"))
    while len(encoded.encode("utf-8")) > ENCODED_MAX_BYTES and entry.get("text"):
        text = str(entry["text"])
        entry = {**entry, "text": text[: len(text) // 2], "truncated": True}
        entry.setdefault("size", len(text.encode("utf-8")))
        encoded = json.dumps(entry, ensure_ascii=False, separators=(",", ":"))
    return encoded


def parse_pages(pages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries of all pages in index order."""
    entries: list[dict[str, Any]] = []
    for page in pages:
        for key, value in (page.get("data") or {}).items():
            if not key.isdigit():
                continue
            try:
                entry = json.loads(value)
            except ValueError:
                entry = {"kind": "unreadable", "text": value[:200]}
            entry["index"] = int(key)
            entries.append(entry)
    entries.sort(key=lambda e: int(e["index"]))
    return entries


def _selector(run_name: str) -> str:
    run = protocol.run_label_value(run_name)
    return f"{protocol.LABEL_RUN_NAME}={run},{protocol.LABEL_KIND}={protocol.KIND_TRANSCRIPT}"


def _filter_owned(pages: list[dict[str, Any]], uid: str | None) -> list[dict[str, Any]]:
    return [p for p in pages if uid is None or owned_by(p, uid)]


class SyncLister(Protocol):
    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]: ...


def read_transcript(kube: SyncLister, namespace: str, run: str) -> list[dict[str, Any]]:
    """The run's transcript (sync: `paddock_operator.controllers.kube.Kube`, for the CLI)."""
    body = kube.get(_RUN_API, "AgentRun", namespace, run)
    uid = body["metadata"]["uid"] if body else None
    return parse_pages(_filter_owned(kube.list("v1", "ConfigMap", namespace, _selector(run)), uid))


async def aread_transcript(kube: AsyncKube, namespace: str, run: str) -> list[dict[str, Any]]:
    body = await kube.get(_RUN_API, "AgentRun", namespace, run)
    uid = body["metadata"]["uid"] if body else None
    return parse_pages(_filter_owned(await kube.list("v1", "ConfigMap", namespace, _selector(run)), uid))


class TranscriptWriter:
    """Buffers entries and appends them in batches (at most every FLUSH_INTERVAL_SECONDS, or on flush())."""

    def __init__(self, kube: AsyncKube, run: dict[str, Any], *, flush_interval: float = FLUSH_INTERVAL_SECONDS) -> None:
        self.kube = kube
        self.run = run
        self.namespace: str = run["metadata"]["namespace"]
        self.name: str = run["metadata"]["name"]
        self.uid: str = run["metadata"]["uid"]
        self.flush_interval = flush_interval
        self.next_index = 0
        self._buffer: list[dict[str, Any]] = []
        self._pages_known: set[int] = set()
        self._last_flush = time.monotonic()

    async def open(self) -> None:
        """Continue after the last entry already written (never overwrite: a crashed segment's entries stay)."""
        pages = _filter_owned(await self.kube.list("v1", "ConfigMap", self.namespace, _selector(self.name)), self.uid)
        entries = parse_pages(pages)
        self.next_index = (int(entries[-1]["index"]) + 1) if entries else 0
        for page in pages:
            self._pages_known.add(int((page["metadata"].get("labels") or {}).get(protocol.PREFIX + "page", "-1")))

    async def add(self, kind: str, text: str = "", *, split: bool = False, **fields: Any) -> None:
        for entry in make_entry(kind, text, split=split, **fields):
            self._buffer.append(entry)
        if time.monotonic() - self._last_flush >= self.flush_interval:
            await self.flush()

    async def flush(self) -> None:
        self._last_flush = time.monotonic()
        if not self._buffer:
            return
        buffered, self._buffer = self._buffer, []
        by_page: dict[int, dict[str, str]] = {}
        for entry in buffered:
            index = self.next_index
            self.next_index += 1
            by_page.setdefault(index // ENTRIES_PER_PAGE, {})[f"{index:08d}"] = encode_entry(entry)
        for page, data in sorted(by_page.items()):
            await self._append(page, data)

    async def _append(self, page: int, data: dict[str, str]) -> None:
        name = page_name(self.name, page)
        if page not in self._pages_known:
            obj = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": name,
                    "namespace": self.namespace,
                    "labels": {
                        protocol.LABEL_RUN_NAME: protocol.run_label_value(self.name),
                        protocol.LABEL_RUN_UID: self.uid,
                        protocol.LABEL_KIND: protocol.KIND_TRANSCRIPT,
                        protocol.PREFIX + "page": str(page),
                    },
                    "ownerReferences": [owner_reference(self.run)],
                },
                "data": data,
            }
            try:
                await self.kube.create(obj)
                self._pages_known.add(page)
                return
            except ConflictError:
                self._pages_known.add(page)
        await self.kube.patch_merge("v1", "ConfigMap", self.namespace, name, {"data": data})
