"""The reasons a restore, a drill, a verification or a cleanup stops: each is
printed as one line (never a traceback, never a secret)."""

from __future__ import annotations


class RestoreError(Exception):
    """A reason to stop, printed as one line."""


class CorruptArchive(RestoreError):
    """The archive itself is damaged: its tar, its package or its model."""


class WrongKey(RestoreError):
    """No known passphrase opens the archive: it is not damaged, the key is missing."""
