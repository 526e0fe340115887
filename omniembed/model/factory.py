"""One factory for the models a training config names: `model.kind` early (the trunk) or late (the
late-fusion baseline of bench/fusion.py), and the round trip through a run's train.yaml."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn as nn

from omniembed.errors import ConfigError
from omniembed.model.config import ModelConfig
from omniembed.model.late_fusion import LateFusionModel, match_tower_config, vocabulary_starts
from omniembed.model.trunk import OmniModel

MODEL_KINDS = ("early", "late")


def build_model(kind: str, cfg: ModelConfig, vocab=None, starts: Sequence[int] | None = None) -> nn.Module:
    """`model.kind` of a training config: "early" -> OmniModel(cfg); "late" -> a LateFusionModel with
    OmniModel(cfg)'s parameter count, routed by the Vocabulary's id ranges (or explicit starts)."""
    if kind == "early":
        return OmniModel(cfg)
    if kind != "late":
        raise ConfigError(f"model.kind={kind!r}: must be one of {MODEL_KINDS}")
    if cfg.code_features != "none":
        raise ConfigError(f"model.code_features={cfg.code_features} is for the early-fusion trunk: late fusion's "
                          "towers embed media codes by their own rows; set model.code_features=none with "
                          "model.kind=late")
    if cfg.image_dropout:
        raise ConfigError(f"model.image_dropout={cfg.image_dropout} is for the early-fusion trunk, which tells image "
                          "codes by their ids; set model.image_dropout=0 with model.kind=late")
    if starts is None:
        if vocab is None:
            raise ConfigError("model.kind='late' needs the Vocabulary (its id ranges route tokens to towers)")
        starts = vocabulary_starts(vocab)
    return LateFusionModel(match_tower_config(cfg, starts), starts)


def model_config_dict(model: nn.Module, configured: ModelConfig | None = None) -> dict:
    """The model part of a run's train.yaml for either kind: the configured shape with its vocabulary fields,
    and for late fusion the id ranges and tower shape it was built with (`configured`: the trunk config it was
    matched to; default its tower config). model_from_dict reads it back; the config loader accepts it too."""
    if isinstance(model, LateFusionModel):
        trunk = configured if configured is not None else model.cfg
        return {"kind": "late", **trunk.to_dict(), "starts": list(model.starts), "towers": model.cfg.to_dict()}
    return {"kind": "early", **model.cfg.to_dict()}


def model_from_dict(data: dict, source: str = "model config") -> nn.Module:
    """Rebuild an untrained model of the kind and shape a run's train.yaml records (keys other than
    ModelConfig's: kind, and starts and towers for late fusion)."""
    data = dict(data)
    kind = data.pop("kind", "early")
    starts, towers = data.pop("starts", None), data.pop("towers", None)
    cfg = ModelConfig.from_dict(data, source=source)
    if kind == "early":
        return OmniModel(cfg)
    if kind != "late" or starts is None or towers is None:
        raise ConfigError(f"{source}: model kind={kind!r} (late needs starts and towers): kinds are {MODEL_KINDS}")
    return LateFusionModel(ModelConfig.from_dict(towers, source=f"{source} (towers)"), starts)


def check_recorded(section: dict, model: nn.Module, configured: ModelConfig, source: str = "config") -> None:
    """A config's late-fusion records (starts, towers: a train.yaml reused) must be what was built again."""
    built = model_config_dict(model, configured)
    for key in ("starts", "towers"):
        if key in section and section[key] != built.get(key):
            raise ConfigError(f"{source}: model.{key}={section[key]!r} but building this config gives "
                              f"{built.get(key)!r}; remove model.{key} from the config")
