"""Shell wrappers run inside the workspace pod.

pods/exec takes only an argv: no working directory, no environment, no process-group control.
Every command therefore runs under `WRAPPER`, which:

* `cd`s into the workspace root once it exists (bootstrap commands run before the manifest
  creates it),
* applies the manifest environment with `env -- K=V ...` (argv elements, never re-parsed by a
  shell, so no quoting is involved),
* starts the command in its own session/process group (`setsid`), announces that process group
  id as the first line on stderr (`PGID_MARKER`), and waits for it so the exit status (128+N for a
  signal) is exactly what the shell reports,
* tags the command's environment with a per-exec token so a timeout can also find descendants
  that left the process group (daemonized with their own `setsid`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Final

PGID_MARKER: Final = b"\x1epaddock-pgid:"
EXEC_ID_ENV: Final = "PADDOCK_EXEC_ID"
# Exit code when the workspace root exists but cannot be entered (distinct from the codes the
# SDK interprets: 1, 2, 111-114, 126, 127).
CD_FAILED_EXIT: Final = 125

WRAPPER: Final = (
    "r=$1; shift\n"
    'if [ -n "$r" ] && [ -d "$r" ]; then cd "$r" || exit 125; fi\n'
    # A background job's stdin is /dev/null unless redirected explicitly: keep the exec's stdin.
    "exec 3<&0\n"
    "if command -v setsid >/dev/null 2>&1; then s=setsid; else s=; fi\n"
    # The inner sh is not a process-group leader (no job control), so setsid() succeeds in place
    # and its pid becomes the new process group id; it prints that pid before anything else.
    'sh -c \'printf "\\036paddock-pgid:%s\\n" "$$" >&2; exec "$@"\' sh $s env "$@" <&3 3<&- &\n'
    'wait "$!"\n'
)

KILL_SCRIPT: Final = (
    "pg=$1; tok=$2\n"
    "tagged() {\n"
    "  for d in /proc/[0-9]*; do\n"
    '    if grep -qsxz "' + EXEC_ID_ENV + '=$tok" "$d/environ" 2>/dev/null; then echo "${d#/proc/}"; fi\n'
    "  done\n"
    "}\n"
    "sig() {\n"
    '  if [ -n "$pg" ]; then kill -"$1" -- "-$pg" 2>/dev/null; fi\n'
    '  for p in $(tagged); do kill -"$1" "$p" 2>/dev/null; done\n'
    "}\n"
    "alive() {\n"
    '  if [ -n "$pg" ] && kill -0 -- "-$pg" 2>/dev/null; then return 0; fi\n'
    '  [ -n "$(tagged)" ]\n'
    "}\n"
    "sig TERM\n"
    "i=0\n"
    'while [ "$i" -lt 20 ]; do\n'
    "  alive || exit 0\n"
    "  sleep 0.1 2>/dev/null || sleep 1\n"
    "  i=$((i + 1))\n"
    "done\n"
    "sig KILL\n"
    "alive && exit 1\n"
    "exit 0\n"
)

# Write `n` bytes of stdin to a file. The v4 channel protocol cannot half-close stdin, so the
# payload is framed by length (`head -c`). It is staged next to the destination (same filesystem,
# the workspace volume rather than a possibly small /tmp) and copied in with `cat` so an existing
# file keeps its mode and a short transfer never truncates the destination.
WRITE_SCRIPT: Final = (
    "n=$1; dst=$2\n"
    'dir=$(dirname -- "$dst")\n'
    'mkdir -p -- "$dir" || exit 93\n'
    'tmp=$(mktemp "$dir/.paddock-write.XXXXXX") || exit 90\n'
    "trap 'rm -f -- \"$tmp\"' EXIT\n"
    'head -c "$n" > "$tmp" || exit 91\n'
    'got=$(wc -c < "$tmp")\n'
    'if [ "$got" -ne "$n" ]; then echo "short payload: $got of $n bytes" >&2; exit 92; fi\n'
    'cat -- "$tmp" > "$dst" || exit 94\n'
)

# Feed exactly `n` bytes of stdin to a command (used for `tar -x`).
FRAMED_STDIN_SCRIPT: Final = 'n=$1; shift; head -c "$n" | "$@"'

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def env_assignments(env: Mapping[str, str]) -> list[str]:
    out: list[str] = []
    for key, value in env.items():
        if not _ENV_NAME.match(key):
            raise ValueError(f"invalid environment variable name: {key!r}")
        if "\x00" in value:
            raise ValueError(f"environment variable {key} contains a NUL byte")
        out.append(f"{key}={value}")
    return out


def wrap_command(command: Sequence[str], *, root: str | None, env: Mapping[str, str], exec_id: str) -> list[str]:
    """Return the argv sent to pods/exec for `command`."""
    if not command:
        raise ValueError("empty command")
    if any("\x00" in part for part in command):
        raise ValueError("command arguments must not contain NUL bytes")
    first = command[0]
    # `env` would read a leading NAME=VALUE word as an assignment, not as the program.
    if "=" in first:
        command = ["sh", "-c", 'exec "$@"', "sh", *command]
    return [
        "sh",
        "-c",
        WRAPPER,
        "paddock-exec",
        root or "",
        "--",
        f"{EXEC_ID_ENV}={exec_id}",
        *env_assignments(env),
        *command,
    ]


def kill_command(pgid: int | None, exec_id: str) -> list[str]:
    return ["sh", "-c", KILL_SCRIPT, "paddock-kill", "" if pgid is None else str(pgid), exec_id]


def write_file_command(path: str, length: int) -> list[str]:
    return ["sh", "-c", WRITE_SCRIPT, "paddock-write", str(length), path]


def framed_stdin_command(length: int, argv: Sequence[str]) -> list[str]:
    return ["sh", "-c", FRAMED_STDIN_SCRIPT, "paddock-stdin", str(length), *argv]
