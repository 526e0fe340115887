"""Paraphrased captions and interleaved-document text for the synthetic world.

Every phrase names exactly one attribute value (no synonym is shared between values), so a caption is
unambiguous about the item's full attribute set whatever template and word order it uses.
"""

from __future__ import annotations

import numpy as np

# Value -> synonyms, per attribute. Adjective forms go before the noun; the shape entry is the noun.
SHAPE_NOUNS = {
    "circle": ("circle", "disc", "round shape", "dot"),
    "square": ("square", "box", "block", "four-sided shape"),
    "triangle": ("triangle", "three-sided shape", "wedge", "pyramid shape"),
    "cross": ("cross", "plus sign", "plus shape"),
}
COLOUR_WORDS = {
    "red": ("red", "scarlet", "crimson"),
    "yellow": ("yellow", "golden", "lemon-coloured"),
    "green": ("green", "emerald", "grass-green"),
    "cyan": ("cyan", "turquoise", "aqua"),
    "blue": ("blue", "azure", "cobalt"),
    "magenta": ("magenta", "pink", "fuchsia"),
}
SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big", "huge")}
# Position as an adverbial after the noun, and as a short label for list-style captions.
POSITION_PHRASES = {
    "left": ("on the left", "at the left side", "in the left part of the frame"),
    "centre": ("in the centre", "in the middle", "at the centre of the frame"),
    "right": ("on the right", "at the right side", "in the right part of the frame"),
}
POSITION_LABELS = {"left": ("left side", "left"), "centre": ("centre", "middle"), "right": ("right side", "right")}
MOTION_PHRASES = {
    "still": ("standing still", "not moving", "staying put"),
    "rising": ("moving up", "going upwards", "rising"),
    "falling": ("moving down", "going downwards", "falling"),
}
MOTION_LABELS = {"still": ("still", "static", "motionless"), "rising": ("rising", "ascending"),
                 "falling": ("falling", "descending")}


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def caption(attrs: dict[str, str], rng: np.random.Generator) -> str:
    """One paraphrase of the full attribute set, from a random template with random synonyms."""
    shape = _pick(rng, SHAPE_NOUNS[attrs["shape"]])
    colour = _pick(rng, COLOUR_WORDS[attrs["colour"]])
    size = _pick(rng, SIZE_WORDS[attrs["size"]])
    where = _pick(rng, POSITION_PHRASES[attrs["position"]])
    moving = _pick(rng, MOTION_PHRASES[attrs["motion"]])
    where_label = _pick(rng, POSITION_LABELS[attrs["position"]])
    moving_label = _pick(rng, MOTION_LABELS[attrs["motion"]])
    templates = (
        lambda: f"{_article(size)} {size} {colour} {shape} {where} {moving}",
        lambda: f"{colour} {shape}, {size}, {where_label}, {moving_label}",
        lambda: f"{_article(colour)} {colour} {shape} {moving} {where}, {size}",
        lambda: f"{moving_label} {size} {shape} in {colour}, {where_label}",
        lambda: f"there is {_article(size)} {size} {shape} {where}; it is {colour} and {moving}",
        lambda: f"{where_label}: {_article(size)} {size} {colour} {shape}, {moving}",
        lambda: f"{_article(colour)} {colour}, {size} {shape} that is {moving} {where}",
    )
    return templates[int(rng.integers(len(templates)))]()


def captions(attrs: dict[str, str], k: int, rng: np.random.Generator) -> list[str]:
    """k distinct paraphrases (fewer only if the templates run out, which they do not for k <= 20)."""
    out: list[str] = []
    for _ in range(50 * k):
        text = caption(attrs, rng)
        if text not in out:
            out.append(text)
            if len(out) == k:
                break
    return out


def short_name(attrs: dict[str, str], rng: np.random.Generator) -> str:
    """A noun phrase for documents: 'a big scarlet disc on the left, rising'."""
    size = _pick(rng, SIZE_WORDS[attrs["size"]])
    return (
        f"{_article(size)} {size} {_pick(rng, COLOUR_WORDS[attrs['colour']])} "
        f"{_pick(rng, SHAPE_NOUNS[attrs['shape']])} {_pick(rng, POSITION_PHRASES[attrs['position']])}, "
        f"{_pick(rng, MOTION_PHRASES[attrs['motion']])}"
    )


# Document layouts: text before each media segment. "{name}" is the item's short name.
SINGLE_ITEM_LAYOUTS = (
    (("Here is {name}:", "image"), ("It sounds like this:", "audio")),
    (("Watch {name}:", "video"), ("The same thing as a picture:", "image")),
    (("Listen to {name}:", "audio"), ("and see it:", "image"), ("and watch it move:", "video")),
    (("This picture shows {name}.", "image"),),
    (("A clip of {name}, with its sound:", "video"), ("The sound alone:", "audio")),
)
PAIR_LINKS = ("Next to it,", "Compare it with", "Then comes", "After that,")
