"""The OmniEmbed service's handlers: coroutines over omniembed.index.Index and (optionally) a ModelEmbedder.

The event loop only checks requests and builds answers. Decoding, tokenizing and index calls run in a
bounded thread pool; model calls and vector searches from concurrent requests are merged by two
MicroBatchers (one model call per batch of items, one FAISS search per batch of queries with the same k,
dim and filter). A search by text is one job of the model batcher: embedded and searched in its thread.
"""

from __future__ import annotations

import asyncio
import json
from concurrent import futures

import grpc
import numpy as np

from omniembed.index import Index
from omniembed.index.matryoshka import truncate
from omniembed.tokenization.windows import pool

from . import convert as cv
from .batcher import MicroBatcher
from .calls import CallGate, code_of, deadline, expired, messages, observed, observed_stream, until
from .convert import RequestError, invalid
from .embedding import ModelEmbedder
from .memory import LARGE_BYTES, Trimmer
from .metrics import Metrics
from .stubs import pb2, pb2_grpc
from .wire import message_bytes

Code = grpc.StatusCode

INLINE_TEXT_CHARS = 4096  # requests of short texts only are prepared on the loop: a thread hop costs more


class Servicer(pb2_grpc.OmniEmbedServicer):
    def __init__(self, index: Index, embedder: ModelEmbedder | None, config, metrics: Metrics):
        self.index, self.embedder, self.config, self.metrics = index, embedder, config, metrics
        self.gate = CallGate(config.max_calls)
        self.pool = futures.ThreadPoolExecutor(config.workers, thread_name_prefix="omniembed-work")
        # Stats reads the index under its read lock: its own thread, so a full work pool never delays it
        self.stats_pool = futures.ThreadPoolExecutor(1, thread_name_prefix="omniembed-stats")
        self.batcher = None
        if embedder is not None and config.batching:
            self.batcher = MicroBatcher(self._model_batch, max_batch=config.max_batch,
                                        max_wait_s=config.max_wait_ms / 1000, on_batch=metrics.batch_items.observe)
        self.searches = MicroBatcher(self._search_batch, max_batch=config.max_search_batch,
                                     name="omniembed-search")
        self.trimmer = Trimmer()
        self._direct_items = 0
        self._direct_calls = 0

    def close(self) -> None:
        """After the gRPC server stopped: finish queued work, stop the threads."""
        if self.batcher is not None:
            self.batcher.close()
        self.searches.close()
        self.pool.shutdown(wait=True)
        self.stats_pool.shutdown(wait=True)

    async def _offload(self, fn, *args, pool=None):
        return await asyncio.get_running_loop().run_in_executor(pool or self.pool, fn, *args)

    async def _result(self, future, context, what: str):
        """Await a batcher's concurrent Future within the call's deadline."""
        end = deadline(context, self.config.default_deadline_s)
        try:
            return await until(asyncio.wrap_future(future), end)
        except (asyncio.TimeoutError, TimeoutError):
            future.cancel()
            raise RequestError(Code.DEADLINE_EXCEEDED, f"deadline passed while {what}") from None

    # ---- embedding
    def _need_model(self, what: str) -> ModelEmbedder:
        if self.embedder is None:
            raise RequestError(Code.FAILED_PRECONDITION, f"{what} needs a model, and this server was started "
                               "without --bundle: send vectors instead")
        return self.embedder

    async def _prepare(self, items, where: str | list[str]) -> list:
        """Items checked on the loop, then decoded in the work pool (short texts on the loop: nothing to decode)."""
        names = [f"{where}[{j}]" for j in range(len(items))] if isinstance(where, str) else where
        model = self._need_model(names[0] if names else "embedding")
        size = message_bytes.get()  # at least the items' bytes; their ByteSize() would serialise them again
        if size is None:  # called other than through Wire
            size = sum(item.ByteSize() for item in items)
        if size >= LARGE_BYTES:
            self.trimmer.after_large(asyncio.get_running_loop(), self.pool)

        def prepare():
            segments = [cv.item_segments(item, name) for item, name in zip(items, names)]
            return model.prepare_many(segments, names)

        if size < INLINE_TEXT_CHARS and all(item.WhichOneof("content") == "text" for item in items):
            return prepare()
        return await self._offload(prepare)

    async def _embed(self, items, dim: int, context, where: str | list[str]) -> tuple[np.ndarray, list[int]]:
        """Embed Items at `dim`: ((len(items), dim) float32, indexes of the items whose ids were cut to fit)."""
        docs = await self._prepare(items, where)
        return await self._embed_prepared(docs, dim, context), [j for j, d in enumerate(docs) if d.cut]

    async def _embed_prepared(self, docs: list, dim: int, context) -> np.ndarray:
        if self.batcher is None:
            self._direct_items += len(docs)
            self._direct_calls += 1
            self.metrics.batch_items.observe(len(docs))
            return await self._offload(self.embedder.embed, docs, dim)
        future = self.batcher.submit(dim, docs, deadline(context, self.config.default_deadline_s))
        return await self._result(future, context, f"embedding {len(docs)} items")

    def _check_count(self, n: int, field: str, call: str) -> None:
        if n == 0:
            raise invalid(f"{field} is empty: send at least one")
        if n > self.config.max_items:
            raise RequestError(Code.RESOURCE_EXHAUSTED, f"{n} {field} in one {call} call; the limit is "
                               f"{self.config.max_items}: split the request or use {call}Stream")

    @observed
    async def Embed(self, request, context):
        return await self._embed_request(request, context)

    async def _embed_request(self, request, context):
        self._check_count(len(request.items), "items", "Embed")
        dim = self._need_model("Embed").check_dim(request.dim)
        if request.encoding not in (pb2.FLOAT32, pb2.INT8, pb2.BINARY):
            raise invalid(f"encoding={request.encoding} is not one of FLOAT32 (0), INT8 (1), BINARY (2)")
        vectors, truncated = await self._embed(request.items, dim, context, "items")
        return pb2.EmbedResponse(vectors=cv.encoded_vectors(vectors, request.encoding), dim=dim,
                                 truncated=truncated, encoding=request.encoding)

    @observed_stream
    async def EmbedStream(self, request_iterator, context):
        n = 0
        async for request in messages(request_iterator, self.config.stream_idle_s, "EmbedStream"):
            try:
                reply = await self._embed_request(request, context)
            except RequestError as exc:
                raise RequestError(exc.code, f"chunk {n}: {exc.message}") from None
            n += 1
            yield reply

    def _model_batch(self, key, docs: list) -> list | np.ndarray:
        """The model batcher's call: key = dim embeds the docs; key = ("search", k, dim, adaptive, filter) embeds
        them and searches the index with them, in this thread (a search by text costs no second thread hop)."""
        if isinstance(key, tuple):
            return self._search_batch(key[1:], self.embedder.embed(docs, self.index.dim))
        return self.embedder.embed(docs, key)

    # ---- search
    def _search_batch(self, key, queries: list[np.ndarray] | np.ndarray) -> list:
        k, dim, adaptive, flt = key
        q = queries if isinstance(queries, np.ndarray) else np.stack(queries)
        return self.index.search(q, k, dim=dim, filter=json.loads(flt) if flt else None, adaptive=adaptive)

    @observed
    async def Search(self, request, context):
        k = request.k or 10
        if k > self.config.max_k:
            raise invalid(f"k={k} exceeds the server's limit of {self.config.max_k}")
        dim = request.dim
        if dim > self.index.dim:
            raise invalid(f"dim={dim} exceeds the index's dim {self.index.dim}")
        which = request.WhichOneof("query")
        if which is None:
            raise invalid("query is empty: set item or vector")
        flt = cv.filter_from_message(request.filter) if request.HasField("filter") else None
        adaptive = request.adaptive if request.HasField("adaptive") else None
        key = (k, dim or None, adaptive, json.dumps(flt, sort_keys=True) if flt else None)
        until = deadline(context, self.config.default_deadline_s)  # past it, the batchers drop the job unrun
        if which == "vector":
            found = self.searches.submit(key, [self._query_vector(request.vector, dim)], until)
        else:
            docs = await self._prepare([request.item], ["query.item"])
            if self.batcher is None:
                q = await self._embed_prepared(docs, self.index.dim, context)
                found = self.searches.submit(key, [q[0]], until)
            else:  # embedded and searched in the model batcher's thread: one wake of the loop
                found = self.batcher.submit(("search", *key), docs, until)
        hits = (await self._result(found, context, "embedding and searching"))[0]
        return pb2.SearchResponse(hits=[cv.hit_message(h) for h in hits], dim=dim or self.index.dim)

    def _query_vector(self, vector, dim: int) -> np.ndarray:
        n = len(vector.values)
        if dim and n == dim and dim < self.index.dim:
            # A prefix query: zeros past `dim` leave the prefix score unchanged.
            q = np.zeros(self.index.dim, np.float32)
            q[:dim] = cv.vector_from_message(vector, "query vector", dim)
            return q
        if n != self.index.dim:
            extra = f" (or exactly dim={dim})" if dim else ""
            raise invalid(f"query vector has {n} values; the index holds {self.index.dim}-dim vectors{extra}")
        return cv.vector_from_message(vector, "query vector", self.index.dim)

    # ---- writes
    @observed
    async def Upsert(self, request, context):
        self._check_count(len(request.items), "items", "Upsert")
        upserted, truncated, windows = await self._upsert(request.items, context, request.segments)
        return pb2.UpsertResponse(upserted=upserted, truncated=truncated, windows=windows)

    @observed
    async def UpsertStream(self, request_iterator, context):
        total, truncated, windows, n = 0, [], 0, 0
        async for request in messages(request_iterator, self.config.stream_idle_s, "UpsertStream"):
            try:
                self._check_count(len(request.items), "items", "Upsert")
                done, cut, w = await self._upsert(request.items, context, request.segments)
            except Exception as exc:  # noqa: BLE001 - say which chunk failed and what is already stored
                code, message = code_of(exc)
                raise RequestError(code, f"chunk {n}: {message}; the {total} items of chunks 0..{n - 1} "
                                   "are stored") from None
            total, windows, n = total + done, windows + w, n + 1
            truncated += cut
        return pb2.UpsertResponse(upserted=total, truncated=truncated, windows=windows)

    async def _upsert(self, items, context, segments: bool = False) -> tuple[int, list[str], int]:
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
            docs = await self._prepare([items[j].item for j in to_embed], [f"items[{j}].item" for j in to_embed])
            if segments:
                # long clips: each window's vector stored beside the pooled one (not micro-batched: bulk work)
                for j, (full, spans) in zip(to_embed, await self._offload(self.embedder.embed_windows, docs)):
                    vectors[j] = truncate(pool(full) if spans else full[0], self.index.dim)
                    if spans:
                        per_item[j] = (spans, truncate(full, self.index.dim))
                        windows += len(spans)
            else:
                vectors[to_embed] = await self._embed_prepared(docs, self.index.dim, context)
            truncated = [ids[j] for j, d in zip(to_embed, docs) if d.cut]
        if expired(context):
            raise RequestError(Code.DEADLINE_EXCEEDED, "deadline passed before the write; nothing was stored")
        await self._offload(lambda: self.index.upsert(ids, vectors, metas, segments=per_item if windows else None))
        return len(ids), truncated, windows

    @observed
    async def Delete(self, request, context):
        ids = cv.check_ids(request.ids, "ids")

        def delete():
            missing = [i for i, item in zip(ids, self.index.get(ids)) if item is None]
            return self.index.delete(ids), missing

        deleted, missing = await self._offload(delete)
        return pb2.DeleteResponse(deleted=deleted, not_found=missing)

    # ---- reads
    @observed
    async def Get(self, request, context):
        ids = cv.check_ids(request.ids, "ids")
        found = await self._offload(self.index.get, ids)
        missing = [i for i, item in zip(ids, found) if item is None]
        if missing and not request.missing_ok:
            shown = ", ".join(repr(m) for m in missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
            raise RequestError(Code.NOT_FOUND, f"{len(missing)} of {len(ids)} ids are not stored: {shown}")
        out = [pb2.StoredItem(id=item.id, metadata=cv.metadata_message(item.metadata),
                              vector=cv.vector_message(item.vector) if request.include_vectors else None)
               for item in found if item is not None]
        return pb2.GetResponse(items=out, not_found=missing)

    @observed(exempt=True)
    async def Stats(self, request, context):
        stats = await self._offload(self.index.stats, pool=self.stats_pool)
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
