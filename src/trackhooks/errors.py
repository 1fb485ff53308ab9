"""Exceptions. Every error a caller can fix derives from TrackhooksError *and* the matching builtin,
so ``except ValueError`` keeps working for users who do not know about trackhooks."""

from __future__ import annotations


class TrackhooksError(Exception):
    """Base class of every error trackhooks raises on purpose."""


class InvalidValueError(TrackhooksError, TypeError):
    """A metric or param value of a type trackhooks cannot record (names the key and value)."""


class InvalidShapeError(TrackhooksError, ValueError):
    """A metric value that is an array with more than one element."""


class OutOfRangeError(TrackhooksError, ValueError):
    """A step or epoch outside the 64-bit integer range the store keeps."""


class InvalidKeyError(TrackhooksError, ValueError):
    """An empty, whitespace-only, too long, or NUL-containing key."""


class InvalidKeyTypeError(TrackhooksError, TypeError):
    """A key that is not a string."""


class ParamConflictError(TrackhooksError, ValueError):
    """A param re-logged in the same run with a different value."""


class UnsafePathError(TrackhooksError, ValueError):
    """An artifact or checkpoint name/path that would escape the store, or is not a regular file."""


class InvalidMediaError(TrackhooksError, ValueError):
    """A rich record (image, histogram, table, ...) whose content cannot be recorded: ragged table
    rows, y_true/y_pred of different lengths, labels not in ``labels``, bad bins, a key already used
    for another kind of record. Names the key."""


class MissingExtraError(TrackhooksError, ImportError):
    """An optional dependency is not installed; the message names the extra to install
    (e.g. ``pip install 'trackhooks[media]'`` for Pillow)."""


class StoreError(TrackhooksError, OSError):
    """The store cannot be created, opened, or is not a valid trackhooks store."""


class StoreNotFoundError(StoreError, FileNotFoundError):
    """The store path does not exist."""


class RunNotFoundError(TrackhooksError, LookupError):
    """No run with that id (or id prefix) in the store."""


class AmbiguousRunError(TrackhooksError, LookupError):
    """An id prefix matches several runs."""


class RunFinishedError(TrackhooksError, RuntimeError):
    """Logging into a run that is already finished."""


class UnknownPluginError(TrackhooksError, ValueError):
    """autolog() was asked for an integration that is not installed."""


class InvalidOptionError(TrackhooksError, ValueError):
    """A start_run option (or its environment variable) with a value it cannot take: a negative
    or NaN interval, an unknown mode. A value of the wrong type is an InvalidValueError."""


class QueryError(TrackhooksError, ValueError):
    """A where expression, order_by or read-only SQL query that cannot be run.

    ``expression`` is the text, ``position`` the offset of the problem in it (or None), ``expected``
    what would have been valid there; str() shows the expression with a caret under the position.
    """

    def __init__(self, message: str, expression: str | None = None, position: int | None = None,
                 expected: str | None = None):
        super().__init__(message)
        self.message = message
        self.expression = expression
        self.position = position
        self.expected = expected

    def __str__(self) -> str:
        lines = [self.message if self.position is None else f"{self.message} at position {self.position}"]
        if self.expression is not None:
            text, col = self.expression, self.position
            if col is not None:
                # show only the line of a multi-line expression that holds the position
                start = text.rfind("\n", 0, col) + 1
                end = text.find("\n", col)
                text, col = text[start:end if end >= 0 else len(text)], col - start
            elif "\n" in text:
                text = text.split("\n", 1)[0] + " ..."
            if len(text) > 200:  # keep the caret on screen: a window around the position
                lo = max(0, (col or 0) - 100)
                text, col = ("..." if lo else "") + text[lo:lo + 200], None if col is None else col - lo + (3 if lo else 0)
            lines.append("  " + text)
            if col is not None:
                lines.append("  " + " " * col + "^")
        if self.expected:
            lines.append(f"expected {self.expected}")
        return "\n".join(lines)

    def __reduce__(self):
        return (type(self), (self.message, self.expression, self.position, self.expected))


class RunActiveError(TrackhooksError, RuntimeError):
    """Deleting a run whose process is still alive (finish or stop it first)."""


def short_repr(value: object, limit: int = 80) -> str:
    """repr() that never raises and never floods a message."""
    try:
        text = repr(value)
    except Exception as exc:  # a hostile __repr__ must not hide the real error
        text = f"<{type(value).__name__} with failing repr: {type(exc).__name__}>"
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text
