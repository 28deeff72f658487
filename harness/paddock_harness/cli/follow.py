"""Following a run live: a watch on the AgentRun in a thread, the transcript polled in pages, and the
output (progress line, tool calls, approval prompts) written as things happen.

The main thread blocks on the watch's queue with a timeout (the spinner tick on a TTY, the transcript poll
interval otherwise), so nothing spins.
"""

from __future__ import annotations

import queue
import re
import shutil
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, TextIO

from kubernetes.client.exceptions import ApiException

from paddock_operator.api import RunPhase

from ..driver import protocol
from ..driver.kubeio import owned_by
from ..driver.transcript import ENTRIES_PER_PAGE, parse_pages
from .cluster import CONNECTION_ERRORS, RUNS, CliError, Cluster
from .entries import incomplete_tail, live_lines, log_lines, merge_parts
from .render import PLAIN, Paint, RunView, approval_lines, progress_line

POLL_SECONDS: Final = 1.0
TICK_SECONDS: Final = 0.125
PAGE_WINDOW: Final = 3
APPROVAL_WAIT_SECONDS: Final = 4.0
GIVE_UP_SECONDS: Final = 180.0
"""How long the API server may stay unreachable before following gives up (the run itself goes on)."""
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
Event = tuple[str, Any]


def _same_text(message: dict[str, Any], final: dict[str, Any]) -> bool:
    return str(message.get("text") or "").strip() == str(final.get("text") or "").strip()


def transient(error: BaseException) -> bool:
    """Worth retrying: the API server restarting, overloaded or briefly unreachable."""
    if isinstance(error, ApiException):
        return error.status in (429, 500, 502, 503, 504) or error.status is None or error.status == 0
    return isinstance(error, CONNECTION_ERRORS)


class RunWatcher(threading.Thread):
    """Puts ("run", obj), ("deleted", obj), ("error", exc), ("disconnected", exc) and ("connected", None)
    on a queue. Re-lists on 410 Gone, retries transient failures with backoff."""

    def __init__(self, cluster: Cluster, name: str, events: queue.Queue[Event]) -> None:
        super().__init__(name=f"watch-{name}", daemon=True)
        self.cluster = cluster
        self.run_name = name
        self.events = events
        self.stopped = threading.Event()

    def stop(self) -> None:
        self.stopped.set()

    def run(self) -> None:
        version: str | None = None
        backoff = 0.5
        failing = False
        while not self.stopped.is_set():
            try:
                if version is None:
                    obj = self.cluster.find(RUNS, self.run_name)
                    if obj is None:
                        self.events.put(("deleted", None))
                        return
                    version = obj["metadata"]["resourceVersion"]
                    self.events.put(("run", obj))
                if failing:
                    failing, backoff = False, 0.5
                    self.events.put(("connected", None))
                for event in self.cluster.watch(RUNS, self.run_name, version):
                    if self.stopped.is_set():
                        return
                    obj = event["object"]
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if event["type"] == "BOOKMARK":
                        continue
                    if event["type"] == "DELETED":
                        self.events.put(("deleted", obj))
                        return
                    self.events.put(("run", obj))
            except ApiException as error:
                if error.status == 410:  # our resourceVersion is too old: list again
                    version = None
                    continue
                if not transient(error):
                    self.events.put(("error", error))
                    return
                failing = True
                self.events.put(("disconnected", error))
                self.stopped.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            except CliError as error:
                self.events.put(("error", error))
                return
            except CONNECTION_ERRORS as error:
                failing = True
                self.events.put(("disconnected", error))
                self.stopped.wait(backoff)
                backoff = min(backoff * 2, 5.0)


def transcript_selector(run_name: str, pages: range) -> str:
    run = protocol.run_label_value(run_name)
    wanted = ",".join(str(p) for p in pages)
    return (
        f"{protocol.LABEL_RUN_NAME}={run},{protocol.LABEL_KIND}={protocol.KIND_TRANSCRIPT},"
        f"{protocol.PREFIX}page in ({wanted})"
    )


