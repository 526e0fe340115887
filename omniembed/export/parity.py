"""The check every export ends with: the bundle through ONNX Runtime against the torch model it came from."""

from __future__ import annotations

import numpy as np

from omniembed.model.embedder import TorchEmbedder
from omniembed.tokenization.document import AudioSegment, DocumentTokenizer, ImageSegment, TextSegment, VideoSegment

PARITY_MIN_COSINE = 0.999
MIN_ID_AGREEMENT = 0.95  # codes may flip at float-rounding near-ties of the VQ argmin (see check_parity)
PARITY_FILE = "parity.json"


def probe_documents(tcfg, seed: int = 0) -> dict[str, list[list]]:
    """Generated inputs of every modality (and interleaved) for the post-export check: no dataset needed."""
    rng = np.random.default_rng(seed)
    rate = tcfg.sample_rate

    def image(h, w):
        return ImageSegment(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))

    def tone(seconds, hz):
        t = np.arange(int(seconds * rate)) / rate
        return (0.3 * np.sin(2 * np.pi * hz * t) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)

    frames = rng.integers(0, 256, (4, 24, 32, 3), dtype=np.uint8)
    return {
        "text": [[TextSegment("a small red circle moves left")], [TextSegment("the blue square")]],
        "image": [[image(40, 40)], [image(23, 57)]],
        "audio": [[AudioSegment(tone(0.5, 440.0), rate)], [AudioSegment(tone(1.3, 660.0), rate)]],
        "video": [[VideoSegment(frames, np.array([0.0, 0.5, 1.0, 1.5]), tone(1.0, 300.0), rate)]],
        "interleaved": [[TextSegment("look: "), image(32, 32), TextSegment(" and listen "),
                         AudioSegment(tone(0.4, 500.0), rate)]],
    }


def check_parity(bundle_dir, model, tokenizers, vocab, max_tokens: int) -> dict[str, dict[str, float]]:
    """ONNX Runtime vs torch on `probe_documents`, per modality:
    - trunk_cosine: lowest cosine when both embed the same ids (the trunk + head graph alone);
    - id_agreement: share of ids equal between the runtime's tokenization and torch's (encoder graphs);
    - cosine: lowest cosine end to end, from segments to vectors.
    A VQ code whose two nearest codebook entries are within float rounding of each other can flip between
    the two runtimes; the agreement figure shows how often, the trunk figure is exact either way."""
    from omniembed.runtime import Embedder

    emb = Embedder.load(bundle_dir, providers=["CPUExecutionProvider"], threads=1, verify=False)
    doc = DocumentTokenizer(vocab, tokenizers.text, tokenizers.image, tokenizers.audio,
                            video_fps=tokenizers.config.video_fps)
    reference = TorchEmbedder(model, doc, max_tokens=max_tokens, modalities=tokenizers.modalities)
    report: dict[str, dict[str, float]] = {"trunk_cosine": {}, "id_agreement": {}, "cosine": {}}
    trained = set(tokenizers.modalities)
    needs = {"interleaved": {"text", "image", "audio"}}
    for modality, docs in probe_documents(tokenizers.config).items():
        if not needs.get(modality, {modality}) <= trained:
            continue  # the runtime refuses what the tokenizers never learned; nothing to compare
        torch_ids = [reference.token_ids(d, i) for i, d in enumerate(docs)]
        ref = reference.embed_ids(torch_ids)
        ort_ids = emb.tokenize(docs)
        report["trunk_cosine"][modality] = float(np.min(np.sum(ref * emb.embed_ids(torch_ids), axis=1)))
        report["id_agreement"][modality] = id_agreement(torch_ids, ort_ids)
        report["cosine"][modality] = float(np.min(np.sum(ref * emb.embed_ids(ort_ids), axis=1)))
    return report


def id_agreement(a: list[list[int]], b: list[list[int]]) -> float:
    """Share of positions with equal ids over pairs of sequences; a pair of different lengths counts as 0."""
    same = sum(int(np.sum(np.asarray(x) == np.asarray(y))) if len(x) == len(y) else 0 for x, y in zip(a, b))
    return same / max(1, sum(len(x) for x in a))
