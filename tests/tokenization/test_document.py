"""Interleaved documents <-> one id stream: every segment kind round-trips, malformed streams raise DocumentError.

Uses the real (randomly initialised, untrained) image and audio tokenizers: round trips are about ids and
codes, which an untrained VQ produces just as deterministically as a trained one.
"""

import numpy as np
import pytest
import torch

from omniembed.errors import ConfigError
from omniembed.tokenization.audio import AudioTokenizer
from omniembed.tokenization.config import TokenizerConfig
from omniembed.tokenization.document import (
    AudioCodes,
    AudioSegment,
    DocumentError,
    DocumentTokenizer,
    ImageCodes,
    ImageSegment,
    TextSegment,
    VideoCodes,
    VideoSegment,
    sample_frame_indices,
)
from omniembed.tokenization.image import ImageTokenizer
from omniembed.tokenization.text import TextTokenizer
from omniembed.tokenization.vocab import Vocabulary

torch.set_num_threads(2)

CORPUS = ["a red circle moves left", "a blue square stays still", "the green triangle bounces",
          "a small yellow star drifts right", "two circles and one square"] * 10


@pytest.fixture(scope="module")
def doc_tok():
    torch.manual_seed(0)
    cfg = TokenizerConfig(image_size=16, image_grid=4, image_widths=[8, 8], image_codebook=32, image_code_dim=8,
                          n_mels=16, audio_codebook=24, audio_code_dim=8, audio_width=16)
    image, audio = ImageTokenizer(cfg).eval(), AudioTokenizer(cfg).eval()
    text = TextTokenizer.train(CORPUS, vocab_size=300)
    vocab = Vocabulary(text.vocab_size, image.codebook_size, audio.codebook_size, time_buckets=16, time_step=0.5)
    return DocumentTokenizer(vocab, text, image, audio, video_fps=2.0)


def _rate(doc_tok):
    return doc_tok.audio.config.sample_rate


def _image(seed, h=20, w=12):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _wave(doc_tok, seconds, freq=440.0):
    t = np.arange(int(seconds * _rate(doc_tok))) / _rate(doc_tok)
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _video(doc_tok, n_frames=6, fps=4.0, audio=True):
    rng = np.random.default_rng(n_frames)
    frames = rng.integers(0, 256, (n_frames, 16, 16, 3), dtype=np.uint8)
    times = np.arange(n_frames) / fps
    wave = _wave(doc_tok, n_frames / fps, 220.0) if audio else None
    return VideoSegment(frames, times, wave, _rate(doc_tok) if audio else None)


def _as_codes(decoded):
    """Drop reconstructions so only codes go back into encode."""
    out = []
    for s in decoded:
        if isinstance(s, VideoCodes):
            out.append(VideoCodes(s.frame_codes, s.times, s.audio_codes))
        elif isinstance(s, (ImageCodes, AudioCodes)):
            out.append(type(s)(s.codes))
        else:
            out.append(s)
    return out


def _kinds(decoded):
    return [s.kind for s in decoded]


def _roundtrip(doc_tok, segments, **kwargs):
    ids = doc_tok.encode(segments, **kwargs)
    decoded = doc_tok.decode(ids)
    assert doc_tok.encode(_as_codes(decoded), **kwargs) == ids
    return ids, decoded


def test_text_document_is_bos_text_eos_and_decodes_to_the_same_string(doc_tok):
    v = doc_tok.vocab
    ids, decoded = _roundtrip(doc_tok, [TextSegment("a red circle 🙂 moves")])
    assert ids[0] == v.special("<bos>") and ids[-1] == v.special("<eos>")
    assert all(v.kind_of(i) == "text" for i in ids[1:-1])
    assert len(decoded) == 1 and decoded[0] == TextSegment("a red circle 🙂 moves")


def test_image_block_holds_exactly_tokens_per_image_codes_and_reconstructs_pixels(doc_tok):
    v = doc_tok.vocab
    ids, decoded = _roundtrip(doc_tok, [ImageSegment(_image(1))], bos=False, eos=False)
    assert ids[0] == v.special("<image>") and ids[-1] == v.special("</image>")
    assert len(ids) == 2 + doc_tok.tokens_per_image
    assert all(v.kind_of(i) == "image" for i in ids[1:-1])
    (img,) = decoded
    expected = doc_tok.image.encode(doc_tok.image.preprocess(_image(1)))[0].numpy()
    assert np.array_equal(img.codes, expected)
    assert img.pixels.shape == (16, 16, 3) and img.pixels.dtype == np.uint8


