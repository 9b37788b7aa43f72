"""A crash as data: how a backend failed to answer (it raised, its process died, or it ran out
of time), with the exception's type, message and place, or the exit status or signal.

The text a report shows is made from these fields, and nothing reads a cause back out of text:
shrinking keeps a crash of the same type (`signature`), and the comparison words a finding by
its `cause`.
"""

from __future__ import annotations

import signal
import traceback
from dataclasses import dataclass

from .format.graph import printable

RAISED, DIED, TIMED_OUT = "raised", "died", "timed out"


def safe_text(text: str, limit: int = 2000) -> str:
    """`text` (an engine's message or name) made safe to print: see format's `printable`."""
    return printable(text, limit, keep_newlines=True)


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "it stopped answering"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "an unknown signal"
        return f"killed by signal {-exitcode} ({name})"
    return f"exited with status {exitcode}"


@dataclass(frozen=True)
class Crash:
    cause: str  # RAISED, DIED or TIMED_OUT
    type: str | None = None  # the exception's type, when it raised
    message: str = ""  # its message; how the process died; or the time limit exceeded
    location: str | None = None  # file:line of the innermost frame, when it raised
    prefix: str = ""  # what the crash happened in, when not the call itself ("its answer could not be sent back")

    @classmethod
    def raised(cls, error: BaseException, prefix: str = "") -> Crash:
        """An exception, whatever its __str__ does, made safe to print."""
        try:
            message = str(error)
        except BaseException as inner:  # an exception whose __str__ raises is still a finding
            message = f"<its message cannot be printed: {type(inner).__name__}>"
        try:
            frames = traceback.extract_tb(error.__traceback__)[-1:] if error.__traceback__ else []
        except Exception:
            frames = []
        location = f"{frames[0].filename}:{frames[0].lineno}" if frames else None
        return cls(RAISED, type(error).__name__, message, location, prefix)

    @classmethod
    def exited(cls, code) -> Crash:
        """A `SystemExit` in a backend of this process: raised, with its exit code as the message."""
        return cls(RAISED, "SystemExit", str(code))

    @classmethod
    def died(cls, exitcode: int | None) -> Crash:
        return cls(DIED, message=describe_exit(exitcode))

    @classmethod
    def timed_out(cls, limit: float) -> Crash:
        return cls(TIMED_OUT, message=f"the time limit of {limit:g} s (--timeout)")

    def describe(self) -> str:
        """One line (or a few, for a multi-line message), as reports and the terminal show it."""
        if self.cause == DIED:
            return f"the engine's process died: {self.message}"
        if self.cause == TIMED_OUT:
            return f"the engine took longer than {self.message}"
        where = f" (at {self.location})" if self.location else ""
        return safe_text(f"{self.prefix}{self.type}: {self.message}{where}")

    def signature(self) -> str:
        """What two crashes share when they are the same failure: the exception's type, or the
        process having died (however it died)."""
        return self.type if self.cause == RAISED and self.type else "died"
