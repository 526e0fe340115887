"""The tokenizer training stage: a manifest in, a trained tokenizer directory out.

    omniembed tokenizers --manifest DIR/manifest.jsonl --out TOKDIR --config small [key=value ...]
    (also `python -m omniembed.tokenization.train`; --config takes a training config, whose tokenizer
    section is used, or a YAML of TokenizerConfig keys)

In order: read the manifest; decode every distinct media file once (images, video frames sampled at
video_fps, sounds, video audio tracks); train the text BPE on captions and document text; train the image
VQ-VAE on images and video frames; fit the mel normaliser and train the audio VQ on sounds and video audio;
measure both tokenizers on a held-out share of the media against the constant baseline (the mean training
image / the mean training mel); write TOKDIR (see omniembed.tokenization.store) with report.json.
A file that fails to decode is skipped with a log line naming it, and listed in the report.
With `workers` of 2 or more (default: one per CPU, up to 8) the media are decoded in that many processes and the
audio tokenizer trains in a second process beside the image one; the tokenizers come out the same (tested).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import math
import pickle
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from tqdm import tqdm

from omniembed.data.manifest import Item, load_manifest
from omniembed.errors import ConfigError, ManifestError, MediaError
from omniembed.logs import attach_handlers
from omniembed.tokenization.audio import SILENCE_DB, AudioTokenizer
from omniembed.tokenization.config import TokenizerConfig
from omniembed.tokenization.image import ImageTokenizer
from omniembed.tokenization.inputs import decode_segment
from omniembed.tokenization.store import REPORT_FILE, TEXT_FILE, save_tokenizers
from omniembed.tokenization.text import TextTokenizer
from omniembed.tokenization.vq import code_usage
from omniembed.train.schedule import warmup_cosine
from omniembed.media.pool import can_fork, fork_pool, resolve_workers, worth_forking

log = logging.getLogger("omniembed.tokenizers")
LOG_FILE = "train.log"


def _cpu_has_native_bf16() -> bool:
    from omniembed.train.trainer import cpu_has_native_bf16  # the trunk's probe; imported late, it pulls in the model

    return cpu_has_native_bf16()


# --- data ----------------------------------------------------------------------------------------------------
@dataclass
class TokenizerData:
    """Everything the tokenizers learn from, decoded once."""

    texts: list[str] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)  # (H, W, 3) uint8: images and video frames
    waves: list[np.ndarray] = field(default_factory=list)  # (n,) float32 at sample_rate: sounds and video tracks
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("items", "documents", "texts", "images", "video_frames", "sounds", "video_tracks"), 0))
    skipped: list[str] = field(default_factory=list)
    seconds: dict[str, list[float]] = field(default_factory=lambda: {"audio": [], "video": []})  # clip lengths


def collect_data(records: list, cfg: TokenizerConfig) -> TokenizerData:
    """Texts of every record; each distinct media file decoded once (documents reuse items' files).

    With more than one worker the files are decoded in forked processes, in order, so the data (and with it
    the tokenizers' training split) is the same whatever the worker count."""
    data = TokenizerData()
    todo: list = []
    seen: set[str] = set()
    for record in records:
        if isinstance(record, Item):
            data.counts["items"] += 1
            data.texts.extend(record.texts)
            media = list(record.media.values())
        else:
            data.counts["documents"] += 1
            data.texts.extend(s.text for s in record.segments if s.text)
            media = [s.media for s in record.segments if s.media is not None]
        for m in media:
            if m.source not in seen:
                seen.add(m.source)
                todo.append(m)
    data.counts["texts"] = len(data.texts)
    with _decoded(todo, cfg) as decoded:
        for media, got in tqdm(decoded, total=len(todo), desc="decode media", unit="file", leave=False):
            if isinstance(got, MediaError):
                data.skipped.append(f"{media.source}: {got.reason}")
                log.warning("skipping %s: %s", media.source, got.reason)
            else:
                _add_decoded(data, media.modality, got, cfg)
            if _full(data, cfg):
                break
    return data


def _full(data: TokenizerData, cfg: TokenizerConfig) -> bool:
    return bool(cfg.max_images and len(data.images) >= cfg.max_images
                and cfg.max_clips and len(data.waves) >= cfg.max_clips)


def _decode(media, cfg: TokenizerConfig):
    """The decoded media of one file (an image, a wave, or a video's frames and track), or its MediaError."""
    try:
        seg = decode_segment(media.read_bytes(), media.modality, sample_rate=cfg.sample_rate, video_fps=cfg.video_fps,
                             image_side=cfg.image_size)
    except MediaError as err:
        return err
    if media.modality == "image":
        return seg.pixels
    if media.modality == "audio":
        return seg.wave
    return seg.frames, seg.audio


@contextlib.contextmanager
def _decoded(todo: list, cfg: TokenizerConfig):
    """(media, decoded) pairs in `todo` order, decoded in `cfg.workers` forked processes where that helps."""
    workers = resolve_workers(cfg.workers)
    if not worth_forking(workers, len(todo)):
        yield ((m, _decode(m, cfg)) for m in todo)
        return
    with fork_pool(workers) as pool:
        yield zip(todo, pool.imap(functools.partial(_decode, cfg=cfg), todo, chunksize=16))


def _add_decoded(data: TokenizerData, modality: str, got, cfg: TokenizerConfig) -> None:
    images_full = cfg.max_images and len(data.images) >= cfg.max_images
    clips_full = cfg.max_clips and len(data.waves) >= cfg.max_clips
    if modality == "image" and not images_full:
        data.images.append(got)
        data.counts["images"] += 1
    elif modality == "audio" and not clips_full:
        data.waves.append(got)
        data.counts["sounds"] += 1
    if modality == "audio":
        data.seconds["audio"].append(len(got) / cfg.sample_rate)
    elif modality == "video":
        frames, audio = got
        data.seconds["video"].append(len(audio) / cfg.sample_rate if audio is not None and audio.size
                                     else len(frames) / cfg.video_fps)
        if not images_full:
            data.images.extend(frames)
            data.counts["video_frames"] += len(frames)
        if audio is not None and audio.size > 0 and not clips_full:
            data.waves.append(audio)
            data.counts["video_tracks"] += 1


def split_indices(n: int, eval_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic train/eval split; with fewer than 2 examples both sides are the whole set."""
    order = np.random.default_rng(seed).permutation(n)
    if n < 2:
        return order, order
    n_eval = min(n - 1, max(1, int(round(n * eval_fraction))))
    return order[n_eval:], order[:n_eval]


# --- schedule and loop -------------------------------------------------------------------------------------
def lr_at(step: int, total: int, base: float, warmup_frac: float = 0.05, floor: float = 0.1) -> float:
    """The trunk's warmup + cosine schedule over the first `warmup_frac` of the steps, down to floor * base."""
    return warmup_cosine(step, max(1, int(total * warmup_frac)), total, floor, peak=base)


def fit(model: torch.nn.Module, batches: Callable[[int], torch.Tensor], steps: int, lr: float,
        cfg: TokenizerConfig, name: str, warmup: int = 0, bar_position: int = 0) -> dict[str, Any]:
    """Adam over `steps` batches of model.loss(batch); logs running MSE and codebook usage periodically.

    The first `warmup` steps train a plain autoencoder (the quantiser is bypassed), then
    the codebook starts from k-means of the warmed-up encoder's outputs (with no warm-up, of the initial
    encoder's: for the "patch" image arch those are the raw patches). On a small CPU budget this learns far
    faster than quantising from step one, where the codes chase an encoder that has not learnt anything."""
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history: list[dict[str, Any]] = []
    running: list[float] = []
    model.quantizer.bypass = warmup > 0
    model.quantizer.reset_usage()
    start = time.perf_counter()
    bar = tqdm(range(steps), desc=f"train {name}", unit="step", leave=False, position=bar_position)
    for step in bar:
        if step == warmup:
            start_codebook(model, batches, step)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr)
        loss, mse, _ = model.loss(batches(step), autocast=cfg.autocast_bf16)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running.append(mse)
        if (step + 1) % cfg.log_every == 0 or step + 1 == steps:
            usage = model.quantizer.usage()
            entry = {"step": step + 1, "quantised": not model.quantizer.bypass, "mse": float(np.mean(running)),
                     "used_fraction": usage["used_fraction"],
                     "perplexity": usage["perplexity"], "restarts": usage["restarts"],
                     "seconds": time.perf_counter() - start}
            history.append(entry)
            bar.set_postfix(mse=f"{entry['mse']:.4f}", ppl=f"{entry['perplexity']:.0f}")
            if model.quantizer.bypass:
                log.info("%s step %d/%d: recon mse %.5f (warm-up, not quantised yet)", name, step + 1, steps,
                         entry["mse"])
            else:
                log.info("%s step %d/%d: recon mse %.5f, codes used %.1f%%, perplexity %.1f, restarts %d",
                         name, step + 1, steps, entry["mse"], 100 * entry["used_fraction"], entry["perplexity"],
                         entry["restarts"])
            running.clear()
            model.quantizer.reset_usage()
    seconds = time.perf_counter() - start
    model.eval()
    return {"steps": steps, "seconds": seconds, "steps_per_second": steps / seconds if seconds else 0.0,
            "autocast_bf16": cfg.autocast_bf16, "history": history}


@torch.no_grad()
def start_codebook(model: torch.nn.Module, batches: Callable[[int], torch.Tensor], step: int,
                   min_vectors: int = 8192, max_batches: int = 32) -> None:
    """End of warm-up: k-means over encoder outputs of fresh training batches becomes the codebook."""
    vq = model.quantizer
    latents, n = [], 0
    for i in range(max_batches):
        z = model.encode_latent(batches(step + i)).reshape(-1, vq.dim)  # (cells, D)
        latents.append(z)
        n += z.shape[0]
        if n >= max(min_vectors, 4 * vq.num_codes):
            break
    vq.init_kmeans(torch.cat(latents))
    vq.bypass = False
    log.info("codebook of %d codes initialised by k-means over %d encoder outputs at step %d", vq.num_codes, n, step)


# --- image ----------------------------------------------------------------------------------------------------
def preprocess_all(model: ImageTokenizer, images: list[np.ndarray], chunk: int = 256) -> torch.Tensor:
    return torch.cat([model.preprocess(images[i:i + chunk]) for i in range(0, len(images), chunk)])


@torch.no_grad()
def evaluate_image(model: ImageTokenizer, x_eval: torch.Tensor, mean_image: torch.Tensor, chunk: int = 256) -> dict:
    """Reconstruction MSE on held-out images (pixels in [0, 1]) against predicting the mean training image."""
    model.eval()
    sq_err, codes = 0.0, []
    for i in range(0, len(x_eval), chunk):
        x = x_eval[i:i + chunk]
        c = model.encode(x)
        sq_err += float(((model.decode(c) - x) ** 2).sum())
        codes.append(c)
    mse = sq_err / x_eval.numel()
    baseline = float(((x_eval - mean_image) ** 2).mean())
    return {"recon_mse": mse, "baseline_mse": baseline, "ratio": mse / baseline if baseline > 0 else float("inf"),
            "psnr_db": 10 * math.log10(1.0 / mse) if mse > 0 else float("inf"),
            "usage": code_usage(torch.cat(codes), model.codebook_size)}


def train_image_tokenizer(images: list[np.ndarray], cfg: TokenizerConfig) -> tuple[ImageTokenizer, dict]:
    torch.manual_seed(cfg.seed)  # its own seed: the same model whether it trains first, second or beside audio
    model = ImageTokenizer(cfg)
    x_all = preprocess_all(model, images)  # (N, 3, S, S)
    train_idx, eval_idx = split_indices(len(x_all), cfg.eval_fraction, cfg.seed)
    x_train, x_eval = x_all[torch.from_numpy(train_idx)], x_all[torch.from_numpy(eval_idx)]
    g = torch.Generator().manual_seed(cfg.seed)

    def batches(_step: int) -> torch.Tensor:
        return x_train[torch.randint(0, len(x_train), (cfg.image_batch,), generator=g)]

    log.info("image tokenizer: %d training / %d held-out images at %dx%d, %d codes, %d tokens per image",
             len(x_train), len(x_eval), cfg.image_size, cfg.image_size, cfg.image_codebook, cfg.tokens_per_image)
    # The patch encoder starts as the identity, so k-means over raw patches at step 0 is already a warm start.
    warmup = 0 if cfg.image_arch == "patch" else int(cfg.vq_warmup * cfg.image_steps)
    training = fit(model, batches, cfg.image_steps, cfg.image_lr, cfg, "image", warmup)
    result = evaluate_image(model, x_eval, x_train.mean(dim=0, keepdim=True))
    result.update(train_images=len(x_train), eval_images=len(x_eval), restarts=model.quantizer.restarts,
                  training=training)
    return model, result


# --- audio ----------------------------------------------------------------------------------------------------
def random_crops(mels: list[torch.Tensor], frames: int, batch: int, pad_value: float,
                 g: torch.Generator) -> torch.Tensor:
    """`batch` crops of `frames` frames from randomly chosen mels (n_mels, T); short ones are padded."""
    out = []
    for k in torch.randint(0, len(mels), (batch,), generator=g).tolist():
        mel = mels[k]
        if mel.shape[1] <= frames:
            out.append(torch.nn.functional.pad(mel, (0, frames - mel.shape[1]), value=pad_value))
        else:
            start = int(torch.randint(0, mel.shape[1] - frames + 1, (1,), generator=g))
            out.append(mel[:, start:start + frames])
    return torch.stack(out)  # (B, n_mels, frames)


@torch.no_grad()
def evaluate_audio(model: AudioTokenizer, mels_eval: list[torch.Tensor]) -> dict:
    """Reconstruction MSE of held-out log-mels against predicting the mean training mel (per bin), both in dB^2
    and in normalised units (what the model optimises)."""
    model.eval()
    err_db = base_db = err_n = base_n = 0.0
    count = 0
    codes = []
    for mel in mels_eval:
        c = model.encode_mel(mel[None])
        recon = model.decode(c)[0]
        err_db += float(((recon - mel) ** 2).sum())
        base_db += float(((mel - model.mel_mean[:, None]) ** 2).sum())
        err_n += float(((model.normalize(recon) - model.normalize(mel)) ** 2).sum())
        base_n += float((model.normalize(mel) ** 2).sum())
        count += mel.numel()
        codes.append(c.flatten())
    mse_db, baseline_db = err_db / count, base_db / count
    return {"recon_mse_db2": mse_db, "baseline_mse_db2": baseline_db,
            "ratio": mse_db / baseline_db if baseline_db > 0 else float("inf"),
            "recon_mse_normalized": err_n / count, "baseline_mse_normalized": base_n / count,
            "ratio_normalized": err_n / base_n if base_n > 0 else float("inf"),
            "usage": code_usage(torch.cat(codes), model.codebook_size)}


def train_audio_tokenizer(waves: list[np.ndarray], cfg: TokenizerConfig,
                          bar_position: int = 0) -> tuple[AudioTokenizer, dict]:
    torch.manual_seed(cfg.seed + 1)  # its own seed, as the image tokenizer's
    model = AudioTokenizer(cfg)
    with torch.no_grad():
        # each (n_mels, M * p) in dB
        mels = [model.mel(torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))[None])[0]
                for w in tqdm(waves, desc="log-mel", unit="clip", leave=False, position=bar_position)]
    train_idx, eval_idx = split_indices(len(mels), cfg.eval_fraction, cfg.seed)
    mels_train, mels_eval = [mels[i] for i in train_idx], [mels[i] for i in eval_idx]
    model.fit_normalizer(mels_train)
    train_n = [model.normalize(m) for m in mels_train]
    pad_n = model.normalize(torch.full((cfg.n_mels, 1), SILENCE_DB))[:, 0].mean().item()
    p = cfg.mel_patch_frames
    frames = max(p, int(round(cfg.audio_clip_seconds * cfg.sample_rate / cfg.hop / p)) * p)
    g = torch.Generator().manual_seed(cfg.seed + 1)

    def batches(_step: int) -> torch.Tensor:
        return random_crops(train_n, frames, cfg.audio_batch, pad_n, g)

    log.info("audio tokenizer: %d training / %d held-out clips, crops of %d frames, %d codes, %.1f tokens/s",
             len(mels_train), len(mels_eval), frames, cfg.audio_codebook, cfg.audio_tokens_per_second)
    training = fit(model, batches, cfg.audio_steps, cfg.audio_lr, cfg, "audio", int(cfg.vq_warmup * cfg.audio_steps),
                   bar_position)
    result = evaluate_audio(model, mels_eval)
    result.update(train_clips=len(mels_train), eval_clips=len(mels_eval), restarts=model.quantizer.restarts,
                  training=training,
                  eval_seconds=sum(m.shape[1] for m in mels_eval) * cfg.hop / cfg.sample_rate)
    return model, result


