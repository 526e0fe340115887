"""A wheel install, not an editable one: built from this checkout, installed into fresh venvs, run from a folder
that is not the checkout. One venv borrows the test environment's dependencies and trains and exports with
the packaged configs; a client-only venv has nothing but the client's own dependencies and talks to a server."""

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CLIENT_DISTRIBUTIONS = ("numpy", "grpcio", "protobuf", "grpcio-health-checking")

pytestmark = pytest.mark.slow


def _run(cmd, **kw):
    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert out.returncode == 0, f"{cmd} exited {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def _venv(path: Path) -> tuple[Path, Path]:
    """A fresh venv: (its python, its site-packages)."""
    _run([sys.executable, "-m", "venv", path])
    python = path / "bin" / "python"
    site = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    return python, Path(site)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    # no build isolation: the build step's grpcio-tools and setuptools come from the test environment
    _run([sys.executable, "-m", "pip", "wheel", ROOT, "--no-deps", "--no-build-isolation", "-w", dist, "-q"])
    (whl,) = dist.glob("omniembed-*.whl")
    return whl


def _clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


def test_a_wheel_install_trains_and_exports_by_config_name_from_any_folder(wheel, tmp_path):
    python, site = _venv(tmp_path / "venv")
    # the dependencies (torch, onnx, ...) are borrowed from the test environment, after the venv's own packages
    deps = Path(np.__file__).resolve().parents[1]
    (site / "borrowed-deps.pth").write_text(f"{deps}\n")
    _run([python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", wheel])
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run([python, "-c", "import omniembed, omniembed.configs as c; print(omniembed.__file__, c.CONFIG_DIR)"],
                 cwd=work, env=_clean_env()).stdout
    assert str(site) in where and str(ROOT) not in where  # the installed copy, configs inside it
    omniembed = tmp_path / "venv" / "bin" / "omniembed"
    _run([omniembed, "train", "--config", "tiny", "--out", "run", "loop.steps=3", "data.synth_n=16",
          "tokenizer.image_steps=5", "tokenizer.audio_steps=5"], cwd=work, env=_clean_env())
    assert (work / "run" / "checkpoint.pt").is_file()
    _run([omniembed, "export", "run", "--out", "bundle", "--threads", "1"], cwd=work, env=_clean_env())
    assert (work / "bundle" / "manifest.json").is_file() and (work / "bundle" / "parity.json").is_file()


def _with_requirements(names) -> set[str]:
    """The distributions and everything they require (markers evaluated here, extras left out)."""
    from packaging.requirements import Requirement

    todo, seen = list(names), set()
    while todo:
        name = todo.pop()
        if name.lower() in seen:
            continue
        seen.add(name.lower())
        for text in importlib.metadata.distribution(name).requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def _client_only_site(site: Path) -> None:
    """Link only the client's distributions (and what they require) from the test environment into `site`."""
    for name in sorted(_with_requirements(CLIENT_DISTRIBUTIONS)):
        dist = importlib.metadata.distribution(name)
        tops = {Path(str(f)).parts[0] for f in dist.files if not str(f).startswith("..")}
        for top in tops:
            source = Path(dist.locate_file(top))
            if source.exists() and not (site / top).exists():
                (site / top).symlink_to(source)


def test_the_client_installs_without_torch_faiss_onnxruntime_or_pyav(wheel, tmp_path):
    python, site = _venv(tmp_path / "light")
    _client_only_site(site)
    _run([python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", wheel])
    probe = ("import importlib.util as u; print([m for m in ('torch', 'faiss', 'onnxruntime', 'av', 'PIL', 'tokenizers')"
             " if u.find_spec(m) is not None])")
    assert _run([python, "-c", probe], cwd=tmp_path, env=_clean_env()).stdout.strip() == "[]"
    refused = subprocess.run([tmp_path / "light" / "bin" / "omniembed", "serve", "--index", "ix"], cwd=tmp_path,
                             capture_output=True, text=True, env=_clean_env())
    assert refused.returncode == 2 and "omniembed[serve]" in refused.stderr  # says what to install, no traceback

    # a real server (from the test environment) and the light client against it, on localhost
    from omniembed.serve.process import ServerProcess

    with ServerProcess(["--index", str(tmp_path / "ix"), "--dim", "8"]) as server:
        script = (
            "import sys, numpy as np\n"
            "from omniembed.serve import Client\n"
            f"with Client({server.target!r}) as c:\n"
            "    v = np.eye(8, dtype=np.float32)[:3]\n"
            "    c.upsert(['a', 'b', 'c'], v, metadata=[{'payload': {'n': i}} for i in range(3)])\n"
            "    hits = c.search(v[1], k=2)\n"
            "    assert hits[0].id == 'b', hits\n"
            "    assert c.health() == 'SERVING'\n"
            "loaded = [m for m in ('torch', 'faiss', 'onnxruntime', 'av') if m in sys.modules]\n"
            "print('ok', loaded)\n")
        out = _run([python, "-c", script], cwd=tmp_path, env=_clean_env())
    assert out.stdout.strip() == "ok []"
