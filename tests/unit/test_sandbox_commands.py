"""The shell wrappers run inside the pod, exercised here with the local POSIX shell."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from paddock_harness.sandbox import commands as c


def run(argv: list[str], stdin: bytes = b"") -> tuple[int, bytes, bytes]:
    proc = subprocess.run(argv, input=stdin, capture_output=True, timeout=30, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def strip_marker(stderr: bytes) -> tuple[int, bytes]:
    assert stderr.startswith(c.PGID_MARKER), stderr
    line, _, rest = stderr.partition(b"\n")
    return int(line[len(c.PGID_MARKER) :]), rest


def test_wrapper_cds_applies_env_and_keeps_exit_codes(tmp_path: Path) -> None:
    tricky = "a b'\"$HOME`x`;\n*"
    argv = c.wrap_command(
        ["sh", "-c", 'pwd; printf %s "$V"; echo oops >&2; exit 7'],
        root=str(tmp_path),
        env={"V": tricky},
        exec_id="t1",
    )
    code, out, err = run(argv)
    assert code == 7
    assert out == f"{tmp_path}\n{tricky}".encode()
    assert strip_marker(err)[1] == b"oops\n"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["true"], 0),
        (["false"], 1),
        (["sh", "-c", "exit 2"], 2),
        (["sh", "-c", "exit 111"], 111),
        (["sh", "-c", "kill -9 $$"], 137),
        (["sh", "-c", "kill -15 $$"], 143),
        (["definitely-not-a-command"], 127),
        (["A=B", "x"], 127),  # a leading NAME=VALUE word is a program name, not an assignment
    ],
)
def test_exit_codes(command: list[str], expected: int) -> None:
    code, _, _ = run(c.wrap_command(command, root=None, env={}, exec_id="t"))
    assert code == expected


def test_missing_root_is_not_entered_yet(tmp_path: Path) -> None:
    code, out, _ = run(c.wrap_command(["pwd"], root=str(tmp_path / "missing"), env={}, exec_id="t"))
    assert code == 0
    assert out.strip() != str(tmp_path / "missing").encode()


def test_stdin_reaches_the_command() -> None:
    code, out, _ = run(c.wrap_command(["cat"], root=None, env={}, exec_id="t"), stdin=b"\x00\xffdata")
    assert (code, out) == (0, b"\x00\xffdata")


def test_wrap_rejects_bad_env_and_nul() -> None:
    with pytest.raises(ValueError, match="invalid environment variable name"):
        c.wrap_command(["true"], root=None, env={"A-B": "x"}, exec_id="t")
    with pytest.raises(ValueError, match="NUL"):
        c.wrap_command(["echo", "a\x00b"], root=None, env={}, exec_id="t")
    with pytest.raises(ValueError, match="empty command"):
        c.wrap_command([], root=None, env={}, exec_id="t")


def _tagged_pids(token: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if f"{c.EXEC_ID_ENV}={token}".encode() in f.read().split(b"\0"):
                    pids.append(int(entry))
        except OSError:
            continue
    return pids


def test_kill_script_kills_the_group_and_escaped_descendants() -> None:
    token = f"kill-{os.getpid()}-{time.time_ns()}"
    argv = c.wrap_command(["sh", "-c", "sleep 301 & setsid sleep 302 & sleep 303"], root=None, env={}, exec_id=token)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        pgid, _ = strip_marker(proc.stderr.readline())
        deadline = time.monotonic() + 5
        while len(_tagged_pids(token)) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_tagged_pids(token)) >= 4  # sh + three sleeps (one in its own session)
        code, _, _ = run(c.kill_command(pgid, token))
        assert code == 0
        assert proc.wait(timeout=5) == 128 + 15
        assert _tagged_pids(token) == []
    finally:
        proc.kill()


def test_write_script_is_exact_and_never_truncates_on_short_input(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "f.bin"
    data = bytes(range(256)) * 100
    code, _, _ = run(c.write_file_command(str(target), len(data)), stdin=data + b"trailing")
    assert code == 0
    assert target.read_bytes() == data
    target.chmod(0o640)
    code, _, err = run(c.write_file_command(str(target), len(data)), stdin=data[:10])
    assert code == 92
    assert b"short payload" in err
    assert target.read_bytes() == data  # untouched
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.bin"]  # staging file removed
    code, _, _ = run(c.write_file_command(str(target), 3), stdin=b"new")
    assert code == 0
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o640  # an existing file keeps its mode


def test_framed_stdin_stops_after_n_bytes() -> None:
    code, out, _ = run(c.framed_stdin_command(4, ["cat"]), stdin=b"abcdefgh")
    assert (code, out) == (0, b"abcd")
