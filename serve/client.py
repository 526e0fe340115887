"""The Python client: one line per call, numpy in and out, retries where they are safe.

    from omniembed.serve import Client
    with Client("localhost:50051", token="s3cret") as c:
        c.upsert(["a", "b"], vectors, metadata=[{"modality": "image", "payload": {"colour": "red"}}, None])
        c.upsert(["cat"], items=["a cat on a mat"])               # embedded by the server
        hits = c.search("a red circle", k=5, filter={"modality": "image"})
        vecs = c.embed(["hello", {"image": png_bytes}, ["caption", {"audio": wav_bytes}]], dim=64)

Items: a str is text; {"image"|"audio"|"video": bytes} one medium; a list of str/one-key dicts an
interleaved document. Errors raise grpc.RpcError (`.code()`, `.details()` say what was wrong).

Every unary call here is idempotent (upserts replace by id, deletes of absent ids are no-ops), so each is
retried with exponential backoff on UNAVAILABLE (server restarting, connection dropped) within its
timeout; no other status is retried, and the streaming calls are never retried.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
import warnings
from typing import Any, Iterable, Iterator, Sequence

import grpc
import numpy as np

from omniembed.hits import Hit, StoredItem

from . import convert as cv
from .stubs import pb2, pb2_grpc


@dataclasses.dataclass(frozen=True)
class DeleteResult:
    deleted: int
    not_found: list[str]


class Client:
    def __init__(self, target: str, token: str | None = None, *, tls: bool = False,
                 root_certificates: bytes | None = None, timeout: float = 30.0, retries: int = 4,
                 backoff_s: float = 0.1, max_message_bytes: int = 64 << 20, server_name: str | None = None):
        """tls: use TLS (root_certificates: PEM bytes to trust, e.g. a self-signed server cert).
        timeout: seconds per call, retries included. server_name: TLS name override (tests, IPs)."""
        options = [("grpc.max_receive_message_length", max_message_bytes),
                   ("grpc.max_send_message_length", max_message_bytes),
                   # Reconnect soon after a restart: the default first backoff (1 s) outlasts short retries.
                   ("grpc.initial_reconnect_backoff_ms", 200), ("grpc.max_reconnect_backoff_ms", 2000)]
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        if tls or root_certificates:
            self._channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates), options)
        else:
            self._channel = grpc.insecure_channel(target, options)
        self._stub = pb2_grpc.OmniEmbedStub(self._channel)
        self._metadata = [("authorization", f"Bearer {token}")] if token else []
        self.timeout, self.retries, self.backoff_s = timeout, retries, backoff_s
        self.retried = 0  # UNAVAILABLE answers retried so far

    # ---- plumbing
    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method: str, request, timeout: float | None = None):
        deadline = time.monotonic() + (timeout or self.timeout)
        for attempt in range(self.retries + 1):
            left = deadline - time.monotonic()
            try:
                return getattr(self._stub, method)(request, timeout=max(left, 0.001), metadata=self._metadata)
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE or attempt == self.retries:
                    raise
                pause = self.backoff_s * (2 ** attempt) * (0.5 + random.random())  # jitter spreads retry storms
                if time.monotonic() + pause >= deadline:
                    raise
                self.retried += 1
                time.sleep(pause)

    # ---- calls
    def embed(self, items: Sequence[Any], dim: int = 0, *, encoding: str = "float32",
              timeout: float | None = None):
        """(len(items), dim) float32 L2-normalised vectors; dim 0 = the model's full dim.
        encoding "int8": ((N, dim) int8 codes, (N,) float32 scales), vectors ~ codes * scales[:, None];
        "binary": (N, ceil(dim / 8)) uint8 packed sign bits (rules: omniembed.serve.codes)."""
        request = pb2.EmbedRequest(items=[cv.item_from_python(i) for i in items], dim=dim,
                                   encoding=_encoding(encoding))
        reply = self._call("Embed", request, timeout)
        _warn_truncated(reply.truncated)
        return cv.decoded_vectors(reply.vectors, reply.dim, reply.encoding)

    def embed_stream(self, items: Iterable[Any], dim: int = 0, *, chunk: int = 256,
                     timeout: float | None = None) -> np.ndarray:
        """Like embed, for batches past the server's per-call item limit: sent in chunks over one stream."""
        requests = (pb2.EmbedRequest(items=[cv.item_from_python(i) for i in part], dim=dim)
                    for part in _chunks(items, chunk))
        replies = self._stub.EmbedStream(requests, timeout=timeout or self.timeout, metadata=self._metadata)
        parts = [_matrix(r.vectors, r.dim) for r in replies]
        return np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)

    def search(self, query: Any, k: int = 10, *, dim: int = 0, filter: dict | None = None,
               adaptive: bool | None = None, timeout: float | None = None) -> list[Hit]:
        """query: a vector (numpy array or list of floats) or an item (str, {"image": bytes}, [segments])."""
        request = pb2.SearchRequest(k=k, dim=dim, filter=cv.filter_to_message(filter))
        if _is_vector(query):
            request.vector.CopyFrom(cv.vector_message(np.asarray(query, dtype=np.float32).reshape(-1)))
        else:
            request.item.CopyFrom(cv.item_from_python(query))
        if adaptive is not None:
            request.adaptive = adaptive
        reply = self._call("Search", request, timeout)
        return [cv.hit_from_reply(h) for h in reply.hits]

    def upsert(self, ids: Sequence[str], vectors: np.ndarray | None = None, *, items: Sequence[Any] | None = None,
               metadata: Sequence[dict | None] | None = None, segments: bool = False,
               timeout: float | None = None) -> int:
        """Store given vectors (N, D), or items the server embeds; durable when this returns. segments: also
        index each window of long audio/video items, so their hits carry the time span of the best window."""
        reply = self._call("Upsert", pb2.UpsertRequest(items=_upsert_items(ids, vectors, items, metadata),
                                                       segments=segments), timeout)
        _warn_truncated(reply.truncated)
        return reply.upserted

    def upsert_stream(self, ids: Sequence[str], vectors: np.ndarray | None = None, *,
                      items: Sequence[Any] | None = None, metadata: Sequence[dict | None] | None = None,
                      chunk: int = 256, segments: bool = False, timeout: float | None = None) -> int:
        """Bulk load in chunks over one stream; each chunk is durable once the server applied it."""
        all_items = _upsert_items(ids, vectors, items, metadata)
        requests = (pb2.UpsertRequest(items=part, segments=segments) for part in _chunks(all_items, chunk))
        reply = self._stub.UpsertStream(requests, timeout=timeout or self.timeout, metadata=self._metadata)
        _warn_truncated(reply.truncated)
        return reply.upserted

    def delete(self, ids: Sequence[str], *, timeout: float | None = None) -> DeleteResult:
        reply = self._call("Delete", pb2.DeleteRequest(ids=list(ids)), timeout)
        return DeleteResult(reply.deleted, list(reply.not_found))

    def get(self, ids: Sequence[str], *, include_vectors: bool = True, missing_ok: bool = False,
            timeout: float | None = None) -> list[StoredItem]:
        """Stored items in request order; NOT_FOUND names absent ids unless missing_ok (then they are skipped)."""
        reply = self._call("Get", pb2.GetRequest(ids=list(ids), include_vectors=include_vectors,
                                                 missing_ok=missing_ok), timeout)
        return [StoredItem(s.id, np.asarray(s.vector.values, np.float32) if include_vectors else None,
                           cv.metadata_from_reply(s.metadata)) for s in reply.items]

    def stats(self, *, timeout: float | None = None) -> dict:
        reply = self._call("Stats", pb2.StatsRequest(), timeout)
        return {"count": reply.count, "index_dim": reply.index_dim, "index_kind": reply.index_kind,
                "embedder_loaded": reply.embedder_loaded, "embed_dim": reply.embed_dim,
                "embed_dims": list(reply.embed_dims), "embedded_items": reply.embedded_items,
                "embed_batches": reply.embed_batches, "index": json.loads(reply.index_stats_json or "{}")}

    def health(self, service: str = "", *, timeout: float | None = None) -> str:
        """SERVING / NOT_SERVING / SERVICE_UNKNOWN from the standard grpc.health.v1 service."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        reply = health_pb2_grpc.HealthStub(self._channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout or self.timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def _warn_truncated(which) -> None:
    if len(which):
        shown = ", ".join(map(str, list(which)[:5])) + (" ..." if len(which) > 5 else "")
        warnings.warn(f"{len(which)} items were cut to fit the model's window before embedding ({shown})",
                      stacklevel=3)


def _is_vector(query: Any) -> bool:
    if isinstance(query, np.ndarray):
        return True
    return isinstance(query, (list, tuple)) and bool(query) and all(
        isinstance(x, (int, float, np.floating, np.integer)) and not isinstance(x, bool) for x in query)


def _matrix(vectors, dim: int) -> np.ndarray:
    return cv.decoded_vectors(vectors, dim, pb2.FLOAT32)


def _encoding(name: str) -> int:
    if name not in cv.ENCODINGS:
        raise ValueError(f"encoding={name!r}: one of {sorted(cv.ENCODINGS)}")
    return cv.ENCODINGS[name]


def _chunks(values: Iterable[Any], size: int) -> Iterator[list]:
    part: list = []
    for v in values:
        part.append(v)
        if len(part) == size:
            yield part
            part = []
    if part:
        yield part


def _upsert_items(ids, vectors, items, metadata) -> list:
    ids = [ids] if isinstance(ids, str) else list(ids)
    if (vectors is None) == (items is None):
        raise ValueError("pass exactly one of vectors (store as given) or items (embedded by the server)")
    metadata = [None] * len(ids) if metadata is None else list(metadata)
    if len(metadata) != len(ids):
        raise ValueError(f"{len(metadata)} metadata entries for {len(ids)} ids")
    out = []
    if vectors is not None:
        vectors = np.asarray(vectors, dtype=np.float32)
        vectors = vectors[None, :] if vectors.ndim == 1 else vectors
        if len(vectors) != len(ids):
            raise ValueError(f"{len(vectors)} vectors for {len(ids)} ids")
        for i, v, m in zip(ids, vectors, metadata):
            out.append(pb2.UpsertItem(id=i, vector=cv.vector_message(v), metadata=cv.metadata_to_message(m)))
    else:
        items = list(items)
        if len(items) != len(ids):
            raise ValueError(f"{len(items)} items for {len(ids)} ids")
        for i, it, m in zip(ids, items, metadata):
            out.append(pb2.UpsertItem(id=i, item=cv.item_from_python(it), metadata=cv.metadata_to_message(m)))
    return out
