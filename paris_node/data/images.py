"""Turning any image a user brings into an RGB square at the training resolution.

Real image collections hold palette PNGs, 16-bit scans, alpha channels, CMYK JPEGs and truncated
downloads. Every loader goes through `load_image` so they are all handled the same way: odd modes
are converted, unreadable files raise `BadImage` (the datasets count and skip those).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

# A truncated file must fail loudly rather than come back half grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
BACKGROUND = (255, 255, 255)  # transparent pixels are composited onto white


class BadImage(Exception):
    """An image that cannot be decoded (corrupt, truncated, not an image). Datasets skip and count it."""


def _sixteen_bit_to_l(img: Image.Image) -> Image.Image:
    """Scale 16/32-bit grey ('I;16', 'I') and float ('F') images to 8 bits instead of clipping."""
    arr = np.asarray(img)
    if img.mode == "F":
        arr = np.nan_to_num(arr.astype(np.float64))
        scale = 255.0 if arr.max(initial=0) <= 1.0 else 1.0
        return Image.fromarray(np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8))
    arr = arr.astype(np.int64)
    top = int(arr.max(initial=0))
    if top > 255:  # a 16-bit range: keep the high byte
        arr = arr >> 8 if top <= 65535 else (arr * 255) // top
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB. Alpha (including palette transparency) is composited onto white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        img = _sixteen_bit_to_l(img)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("LA", "PA", "La", "RGBa"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        canvas = Image.new("RGB", img.size, BACKGROUND)
        canvas.paste(img, mask=img.getchannel("A"))
        return canvas
    if img.mode != "RGB":
        img = img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV
    return img


def fit(img: Image.Image, resolution: int, center_crop: bool = True) -> Image.Image:
    """Resize to `resolution` x `resolution`.

    center_crop=True scales the short side to `resolution` and crops the middle (keeps aspect);
    False squashes the whole image into the square (keeps everything in view).
    """
    w, h = img.size
    if center_crop and w != h:
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        img = img.crop((left, top, left + side, top + side))
    if img.size != (resolution, resolution):
        img = img.resize((resolution, resolution), Image.Resampling.BICUBIC, reducing_gap=None)
    return img


def load_image(source: str | Path | bytes, resolution: int, center_crop: bool = True) -> Image.Image:
    """Decode a file path or encoded bytes to an RGB square. Raises BadImage for anything unreadable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            fp = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")
            with fp, Image.open(fp) as img:
                img.load()
                if getattr(img, "n_frames", 1) > 1:
                    img.seek(0)
                return fit(to_rgb(img), resolution, center_crop)
    except (
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as e:
        raise BadImage(f"{source if not isinstance(source, bytes) else 'image bytes'}: {e}") from None


def to_uint8_chw(img: Image.Image) -> np.ndarray:
    """RGB PIL image -> uint8 array [3, H, W] (the layout shards store)."""
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1))
