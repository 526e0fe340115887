"""Stubs come from the .proto: written by the build step into wheels, or generated into a cache on import."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

from omniembed.serve import protogen, stubs

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_loaded_stubs_match_the_checked_in_proto():
    package = sys.modules[stubs.pb2.__name__.rsplit(".", 1)[0]]
    assert package.PROTO_SHA256 == protogen.proto_sha256(str(ROOT / "proto" / protogen.PROTO_REL))
    service = stubs.pb2.DESCRIPTOR.services_by_name["OmniEmbed"]
    assert service.full_name == "omniembed.v1.OmniEmbed"
    assert pathlib.Path(stubs.proto_file()).read_bytes() == (ROOT / "proto" / protogen.PROTO_REL).read_bytes()


def _tree_with_changed_proto(tmp_path) -> pathlib.Path:
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "serve", tree / "serve", ignore=shutil.ignore_patterns("_proto", "__pycache__"))
    shutil.copytree(ROOT / "proto", tree / "proto")
    proto = tree / "proto" / protogen.PROTO_REL
    proto.write_text(proto.read_text() + "\nmessage Probe {\n  string note = 1;\n}\n")
    return tree


def _import_serve_from(tree: pathlib.Path, cache: pathlib.Path) -> str:
    # Load the copied serve/ as omniembed.serve: like a fresh clone whose build step never ran.
    code = (
        "import importlib.util, sys, omniembed\n"
        f"spec = importlib.util.spec_from_file_location('omniembed.serve', {str(tree / 'serve' / '__init__.py')!r},"
        f" submodule_search_locations=[{str(tree / 'serve')!r}])\n"
        "mod = importlib.util.module_from_spec(spec); sys.modules['omniembed.serve'] = mod\n"
        "spec.loader.exec_module(mod)\n"
        "from omniembed.serve import stubs\n"
        "print(stubs.pb2.__name__, hasattr(stubs.pb2, 'Probe'), stubs.proto_file())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OMNIEMBED_CACHE": str(cache)})
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_missing_stubs_are_generated_on_first_import_into_a_cache_and_reused(tmp_path):
    tree, cache = _tree_with_changed_proto(tmp_path), tmp_path / "cache"
    name, has_probe, proto_file = _import_serve_from(tree, cache).split()
    assert name == "omniembed.serve._proto_cache.omniembed_pb2"
    assert has_probe == "True"  # generated from the changed proto, not from any stale copy
    assert proto_file.startswith(str(cache))
    stamp = os.stat(proto_file).st_mtime_ns
    assert _import_serve_from(tree, cache).split()[2] == proto_file
    assert os.stat(proto_file).st_mtime_ns == stamp  # second import reused the cache


def test_generated_grpc_module_imports_its_messages_relatively(tmp_path):
    out = protogen.generate(str(ROOT / "proto"), str(tmp_path / "gen"))
    text = (pathlib.Path(out) / "omniembed_pb2_grpc.py").read_text()
    assert "from . import omniembed_pb2" in text and "from omniembed.v1" not in text


def test_wheel_build_writes_the_stubs_into_the_package(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for folder in ("omniembed", "index", "serve", "proto"):
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("_proto", "__pycache__"))
    code = f"from setuptools import build_meta; print(build_meta.build_wheel({str(tmp_path / 'dist')!r}))"
    out = subprocess.run([sys.executable, "-c", code], cwd=src, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    wheel = tmp_path / "dist" / out.stdout.strip().splitlines()[-1]
    names = set(zipfile.ZipFile(wheel).namelist())
    for stub in ("omniembed_pb2.py", "omniembed_pb2_grpc.py", "omniembed.proto", "__init__.py"):
        assert f"omniembed/serve/_proto/{stub}" in names
