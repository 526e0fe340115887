"""The bundle on disk: manifest.json plus the files it lists, each with its sha256.

Layout of BUNDLE_DIR (written by `python -m omniembed.export`):
    manifest.json          format, versions, opsets, dims, tokenizer settings, graph names, sha256 of every file
    trunk.onnx             ids (B, T) int64, mask (B, T) bool -> vectors (B, D) float32, L2-normalised
    trunk.int8.onnx        the same with dynamically quantized INT8 matmuls (CPU), with --int8
    trunk.fp16.onnx        the same with fp16 weights and fp32 inputs/outputs (GPU), with --fp16
    image_encoder.onnx     pixels (B, S, S, 3) uint8, already squared to S -> codes (B, N) int64
    audio_encoder.onnx     wave (B, n) float32 at sample_rate -> codes (B, M) int64, log-mel inside
    audio_power_encoder.onnx  power (B, M * patch, n_fft // 2 + 1) float32 -> codes (B, M) int64: the same
                           after the power spectrum, which the runtime computes with an FFT
                           (omniembed.runtime.spectrum); bundles written before it have only audio_encoder.onnx
    tokenizer.json         the text byte-level BPE
    vocab.json             the unified Vocabulary layout

torch-free: the export writes manifests with these functions and the runtime reads them.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from omniembed.errors import ManifestError

MANIFEST_FILE = "manifest.json"
BUNDLE_FORMAT = "omniembed-bundle"
BUNDLE_VERSION = 1
VARIANTS = ("fp32", "int8", "fp16")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_manifest(bundle_dir: str | os.PathLike, manifest: dict[str, Any]) -> Path:
    """Add `files` (name -> sha256 and size of every other file in the folder) and write manifest.json
    atomically; returns its path. Call it last, once every file of the bundle is in place."""
    root = Path(bundle_dir)
    files = {}
    for path in sorted(root.iterdir()):
        if path.name == MANIFEST_FILE or path.name.startswith(".") or not path.is_file():
            continue
        files[path.name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    out = {"format": BUNDLE_FORMAT, "format_version": BUNDLE_VERSION, **manifest, "files": files}
    tmp = root / (MANIFEST_FILE + ".tmp")
    tmp.write_text(json.dumps(out, indent=1, sort_keys=False) + "\n")
    os.replace(tmp, root / MANIFEST_FILE)
    return root / MANIFEST_FILE


def read_manifest(bundle_dir: str | os.PathLike, *, verify: bool = True) -> dict[str, Any]:
    """manifest.json of a bundle, checked for format; with `verify`, every listed file must exist and match
    its sha256. Raises ManifestError naming the bundle and the file that is missing, altered or unlisted."""
    root = Path(bundle_dir)
    path = root / MANIFEST_FILE
    if not root.is_dir():
        raise ManifestError(f"{root}: no such bundle directory")
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ManifestError(f"{root}: not a bundle (no {MANIFEST_FILE}; write one with omniembed export)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: unreadable manifest ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise ManifestError(f"{path}: not an omniembed bundle manifest (format != {BUNDLE_FORMAT!r})")
    if manifest.get("format_version") != BUNDLE_VERSION:
        raise ManifestError(f"{path}: bundle format version {manifest.get('format_version')!r}; this runtime "
                            f"reads version {BUNDLE_VERSION}: re-export the run")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise ManifestError(f"{path}: lists no files")
    if verify:
        for name, entry in files.items():
            verify_file(root, name, entry)
    return manifest


def verify_file(root: Path, name: str, entry: dict[str, Any]) -> None:
    path = root / name
    if not path.is_file():
        raise ManifestError(f"{root}: bundle file {name} is missing")
    got = sha256_file(path)
    if got != entry.get("sha256"):
        raise ManifestError(f"{root}: bundle file {name} does not match its checksum in {MANIFEST_FILE} "
                            f"(sha256 {got[:12]}..., expected {str(entry.get('sha256'))[:12]}...): the file was "
                            "altered or damaged after export")


def bundle_file(root: Path, manifest: dict[str, Any], name: str) -> Path:
    """Path of a file the manifest lists; a name it does not list is an error (never load unchecked files)."""
    if name not in manifest["files"]:
        raise ManifestError(f"{root}: {MANIFEST_FILE} does not list {name}")
    return root / name
