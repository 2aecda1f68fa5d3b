"""One family of user-facing errors: a one-line message and an exit code.

Why: every entry point (``ia-live``, the training stages, the tools) promises that bad input ends with one
line on stderr and a non-zero exit status, never a traceback. When each module had its own exception type
and each entry point its own list of types to catch and its own way of squeezing a message onto one line,
a new error type was a traceback waiting to happen. Now every problem a user can cause derives from
`UserError`; an entry point catches that one base (`run_main`) and prints `one_line(exc)`.

The module-specific subclasses (``CheckpointError``, ``SourceError``, ...) stay, for callers that want to
tell them apart, and keep their historical second base (``ValueError``/``RuntimeError``) so existing
``except ValueError`` code keeps working.
"""
from __future__ import annotations

import sys
from typing import Callable

__all__ = ["UserError", "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_SIGINT", "EXIT_SIGTERM", "one_line",
           "report", "run_main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SIGINT, EXIT_SIGTERM = 0, 1, 2, 130, 143


class UserError(Exception):
    """A problem the user can fix (bad path, bad flag, incompatible file); `code` is the exit status."""

    code: int = EXIT_USAGE

    def __init__(self, message: str = "", code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = int(code)


def one_line(exc: BaseException | str, limit: int = 300) -> str:
    """The exception's message on one line (whitespace collapsed, quotes of KeyError stripped), or its type
    name when it has no message."""
    if isinstance(exc, BaseException):
        text = str(exc)
        if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
            text = exc.args[0]
        text = " ".join(text.split())
        if not text:
            return type(exc).__name__
    else:
        text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def report(prog: str | None, exc: BaseException | str, *, error: bool = True) -> None:
    """Print ``prog: error: message`` (one line) on stderr."""
    head = f"{prog}: " if prog else ""
    print(f"{head}{'error: ' if error else ''}{one_line(exc)}", file=sys.stderr, flush=True)


def run_main(body: Callable[[], int], prog: str | None = None, *,
             also: tuple[type[BaseException], ...] = (), interrupted: str = "interrupted") -> int:
    """Run an entry point's body; a `UserError` (or one of ``also``, exit 2) becomes one stderr line and its
    exit code, Ctrl-C exit 130. Anything else is a bug and keeps its traceback."""
    try:
        return body()
    except UserError as exc:
        report(prog, exc)
        return exc.code
    except also as exc:  # type: ignore[misc]
        report(prog, exc)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog + ': ' if prog else ''}{interrupted}", file=sys.stderr, flush=True)
        return EXIT_SIGINT
