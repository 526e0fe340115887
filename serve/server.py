"""The gRPC server: an asyncio gRPC server (grpc.aio) on an event loop of its own thread, serving
serve.servicer.Servicer over omniembed.index.Index and (optionally) a ModelEmbedder.

    server = Server(Index.open(path), ModelEmbedder.load(bundle), ServerConfig(port=50051, token="s3cret"))
    server.start(); server.wait()          # SIGTERM -> server.stop(): drain, snapshot, close

Without an embedder the vector calls (Upsert of vectors, Search by vector, Get, Delete, Stats) work and the
embed calls answer FAILED_PRECONDITION. A call costs a thread only while it computes (serve.calls): idle
streams, slow clients and calls waiting on a batch hold none, so health checks and Stats are answered
whatever the clients do.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from omniembed.errors import ConfigError
from omniembed.index import Index

from .auth import BearerTokenInterceptor
from .embedding import ModelEmbedder
from .metrics import Metrics
from .servicer import Servicer
from .stubs import SERVICE_NAME
from .wire import Wire

log = logging.getLogger(__name__)


@dataclasses.dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 0                      # 0 picks a free port; Server.port has the bound one
    token: str | None = None           # bearer token; None = no auth
    tls_cert: str | None = None        # PEM files; both set = TLS
    tls_key: str | None = None
    max_message_bytes: int = 64 << 20  # larger requests get RESOURCE_EXHAUSTED from gRPC itself
    max_items: int = 1024              # items per unary Embed/Upsert; the streaming calls take more
    max_k: int = 1000
    batching: bool = True              # micro-batch embed work across concurrent requests
    max_batch: int = 32
    max_wait_ms: float = 0.0           # > 0: a batch under concurrent load also waits this long for company
    max_search_batch: int = 64         # vector queries merged into one index search
    workers: int = 8                   # threads decoding, tokenizing and calling the index (not per call)
    max_calls: int = 256               # calls in progress beyond this get RESOURCE_EXHAUSTED (Stats excepted)
    stream_idle_s: float = 60.0        # a request stream silent this long is closed with DEADLINE_EXCEEDED
    metrics_port: int | None = None    # Prometheus /metrics over HTTP; 0 picks a free port
    grace_s: float = 10.0              # shutdown waits this long for in-flight RPCs
    default_deadline_s: float = 300.0  # the longest a call without a deadline (or a longer one) waits for embedding


class Server:
    """Owns the gRPC server, its event loop thread, the batchers and the index; `stop()` drains calls and
    persists the index."""

    def __init__(self, index: Index, embedder: ModelEmbedder | None = None, config: ServerConfig | None = None):
        self.config = config or ServerConfig()
        if embedder is not None and embedder.full_dim < index.dim:
            raise ConfigError(f"the model embeds {embedder.full_dim} dims but the index {index.root} holds "
                              f"{index.dim}-dim vectors: create the index with dim <= {embedder.full_dim}")
        if bool(self.config.tls_cert) != bool(self.config.tls_key):
            raise ConfigError("TLS needs both tls_cert and tls_key")
        for name in ("workers", "max_calls", "max_batch", "max_search_batch"):
            if getattr(self.config, name) < 1:
                raise ConfigError(f"{name}={getattr(self.config, name)}: must be at least 1")
        self.index, self.embedder = index, embedder
        self.metrics = Metrics()
        self.servicer = Servicer(index, embedder, self.config, self.metrics)
        self.metrics.watch(lambda: self.servicer.batcher.pending() if self.servicer.batcher else 0, lambda: len(index))
        self.health = None  # grpc.aio objects are made on the server's own loop (_start)
        self.port: int | None = None
        self.metrics_port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._grpc = None
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()

    @property
    def target(self) -> str:
        return f"{self.config.host}:{self.port}"

    def _run(self, coro, timeout: float | None = None):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> "Server":
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="omniembed-loop", daemon=True)
        self._thread.start()
        try:
            self._run(self._start())
        except BaseException:
            self._close_loop()
            raise
        if self.config.metrics_port is not None:
            self.metrics_port = self.metrics.serve_http(self.config.metrics_port, self.config.host)
        log.info("serving %s on %s (index %s, %d items)", SERVICE_NAME, self.target, self.index.root, len(self.index))
        return self

    async def _start(self) -> None:
        limit = self.config.max_message_bytes
        self._grpc = grpc.aio.server(
            interceptors=[BearerTokenInterceptor(self.config.token)] if self.config.token else [],
            options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)],
        )
        # bytes in and out, parsed in wire.py: a malformed request is INVALID_ARGUMENT
        wire = Wire(self.servicer, self.embedder.text_bytes) if self.embedder is not None else Wire(self.servicer)
        self._grpc.add_generic_rpc_handlers((wire.handler(),))
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._grpc)
        names = (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, self._grpc)
        address = f"{self.config.host}:{self.config.port}"
        try:
            if self.config.tls_cert:
                with open(self.config.tls_key, "rb") as k, open(self.config.tls_cert, "rb") as c:
                    creds = grpc.ssl_server_credentials([(k.read(), c.read())])
                self.port = self._grpc.add_secure_port(address, creds)
            else:
                self.port = self._grpc.add_insecure_port(address)
        except RuntimeError as exc:  # grpc.aio raises where the sync server returned 0
            raise ConfigError(f"cannot bind {address}: {exc}") from None
        if not self.port:
            raise ConfigError(f"cannot bind {address}")
        await self._grpc.start()
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def _drain(self, grace: float) -> None:
        if self.health is not None:
            await self.health.enter_graceful_shutdown()  # probes see NOT_SERVING while we drain
        await self._grpc.stop(grace)

    def _close_loop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()
            self._thread = None

    def stop(self, grace: float | None = None) -> None:
        """Refuse new calls, let in-flight ones finish (up to `grace` s), then snapshot and close the index."""
        with self._stop_lock:
            if self._stopped.is_set():
                return
            try:
                if self._grpc is not None:
                    self._run(self._drain(self.config.grace_s if grace is None else grace))
                self.servicer.close()
                self._close_loop()
                self.index.snapshot()
            finally:
                self.index.close()
                self.metrics.close()
                self._stopped.set()
            log.info("stopped; index persisted at %s", self.index.root)

    def wait(self, timeout: float | None = None) -> bool:
        return self._stopped.wait(timeout)
