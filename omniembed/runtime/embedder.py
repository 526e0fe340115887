"""`Embedder`: a bundle loaded into ONNX Runtime; inputs of any modality in, Matryoshka vectors out.

    emb = Embedder.load("bundle/")                      # CUDA/TensorRT when present, else CPU
    vecs = emb.embed(["a red circle", Path("dog.png"), open("bark.wav", "rb").read(),
                      ["a clip of", {"video": "clip.mp4"}]], dim=64)   # (4, 64) float32, unit rows

Ids are built by omniembed.tokenization.document.DocumentTokenizer (the torch path's own code) with ONNX
image/audio encoders plugged in, so a bundle embeds exactly the sequences the trained model saw.
No torch anywhere on this path.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from omniembed.errors import ConfigError, ManifestError
from omniembed.runtime.bundle import VARIANTS, bundle_file, read_manifest
from omniembed.runtime.encoders import OnnxAudioTokenizer, OnnxImageTokenizer
from omniembed.tokenization.inputs import check_modalities, to_segments
from omniembed.runtime.session import make_session, resolve_providers
from omniembed.tokenization.document import DocumentTokenizer, ImageCodes, ImageSegment
from omniembed.tokenization.text import TextTokenizer
from omniembed.tokenization.vocab import Vocabulary

GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")


class Embedder:
    def __init__(self, root: Path, manifest: dict[str, Any], providers: list[str], threads: int | None,
                 variant: str, inter_threads: int | None = None, spin: bool = True):
        self.root, self.manifest, self.providers, self.variant = root, manifest, providers, variant
        graphs, tok, model = manifest["graphs"], manifest["tokenizers"], manifest["model"]
        self.dims: tuple[int, ...] = tuple(int(d) for d in model["embed_dims"])
        self.dim = max(self.dims)
        self.max_tokens = int(manifest["document"]["max_tokens"])
        self.pad_id = int(model["pad_id"])

        def session(name: str):
            return make_session(bundle_file(root, manifest, name), providers, threads, inter_threads, spin)

        self.vocab = Vocabulary.load(bundle_file(root, manifest, "vocab.json"))
        text = TextTokenizer.load(bundle_file(root, manifest, "tokenizer.json"))
        self.image = OnnxImageTokenizer(session(graphs["image_encoder"]), image_size=tok["image_size"],
                                        image_resize=tok["image_resize"], codebook_size=tok["image_codebook"],
                                        tokens_per_image=tok["tokens_per_image"])
        self.audio = OnnxAudioTokenizer(session(graphs["audio_encoder"]), sample_rate=tok["sample_rate"],
                                        codebook_size=tok["audio_codebook"], n_fft=tok["n_fft"],
                                        samples_per_token=tok["samples_per_token"])
        self.trunk = session(graphs["trunk"][variant])
        self.sample_rate, self.video_fps = int(tok["sample_rate"]), float(tok["video_fps"])
        self.modalities: tuple[str, ...] = tuple(manifest.get("modalities", ("text", "image", "audio", "video")))
        self.document = DocumentTokenizer(self.vocab, text, self.image, self.audio, video_fps=self.video_fps)

    @classmethod
    def load(cls, bundle_dir: str | os.PathLike, providers: Sequence[str] | None = None, threads: int | None = None,
             *, variant: str | None = None, inter_threads: int | None = None, spin: bool = True,
             verify: bool = True) -> "Embedder":
        """Load BUNDLE_DIR (checksums verified unless verify=False).

        providers: ONNX Runtime execution providers in preference order (default: TensorRT, CUDA when this
        onnxruntime has them, then CPU). threads / inter_threads: intra-op and inter-op thread counts (default:
        onnxruntime's, one per core). variant: trunk graph "fp32", "int8" (CPU) or "fp16" (GPU); default fp16
        on a GPU provider when the bundle has it, else fp32. spin=False: idle threads sleep rather than
        busy-wait (better on hosts shared with other busy processes).
        """
        root = Path(bundle_dir)
        manifest = read_manifest(root, verify=verify)
        providers = resolve_providers(providers)
        trunks = manifest["graphs"]["trunk"]
        if variant is None:
            on_gpu = providers[0] in GPU_PROVIDERS
            variant = "fp16" if on_gpu and "fp16" in trunks else "fp32"
        if variant not in VARIANTS:
            raise ConfigError(f"variant={variant!r}: must be one of {VARIANTS}")
        if variant not in trunks:
            raise ManifestError(f"{root}: the bundle has no {variant} trunk (it has {sorted(trunks)}); "
                                f"export with --{variant}" if variant != "fp32" else f"{root}: no fp32 trunk")
        return cls(root, manifest, providers, threads, variant, inter_threads, spin)

    # ---- ids ------------------------------------------------------------------------------------------
    def tokenize(self, inputs: Iterable[Any]) -> list[list[int]]:
        """The id sequence the trunk reads for each input: `<bos> body <eos> <embed>`, cut to max_tokens."""
        docs = [to_segments(item, sample_rate=self.sample_rate, video_fps=self.video_fps, index=i)
                for i, item in enumerate(inputs)]
        for i, segments in enumerate(docs):
            check_modalities(segments, self.modalities, f"input {i}")
        docs = self._encode_images_together(docs)
        return [self.document.encode_for_embedding(segs, self.max_tokens) for segs in docs]

    def _encode_images_together(self, docs: list[list]) -> list[list]:
        """Every still image of the batch through the image encoder in one call; the DocumentTokenizer then
        reads their codes (ImageCodes give the same ids as the ImageSegment they came from)."""
        where = [(d, s) for d, segs in enumerate(docs) for s, seg in enumerate(segs) if isinstance(seg, ImageSegment)]
        if not where:
            return docs
        codes = self.image.encode(self.image.preprocess([docs[d][s].pixels for d, s in where]))  # (K, N)
        docs = [list(segs) for segs in docs]
        for (d, s), c in zip(where, codes):
            docs[d][s] = ImageCodes(c)
        return docs

    # ---- vectors --------------------------------------------------------------------------------------
    def embed(self, inputs: Any, dim: int | None = None, batch_size: int = 32) -> np.ndarray:
        """(N, dim) float32, unit rows, for N inputs (a list; a single non-list input counts as one).
        dim: any prefix length 1..full (the trained Matryoshka dims are in `.dims`); default full."""
        if isinstance(inputs, (str, bytes, bytearray, memoryview, os.PathLike, dict, np.ndarray)) or not isinstance(
                inputs, Iterable):
            inputs = [inputs]
        return self.embed_ids(self.tokenize(list(inputs)), dim=dim, batch_size=batch_size)

    def embed_ids(self, sequences: Sequence[Sequence[int]], dim: int | None = None,
                  batch_size: int = 32) -> np.ndarray:
        """Vectors for ready-made id sequences, batched by similar length so little padding is computed."""
        dim = self._check_dim(dim)
        if batch_size < 1:
            raise ConfigError(f"batch_size={batch_size}: must be >= 1")
        out = np.zeros((len(sequences), self.dim), dtype=np.float32)
        lengths = np.array([len(s) for s in sequences])
        for i, n in enumerate(lengths):
            if not 0 < n <= self.max_tokens:
                raise ValueError(f"sequence {i} has {n} ids; the trunk takes 1..{self.max_tokens}")
        order = np.argsort(lengths, kind="stable")
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            width = int(lengths[idx].max())
            ids = np.full((len(idx), width), self.pad_id, dtype=np.int64)  # (B, T), right-padded
            mask = np.zeros((len(idx), width), dtype=bool)
            for row, i in enumerate(idx):
                ids[row, :lengths[i]] = sequences[i]
                mask[row, :lengths[i]] = True
            out[idx] = self.trunk.run(None, {"ids": ids, "mask": mask})[0]
        return prefix(out, dim)

    def _check_dim(self, dim: int | None) -> int:
        if dim is None:
            return self.dim
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or not 0 < dim <= self.dim:
            raise ConfigError(f"dim={dim!r}: must be an int in 1..{self.dim} (trained prefixes: {self.dims})")
        return int(dim)


def prefix(vectors: np.ndarray, dim: int) -> np.ndarray:
    """Matryoshka: the first `dim` components, re-normalised to unit length. (N, D) -> (N, dim)."""
    v = np.ascontiguousarray(vectors[:, :dim], dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.maximum(norms, 1e-12)
