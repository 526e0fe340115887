"""Error types of the index. Each names the file or input and what was wrong with it."""

from __future__ import annotations

from omniembed.errors import OmniEmbedError


class IndexCorruptError(OmniEmbedError):
    """A snapshot or log file failed its checksum, was truncated past repair, or holds impossible records.

    `path` names the file; `reason` says what was wrong. Raised only when no earlier good state could be
    recovered without losing acknowledged writes.
    """

    def __init__(self, path: str, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class IndexInputError(OmniEmbedError, ValueError):
    """An argument to the index was malformed: wrong shape, non-finite vector, bad id, bad filter."""


def brief(value) -> str:
    """repr(value) for an error message, shortened when a client sent something huge."""
    text = repr(value)
    return text if len(text) <= 80 else text[:60] + "..." + text[-10:]


class IndexClosedError(OmniEmbedError, RuntimeError):
    """A write or snapshot reached an index that was closed (a server shutting down): not the caller's input."""


class IndexUnavailableError(OmniEmbedError, RuntimeError):
    """The store behind the index (a Milvus server) failed or refused a call that was valid: retry, or another
    replica may serve it. Never the caller's input (that is IndexInputError, checked before the store is asked)."""
