"""`emoji`: the glyphs of Noto Color Emoji rendered with Pillow, captioned with their Unicode names.

The font's own tables say which emoji it can draw: the `cmap` gives the single code points and the
`GSUB` ligatures give the sequences (skin tones, ZWJ families and professions, flags, keycaps).
Both are read here with a few lines of `struct` so no font library is needed. Captions come from
`unicodedata.name` of the parts ("red apple", "woman firefighter: medium skin tone", "flag GB").

Noto Color Emoji is a CBDT bitmap font: Pillow draws it only at size 109 with embedded colour;
we crop the glyph, centre it on white and downscale. Output depends on the installed font and
FreeType, so the emoji dataset is not used by the cross-machine demo run (that is `shapes`).
"""

from __future__ import annotations

import functools
import struct
import unicodedata
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from paris_node.errors import UsageError

FONT_PATHS = (
    "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf",
    "/usr/share/fonts/noto/NotoColorEmoji.ttf",
    "/usr/share/fonts/google-noto-emoji/NotoColorEmoji.ttf",
    "/usr/local/share/fonts/NotoColorEmoji.ttf",
)
FONT_SIZE = 109  # the only size the CBDT strikes render at
ZWJ, VS16, KEYCAP = 0x200D, 0xFE0F, 0x20E3
TONES = {0x1F3FB: "light", 0x1F3FC: "medium-light", 0x1F3FD: "medium", 0x1F3FE: "medium-dark", 0x1F3FF: "dark"}
_SUBDIVISIONS = {"gbeng": "England", "gbsct": "Scotland", "gbwls": "Wales"}


def find_font(path: str | None = None) -> Path:
    """The Noto Color Emoji font file, or a UsageError saying how to install it."""
    for cand in (path,) if path else FONT_PATHS:
        if cand and Path(cand).is_file():
            return Path(cand)
    raise UsageError(
        "the emoji dataset needs the Noto Color Emoji font "
        f"({path or FONT_PATHS[0]} not found): install it with "
        "'sudo apt-get install fonts-noto-color-emoji' (Debian/Ubuntu) or 'dnf install google-noto-emoji-color-fonts'"
    )


# ---------------------------------------------------------------------------------------------
#                                 Reading cmap and GSUB ligatures
# ---------------------------------------------------------------------------------------------


def _tables(data: bytes) -> dict[bytes, bytes]:
    (num,) = struct.unpack_from(">H", data, 4)
    out = {}
    for i in range(num):
        tag, _, off, length = struct.unpack_from(">4sIII", data, 12 + 16 * i)
        out[tag] = data[off : off + length]
    return out


def _cmap(table: bytes) -> dict[int, int]:
    """code point -> glyph id, from the format 12 (or format 4) subtable."""
    (num,) = struct.unpack_from(">H", table, 2)
    subtables = [struct.unpack_from(">HHI", table, 4 + 8 * i) for i in range(num)]
    for _, _, off in subtables:
        if struct.unpack_from(">H", table, off)[0] == 12:
            (groups,) = struct.unpack_from(">I", table, off + 12)
            out = {}
            for g in range(groups):
                start, end, glyph = struct.unpack_from(">III", table, off + 16 + 12 * g)
                for cp in range(start, end + 1):
                    out[cp] = glyph + cp - start
            return out
    for _, _, off in subtables:
        if struct.unpack_from(">H", table, off)[0] == 4:
            (segx2,) = struct.unpack_from(">H", table, off + 6)
            seg = segx2 // 2
            ends = struct.unpack_from(f">{seg}H", table, off + 14)
            starts = struct.unpack_from(f">{seg}H", table, off + 16 + segx2)
            deltas = struct.unpack_from(f">{seg}h", table, off + 16 + 2 * segx2)
            ro_pos = off + 16 + 3 * segx2
            range_offsets = struct.unpack_from(f">{seg}H", table, ro_pos)
            out = {}
            for i in range(seg):
                for cp in range(starts[i], ends[i] + 1):
                    if cp == 0xFFFF:
                        continue
                    if range_offsets[i] == 0:
                        out[cp] = (cp + deltas[i]) & 0xFFFF
                    else:
                        pos = ro_pos + 2 * i + range_offsets[i] + 2 * (cp - starts[i])
                        glyph = struct.unpack_from(">H", table, pos)[0]
                        if glyph:
                            out[cp] = (glyph + deltas[i]) & 0xFFFF
            return out
    return {}


