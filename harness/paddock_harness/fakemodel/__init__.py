"""A scripted stand-in for the OpenAI Responses API, for tests and ``make demo``.

It replays a script of model turns (tool calls, messages, usage, injected errors); it is a
replay, not a model. See ``script.py`` for the script format and ``server.py`` for the endpoints.

    async with FakeModelServer("scripts/demo.json") as server:
        client = AsyncOpenAI(base_url=server.base_url, api_key="test")

    python -m paddock_harness.fakemodel --script demo --host 127.0.0.1 --port 8765
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .script import Script, load_script
from .server import RUN_HEADER, FakeModelServer, RecordedRequest
from .threaded import FakeModelThread

__all__ = [
    "RUN_HEADER",
    "FakeModelServer",
    "FakeModelThread",
    "RecordedRequest",
    "Script",
    "builtin_script",
    "load_script",
]


def builtin_script(name: str) -> Path:
    """Path of a script shipped in the package (``demo`` or ``demo.json``)."""
    scripts = resources.files("paddock_harness.fakemodel") / "scripts"
    for candidate in (name, f"{name}.json", f"{name}.yaml"):
        entry = scripts / candidate
        if entry.is_file():
            return Path(str(entry))
    raise FileNotFoundError(f"no built-in fake model script named {name!r}")