_WHAT = {"text": "text (captions or document text)", "image": "image or video frame",
         "audio": "sound or video audio track"}


def trained_modalities(text: bool, image: bool, audio: bool) -> list[str]:
    """The input modalities tokenizers trained on these kinds of data can embed (a video needs the image one)."""
    return [m for m, ok in (("text", text), ("image", image), ("audio", audio), ("video", image)) if ok]


def untrained_image_tokenizer(cfg: TokenizerConfig) -> tuple[ImageTokenizer, dict]:
    torch.manual_seed(cfg.seed)
    return ImageTokenizer(cfg).eval(), {"trained": False, "reason": "no images or video frames in the manifest"}


def untrained_audio_tokenizer(cfg: TokenizerConfig) -> tuple[AudioTokenizer, dict]:
    torch.manual_seed(cfg.seed + 1)
    return AudioTokenizer(cfg).eval(), {"trained": False, "reason": "no sounds or video audio tracks in the manifest"}


def _call_in_worker(fn, args, kwargs):
    try:
        return fn(*args, **kwargs), None
    except Exception as err:  # noqa: BLE001 - sent back to be raised in the caller
        try:
            pickle.loads(pickle.dumps(err))
        except Exception:  # noqa: BLE001 - an exception that does not unpickle would hang the pool
            err = RuntimeError(f"{type(err).__name__}: {err}")
        return None, err


