"""The one exception type a user should ever see from this toolkit.

Anything the user can fix (a bad flag, a missing file, an unreachable hub) raises `UserError` with one line saying
what is wrong and how to fix it; the entry points print it and exit with code 2, without a traceback.
"""


class UserError(Exception):
    """A problem with the user's input or environment, reported as one line and exit code 2."""

    exit_code = 2


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (or its type), short enough to sit inside a one-line error."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__
