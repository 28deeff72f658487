"""WorkQueue: collapsing duplicates, one reconcile per key at a time, re-runs for keys dirtied meanwhile,
delayed keys in deadline order."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager

import pytest

from paddock_operator.controllers.workqueue import WorkQueue

pytestmark = pytest.mark.timeout(20)


async def until(predicate: Callable[[], bool]) -> None:
    """Poll: the queue has no hook to wait on, and the tests must not add one to it."""
    async with asyncio.timeout(3.0):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.001)


async def settle(rounds: int = 20) -> None:
    """Let every runnable task run until it blocks again."""
    for _ in range(rounds):
        await asyncio.sleep(0)


@asynccontextmanager
async def running(
    queue: WorkQueue[str], handle: Callable[[str], Awaitable[float | None]], workers: int = 1
) -> AsyncIterator[list[asyncio.Task[None]]]:
    tasks = [asyncio.create_task(queue.run_delayed())]
    tasks += [asyncio.create_task(queue.run_worker(handle)) for _ in range(workers)]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class Recorder:
    """A handler that records calls, tracks concurrency per key, and can be held inside a reconcile."""

    def __init__(self, results: Iterable[float | None] = ()) -> None:
        self.calls: list[str] = []
        self.active: Counter[str] = Counter()
        self.max_active: Counter[str] = Counter()
        self.max_total = 0
        self.gates: dict[str, asyncio.Event] = {}
        self.entered: dict[str, asyncio.Event] = {}
        self._results = list(results)

    def hold(self, key: str) -> None:
        self.gates[key] = asyncio.Event()
        self.entered[key] = asyncio.Event()

    def release(self, key: str) -> None:
        self.gates.pop(key).set()

    async def __call__(self, key: str) -> float | None:
        self.calls.append(key)
        self.active[key] += 1
        self.max_active[key] = max(self.max_active[key], self.active[key])
        self.max_total = max(self.max_total, sum(self.active.values()))
        try:
            if key in self.entered:
                self.entered[key].set()
            gate = self.gates.get(key)
            if gate is not None:
                await gate.wait()
            await asyncio.sleep(0)
            return self._results.pop(0) if self._results else None
        finally:
            self.active[key] -= 1


async def test_duplicates_collapse_into_one_reconcile() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for key in ["a", "a", "b", "a", "b"]:
        queue.add(key)
    assert len(queue) == 2
    handle = Recorder()
    async with running(queue, handle):
        await until(lambda: len(handle.calls) == 2)
        await settle()
    assert handle.calls == ["a", "b"]
    assert len(queue) == 0


async def test_keys_run_in_the_order_added() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for key in "dcba":
        queue.add(key)
    handle = Recorder()
    async with running(queue, handle):
        await until(lambda: len(handle.calls) == 4)
    assert handle.calls == list("dcba")


async def test_a_key_is_never_reconciled_twice_at_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    handle = Recorder()
    handle.hold("a")
    async with running(queue, handle, workers=4):
        queue.add("a")
        await handle.entered["a"].wait()
        for _ in range(5):
            queue.add("a")  # while "a" is being reconciled: marks it dirty, hands it to nobody
            await settle()
        assert handle.calls == ["a"]
        assert len(queue) == 0
        handle.release("a")
        await until(lambda: len(handle.calls) == 2)
        await settle()
    assert handle.calls == ["a", "a"]  # exactly one more run for all the adds meanwhile
    assert handle.max_active["a"] == 1


async def test_a_key_added_after_processing_runs_again() -> None:
    queue: WorkQueue[str] = WorkQueue()
    handle = Recorder()
    async with running(queue, handle):
        queue.add("a")
        await until(lambda: len(handle.calls) == 1)
        await settle()
        queue.add("a")
        await until(lambda: len(handle.calls) == 2)
        await settle()
    assert handle.calls == ["a", "a"]


async def test_different_keys_run_in_parallel() -> None:
    queue: WorkQueue[str] = WorkQueue()
    handle = Recorder()
    for key in "abc":
        handle.hold(key)
        queue.add(key)
    async with running(queue, handle, workers=3):
        await asyncio.gather(*(handle.entered[k].wait() for k in "abc"))
        assert handle.max_total == 3
        for key in "abc":
            handle.release(key)
        await settle()
    assert sorted(handle.calls) == ["a", "b", "c"]


async def test_stress_many_adds_many_workers() -> None:
    queue: WorkQueue[str] = WorkQueue()
    handle = Recorder()
    keys = [f"k{i}" for i in range(10)]
    async with running(queue, handle, workers=4):
        for _ in range(50):
            for key in keys:
                queue.add(key)
            await asyncio.sleep(0)
        await until(lambda: len(queue) == 0 and sum(handle.active.values()) == 0)
        await settle()
        final = Counter(handle.calls)
    assert set(final) == set(keys)
    assert all(count <= 51 for count in final.values())
    assert max(handle.max_active.values()) == 1


async def test_add_after_wakes_keys_in_deadline_order() -> None:
    queue: WorkQueue[str] = WorkQueue()
    handle = Recorder()
    async with running(queue, handle):
        queue.add_after("slow", 0.06)
        queue.add_after("fast", 0.01)
        queue.add_after("middle", 0.03)
        assert len(queue) == 0  # nothing is ready yet
        await until(lambda: len(handle.calls) == 3)
    assert handle.calls == ["fast", "middle", "slow"]


@pytest.mark.parametrize("delay", [0, -1.0])
async def test_add_after_without_delay_is_add(delay: float) -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("a", delay)
    assert len(queue) == 1


async def test_delayed_key_already_queued_collapses() -> None:
    queue: WorkQueue[str] = WorkQueue()
    handle = Recorder()
    handle.hold("block")
    queue.add("block")  # keeps the single worker busy while "a" is both queued and due
    queue.add("a")
    async with running(queue, handle):
        await handle.entered["block"].wait()
        queue.add_after("a", 0.005)
        await asyncio.sleep(0.03)
        assert len(queue) == 1
        handle.release("block")
        await until(lambda: len(handle.calls) == 2)
        await asyncio.sleep(0.02)
    assert handle.calls == ["block", "a"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_delays_follow_the_injected_clock() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(clock=clock)
    handle = Recorder()
    async with running(queue, handle):
        queue.add_after("b", 20.0)
        queue.add_after("a", 10.0)
        await settle()
        clock.now += 9.9
        queue.add_after("kick", 1000.0)  # any add_after wakes the timer loop to look at the clock again
        await settle()
        assert handle.calls == []
        clock.now += 0.1
        queue.add_after("kick", 1000.0)
        await until(lambda: handle.calls == ["a"])
        clock.now += 10.0
        queue.add_after("kick", 1000.0)
        await until(lambda: handle.calls == ["a", "b"])


@pytest.mark.parametrize(("result", "expected_delay"), [(None, None), (0.0, 0.0), (7.5, 7.5)])
async def test_handler_result_requeues(result: float | None, expected_delay: float | None) -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(clock=clock)
    handle = Recorder(results=[result])
    async with running(queue, handle):
        queue.add("a")
        await until(lambda: len(handle.calls) >= 1)  # with no delay the second run follows at once
        await settle()
        if expected_delay is None:
            clock.now += 10**6
            queue.add_after("kick", 10**7)
            await settle()
            assert handle.calls == ["a"]
            return
        if expected_delay > 0:
            clock.now += expected_delay - 0.01
            queue.add_after("kick", 10**7)
            await settle()
            assert handle.calls == ["a"]
            clock.now += 0.01
            queue.add_after("kick", 10**7)
        await until(lambda: handle.calls == ["a", "a"])


async def test_failing_handler_is_retried_after_five_seconds() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(clock=clock)
    calls: list[str] = []

    async def handle(key: str) -> float | None:
        calls.append(key)
        if len(calls) == 1:
            raise RuntimeError("apiserver hiccup")
        return None

    async with running(queue, handle) as tasks:
        queue.add("a")
        await until(lambda: len(calls) == 1)
        await settle()
        assert not any(t.done() for t in tasks)  # the worker survives the error
        clock.now += 4.9
        queue.add_after("kick", 10**7)
        await settle()
        assert calls == ["a"]
        clock.now += 0.1
        queue.add_after("kick", 10**7)
        await until(lambda: calls == ["a", "a"])


async def test_cancelled_worker_releases_its_key() -> None:
    queue: WorkQueue[str] = WorkQueue()
    handle = Recorder()
    handle.hold("a")
    queue.add("a")
    worker = asyncio.create_task(queue.run_worker(handle))
    await handle.entered["a"].wait()
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await worker
    queue.add("a")  # not stuck as "processing": it is queued again
    assert len(queue) == 1
