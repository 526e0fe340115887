"""The attribute vocabulary of the synthetic world and its train / held-out split of combinations.

Pure data and pure functions: rendering (render.py, sound.py) and captions (captions.py) read the tables
here, so one edit to a value list changes every modality at once.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

# Attribute name -> values, in the order they appear in combinations and in world.json.
# 4 * 6 * 2 * 3 * 3 = 432 combinations: enough variety to make retrieval non-trivial, few enough for a
# tiny model to learn each value from a few hundred items.
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "shape": ("circle", "square", "triangle", "cross"),
    "colour": ("red", "yellow", "green", "cyan", "blue", "magenta"),
    "size": ("small", "large"),
    "position": ("left", "centre", "right"),
    "motion": ("still", "rising", "falling"),
}
ATTRIBUTE_NAMES: tuple[str, ...] = tuple(ATTRIBUTES)

# Hue in degrees per colour: 60 degrees apart, so a jitter of a few degrees never crosses to a neighbour.
HUES: dict[str, float] = {"red": 0.0, "yellow": 60.0, "green": 120.0, "cyan": 180.0, "blue": 240.0, "magenta": 300.0}

# Colour -> note (Hz) at the middle of the sound. Five semitones apart (a fourth, 220 Hz to 932 Hz):
# the motion glide (+-2 semitones) plus detuning (+-0.25) stays closer to its own note than to either
# neighbour, and no note is a low harmonic (2x, 3x) of another.
NOTE_SEMITONES = 5
NOTES: dict[str, float] = {c: 220.0 * 2.0 ** (k * NOTE_SEMITONES / 12) for k, c in enumerate(ATTRIBUTES["colour"])}

# Shape -> oscillator; each has a distinct harmonic recipe (see sound.py).
TIMBRES: dict[str, str] = {"circle": "sine", "square": "square", "triangle": "triangle", "cross": "sawtooth"}

# Position -> number of evenly spaced pulses in the sound (rhythm).
PULSES: dict[str, int] = {"left": 1, "centre": 2, "right": 3}

# Motion -> pitch glide in semitones over the whole sound (start -> end, centred on the note). As wide as the
# colour notes allow (see NOTES): 3 semitones move a 220 Hz note by about one bin of a 64-bin 16 kHz log-mel,
# and a wrong glide direction then becomes the commonest audio miss of the trunk.
GLIDES: dict[str, float] = {"still": 0.0, "rising": 4.0, "falling": -4.0}

Combination = tuple[str, ...]  # one value per ATTRIBUTE_NAMES entry, in that order


@dataclass(frozen=True)
class Split:
    """Attribute combinations partitioned into train and held-out; `train` is ordered for coverage."""

    train: tuple[Combination, ...]
    heldout: tuple[Combination, ...]


def all_combinations() -> list[Combination]:
    return list(itertools.product(*ATTRIBUTES.values()))


def as_dict(combo: Combination) -> dict[str, str]:
    return dict(zip(ATTRIBUTE_NAMES, combo))


def combination_of(attributes: dict[str, str]) -> Combination:
    return tuple(attributes[name] for name in ATTRIBUTE_NAMES)


def _covering_order(combos: list[Combination]) -> list[Combination]:
    """Reorder so the first few combinations between them use every attribute value (greedy set cover).

    A world of only a handful of training items then still shows every value, which the held-out
    benchmark relies on: it must test unseen combinations of seen values, never unseen values.
    """
    uncovered = {(i, v) for i, values in enumerate(ATTRIBUTES.values()) for v in values}
    head: list[Combination] = []
    rest = list(combos)
    while uncovered and rest:
        gains = [len(uncovered & set(enumerate(c))) for c in rest]
        best = int(np.argmax(gains))  # first maximum: keeps the shuffled order among ties
        if gains[best] == 0:
            break
        combo = rest.pop(best)
        head.append(combo)
        uncovered -= set(enumerate(combo))
    return head + rest


def split_combinations(seed: int, heldout_frac: float = 0.125) -> Split:
    """Hold out a seeded random `heldout_frac` of all combinations; every value stays in training."""
    if not 0.0 <= heldout_frac < 1.0:
        raise ValueError(f"heldout_frac must be in [0, 1), got {heldout_frac}")
    combos = all_combinations()
    rng = np.random.default_rng([seed, 0x5EED])
    order = rng.permutation(len(combos))
    shuffled = [combos[i] for i in order]
    n_heldout = int(round(heldout_frac * len(combos)))
    heldout, train = shuffled[:n_heldout], shuffled[n_heldout:]
    # With 432 combinations a value can only vanish from training when nearly all are held out; move
    # combinations back until each value is present rather than silently producing a broken split.
    for i, values in enumerate(ATTRIBUTES.values()):
        for v in values:
            if not any(c[i] == v for c in train):
                moved = next(c for c in heldout if c[i] == v)
                heldout.remove(moved)
                train.append(moved)
    return Split(train=tuple(_covering_order(train)), heldout=tuple(heldout))


def assign_items(split: Split, n_train: int, n_heldout: int) -> tuple[list[Combination], list[Combination]]:
    """Combinations for n_train + n_heldout items, cycling each pool so repeats only start once all are used."""
    if n_heldout and not split.heldout:
        raise ValueError("held-out items requested but no combination is held out (heldout_frac is 0)")

    def cycle(pool: tuple[Combination, ...], n: int) -> list[Combination]:
        return [pool[i % len(pool)] for i in range(n)] if n else []

    return cycle(split.train, n_train), cycle(split.heldout, n_heldout)