class TranscriptCursor:
    """New transcript entries since the last poll, reading only the pages around the read position."""

    def __init__(self, cluster: Cluster, run_name: str) -> None:
        self.cluster = cluster
        self.run_name = run_name
        self.next_index = 0

    def poll(self, uid: str | None, *, final: bool = False) -> list[dict[str, Any]]:
        """Entries in order; a split entry is held back until all its parts are there (unless final)."""
        found: list[dict[str, Any]] = []
        while True:
            first = self.next_index // ENTRIES_PER_PAGE
            window = range(first, first + PAGE_WINDOW)
            pages = self.cluster.list_config_maps(transcript_selector(self.run_name, window))
            entries = [
                e
                for e in parse_pages([p for p in pages if uid is None or owned_by(p, uid)])
                if int(e["index"]) >= self.next_index
            ]
            batch: list[dict[str, Any]] = []
            for entry in entries:  # in order, stopping at a gap unless this is the last read
                if not final and int(entry["index"]) != self.next_index + len(batch):
                    break
                batch.append(entry)
            if not final:
                batch = batch[: len(batch) - incomplete_tail(batch)]
            if batch:
                self.next_index = int(batch[-1]["index"]) + 1
            found += batch
            if self.next_index < (first + PAGE_WINDOW) * ENTRIES_PER_PAGE or not batch:
                return merge_parts(found)


