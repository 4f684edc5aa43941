"""Which sample images the page may show: real, intact PNGs that match their manifest entry, nothing else."""

from __future__ import annotations

import io
import zlib

import pytest
from dash_helpers import HOSTILE, meta_of, png_bytes
from PIL import Image

from paris_node.sampling.sample_png import BadSample, check_sample, sample_entry


def test_a_good_png_passes_with_its_prompts():
    data = png_bytes(["a red circle", HOSTILE])
    checked = check_sample(data, meta_of(data, "bafkx"))
    assert (checked.width, checked.height) == (32, 16)
    assert checked.prompts == ("a red circle", HOSTILE)  # returned as text; the renderer escapes it


def _chunk(kind: bytes, body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")


def _bomb(side: int) -> bytes:
    """A valid PNG header claiming side x side pixels (a decompression bomb when large) with a tiny body."""
    ihdr = side.to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"")) + _chunk(b"IEND", b"")


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.mark.parametrize(
    "data, reason",
    [
        (_jpeg(), "not a PNG"),
        (b"<svg onload=alert(1)>", "not a PNG"),
        (png_bytes()[:60], "does not decode"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "does not decode"),
        (_bomb(3000), "outside"),
        (_bomb(30000), "bomb"),
    ],
)
def test_anything_else_is_rejected(data, reason):
    with pytest.raises(BadSample, match=reason):
        check_sample(data, meta_of(data, "bafkx"))


def test_bytes_must_match_the_manifest():
    data = png_bytes()
    with pytest.raises(BadSample, match="sha256"):
        check_sample(data, {**meta_of(data, "bafkx"), "sha256": "0" * 64})
    with pytest.raises(BadSample, match="bytes"):
        check_sample(data, {**meta_of(data, "bafkx"), "size": len(data) + 1})


def test_prompts_chunk_that_is_not_a_list_of_strings_is_dropped():
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("paris:prompts", '{"a": 1}')
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="PNG", pnginfo=info)
    assert check_sample(buf.getvalue()).prompts == ()


def test_sample_entry_by_role_or_name():
    files = {"model.safetensors": {"cid": "a", "role": "weights"}, "sample.png": {"cid": "b", "role": "sample"}}
    assert sample_entry(files) == ("sample.png", files["sample.png"])
    assert sample_entry({"sample.png": {"cid": "b"}}) == ("sample.png", {"cid": "b"})
    assert sample_entry({"model.safetensors": {"cid": "a"}}) is None
