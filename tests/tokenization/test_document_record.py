"""Manifest records -> segments -> ids: real PNG/WAV/MP4 files on disk, decoded by omniembed.media."""

import json

import numpy as np
import pytest
import torch

from omniembed.data.manifest import load_manifest
from omniembed.errors import MediaError
from omniembed.media import SAMPLE_RATE, encode_audio, encode_image, encode_video
from omniembed.tokenization.audio import AudioTokenizer
from omniembed.tokenization.config import TokenizerConfig
from omniembed.tokenization.document import (
    AudioSegment,
    DocumentError,
    DocumentTokenizer,
    ImageSegment,
    TextSegment,
    VideoSegment,
)
from omniembed.tokenization.inputs import from_record
from omniembed.tokenization.image import ImageTokenizer
from omniembed.tokenization.text import TextTokenizer
from omniembed.tokenization.vocab import Vocabulary

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def record_media(tmp_path_factory):
    """A folder with one PNG, one WAV and one MP4 (with sound), all real encoded bytes."""
    root = tmp_path_factory.mktemp("record_media")
    rng = np.random.default_rng(0)
    image = np.zeros((24, 32, 3), np.uint8)
    image[4:20, 8:24] = (220, 30, 30)  # a red square
    (root / "red.png").write_bytes(encode_image(image))
    t = np.arange(SAMPLE_RATE // 2) / SAMPLE_RATE
    (root / "beep.wav").write_bytes(encode_audio((0.4 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), SAMPLE_RATE))
    frames = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)  # 2 s at 4 fps
    t2 = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    track = (0.3 * np.sin(2 * np.pi * 220 * t2)).astype(np.float32)
    (root / "clip.mp4").write_bytes(encode_video(frames, 4.0, "mp4", audio=track, sample_rate=SAMPLE_RATE))
    return root, image


@pytest.fixture(scope="module")
def record_doc_tok():
    torch.manual_seed(0)
    cfg = TokenizerConfig(image_size=16, image_grid=4, image_widths=[8, 8], image_codebook=32, image_code_dim=8,
                          n_mels=16, audio_codebook=24, audio_code_dim=8, audio_width=16)
    text = TextTokenizer.train(["a red square beeps", "a clip of noise"] * 5, vocab_size=280)
    image, audio = ImageTokenizer(cfg).eval(), AudioTokenizer(cfg).eval()
    return DocumentTokenizer(Vocabulary(text.vocab_size, 32, 24), text, image, audio, video_fps=2.0)


def test_item_record_gives_one_encodable_segment_list_per_view(record_media, record_doc_tok):
    root, image = record_media
    record = {"id": "i1", "kind": "item", "views": {"text": ["a red square", "a square, red"], "image": "red.png",
                                                    "audio": "beep.wav", "video": "clip.mp4"}}
    views = from_record(record, base_dir=root, caption=1)
    assert sorted(views) == ["audio", "image", "text", "video"]
    assert views["text"] == [TextSegment("a square, red")]
    (img,) = views["image"]
    assert isinstance(img, ImageSegment) and np.array_equal(img.pixels, image)  # PNG is lossless
    (aud,) = views["audio"]
    assert isinstance(aud, AudioSegment) and aud.sample_rate == SAMPLE_RATE and len(aud.wave) == SAMPLE_RATE // 2
    (vid,) = views["video"]
    assert isinstance(vid, VideoSegment) and len(vid.frames) == 4 and vid.audio is not None
    for name, segments in views.items():
        ids = record_doc_tok.encode(segments)
        assert record_doc_tok.decode(ids)[0].kind == name


def test_document_record_from_a_manifest_file_encodes_in_segment_order(record_media, record_doc_tok):
    root, _ = record_media
    doc = {"id": "d1", "kind": "document", "segments": [
        {"text": "look: "}, {"image": "red.png"}, {"text": " then listen "}, {"audio": "beep.wav"},
        {"video": "clip.mp4"}]}
    (root / "manifest.jsonl").write_text(json.dumps(doc) + "\n")
    (record,) = load_manifest(root / "manifest.jsonl")
    segments = from_record(record)
    assert [s.kind for s in segments] == ["text", "image", "text", "audio", "video"]
    decoded = record_doc_tok.decode(record_doc_tok.encode(segments))
    assert [s.kind for s in decoded] == ["text", "image", "text", "audio", "video"]
    assert decoded[0].text == "look: " and decoded[2].text == " then listen "
    assert np.allclose(decoded[4].times, [0.0, 0.5, 1.0, 1.5])


def test_a_corrupt_media_file_raises_media_error_naming_it(record_media, tmp_path):
    root, _ = record_media
    (tmp_path / "broken.png").write_bytes((root / "red.png").read_bytes()[:40])
    record = {"id": "i2", "kind": "item", "views": {"image": "broken.png"}}
    with pytest.raises(MediaError, match="broken.png"):
        from_record(record, base_dir=tmp_path)


def test_a_raw_dict_record_without_base_dir_is_refused():
    with pytest.raises(DocumentError, match="base_dir"):
        from_record({"id": "x", "kind": "item", "views": {"text": "hi"}})


def test_synthetic_world_records_encode_and_round_trip_through_ids(synth_world, record_doc_tok):
    from omniembed.data.manifest import Document, Item

    docs = [r for r in synth_world.train if isinstance(r, Document)][:4]
    items = [r for r in synth_world.train if isinstance(r, Item)][:3]
    assert docs and items
    for record in docs:
        segments = from_record(record)
        ids = record_doc_tok.encode(segments, embed=True)
        decoded = record_doc_tok.decode(ids, reconstruct=False)
        assert [s.kind for s in decoded] == _merged_kinds(segments)
    for record in items:
        views = from_record(record)
        assert set(views) == set(record.views)
        for name, segments in views.items():
            (dec,) = record_doc_tok.decode(record_doc_tok.encode(segments), reconstruct=False)
            assert dec.kind == name
            if name == "text":
                assert dec.text == record.texts[0]


def _merged_kinds(segments):
    """Segment kinds with adjacent text segments merged, as encode joins them."""
    kinds = []
    for s in segments:
        if not (s.kind == "text" and kinds and kinds[-1] == "text"):
            kinds.append(s.kind)
    return kinds