class Follower:
    """Follows one run until it finishes; `live` renders the run view, otherwise the `logs` view."""

    def __init__(
        self,
        cluster: Cluster,
        name: str,
        out: TextIO,
        *,
        live: bool,
        tty: bool,
        paint: Paint = PLAIN,
        ns_flag: str = "",
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.cluster = cluster
        self.name = name
        self.out = out
        self.live = live
        self.tty = tty
        self.paint = paint
        self.ns_flag = ns_flag
        self.now = now
        self.poll_seconds = poll_seconds
        self.cursor = TranscriptCursor(cluster, name)
        self.final_text: str | None = None
        self._status_shown = False
        self._frame = 0
        self._last_key: tuple[Any, ...] | None = None
        self._approvals_shown: frozenset[str] = frozenset()
        self._approval_due: tuple[RunView, float] | None = None
        self._requested: set[str] = set()
        self._problem_since: float | None = None
        self._held: dict[str, Any] | None = None

    # --- output --------------------------------------------------------------------------------------------
    def _clear_status(self) -> None:
        if self._status_shown:
            self.out.write("\r\x1b[2K")
            self._status_shown = False

    def emit(self, lines: list[str]) -> None:
        self._clear_status()
        for line in lines:
            self.out.write(line + "\n")
        self.out.flush()

    def _draw_status(self, view: RunView) -> None:
        width = max(20, shutil.get_terminal_size((100, 24)).columns - 1)
        line = progress_line(view, self.now(), frame=self._frame, paint=self.paint)
        if self._problem_since is not None:
            line += self.paint(" · reconnecting to the API server…", "yellow")
        if len(_ANSI_RE.sub("", line)) > width:  # never wrap: \r can only redraw one line
            line = _ANSI_RE.sub("", line)[: width - 1] + "…"
        self.out.write("\r\x1b[2K" + line)
        self.out.flush()
        self._status_shown = True
        self._frame += 1

    def _on_view(self, view: RunView) -> None:
        key = (view.phase, view.detail) if self.tty else (view.phase, view.detail, view.turns, view.tool_calls)
        if self.live and key != self._last_key and not view.terminal:
            self.emit([progress_line(view, self.now(), paint=self.paint)])
        self._last_key = key
        pending = frozenset(p.call_id for p in view.pending)
        if view.phase == RunPhase.AWAITING_APPROVAL.value and pending and pending != self._approvals_shown:
            # Ask once the transcript has shown the calls (it is flushed a moment after the status), so the
            # question comes after what it is about; at most APPROVAL_WAIT_SECONDS later.
            self._approval_due = (view, time.monotonic() + APPROVAL_WAIT_SECONDS)
            if self.live:
                self._poll(view)
            self._maybe_ask()
        elif not pending:
            self._approvals_shown = frozenset()
            self._approval_due = None

    def _maybe_ask(self) -> None:
        if self._approval_due is None:
            return
        view, deadline = self._approval_due
        pending = frozenset(p.call_id for p in view.pending)
        if self.live and not pending <= self._requested and time.monotonic() < deadline:
            return
        self._approval_due = None
        self._approvals_shown = pending
        self.emit(approval_lines(view, self.ns_flag, self.paint))

    def _show_entries(self, entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            if entry.get("kind") == "approval_requested":
                self._requested.add(str(entry.get("callId")))
            if entry.get("kind") == "final":
                self.final_text = (self.final_text or "") + str(entry.get("text") or "")
            if not self.live:
                self.emit(log_lines(entry, self.paint))
                continue
            # The model's last message is usually the final answer, printed in full at the end: hold each
            # message until the next entry shows whether it was.
            held, self._held = self._held, None
            if held is not None and not (entry.get("kind") == "final" and _same_text(held, entry)):
                self.emit(live_lines(held, self.paint))
            if entry.get("kind") == "message":
                self._held = entry
            else:
                self.emit(live_lines(entry, self.paint))

    def _flush_held(self) -> None:
        held, self._held = self._held, None
        if held is not None and (
            self.final_text is None or str(held.get("text") or "").strip() != self.final_text.strip()
        ):
            self.emit(live_lines(held, self.paint))

    def _poll(self, view: RunView, *, final: bool = False) -> None:
        try:
            self._show_entries(self.cursor.poll(view.uid, final=final))
        except (ApiException, *CONNECTION_ERRORS) as error:
            if not transient(error):
                raise
            self._trouble()
        else:
            self._problem_since = None

    def _trouble(self) -> None:
        if self._problem_since is None:
            self._problem_since = time.monotonic()
        elif time.monotonic() - self._problem_since > GIVE_UP_SECONDS:
            raise CliError(
                f"lost the API server for {int(GIVE_UP_SECONDS)}s; the run goes on: kubectl paddock logs {self.name} -f"
            )

    # --- the loop ------------------------------------------------------------------------------------------
    def follow(self) -> RunView:
        events: queue.Queue[Event] = queue.Queue()
        watcher = RunWatcher(self.cluster, self.name, events)
        watcher.start()
        view: RunView | None = None
        next_poll = 0.0
        try:
            while True:
                wait = TICK_SECONDS if self.tty and self.live else self.poll_seconds
                if view is not None:  # wake up for the next transcript poll
                    wait = max(0.01, min(wait, next_poll - time.monotonic()))
                try:
                    kind, payload = events.get(timeout=wait)
                except queue.Empty:
                    kind, payload = "", None
                if kind == "run":
                    view = RunView.from_object(payload)
                    self._on_view(view)
                elif kind == "deleted":
                    raise CliError(f'agentrun "{self.name}" was deleted while following it', exit_code=2)
                elif kind == "error":
                    raise payload
                elif kind == "disconnected":
                    self._trouble()
                elif kind == "connected":
                    self._problem_since = None
                if view is None:
                    continue
                if view.terminal:
                    self._poll(view, final=True)
                    self._flush_held()
                    self._clear_status()
                    return view
                if time.monotonic() >= next_poll:
                    self._poll(view)
                    next_poll = time.monotonic() + self.poll_seconds
                self._maybe_ask()
                if self.tty and self.live:
                    self._draw_status(view)
        finally:
            watcher.stop()
            self._clear_status()
            self.out.flush()
