"""A tokenizer directory: save -> load gives the same tokenizers; broken directories fail clearly."""

import shutil

import pytest
import torch

from omniembed.errors import ConfigError
from omniembed.media import decode_audio, decode_image
from omniembed.tokenization.store import AUDIO_FILE, IMAGE_FILE, load_tokenizers, save_tokenizers

torch.set_num_threads(1)


def _media(synth_world, n=6):
    items = [r for r in synth_world.items if "image" in getattr(r, "media", {})][:n]
    images = [decode_image(r.media["image"].read_bytes()) for r in items]
    waves = [decode_audio(r.media["audio"].read_bytes()) for r in items]
    return images, waves


def test_loaded_tokenizers_give_identical_codes_and_text_ids(tiny_tokenizer_run, synth_world, tmp_path):
    _, out, report = tiny_tokenizer_run
    first = load_tokenizers(out)
    again = save_tokenizers(tmp_path / "copy", out / "tokenizer.json", first.image, first.audio, first.config, report)
    second = load_tokenizers(again)
    images, waves = _media(synth_world)
    with torch.no_grad():
        assert torch.equal(first.image.encode_pixels(images), second.image.encode_pixels(images))
        for w in waves:
            a = first.audio.encode_one(torch.from_numpy(w))
            assert torch.equal(a, second.audio.encode_one(torch.from_numpy(w)))
            assert a.shape == (first.audio.num_tokens(w.size),)
    assert torch.equal(first.audio.mel_mean, second.audio.mel_mean)  # the learned normaliser travels too
    assert first.audio.mel_mean.abs().sum() > 0
    caption = synth_world.items[0].texts[0]
    assert first.text.encode(caption) == second.text.encode(caption)
    assert second.text.decode(second.text.encode(caption)) == caption
    assert second.config == first.config
    assert second.report == report


def test_loaded_models_are_in_eval_mode_so_encoding_does_not_move_the_codebook(tiny_tokenizer_run, synth_world):
    toks = load_tokenizers(tiny_tokenizer_run[1])
    assert not toks.image.training and not toks.audio.training
    before = toks.image.quantizer.codebook.clone()
    images, _ = _media(synth_world, 3)
    codes = toks.image.encode_pixels(images)
    assert torch.equal(toks.image.quantizer.codebook, before)
    assert torch.equal(toks.image.encode_pixels(images), codes)


def test_loading_a_directory_without_the_image_model_names_the_missing_file(tiny_tokenizer_run, tmp_path):
    broken = shutil.copytree(tiny_tokenizer_run[1], tmp_path / "broken")
    (broken / IMAGE_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=IMAGE_FILE):
        load_tokenizers(broken)


def test_loading_an_audio_checkpoint_in_the_image_slot_is_rejected(tiny_tokenizer_run, tmp_path):
    swapped = shutil.copytree(tiny_tokenizer_run[1], tmp_path / "swapped")
    shutil.copyfile(swapped / AUDIO_FILE, swapped / IMAGE_FILE)
    with pytest.raises(ConfigError, match="not an omniembed image tokenizer"):
        load_tokenizers(swapped)


def test_loading_a_path_that_is_not_a_directory_fails_with_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_tokenizers(tmp_path / "nowhere")
