"""Pixels of the synthetic world: a coloured shape on a cluttered grey background, as a still or as frames.

All functions are pure given their numpy Generator. Geometry is in units of the image side (0..1) so the
same item renders consistently at any --image-size.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

from omniembed.data.synth.world import HUES

# Shape centre x per position, and radius per size, as fractions of the image side.
POSITION_X = {"left": 0.23, "centre": 0.5, "right": 0.77}
RADIUS = {"small": 0.125, "large": 0.18}
# Vertical travel of a moving shape over the clip (fraction of the side).
TRAVEL = 0.42
SPEED_LINE_ALPHA = 0.75  # opacity of the motion lines: visible, yet fainter than the solid shape
SPEED_LINE_MIN = 0.17  # shortest motion line, fraction of the side
SPEED_LINE_GAP = 0.06  # space between the shape and its motion lines: two pixels at 32 pixels
SUPERSAMPLE = 4  # anti-aliasing: coverage is averaged over a 4x4 sub-pixel grid


@dataclass(frozen=True)
class Look:
    """The per-item random jitter, drawn once so the image and every video frame agree."""

    rgb: tuple[float, float, float]  # shape colour in [0, 1]
    dx: float  # centre offsets (fraction of side)
    dy: float
    radius: float  # fraction of side
    background: float  # grey level of the background
    clutter: tuple[tuple[float, float, float, float], ...]  # (x, y, radius, grey) specks

    @staticmethod
    def draw(attrs: dict[str, str], rng: np.random.Generator) -> "Look":
        hue = (HUES[attrs["colour"]] + rng.uniform(-8, 8)) % 360
        rgb = colorsys.hsv_to_rgb(hue / 360, rng.uniform(0.75, 0.95), rng.uniform(0.8, 1.0))
        # Clutter is achromatic so it never competes with the shape's hue.
        clutter = tuple(
            (rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.01, 0.035), rng.uniform(0.15, 0.55))
            for _ in range(int(rng.integers(3, 8)))
        )
        return Look(
            rgb=tuple(float(c) for c in rgb),
            dx=float(rng.uniform(-0.02, 0.02)),
            dy=float(rng.uniform(-0.04, 0.04)),
            radius=float(RADIUS[attrs["size"]] * rng.uniform(0.92, 1.08)),
            background=float(rng.uniform(0.25, 0.4)),
            clutter=clutter,
        )


def _axis(size: int, lo: int, hi: int) -> np.ndarray:
    """Sub-pixel sample coordinates in [0, 1] for pixels lo..hi-1 of one axis; ((hi-lo)*S,)."""
    n = size * SUPERSAMPLE
    return (np.arange(lo * SUPERSAMPLE, hi * SUPERSAMPLE) + 0.5) / n


def _shape_inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean mask of points (u, v), in units of the radius around the centre, inside the shape."""
    if shape == "circle":
        return u * u + v * v <= 1.0
    if shape == "square":
        return (np.abs(u) <= 0.85) & (np.abs(v) <= 0.85)
    if shape == "triangle":  # apex up; v grows downwards
        return (v <= 0.8) & (v >= -1.0 + 1.8 * np.abs(u) / 1.04)
    if shape == "cross":
        arm = 0.32
        return ((np.abs(u) <= arm) & (np.abs(v) <= 1.0)) | ((np.abs(v) <= arm) & (np.abs(u) <= 1.0))
    raise ValueError(f"unknown shape {shape!r}")


def _box_coverage(inside, x_lo: float, x_hi: float, y_lo: float, y_hi: float, size: int) -> np.ndarray:
    """Anti-aliased coverage of the region inside(x, y) within a bounding box (fractions of the side)."""
    out = np.zeros((size, size), np.float32)
    x0, x1 = max(0, int(x_lo * size)), min(size, int(np.ceil(x_hi * size)))
    y0, y1 = max(0, int(y_lo * size)), min(size, int(np.ceil(y_hi * size)))
    if x0 >= x1 or y0 >= y1:
        return out
    x = _axis(size, x0, x1)[None, :]  # (1, w*S)
    y = _axis(size, y0, y1)[:, None]  # (h*S, 1)
    mask = inside(x, y).astype(np.float32)  # (h*S, w*S)
    h, w = y1 - y0, x1 - x0
    out[y0:y1, x0:x1] = mask.reshape(h, SUPERSAMPLE, w, SUPERSAMPLE).mean(axis=(1, 3))
    return out


