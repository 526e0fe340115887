"""The training config: sections, dotted key=value overrides, clear errors, and precision=auto."""

import pytest
import torch

from omniembed.errors import ConfigError
from omniembed.model import OmniModel, load_model_config
from omniembed.train.config import load_config
from omniembed.train.trainer import Trainer, TrainConfig, cpu_has_native_bf16

from omniembed import configs


@pytest.mark.parametrize("name", ["tiny", "small", "base"])
def test_every_shipped_config_loads_by_name_from_any_folder_and_by_path(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing of the checkout is reachable relative to here
    by_name = load_config(name)
    by_path = load_config(configs.CONFIG_DIR / f"{name}.yaml")
    assert by_name.loop.steps > 0 and by_name.model["d_model"] > 0
    assert by_name.to_dict() == by_path.to_dict()


def test_an_unknown_config_name_lists_the_packaged_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config("medium")
    assert "medium" in str(info.value) and all(n in str(info.value) for n in ("tiny", "small", "base"))


@pytest.mark.parametrize("name", ["tiny", "small", "base"])
def test_shipped_configs_set_each_value_once_with_no_nested_overrides(name):
    data = configs.load(name)

    def keys(node, path=""):
        for k, v in node.items():
            yield f"{path}{k}"
            if isinstance(v, dict) and k != "pair_weights":
                yield from keys(v, f"{path}{k}.")

    assert not [k for k in keys(data) if k.split(".")[-1] in ("overrides", "size", "config")]
    # the model and tokenizer sections are the whole of their settings: every key is a field of its dataclass
    cfg = load_config(name)
    assert set(data["model"]) <= set(cfg.model) and set(data["tokenizer"]) <= set(cfg.tokenizer.to_dict())
    assert {k: cfg.tokenizer.to_dict()[k] for k in data["tokenizer"]} == data["tokenizer"]


@pytest.mark.parametrize("override, words", [
    ("model.size=tiny", ["size", "d_model"]),
    ("model.kind=medium", ["model.kind", "early", "late"]),
    ("model.pooling=max", ["pooling"]),
    ("tokenizer.image_gird=4", ["image_gird"]),
    ("tokenizer.overrides={image_steps: 3}", ["overrides"]),
    ("train.total_steps=5", ["total_steps", "loop.steps"]),
])
def test_model_tokenizer_and_train_sections_refuse_keys_that_are_not_theirs(override, words):
    with pytest.raises(ConfigError) as info:
        load_config("tiny", [override])
    for w in words:
        assert w in str(info.value)


def test_dotted_overrides_reach_their_section_with_yaml_values():
    cfg = load_config("tiny",
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
        load_config("tiny", [override])
    for w in words:
        assert w in str(info.value)


def test_precision_auto_picks_bf16_only_where_the_hardware_has_it():
    model = OmniModel(load_model_config("tiny", vocab_size=32, pad_id=0, grid_position=False))
    trainer = Trainer(model, TrainConfig(precision="auto"))
    native = torch.cuda.is_available() or cpu_has_native_bf16()
    assert trainer.cfg.precision == ("bf16" if native else "fp32")
