"""Training: `python -m omniembed.train --config small` (the command is omniembed.train.cli).

    config.py       the run config: sections data, tokenizer, model, train, loop (YAML + key=value overrides)
    stages.py       stages 0-2: data, tokenizers, the tokenized corpus
    corpus.py       a manifest tokenized once into id blocks
    batches.py      the training stream: contrastive pair / all-views batches and next-token batches
    sampler.py      the seeded, resumable data position
    losses.py       next-token loss with z-loss, Matryoshka contrastive loss (distributed gather)
    schedule.py     warmup + cosine learning-rate schedule
    trainer.py      one joint optimizer step (autocast, clipping, spike skipping, DDP/FSDP)
    distributed.py  torch.distributed setup and wrapping
    checkpoint.py   atomic checkpoints
    evaluate.py     held-out recall and caption scoring
    loop.py         stage 3, the loop
    rundir.py       the run directory's layout, and load_run to read it back
"""
