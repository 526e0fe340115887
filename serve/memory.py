"""Giving memory back after large requests.

A 10 MB text or a large upload is freed when its call ends, but glibc keeps freed blocks in the arena of the
thread that used them, so the server's RSS stays at its peak. After a large request the server asks glibc to
return what it can (malloc_trim), once the call has had time to finish, at most once per `every_s`, in a
worker thread (a trim walks the heap and can take milliseconds).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import time

log = logging.getLogger(__name__)

LARGE_BYTES = 1 << 20  # requests with at least this much text or media get a trim after them


def _malloc_trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to do
        return None


class Trimmer:
    def __init__(self, every_s: float = 1.0, delay_s: float = 0.5):
        self._trim = _malloc_trim()
        self.every_s, self.delay_s = every_s, delay_s
        self._pending = False
        self._last = 0.0
        self.trims = 0

    def after_large(self, loop, pool) -> None:
        """Called on the event loop for a large request: one trim soon after, unless one is already pending."""
        if self._trim is None or self._pending:
            return
        self._pending = True
        wait = max(self.delay_s, self._last + self.every_s - time.monotonic())
        loop.call_later(wait, lambda: loop.run_in_executor(pool, self._run))

    def _run(self) -> None:
        try:
            self._trim(0)
            self.trims += 1
        except Exception:  # noqa: BLE001 - memory hygiene must never fail a call
            log.debug("malloc_trim failed", exc_info=True)
        finally:
            self._last = time.monotonic()
            self._pending = False
