"""`Embedder`: a bundle loaded into ONNX Runtime; inputs of any modality in, Matryoshka vectors out.

    emb = Embedder.load("bundle/")                      # CUDA/TensorRT when present, else CPU
    vecs = emb.embed(["a red circle", Path("dog.png"), open("bark.wav", "rb").read(),
                      ["a clip of", {"video": "clip.mp4"}]], dim=64)   # (4, 64) float32, unit rows

Ids are built by omniembed.tokenization.document.DocumentTokenizer (the torch path's own code) with ONNX
image/audio encoders plugged in, so a bundle embeds exactly the sequences the trained model saw.
No torch anywhere on this path.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from omniembed.errors import ConfigError, ManifestError
from omniembed.runtime.bundle import VARIANTS, bundle_file, read_manifest
from omniembed.runtime.encoders import OnnxAudioTokenizer, OnnxImageTokenizer
from omniembed.runtime.spectrum import host_power_spectrum
from omniembed.runtime.media_batch import encode_media_together
from omniembed.media.framing import wav_layout
from omniembed.media.pool import DecodePool
from omniembed.tokenization.inputs import has_media
from omniembed.tokenization.windows import (Decoded, Encoded, Windowing, decode_inputs, decode_whole, encode_decoded,
                                            pooled)
from omniembed.runtime.session import make_session, resolve_providers
from omniembed.tokenization.document import DocumentTokenizer
from omniembed.tokenization.text import TextTokenizer
from omniembed.tokenization.vocab import Vocabulary

GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")
log = logging.getLogger("omniembed.runtime")


class Embedder:
    def __init__(self, root: Path, manifest: dict[str, Any], providers: list[str], threads: int | None,
                 variant: str, inter_threads: int | None = None, spin: bool = True,
                 max_audio_seconds: float | None = None, max_video_seconds: float | None = None,
                 decode_workers: int | None = None):
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
        power_graph = graphs.get("audio_power_encoder")
        self.audio = OnnxAudioTokenizer(session(graphs["audio_encoder"]), sample_rate=tok["sample_rate"],
                                        codebook_size=tok["audio_codebook"], n_fft=tok["n_fft"],
                                        samples_per_token=tok["samples_per_token"],
                                        power_session=session(power_graph) if power_graph else None,
                                        frontend=host_power_spectrum(tok, threads) if power_graph else None)
        self.trunk = session(graphs["trunk"][variant])
        self.sample_rate, self.video_fps = int(tok["sample_rate"]), float(tok["video_fps"])
        self.modalities: tuple[str, ...] = tuple(manifest.get("modalities", ("text", "image", "audio", "video")))
        # long audio and video: embedded window by window and pooled (a bundle without windows cuts their ids)
        self.windowing = (Windowing.from_dict(manifest["windows"], max_audio_seconds=max_audio_seconds,
                                              max_video_seconds=max_video_seconds)
                          if manifest.get("windows") else None)
        self.document = DocumentTokenizer(self.vocab, text, self.image, self.audio, video_fps=self.video_fps)
        self.decode_pool = DecodePool(decode_workers)

    @classmethod
    def load(cls, bundle_dir: str | os.PathLike, providers: Sequence[str] | None = None, threads: int | None = None,
             *, variant: str | None = None, inter_threads: int | None = None, spin: bool = True,
             verify: bool = True, max_audio_seconds: float | None = None,
             max_video_seconds: float | None = None, decode_workers: int | None = None) -> "Embedder":
        """Load BUNDLE_DIR (checksums verified unless verify=False).

        providers: ONNX Runtime execution providers in preference order (default: TensorRT, CUDA when this
        onnxruntime has them, then CPU). threads / inter_threads: intra-op and inter-op thread counts (default:
        onnxruntime's, one per core). variant: trunk graph "fp32", "int8" (CPU) or "fp16" (GPU); default fp16
        on a GPU provider when the bundle has it, else fp32. spin=False: idle threads sleep rather than
        busy-wait (better on hosts shared with other busy processes). max_audio_seconds / max_video_seconds:
        the longest clip embedded (default: omniembed.media's limits); longer ones are refused by name.
        decode_workers: processes that decode batches of two or more media inputs (default one per CPU, up
        to 8; 0 or 1: decode in this process).
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
        return cls(root, manifest, providers, threads, variant, inter_threads, spin, max_audio_seconds,
                   max_video_seconds, decode_workers)

    # ---- ids ------------------------------------------------------------------------------------------
    def encode(self, inputs: Iterable[Any]) -> list[Encoded]:
        """Each input's id sequences: one, or one per window of long audio or video (with their times), each
        `<bos> body <eos> <embed>` cut to max_tokens (`Encoded.cut` says how many ids were dropped)."""
        return self.encode_decoded(self.decode(inputs))

    def decode(self, inputs: Iterable[Any]) -> list[Decoded]:
        """The decoding half of encode: media decoded into documents (windows of long media). A batch of two
        or more media inputs is decoded by the worker processes of `decode_pool`, except WAVs already at the
        model's rate in one channel (decoded_faster_here); long media cut into windows are streamed here, where
        the encoders tokenize each window as it comes."""
        inputs = list(inputs)
        media = [i for i, x in enumerate(inputs) if has_media(x) and not decoded_faster_here(x, self.sample_rate)]
        if not self.decode_pool.worth(len(media)):
            return self._decode_here(inputs)
        job = functools.partial(decode_whole, windowing=self.windowing, sample_rate=self.sample_rate,
                                video_fps=self.video_fps, modalities=self.modalities,
                                square=(self.image.image_size, self.image.image_resize))
        out: list[Decoded | None] = [None] * len(inputs)
        for i, got in zip(media, self.decode_pool.map(job, [(i, inputs[i]) for i in media])):
            out[i] = got
        for i, got in enumerate(out):
            if got is None:  # text, or long media
                out[i] = self._decode_here([inputs[i]], first_index=i)[0]
        return out

    def _decode_here(self, inputs: list, first_index: int = 0) -> list[Decoded]:
        return decode_inputs(inputs, self.windowing, self.document, max_tokens=self.max_tokens,
                             sample_rate=self.sample_rate, video_fps=self.video_fps, modalities=self.modalities,
                             first_index=first_index, image_side=self.image.image_size)

    def close(self) -> None:
        """Stop the decoding workers (they also stop with this process)."""
        self.decode_pool.close()

    def encode_decoded(self, decoded: list[Decoded]) -> list[Encoded]:
        """The tokenizing half of encode, the batch's images, frames and waves through the encoders together."""
        return encode_decoded(decoded, self.document, max_tokens=self.max_tokens,
                              prepare=self._encode_media_together)

    def tokenize(self, inputs: Iterable[Any]) -> list[list[int]]:
        """The one id sequence of each input (inputs cut into windows have several: use encode)."""
        encoded = self.encode(inputs)
        for i, e in enumerate(encoded):
            if len(e.ids) != 1:
                raise ValueError(f"input {i} is embedded as {len(e.ids)} windows: use encode() for its sequences")
        return [e.ids[0] for e in encoded]

    def _encode_media_together(self, docs: list[list]) -> list[list]:
        """Every image, frame and wave of the batch through the encoders in as few calls as possible
        (omniembed.runtime.media_batch); the DocumentTokenizer then reads their codes."""
        return encode_media_together(docs, self.image, self.audio, self.video_fps)

    # ---- vectors --------------------------------------------------------------------------------------
    def embed(self, inputs: Any, dim: int | None = None, batch_size: int = 32) -> np.ndarray:
        """(N, dim) float32, unit rows, for N inputs (a list; a single non-list input counts as one).
        dim: any prefix length 1..full (the trained Matryoshka dims are in `.dims`); default full."""
        return self.embed_decoded(self.decode(_as_list(inputs)), dim, batch_size)

    def embed_decoded(self, decoded: list[Decoded], dim: int | None = None, batch_size: int = 32) -> np.ndarray:
        """embed() of inputs already decoded (decode()): the half a server runs in its batching thread."""
        dim = self._check_dim(dim)
        encoded = self.encode_decoded(decoded)
        _report_cuts(encoded, self.max_tokens)
        full = self.embed_ids([ids for e in encoded for ids in e.ids], batch_size=batch_size)  # unit rows
        if len(full) == len(encoded) and dim == self.dim:  # no windows to pool, no prefix to cut
            return full
        return prefix(pooled(encoded, full), dim)

    def embed_windows(self, inputs: Any, dim: int | None = None, batch_size: int = 32,
                      ) -> list[tuple[np.ndarray, list[tuple[float, float]] | None]]:
        """Per input, (its windows' vectors (W, dim), their (start, end) seconds), or (its one vector (1, dim),
        None) when it is not cut into windows."""
        return self.embed_windows_decoded(self.decode(_as_list(inputs)), dim, batch_size)

    def embed_windows_decoded(self, decoded: list[Decoded], dim: int | None = None, batch_size: int = 32,
                              ) -> list[tuple[np.ndarray, list[tuple[float, float]] | None]]:
        dim = self._check_dim(dim)
        encoded = self.encode_decoded(decoded)
        _report_cuts(encoded, self.max_tokens)
        full = self.embed_ids([ids for e in encoded for ids in e.ids], dim=dim, batch_size=batch_size)
        out, row = [], 0
        for e in encoded:
            out.append((full[row:row + len(e.ids)], e.spans))
            row += len(e.ids)
        return out

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


# A WAV at the model's rate, one channel, decodes here in about the time its samples take to come back from a
# worker through the pipe (16 two-second clips: 3.2 ms here, 5 ms through two workers; bench/results/
# embed_speedup.md): those stay in this process. Others (resampled, compressed, video, images) go to the pool.
HERE_WAV_BYTES = 4 << 20


def decoded_faster_here(x: Any, sample_rate: int) -> bool:
    """Whether an input is encoded bytes of a mono PCM/float WAV at `sample_rate`, of at most HERE_WAV_BYTES."""
    if not isinstance(x, (bytes, bytearray, memoryview)) or len(x) > HERE_WAV_BYTES:
        return False
    layout = wav_layout(bytes(x[:256]))
    return layout is not None and layout[0] in (1, 3) and layout[1] == 1 and layout[2] == sample_rate


def _as_list(inputs: Any) -> list:
    if isinstance(inputs, (str, bytes, bytearray, memoryview, os.PathLike, dict, np.ndarray)) or not isinstance(
            inputs, Iterable):
        return [inputs]
    return list(inputs)


def _report_cuts(encoded: list[Encoded], max_tokens: int) -> None:
    cut = [(i, e.cut) for i, e in enumerate(encoded) if e.cut]
    if cut:
        log.warning("%d inputs were cut to the trunk's %d ids (input %d lost %d ids at its end)", len(cut),
                    max_tokens, *cut[0])


def prefix(vectors: np.ndarray, dim: int) -> np.ndarray:
    """Matryoshka: the first `dim` components, re-normalised to unit length. (N, D) -> (N, dim)."""
    v = np.ascontiguousarray(vectors[:, :dim], dtype=np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", v, v))[:, None]  # linalg.norm's checks cost more than this on few rows
    return v / np.maximum(norms, 1e-12)
