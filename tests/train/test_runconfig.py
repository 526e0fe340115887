"""The training config: sections, dotted key=value overrides, clear errors, and precision=auto."""

import pytest
import torch

from omniembed.errors import ConfigError
from omniembed.model import OmniModel, load_model_config
from omniembed.runconfig import load_config
from omniembed.trainer import Trainer, TrainConfig, cpu_has_native_bf16

from .conftest import REPO


@pytest.mark.parametrize("name", ["tiny", "small", "base"])
def test_every_shipped_config_loads(name):
    cfg = load_config(REPO / "configs" / f"{name}.yaml")
    assert cfg.loop.steps > 0 and cfg.model["size"] == name


def test_dotted_overrides_reach_their_section_with_yaml_values():
    cfg = load_config(REPO / "configs" / "tiny.yaml",
                      ["loop.steps=7", "train.lr=1e-2", "data.manifest=/x/m.jsonl", "model.embed_dims=[8, 16]",
                       "loop.pair_weights={text-image: 2}", "tokenizers=/t"])
    assert cfg.loop.steps == 7 and cfg.train.lr == 0.01 and cfg.data.manifest == "/x/m.jsonl"
    assert cfg.model["embed_dims"] == [8, 16] and cfg.loop.pair_weights == {"text-image": 2}
    assert cfg.tokenizers == "/t"


@pytest.mark.parametrize("override, words", [
    ("loop.stepz=3", ["loop", "stepz", "steps"]),
    ("train.learning_rate=1", ["learning_rate", "lr"]),
    ("colour=1", ["colour", "seed"]),
    ("loop.pair_weights={text-smell: 1}", ["text-smell"]),
    ("loop.steps=0", ["loop.steps"]),
    ("train.precision=fp8", ["fp8"]),
    ("loop.steps", ["key=value"]),
    ("data.workers=0", ["data.workers"]),
    ("loop.processes=0", ["loop.processes"]),
])
def test_bad_keys_and_values_raise_config_errors_naming_them(override, words):
    with pytest.raises(ConfigError) as info:
        load_config(REPO / "configs" / "tiny.yaml", [override])
    for w in words:
        assert w in str(info.value)


def test_precision_auto_picks_bf16_only_where_the_hardware_has_it():
    model = OmniModel(load_model_config("tiny", vocab_size=32, pad_id=0))
    trainer = Trainer(model, TrainConfig(precision="auto"))
    native = torch.cuda.is_available() or cpu_has_native_bf16()
    assert trainer.cfg.precision == ("bf16" if native else "fp32")