def _coverage(table: bytes, off: int) -> list[int]:
    fmt, count = struct.unpack_from(">HH", table, off)
    if fmt == 1:
        return list(struct.unpack_from(f">{count}H", table, off + 4))
    glyphs: list[int] = []
    for i in range(count):
        start, end, _ = struct.unpack_from(">HHH", table, off + 4 + 6 * i)
        glyphs.extend(range(start, end + 1))
    return glyphs


def _ligatures(gsub: bytes) -> list[tuple[int, tuple[int, ...]]]:
    """(ligature glyph, component glyph ids) from every lookup-type-4 (and extension) subtable."""
    (lookup_list,) = struct.unpack_from(">H", gsub, 8)
    (count,) = struct.unpack_from(">H", gsub, lookup_list)
    out = []
    for i in range(count):
        lookup = lookup_list + struct.unpack_from(">H", gsub, lookup_list + 2 + 2 * i)[0]
        kind, _, subcount = struct.unpack_from(">HHH", gsub, lookup)
        for j in range(subcount):
            sub = lookup + struct.unpack_from(">H", gsub, lookup + 6 + 2 * j)[0]
            sub_kind = kind
            if kind == 7:  # extension: the real subtable is a 32-bit offset away
                _, sub_kind, ext = struct.unpack_from(">HHI", gsub, sub)
                sub += ext
            if sub_kind != 4:
                continue
            _, cov_off, nsets = struct.unpack_from(">HHH", gsub, sub)
            firsts = _coverage(gsub, sub + cov_off)
            for s in range(nsets):
                lset = sub + struct.unpack_from(">H", gsub, sub + 6 + 2 * s)[0]
                (nligs,) = struct.unpack_from(">H", gsub, lset)
                for k in range(nligs):
                    lig = lset + struct.unpack_from(">H", gsub, lset + 2 + 2 * k)[0]
                    glyph, ncomp = struct.unpack_from(">HH", gsub, lig)
                    rest = struct.unpack_from(f">{ncomp - 1}H", gsub, lig + 4)
                    out.append((glyph, (firsts[s], *rest)))
    return out


# ---------------------------------------------------------------------------------------------
#                                    Names and the glyph list
# ---------------------------------------------------------------------------------------------


def _name(cp: int) -> str | None:
    name = unicodedata.name(chr(cp), None)
    return name.lower() if name else None


def caption_for(seq: tuple[int, ...]) -> str | None:
    """A caption from the Unicode names of a sequence's parts; None if a part has no name."""
    cps = [c for c in seq if c not in (ZWJ, VS16)]
    if len(cps) == 2 and all(0x1F1E6 <= c <= 0x1F1FF for c in cps):
        return "flag " + "".join(chr(c - 0x1F1E6 + ord("A")) for c in cps)
    if cps and cps[0] == 0x1F3F4 and len(cps) > 2 and all(0xE0020 <= c <= 0xE007F for c in cps[1:]):
        code = "".join(chr(c - 0xE0000) for c in cps[1:-1])
        return f"flag {_SUBDIVISIONS.get(code, code)}"
    if KEYCAP in cps:
        return "keycap " + "".join(chr(c) for c in cps if c != KEYCAP)
    tones = [TONES[c] for c in cps if c in TONES]
    parts = [c for c in cps if c not in TONES]
    words = [_name(c) for c in parts]
    if not words or any(w is None for w in words):
        return None
    for sign, person in (("female sign", "woman"), ("male sign", "man")):
        if len(words) > 1 and sign in words[1:]:
            words.remove(sign)
            words[0] = f"{person} {words[0]}"
    caption = " ".join(words)
    if tones:
        caption += ": " + ", ".join(dict.fromkeys(tones)) + " skin tone"
    return caption


