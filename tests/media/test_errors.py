"""Every way media can be bad raises MediaError(source, reason) naming the input and the fault."""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np
import pytest

from omniembed.errors import MediaError
from omniembed.media import (
    MAX_MEDIA_BYTES,
    SAMPLE_RATE,
    decode_audio,
    decode_image,
    decode_video,
    detect_modality,
    encode_audio,
    encode_video,
)

DECODERS = {"image": decode_image, "audio": decode_audio, "video": decode_video, "sniff": detect_modality}
# Which decoder reads each fixture format.
DECODER_OF = {
    **{f: decode_image for f in ["png", "jpeg", "webp", "gif", "bmp", "tiff"]},
    **{f: decode_audio for f in ["wav", "flac", "mp3", "ogg"]},
    **{f: decode_video for f in ["mp4", "mp4+audio", "webm", "webm+audio"]},
}


def _png_header_only(width: int, height: int) -> bytes:
    """A valid PNG whose header claims width x height but whose data is a few bytes: a decompression bomb."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    pixels = chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + pixels + chunk(b"IEND", b"")


def _flip(data: bytes, at: float, count: int) -> bytes:
    corrupt = bytearray(data)
    start = int(len(data) * at)
    corrupt[start:start + count] = bytes(b ^ 0xFF for b in corrupt[start:start + count])
    return bytes(corrupt)


@pytest.mark.parametrize("kind", sorted(DECODERS))
def test_empty_input_raises(kind):
    with pytest.raises(MediaError, match="empty") as info:
        DECODERS[kind](b"")
    assert info.value.source == "<0 bytes>"


@pytest.mark.parametrize("kind", sorted(DECODERS))
def test_text_bytes_raise_saying_they_are_text(kind):
    with pytest.raises(MediaError, match="text, not media"):
        DECODERS[kind]("a caption, not a picture\n".encode() * 20)


@pytest.mark.parametrize("kind", sorted(DECODERS))
def test_random_bytes_raise_as_unrecognised(kind):
    noise = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    with pytest.raises(MediaError, match="unrecognised format"):
        DECODERS[kind](noise)


@pytest.mark.parametrize(
    "decoder, fmt, reason",
    [
        (decode_image, "wav", "expected an image, but the input is WAV audio"),
        (decode_image, "mp4", "expected an image, but the input is an MP4"),
        (decode_audio, "png", "expected audio, but the input is a PNG image"),
        (decode_audio, "mp4", "has no audio track"),
        (decode_video, "jpeg", "expected video, but the input is a JPEG image"),
        (decode_video, "wav", "expected video, but the input is WAV audio"),
        (decode_video, "ogg", "has no video track .*use decode_audio"),
    ],
)
def test_wrong_modality_raises_naming_what_the_input_is(all_media, decoder, fmt, reason):
    with pytest.raises(MediaError, match=reason):
        decoder(all_media[fmt])


@pytest.mark.parametrize("cut", [0.25, 0.5, 0.9])
@pytest.mark.parametrize("fmt", sorted(DECODER_OF))
def test_truncated_file_raises(all_media, fmt, cut):
    data = all_media[fmt]
    with pytest.raises(MediaError) as info:
        DECODER_OF[fmt](data[: int(len(data) * cut)])
    assert info.value.source == f"<{int(len(data) * cut)} bytes>"


@pytest.mark.parametrize("fmt", ["mp4+audio", "webm+audio"])
def test_truncated_video_raises_when_only_its_audio_is_asked_for(all_media, fmt):
    data = all_media[fmt]
    with pytest.raises(MediaError, match="truncated"):
        decode_audio(data[: len(data) // 2])


@pytest.mark.parametrize("at", [0.3, 0.5, 0.7])
@pytest.mark.parametrize("fmt", ["png", "gif", "ogg"])
def test_corrupt_bytes_in_the_middle_raise_for_formats_with_integrity_checks(all_media, fmt, at):
    # PNG and GIF break their compressed stream; Ogg pages carry CRCs. Formats with raw payloads
    # (BMP, WAV) or error-concealing codecs decode damage as damage; test_fuzz covers them.
    with pytest.raises(MediaError):
        DECODER_OF[fmt](_flip(all_media[fmt], at, 64))


@pytest.mark.parametrize("fmt", sorted(DECODER_OF))
def test_corrupt_header_raises(all_media, fmt):
    with pytest.raises(MediaError):
        DECODER_OF[fmt](_flip(all_media[fmt], 0.0, 16))


def test_png_bomb_past_pillows_own_limit_raises_before_decoding():
    with pytest.raises(MediaError, match="100000x100000|decompression bomb"):
        decode_image(_png_header_only(100_000, 100_000))


def test_png_bomb_under_pillows_limit_but_over_ours_raises():
    with pytest.raises(MediaError, match="9000x9000 = 81000000 pixels, over the limit"):
        decode_image(_png_header_only(9000, 9000))


def test_image_over_a_caller_pixel_limit_raises(all_media):
    with pytest.raises(MediaError, match="64x48 = 3072 pixels, over the limit of 3000"):
        decode_image(all_media["png"], max_pixels=3000)


def test_video_frames_over_the_pixel_limit_raise(all_media):
    with pytest.raises(MediaError, match="48x32, over the limit of 1000 pixels"):
        decode_video(all_media["mp4"], max_pixels=1000)


def test_audio_longer_than_the_limit_raises(all_media):
    with pytest.raises(MediaError, match="longer than the limit of 0.5 s"):
        decode_audio(all_media["flac"], max_seconds=0.5)  # 1 s of audio


def test_audio_just_over_the_default_limit_raises(tmp_path):
    from omniembed.media import MAX_AUDIO_SECONDS

    silence = np.zeros(int((MAX_AUDIO_SECONDS + 1) * 8000), np.float32)  # 8 kHz keeps the file small
    with pytest.raises(MediaError, match=f"longer than the limit of {MAX_AUDIO_SECONDS:g} s"):
        decode_audio(encode_audio(silence, 8000, "flac"))


@pytest.mark.parametrize("fmt", ["mp4", "webm+audio"])
def test_video_longer_than_the_limit_raises(all_media, fmt):
    with pytest.raises(MediaError, match="over the limit of 1 s|past the limit of 1 s"):
        decode_video(all_media[fmt], max_seconds=1.0)  # 3 s of video


@pytest.mark.parametrize("fmt", ["png", "wav", "mp4"])
def test_bytes_over_a_caller_size_limit_raise(all_media, fmt):
    decoder = DECODER_OF[fmt]
    with pytest.raises(MediaError, match="over the limit of 100"):
        decoder(all_media[fmt], max_bytes=100)


@pytest.mark.parametrize("kind", sorted(DECODERS))
def test_file_over_the_default_size_limit_raises_without_being_read(tmp_path, kind):
    path = tmp_path / "huge.bin"
    with open(path, "wb") as f:
        f.truncate(MAX_MEDIA_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(MediaError, match=f"file is {MAX_MEDIA_BYTES + 1} bytes, over the limit") as info:
        DECODERS[kind](path)
    assert info.value.source == str(path)


@pytest.mark.parametrize("kind", sorted(DECODERS))
def test_missing_path_raises_naming_the_path(tmp_path, kind):
    path = tmp_path / "nowhere.png"
    with pytest.raises(MediaError, match="no such file") as info:
        DECODERS[kind](str(path))
    assert info.value.source == str(path)


@pytest.mark.parametrize("kind", sorted(DECODERS))
def test_directory_path_raises(tmp_path, kind):
    with pytest.raises(MediaError, match="is a directory"):
        DECODERS[kind](tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_raises(tmp_path, all_media):
    path = tmp_path / "locked.png"
    path.write_bytes(all_media["png"])
    path.chmod(0)
    with pytest.raises(MediaError, match="cannot read file"):
        decode_image(path)


@pytest.mark.parametrize("kind", sorted(DECODERS))
def test_non_bytes_non_path_input_raises(kind):
    with pytest.raises(MediaError, match="expected bytes or a file path, got int"):
        DECODERS[kind](12345)


def test_media_error_is_a_value_error_with_source_and_reason():
    with pytest.raises(ValueError) as info:
        decode_audio(b"")
    assert isinstance(info.value, MediaError)
    assert str(info.value) == f"{info.value.source}: {info.value.reason}"


def test_ogg_without_end_of_stream_flag_is_reported_truncated(make):
    data = bytearray(encode_audio(make.tone(440.0, 0.5, SAMPLE_RATE), SAMPLE_RATE, "ogg"))
    last_page = data.rindex(b"OggS")
    data[last_page + 5] &= ~0x04  # clear the EOS bit (the page CRC is not re-checked by our framing walk)
    with pytest.raises(MediaError, match="end-of-stream"):
        decode_audio(bytes(data))


def test_memoryview_and_bytearray_inputs_decode_like_bytes(all_media):
    data = all_media["wav"]
    np.testing.assert_array_equal(decode_audio(bytearray(data)), decode_audio(memoryview(data)))


def test_encode_video_rejects_bad_frames_with_value_error():
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\) uint8"):
        encode_video(np.zeros((2, 8, 8), np.uint8), 10.0)


def test_sampled_frames_outgrowing_the_decoded_byte_limit_raise(all_media):
    one_frame = 32 * 48 * 3
    assert len(decode_video(all_media["mp4"], fps=2.0, max_decoded_bytes=6 * one_frame).frames) == 6
    with pytest.raises(MediaError, match=f"sampled frames would outgrow {5 * one_frame} bytes"):
        decode_video(all_media["mp4"], fps=2.0, max_decoded_bytes=5 * one_frame)


def test_a_media_error_comes_back_whole_from_pickling():
    # the data stages decode in worker processes and send a file's MediaError back to be raised in the parent
    import pickle

    err = pickle.loads(pickle.dumps(MediaError("a.png", "truncated PNG")))
    assert type(err) is MediaError and (err.source, err.reason) == ("a.png", "truncated PNG")
    assert str(err) == "a.png: truncated PNG"
