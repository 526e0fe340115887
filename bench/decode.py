"""Decode time per format: omniembed.media's decoders next to the plainest fast decoder of the same bytes.

    python -m bench.decode [--n 48] [--reps 5] [--out bench/results/decode.md]

Same bytes, same process, interleaved passes, best of `reps` (this host is shared: the ratio is the figure):
- WAV 16 kHz mono (as the synthetic world writes it) and FLAC: decode_audio against soundfile.read.
- WAV 44.1 kHz stereo: decode_audio (to 16 kHz mono) against soundfile.read plus one FFmpeg resampler call.
- MP3 (44.1 kHz) and Ogg (Opus decodes at 48 kHz): decode_audio against PyAV's frame iteration with its
  resampler on each frame, both giving 16 kHz mono.
- PNG and JPEG: decode_image against Pillow's open + convert("RGB") + numpy.
- MP4 (H.264 + AAC, 2 s at 8 and 25 fps): decode_video at 1 fps (2 frames as RGB, the audio track as 16 kHz
  mono) against PyAV iterating every frame of both tracks and converting nothing.
The ratio is ours / plain: within 1.5 is the target.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import av
import numpy as np
import soundfile as sf
from PIL import Image

from bench.common import RESULTS, command_line, results_header
from omniembed.media import SAMPLE_RATE, decode_audio, decode_image, decode_video, encode_audio, encode_image, encode_video

TARGET = 1.5


def _tone(rate: int, seconds: float, channels: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    f = rng.uniform(200, 900)
    return np.stack([0.6 * np.sin(2 * np.pi * f * (1 + 0.1 * c) * t) + 0.01 * rng.standard_normal(len(t))
                     for c in range(channels)], axis=1).astype(np.float32)


def _wav(wave: np.ndarray, rate: int, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, rate, format=fmt, subtype="PCM_16")
    return buf.getvalue()


def _picture(seed: int, size: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size]
    base = np.stack([(x * 3 + seed) % 256, (y * 2) % 256, ((x + y) * 5) % 256], -1).astype(np.uint8)
    return np.clip(base + rng.integers(0, 20, base.shape), 0, 255).astype(np.uint8)


def _video(seed: int, fps: int) -> bytes:
    frames = np.stack([np.roll(_picture(seed, 64), 2 * k, axis=1) for k in range(2 * fps)])
    return encode_video(frames, fps, "mp4", audio=_tone(SAMPLE_RATE, 2.0, 1, seed)[:, 0])


def inputs(n: int) -> dict[str, list[bytes]]:
    return {
        "WAV 16 kHz mono": [_wav(_tone(SAMPLE_RATE, 2.0, 1, i), SAMPLE_RATE) for i in range(n)],
        "WAV 44.1 kHz stereo": [_wav(_tone(44100, 2.0, 2, i), 44100) for i in range(n)],
        "FLAC 16 kHz mono": [_wav(_tone(SAMPLE_RATE, 2.0, 1, i), SAMPLE_RATE, "FLAC") for i in range(n)],
        "MP3 44.1 kHz stereo": [encode_audio(_tone(44100, 2.0, 2, i), 44100, "mp3") for i in range(n)],
        "Ogg (Opus, 48 kHz inside) mono": [encode_audio(_tone(SAMPLE_RATE, 2.0, 1, i), SAMPLE_RATE, "ogg") for i in range(n)],
        "PNG 64 px": [encode_image(_picture(i, 64), "png") for i in range(n)],
        "JPEG 256 px": [encode_image(_picture(i, 256), "jpeg") for i in range(n)],
        "MP4 2 s, 8 fps": [_video(i, 8) for i in range(n // 2)],
        "MP4 2 s, 25 fps": [_video(i, 25) for i in range(n // 2)],
    }


def _resample(planar: np.ndarray, rate: int) -> np.ndarray:
    """One FFmpeg resampler call to 16 kHz and a mean over channels: the job a plain decoder leaves undone."""
    layout = "mono" if planar.shape[0] == 1 else "stereo"
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planar, dtype=np.float32), format="fltp", layout=layout)
    frame.sample_rate = rate
    r = av.AudioResampler(format="fltp", layout=layout, rate=SAMPLE_RATE)
    return np.concatenate([f.to_ndarray() for f in r.resample(frame) + r.resample(None)], axis=1).mean(axis=0)


def plain_wav_resampled(data: bytes) -> None:
    wave, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    _resample(wave.T, rate)


def plain_audio_pyav_resampled(data: bytes) -> None:
    """PyAV's frame iteration with its resampler on each frame, the way its documentation shows."""
    with av.open(io.BytesIO(data)) as c:
        r = None
        for frame in c.decode(audio=0):
            r = r or av.AudioResampler(format="fltp", layout=frame.layout, rate=SAMPLE_RATE)
            for f in r.resample(frame):
                f.to_ndarray().mean(axis=0)


