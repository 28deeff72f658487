"""The fake model server on its own event loop in a daemon thread, for synchronous callers."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from .script import Script
from .server import FakeModelServer, RecordedRequest


class FakeModelThread:
    """The server on its own event loop in a daemon thread, for synchronous tests and tools."""

    def __init__(self, script: Script | str | Path | list[Any] | dict[str, Any], **options: Any) -> None:
        self.server = FakeModelServer(script, **options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.server.start())
            except BaseException as exc:  # surfaced to the starting thread below
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.server.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="paddock-fakemodel", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop = self._thread = None

    def __enter__(self) -> FakeModelThread:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.server.requests

    @property
    def failures(self) -> list[str]:
        return self.server.failures

    def model_requests(self) -> list[RecordedRequest]:
        return self.server.model_requests()

    def reset(self) -> None:
        self.server.reset()
