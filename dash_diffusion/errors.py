"""Errors that the user can act on.

Every problem caused by input (a bad folder, a file for another model, an option out of range) is
raised as a :class:`DashError` whose message is one line naming the problem and what to do. The CLIs
catch it, print that line and exit non-zero, so a user never sees a traceback for a mistake of theirs.
"""

from __future__ import annotations


class DashError(Exception):
    """A user-facing error: ``str(error)`` is a single actionable line."""


class AdapterMismatchError(DashError):
    """An adapter file does not fit the model it is being loaded into."""


class DataError(DashError):
    """The training data cannot be used (no images, unreadable captions, ...)."""