def _is_emoji_point(cp: int) -> bool:
    # Leave out sequence parts (tones, regional letters, tags, joiners) and ASCII keycap bases.
    return (
        cp > 0xFF
        and cp not in TONES
        and not 0x1F1E6 <= cp <= 0x1F1FF
        and not 0xE0000 <= cp <= 0xE007F
        and (cp not in (ZWJ, VS16, KEYCAP, 0xFE0E))
    )


def _well_formed(seq: tuple[int, ...]) -> bool:
    """No sequence starts with a joiner or a tone, and a tone never follows a joiner."""
    if seq[0] in TONES or seq[0] == ZWJ:
        return False
    return not any(a == ZWJ and b in TONES for a, b in zip(seq, seq[1:], strict=False))


def _spelling_score(seq: tuple[int, ...]) -> tuple:
    """Rank a ZWJ spelling: the real one starts with the toned person and ends with a sign or object."""
    people = {0x1F466, 0x1F467, 0x1F468, 0x1F469, 0x1F9D1, 0x1F474, 0x1F475, 0x1F9D4, 0x1F471, 0x1F441, 0x1F3F3}
    signs = {0x2640, 0x2642, 0x27A1, 0x2695, 0x2696, 0x2708}
    last = [c for c in seq if c not in (VS16, ZWJ) and c not in TONES][-1]
    return (len(seq) > 1 and seq[1] in TONES, seq[0] in people, last in signs, seq)


@functools.lru_cache(maxsize=4)
def emoji_list(font_path: str) -> tuple[tuple[str, str], ...]:
    """(text to render, caption) for every emoji the font can draw, sorted by code points."""
    tables = _tables(Path(font_path).read_bytes())
    cmap = _cmap(tables[b"cmap"])
    glyph_to_cp: dict[int, int] = {}
    for cp, g in sorted(cmap.items()):
        glyph_to_cp.setdefault(g, cp)
    seqs: set[tuple[int, ...]] = {(cp,) for cp in cmap if _is_emoji_point(cp)}
    # Noto also lists each ZWJ sequence reversed (for right-to-left text) under the same glyph:
    # keep one well-formed spelling per ligature glyph.
    by_glyph: dict[int, list[tuple[int, ...]]] = {}
    for glyph, comps in _ligatures(tables[b"GSUB"]) if b"GSUB" in tables else []:
        if all(g in glyph_to_cp for g in comps):
            by_glyph.setdefault(glyph, []).append(tuple(glyph_to_cp[g] for g in comps))
    for spellings in by_glyph.values():
        good = [s for s in spellings if _well_formed(s)] or spellings
        seqs.add(max(good, key=_spelling_score))
    items = []
    for seq in sorted(seqs):
        caption = caption_for(seq)
        if caption:
            items.append(("".join(map(chr, seq)), caption))
    return tuple(items)


@functools.lru_cache(maxsize=4)
def _font(font_path: str) -> ImageFont.FreeTypeFont:
    try:
        return ImageFont.truetype(font_path, FONT_SIZE, layout_engine=ImageFont.Layout.RAQM)
    except (OSError, KeyError):  # no libraqm: sequences fall apart, single code points still draw
        return ImageFont.truetype(font_path, FONT_SIZE)


def render_emoji(text: str, resolution: int, font_path: str) -> Image.Image | None:
    """Draw `text` at the font's native size, crop to the glyph, centre on white, downscale.

    None when the font draws nothing (an unsupported sequence), so the dataset can skip it.
    """
    font = _font(font_path)
    left, top, right, bottom = font.getbbox(text)
    if right <= left or bottom <= top:
        return None
    canvas = Image.new("RGBA", (right - left + 8, bottom - top + 8), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((4 - left, 4 - top), text, font=font, embedded_color=True)
    box = canvas.getchannel("A").getbbox()
    if box is None:
        return None
    glyph = canvas.crop(box)
    side = max(glyph.size) + max(glyph.size) // 8
    square = Image.new("RGB", (side, side), (255, 255, 255))
    square.paste(glyph, ((side - glyph.width) // 2, (side - glyph.height) // 2), mask=glyph.getchannel("A"))
    return square.resize((resolution, resolution), Image.Resampling.LANCZOS)
