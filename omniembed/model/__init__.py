"""The model: one early-fusion trunk with a next-token head and a Matryoshka embedding head.

    config.py       ModelConfig and how a config's model section becomes one (sized to the vocabulary)
    trunk.py        the decoder-only transformer (RMSNorm, QK-norm, RoPE, SwiGLU) and its two heads
    late_fusion.py  the per-modality-towers baseline of bench/fusion.py, at the trunk's parameter count
    factory.py      build_model(kind, ...) and the round trip through a run's train.yaml
    embedder.py     TorchEmbedder: a trained run behind embed() and caption(), in torch
"""

from omniembed.model.config import ModelConfig, config_for_vocabulary, load_model_config
from omniembed.model.factory import MODEL_KINDS, build_model, check_recorded, model_config_dict, model_from_dict
from omniembed.model.trunk import OmniModel

__all__ = ["MODEL_KINDS", "ModelConfig", "OmniModel", "build_model", "check_recorded", "config_for_vocabulary",
           "load_model_config", "model_config_dict", "model_from_dict"]