def test_audio_block_holds_the_audio_tokenizers_codes_and_reconstructs_mel(doc_tok):
    wave = _wave(doc_tok, 0.5)
    ids, decoded = _roundtrip(doc_tok, [AudioSegment(wave, _rate(doc_tok))], bos=False, eos=False)
    (aud,) = decoded
    m = doc_tok.audio.num_tokens(len(wave))
    assert len(ids) == m + 2 and len(aud.codes) == m
    assert np.array_equal(aud.codes, doc_tok.audio.encode_one(torch.from_numpy(wave)).numpy())
    assert aud.mel.shape == (16, m * doc_tok.audio.config.mel_patch_frames)


def test_video_with_audio_has_frame_time_codes_then_the_audio_track(doc_tok):
    v = doc_tok.vocab
    video = _video(doc_tok, n_frames=6, fps=4.0, audio=True)  # 1.5 s; video_fps=2 keeps frames at 0, .5, 1.0
    ids, decoded = _roundtrip(doc_tok, [video], bos=False, eos=False)
    n = doc_tok.tokens_per_image
    assert ids[0] == v.special("<video>") and ids[-1] == v.special("</video>")
    assert ids.count(v.special("<frame>")) == 3
    first = ids[1:3 + n]
    assert first[0] == v.special("<frame>") and first[1] == v.time_token(0.0)
    (vid,) = decoded
    assert vid.frame_codes.shape == (3, n)
    assert np.allclose(vid.times, [0.0, 0.5, 1.0])
    assert len(vid.audio_codes) == doc_tok.audio.num_tokens(len(video.audio))
    assert vid.frames.shape == (3, 16, 16, 3) and vid.audio_mel is not None
    # the audio block comes after every frame, right before </video>
    aud_open = ids.index(v.special("<audio>"))
    assert aud_open > max(i for i, t in enumerate(ids) if t == v.special("<frame>"))
    assert ids[-2] == v.special("</audio>")


def test_video_without_audio_round_trips_and_has_no_audio_block(doc_tok):
    v = doc_tok.vocab
    ids, decoded = _roundtrip(doc_tok, [_video(doc_tok, n_frames=4, fps=2.0, audio=False)])
    assert v.special("<audio>") not in ids
    (vid,) = decoded
    assert vid.audio_codes is None and vid.frame_codes.shape[0] == 4


def test_several_mixed_segments_round_trip_in_order_with_embed_token(doc_tok):
    v = doc_tok.vocab
    segments = [
        TextSegment("a red circle "), TextSegment("moves left"),  # adjacent text joins into one run
        ImageSegment(_image(2)),
        TextSegment("and sounds like"),
        AudioSegment(_wave(doc_tok, 0.3), _rate(doc_tok)),
        _video(doc_tok, n_frames=3, fps=2.0, audio=True),
        ImageSegment(_image(3, 9, 30)),
        TextSegment("the end"),
    ]
    ids, decoded = _roundtrip(doc_tok, segments, embed=True)
    assert ids[-2:] == [v.special("<eos>"), v.special("<embed>")]
    assert _kinds(decoded) == ["text", "image", "text", "audio", "video", "image", "text"]
    assert decoded[0].text == "a red circle moves left"
    assert decoded[2].text == "and sounds like" and decoded[-1].text == "the end"


def test_empty_audio_is_an_empty_audio_block_that_round_trips(doc_tok):
    v = doc_tok.vocab
    ids, decoded = _roundtrip(doc_tok, [AudioSegment(np.zeros(0, np.float32), _rate(doc_tok))], bos=False, eos=False)
    assert ids == [v.special("<audio>"), v.special("</audio>")]
    assert len(decoded[0].codes) == 0 and decoded[0].mel is None


def test_trailing_padding_is_ignored_by_decode(doc_tok):
    ids = doc_tok.encode([TextSegment("a blue square")]) + [doc_tok.vocab.special("<pad>")] * 5
    assert doc_tok.decode(ids) == [TextSegment("a blue square")]


def test_decode_without_reconstruction_returns_codes_only(doc_tok):
    decoded = doc_tok.decode(doc_tok.encode([ImageSegment(_image(4)), _video(doc_tok, 2, 2.0)]), reconstruct=False)
    assert decoded[0].pixels is None and decoded[1].frames is None and decoded[1].audio_mel is None


def test_an_empty_document_is_just_bos_eos(doc_tok):
    ids = doc_tok.encode([])
    assert ids == [doc_tok.vocab.special("<bos>"), doc_tok.vocab.special("<eos>")]
    assert doc_tok.decode(ids) == []