def coverage(shape: str, cx: float, cy: float, radius: float, size: int) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of a shape centred at (cx, cy); (size, size) float32."""
    reach = 1.05 * radius  # every shape fits in 1.05 radii of its centre: only that box is sampled
    return _box_coverage(lambda x, y: _shape_inside(shape, (x - cx) / radius, (y - cy) / radius),
                         cx - reach, cx + reach, cy - reach, cy + reach, size)


def rect_coverage(x_lo: float, x_hi: float, y_lo: float, y_hi: float, size: int) -> np.ndarray:
    """Anti-aliased coverage of an axis-aligned rectangle; (size, size) float32."""
    return _box_coverage(lambda x, y: (x >= x_lo) & (x <= x_hi) & (y >= y_lo) & (y <= y_hi),
                         x_lo, x_hi, y_lo, y_hi, size)


def background(look: Look, size: int, rng: np.random.Generator) -> np.ndarray:
    """Grey background with a vertical gradient, grey specks and pixel noise; (size, size, 3) float32."""
    ramp = np.linspace(-0.05, 0.05, size, dtype=np.float32)[:, None]
    img = np.full((size, size), look.background, np.float32) + ramp
    for x, y, r, grey in look.clutter:
        img += (coverage("circle", x, y, r, size) * (grey - img)).astype(np.float32)
    img = img[..., None].repeat(3, axis=2)  # (H, W, 3)
    img += rng.normal(0.0, 0.025, img.shape).astype(np.float32)
    return img


def _paint(img: np.ndarray, cover: np.ndarray, rgb: tuple[float, float, float], alpha: float) -> None:
    a = (cover * alpha)[..., None]  # (H, W, 1)
    img *= 1.0 - a
    img += a * np.asarray(rgb, np.float32)


def to_uint8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def centre_at(attrs: dict[str, str], look: Look, t: float) -> tuple[float, float]:
    """Shape centre at clip time t in [0, 1]: rising moves up the frame, falling moves down."""
    direction = {"still": 0.0, "rising": -1.0, "falling": 1.0}[attrs["motion"]]
    y = 0.5 + look.dy + direction * TRAVEL * (t - 0.5)
    return POSITION_X[attrs["position"]] + look.dx, y


# How far each shape reaches above and below its centre, in radii (see _shape_inside).
_REACH_UP_DOWN = {"circle": (1.0, 1.0), "square": (0.85, 0.85), "triangle": (1.0, 0.8), "cross": (1.0, 1.0)}


def _speed_lines(img: np.ndarray, attrs: dict[str, str], look: Look, cx: float, cy: float, size: int) -> None:
    """Two comic-style motion lines on the trailing side: below a rising shape, above a falling one.

    They stop short of the shape so its outline stays clean for the shape attribute, and are a little
    fainter than it. Each is 6% of the side wide so it survives a 32-pixel tokenizer (lines 2.4% wide left a
    probe on 32-pixel image codes reading motion at chance level). They are at least SPEED_LINE_MIN of the
    side long and stand SPEED_LINE_GAP off the shape: lines one radius long are a 3-pixel stub touching a
    small shape at 32 pixels, and the trunk then confuses small shapes' motion and shape.
    """
    up, down = _REACH_UP_DOWN[attrs["shape"]]
    gap, length, half_w = SPEED_LINE_GAP, max(look.radius, SPEED_LINE_MIN), 0.03
    if attrs["motion"] == "rising":
        y_lo = cy + down * look.radius + gap
        y_hi = y_lo + length
    else:
        y_hi = cy - up * look.radius - gap
        y_lo = y_hi - length
    for k in (-0.5, 0.5):
        x = cx + k * look.radius
        _paint(img, rect_coverage(x - half_w, x + half_w, y_lo, y_hi, size), look.rgb, SPEED_LINE_ALPHA)


def render_image(attrs: dict[str, str], look: Look, size: int, rng: np.random.Generator) -> np.ndarray:
    """The still: the shape at mid-motion, with speed lines behind it when it moves; (H, W, 3) uint8."""
    img = background(look, size, rng)
    cx, cy = centre_at(attrs, look, 0.5)
    if attrs["motion"] != "still":
        _speed_lines(img, attrs, look, cx, cy, size)
    _paint(img, coverage(attrs["shape"], cx, cy, look.radius, size), look.rgb, 1.0)
    return to_uint8(img)


def render_frames(
    attrs: dict[str, str], look: Look, size: int, n_frames: int, rng: np.random.Generator
) -> np.ndarray:
    """The video: the shape actually moving over a fixed background; (T, H, W, 3) uint8."""
    base = background(look, size, rng)
    frames = np.empty((n_frames, size, size, 3), np.uint8)
    for i in range(n_frames):
        t = i / max(n_frames - 1, 1)
        img = base + rng.normal(0.0, 0.01, base.shape).astype(np.float32)  # sensor-like flicker per frame
        _paint(img, coverage(attrs["shape"], *centre_at(attrs, look, t), look.radius, size), look.rgb, 1.0)
        frames[i] = to_uint8(img)
    return frames
