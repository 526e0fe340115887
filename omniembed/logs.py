"""Console + file logging for the long-running commands (tokenizer and trunk training)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from tqdm import tqdm


class TqdmHandler(logging.Handler):
    """Log lines above the progress bars rather than through them."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(self.format(record), file=sys.stderr)


def attach_handlers(logger: logging.Logger, log_file: Path) -> list[logging.Handler]:
    """Console (via tqdm) and `log_file` handlers on `logger` at INFO; returns them so the caller can remove
    and close them when its command ends."""
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    handlers: list[logging.Handler] = [TqdmHandler(), logging.FileHandler(log_file)]
    for h in handlers:
        h.setFormatter(fmt)
        logger.addHandler(h)
    logger.setLevel(logging.INFO)
    return handlers
