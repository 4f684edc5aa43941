"""Each dataset kind on fixtures the tests make: shapes, emoji, imagefolder, webdataset; bad input."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from paris_node.data import emoji
from paris_node.data.datasets import open_dataset
from paris_node.data.images import BadImage, fit, load_image, to_rgb
from paris_node.data.shapes import COLOURS, render_shape, shape_params
from paris_node.errors import UsageError

# ------------------------------------------------------------------------------------------- shapes


def test_shapes_are_deterministic_and_pinned():
    a = [render_shape(i, 32)[0].tobytes() for i in range(4)]
    b = [render_shape(i, 32)[0].tobytes() for i in range(4)]
    assert a == b
    # Golden digest: the demo run id depends on these bytes being the same on every machine.
    assert hashlib.sha256(b"".join(a)).hexdigest()[:16] == GOLDEN_SHAPES


GOLDEN_SHAPES = "d32cef86f96f3f20"


def test_shapes_captions_say_what_is_drawn():
    for i in range(40):
        img, caption = render_shape(i, 32)
        shape, colour, background, cx, cy, r = shape_params(i)
        assert caption == f"a {colour} {shape} on a {background} background"
        arr = np.asarray(img)
        assert tuple(arr[0, 0]) == COLOURS[background]  # corners are always background
        if shape in ("circle", "square", "diamond", "cross"):  # centre is inside these shapes
            y, x = cy * 32 // 64, cx * 32 // 64
            assert tuple(arr[y, x]) == COLOURS[colour], caption


def test_shapes_spec_count_seed_and_take():
    ds = open_dataset("shapes:5", 16)
    assert len(ds) == 5 and len(ds.take(None)) == 5 and ds.skipped == 0
    other = open_dataset("shapes:5", 16, seed=1)
    assert [c for _, c in ds] != [c for _, c in other]
    assert ds.take(2)[1][0].size == (16, 16)
    with pytest.raises(UsageError, match="sample count"):
        open_dataset("shapes:lots", 16)
    with pytest.raises(UsageError, match="unknown dataset"):
        open_dataset("laion", 16)
    with pytest.raises(UsageError, match="resolution"):
        open_dataset("shapes", 4)


# -------------------------------------------------------------------------------------------- emoji

FONT = emoji.FONT_PATHS[0]
needs_font = pytest.mark.skipif(not __import__("os").path.isfile(FONT), reason="fonts-noto-color-emoji not installed")


@needs_font
def test_emoji_glyphs_captions_and_render():
    ds = open_dataset("emoji", 24)
    captions = {c for _, c in ds.items}
    assert len(ds) > 3000  # single code points and sequences (tones, ZWJ, flags, keycaps)
    assert {"red apple", "cat face", "flag GB", "keycap 1"} <= captions
    assert any(c.endswith("medium skin tone") for c in captions)
    items = []
    for item in ds:
        items.append(item)
        if len(items) == 3:
            break
    for img, caption in items:
        assert img.mode == "RGB" and img.size == (24, 24) and caption
        assert len(np.unique(np.asarray(img).reshape(-1, 3), axis=0)) > 5  # a real glyph, not a blank square


def test_emoji_missing_font_says_how_to_install(tmp_path):
    with pytest.raises(UsageError, match="apt-get install fonts-noto-color-emoji"):
        open_dataset(f"emoji:{tmp_path / 'none.ttf'}", 24)


def test_emoji_sequence_captions():
    assert emoji.caption_for((0x1F34E,)) == "red apple"
    assert emoji.caption_for((0x1F1EC, 0x1F1E7)) == "flag GB"
    assert emoji.caption_for((0x1F3C3, 0x1F3FD, 0x200D, 0x2640, 0xFE0F)) == "woman runner: medium skin tone"
    assert emoji.caption_for((0x31, 0xFE0F, 0x20E3)) == "keycap 1"


# ------------------------------------------------------------------------------------ image modes


def test_odd_modes_become_rgb(odd_mode_images, encode):
    for name, img in odd_mode_images.items():
        fmt = "JPEG" if name == "cmyk" else "PNG"
        out = load_image(encode(img, fmt), 8)
        assert out.mode == "RGB" and out.size == (8, 8), name
    # transparency composites onto white, 16-bit keeps its range instead of clipping to white
    assert to_rgb(odd_mode_images["rgba"]).getpixel((0, 0)) == (255, 255, 255)
    assert to_rgb(odd_mode_images["rgba"]).getpixel((8, 8)) == (0, 0, 255)
    grey = np.asarray(to_rgb(odd_mode_images["grey16"]))
    assert grey.min() == 0 and grey.max() == 255 and len(np.unique(grey)) > 200


def test_truncated_and_garbage_images_raise_badimage(encode):
    data = encode(Image.effect_noise((64, 64), 50).convert("RGB"))
    with pytest.raises(BadImage):
        load_image(data[: len(data) // 2], 8)
    with pytest.raises(BadImage):
        load_image(b"not an image at all", 8)


def test_center_crop_versus_squash():
    img = Image.new("RGB", (30, 10), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 10, 10))  # left third blue
    assert fit(img, 10, center_crop=True).getpixel((0, 5)) == (255, 0, 0)  # the blue third is cropped away
    assert fit(img, 10, center_crop=False).getpixel((0, 5))[2] > 200  # squashed: still visible


# ------------------------------------------------------------------------------------ imagefolder


def test_imagefolder_metadata_sidecars_and_skips(tmp_path, encode, odd_mode_images):
    (tmp_path / "sub").mkdir()
    Image.new("RGB", (12, 12), (255, 0, 0)).save(tmp_path / "a.png")
    Image.new("RGB", (12, 12), (0, 255, 0)).save(tmp_path / "sub" / "b.jpg")
    odd_mode_images["cmyk"].save(tmp_path / "c.jpg")
    odd_mode_images["palette_transparent"].save(tmp_path / "d.png")
    Image.new("RGB", (12, 12)).save(tmp_path / "nocaption.png")
    (tmp_path / "broken.png").write_bytes(encode(Image.effect_noise((32, 32), 9).convert("RGB"))[:100])
    (tmp_path / "metadata.jsonl").write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"file_name": "a.png", "text": "a red square"},
                {"file_name": "sub/b.jpg", "caption": "a green square"},
                {"file_name": "broken.png", "text": "broken"},
            ]
        )
        + "\n"
    )
    (tmp_path / "c.txt").write_text("a cyan thing\n")
    (tmp_path / "d.txt").write_text("a palette picture")
    ds = open_dataset(f"imagefolder:{tmp_path}", 8)
    items = ds.take(None)
    assert [c for _, c in items] == ["a red square", "a cyan thing", "a palette picture", "a green square"]
    assert all(img.size == (8, 8) and img.mode == "RGB" for img, _ in items)
    assert ds.skip_reasons == {"no caption": 1, "unreadable image": 1}


def test_imagefolder_bad_input(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        open_dataset(f"imagefolder:{tmp_path / 'missing'}", 8)
    with pytest.raises(UsageError, match="holds no images"):
        open_dataset(f"imagefolder:{tmp_path}", 8)
    Image.new("RGB", (4, 4)).save(tmp_path / "x.png")
    with pytest.raises(UsageError, match="no usable image"):
        open_dataset(f"imagefolder:{tmp_path}", 8).take(None)  # no captions anywhere
    (tmp_path / "metadata.jsonl").write_text('{"file_name": "x.png", "text": "ok"}\n{oops\n')
    with pytest.raises(UsageError, match="metadata.jsonl:2"):
        open_dataset(f"imagefolder:{tmp_path}", 8)


# ------------------------------------------------------------------------------------- webdataset


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _make_tar(path, samples: list[tuple[str, dict[str, bytes]]]) -> None:
    with tarfile.open(path, "w") as tar:
        for key, parts in samples:
            for ext, data in parts.items():
                _add(tar, f"{key}.{ext}" if ext else key, data)


def test_webdataset_streams_and_counts_strays(tmp_path, encode):
    jpg = encode(Image.new("RGB", (10, 10), (200, 10, 10)), "JPEG")
    png = encode(Image.new("RGBA", (10, 10), (0, 0, 200, 255)))
    _make_tar(
        tmp_path / "shard-000.tar",
        [
            ("000000", {"jpg": jpg, "txt": b"a red photo", "json": b"{}"}),
            ("README", {"": b"stray member"}),
            ("000001", {"png": png, "txt": b"a blue picture"}),
            ("000002", {"jpg": jpg}),  # no caption
            ("000003", {"json": b'{"caption": "caption only"}'}),  # no image
            ("000004", {"jpg": b"garbage", "txt": b"broken"}),
        ],
    )
    _make_tar(tmp_path / "shard-001.tar", [("000005", {"jpg": jpg, "json": b'{"caption": "from json"}'})])
    _make_tar(tmp_path / "full.tar", [("000006", {"jpg": jpg, "txt": b"before the cut"}), ("000007", {"jpg": jpg})])
    with tarfile.open(tmp_path / "full.tar") as tar:
        cut = tar.getmember("000007.jpg").offset_data + 10
    (tmp_path / "shard-002.tar").write_bytes((tmp_path / "full.tar").read_bytes()[:cut])  # download cut short
    (tmp_path / "full.tar").unlink()
    ds = open_dataset(f"webdataset:{tmp_path}/shard-{{000..002}}.tar", 8)
    captions = [c for _, c in ds.take(None)]
    assert captions == ["a red photo", "a blue picture", "from json", "before the cut"]
    assert ds.skip_reasons["no caption"] == 1
    assert ds.skip_reasons["member without an image"] == 2  # README and the json-only sample
    assert ds.skip_reasons["unreadable image"] == 1
    assert ds.skip_reasons["truncated or corrupt tar"] == 1
    assert [c for _, c in open_dataset(f"webdataset:{tmp_path}/*.tar", 8)] == captions


def test_webdataset_missing_files(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        open_dataset(f"webdataset:{tmp_path}/shard-{{000..001}}.tar", 8)
    with pytest.raises(UsageError, match="matches no tar"):
        open_dataset(f"webdataset:{tmp_path}/*.tar", 8)
