"""The gRPC server: a thin servicer over omniembed.index.Index and (optionally) a ModelEmbedder.

    server = Server(Index.open(path), ModelEmbedder.load(bundle), ServerConfig(port=50051, token="s3cret"))
    server.start(); server.wait()          # SIGTERM -> server.stop(): drain, snapshot, close

Without an embedder the vector calls (Upsert of vectors, Search by vector, Get, Delete, Stats) work and the
embed calls answer FAILED_PRECONDITION.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import threading
import time
from concurrent import futures

import grpc
import numpy as np
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from omniembed.errors import ConfigError
from omniembed.index import Index, IndexClosedError, IndexInputError
from omniembed.index.matryoshka import truncate
from omniembed.tokenization.windows import pool

from . import convert as cv
from .auth import BearerTokenInterceptor
from .batcher import BatcherClosed, MicroBatcher
from .convert import RequestError, invalid
from .embedding import ModelEmbedder
from .metrics import Metrics
from .stubs import SERVICE_NAME, pb2, pb2_grpc

log = logging.getLogger(__name__)

Code = grpc.StatusCode


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
    max_wait_ms: float = 5.0
    workers: int = 32                  # handler threads = concurrent RPCs in progress
    metrics_port: int | None = None    # Prometheus /metrics over HTTP; 0 picks a free port
    grace_s: float = 10.0              # shutdown waits this long for in-flight RPCs
    default_deadline_s: float = 300.0  # the longest a call without a deadline (or a longer one) waits for embedding


def _code_of(exc: Exception) -> tuple[Code, str]:
    if isinstance(exc, RequestError):
        return exc.code, exc.message
    if isinstance(exc, IndexInputError):
        return Code.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, (IndexClosedError, BatcherClosed)):  # shutting down: another replica or a retry may serve it
        return Code.UNAVAILABLE, str(exc)
    log.exception("internal error")
    return Code.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"


@contextlib.contextmanager
def _observed(metrics, name: str, context):
    """Times and counts one call; turns RequestError/IndexInputError (any error) into its status code, so
    a bad request never crashes the server."""
    start, code = time.perf_counter(), Code.OK
    metrics.in_flight.inc()
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - every error becomes a status, the server carries on
        code, message = _code_of(exc)
        context.abort(code, message)
    finally:
        metrics.in_flight.dec()
        metrics.rpcs.labels(name, code.name).inc()
        metrics.latency.labels(name).observe(time.perf_counter() - start)


def _unary(method):
    @functools.wraps(method)
    def wrapper(self: "Servicer", request, context):
        with _observed(self.metrics, method.__name__, context):
            return method(self, request, context)

    return wrapper


def _streaming(method):
    """_unary for response streams (generators)."""

    @functools.wraps(method)
    def wrapper(self: "Servicer", request_iterator, context):
        with _observed(self.metrics, method.__name__, context):
            yield from method(self, request_iterator, context)

    return wrapper


def _deadline(context, default_s: float) -> float:
    """The request's deadline on the monotonic clock; a call without one (most gRPC clients' default: gRPC
    then reports a remaining time of centuries) gets the server's own limit, `default_s`."""
    left = context.time_remaining()
    if left is None or not left < default_s:
        left = default_s
    return time.monotonic() + max(0.0, left)


