"""detect_modality tells image, audio and video apart from the bytes alone."""

from __future__ import annotations

import numpy as np
import pytest

from omniembed.media import SAMPLE_RATE, decode_audio, detect_modality, encode_audio
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