@contextlib.contextmanager
def _beside(fn: Callable, args: tuple, workers: int, worker_kwargs: dict | None = None):
    """Start fn(*args, **worker_kwargs) in a forked process (on the caller's torch thread count) and yield a
    function that waits for its result, raising its error. With one worker, or off Linux, fn(*args) runs when
    the result is asked for. Leaving the block kills an unfinished job: an error here does not wait for it."""
    if workers < 2 or not can_fork():
        yield lambda: fn(*args)
        return
    with fork_pool(1, torch.get_num_threads()) as pool:
        job = pool.apply_async(_call_in_worker, (fn, args, worker_kwargs or {}))

        def result():
            value, err = job.get()
            if err is not None:
                raise err
            return value

        yield result


# --- the stage ------------------------------------------------------------------------------------------------
def train_tokenizers(manifest: str | Path, out: str | Path, cfg: TokenizerConfig,
                     records: list | None = None) -> dict[str, Any]:
    """Run the whole stage on `cfg.threads` torch threads; returns the report (also written to
    out/report.json). `records`: learn from these (e.g. a sample of a corpus) instead of reading `manifest`,
    which then only names the source in the report. The caller's thread count is restored after:
    omniembed.train runs the trunk next."""
    caller_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _train_tokenizers(manifest, out, cfg, records)
    finally:
        torch.set_num_threads(caller_threads)


