"""Stage 3 of training: the joint loop from step 1.

Each step takes a Matryoshka contrastive batch over modality pairs (or all of an item's views) and a
next-token batch of documents and caption sequences (omniembed.train.batches), one optimizer step
(omniembed.train.trainer), a line in RUN_DIR/steps.jsonl and TensorBoard; periodic held-out recall
(omniembed.train.evaluate) and atomic checkpoints to RUN_DIR/checkpoint.pt, which `resume` continues exactly.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import torch
import yaml
from tqdm import tqdm

from omniembed.errors import ConfigError, ManifestError
from omniembed.model import build_model, check_recorded, config_for_vocabulary, model_config_dict
from omniembed.model.config import auto_dropout
from omniembed.model.code_init import init_code_embeddings, set_code_features
from omniembed.train import distributed as D
from omniembed.train.batches import StreamBatches, TrainStream
from omniembed.train.config import RunConfig
from omniembed.train.evaluate import evaluation_record, headline, write_eval
from omniembed.train.rundir import (CHECKPOINT_FILE, CONFIG_FILE, STEPS_FILE, THROUGHPUT_FILE, TOKENIZER_DIR,
                                    VOCAB_FILE)
from omniembed.train.streaming import StreamReader, restart_state
from omniembed.train.throughput import Throughput, batch_tokens
from omniembed.train.stages import prepare_data
from omniembed.train.trainer import Trainer

log = logging.getLogger("omniembed.train")
MAX_IDLE_STEPS = 50


def resolved_config(cfg: RunConfig, model, model_cfg) -> dict:
    """What RUN_DIR/train.yaml records: the config as run, the model section as built (kind, the whole shape,
    the vocabulary-derived fields; late fusion: its towers and id ranges). It loads back as a config."""
    out = cfg.to_dict()
    for key in ("manifest", "heldout"):  # as found from where training ran, so the run can be read from anywhere
        if out["data"][key]:
            out["data"][key] = str(Path(out["data"][key]).resolve())
    shards = out["data"]["shards"]
    if shards:
        def absolute(entry: str) -> str:  # pipe: commands and patterns keep their text; paths become absolute
            return entry if entry.startswith("pipe:") else os.path.abspath(entry)
        out["data"]["shards"] = absolute(shards) if isinstance(shards, str) else [absolute(e) for e in shards]
    out["model"] = model_config_dict(model, model_cfg)
    out["tokenizers"] = TOKENIZER_DIR  # relative to RUN_DIR: the run is self-contained
    return out


def with_auto_dropout(section: dict, corpus, streamed: bool) -> dict:
    """The model section with `dropout: auto` resolved by whether training items have a text view
    (omniembed.model.config.auto_dropout). A streamed run's training items are not read before training: its
    held-out items stand for them, and without those it counts as captioned."""
    if section.get("dropout") != "auto":
        return section
    if corpus is None:
        captioned, seen = True, "no held-out items to look at (streamed)"
    else:
        items = range(len(corpus.items)) if streamed else corpus.split("train")
        captioned = any("text" in corpus.items[i].views() for i in items)
        seen = f"{'held-out' if streamed else 'training'} items {'with' if captioned else 'without'} a text view"
    dropout = auto_dropout(captioned)
    log.info("model.dropout auto: %s (%s)", dropout, seen)
    return {**section, "dropout": dropout}


def train(cfg: RunConfig, run_dir: Path, resume: bool = False, stop_at: int | None = None) -> dict:
    """All stages; returns the last evaluation record (rank 0) or {} (other ranks)."""
    started = time.perf_counter()
    torch.set_num_threads(cfg.loop.threads)
    device = D.init_from_env()
    doc_tok, key, corpus, settings = prepare_data(cfg, run_dir)

    section = with_auto_dropout(cfg.model, corpus, streamed=settings is not None)
    model_cfg = config_for_vocabulary(section, doc_tok.vocab, image_tokens=doc_tok.tokens_per_image or 0)
    torch.manual_seed(cfg.seed)
    # model.kind: early (OmniModel) | late (LateFusionModel at OmniModel(model_cfg)'s parameter count)
    model = build_model(cfg.model.get("kind", "early"), model_cfg, doc_tok.vocab).to(device)
    check_recorded(cfg.model, model, model_cfg)
    quantizers = {"image": doc_tok.image.quantizer, "audio": doc_tok.audio.quantizer}
    if cfg.train.code_init == "codebook":  # a resumed run loads its trained table over this
        init_code_embeddings(model, doc_tok.vocab, quantizers, cfg.seed)
    if model_cfg.code_features != "none":  # likewise: the checkpoint holds the table
        set_code_features(model, doc_tok.vocab, quantizers, cfg.seed)

    def rebuild():  # a fresh unsharded model of this shape, on this rank's device
        return build_model(cfg.model.get("kind", "early"), model_cfg, doc_tok.vocab).to(device)
    if D.rank() == 0:
        (run_dir / CONFIG_FILE).write_text(yaml.safe_dump(resolved_config(cfg, model, model_cfg), sort_keys=False))
        doc_tok.vocab.save(run_dir / VOCAB_FILE)
    # steps may be pair-only (lm_every > 1): DDP must then tolerate the LM head going unused
    tcfg = cfg.train
    tcfg.total_steps = cfg.loop.steps
    # streamed steps may lack LM rows or views on a rank: DDP must tolerate parameters without gradients
    tcfg.ddp_find_unused = tcfg.ddp_find_unused or cfg.loop.lm_every != 1 or settings is not None
    trainer = Trainer(model, tcfg)
    ckpt = run_dir / CHECKPOINT_FILE
    state = None
    if resume:
        state = trainer.resume(ckpt)
        if state["extra"].get("corpus") != key:
            raise ConfigError(f"{ckpt}: was trained on another corpus or tokenizers than {run_dir} holds now")
        log.info("resumed from %s at step %d", ckpt, trainer.step)
    if settings is None:
        stream = TrainStream(corpus, cfg.loop, cfg.data, cfg.seed, D.rank(), D.world_size(),
                             cfg.eval.training_label())
        if state is not None:
            stream.load_state_dict(state["data_state"])
        log.info("model: %s, %d layers of width %d, %.2fM parameters; %d train items, %d documents; pairs %s",
                 cfg.model.get("kind", "early"), model_cfg.n_layers, model_cfg.d_model, model.num_params() / 1e6,
                 len(corpus.split("train")), len(corpus.documents), stream.pairs)
    else:
        stream = _stream_batches(cfg, settings, doc_tok, run_dir, None if state is None else state["data_state"])
        log.info("model: %s, %d layers of width %d, %.2fM parameters; streamed; pair losses %s",
                 cfg.model.get("kind", "early"), model_cfg.n_layers, model_cfg.d_model, model.num_params() / 1e6,
                 [f"{stream.views[k]}-{stream.views[l]}" for k, l, _ in stream.pairs])

    writer = None
    if D.rank() == 0:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run_dir / "tb"))
    config_dict = resolved_config(cfg, model, model_cfg)

    def save():
        data_state = stream.state_dict()
        if settings is not None:  # every rank reads its own streams: keep every rank's position
            data_state = {"ranks": D.all_gather_object(data_state), "workers": settings.workers}
        trainer.save(ckpt, data_state=data_state, config=config_dict, extra={"corpus": key})

    last: dict = {}
    end = cfg.loop.steps if stop_at is None else min(stop_at, cfg.loop.steps)
    bar = tqdm(total=end, initial=trainer.step, desc="train", unit="step", disable=D.rank() != 0,
               dynamic_ncols=True)
    rate = Throughput(model, trainer.device, D.world_size(), tcfg.peak_tflops)
    t0, accum, idle = time.perf_counter(), tcfg.grad_accum, 0
    while trainer.step < end:
        step = trainer.step + 1
        # batch indices count micro-batches (the step itself without accumulation); a skipped step's data
        # is not drawn again (the samplers and the stream have moved on)
        micro, pair_name = [], ""
        for j in range(accum):
            pairs, lm, pair_name = stream.next_batches((step - 1) * accum + j + 1)
            micro.append((lm, pairs))
            for batch in (pairs, lm):
                rate.add(*batch_tokens(batch))
        rate.first_batches_in()  # after the first step's data: later steps are the steady rate
        res = trainer.train_step(micro=micro)
        bar.update(0 if res.skipped else 1)
        idle = idle + 1 if res.reason == "no trainable rows" else 0
        if idle >= MAX_IDLE_STEPS:  # a stream of nothing but rejects (or views no weighted pair joins)
            raise ManifestError(f"{idle} steps in a row had no record to learn from (no two rows with a pair of "
                                f"{sorted(cfg.loop.pair_weights)} and no next-token rows): see the skipped "
                                "records in the log")
        if res.skipped:
            continue
        s = res.stats
        bar.set_postfix(loss=f"{res.loss:.3f}", con=f"{s.get('con/loss', float('nan')):.3f}",
                        lm=f"{s.get('lm/ce', float('nan')):.3f}", refresh=False)
        speed = rate.report() if cfg.loop.log_every and res.step % cfg.loop.log_every == 0 else None
        if writer is not None:
            with open(run_dir / STEPS_FILE, "a") as f:
                f.write(json.dumps({"step": res.step, "loss": res.loss, "lr": res.lr, "grad_norm": res.grad_norm,
                                    "pair": pair_name, "seconds": round(time.perf_counter() - t0, 3),
                                    **({} if speed is None else {"tok_s": speed["tokens_per_s"],
                                                                 "mfu": speed["mfu"]}),
                                    **{k: v for k, v in s.items()}}) + "\n")
            writer.add_scalar("train/loss", res.loss, res.step)
            writer.add_scalar("train/lr", res.lr, res.step)
            writer.add_scalar("train/grad_norm", res.grad_norm, res.step)
            for k, v in s.items():
                writer.add_scalar(k.replace("@", "_at_"), v, res.step)
            if speed is not None:
                writer.add_scalar("train/tokens_per_s", speed["tokens_per_s"], res.step)
                if speed["mfu"] is not None:
                    writer.add_scalar("train/mfu", speed["mfu"], res.step)
        if speed is not None:
            log.info("step %d/%d loss %.4f con %.4f lm %.4f temp %.4f lr %.2e grad %.2f (%s) %.0f tok/s MFU %s",
                     res.step, cfg.loop.steps, res.loss, s.get("con/loss", float("nan")),
                     s.get("lm/ce", float("nan")), s.get("temperature", float("nan")), res.lr, res.grad_norm,
                     pair_name, speed["tokens_per_s"], "n/a" if speed["mfu"] is None else f"{speed['mfu']:.2%}")
        if cfg.loop.ckpt_every and res.step % cfg.loop.ckpt_every == 0 and res.step < end:
            save()
        if cfg.loop.eval_every and res.step % cfg.loop.eval_every == 0 and res.step < end:
            last = _eval_and_log(model, corpus, cfg, doc_tok, res.step, run_dir, writer, started, rebuild)
    bar.close()
    if settings is not None:
        stream.reader.close()
    save()
    if D.rank() == 0:
        (run_dir / THROUGHPUT_FILE).write_text(json.dumps(rate.report(), indent=1) + "\n")
    last = _eval_and_log(model, corpus, cfg, doc_tok, trainer.step, run_dir, writer, started, rebuild)
    if writer is not None:
        writer.close()
    log.info("done: step %d in %.1fs, checkpoint %s", trainer.step, time.perf_counter() - t0, ckpt)
    return last


def _stream_batches(cfg: RunConfig, settings, doc_tok, run_dir: Path, saved: dict | None) -> StreamBatches:
    """This rank's StreamBatches, at the saved position where the world size and worker count match."""
    import dataclasses

    settings = dataclasses.replace(settings, rank=D.rank(), world=D.world_size())
    state = None
    if saved is not None:
        ranks = saved.get("ranks")
        if not ranks:
            raise ConfigError("the checkpoint holds an in-memory corpus position, this run streams: resume "
                              "with the data settings it was trained with")
        if len(ranks) == settings.world and saved.get("workers") == settings.workers:
            state = ranks[settings.rank]["stream"]
        else:
            state = restart_state([r["stream"] for r in ranks], settings.workers)
            log.warning("resuming a stream saved with %d rank(s) x %d loader worker(s) on %d x %d: positions do "
                        "not carry over, so epoch %d restarts from its start (its records already trained on "
                        "are read again, none is skipped)", len(ranks), saved.get("workers"), settings.world,
                        settings.workers, state["positions"][0][0])
    from omniembed.train.corpus import corpus_specials

    specials = corpus_specials(doc_tok.vocab)
    trace = None
    if cfg.data.record_ids:
        path = run_dir / f"stream-ids-rank{settings.rank}.jsonl"

        def trace(step, elements):
            with open(path, "a") as f:
                f.write(json.dumps({"step": step, "ids": [e.get("id") for e in elements],
                                    "epochs": [e["epoch"] for e in elements],
                                    "kinds": [e["kind"] for e in elements]}) + "\n")
    return StreamBatches(StreamReader(settings, state), specials, cfg.loop, cfg.data, cfg.seed, settings.rank,
                         settings.world, trace)


def _eval_and_log(model, corpus, cfg, doc_tok, step, run_dir, writer, started, rebuild=None) -> dict:
    record: dict = {}
    if corpus is None:  # a streamed run without data.heldout
        return record
    if D.is_sharded(model):
        # FSDP: rank 0 evaluates a whole copy (every rank joins the gather), so evaluation needs no collective
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if D.rank() == 0:
            model = rebuild()
            model.load_state_dict(full)
    if D.rank() == 0:
        record = evaluation_record(model, corpus, cfg, doc_tok, step)
        record["wall_s"] = round(time.perf_counter() - started, 1)  # this process, all stages so far
        write_eval(run_dir, record, writer)
        log.info("eval step %d (%.1fs): %s", step, record.get("eval_s", 0.0), headline(record))
    D.barrier()
    return record
