"""The CLI's one error type."""


class CLIError(Exception):
    """A user mistake or a state the user can fix: printed as one sentence, no traceback."""
