"""Train the trunk: `python -m omniembed.train --config configs/<name>.yaml [key=value ...] [--out RUN_DIR]
[--resume] [--stop-at STEP]` (also `omniembed train ...`; under `torchrun` the same command runs DDP).

Stages, in order:
  0. data: `data.manifest`, or a synthetic world generated into RUN_DIR/world when none is given;
  1. tokenizers: reuse `tokenizers=DIR` (copied to RUN_DIR/tokenizers) or train them there;
  2. corpus: every view and document tokenized once into RUN_DIR/corpus.{npz,json} (omniembed.corpus);
  3. joint training from step 1: next-token batches (documents, caption sequences) + Matryoshka
     contrastive batches over modality pairs (omniembed.stream), periodic held-out recall
     (omniembed.evaluate), atomic checkpoints to RUN_DIR/checkpoint.pt.

RUN_DIR holds train.yaml (the resolved config), tokenizers/, checkpoint.pt, eval.jsonl, tb/ and train.log.
`--resume` continues from RUN_DIR/checkpoint.pt exactly (model, optimizer, schedule, RNG, data position);
`--stop-at S` checkpoints after step S and exits, for time-sliced jobs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml
from tqdm import tqdm

from omniembed import distributed as D
from omniembed import runconfig
from omniembed.corpus import Corpus, build_corpus
from omniembed.errors import ConfigError, ManifestError
from omniembed.evaluate import caption_items, caption_rates, recall_matrix
from omniembed.late_fusion import build_model, model_config_dict
from omniembed.logs import attach_handlers
from omniembed.model import OmniModel, config_for_vocabulary
from omniembed.stream import TrainStream
from omniembed.trainer import Trainer, TrainingDiverged
from omniembed.workers import resolve_workers

log = logging.getLogger("omniembed.train")
CONFIG_FILE, CHECKPOINT_FILE, EVAL_FILE, LOG_FILE = "train.yaml", "checkpoint.pt", "eval.jsonl", "train.log"
STEPS_FILE = "steps.jsonl"  # one line per applied step: step, loss, the loss terms, lr, pair, seconds into the loop
TOKENIZER_DIR = "tokenizers"
REPO = Path(__file__).resolve().parents[1]
# headline pairs of the recall target; logged on one line at each evaluation
HEADLINE = ("text->image", "image->text", "text->audio", "audio->text", "text->video", "video->text",
            "image->audio")


# ---- stages 0-2 ---------------------------------------------------------------------------------------
def resolve_data(cfg: runconfig.RunConfig, run_dir: Path) -> tuple[Path, Path | None]:
    """(train manifest, held-out manifest or None); generates the synthetic world when none is given."""
    data = cfg.data
    if data.manifest is None:
        from omniembed.data.synth import generate

        world = run_dir / "world"
        if not _seen_by_all((world / "world.json").is_file()):
            log.info("no data.manifest: generating a synthetic world of %d items in %s", data.synth_n, world)
            if D.rank() == 0:
                generate(world, data.synth_n, data.synth_seed, video_format=data.synth_video)
            _barrier()
        manifest = world / "manifest.jsonl"
    else:
        manifest = Path(data.manifest)
    if not manifest.is_file():
        raise ManifestError(f"data.manifest={str(manifest)!r}: no such file")
    heldout = Path(data.heldout) if data.heldout else manifest.with_name("heldout.jsonl")
    if data.heldout and not heldout.is_file():
        raise ManifestError(f"data.heldout={data.heldout!r}: no such file")
    return manifest, heldout if heldout.is_file() else None


def prepare_tokenizers(cfg: runconfig.RunConfig, run_dir: Path, manifest: Path) -> Path:
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
            from omniembed.tokenization.config import TokenizerConfig
            from omniembed.tokenization.train import train_tokenizers

            overrides = [f"{k}={json.dumps(v)}" for k, v in cfg.tokenizer.overrides.items()]
            tcfg = TokenizerConfig.from_yaml(_config_path(cfg.tokenizer.config), overrides)
            log.info("stage 1: training tokenizers on %s", manifest)
            t0 = time.perf_counter()
            train_tokenizers(manifest, out, tcfg)
            log.info("stage 1: tokenizers trained in %.1fs", time.perf_counter() - t0)
    _barrier()
    return out


def _config_path(path: str | None) -> Path | None:
    """A config path as given, or relative to the repository (configs/... works from any folder)."""
    if path is None or Path(path).is_file() or Path(path).is_absolute():
        return None if path is None else Path(path)
    return REPO / path


def fingerprint(manifest: Path, heldout: Path | None, tok_dir: Path, cfg: runconfig.RunConfig) -> str:
    """What the cached corpus depends on: the manifests' bytes, the tokenizers' files, the view limits."""
    h = hashlib.sha256()
    for p in [manifest, heldout, *sorted(tok_dir.glob("*.pt")), tok_dir / "tokenizer.json"]:
        if p is not None and p.is_file():
            h.update(p.read_bytes())
    h.update(repr((cfg.data.max_view_tokens,)).encode())
    return h.hexdigest()


def prepare_corpus(manifest: Path, heldout: Path | None, tok_dir: Path, doc_tok, video_fps: float,
                   sample_rate: int, cache_dir: Path, key: str, workers: int | None = None) -> Corpus:
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
            corpus = build_corpus(train, held, doc_tok, sample_rate, video_fps, resolve_workers(workers))
            cache_dir.mkdir(parents=True, exist_ok=True)
            corpus.save(cache_dir)
            stamp.write_text(key)
            log.info("stage 2: tokenized %d items (%d held out) and %d documents in %.1fs", len(corpus.items),
                     len(corpus.split("heldout")), len(corpus.documents), time.perf_counter() - t0)
        _barrier()
    return Corpus.load(cache_dir)


def _seen_by_all(ready: bool) -> bool:
    """Whether a stage's output exists, looked at by every rank BEFORE rank 0 may write it: without this
    barrier a late rank sees rank 0's fresh output, skips the stage and never joins the stage's barrier."""
    _barrier()
    return ready


def _barrier() -> None:
    if D.is_distributed():
        torch.distributed.barrier()


# ---- stage 3 --------------------------------------------------------------------------------------------
def evaluate(model: OmniModel, corpus: Corpus, cfg: runconfig.RunConfig, doc_tok, step: int) -> dict:
    """Held-out recall matrix at every Matryoshka dim, and captions of held-out images scored."""
    held = corpus.split("heldout")
    record: dict = {"step": step, "hit": "the retrieved item has exactly the query's attribute set"}
    if not held:
        record["note"] = "no held-out items: recall not measured"
        return record
    t0 = time.perf_counter()
    record["recall"] = recall_matrix(model, corpus, held, model.cfg.embed_dims, cfg.data.max_view_tokens)
    with_image = [i for i in held if "image" in corpus.items[i].blocks][:cfg.loop.eval_captions]
    if with_image:
        vocab = doc_tok.vocab
        rows = caption_items(model, corpus, with_image, list(vocab.text_range), "image", cfg.loop.caption_tokens)
        texts = [doc_tok.text.decode([vocab.local(t) for t in row if t in vocab.text_range]) for row in rows]
        rates = caption_rates(texts, [corpus.items[i].attributes for i in with_image])
        rates["examples"] = [{"item": corpus.items[i].id, "attributes": corpus.items[i].attributes, "caption": t}
                             for i, t in list(zip(with_image, texts))[:5]]
        record["captions"] = rates
    record["eval_s"] = round(time.perf_counter() - t0, 2)
    return record


def headline(record: dict) -> str:
    if "recall" not in record:
        return record.get("note", "")
    dims = record["recall"]["dims"]
    parts = []
    for d in sorted(dims)[-1:] + ([64] if 64 in dims and 64 != max(dims) else []):
        parts.append(f"R@1 dim {d}: " + " ".join(f"{p}={dims[d][p][1]:.2f}" for p in HEADLINE if p in dims[d]))
    cap = record.get("captions")
    if cap:
        parts.append(f"captions name colour {cap['colour']:.2f} (chance {cap['colour_chance']:.2f}), "
                     f"shape {cap['shape']:.2f} (chance {cap['shape_chance']:.2f})")
    return "; ".join(parts)


def write_eval(run_dir: Path, record: dict, writer) -> None:
    with open(run_dir / EVAL_FILE, "a") as f:
        f.write(json.dumps(record) + "\n")
    if writer is None:
        return
    step = record["step"]
    for d, table in record.get("recall", {}).get("dims", {}).items():
        for pair, rk in table.items():
            for k, v in rk.items():
                writer.add_scalar(f"recall@{k}/dim{d}/{pair}", v, step)
    cap = record.get("captions")
    if cap:
        writer.add_scalar("captions/colour", cap["colour"], step)
        writer.add_scalar("captions/shape", cap["shape"], step)
    writer.flush()


def _setup_logging(run_dir: Path) -> list[logging.Handler]:
    if D.rank() != 0:
        log.setLevel(logging.WARNING)
        return []
    handlers = attach_handlers(log, run_dir / LOG_FILE)
    log.propagate = False
    return handlers


def resolved_config(cfg: runconfig.RunConfig, model) -> dict:
    out = cfg.to_dict()
    out["model"] = {"size": cfg.model["size"], **model_config_dict(model)}  # kind, shape (late: towers, starts)
    out["tokenizers"] = TOKENIZER_DIR  # relative to RUN_DIR: the run is self-contained
    return out


def build_model_config(cfg: runconfig.RunConfig, vocab, image_tokens: int = 0):
    fixed = ("size", "kind", "vocab_size", "pad_id", "image_ids", "image_tokens")
    overrides = {k: v for k, v in cfg.model.items() if k not in fixed}
    return config_for_vocabulary(cfg.model["size"], vocab, image_tokens=image_tokens or 0, **overrides)


def prepare_data(cfg: runconfig.RunConfig, run_dir: Path):
    """Stages 0-2, each skipped where RUN_DIR (or data.corpus_cache) already holds its output: returns the
    document tokenizer, the corpus fingerprint and the corpus."""
    manifest, heldout = resolve_data(cfg, run_dir)
    tok_dir = prepare_tokenizers(cfg, run_dir, manifest)
    from omniembed.tokenization.document import DocumentTokenizer
    from omniembed.tokenization.store import load_tokenizers

    toks = load_tokenizers(tok_dir)
    doc_tok = DocumentTokenizer.from_tokenizers(toks.text, toks.image, toks.audio, video_fps=toks.config.video_fps)
    key = fingerprint(manifest, heldout, tok_dir, cfg)
    corpus = prepare_corpus(manifest, heldout, tok_dir, doc_tok, toks.config.video_fps, toks.config.sample_rate,
                            Path(cfg.data.corpus_cache) if cfg.data.corpus_cache else run_dir, key, cfg.data.workers)
    return doc_tok, key, corpus


def train(cfg: runconfig.RunConfig, run_dir: Path, resume: bool = False, stop_at: int | None = None) -> dict:
    """All stages; returns the last evaluation record (rank 0) or {} (other ranks)."""
    started = time.perf_counter()
    torch.set_num_threads(cfg.loop.threads)
    device = D.init_from_env()
    doc_tok, key, corpus = prepare_data(cfg, run_dir)

    model_cfg = build_model_config(cfg, doc_tok.vocab, doc_tok.tokens_per_image)
    torch.manual_seed(cfg.seed)
    # model.kind: early (OmniModel) | late (LateFusionModel at OmniModel(model_cfg)'s parameter count)
    model = build_model(cfg.model.get("kind", "early"), model_cfg, doc_tok.vocab).to(device)
    if D.rank() == 0:
        (run_dir / CONFIG_FILE).write_text(yaml.safe_dump(resolved_config(cfg, model), sort_keys=False))
        doc_tok.vocab.save(run_dir / "vocab.json")
    # steps may be pair-only (lm_every > 1): DDP must then tolerate the LM head going unused
    tcfg = cfg.train
    tcfg.total_steps = cfg.loop.steps
    tcfg.ddp_find_unused = tcfg.ddp_find_unused or cfg.loop.lm_every != 1
    trainer = Trainer(model, tcfg)
    stream = TrainStream(corpus, cfg.loop, cfg.data, cfg.seed, D.rank(), D.world_size())
    ckpt = run_dir / CHECKPOINT_FILE
    if resume:
        state = trainer.resume(ckpt)
        if state["extra"].get("corpus") != key:
            raise ConfigError(f"{ckpt}: was trained on another corpus or tokenizers than {run_dir} holds now")
        stream.load_state_dict(state["data_state"])
        log.info("resumed from %s at step %d", ckpt, trainer.step)
    log.info("model: %s, %.2fM parameters; %d train items, %d documents; pairs %s", cfg.model["size"],
             model.num_params() / 1e6, len(corpus.split("train")), len(corpus.documents), stream.pairs)

    writer = None
    if D.rank() == 0:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run_dir / "tb"))
    config_dict = resolved_config(cfg, model)

    def save():
        trainer.save(ckpt, data_state=stream.state_dict(), config=config_dict, extra={"corpus": key})

    last: dict = {}
    end = cfg.loop.steps if stop_at is None else min(stop_at, cfg.loop.steps)
    bar = tqdm(total=end, initial=trainer.step, desc="train", unit="step", disable=D.rank() != 0,
               dynamic_ncols=True)
    t0, tokens = time.perf_counter(), 0
    while trainer.step < end:
        step = trainer.step + 1
        pairs, pair_name = stream.pair_batch(step)
        lm = stream.lm_batch(step)
        res = trainer.train_step(lm=lm, pairs=pairs)
        tokens += pairs.tokens() + (0 if lm is None else int(lm.pad_mask.sum()))
        bar.update(0 if res.skipped else 1)
        if res.skipped:
            continue
        s = res.stats
        bar.set_postfix(loss=f"{res.loss:.3f}", con=f"{s.get('con/loss', float('nan')):.3f}",
                        lm=f"{s.get('lm/ce', float('nan')):.3f}", refresh=False)
        if writer is not None:
            with open(run_dir / STEPS_FILE, "a") as f:
                f.write(json.dumps({"step": res.step, "loss": res.loss, "lr": res.lr, "grad_norm": res.grad_norm,
                                    "pair": pair_name, "seconds": round(time.perf_counter() - t0, 3),
                                    **{k: v for k, v in s.items()}}) + "\n")
            writer.add_scalar("train/loss", res.loss, res.step)
            writer.add_scalar("train/lr", res.lr, res.step)
            writer.add_scalar("train/grad_norm", res.grad_norm, res.step)
            for k, v in s.items():
                writer.add_scalar(k.replace("@", "_at_"), v, res.step)
        if cfg.loop.log_every and res.step % cfg.loop.log_every == 0:
            rate = tokens * D.world_size() / (time.perf_counter() - t0)  # every rank's share is about this one's
            log.info("step %d/%d loss %.4f con %.4f lm %.4f temp %.4f lr %.2e grad %.2f (%s) %.0f tok/s", res.step,
                     cfg.loop.steps, res.loss, s.get("con/loss", float("nan")), s.get("lm/ce", float("nan")),
                     s.get("temperature", float("nan")), res.lr, res.grad_norm, pair_name, rate)
        if cfg.loop.ckpt_every and res.step % cfg.loop.ckpt_every == 0 and res.step < end:
            save()
        if cfg.loop.eval_every and res.step % cfg.loop.eval_every == 0 and res.step < end:
            last = _eval_and_log(model, corpus, cfg, doc_tok, res.step, run_dir, writer, started)
    bar.close()
    save()
    last = _eval_and_log(model, corpus, cfg, doc_tok, trainer.step, run_dir, writer, started)
    if writer is not None:
        writer.close()
    log.info("done: step %d in %.1fs, checkpoint %s", trainer.step, time.perf_counter() - t0, ckpt)
    return last


def _eval_and_log(model, corpus, cfg, doc_tok, step, run_dir, writer, started) -> dict:
    record: dict = {}
    if D.rank() == 0:
        record = evaluate(model, corpus, cfg, doc_tok, step)
        record["wall_s"] = round(time.perf_counter() - started, 1)  # this process, all stages so far
        write_eval(run_dir, record, writer)
        log.info("eval step %d (%.1fs): %s", step, record.get("eval_s", 0.0), headline(record))
    _barrier()
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="omniembed train", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="training YAML (configs/tiny.yaml, small, base); "
                                                       "with --resume, default RUN_DIR/train.yaml")
    parser.add_argument("--out", default=None, help="run directory (default runs/<config name>)")
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint.pt")
    parser.add_argument("--stop-at", type=int, default=None, help="checkpoint after this step and exit")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, dotted keys")
    args = parser.parse_args(argv)
    run_dir = Path(args.out or f"runs/{Path(args.config or 'run').stem}")
    handlers: list[logging.Handler] = []
    try:
        config_path = args.config
        if config_path is None:
            if not args.resume:
                raise ConfigError("--config is required (e.g. --config configs/tiny.yaml)")
            config_path = run_dir / CONFIG_FILE
        data = runconfig.load_dict(config_path, args.overrides)
        if "tokenizers" in data and isinstance(data["tokenizers"], str) and args.config is None:
            data["tokenizers"] = str(run_dir / data["tokenizers"])
        cfg = runconfig.from_dict(data, source=str(config_path))
        if args.resume and not (run_dir / CHECKPOINT_FILE).is_file():
            raise ConfigError(f"--resume: {run_dir / CHECKPOINT_FILE} does not exist")
        run_dir.mkdir(parents=True, exist_ok=True)
        launch = cfg.loop.processes > 1 and "WORLD_SIZE" not in os.environ
        if not launch:
            D.init_from_env()
        handlers = _setup_logging(run_dir)
        if launch and torch.cuda.is_available():
            log.warning("loop.processes=%d is CPU data parallelism; on GPUs launch torchrun yourself (one rank "
                        "per GPU): training in this one process", cfg.loop.processes)
        elif launch:
            return _launch_ranks(cfg, run_dir, sys.argv[1:] if argv is None else list(argv))
        train(cfg, run_dir, resume=args.resume, stop_at=args.stop_at)
    except (ConfigError, ManifestError, TrainingDiverged) as err:
        if handlers:
            log.error("%s", err)
        else:
            print(f"omniembed train: {err}", file=sys.stderr)
        return 2
    finally:
        for h in handlers:
            log.removeHandler(h)
            h.close()
        D.shutdown()
    return 0


def _launch_ranks(cfg: runconfig.RunConfig, run_dir: Path, argv: list[str]) -> int:
    """loop.processes > 1 on CPU: stages 0-2 here (their own worker processes fill the CPUs), then this same
    command as that many DDP ranks under torchrun, each on loop.threads threads; they find the data ready.
    Small matrices use 2 cores better as 2 one-thread ranks than as one 2-thread process (see small.yaml)."""
    torch.set_num_threads(cfg.loop.threads)
    prepare_data(cfg, run_dir)
    n = cfg.loop.processes
    log.info("training on %d data-parallel CPU processes (loop.processes) of %d thread(s) each, under torchrun",
             n, cfg.loop.threads)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}",
           "-m", "omniembed.train", *argv]
    # OMP_NUM_THREADS set: torchrun would otherwise print a banner and set it to 1 itself
    code = subprocess.call(cmd, env={**os.environ, "OMP_NUM_THREADS": str(cfg.loop.threads)})
    if code != 0:
        log.error("training ranks failed (torchrun exit %d); rank 0's error is in %s", code, run_dir / LOG_FILE)
    return code


if __name__ == "__main__":
    sys.exit(main())
