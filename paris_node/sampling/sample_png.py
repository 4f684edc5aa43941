"""The checkpoint sample: a small PNG an expert's trainer renders at checkpoint time and publishes with it.

Format: `sample.png` in the checkpoint folder (paris_node/checkpoint/format.py: role `sample`), a grid of
fixed-prompt, fixed-seed samples, with the prompts as a JSON list in a PNG text chunk `paris:prompts` (so the
page can caption each image without trusting anything else).

`check_sample` is what a reader runs before showing one: size and sha256 as the manifest says, the PNG
signature, a full decode with Pillow, and size caps (a peer's PNG must not be a decompression bomb).
Pure module: bytes in, verdict out (Pillow only, no disk, no network).
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from dataclasses import dataclass
from typing import Any

from PIL import Image

from paris_node.checkpoint.format import ROLE_SAMPLE as SAMPLE_ROLE
from paris_node.checkpoint.format import SAMPLE as SAMPLE_FILE

PROMPTS_KEY = "paris:prompts"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_BYTES = 2 << 20
MAX_SIDE = 2048
MAX_PROMPTS = 16
MAX_PROMPT_CHARS = 300


def sample_entry(files: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]] | None:
    """The manifest's sample file (by role, else by its well-known name), or None."""
    for name, meta in sorted(files.items()):
        if isinstance(meta, dict) and meta.get("role") == SAMPLE_ROLE:
            return name, meta
    meta = files.get(SAMPLE_FILE)
    return (SAMPLE_FILE, meta) if isinstance(meta, dict) else None


def encode_prompts(prompts: list[str]) -> str:
    return json.dumps([p[:MAX_PROMPT_CHARS] for p in prompts[:MAX_PROMPTS]])


@dataclass(frozen=True)
class CheckedSample:
    data: bytes
    width: int
    height: int
    prompts: tuple[str, ...]


class BadSample(ValueError):
    """Not a PNG we show; the message says why."""


def check_sample(data: bytes, meta: dict[str, Any] | None = None) -> CheckedSample:
    """`data` as a verified sample PNG, or BadSample. With `meta` ({size, sha256}), the bytes must match it."""
    if len(data) > MAX_BYTES:
        raise BadSample(f"{len(data)} bytes, over the {MAX_BYTES}-byte cap for a sample")
    if meta is not None:
        if meta.get("size") != len(data):
            raise BadSample(f"{len(data)} bytes, the manifest says {meta.get('size')}")
        if meta.get("sha256") != hashlib.sha256(data).hexdigest():
            raise BadSample("sha256 differs from the manifest")
    if not data.startswith(PNG_SIGNATURE):
        raise BadSample("not a PNG (wrong signature)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=["PNG"]) as im:
                width, height = im.size
                if width > MAX_SIDE or height > MAX_SIDE or width < 1 or height < 1:
                    raise BadSample(f"{width}x{height} pixels, outside 1..{MAX_SIDE} a side")
                im.load()  # a full decode: a truncated or corrupt stream fails here
                text = dict(getattr(im, "text", {}) or {})
    except BadSample:
        raise
    except Exception as e:  # Pillow raises many kinds on hostile input; any of them means "do not show"
        raise BadSample(f"does not decode as PNG: {type(e).__name__}: {e}") from None
    return CheckedSample(data, width, height, _prompts(text.get(PROMPTS_KEY)))


def _prompts(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, str) or len(raw) > MAX_PROMPTS * (MAX_PROMPT_CHARS + 8) + 2:
        return ()
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return ()
    if not isinstance(value, list):
        return ()
    return tuple(str(p)[:MAX_PROMPT_CHARS] for p in value[:MAX_PROMPTS] if isinstance(p, str))
