"""`kubectl-paddock`, the kubectl plugin: `kubectl paddock run|logs|approve|reject|ls|shell`.

Modules: args (command line), cluster (kubeconfig, API access, errors), render and entries (pure output
formatting), follow (live following of a run), commands (run/logs/approve/reject/ls), shell.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from kubernetes.client.exceptions import ApiException

from .args import parse
from .cluster import CONNECTION_ERRORS, CliError, describe_api_error, describe_connection_error
from .commands import Session, cmd_answer, cmd_logs, cmd_ls, cmd_run
from .shell import cmd_shell

Handler = Callable[[argparse.Namespace, Session], int]
COMMANDS: dict[str, Handler] = {
    "run": cmd_run,
    "logs": cmd_logs,
    "approve": cmd_answer,
    "reject": cmd_answer,
    "ls": cmd_ls,
    "shell": cmd_shell,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code (usage errors exit 2 via argparse)."""
    args = parse(argv)
    session = Session.from_args(args)
    try:
        return COMMANDS[args.command](args, session)
    except BrokenPipeError:  # `kubectl paddock logs x | head`: the reader left; not an error
        # Point stdout at /dev/null so the interpreter's final flush does not complain again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except CliError as error:
        message, code = str(error), error.exit_code
    except ApiException as error:
        if error.status == 0:  # a websocket or transport failure the client wraps as an ApiException
            message, code = describe_connection_error(error, session.server), 1
        else:
            message, code = describe_api_error(error), 1
    except CONNECTION_ERRORS as error:
        message, code = describe_connection_error(error, session.server), 1
    except KeyboardInterrupt:
        return 130
    session.err.write(f"error: {message}\n")
    return code


__all__ = ["main"]
