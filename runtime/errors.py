"""Errors a user can cause (bad file, bad flag, missing camera).

The CLIs print these as one line and exit non-zero; anything else is a bug and
keeps its traceback.
"""


class UserError(Exception):
    """A problem the user can fix; printed as one line, no traceback."""


class ManifestError(UserError):
    """A manifest that is missing, unreadable, of another schema or inconsistent."""


def first_line(exc, limit=300):
    """The first line of a library's error message (they can run to pages), for a one-line error."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]