def _train_tokenizers(manifest: str | Path, out: str | Path, cfg: TokenizerConfig,
                      records: list | None = None) -> dict[str, Any]:
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    if cfg.autocast_bf16 and not _cpu_has_native_bf16():
        log.warning("autocast_bf16=true on a CPU without AVX512-BF16/AMX: bf16 convolutions are emulated and "
                    "slower than fp32 here; set autocast_bf16=false")
    records = load_manifest(manifest) if records is None else records
    data = collect_data(records, cfg)
    timings["decode_s"] = time.perf_counter() - t0
    log.info("decoded %s in %.1fs (%d skipped)", json.dumps(data.counts), timings["decode_s"], len(data.skipped))
    if not (data.texts or data.images or data.waves):
        raise ManifestError(f"{manifest}: no text, image, video frame or sound that decodes: nothing to learn")
    # a tokenizer whose modality the data lacks stays at its seeded initialisation, and the bundle says the
    # model cannot embed that modality (omniembed.runtime refuses such inputs by name)
    missing = {"text": not data.texts, "image": not data.images, "audio": not data.waves}
    for modality, absent in missing.items():
        if absent:
            log.warning("%s: no %s in the manifest: the %s tokenizer is left untrained and the model will not "
                        "embed %s", manifest, _WHAT[modality], modality, modality)

    t = time.perf_counter()
    text = TextTokenizer.train(data.texts, cfg.text_vocab_size)
    text_path = text.save(out / TEXT_FILE)
    timings["text_s"] = time.perf_counter() - t
    log.info("text BPE: %d tokens from %d texts in %.1fs", text.vocab_size, len(data.texts), timings["text_s"])

    # the audio tokenizer trains in a second process while this one trains the image tokenizer (2+ workers)
    # (its progress bars on the second line)
    audio_job = (train_audio_tokenizer, (data.waves, cfg)) if data.waves else (untrained_audio_tokenizer, (cfg,))
    with _beside(*audio_job, resolve_workers(cfg.workers) if data.waves else 1,
                 {"bar_position": 1} if data.waves else None) as audio_result:
        t = time.perf_counter()
        image_tok, image_report = (train_image_tokenizer(data.images, cfg) if data.images
                                   else untrained_image_tokenizer(cfg))
        timings["image_s"] = time.perf_counter() - t
        if data.images:
            log.info("image tokenizer: held-out mse %.5f vs mean-image %.5f (ratio %.3f), %d/%d codes used, "
                     "perplexity %.1f", image_report["recon_mse"], image_report["baseline_mse"],
                     image_report["ratio"], image_report["usage"]["codes_used"], cfg.image_codebook,
                     image_report["usage"]["perplexity"])
        audio_tok, audio_report = audio_result()
    timings["audio_s"] = audio_report["training"]["seconds"] if data.waves else 0.0
    if data.waves:
        log.info("audio tokenizer: held-out mse %.2f dB^2 vs mean-mel %.2f dB^2 (ratio %.3f), %d/%d codes used, "
                 "perplexity %.1f", audio_report["recon_mse_db2"], audio_report["baseline_mse_db2"],
                 audio_report["ratio"], audio_report["usage"]["codes_used"], cfg.audio_codebook,
                 audio_report["usage"]["perplexity"])

    timings["total_s"] = time.perf_counter() - t0
    report = {
        "manifest": str(manifest),
        "data": {**data.counts, "skipped": data.skipped},
        # the median clip length per modality: the default embedding window (omniembed.tokenization.windows)
        "clip_seconds": {m: float(np.median(v)) for m, v in data.seconds.items() if v},
        "text": {"vocab_size": text.vocab_size, "texts": len(data.texts), "trained": bool(data.texts)},
        "image": image_report,
        "audio": audio_report,
        # what the tokenizers learned: the modalities a model on them can embed (video: its frames need images)
        "modalities": trained_modalities(not missing["text"], not missing["image"], not missing["audio"]),
        "timings": timings,
        "torch_threads": torch.get_num_threads(),
        "config": cfg.to_dict(),
    }
    save_tokenizers(out, text_path, image_tok, audio_tok, cfg, report)
    log.info("wrote %s in %.1fs", out, timings["total_s"])
    return report


