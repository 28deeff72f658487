"""The driver's storage layer against the in-memory API: chunked checkpoints, transcript pages, status
writes with optimistic concurrency, per-run leases."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from paddock_harness.driver import protocol
from paddock_harness.driver.checkpoint import (
    CheckpointError,
    CheckpointMeta,
    CheckpointStore,
    LostOwnershipError,
    PendingCall,
    chunk_name,
    decode_payload,
    encode_payload,
    index_name,
    join_chunks,
    split_chunks,
)
from paddock_harness.driver.lease import API as LEASE_API
from paddock_harness.driver.lease import RunClaim
from paddock_harness.driver.memory import InMemoryKube
from paddock_harness.driver.status import RunEndedError, StatusWriter
from paddock_harness.driver.transcript import ENTRIES_PER_PAGE, TranscriptWriter, aread_transcript, read_transcript

RUN_API = "paddock.dev/v1alpha1"


def add_run(kube: InMemoryKube, name: str = "r1", phase: str = "Running") -> dict[str, Any]:
    return kube.put(
        {
            "apiVersion": RUN_API,
            "kind": "AgentRun",
            "metadata": {"name": name, "namespace": "ns", "generation": 1},
            "spec": {"workspaceRef": {"name": "ws"}, "prompt": "p"},
            "status": {"phase": phase},
        }
    )


# -- pure chunking -----------------------------------------------------------------------------------


def test_payload_and_chunks_round_trip() -> None:
    state = "x" * 10 + os.urandom(3000).hex()
    blob = encode_payload(state, {"type": "kubernetes", "pod_name": "p"})
    assert decode_payload(blob) == (state, {"type": "kubernetes", "pod_name": "p"})
    parts = split_chunks(blob, 1000)
    assert all(len(p) <= 1000 for p in parts)
    assert len(parts) == -(-len(blob) // 1000)
    import hashlib

    sha = hashlib.sha256(blob).hexdigest()
    assert join_chunks(parts, size=len(blob), sha256=sha) == blob
    with pytest.raises(CheckpointError):
        join_chunks(parts[:-1], size=len(blob), sha256=sha)
    with pytest.raises(CheckpointError):
        decode_payload(b"not zlib")
    assert split_chunks(b"") == [b""]


# -- checkpoint store --------------------------------------------------------------------------------


async def test_checkpoint_inline_then_chunked_then_inline() -> None:
    kube = InMemoryKube()
    run = add_run(kube)
    store = CheckpointStore(kube, run, chunk_bytes=4096, inline_max=4096)
    assert await store.load() is None

    meta = CheckpointMeta(pending=[PendingCall(call_id="c1", tool="exec_command", command="ls")], turns=1)
    await store.save("small", None, meta)
    assert [cm["metadata"]["name"] for cm in kube.of_kind("ConfigMap")] == [index_name("r1")]

    big = os.urandom(20000).hex()  # incompressible: several chunks
    committed = await store.save(big, {"k": 1}, CheckpointMeta(turns=2))
    assert committed.generation == 2
    assert committed.chunks > 1
    loaded = await CheckpointStore(kube, run, chunk_bytes=4096, inline_max=4096).load()
    assert loaded is not None
    assert loaded.run_state == big
    assert loaded.sandbox_session == {"k": 1}
    assert loaded.meta.turns == 2
    assert loaded.meta.pending == []

    await store.save("small again", None, CheckpointMeta(turns=3))
    names = {cm["metadata"]["name"] for cm in kube.of_kind("ConfigMap")}
    assert names == {index_name("r1")}  # the old generation's chunks are gone
    loaded = await CheckpointStore(kube, run).load()
    assert loaded is not None
    assert loaded.run_state == "small again"
    for cm in kube.of_kind("ConfigMap"):
        assert cm["metadata"]["ownerReferences"][0]["uid"] == run["metadata"]["uid"]
        assert cm["metadata"]["labels"][protocol.LABEL_RUN_UID] == run["metadata"]["uid"]


async def test_checkpoint_torn_write_keeps_the_previous_generation() -> None:
    kube = InMemoryKube()
    run = add_run(kube)
    store = CheckpointStore(kube, run, chunk_bytes=2048, inline_max=100)
    first = os.urandom(5000).hex()
    await store.save(first, None, CheckpointMeta(turns=1))

    # A save that died after writing chunks of generation 2 but before the index flip:
    kube.put(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": chunk_name("r1", 2, 0), "namespace": "ns"},
            "binaryData": {"chunk": "AAAA"},
        }
    )
    loaded = await CheckpointStore(kube, run).load()
    assert loaded is not None
    assert loaded.run_state == first

    second = os.urandom(5000).hex()
    await store.save(second, None, CheckpointMeta(turns=2))  # overwrites the leftover generation 2
    loaded = await CheckpointStore(kube, run).load()
    assert loaded is not None
    assert loaded.run_state == second
    assert loaded.meta.generation == 2


async def test_checkpoint_detects_a_second_writer() -> None:
    kube = InMemoryKube()
    run = add_run(kube)
    mine, theirs = CheckpointStore(kube, run), CheckpointStore(kube, run)
    await mine.save("a", None, CheckpointMeta())
    assert await theirs.load() is not None
    await theirs.save("b", None, CheckpointMeta())
    with pytest.raises(LostOwnershipError):
        await mine.save("c", None, CheckpointMeta())
    with pytest.raises(LostOwnershipError):
        await mine.update_meta(CheckpointMeta(inflight=["x"]))


async def test_checkpoint_of_another_run_is_refused() -> None:
    kube = InMemoryKube()
    old = add_run(kube)
    await CheckpointStore(kube, old).save("old", None, CheckpointMeta())
    kube.objects.pop(("AgentRun", "ns", "r1", "paddock.dev"))
    new = add_run(kube)  # same name, new uid; the old run's objects are not yet collected
    with pytest.raises(CheckpointError):
        await CheckpointStore(kube, new).load()


# -- transcript --------------------------------------------------------------------------------------


async def test_transcript_pages_and_reader() -> None:
    kube = InMemoryKube()
    run = add_run(kube)
    writer = TranscriptWriter(kube, run, flush_interval=3600)
    await writer.open()
    for i in range(ENTRIES_PER_PAGE + 5):
        await writer.add("tool_output", f"out {i}", callId=f"c{i}")
    assert kube.of_kind("ConfigMap") == []  # buffered
    await writer.flush()
    assert len(kube.of_kind("ConfigMap")) == 2

    # a new writer (harness restart) continues after the last entry, never overwriting
    again = TranscriptWriter(kube, run)
    await again.open()
    assert again.next_index == ENTRIES_PER_PAGE + 5
    await again.add("final", "bye")
    await again.flush()
    entries = await aread_transcript(kube, "ns", "r1")
    assert [e["index"] for e in entries] == list(range(ENTRIES_PER_PAGE + 6))
    assert entries[3]["text"] == "out 3"
    assert entries[-1]["kind"] == "final"

    class SyncKube:  # what the CLI passes: the operator's synchronous Kube
        def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
            return kube.peek(api_version, kind, namespace, name)

        def list(
            self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
        ) -> list[dict[str, Any]]:
            import asyncio

            return asyncio.run(kube.list(api_version, kind, namespace, label_selector))

    import asyncio

    assert await asyncio.to_thread(read_transcript, SyncKube(), "ns", "r1") == entries


# -- status writes -----------------------------------------------------------------------------------


async def test_status_write_retries_on_conflict_and_stops_when_ended() -> None:
    kube = InMemoryKube()
    run = add_run(kube)
    status = StatusWriter(kube, run, interval=3600)
    kube.set_status(RUN_API, "AgentRun", "ns", "r1", {"conditions": [{"type": "WorkspaceReady", "status": "True"}]})
    status.stage(turns=3)
    await status.write({"toolCalls": 1})  # stale resourceVersion: 409, re-read, retried
    body = kube.peek(RUN_API, "AgentRun", "ns", "r1")
    assert body is not None
    assert body["status"]["turns"] == 3
    assert body["status"]["toolCalls"] == 1
    assert body["status"]["conditions"][0]["type"] == "WorkspaceReady"

    status.stage(turns=4)
    await status.maybe_flush()  # within the interval: nothing written
    assert kube.peek(RUN_API, "AgentRun", "ns", "r1")["status"]["turns"] == 3  # type: ignore[index]

    kube.set_status(RUN_API, "AgentRun", "ns", "r1", {"phase": "Cancelled"})
    with pytest.raises(RunEndedError):
        await status.write({"turns": 5})
    assert kube.peek(RUN_API, "AgentRun", "ns", "r1")["status"]["phase"] == "Cancelled"  # type: ignore[index]


# -- leases ------------------------------------------------------------------------------------------


async def test_claims_are_exclusive_and_stale_ones_are_taken_over() -> None:
    kube = InMemoryKube()
    run = add_run(kube)
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    a = RunClaim(kube, run, "a", 15, clock=lambda: now[0])
    b = RunClaim(kube, run, "b", 15, clock=lambda: now[0])
    assert await a.acquire()
    assert not await b.acquire()
    now[0] += timedelta(seconds=10)
    assert await a.renew()
    now[0] += timedelta(seconds=10)
    assert not await b.acquire()  # renewed 10 s ago: still a's
    now[0] += timedelta(seconds=20)  # a stopped renewing: stale
    assert await b.acquire()
    assert not await a.renew()  # a learns it lost the run
    lease = kube.peek(LEASE_API, "Lease", "ns", protocol.lease_name("r1"))
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == "b"
    assert lease["spec"]["leaseTransitions"] == 1
    await b.release()
    assert await a.acquire()  # released: free at once
