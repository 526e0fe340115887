"""Decode images (PNG, JPEG, WebP; GIF, BMP, TIFF too) to (H, W, 3) uint8 RGB with Pillow."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps

from omniembed.errors import MediaError
from omniembed.media.limits import MAX_IMAGE_PIXELS, MAX_MEDIA_BYTES
from omniembed.media.sniff import IMAGE_FORMATS, describe, sniff_format
from omniembed.media.source import Source, read_source

# Pictures for an input of `side` pixels are decoded (JPEG) or scaled (video frames) down to no less than
# REDUCE_OVER x side before the tokenizer's own resize, so that resize still sees every detail it keeps.
REDUCE_OVER = 4
MAX_REDUCTION = 16
# Transparent pixels become this colour: white, as a page or viewer shows them.
_BACKGROUND = (255, 255, 255)


def decode_image(
    src: Source, *, max_pixels: int = MAX_IMAGE_PIXELS, max_bytes: int = MAX_MEDIA_BYTES, side: int | None = None
) -> np.ndarray:
    """Return (H, W, 3) uint8 RGB, upright (EXIF orientation applied), alpha composited on white.

    Palette, greyscale, 16-bit and CMYK images are converted; an animation gives its first frame. The
    pixel count is checked against `max_pixels` from the header, before any pixel is decoded. `side`: the
    size the pixels are for (a tokenizer's input); a JPEG much larger than that is decoded at a reduced
    scale in its DCT (1/2, 1/4 or 1/8), keeping both sides at least REDUCE_OVER x `side`.
    """
    data, name = read_source(src, max_bytes)
    fmt = sniff_format(data)
    if fmt not in IMAGE_FORMATS:
        raise MediaError(name, f"expected an image, but the input is {describe(fmt, data)}")
    try:
        # Pillow's own bomb guard (Image.MAX_IMAGE_PIXELS, a process-wide setting) still applies on open:
        # past twice its value it raises, which becomes MediaError below; so max_pixels can only tighten it.
        with Image.open(io.BytesIO(data)) as image:
            _check_pixels(name, image.size, max_pixels)
            if side and image.format == "JPEG" and min(image.size) > REDUCE_OVER * side:
                image.draft("RGB", (REDUCE_OVER * side, REDUCE_OVER * side))
            image.load()
            return _to_rgb(_upright(image))
    except MediaError:
        raise
    except Image.DecompressionBombError as exc:
        raise MediaError(name, f"decompression bomb refused: {exc}") from exc
    except MemoryError:
        raise
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, struct.error... on bad data
        raise MediaError(name, f"corrupt or truncated {fmt.upper()}: {type(exc).__name__}: {exc}") from exc


def _check_pixels(name: str, size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise MediaError(name, f"image header declares an empty {width}x{height} image")
    if width * height > max_pixels:
        raise MediaError(
            name, f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels} "
            "(possible decompression bomb)"
        )


def _upright(image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # damaged EXIF: the pixels are fine, only the orientation hint is lost
        return image


def _to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit greyscale: Pillow's convert("RGB") clips instead of scaling, so scale to 8 bits here.
        grey = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") else max(float(grey.max()), 1.0)
        grey8 = np.clip(grey / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey8[:, :, None], 3, axis=2))  # (H, W) -> (H, W, 3)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, _BACKGROUND + (255,))
        image = Image.alpha_composite(canvas, rgba)
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(rgb)  # (H, W, 3)


def reduced_size(width: int, height: int, side: int | None) -> tuple[int, int] | None:
    """The size a width x height picture is scaled to before squaring to `side`: divided by the largest power
    of two (up to MAX_REDUCTION) that keeps the shorter side at least REDUCE_OVER x side, as JPEG's DCT
    scaling does, so the aspect is kept exactly; None when no such reduction exists."""
    if not side:
        return None
    factor = 1
    while factor < MAX_REDUCTION and min(width, height) // (2 * factor) >= REDUCE_OVER * side:
        factor *= 2
    if factor == 1:
        return None
    return -(-width // factor), -(-height // factor)


def to_square(img: Image.Image, size: int, policy: str) -> Image.Image:
    """Resize policy: "stretch" ignores aspect; "crop" keeps the centre square; "pad" letterboxes on black.
    The one copy both the torch tokenizer and the torch-free runtime use, so their pixels agree exactly."""
    w, h = img.size
    if policy == "crop":
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        img = img.crop((left, top, left + side, top + side))
    elif policy == "pad" and w != h:
        side = max(w, h)
        canvas = Image.new("RGB", (side, side))
        canvas.paste(img, ((side - w) // 2, (side - h) // 2))
        img = canvas
    return img.resize((size, size), Image.BICUBIC) if img.size != (size, size) else img
