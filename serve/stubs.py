"""The generated stubs, wherever they are: built into the package, or generated on first import.

`pip install` (wheel or editable) runs setup.py's build step, which writes omniembed/serve/_proto. A source
checkout whose .proto changed since (or that was never built) gets fresh stubs generated into a cache
folder keyed by the proto's hash, once; later imports reuse them.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType

from . import protogen

SERVICE_NAME = "omniembed.v1.OmniEmbed"
_CACHE_PACKAGE = "omniembed.serve._proto_cache"


def _cache_root() -> str:
    base = os.environ.get("OMNIEMBED_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "omniembed")
    return os.path.join(base, "proto-stubs")


def _built() -> ModuleType | None:
    try:
        return importlib.import_module("omniembed.serve._proto")
    except ImportError:
        return None


def _load_cached(proto_root: str, sha: str) -> ModuleType:
    import grpc_tools  # noqa: F401  (fail early with a clear message when absent)
    from grpc_tools import grpc_version

    folder = os.path.join(_cache_root(), f"{sha[:16]}-grpcio-tools-{grpc_version.VERSION}")
    if not os.path.isfile(os.path.join(folder, "__init__.py")):
        protogen.generate(proto_root, folder)
    spec = importlib.util.spec_from_file_location(
        _CACHE_PACKAGE, os.path.join(folder, "__init__.py"), submodule_search_locations=[folder])
    package = importlib.util.module_from_spec(spec)
    sys.modules[_CACHE_PACKAGE] = package
    spec.loader.exec_module(package)
    return package


def _stub_package() -> ModuleType:
    if _CACHE_PACKAGE in sys.modules:
        return sys.modules[_CACHE_PACKAGE]
    proto_root = protogen.checkout_proto_root()
    built = _built()
    if proto_root is None:
        if built is None:
            raise ImportError("omniembed.serve._proto is missing and no proto/ folder is here to generate it "
                              "from: reinstall omniembed (pip install .) so its build step writes the stubs")
        return built
    sha = protogen.proto_sha256(os.path.join(proto_root, protogen.PROTO_REL))
    if built is not None and getattr(built, "PROTO_SHA256", None) == sha:
        return built
    try:
        return _load_cached(proto_root, sha)
    except ImportError as exc:
        raise ImportError(f"gRPC stubs are missing or stale and cannot be generated: {exc} "
                          "(pip install grpcio-tools, or reinstall omniembed)") from exc


def load() -> tuple[ModuleType, ModuleType]:
    """(omniembed_pb2, omniembed_pb2_grpc) for the current proto/omniembed/v1/omniembed.proto."""
    package = _stub_package()
    pb2 = importlib.import_module(package.__name__ + ".omniembed_pb2")
    pb2_grpc = importlib.import_module(package.__name__ + ".omniembed_pb2_grpc")
    return pb2, pb2_grpc


def proto_file() -> str:
    """The .proto the loaded stubs were generated from (shipped beside them), for other-language clients."""
    return os.path.join(os.path.dirname(_stub_package().__file__), "omniembed.proto")


pb2, pb2_grpc = load()
