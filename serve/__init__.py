"""omniembed.serve: the gRPC service (proto/omniembed/v1/omniembed.proto) and its Python client.

    python -m omniembed.serve --bundle BUNDLE --index INDEX_DIR --port 50051 [--token T] [--metrics-port 9100]

    from omniembed.serve import Client
    Client("localhost:50051", token="T").search("a red circle", k=5)

The server side (Server, ServerConfig) is imported lazily so a client-only process never loads the index.
"""

from .client import Client, DeleteResult, Hit, StoredItem

__all__ = ["Client", "DeleteResult", "Hit", "Server", "ServerConfig", "StoredItem"]


def __getattr__(name):
    if name in ("Server", "ServerConfig"):
        from . import server

        return getattr(server, name)
    raise AttributeError(f"module 'omniembed.serve' has no attribute {name!r}")
