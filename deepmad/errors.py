"""Errors the user can act on.

Every error that reaches the command line is one of these: it names the field
that is wrong and says how to fix it, and the CLI prints it on one line.
"""

from __future__ import annotations


class DeepmadError(Exception):
    """Base of the project's errors. ``exit_status`` is what the CLI exits with."""

    exit_status = 1


class InputError(DeepmadError, ValueError):
    """Bad user input: a file, a field or an option. Exit status 2.

    ``field`` is a dotted path into the input (``stages[2].kernel``) or an
    option name (``--resolution``); ``message`` says what is wrong and the fix.
    """

    exit_status = 2

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)

    def within(self, prefix: str) -> "InputError":
        """The same error with ``prefix`` put before its field (``stages[2]`` + ``kernel``)."""
        joined = f"{prefix}.{self.field}" if self.field and not self.field.startswith("[") else f"{prefix}{self.field}"
        return type(self)(joined, self.message)


class Interrupted(DeepmadError):
    """Ctrl-C stopped a run before it had anything to return. Exit status 130 (the shell's for SIGINT)."""

    exit_status = 130


def shown(value: object, limit: int = 60) -> str:
    """``repr(value)`` for an error message, shortened; never fails (huge ints included)."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        bits = value.bit_length() if isinstance(value, int) else 0
        return f"<an integer of {bits} bits>" if bits else f"<a {type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
