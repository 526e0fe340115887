"""Every attribute of an item can be read back from its decoded media, by plain signal analysis.

These checks are what makes retrieval on the synthetic world meaningful: a model can only match a caption
to a sound if the sound really carries colour, shape, size, position and motion.
"""

import numpy as np
import pytest

from omniembed.data.synth import world as W
from omniembed.data.synth.render import POSITION_X, RADIUS, SPEED_LINE_ALPHA, coverage
from omniembed.media import decode_audio, decode_image, decode_video

SR = 16000


# ---- image analysis -------------------------------------------------------------------------------------
def _hue_and_chroma(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rgb = pixels.astype(np.float64) / 255.0
    mx, mn = rgb.max(-1), rgb.min(-1)
    chroma = mx - mn  # unlike saturation, stays low on dark noisy background pixels
    d = np.maximum(chroma, 1e-9)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    hue = np.where(mx == r, ((g - b) / d) % 6, np.where(mx == g, (b - r) / d + 2, (r - g) / d + 4)) * 60.0
    return hue, chroma


def _solid_mask(pixels: np.ndarray) -> np.ndarray:
    _, chroma = _hue_and_chroma(pixels)
    return chroma >= 0.8 * np.percentile(chroma, 99.5)


def _nearest(table: dict, value: float, dist=lambda a, b: abs(a - b)) -> str:
    return min(table, key=lambda k: dist(table[k], value))


def _template_stats() -> dict[str, tuple[float, float]]:
    """Per shape: area and centroid row offset of its outline at radius 1, measured on a fine render."""
    stats = {}
    for shape in W.ATTRIBUTES["shape"]:
        cover = coverage(shape, 0.5, 0.5, 0.25, 256)  # radius 64 px
        rows = np.indices(cover.shape)[0]
        stats[shape] = (cover.sum() / 64**2, ((rows * cover).sum() / cover.sum() - 127.5) / 64)
    return stats


TEMPLATES = _template_stats()
CUT = SPEED_LINE_ALPHA + 0.15  # coverage below the speed lines' opacity is not the shape


def _best_template(chroma: np.ndarray, solid: np.ndarray) -> tuple[str, float]:
    """The shape whose outline, placed at the blob's centroid with the blob's area, differs least from it;
    and that outline's radius as a fraction of the side."""
    level = chroma[solid].mean()
    blob = np.clip((chroma / level - CUT) / (1 - CUT), 0, 1)  # soft coverage; ignores the fainter speed lines
    size = chroma.shape[0]
    rows, cols = np.indices(blob.shape)
    area = blob.sum()
    cy, cx = (rows * blob).sum() / area + 0.5, (cols * blob).sum() / area + 0.5
    errors = {}
    for shape, (unit_area, unit_dy) in TEMPLATES.items():
        r = np.sqrt(area / unit_area)
        tmpl = coverage(shape, cx / size, (cy - unit_dy * r) / size, r / size, size)
        errors[shape] = (np.abs(np.clip((tmpl - CUT) / (1 - CUT), 0, 1) - blob).sum(), r / size)
    best = min(errors, key=lambda k: errors[k][0])
    return best, errors[best][1]


def read_image(pixels: np.ndarray) -> dict:
    """Attributes recovered from a still: hue, centroid, outline, radius and the speed lines."""
    size = pixels.shape[0]
    hue, chroma = _hue_and_chroma(pixels)
    solid = _solid_mask(pixels)
    ang = np.deg2rad(hue[solid])
    mean_hue = np.rad2deg(np.arctan2(np.sin(ang).mean(), np.cos(ang).mean())) % 360
    ys, xs = np.nonzero(solid)
    top, bottom = ys.min(), ys.max()
    # speed lines: fainter coloured rows beyond the solid shape, below (rising) or above (falling)
    rows = np.nonzero(((chroma > 0.2).sum(1)) >= 2)[0]
    trail = (rows.max() - bottom) - (top - rows.min())
    motion = "rising" if trail >= 4 else "falling" if trail <= -4 else "still"
    shape, radius = _best_template(chroma, solid)
    return {
        "colour": _nearest(W.HUES, mean_hue, lambda a, b: abs((a - b + 180) % 360 - 180)),
        "shape": shape,
        "size": _nearest(RADIUS, radius),
        "position": _nearest(POSITION_X, xs.mean() / size),
        "motion": motion,
    }


# ---- sound analysis -------------------------------------------------------------------------------------
def _frames_spectrum(wave: np.ndarray, frame: int = 1024, hop: int = 256):
    n = (len(wave) - frame) // hop + 1
    idx = np.arange(frame)[None, :] + hop * np.arange(n)[:, None]  # (F, frame)
    frames = wave[idx] * np.hanning(frame)
    spec = np.abs(np.fft.rfft(frames, n=4 * frame, axis=1))  # (F, bins), zero-padded for finer pitch
    freqs = np.fft.rfftfreq(4 * frame, 1 / SR)
    return spec, freqs, (frames**2).sum(1), hop


def read_sound(wave: np.ndarray) -> dict:
    """Attributes recovered from a waveform: pitch, harmonics, loudness, pulses, glide."""
    spec, freqs, energy, hop = _frames_spectrum(wave)
    band = (freqs > 150) & (freqs < 1200)
    f0 = freqs[band][np.argmax(spec[:, band], axis=1)]  # (F,) strongest partial = fundamental here
    loud = energy > 0.05 * energy.max()
    semis = 12 * np.log2(f0[loud] / 220.0)
    note_semis = {c: 12 * np.log2(hz / 220.0) for c, hz in W.NOTES.items()}
    median = float(np.median(semis))
    colour = _nearest(note_semis, median)
    slope = np.polyfit(np.nonzero(loud)[0] * hop / SR, semis, 1)[0]  # semitones per second
    # harmonic amplitudes relative to the fundamental, in the loudest frame
    k = int(np.argmax(energy))
    amp = lambda f: spec[k][np.abs(freqs - f) < 12].max()  # noqa: E731
    h2, h3 = amp(2 * f0[k]) / amp(f0[k]), amp(3 * f0[k]) / amp(f0[k])
    if h2 > 0.3:
        timbre = "sawtooth"
    elif h3 > 0.22:
        timbre = "square"
    elif h3 > 0.05:
        timbre = "triangle"
    else:
        timbre = "sine"
    env = np.sqrt(np.convolve(wave**2, np.ones(320) / 320, mode="same"))[::160]  # 20 ms RMS, 10 ms hop
    on = env > 0.15 * env.max()
    pulses = int(on[0]) + int(np.sum(on[1:] & ~on[:-1]))
    return {
        "colour": colour,
        "shape": {v: k for k, v in W.TIMBRES.items()}[timbre],
        "size": "large" if np.abs(wave).max() > 0.5 and on.mean() > 0.75 else "small",
        "position": {v: k for k, v in W.PULSES.items()}.get(pulses, f"{pulses} pulses"),
        "motion": "rising" if slope > 0.7 else "falling" if slope < -0.7 else "still",
        "pitch_offset": median - note_semis[colour],  # semitones from the nearest colour note
    }


# ---- video analysis -------------------------------------------------------------------------------------
def shape_heights(frames: np.ndarray) -> np.ndarray:
    """Row of the shape's centroid in each frame; (T,). Image rows grow downwards."""
    return np.array([np.nonzero(_solid_mask(f))[0].mean() for f in frames])


# ---- tests ----------------------------------------------------------------------------------------------
def test_every_attribute_is_read_back_from_every_still_image(synth_world):
    wrong = []
    for item in synth_world.items:
        got = read_image(decode_image(item.media["image"].source))
        wrong += [(item.id, k, v, got[k]) for k, v in item.attributes.items() if got[k] != v]
    assert not wrong, wrong


@pytest.fixture(scope="module")
def sounds_read(synth_world):
    return [(item, read_sound(decode_audio(item.media["audio"].source))) for item in synth_world.items]


def test_every_attribute_is_read_back_from_every_sound(sounds_read):
    wrong = [(item.id, k, v, got[k]) for item, got in sounds_read for k, v in item.attributes.items() if got[k] != v]
    assert not wrong, wrong


def test_dominant_pitch_is_within_two_semitones_of_the_colour_note(sounds_read):
    # notes are 5 semitones apart: 2 leaves a clear half-step of margin to the decision boundary
    offsets = [abs(got["pitch_offset"]) for _, got in sounds_read]
    assert max(offsets) < 2.0


def test_video_shape_moves_in_the_direction_of_its_motion_and_keeps_its_colour(synth_world):
    for item in synth_world.items[:24]:  # decoding every clip adds seconds and proves nothing more
        video = decode_video(item.media["video"].source, fps=8)
        rows = shape_heights(video.frames)
        drift = rows[-1] - rows[0]  # pixels, positive = moved down the frame
        expected = {"rising": -1, "falling": 1, "still": 0}[item.attributes["motion"]]
        if expected == 0:
            assert abs(drift) < 2.0, (item.id, rows)
        else:
            assert np.sign(drift) == expected and abs(drift) > 0.25 * video.frames.shape[1], (item.id, rows)
            assert np.all(np.diff(rows) * expected > -1.0), (item.id, rows)  # steady, not jumping back
        assert read_image(video.frames[len(video.frames) // 2])["colour"] == item.attributes["colour"]


@pytest.mark.parametrize("attribute", W.ATTRIBUTE_NAMES)
def test_changing_one_attribute_changes_what_the_analysers_read(attribute):
    # Render directly (no files): flip one attribute of a base item and both the image and the sound follow.
    from omniembed.data.synth.render import Look, render_image
    from omniembed.data.synth.sound import render_sound

    base = {"shape": "triangle", "colour": "green", "size": "large", "position": "centre", "motion": "still"}
    for value in W.ATTRIBUTES[attribute]:
        attrs = {**base, attribute: value}
        rng = np.random.default_rng(5)
        pixels = render_image(attrs, Look.draw(attrs, rng), 64, rng)
        assert read_image(pixels)[attribute] == value
        assert read_sound(render_sound(attrs, 2.0, SR, rng))[attribute] == value
