"""Error types shared across the engine. Each names the input and what was wrong with it."""


class OmniEmbedError(Exception):
    """Base of every error omniembed raises on purpose."""


class MediaError(OmniEmbedError, ValueError):
    """Media bytes could not be decoded: wrong type, truncated, corrupt, empty, or over a size limit.

    `source` names the input (a path, or a short description of in-memory bytes); `reason` says what was wrong.
    """

    def __init__(self, source: str, reason: str):
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")

    def __reduce__(self):
        # pickled as its two fields, so it comes back whole from a worker process
        return type(self), (self.source, self.reason)


class ManifestError(OmniEmbedError, ValueError):
    """A manifest record is malformed; the message names the file, line and field."""


class ConfigError(OmniEmbedError, ValueError):
    """A config file or key=value override is invalid."""
