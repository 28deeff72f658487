"""``python -m paddock_harness.fakemodel --script FILE --port N``: serve a script until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from . import builtin_script
from .server import FakeModelServer


def _script_path(value: str) -> Path:
    path = Path(value)
    if path.is_file():
        return path
    if os.sep not in value:
        try:
            return builtin_script(value)
        except FileNotFoundError:
            pass
    raise argparse.ArgumentTypeError(f"no script file {value!r} (nor a built-in script of that name)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m paddock_harness.fakemodel",
        description="Serve a scripted replay of OpenAI Responses API turns (a replay, not a model).",
    )
    parser.add_argument(
        "--script", required=True, type=_script_path, help="script .json/.yaml, or a built-in name (demo)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (0 picks a free one; default 8765)")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("PADDOCK_FAKE_MODEL_API_KEY"),
        help="require exactly this bearer key (default: any non-empty key)",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return parser


async def _serve(args: argparse.Namespace) -> None:
    server = FakeModelServer(args.script, host=args.host, port=args.port, api_key=args.api_key)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await server.start()
    # One machine-readable line on stdout so scripts can wait for it and pick up the port.
    print(f"fake model listening on {server.base_url}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()
        failures = server.failures
        if failures:
            logging.getLogger(__name__).warning("%d script failures: %s", len(failures), failures)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
