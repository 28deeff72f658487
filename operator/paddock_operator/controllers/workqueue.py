"""A keyed work queue with the guarantees of client-go's: a key is never reconciled by two workers at once,
keys added while queued collapse into one reconcile, keys added while being reconciled run once more after,
and delayed keys wake at their deadline."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._ready: asyncio.Queue[K] = asyncio.Queue()
        self._queued: set[K] = set()
        self._processing: set[K] = set()
        self._dirty: set[K] = set()
        self._delayed: list[tuple[float, int, K]] = []
        self._sequence = 0
        self._wakeup = asyncio.Event()

    def add(self, key: K) -> None:
        if key in self._processing:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._ready.put_nowait(key)

    def add_after(self, key: K, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        self._sequence += 1
        heapq.heappush(self._delayed, (self._clock() + delay, self._sequence, key))
        self._wakeup.set()

    def __len__(self) -> int:
        return len(self._queued)

    async def _get(self) -> K:
        key = await self._ready.get()
        self._queued.discard(key)
        self._processing.add(key)
        return key

    def _done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    async def run_delayed(self) -> None:
        """Move delayed keys to the ready queue when they are due."""
        while True:
            self._wakeup.clear()
            now = self._clock()
            while self._delayed and self._delayed[0][0] <= now:
                _, _, key = heapq.heappop(self._delayed)
                self.add(key)
            timeout = self._delayed[0][0] - now if self._delayed else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout)

    async def run_worker(self, handle: Callable[[K], Awaitable[float | None]]) -> None:
        """Reconcile keys forever; `handle` returns seconds until the key wants another look (or None)."""
        while True:
            key = await self._get()
            try:
                requeue = await handle(key)
            except asyncio.CancelledError:
                raise
            except Exception:  # handle() logs its own errors; retry with backoff
                requeue = 5.0
            finally:
                self._done(key)
            if requeue is not None:
                self.add_after(key, requeue)
