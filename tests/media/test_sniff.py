"""detect_modality tells image, audio and video apart from the bytes alone."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from omniembed.errors import MediaError
from omniembed.media import SAMPLE_RATE, decode_audio, decode_video, detect_modality, encode_audio
from omniembed.media.sniff import sniff_format

EXPECTED = {
    **{f: "image" for f in ["png", "jpeg", "webp", "gif", "bmp", "tiff"]},
    **{f: "audio" for f in ["wav", "flac", "mp3", "ogg"]},
    **{f: "video" for f in ["mp4", "mp4+audio", "webm", "webm+audio"]},
}


@pytest.mark.parametrize("fmt", sorted(EXPECTED))
def test_detect_modality_names_each_format_by_its_content(all_media, fmt):
    assert detect_modality(all_media[fmt]) == EXPECTED[fmt]


def test_audio_only_mp4_is_audio_not_video(make):
    m4a = encode_audio(make.tone(440.0, 0.5, SAMPLE_RATE), SAMPLE_RATE, "m4a")
    assert sniff_format(m4a) == "mp4"
    assert detect_modality(m4a) == "audio"
    assert abs(len(decode_audio(m4a)) - SAMPLE_RATE // 2) < 0.03 * SAMPLE_RATE


def _m4a_with_cover_art() -> bytes:
    """AAC in MP4 plus a PNG cover: a video stream marked as an attached picture, as music files carry."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        audio = out.add_stream("aac", rate=SAMPLE_RATE)
        audio.codec_context.layout = "mono"
        cover = out.add_stream("png")
        cover.width, cover.height, cover.pix_fmt = 8, 8, "rgb24"
        cover.disposition = av.stream.Disposition.attached_pic
        picture = av.VideoFrame.from_ndarray(np.zeros((8, 8, 3), np.uint8), format="rgb24")
        picture.pts = 0
        out.mux(cover.encode(picture))
        silence = av.AudioFrame.from_ndarray(np.zeros((1, SAMPLE_RATE), np.float32), format="flt", layout="mono")
        silence.sample_rate, silence.pts = SAMPLE_RATE, 0
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=SAMPLE_RATE, frame_size=1024)
        for chunk in resampler.resample(silence) + resampler.resample(None):
            out.mux(audio.encode(chunk))
        out.mux(audio.encode(None))
    return buf.getvalue()


def test_audio_with_cover_art_is_audio_not_video():
    data = _m4a_with_cover_art()
    assert detect_modality(data) == "audio"
    assert abs(len(decode_audio(data)) - SAMPLE_RATE) < 0.03 * SAMPLE_RATE
    with pytest.raises(MediaError, match="no video track"):
        decode_video(data)


def test_detect_modality_reads_paths(tmp_path, all_media):
    path = tmp_path / "unnamed"  # no extension: the bytes decide
    path.write_bytes(all_media["webm"])
    assert detect_modality(path) == "video"


@pytest.mark.parametrize(
    "head, fmt",
    [
        (b"ID3\x04\x00\x00\x00\x00\x00\x00fLaC", "flac"),  # FLAC behind an empty ID3 tag
        (b"ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb\x90\x00", "mp3"),
        (b"\xff\xfb\x90\x00", "mp3"),  # bare MPEG-1 layer III frame sync
        (b"\xff\xf1\x50\x80", None),  # ADTS AAC: same sync bits, layer 0, not MP3
        (b"RIFF\x00\x00\x00\x00AVI LIST", None),  # AVI is RIFF too, but not supported
    ],
)
def test_sniff_format_reads_magic_numbers(head, fmt):
    assert sniff_format(head + bytes(32)) == fmt


def _pyav_kinds(data: bytes) -> frozenset[str]:
    from omniembed.media.container import open_container, pick_streams

    with open_container(data, "x", sniff_format(data)) as container:
        video, audio = pick_streams(container, "x")
    return frozenset(k for k, s in (("video", video), ("audio", audio)) if s is not None)


@pytest.mark.parametrize("fmt", ["mp4", "mp4+audio", "webm", "webm+audio", "m4a", "m4a+cover"])
def test_header_track_list_agrees_with_ffmpeg(all_media, make, fmt):
    """detect_modality reads MP4/Matroska track kinds from the header; they must be FFmpeg's streams."""
    from omniembed.media.tracks import track_kinds

    if fmt == "m4a":
        data = encode_audio(make.tone(440.0, 0.5, SAMPLE_RATE), SAMPLE_RATE, "m4a")
    elif fmt == "m4a+cover":
        data = _m4a_with_cover_art()
    else:
        data = all_media[fmt]
    assert track_kinds(data, sniff_format(data)) == _pyav_kinds(data)


@pytest.mark.parametrize("fmt", ["mp4+audio", "webm+audio"])
def test_header_track_list_is_unsure_of_damaged_headers(all_media, fmt):
    """A cut or scrambled header answers None (FFmpeg is asked), never a guess."""
    from omniembed.media.tracks import track_kinds

    data = all_media[fmt]
    fmt_name = sniff_format(data)
    for cut in (8, 40, 200, len(data) // 2):
        got = track_kinds(data[:cut], fmt_name)
        assert got is None or got <= _pyav_kinds(data)
    rng = np.random.default_rng(0)
    for _ in range(50):
        damaged = np.frombuffer(data, np.uint8).copy()
        damaged[rng.integers(0, min(len(data), 400), size=4)] = rng.integers(0, 256, size=4)
        track_kinds(bytes(damaged), fmt_name)  # must not raise
