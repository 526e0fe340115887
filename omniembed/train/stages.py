"""Stages 0-2 of training, each skipped where the run directory already holds its output:

  0. data: `data.manifest`, or a synthetic world generated into RUN_DIR/world when none is given;
  1. tokenizers: reuse `tokenizers=DIR` (copied to RUN_DIR/tokenizers) or train them there;
  2. corpus: every view and document tokenized once into RUN_DIR/corpus.{npz,json} (omniembed.train.corpus),
     long audio and video window by window (the windows in RUN_DIR/windows.json).

Under torchrun rank 0 does the work and the other ranks wait at a barrier, then read what it wrote.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path

from omniembed.media.pool import resolve_workers
from omniembed.errors import ConfigError, ManifestError
from omniembed.train import distributed as D
from omniembed.train.config import RunConfig
from omniembed.train.corpus import Corpus, build_corpus
from omniembed.tokenization.windows import Windowing, resolve_windowing
from omniembed.train.rundir import TOKENIZER_DIR, WINDOWS_FILE

log = logging.getLogger("omniembed.train")


def streamed_source(cfg: RunConfig):
    """What a streamed run reads (data.shards, or data.manifest with data.stream), or None: in memory."""
    if cfg.data.shards is not None:
        return cfg.data.shards
    return cfg.data.manifest if cfg.data.stream else None


def resolve_data(cfg: RunConfig, run_dir: Path) -> tuple[Path | None, Path | None]:
    """(train manifest, held-out manifest or None); generates the synthetic world when none is given.
    With data.shards the train manifest is None (the shards are the training data)."""
    data = cfg.data
    if data.shards is not None:
        if data.heldout and not Path(data.heldout).is_file():
            raise ManifestError(f"data.heldout={data.heldout!r}: no such file")
        if not data.heldout:
            log.warning("data.shards without data.heldout: no held-out evaluation in this run")
        return None, Path(data.heldout) if data.heldout else None
    if data.manifest is None:
        from omniembed.data.synth import generate

        world = run_dir / "world"
        if not _seen_by_all((world / "world.json").is_file()):
            log.info("no data.manifest: generating a synthetic world of %d items in %s", data.synth_n, world)
            if D.rank() == 0:
                generate(world, data.synth_n, data.synth_seed, video_format=data.synth_video)
            D.barrier()
        manifest = world / "manifest.jsonl"
    else:
        manifest = Path(data.manifest)
    if not manifest.is_file():
        raise ManifestError(f"data.manifest={str(manifest)!r}: no such file")
    heldout = Path(data.heldout) if data.heldout else manifest.with_name("heldout.jsonl")
    if data.heldout and not heldout.is_file():
        raise ManifestError(f"data.heldout={data.heldout!r}: no such file")
    return manifest, heldout if heldout.is_file() else None


def prepare_tokenizers(cfg: RunConfig, run_dir: Path, manifest: Path | None) -> Path:
    out = run_dir / TOKENIZER_DIR
    if _seen_by_all((out / "tokenizers.yaml").is_file()):
        return out
    if D.rank() == 0:
        if cfg.tokenizers:
            src = Path(cfg.tokenizers)
            if not (src / "tokenizers.yaml").is_file():
                raise ConfigError(f"tokenizers={cfg.tokenizers!r}: not a trained tokenizer directory "
                                  "(no tokenizers.yaml)")
            shutil.copytree(src, out, dirs_exist_ok=True)
            log.info("stage 1: tokenizers copied from %s", src)
        else:
            from omniembed.tokenization.train import train_tokenizers

            from omniembed.data.sources import sample_records

            source = streamed_source(cfg) or manifest
            t0 = time.perf_counter()
            records, units = sample_records(source, cfg.data.tokenizer_sample, cfg.seed,
                                            strict=streamed_source(cfg) is None)
            log.info("stage 1: training tokenizers on %d records of %s (data.tokenizer_sample=%d, from %d read "
                     "units)", len(records), source, cfg.data.tokenizer_sample, units)
            train_tokenizers(str(source), out, cfg.tokenizer, records=records)
            log.info("stage 1: tokenizers trained in %.1fs", time.perf_counter() - t0)
    D.barrier()
    return out


def tokenizer_files(tok_dir: Path) -> list[Path]:
    """The files of a tokenizer directory that a tokenized corpus depends on, in a fixed order."""
    return [*sorted(tok_dir.glob("*.pt")), tok_dir / "tokenizer.json"]


def fingerprint(manifest: Path, heldout: Path | None, tok_dir: Path, cfg: RunConfig,
                windowing: Windowing | None = None) -> str:
    """What the cached corpus depends on: the manifests' bytes, the tokenizers' files, the view limits."""
    h = hashlib.sha256()
    for p in [manifest, heldout, *tokenizer_files(tok_dir)]:
        if p is not None and p.is_file():
            h.update(p.read_bytes())
    h.update(repr((cfg.data.max_view_tokens,)).encode())
    if windowing is not None:
        h.update(json.dumps(windowing.to_dict(), sort_keys=True).encode())
    return h.hexdigest()


def prepare_windowing(cfg: RunConfig, run_dir: Path, toks) -> Windowing:
    """The run's embedding windows (RUN_DIR/windows.json): as configured, else from the tokenizers' clip lengths."""
    windowing = resolve_windowing(cfg.data.window_seconds, cfg.data.window_stride, cfg.data.max_view_tokens,
                                  toks.config, toks.report.get("clip_seconds"))
    if D.rank() == 0:
        (run_dir / WINDOWS_FILE).write_text(json.dumps(windowing.to_dict(), indent=1) + "\n")
    return windowing


def prepare_corpus(manifest: Path, heldout: Path | None, tok_dir: Path, doc_tok, video_fps: float,
                   sample_rate: int, cache_dir: Path, key: str, workers: int | None = None,
                   windowing: Windowing | None = None) -> Corpus:
    """The tokenized corpus from cache_dir, built first (rank 0, `workers` processes; None: one per CPU, up
    to 8) unless it holds one made from the same manifests, tokenizers and view limits (`key`)."""
    stamp = cache_dir / "corpus.key"
    if not _seen_by_all(stamp.is_file() and stamp.read_text() == key and (cache_dir / "corpus.json").is_file()):
        if D.rank() == 0:
            from omniembed.data.manifest import load_manifest

            t0 = time.perf_counter()
            train = load_manifest(manifest)
            held = load_manifest(heldout) if heldout is not None else []
            held += [r for r in train if r.split == "heldout"]
            train = [r for r in train if r.split != "heldout"]
            corpus = build_corpus(train, held, doc_tok, sample_rate, video_fps, resolve_workers(workers), windowing)
            cache_dir.mkdir(parents=True, exist_ok=True)
            corpus.save(cache_dir)
            stamp.write_text(key)
            log.info("stage 2: tokenized %d items (%d held out) and %d documents in %.1fs", len(corpus.items),
                     len(corpus.split("heldout")), len(corpus.documents), time.perf_counter() - t0)
        D.barrier()
    return Corpus.load(cache_dir)


def _seen_by_all(ready: bool) -> bool:
    """Whether a stage's output exists, looked at by every rank BEFORE rank 0 may write it: without this
    barrier a late rank sees rank 0's fresh output, skips the stage and never joins the stage's barrier."""
    D.barrier()
    return ready


def prepare_data(cfg: RunConfig, run_dir: Path):
    """Stages 0-2, each skipped where RUN_DIR (or data.corpus_cache) already holds its output: returns the
    document tokenizer, the corpus fingerprint and the corpus. A streamed run (data.shards / data.stream)
    tokenizes only its held-out set here; its training records are tokenized by the stream's workers."""
    manifest, heldout = resolve_data(cfg, run_dir)
    tok_dir = prepare_tokenizers(cfg, run_dir, manifest)
    from omniembed.tokenization.document import DocumentTokenizer
    from omniembed.tokenization.store import load_tokenizers

    toks = load_tokenizers(tok_dir)
    doc_tok = DocumentTokenizer.from_tokenizers(toks.text, toks.image, toks.audio, video_fps=toks.config.video_fps)
    windowing = prepare_windowing(cfg, run_dir, toks)
    if streamed_source(cfg) is not None:
        return prepare_stream(cfg, tok_dir, toks, doc_tok, windowing, heldout)
    key = fingerprint(manifest, heldout, tok_dir, cfg, windowing)
    corpus = prepare_corpus(manifest, heldout, tok_dir, doc_tok, toks.config.video_fps, toks.config.sample_rate,
                            Path(cfg.data.corpus_cache) if cfg.data.corpus_cache else run_dir, key, cfg.data.workers,
                            windowing)
    report_cuts(corpus, cfg.data.max_view_tokens)
    return doc_tok, key, corpus, None


