"""Prometheus metrics of one server, in its own registry (several servers may share a process in tests)."""

from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.rpcs = Counter("omniembed_rpcs", "RPCs finished, by method and status code",
                            ["method", "code"], registry=self.registry)
        self.latency = Histogram("omniembed_rpc_seconds", "RPC handling time", ["method"],
                                 buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.in_flight = Gauge("omniembed_rpcs_in_flight", "RPCs being handled", registry=self.registry)
        self.batch_items = Histogram("omniembed_embed_batch_items", "items per model call (micro-batch size)",
                                     buckets=_BATCH_BUCKETS, registry=self.registry)
        self.queue = Gauge("omniembed_embed_queue_jobs", "embed jobs waiting for the batcher", registry=self.registry)
        self.items = Gauge("omniembed_index_items", "items stored in the index", registry=self.registry)
        self._http = None

    def watch(self, queue_depth: Callable[[], float], index_items: Callable[[], float]) -> None:
        """Gauges read on scrape, so they are never stale."""
        self.queue.set_function(queue_depth)
        self.items.set_function(index_items)

    def serve_http(self, port: int, host: str = "0.0.0.0") -> int:
        """Expose /metrics on `port` (0 picks a free one); returns the bound port."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._http = server
        return server.server_address[1]

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
