"""Long audio through the ONNX runtime: seconds of audio embedded per CPU second, and peak memory, from a
10-second clip to a 10-minute one. bench/results/long_audio.{md,png}.

    python -m bench.long_audio [--bundle B] [--durations 10,60,180,600] [--out bench/results]

Each clip (a WAV on disk: a different tone every 2 s, like the synthetic world's sounds in sequence) is
embedded in a fresh process, window by window (the bundle's windows; 2 s every 1 s for the fresh bundle),
and its peak RSS read from /proc/self/status (VmHWM: getrusage's ru_maxrss would count the parent's pages
from before exec). The arm "decode_audio" decodes the whole clip into memory at once, as a
clip would be without windows, for contrast. Without --bundle a freshly initialised tiny model is exported
(speed and memory do not depend on training).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import RESULTS, command_line, results_header

SAMPLE_RATE = 16000


def make_clip(path: Path, seconds: float) -> Path:
    from omniembed.media import encode_audio

    t = np.arange(int(2.0 * SAMPLE_RATE)) / SAMPLE_RATE
    parts = [(0.3 * np.sin(2 * np.pi * (220 + 40 * (k % 12)) * t)).astype(np.float32)
             for k in range(int(np.ceil(seconds / 2.0)))]
    path.write_bytes(encode_audio(np.concatenate(parts)[:int(seconds * SAMPLE_RATE)], SAMPLE_RATE))
    return path


def fresh_bundle(work: Path) -> Path:
    from bench.bundles import fresh_components
    from omniembed.data.synth import generate
    from omniembed.export import export_bundle

    generate(work / "world", 24, 0, workers=1, video_format="none")
    comp = fresh_components(work / "world" / "manifest.jsonl", work / "tokenizers")
    return export_bundle(comp.model, comp.tokenizers, comp.vocab, work / "bundle", verify=False,
                         windows={"audio": {"seconds": 2.0, "stride": 1.0}, "video": None})


def child(bundle: str, clip: str, arm: str) -> dict:
    """Runs in its own process: the peak RSS it reports is this clip's alone."""
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from omniembed.media import decode_audio
    from omniembed.runtime import Embedder

    emb = Embedder.load(bundle, threads=1, spin=False, max_audio_seconds=3600)
    short = make_clip(Path(clip).with_name("warmup.wav"), 1.0)
    emb.embed([short])  # sessions warmed up: what follows is the clip's own cost
    base = peak_rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    if arm == "windows":
        (vectors, spans), = emb.embed_windows([Path(clip)])
        windows = len(spans or [0])
    else:
        wave = decode_audio(clip, max_seconds=3600)
        windows = 0
        del wave
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"wall_s": wall, "cpu_s": cpu, "peak_mb": peak_rss_mb(), "base_peak_mb": base, "windows": windows}


def peak_rss_mb() -> float:
    """This process's peak resident memory since it started (Linux's VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(bundle: Path, clip: Path, arm: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.long_audio", "--child", str(bundle), str(clip), arm],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"child for {clip} ({arm}) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    win = [r for r in rows if r["arm"] == "windows"]
    secs = np.array([r["seconds"] for r in win])
    cpu = np.array([r["cpu_s"] for r in win])
    slope, icpt = np.polyfit(secs, cpu, 1)
    a.plot(secs, cpu, "o", label="measured")
    a.plot(secs, slope * secs + icpt, "-", label=f"linear fit: {slope * 60:.2f} CPU s per audio minute")
    a.set_xlabel("clip length (s)")
    a.set_ylabel("CPU seconds to embed")
    a.legend(fontsize=8)
    a.set_title("cost grows linearly with duration", fontsize=9)
    for arm, style in (("windows", "o-"), ("decode_audio", "s--")):
        rs = [r for r in rows if r["arm"] == arm]
        b.plot([r["seconds"] for r in rs], [r["peak_mb"] for r in rs], style,
               label="embed window by window" if arm == "windows" else "decode_audio (whole clip)")
    b.set_xlabel("clip length (s)")
    b.set_ylabel("peak RSS (MB)")
    b.legend(fontsize=8)
    b.set_title("memory", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.long_audio", description=__doc__.splitlines()[0])
    p.add_argument("--bundle", help="an exported bundle with windows (default: a fresh tiny model)")
    p.add_argument("--durations", default="10,60,180,600", help="clip lengths in seconds")
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--child", nargs=3, metavar=("BUNDLE", "CLIP", "ARM"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0
    work = Path(tempfile.mkdtemp(prefix="long_audio_"))
    bundle = Path(args.bundle) if args.bundle else fresh_bundle(work)
    rows = []
    for seconds in [float(s) for s in args.durations.split(",")]:
        clip = make_clip(work / f"clip-{int(seconds)}.wav", seconds)
        for arm in ("windows", "decode_audio"):
            r = {"seconds": seconds, "arm": arm, **measure(bundle, clip, arm)}
            rows.append(r)
            print(f"{seconds:6.0f} s {arm:12s}: {r['cpu_s']:.2f} CPU s, peak {r['peak_mb']:.0f} MB "
                  f"(after warm-up {r['base_peak_mb']:.0f} MB), {r['windows']} windows", file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    win = {r["seconds"]: r for r in rows if r["arm"] == "windows"}
    whole = {r["seconds"]: r for r in rows if r["arm"] == "decode_audio"}
    shortest, longest = min(win), max(win)
    lines = results_header("Long audio: embedding cost and memory against duration", command_line(argv, "bench.long_audio"))
    lines += [f"- bundle: `{bundle}`" + (" (a freshly initialised tiny model; windows 2 s every 1 s)" if not args.bundle else ""),
              "- each clip a WAV on disk, embedded in a fresh process on 1 ONNX Runtime thread after a warm-up; "
              "peak RSS = VmHWM, the process's whole peak (model and runtime included)", "",
              "| clip | windows | CPU s | audio s per CPU s | peak RSS (MB) | decode_audio peak RSS (MB) |",
              "|---:|---:|---:|---:|---:|---:|"]
    for s in sorted(win):
        r = win[s]
        lines.append(f"| {s:.0f} s | {r['windows']} | {r['cpu_s']:.2f} | {s / max(r['cpu_s'], 1e-9):.0f} | "
                     f"{r['peak_mb']:.0f} | {whole[s]['peak_mb']:.0f} |")
    secs = np.array(sorted(win))
    slope, icpt = np.polyfit(secs, [win[s]["cpu_s"] for s in secs], 1)
    lines += ["", f"- peak RSS, {longest:.0f} s clip against {shortest:.0f} s: {win[longest]['peak_mb']:.0f} MB vs "
              f"{win[shortest]['peak_mb']:.0f} MB (+{win[longest]['peak_mb'] - win[shortest]['peak_mb']:.0f} MB, "
              f"{win[longest]['peak_mb'] / win[shortest]['peak_mb']:.2f}x); decoding the whole {longest:.0f} s clip "
              f"at once: +{whole[longest]['peak_mb'] - whole[shortest]['peak_mb']:.0f} MB",
              f"- CPU time against duration: {slope * 60:.2f} s per minute of audio + {icpt:.2f} s "
              f"({longest / win[longest]['cpu_s']:.0f} seconds of audio per CPU second at {longest:.0f} s)",
              "- plot: long_audio.png", ""]
    (out / "long_audio.md").write_text("\n".join(lines))
    plot(rows, out / "long_audio.png")
    print(f"wrote {out / 'long_audio.md'} and {out / 'long_audio.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
