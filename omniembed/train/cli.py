"""`python -m omniembed.train --config NAME_OR_YAML [key=value ...] [--out RUN_DIR] [--resume] [--stop-at STEP]`
(also `omniembed train ...`; under `torchrun` the same command runs DDP).

The stages, in order: data, tokenizers and the tokenized corpus (omniembed.train.stages), then the joint
loop (omniembed.train.loop). RUN_DIR's layout is in omniembed.train.rundir. `--resume` continues from
RUN_DIR/checkpoint.pt exactly (model, optimizer, schedule, RNG, data position); `--stop-at S` checkpoints
after step S and exits, for time-sliced jobs. With `loop.processes: N` on CPU the command prepares the data,
then runs itself as N DDP ranks under torchrun.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from pathlib import Path

import torch

from omniembed import configs
from omniembed.errors import ConfigError, ManifestError
from omniembed.logs import attach_handlers
from omniembed.train import distributed as D
from omniembed.train.config import RunConfig, from_dict, load_dict
from omniembed.train.loop import train
from omniembed.train.rundir import CHECKPOINT_FILE, CONFIG_FILE, LOG_FILE
from omniembed.train.stages import prepare_data
from omniembed.train.trainer import TrainingDiverged

log = logging.getLogger("omniembed.train")


def _setup_logging(run_dir: Path) -> list[logging.Handler]:
    if D.rank() != 0:
        log.setLevel(logging.WARNING)
        return []
    handlers = attach_handlers(log, run_dir / LOG_FILE)
    log.propagate = False
    return handlers



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="omniembed train", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="a packaged config (tiny, small, base) or a YAML path; "
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
                raise ConfigError(f"--config is required (one of {', '.join(configs.names())}, or a YAML path)")
            config_path = run_dir / CONFIG_FILE
        data = load_dict(config_path, args.overrides)
        if args.config is None and isinstance(data.get("tokenizers"), str):  # the run's own train.yaml
            data["tokenizers"] = str(run_dir / data["tokenizers"])
        cfg = from_dict(data, source=str(configs.resolve(config_path)))
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


def _launch_ranks(cfg: RunConfig, run_dir: Path, argv: list[str]) -> int:
    """loop.processes > 1 on CPU: stages 0-2 here (their own worker processes fill the CPUs), then this same
    command as that many DDP ranks under torchrun, each on loop.threads threads; they find the data ready.
    Small matrices keep 2 cores busier as 2 one-thread ranks than as one 2-thread process (see small.yaml)."""
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
