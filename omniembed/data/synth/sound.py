"""The sound of an item: colour -> note, shape -> timbre, size -> envelope, position -> rhythm, motion -> glide.

Pure numpy synthesis. Oscillators are band-limited by summing harmonics up to Nyquist (no aliasing, which
would smear the pitch a listener or a model should recover).
"""

from __future__ import annotations

import numpy as np

from omniembed.data.synth.world import GLIDES, NOTES, PULSES, TIMBRES

# Harmonic amplitude recipes, n = 1, 2, 3, ...: sine has only the fundamental; square odd 1/n;
# triangle odd 1/n^2 with alternating sign; sawtooth all 1/n. The fundamental is always the strongest.
_MAX_HARMONICS = 24


def _harmonics(timbre: str) -> list[tuple[int, float]]:
    if timbre == "sine":
        return [(1, 1.0)]
    if timbre == "square":
        return [(n, 1.0 / n) for n in range(1, _MAX_HARMONICS, 2)]
    if timbre == "triangle":
        return [(n, (-1.0) ** ((n - 1) // 2) / (n * n)) for n in range(1, _MAX_HARMONICS, 2)]
    if timbre == "sawtooth":
        return [(n, 1.0 / n) for n in range(1, _MAX_HARMONICS)]
    raise ValueError(f"unknown timbre {timbre!r}")


def pitch_track(note_hz: float, glide_semitones: float, n: int) -> np.ndarray:
    """Instantaneous frequency (Hz) per sample: an exponential glide centred on the note; (n,)."""
    t = np.linspace(-0.5, 0.5, n, dtype=np.float64)
    return note_hz * 2.0 ** (glide_semitones * t / 12.0)


def oscillator(freq: np.ndarray, timbre: str, sample_rate: int) -> np.ndarray:
    """Band-limited periodic wave following a frequency track; peak-normalised to 1, (n,) float64."""
    phase = 2.0 * np.pi * np.cumsum(freq) / sample_rate
    wave = np.zeros_like(phase)
    nyquist = sample_rate / 2
    for k, amp in _harmonics(timbre):
        if k * freq.max() < nyquist:
            wave += amp * np.sin(k * phase)
    return wave / np.abs(wave).max()


GAP_S = 0.06  # silence between sustained pulses: most of an 80 ms audio token, so pulses stay countable
ATTACK_S = 0.01


def envelope(n: int, pulses: int, size: str, sample_rate: int) -> np.ndarray:
    """Amplitude envelope: `pulses` evenly spaced notes; large = loud and sustained over its whole slot,
    small = half as loud and fading out over half its slot. Every pulse starts with a short attack."""
    env = np.zeros(n)
    slot = n // pulses
    attack = int(ATTACK_S * sample_rate)
    for p in range(pulses):
        start = p * slot
        if size == "large":
            length = slot - (int(GAP_S * sample_rate) if pulses > 1 else attack)
            shape = np.ones(length)
            shape[-attack:] = np.linspace(1.0, 0.0, attack)  # release
            gain = 1.0
        else:
            length = slot // 2
            shape = np.linspace(1.0, 0.0, length)
            gain = 0.5
        shape[:attack] *= np.linspace(0.0, 1.0, attack)
        env[start : start + length] = gain * shape
    return env


def render_sound(
    attrs: dict[str, str], duration_s: float, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """The item's sound, mono float32 in [-1, 1], with a little random detuning and noise; (n,)."""
    n = int(round(duration_s * sample_rate))
    detune = rng.uniform(-0.25, 0.25)  # semitones: well inside the 5-semitone spacing of colour notes
    note = NOTES[attrs["colour"]] * 2.0 ** (detune / 12.0)
    freq = pitch_track(note, GLIDES[attrs["motion"]], n)
    wave = oscillator(freq, TIMBRES[attrs["shape"]], sample_rate)
    wave *= envelope(n, PULSES[attrs["position"]], attrs["size"], sample_rate)
    wave = 0.7 * wave + rng.normal(0.0, 0.004, n)
    return np.clip(wave, -1.0, 1.0).astype(np.float32)
