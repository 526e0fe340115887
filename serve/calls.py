"""What every call of the asyncio server goes through: status codes from errors, the cap on calls in
progress, deadlines, and reading request streams with an idle limit.

Handlers are coroutines on one event loop; anything that costs CPU or waits on the index runs in a bounded
thread pool (Servicer._offload), so the loop only parses, checks and answers. A call waiting for a client
(an idle stream, a slow upload) therefore holds no thread at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sys
import time

import grpc

from omniembed.index import IndexClosedError, IndexInputError, IndexUnavailableError

from .batcher import BatcherClosed
from .convert import RequestError

log = logging.getLogger(__name__)

Code = grpc.StatusCode


def code_of(exc: Exception) -> tuple[Code, str]:
    if isinstance(exc, RequestError):
        return exc.code, exc.message
    if isinstance(exc, IndexInputError):
        return Code.INVALID_ARGUMENT, str(exc)
    # shutting down, or the index's store (Milvus) failing: another replica or a retry may serve it
    if isinstance(exc, (IndexClosedError, IndexUnavailableError, BatcherClosed)):
        return Code.UNAVAILABLE, str(exc)
    if isinstance(exc, asyncio.TimeoutError):
        return Code.DEADLINE_EXCEEDED, "deadline passed while the call was being served"
    log.exception("internal error")
    return Code.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"


class CallGate:
    """Counts calls in progress; past `limit`, new calls are refused with RESOURCE_EXHAUSTED (calls marked
    exempt, like Stats, always get in: a busy server must still say how it is doing)."""

    def __init__(self, limit: int):
        self.limit, self.active = limit, 0

    def enter(self, exempt: bool) -> None:
        if not exempt and self.active >= self.limit:
            raise RequestError(Code.RESOURCE_EXHAUSTED, f"the server is serving {self.active} calls, its limit "
                               "(--max-calls): retry later, with backoff")
        self.active += 1  # one event loop: no lock needed

    def leave(self) -> None:
        self.active -= 1


@contextlib.asynccontextmanager
async def _served(servicer, name: str, context, exempt: bool):
    """One call's bookkeeping: the call cap, metrics, and every error turned into its status."""
    start, code = time.perf_counter(), Code.OK
    entered = False
    servicer.metrics.in_flight.inc()
    try:
        servicer.gate.enter(exempt)
        entered = True
        yield
    except Exception as exc:  # noqa: BLE001 - every error becomes a status, the server carries on
        code, message = code_of(exc)
        await context.abort(code, message)
    finally:
        if entered:
            servicer.gate.leave()
        servicer.metrics.in_flight.dec()
        servicer.metrics.rpcs.labels(name, code.name).inc()
        servicer.metrics.latency.labels(name).observe(time.perf_counter() - start)


def observed(method=None, *, exempt: bool = False):
    """Wraps an async unary-response handler in _served (exempt: not counted against the call cap)."""
    if method is None:
        return functools.partial(observed, exempt=exempt)

    @functools.wraps(method)
    async def wrapper(self, request, context):
        async with _served(self, method.__name__, context, exempt):
            return await method(self, request, context)

    return wrapper


def observed_stream(method):
    """observed() for response streams (async generators)."""

    @functools.wraps(method)
    async def wrapper(self, request_iterator, context):
        async with _served(self, method.__name__, context, False):
            async for reply in method(self, request_iterator, context):
                yield reply

    return wrapper


def deadline(context, default_s: float) -> float:
    """The request's deadline on the monotonic clock; a call without one (most gRPC clients' default: gRPC
    then reports a remaining time of centuries) gets the server's own limit, `default_s`."""
    left = context.time_remaining()
    if left is None or not left < default_s:
        left = default_s
    return time.monotonic() + max(0.0, left)


async def until(awaitable, end: float):
    """Await `awaitable` until `end` (time.monotonic(), the event loop's clock), else TimeoutError and it is
    cancelled. Python 3.11's timeout_at costs less per call than wait_for (no waiter future, no extra task)."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout_at(end):
            return await awaitable
    return await asyncio.wait_for(awaitable, max(0.0, end - time.monotonic()))


def expired(context) -> bool:
    left = context.time_remaining()
    return context.cancelled() or (left is not None and left <= 0)


async def messages(request_iterator, idle_s: float, what: str):
    """The messages of a request stream; a client that sends nothing for `idle_s` seconds gets
    DEADLINE_EXCEEDED, so a stream left open costs the server nothing for longer than that."""
    it = request_iterator.__aiter__()
    n = 0
    while True:
        try:
            message = await asyncio.wait_for(it.__anext__(), idle_s)
        except StopAsyncIteration:
            return
        except asyncio.TimeoutError:
            raise RequestError(Code.DEADLINE_EXCEEDED, f"{what}: no message for {idle_s:g} s after message {n} "
                               "(the server's stream idle limit, --stream-idle-s); the stream is closed") from None
        n += 1
        yield message