def _setup_logging(out: Path) -> list[logging.Handler]:
    out.mkdir(parents=True, exist_ok=True)
    return attach_handlers(log, out / LOG_FILE)


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="omniembed tokenizers", description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", required=True, help="manifest.jsonl to learn from")
    parser.add_argument("--out", required=True, help="tokenizer directory to write")
    parser.add_argument("--config", default=None, help="a training config (tiny, small, base or a path: its "
                        "tokenizer section) or a YAML of TokenizerConfig keys (default: the dataclass defaults)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    args = parser.parse_args(None if argv is None else list(argv))
    out = Path(args.out)
    handlers = _setup_logging(out)
    try:
        cfg = TokenizerConfig.from_yaml(args.config, args.overrides)
        report = train_tokenizers(args.manifest, out, cfg)
    except (ConfigError, ManifestError) as err:
        log.error("%s", err)
        return 2
    finally:
        for h in handlers:
            log.removeHandler(h)
            h.close()
    print(json.dumps({"out": str(out), "report": str(out / REPORT_FILE),
                      "image_ratio": round(report["image"]["ratio"], 4) if "ratio" in report["image"] else None,
                      "audio_ratio": round(report["audio"]["ratio"], 4) if "ratio" in report["audio"] else None,
                      "modalities": report["modalities"],
                      "total_s": round(report["timings"]["total_s"], 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