class Servicer(pb2_grpc.OmniEmbedServicer):
    def __init__(self, index: Index, embedder: ModelEmbedder | None, config: ServerConfig, metrics: Metrics):
        self.index, self.embedder, self.config, self.metrics = index, embedder, config, metrics
        self.batcher = None
        if embedder is not None and config.batching:
            self.batcher = MicroBatcher(lambda dim, docs: embedder.embed(docs, dim), max_batch=config.max_batch,
                                        max_wait_s=config.max_wait_ms / 1000, on_batch=metrics.batch_items.observe)
        self._direct_items = 0
        self._direct_calls = 0
        self._counter_lock = threading.Lock()

    # ---- embedding
    def _need_model(self, what: str) -> ModelEmbedder:
        if self.embedder is None:
            raise RequestError(Code.FAILED_PRECONDITION, f"{what} needs a model, and this server was started "
                               "without --bundle: send vectors instead")
        return self.embedder

    def _prepare(self, items, where: str | list[str]) -> list:
        """Items decoded in this request's thread; where: the request field holding them or one name per item."""
        names = [f"{where}[{j}]" for j in range(len(items))] if isinstance(where, str) else where
        model = self._need_model(names[0] if names else "embedding")
        return model.prepare_many([cv.item_segments(item, name) for item, name in zip(items, names)], names)

    def _embed(self, items, dim: int, context, where: str | list[str]) -> tuple[np.ndarray, list[int]]:
        """Embed Items at `dim` through the micro-batcher: ((len(items), dim) float32, indexes of the items
        whose ids were cut to fit the model)."""
        docs = self._prepare(items, where)
        return self._embed_prepared(docs, dim, context), [j for j, d in enumerate(docs) if d.cut]

    def _embed_prepared(self, docs: list, dim: int, context) -> np.ndarray:
        model = self.embedder
        if self.batcher is None:
            with self._counter_lock:
                self._direct_items += len(docs)
                self._direct_calls += 1
            self.metrics.batch_items.observe(len(docs))
            return np.asarray(model.embed(docs, dim), dtype=np.float32)
        deadline = _deadline(context, self.config.default_deadline_s)
        future = self.batcher.submit(dim, docs, deadline)
        try:
            return future.result(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            future.cancel()
            raise RequestError(Code.DEADLINE_EXCEEDED, f"deadline passed while embedding {len(docs)} items") from None

    def _check_count(self, n: int, field: str, call: str) -> None:
        if n == 0:
            raise invalid(f"{field} is empty: send at least one")
        if n > self.config.max_items:
            raise RequestError(Code.RESOURCE_EXHAUSTED, f"{n} {field} in one {call} call; the limit is "
                               f"{self.config.max_items}: split the request or use {call}Stream")

    @_unary
    def Embed(self, request, context):
        return self._embed_request(request, context)

    def _embed_request(self, request, context):
        self._check_count(len(request.items), "items", "Embed")
        dim = self._need_model("Embed").check_dim(request.dim)
        vectors, truncated = self._embed(request.items, dim, context, "items")
        return pb2.EmbedResponse(vectors=[cv.vector_message(v) for v in vectors], dim=dim, truncated=truncated)

    @_streaming
    def EmbedStream(self, request_iterator, context):
        for n, request in enumerate(request_iterator):
            try:
                yield self._embed_request(request, context)
            except RequestError as exc:
                raise RequestError(exc.code, f"chunk {n}: {exc.message}") from None

    # ---- search
    @_unary
    def Search(self, request, context):
        k = request.k or 10
        if k > self.config.max_k:
            raise invalid(f"k={k} exceeds the server's limit of {self.config.max_k}")
        dim = request.dim
        if dim > self.index.dim:
            raise invalid(f"dim={dim} exceeds the index's dim {self.index.dim}")
        which = request.WhichOneof("query")
        if which is None:
            raise invalid("query is empty: set item or vector")
        if which == "vector":
            n = len(request.vector.values)
            if dim and n == dim and dim < self.index.dim:
                # A prefix query: zeros past `dim` leave the prefix score unchanged.
                q = np.zeros(self.index.dim, np.float32)
                q[:dim] = cv.vector_from_message(request.vector, "query vector", dim)
            elif n != self.index.dim:
                extra = f" (or exactly dim={dim})" if dim else ""
                raise invalid(f"query vector has {n} values; the index holds {self.index.dim}-dim vectors{extra}")
            else:
                q = cv.vector_from_message(request.vector, "query vector", self.index.dim)
        else:
            q = self._embed([request.item], self.index.dim, context, ["query.item"])[0][0]
        flt = cv.filter_from_message(request.filter) if request.HasField("filter") else None
        adaptive = request.adaptive if request.HasField("adaptive") else None
        if not context.is_active():
            raise RequestError(Code.DEADLINE_EXCEEDED, "deadline passed before the search ran")
        hits = self.index.search(q, k, dim=dim or None, filter=flt, adaptive=adaptive)[0]
        return pb2.SearchResponse(hits=[cv.hit_message(h) for h in hits], dim=dim or self.index.dim)

    # ---- writes
    @_unary
    def Upsert(self, request, context):
        self._check_count(len(request.items), "items", "Upsert")
        upserted, truncated, windows = self._upsert(request.items, context, request.segments)
        return pb2.UpsertResponse(upserted=upserted, truncated=truncated, windows=windows)

    @_unary
    def UpsertStream(self, request_iterator, context):
        total, truncated, windows = 0, [], 0
        for n, request in enumerate(request_iterator):
            try:
                self._check_count(len(request.items), "items", "Upsert")
                done, cut, w = self._upsert(request.items, context, request.segments)
                total, windows = total + done, windows + w
                truncated += cut
            except (RequestError, IndexInputError) as exc:
                code, message = _code_of(exc)
                raise RequestError(code, f"chunk {n}: {message}; the {total} items of chunks 0..{n - 1} "
                                   "are stored") from None
        return pb2.UpsertResponse(upserted=total, truncated=truncated, windows=windows)

    def _upsert(self, items, context, segments: bool = False) -> tuple[int, list[str], int]:
        """(items stored, ids cut to fit the model, window vectors stored)."""
        ids, metas = [], []
        vectors = np.zeros((len(items), self.index.dim), np.float32)
        to_embed: list[int] = []
        for j, it in enumerate(items):
            where = f"items[{j}]"
            if not it.id:
                raise invalid(f"{where}.id is empty")
            cv.check_id(it.id, f"{where}.id")
            source = it.WhichOneof("source")
            meta = cv.metadata_from_message(it.metadata, f"{where}.metadata")
            if source is None:
                raise invalid(f"{where} has neither item nor vector")
            if source == "vector":
                vectors[j] = cv.vector_from_message(it.vector, f"{where}.vector", self.index.dim)
            else:
                to_embed.append(j)
                kind = it.item.WhichOneof("content")
                meta.setdefault("modality", kind)  # lets searches filter on what was embedded
            ids.append(it.id)
            metas.append(meta)
        truncated, windows, per_item = [], 0, [None] * len(items)
        if to_embed:
            docs = self._prepare([items[j].item for j in to_embed], [f"items[{j}].item" for j in to_embed])
            if segments:
                # long clips: each window's vector stored beside the pooled one (not micro-batched: bulk work)
                for j, (full, spans) in zip(to_embed, self.embedder.embed_windows(docs)):
                    vectors[j] = truncate(pool(full) if spans else full[0], self.index.dim)
                    if spans:
                        per_item[j] = (spans, truncate(full, self.index.dim))
                        windows += len(spans)
            else:
                vectors[to_embed] = self._embed_prepared(docs, self.index.dim, context)
            truncated = [ids[j] for j, d in zip(to_embed, docs) if d.cut]
        if not context.is_active():
            raise RequestError(Code.DEADLINE_EXCEEDED, "deadline passed before the write; nothing was stored")
        self.index.upsert(ids, vectors, metas, segments=per_item if windows else None)
        return len(ids), truncated, windows

    @_unary
    def Delete(self, request, context):
        ids = cv.check_ids(request.ids, "ids")
        missing = [i for i, item in zip(ids, self.index.get(ids)) if item is None]
        deleted = self.index.delete(ids)
        return pb2.DeleteResponse(deleted=deleted, not_found=missing)

    # ---- reads
    @_unary
    def Get(self, request, context):
        ids = cv.check_ids(request.ids, "ids")
        found = self.index.get(ids)
        missing = [i for i, item in zip(ids, found) if item is None]
        if missing and not request.missing_ok:
            shown = ", ".join(repr(m) for m in missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
            raise RequestError(Code.NOT_FOUND, f"{len(missing)} of {len(ids)} ids are not stored: {shown}")
        out = [pb2.StoredItem(id=item.id, metadata=cv.metadata_message(item.metadata),
                              vector=cv.vector_message(item.vector) if request.include_vectors else None)
               for item in found if item is not None]
        return pb2.GetResponse(items=out, not_found=missing)

    @_unary
    def Stats(self, request, context):
        stats = self.index.stats()
        if self.batcher is not None:
            items, batches = self.batcher.items, self.batcher.batches
        else:
            items, batches = self._direct_items, self._direct_calls
        return pb2.StatsResponse(
            count=stats["count"], index_dim=self.index.dim, index_kind=self.index.kind,
            embedder_loaded=self.embedder is not None,
            embed_dim=self.embedder.full_dim if self.embedder else 0,
            embed_dims=self.embedder.dims if self.embedder else [],
            embedded_items=items, embed_batches=batches,
            index_stats_json=json.dumps(stats, default=str))


class Server:
    """Owns the gRPC server, the batcher and the index; `stop()` drains calls and persists the index."""

    def __init__(self, index: Index, embedder: ModelEmbedder | None = None, config: ServerConfig | None = None):
        self.config = config or ServerConfig()
        if embedder is not None and embedder.full_dim < index.dim:
            raise ConfigError(f"the model embeds {embedder.full_dim} dims but the index {index.root} holds "
                              f"{index.dim}-dim vectors: create the index with dim <= {embedder.full_dim}")
        if bool(self.config.tls_cert) != bool(self.config.tls_key):
            raise ConfigError("TLS needs both tls_cert and tls_key")
        self.index, self.embedder = index, embedder
        self.metrics = Metrics()
        self.servicer = Servicer(index, embedder, self.config, self.metrics)
        self.metrics.watch(lambda: self.servicer.batcher.pending() if self.servicer.batcher else 0, lambda: len(index))
        limit = self.config.max_message_bytes
        self._grpc = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self.config.workers, thread_name_prefix="omniembed-rpc"),
            interceptors=[BearerTokenInterceptor(self.config.token)] if self.config.token else [],
            options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)],
        )
        pb2_grpc.add_OmniEmbedServicer_to_server(self.servicer, self._grpc)
        self.health = health.HealthServicer(experimental_non_blocking=True)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._grpc)
        names = (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, self._grpc)
        self.port: int | None = None
        self.metrics_port: int | None = None
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()

    @property
    def target(self) -> str:
        return f"{self.config.host}:{self.port}"

    def start(self) -> "Server":
        address = f"{self.config.host}:{self.config.port}"
        if self.config.tls_cert:
            with open(self.config.tls_key, "rb") as k, open(self.config.tls_cert, "rb") as c:
                creds = grpc.ssl_server_credentials([(k.read(), c.read())])
            self.port = self._grpc.add_secure_port(address, creds)
        else:
            self.port = self._grpc.add_insecure_port(address)
        if not self.port:
            raise ConfigError(f"cannot bind {address}")
        if self.config.metrics_port is not None:
            self.metrics_port = self.metrics.serve_http(self.config.metrics_port, self.config.host)
        self._grpc.start()
        for name in ("", SERVICE_NAME):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("serving %s on %s (index %s, %d items)", SERVICE_NAME, self.target, self.index.root, len(self.index))
        return self

    def stop(self, grace: float | None = None) -> None:
        """Refuse new calls, let in-flight ones finish (up to `grace` s), then snapshot and close the index."""
        with self._stop_lock:
            if self._stopped.is_set():
                return
            self.health.enter_graceful_shutdown()  # probes see NOT_SERVING while we drain
            self._grpc.stop(self.config.grace_s if grace is None else grace).wait()
            if self.servicer.batcher is not None:
                self.servicer.batcher.close()
            try:
                self.index.snapshot()
            finally:
                self.index.close()
                self.metrics.close()
                self._stopped.set()
            log.info("stopped; index persisted at %s", self.index.root)

    def wait(self, timeout: float | None = None) -> bool:
        return self._stopped.wait(timeout)