def test_frame_sampling_keeps_frames_at_least_one_over_fps_apart():
    times = np.array([0.0, 0.1, 0.2, 0.4999, 0.6, 1.0, 1.01])
    assert sample_frame_indices(times, 2.0).tolist() == [0, 3, 5]
    assert sample_frame_indices(times, None).tolist() == list(range(7))
    assert sample_frame_indices(np.zeros(0), 2.0).tolist() == []


# ---- malformed streams --------------------------------------------------------------------------------
def _s(doc_tok, name):
    return doc_tok.vocab.special(name)


def _img_codes(doc_tok, n=None):
    n = doc_tok.tokens_per_image if n is None else n
    return [doc_tok.vocab.image_id(i % doc_tok.vocab.image_codebook) for i in range(n)]


def test_unclosed_image_block_raises(doc_tok):
    ids = [_s(doc_tok, "<image>"), *_img_codes(doc_tok)]
    with pytest.raises(DocumentError, match=r"unclosed <image> at position 0"):
        doc_tok.decode(ids)


def test_unclosed_audio_and_video_blocks_raise(doc_tok):
    aud = doc_tok.vocab.audio_id(3)
    with pytest.raises(DocumentError, match=r"unclosed <audio>"):
        doc_tok.decode([_s(doc_tok, "<audio>"), aud, aud])
    frame = [_s(doc_tok, "<frame>"), doc_tok.vocab.time_token(0.0), *_img_codes(doc_tok)]
    with pytest.raises(DocumentError, match=r"unclosed <video>"):
        doc_tok.decode([_s(doc_tok, "<video>"), *frame])


def test_audio_code_inside_an_image_block_raises(doc_tok):
    codes = _img_codes(doc_tok)
    codes[3] = doc_tok.vocab.audio_id(0)
    with pytest.raises(DocumentError, match=r"holds 3 image codes, expected 16 \(then audio:0 at position 4\)"):
        doc_tok.decode([_s(doc_tok, "<image>"), *codes, _s(doc_tok, "</image>")])


def test_image_code_inside_an_audio_block_raises(doc_tok):
    ids = [_s(doc_tok, "<audio>"), doc_tok.vocab.audio_id(1), doc_tok.vocab.image_id(1), _s(doc_tok, "</audio>")]
    with pytest.raises(DocumentError, match=r"expected </audio> at position 2, got image:1"):
        doc_tok.decode(ids)


@pytest.mark.parametrize("n", [15, 17])
def test_wrong_code_count_per_image_raises(doc_tok, n):
    with pytest.raises(DocumentError, match=rf"holds {n} image codes, expected 16"):
        doc_tok.decode([_s(doc_tok, "<image>"), *_img_codes(doc_tok, n), _s(doc_tok, "</image>")])


def test_wrong_code_count_in_a_video_frame_raises(doc_tok):
    ids = [_s(doc_tok, "<video>"), _s(doc_tok, "<frame>"), doc_tok.vocab.time_token(0.5), *_img_codes(doc_tok, 5),
           _s(doc_tok, "</video>")]
    with pytest.raises(DocumentError, match=r"<frame> at position 1 holds 5 image codes"):
        doc_tok.decode(ids)


def test_frame_without_a_time_token_raises(doc_tok):
    ids = [_s(doc_tok, "<video>"), _s(doc_tok, "<frame>"), *_img_codes(doc_tok), _s(doc_tok, "</video>")]
    with pytest.raises(DocumentError, match=r"must be followed by a time token"):
        doc_tok.decode(ids)


@pytest.mark.parametrize("stray", ["</image>", "<frame>", "<bos>", "<pad>", "<t3>", "</video>"])
def test_stray_markers_outside_a_block_raise(doc_tok, stray):
    text = doc_tok.encode([TextSegment("a red circle")], bos=False, eos=False)
    with pytest.raises(DocumentError, match=rf"unexpected {stray} at position {len(text)} outside any block"):
        doc_tok.decode([*text, _s(doc_tok, stray), *text])


def test_modality_codes_outside_any_block_raise(doc_tok):
    with pytest.raises(DocumentError, match=r"unexpected image:0 at position 0"):
        doc_tok.decode([doc_tok.vocab.image_id(0)])
    with pytest.raises(DocumentError, match=r"unexpected audio:2 at position 1"):
        doc_tok.decode([_s(doc_tok, "<bos>"), doc_tok.vocab.audio_id(2)])


def test_ids_outside_the_vocabulary_raise(doc_tok):
    with pytest.raises(DocumentError, match=r"id \d+ at position 1 is outside the vocabulary"):
        doc_tok.decode([_s(doc_tok, "<bos>"), doc_tok.vocab.size])