def report_cuts(corpus: Corpus, max_tokens: int) -> dict[str, int]:
    """Views whose ids do not fit max_tokens are cut at their end when batched: say how many, per view."""
    room = max_tokens - 3  # <bos> ... <eos> <embed>
    cut: dict[str, int] = {}
    for item in corpus.items:
        for view in item.views():
            bodies = item.texts if view == "text" else item.windows.get(view) or [item.blocks[view]]
            if any(len(b) > room for b in bodies):
                cut[view] = cut.get(view, 0) + 1
    if cut:
        log.warning("views longer than data.max_view_tokens=%d ids are cut at their end: %s (raise "
                    "data.max_view_tokens, or shorten them)", max_tokens,
                    ", ".join(f"{n} {view}" for view, n in sorted(cut.items())))
    return cut


def prepare_stream(cfg: RunConfig, tok_dir: Path, toks, doc_tok, windowing: Windowing | None,
                   heldout: Path | None):
    """(document tokenizer, the stream's key, the held-out corpus or None, StreamSettings minus rank)."""
    from omniembed.data.sources import expand_inputs
    from omniembed.train.streaming import StreamSettings, stream_units

    source = streamed_source(cfg)
    inputs = expand_inputs(source)
    # the key names the inputs and tokenizers (not their content: the corpus may be too big to hash)
    h = hashlib.sha256(json.dumps([[p, *_size_mtime(p)] for p in inputs]).encode())
    for p in tokenizer_files(tok_dir):
        if p.is_file():
            h.update(p.read_bytes())
    h.update(json.dumps([cfg.data.max_view_tokens, windowing.to_dict() if windowing else None]).encode())
    workers, world = loader_workers(cfg), D.world_size()
    units = stream_units(source, world * max(1, workers))
    settings = StreamSettings(units, str(tok_dir), windowing.to_dict() if windowing else None, cfg.seed,
                              D.rank(), world, workers, cfg.data.shuffle_buffer, cfg.eval.training_label())
    held = None
    if heldout is not None:
        from omniembed.data.manifest import load_manifest

        held = build_corpus([], load_manifest(heldout), doc_tok, toks.config.sample_rate, toks.config.video_fps,
                            1, windowing)
    log.info("stage 2: streaming %d read units of %s with %d loader worker(s) per rank (shuffle buffer %d); "
             "%d held-out items", len(units), source, workers, cfg.data.shuffle_buffer,
             0 if held is None else len(held.items))
    return doc_tok, h.hexdigest(), held, settings


def loader_workers(cfg: RunConfig) -> int:
    """data.loader_workers, or the CPUs one rank can spare beside its trainer threads (1 to 8)."""
    if cfg.data.loader_workers is not None:
        return cfg.data.loader_workers
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, min(8, resolve_workers(None) // local - cfg.loop.threads))


def _size_mtime(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
        return st.st_size, int(st.st_mtime)
    except OSError:  # pipe: commands
        return 0, 0
