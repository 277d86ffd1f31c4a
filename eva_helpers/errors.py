"""Exceptions a user can cause with bad input."""


class DataError(ValueError):
    """Raised when data on disk is missing, malformed or unreadable; the message names the file and the fix."""