def test_audio_at_another_sample_rate_is_refused(doc_tok):
    with pytest.raises(DocumentError, match=r"audio at 8000 Hz, the audio tokenizer expects"):
        doc_tok.encode([AudioSegment(np.zeros(800, np.float32), 8000)])


@pytest.mark.parametrize("make", [
    lambda: ImageSegment(np.zeros((4, 4), np.uint8)),
    lambda: ImageSegment(np.zeros((4, 4, 3), np.float32)),
    lambda: AudioSegment(np.zeros((2, 10), np.float32), 16000),
    lambda: AudioSegment(np.array([0.0, np.nan], np.float32), 16000),
    lambda: VideoSegment(np.zeros((2, 4, 4, 3), np.uint8), np.array([0.0])),
    lambda: VideoSegment(np.zeros((2, 4, 4, 3), np.uint8), np.array([1.0, 0.5])),
    lambda: TextSegment(b"bytes"),
])
def test_malformed_segments_raise_document_error(make):
    with pytest.raises(DocumentError):
        make()


def test_mismatched_vocabulary_and_tokenizers_are_config_errors(doc_tok):
    v = doc_tok.vocab
    with pytest.raises(ConfigError, match="text tokenizer has"):
        DocumentTokenizer(Vocabulary(v.text_size + 1, v.image_codebook, v.audio_codebook), doc_tok.text)
    with pytest.raises(ConfigError, match="image tokenizer has 32 codes"):
        DocumentTokenizer(Vocabulary(v.text_size, 64, v.audio_codebook), doc_tok.text, doc_tok.image)


def test_from_tokenizers_sizes_the_vocabulary_from_the_tokenizers(doc_tok):
    built = DocumentTokenizer.from_tokenizers(doc_tok.text, doc_tok.image, doc_tok.audio, time_buckets=16,
                                              video_fps=2.0)
    assert built.vocab == doc_tok.vocab
    segments = [TextSegment("a red circle"), ImageSegment(_image(6))]
    assert built.encode(segments) == doc_tok.encode(segments)


def test_segments_needing_a_missing_tokenizer_raise(doc_tok):
    text_only = DocumentTokenizer(doc_tok.vocab, doc_tok.text)
    with pytest.raises(DocumentError, match="needs an image tokenizer"):
        text_only.encode([ImageSegment(_image(5))])
    with pytest.raises(DocumentError, match="needs an audio tokenizer"):
        text_only.encode([AudioSegment(_wave(doc_tok, 0.1), _rate(doc_tok))])


def test_random_mixed_documents_round_trip_through_ids_and_back_to_the_same_codes(doc_tok):
    rng = np.random.default_rng(7)
    words = ["red", "circle", "moves", "🙂", "数据", " ", "\n", "café"]
    for _ in range(8):
        segments = []
        for _ in range(rng.integers(1, 6)):
            kind = rng.choice(["text", "image", "audio", "video"])
            if kind == "text":
                segments.append(TextSegment(" ".join(rng.choice(words, rng.integers(1, 5)))))
            elif kind == "image":
                segments.append(ImageSegment(_image(int(rng.integers(1 << 30)), *rng.integers(4, 24, 2))))
            elif kind == "audio":
                segments.append(AudioSegment(_wave(doc_tok, float(rng.uniform(0.01, 0.4))), _rate(doc_tok)))
            else:
                segments.append(_video(doc_tok, int(rng.integers(0, 4)), 2.0, audio=bool(rng.integers(2))))
        ids, decoded = _roundtrip(doc_tok, segments, embed=bool(rng.integers(2)))
        media = [s for s in segments if not isinstance(s, TextSegment)]
        assert [s.kind for s in decoded if s.kind != "text"] == [s.kind for s in media]
        for seg, dec in zip(media, [s for s in decoded if s.kind != "text"]):
            if isinstance(seg, VideoSegment):
                assert len(dec.frame_codes) == len(seg.frames) and np.allclose(dec.times, seg.times)
                assert (dec.audio_codes is None) == (seg.audio is None)


def test_frame_times_past_the_last_time_bucket_clamp_to_it(doc_tok):
    v = doc_tok.vocab  # 16 buckets of 0.5 s: the last starts at 7.5 s
    video = VideoSegment(np.zeros((2, 8, 8, 3), np.uint8), np.array([7.0, 20.0]))
    (dec,) = doc_tok.decode(doc_tok.encode([video]), reconstruct=False)
    assert dec.times.tolist() == [7.0, 7.5]
    assert v.time_token(20.0) == v.special("<t15>")
