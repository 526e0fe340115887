"""What every results file states before its numbers: the command, the machine and the date.

    from bench.common import RESULTS, results_header
    lines = results_header("Recall matrix", "python -m bench.recall_matrix runs/small")
    (RESULTS / "recall_matrix.md").write_text("\n".join(lines + table_lines) + "\n")

The machine line names the CPU, its cores, the GPU when one is visible, and the versions of the libraries
the numbers depend on; the load average is recorded because these machines are shared and absolute
timings move with it (prefer ratios).
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
LIBRARIES = ("torch", "onnxruntime", "faiss-cpu", "numpy")


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else whatever platform reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_cores() -> int:
    """Cores this process may run on (the affinity mask, which containers narrow), not the host's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def library_versions(names=LIBRARIES) -> dict[str, str]:
    """Installed distribution versions; 'absent' for those not installed (faiss-gpu stands in for faiss-cpu)."""
    out = {}
    for name in names:
        version = None
        for dist in (name, name.replace("-cpu", "-gpu")) if name.endswith("-cpu") else (name,):
            try:
                version = importlib.metadata.version(dist)
                name = dist
                break
            except importlib.metadata.PackageNotFoundError:
                continue
        out[name] = version or "absent"
    return out


def gpu_name() -> str | None:
    """The first CUDA device's name when torch is importable and sees one; None otherwise."""
    try:
        import torch
    except ImportError:
        return None
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def load_average() -> str:
    try:
        one, five, _ = os.getloadavg()
        return f"{one:.1f} (1 min), {five:.1f} (5 min)"
    except OSError:
        return "unknown"


def machine_line() -> str:
    gpu = gpu_name()
    versions = ", ".join(f"{k} {v}" for k, v in library_versions().items())
    return (f"{cpu_model()}, {cpu_cores()} cores" + (f", GPU {gpu}" if gpu else ", no GPU")
            + f"; {platform.system()} {platform.release()}, Python {platform.python_version()}; {versions}")


def command_line(argv: list[str] | None = None, module: str | None = None) -> str:
    """The command that reproduces a result: `python -m MODULE ARGS` when a module name is given."""
    args = sys.argv[1:] if argv is None else list(argv)
    head = ["python", "-m", module] if module else ["python", *sys.argv[:1]]
    return shlex.join(head + [str(a) for a in args])


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def results_header(title: str, command: str) -> list[str]:
    """Markdown lines: a title, then the command, the date, the machine and its load when measured."""
    return [f"# {title}", "",
            f"- command: `{command}`",
            f"- date: {utc_now()}",
            f"- machine: {machine_line()}",
            f"- load average at the start: {load_average()} (shared machine: compare ratios, not absolute times)",
            ""]


def write_results(folder: str | Path, name: str, lines: list[str]) -> Path:
    """folder/name (created as needed) holding the markdown lines; says where."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    path = target / name
    path.write_text("\n".join(lines))
    print(f"wrote {path}")
    return path


def run_main_command(out: Path, config: str, manifest: Path, *args: str, what: str = "") -> dict:
    """`omniembed demo --config CONFIG --out OUT --manifest MANIFEST --show 0 ARGS` as a user runs it; its run's
    last held-out evaluation at the full dim (`torch`: pair -> R@1), the demo's top-1 over gRPC (`grpc`), the
    full dim and the command's wall seconds. A failed command ends the bench with its stderr."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "omniembed.cli", "demo", "--config", config, "--out", str(out),
                           "--manifest", str(manifest), "--show", "0", *args], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{what or manifest}: the main command failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    dims = json.loads((out / "run" / "eval.jsonl").read_text().splitlines()[-1])["recall"]["dims"]
    full = max(dims, key=int)
    return {"seconds": seconds, "dim": full, "torch": {pair: r["1"] for pair, r in dims[full].items()},
            "grpc": json.loads((out / "queries.json").read_text())}
