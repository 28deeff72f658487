"""The commands run, logs, approve, reject and ls. Each takes the parsed arguments and a Session."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from paddock_operator.api import API_VERSION, AgentRunSpec
from paddock_operator.naming import MAX_NAME

from ..driver import protocol
from ..driver.transcript import read_transcript
from .cluster import RUNS, WORKSPACES, CliError, Cluster, Connection, connect
from .entries import log_lines, merge_parts
from .follow import Follower
from .render import (
    Paint,
    RunView,
    answer_lines,
    call_text,
    exit_code,
    ls_lines,
    plugin_command,
    summary_lines,
)

CREATED_BY = "app.kubernetes.io/created-by"
_GENERATED_SUFFIX = 5  # characters the apiserver appends to generateName


@dataclass
class Session:
    """Where a command runs and writes: the resolved cluster target and the terminal."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace_flag: str | None = None
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    connection: Connection | None = None
    server: str = "the API server"

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Session:
        return cls(
            kubeconfig=getattr(args, "kubeconfig", None),
            context=getattr(args, "context", None),
            namespace_flag=getattr(args, "namespace", None),
        )

    def cluster(self) -> Cluster:
        if self.connection is None:
            self.connection = connect(self.kubeconfig, self.context)
            self.server = self.connection.server
        return Cluster(self.connection, self.namespace_flag or self.connection.default_namespace)

    @property
    def tty(self) -> bool:
        return self.out.isatty()

    @property
    def paint(self) -> Paint:
        return Paint(self.tty and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb")

    @property
    def ns_flag(self) -> str:
        """`-n NS` for the commands we print, when the user named a namespace."""
        return f"-n {self.namespace_flag}" if self.namespace_flag else ""

    def print(self, *lines: str) -> None:
        for line in lines:
            self.out.write(line + "\n")
        self.out.flush()


# --- run ---------------------------------------------------------------------------------------------------
def run_manifest(args: argparse.Namespace, prompt: str) -> dict[str, Any]:
    """The AgentRun the flags describe, checked against the API models before it is sent. Pure."""
    spec: dict[str, Any] = {"prompt": prompt}
    if args.workspace:
        spec["workspaceRef"] = {"name": args.workspace}
    else:
        spec["workspaceTemplate"] = {"spec": {"image": args.image}}
    model = {k: v for k, v in (("name", args.model), ("baseURL", args.base_url)) if v}
    if model:
        spec["model"] = model
    limits = {k: v for k, v in (("maxTurns", args.max_turns), ("timeoutSeconds", args.timeout)) if v}
    if limits:
        spec["limits"] = limits
    if args.approval:
        spec["approval"] = {"policy": args.approval}
    try:
        AgentRunSpec.model_validate(spec)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg']}" for e in error.errors())
        raise CliError(f"invalid run: {problems}") from error
    metadata: dict[str, Any] = {"labels": {CREATED_BY: "kubectl-paddock"}}
    if args.name:
        metadata["name"] = args.name
    else:
        prefix = f"{args.workspace}-" if args.workspace else "run-"
        metadata["generateName"] = prefix[: MAX_NAME - _GENERATED_SUFFIX]
    return {"apiVersion": API_VERSION, "kind": "AgentRun", "metadata": metadata, "spec": spec}


def read_prompt(words: Sequence[str], stdin: TextIO) -> str:
    prompt = stdin.read() if list(words) == ["-"] else " ".join(words)
    if not prompt.strip():
        raise CliError("the prompt is empty")
    return prompt.strip()


def cmd_run(args: argparse.Namespace, session: Session) -> int:
    manifest = run_manifest(args, read_prompt(args.prompt, sys.stdin))
    cluster = session.cluster()
    if args.workspace:
        workspace = cluster.require(WORKSPACES, args.workspace)
        phase = (workspace.get("status") or {}).get("phase")
        if phase in ("Suspended", "Failed", "Terminating"):
            session.err.write(f"warning: workspace {args.workspace} is {phase}; the run waits until it is Ready\n")
    created = cluster.create(RUNS, manifest)
    name = created["metadata"]["name"]
    where = f"workspace {args.workspace}" if args.workspace else f"a throwaway workspace from {args.image}"
    session.print(f"agentrun/{name} created in namespace {cluster.namespace} ({where})")
    if args.no_follow:
        session.print(f"Follow it: {plugin_command('logs', name, '-f', ns_flag=session.ns_flag)}")
        return 0
    return follow_run(cluster, name, session)


def follow_run(cluster: Cluster, name: str, session: Session) -> int:
    follower = Follower(
        cluster, name, session.out, live=True, tty=session.tty, paint=session.paint, ns_flag=session.ns_flag
    )
    try:
        view = follower.follow()
    except KeyboardInterrupt:
        follow_hint = plugin_command("logs", name, "-f", ns_flag=session.ns_flag)
        session.print(
            "",
            f"Stopped following; {name} goes on. Follow again: {follow_hint}",
            f'Cancel it: kubectl patch agentrun {name} --type merge -p \'{{"spec":{{"cancel":true}}}}\'',
        )
        return 130
    now = datetime.now(UTC)
    session.print("", *summary_lines(view, now, session.paint))
    session.print(*answer_lines(follower.final_text or view.output or "", session.paint))
    return exit_code(view.phase)


# --- logs --------------------------------------------------------------------------------------------------
def cmd_logs(args: argparse.Namespace, session: Session) -> int:
    cluster = session.cluster()
    run = cluster.require(RUNS, args.run)
    if args.follow:
        follower = Follower(
            cluster, args.run, session.out, live=False, tty=session.tty, paint=session.paint, ns_flag=session.ns_flag
        )
        try:
            view = follower.follow()
        except KeyboardInterrupt:
            return 130
        session.print(session.paint(f"[agentrun {args.run} {view.phase}]", "bold"))
        return 0
    entries = merge_parts(read_transcript(cluster, cluster.namespace, args.run))
    for entry in entries:
        session.print(*log_lines(entry, session.paint))
    if not entries:
        phase = (run.get("status") or {}).get("phase") or "Pending"
        session.err.write(f"agentrun {args.run} has no transcript yet (phase {phase})\n")
    return 0


# --- approve / reject --------------------------------------------------------------------------------------
def _names(value: str) -> list[str]:
    return [part.strip() for part in value.replace(" ", ",").split(",") if part.strip()]


def decision_patch(
    annotations: Mapping[str, str],
    approve: bool,
    calls: Sequence[str],
    resource_version: str,
    reason: str | None = None,
) -> dict[str, Any]:
    """The merge patch that records a decision, kept with any not yet consumed ids of the same verb (the
    harness removes an annotation only while it still holds the value it read). Pure."""
    key = protocol.ANNOTATION_APPROVE if approve else protocol.ANNOTATION_REJECT
    merged = _names(annotations.get(key, ""))
    merged += [c for c in calls if c not in merged]
    values = {key: ",".join(merged)}
    if not approve and reason:
        values[protocol.ANNOTATION_REJECT_REASON] = reason
    # resourceVersion makes the patch fail (409) if the run changed since we read it: never lose a decision.
    return {"metadata": {"annotations": values, "resourceVersion": resource_version}}


def choose_calls(view: RunView, requested: Sequence[str]) -> list[str]:
    """The call ids to answer: the requested ones (which must be pending), else every pending call. Pure."""
    if view.terminal:
        raise CliError(f"agentrun {view.name} already finished ({view.phase}): nothing waits for approval")
    pending = [p.call_id for p in view.pending]
    if not pending:
        raise CliError(f"agentrun {view.name} has no tool calls waiting for approval (phase {view.phase or 'Pending'})")
    unknown = [c for c in requested if c not in pending]
    if unknown:
        raise CliError(f"not pending on {view.name}: {', '.join(unknown)} (pending: {', '.join(pending)})")
    return list(dict.fromkeys(requested)) or pending


def cmd_answer(args: argparse.Namespace, session: Session) -> int:
    approve = args.command == "approve"
    cluster = session.cluster()
    for _ in range(5):
        obj = cluster.require(RUNS, args.run)
        view = RunView.from_object(obj)
        chosen = choose_calls(view, args.calls)
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        patch = decision_patch(
            annotations, approve, chosen, obj["metadata"]["resourceVersion"], getattr(args, "reason", None)
        )
        try:
            cluster.patch_merge(RUNS, args.run, patch)
            break
        except ApiException as error:
            if error.status != 409:
                raise
    else:
        raise CliError(f"agentrun {args.run} kept changing; try again")
    verb = "Approved" if approve else "Rejected"
    by_id = {p.call_id: p for p in view.pending}
    for call in chosen:
        p = by_id[call]
        session.print(f"{verb} {call} ({p.tool}): {call_text(p.tool, p.command, 120)}")
    if not approve and getattr(args, "reason", None):
        session.print(f"Reason given to the model: {args.reason}")
    session.print(
        f"The harness acts on it within seconds: {plugin_command('logs', args.run, '-f', ns_flag=session.ns_flag)}"
    )
    return 0


# --- ls ----------------------------------------------------------------------------------------------------
def cmd_ls(args: argparse.Namespace, session: Session) -> int:
    cluster = session.cluster()
    workspaces = cluster.list_objects(WORKSPACES, args.all_namespaces)
    runs = cluster.list_objects(RUNS, args.all_namespaces)
    now = datetime.now(UTC)
    session.print(*ls_lines(workspaces, runs, now, namespace=cluster.namespace, all_namespaces=args.all_namespaces))
    return 0