def plain_video_pyav(data: bytes) -> None:
    with av.open(io.BytesIO(data)) as c:
        for _ in c.decode(*c.streams):
            pass


PLAIN = {
    "WAV 44.1": ("soundfile.read + one FFmpeg resample", plain_wav_resampled),
    "MP3": ("PyAV frame iteration + its resampler per frame", plain_audio_pyav_resampled),
    "Ogg": ("PyAV frame iteration + its resampler per frame", plain_audio_pyav_resampled),
    "WAV": ("soundfile.read", lambda b: sf.read(io.BytesIO(b), dtype="float32")),
    "FLAC": ("soundfile.read", lambda b: sf.read(io.BytesIO(b), dtype="float32")),
    "PNG": ("Pillow open + RGB", lambda b: np.asarray(Image.open(io.BytesIO(b)).convert("RGB"))),
    "JPEG": ("Pillow open + RGB", lambda b: np.asarray(Image.open(io.BytesIO(b)).convert("RGB"))),
    "MP4": ("PyAV frame iteration, both tracks", plain_video_pyav),
}
OURS = {"WAV": decode_audio, "FLAC": decode_audio, "MP3": decode_audio, "Ogg": decode_audio, "PNG": decode_image,
        "JPEG": decode_image, "MP4": lambda b: decode_video(b, fps=1.0)}


def best_per_item(fn, items, reps: int) -> float:
    for x in items[:2]:
        fn(x)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        for x in items:
            fn(x)
        best = min(best, time.perf_counter() - t)
    return best / len(items)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.decode", description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=48)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--out", default=str(RESULTS / "decode.md"))
    args = p.parse_args(argv)
    rows = []
    for name, items in inputs(args.n).items():
        kind = name.split()[0]
        plain_name, plain = PLAIN["WAV 44.1" if name.startswith("WAV 44.1") else kind]
        ours_t = plain_t = float("inf")
        for _ in range(2):  # interleaved, so a burst of load on the host hits both
            ours_t = min(ours_t, best_per_item(OURS[kind], items, args.reps))
            plain_t = min(plain_t, best_per_item(plain, items, args.reps))
        rows.append((name, len(items), ours_t, plain_name, plain_t))
        print(f"{name:22s} ours {ours_t * 1e3:7.3f} ms  {plain_name} {plain_t * 1e3:7.3f} ms  "
              f"ratio {ours_t / plain_t:.2f}", flush=True)
    lines = results_header("Decode time per format: omniembed.media next to the plainest fast decoder",
                           command_line(argv, "bench.decode"))
    lines += [f"- best of {args.reps} passes over the same items, the two decoders interleaved; per item; "
              f"target: ours within {TARGET}x of the plain decoder", "",
              "| format | items | omniembed.media | plain decoder | plain | ours / plain | within 1.5x |",
              "|---|---:|---:|---|---:|---:|:-:|"]
    for name, n, ours_t, plain_name, plain_t in rows:
        ratio = ours_t / plain_t
        lines.append(f"| {name} | {n} | {ours_t * 1e3:.3f} ms | {plain_name} | {plain_t * 1e3:.3f} ms | "
                     f"{ratio:.2f} | {'yes' if ratio <= TARGET else 'no'} |")
    lines += ["", "Ours does more than the plain decoder in some rows: it checks the framing, refuses bombs and "
              "over-long media, mixes down and resamples 44.1 kHz to 16 kHz mono, and converts the sampled video "
              "frames to RGB; the plain decoders do none of that.", ""]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
