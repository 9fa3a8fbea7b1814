"""The CLI's one error type, and how the service's refusals become it."""
from __future__ import annotations

import functools


class CLIError(Exception):
    """A user mistake or a state the user can fix: printed as one sentence, no traceback."""


def service_refusals_as_cli_errors(command):
    """A subcommand whose AstraGoError (the service's refusal, in its words) is printed as a CLIError."""

    @functools.wraps(command)
    def run(args):
        from ..client import AstraGoError

        try:
            return command(args)
        except AstraGoError as exc:
            raise CLIError(exc.detail) from None

    return run
