"""Command-line flags that can also be set by environment variables (how the Helm chart configures us)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any


def env_list(name: str, default: str = "") -> list[str]:
    """A comma-separated environment variable as a list."""
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def add_env_flag(
    parser: argparse.ArgumentParser,
    flag: str,
    env: str,
    default: Any,
    help: str,
    *,
    type: Callable[[str], Any] = str,
) -> None:
    """`flag` defaults to $`env` when set, else to `default`; the help names the variable."""
    raw = os.environ.get(env)
    value = type(raw) if raw is not None and raw != "" else default
    parser.add_argument(flag, type=type, default=value, help=f"{help} ({env})")


def add_env_switch(parser: argparse.ArgumentParser, flag: str, env: str, help: str, *, on_value: str) -> None:
    """A store_true `flag`, also switched on by $`env` == `on_value` (case-insensitive)."""
    enabled = os.environ.get(env, "").lower() == on_value
    parser.add_argument(flag, action="store_true", default=enabled, help=f"{help} ({env}={on_value})")


def add_namespace_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-n",
        "--namespace",
        action="append",
        dest="namespaces",
        default=None,
        help="namespace to watch, repeatable, globs allowed (PADDOCK_NAMESPACES, comma-separated; default: all)",
    )
