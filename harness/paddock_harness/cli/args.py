"""The command line: kubectl-style global flags accepted before or after the command."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Final

EXAMPLES: Final = """\
examples:
  kubectl paddock run --workspace demo "Write hello.py and run it"
  kubectl paddock run --image localhost/paddock/sandbox:dev --approval Always "Clean up the build"
  kubectl paddock logs hello -f
  kubectl paddock approve hello call_abc
  kubectl paddock reject hello --reason "use a branch"
  kubectl paddock ls -A
  kubectl paddock shell demo -- ls -la
"""


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _policy(text: str) -> str:
    for choice in ("Never", "Always"):
        if text.lower() == choice.lower():
            return choice
    raise argparse.ArgumentTypeError(f"must be Never or Always: {text!r}")


def _globals() -> argparse.ArgumentParser:
    """Flags every command takes. SUPPRESS defaults keep a value given before the command."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("cluster flags (like kubectl)")
    group.add_argument("--kubeconfig", default=argparse.SUPPRESS, help="path of the kubeconfig file")
    group.add_argument("--context", default=argparse.SUPPRESS, help="kubeconfig context to use")
    group.add_argument(
        "-n", "--namespace", default=argparse.SUPPRESS, help="namespace (default: the context's, else default)"
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _globals()
    parser = argparse.ArgumentParser(
        prog="kubectl paddock",
        parents=[common],
        description="Run AI agents in Paddock sandboxes and follow them.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", parents=[common], help="create an AgentRun and follow it live")
    where = run.add_mutually_exclusive_group(required=True)
    where.add_argument("-w", "--workspace", help="an existing AgentWorkspace")
    where.add_argument("--image", help="sandbox image of a throwaway workspace, deleted with the run")
    run.add_argument("--model", help="model name (default: the harness's)")
    run.add_argument("--base-url", help="OpenAI-compatible endpoint serving the Responses API")
    run.add_argument("--max-turns", type=_positive, help="maximum model turns (default 50)")
    run.add_argument("--timeout", type=_positive, metavar="SECONDS", help="wall-clock limit (default 3600)")
    run.add_argument("--name", help="name of the run (default: generated)")
    run.add_argument(
        "--approval", type=_policy, metavar="Never|Always", help="ask before every command and patch (Always)"
    )
    run.add_argument("--no-follow", action="store_true", help="create the run and return")
    run.add_argument("prompt", nargs="+", help='the task (several words are joined; "-" reads standard input)')

    logs = sub.add_parser("logs", parents=[common], help="print a run's transcript")
    logs.add_argument("run", help="name of the AgentRun")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing until the run finishes")

    for verb, what in (("approve", "let pending tool calls run"), ("reject", "refuse pending tool calls")):
        answer = sub.add_parser(verb, parents=[common], help=what)
        answer.add_argument("run", help="name of the AgentRun")
        answer.add_argument("calls", nargs="*", metavar="CALL", help="call ids (default: every pending call)")
        if verb == "reject":
            answer.add_argument("--reason", help="told to the model, so it can try another way")

    ls = sub.add_parser("ls", parents=[common], help="list workspaces and runs")
    ls.add_argument("-A", "--all-namespaces", action="store_true", help="in every namespace")

    shell = sub.add_parser("shell", parents=[common], help="an interactive shell in a workspace's sandbox")
    shell.add_argument("workspace", help="name of the AgentWorkspace")
    shell.add_argument("cmd", nargs="*", metavar="-- CMD", help="a command to run instead of a shell")
    return parser


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if args.command == "shell" and args.cmd and args.cmd[0] == "--":
        args.cmd = args.cmd[1:]
    return args
