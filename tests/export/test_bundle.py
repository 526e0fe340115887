"""What `omniembed export` writes: the manifest and its checksums, the three graphs and their inputs, the
variants, and the refusals (damaged or missing files, a target that is not a bundle, a missing run)."""

import json
import shutil

import onnx
import pytest

from omniembed import cli
from omniembed.errors import ConfigError, ManifestError
from omniembed.export import main
from omniembed.runtime import Embedder, read_manifest
from omniembed.runtime.bundle import sha256_file


def graph_ops(path):
    return {n.op_type for n in onnx.load(str(path)).graph.node}


def input_types(path):
    graph = onnx.load(str(path)).graph
    return {i.name: onnx.TensorProto.DataType.Name(i.type.tensor_type.elem_type) for i in graph.input}


def test_manifest_lists_every_file_with_its_sha256_versions_opset_and_dims(tiny_bundle):
    manifest = read_manifest(tiny_bundle)
    on_disk = {p.name for p in tiny_bundle.path.iterdir()} - {"manifest.json"}
    assert set(manifest["files"]) == on_disk
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == sha256_file(tiny_bundle.path / name)
    assert {"torch", "onnx", "onnxruntime", "omniembed"} <= set(manifest["versions"])
    assert manifest["opset"] >= 17
    assert manifest["model"]["embed_dims"] == list(tiny_bundle.model.cfg.embed_dims)
    assert set(manifest["graphs"]["trunk"]) == {"fp32", "int8", "fp16"}
    assert {"tokenizer.json", "vocab.json", "parity.json"} <= on_disk


def test_export_recorded_its_own_torch_check_in_parity_json(tiny_bundle):
    report = json.loads((tiny_bundle.path / "parity.json").read_text())
    assert set(report["trunk_cosine"]) == {"text", "image", "audio", "video", "interleaved"}
    assert min(report["trunk_cosine"].values()) >= 0.999
    assert min(report["id_agreement"].values()) >= 0.95


def test_graphs_take_raw_inputs_pixels_uint8_and_waveforms_with_the_log_mel_inside(tiny_bundle):
    root = tiny_bundle.path
    assert input_types(root / "trunk.onnx") == {"ids": "INT64", "mask": "BOOL"}
    assert input_types(root / "image_encoder.onnx") == {"pixels": "UINT8"}
    assert input_types(root / "audio_encoder.onnx") == {"wave": "FLOAT"}
    audio = onnx.load(str(root / "audio_encoder.onnx")).graph
    pad_modes = {a.s for n in audio.node if n.op_type == "Pad" for a in n.attribute if a.name == "mode"}
    # the centred STFT (reflect padding, DFT as a strided convolution), then log: the front-end is in the graph
    assert b"reflect" in pad_modes and {"Conv", "Log", "ArgMin"} <= graph_ops(root / "audio_encoder.onnx")


def test_int8_trunk_has_integer_matmuls_and_fp16_trunk_half_weights_with_float_io(tiny_bundle):
    root = tiny_bundle.path
    assert "MatMulInteger" in graph_ops(root / "trunk.int8.onnx") or \
        "DynamicQuantizeMatMul" in graph_ops(root / "trunk.int8.onnx")
    half = onnx.load(str(root / "trunk.fp16.onnx"))
    kinds = {onnx.TensorProto.DataType.Name(t.data_type) for t in half.graph.initializer}
    assert "FLOAT16" in kinds
    assert input_types(root / "trunk.fp16.onnx") == {"ids": "INT64", "mask": "BOOL"}
    out = half.graph.output[0].type.tensor_type.elem_type
    assert onnx.TensorProto.DataType.Name(out) == "FLOAT"


def test_a_changed_byte_in_a_graph_fails_loading_naming_the_file(tiny_bundle, tmp_path):
    copy = shutil.copytree(tiny_bundle.path, tmp_path / "bundle")
    data = bytearray((copy / "image_encoder.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "image_encoder.onnx").write_bytes(bytes(data))
    with pytest.raises(ManifestError, match="image_encoder.onnx.*checksum"):
        Embedder.load(copy)


def test_a_missing_file_fails_loading_naming_it(tiny_bundle, tmp_path):
    copy = shutil.copytree(tiny_bundle.path, tmp_path / "bundle")
    (copy / "vocab.json").unlink()
    with pytest.raises(ManifestError, match="vocab.json is missing"):
        Embedder.load(copy)


def test_a_folder_without_a_manifest_is_not_a_bundle(tmp_path):
    with pytest.raises(ManifestError, match="not a bundle"):
        Embedder.load(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "omniembed-bundle", "format_version": 99}))
    with pytest.raises(ManifestError, match="version 99"):
        Embedder.load(tmp_path)


def test_export_refuses_to_replace_a_folder_that_is_not_a_bundle(tiny_bundle, tmp_path):
    from omniembed.export import export_bundle

    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not a bundle"):
        export_bundle(tiny_bundle.model, tiny_bundle.tokenizers, tiny_bundle.vocab, target)
    assert (target / "notes.txt").read_text() == "keep me"


def test_export_command_reports_a_missing_run_directory_with_exit_code_2(tmp_path, capsys):
    assert main([str(tmp_path / "nope"), "--out", str(tmp_path / "b")]) == 2
    assert "not a training run directory" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_omniembed_cli_has_the_export_subcommand(capsys):
    assert cli.main(["--help"]) == 0
    assert "export" in capsys.readouterr().out
