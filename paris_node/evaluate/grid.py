"""Labelled sample grids: rows are strategies (routing, monolith...), columns are prompts, each cell enlarged.

Small pixel-space samples (16-32 px) are unreadable at their own size, so cells are scaled up with nearest
neighbour (no smoothing that would hide what the model drew).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

CELL = 96
LABEL_W = 110
LINE_H = 12


def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default()


def labelled_grid(
    rows: Sequence[tuple[str, Sequence[Image.Image]]],
    columns: Sequence[str],
    marks: Sequence[Sequence[str]] | None = None,
    cell: int = CELL,
) -> Image.Image:
    """A grid image: a header of wrapped column labels, then one row per (row label, images).

    `marks[r][c]`, when given, is a short text printed under cell (r, c) (e.g. what the evaluator read).
    """
    if not rows or not columns:
        raise ValueError("labelled_grid needs at least one row and one column")
    font = _font()
    chars = max(8, cell // 6)
    wrapped = [textwrap.wrap(c, chars) or [""] for c in columns]
    head_h = LINE_H * max(len(w) for w in wrapped) + 6
    mark_h = LINE_H + 2 if marks else 0
    width = LABEL_W + len(columns) * (cell + 4)
    height = head_h + len(rows) * (cell + 4 + mark_h)
    grid = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(grid)
    for c, lines in enumerate(wrapped):
        for j, line in enumerate(lines):
            draw.text((LABEL_W + c * (cell + 4), 3 + j * LINE_H), line, fill="black", font=font)
    for r, (label, images) in enumerate(rows):
        y = head_h + r * (cell + 4 + mark_h)
        for j, line in enumerate(textwrap.wrap(label, 17)[:6]):
            draw.text((4, y + 4 + j * LINE_H), line, fill="black", font=font)
        for c, img in enumerate(images[: len(columns)]):
            x = LABEL_W + c * (cell + 4)
            grid.paste(img.convert("RGB").resize((cell, cell), Image.NEAREST), (x, y))
            if marks:
                draw.text((x, y + cell + 1), marks[r][c][: chars + 4], fill=(90, 90, 90), font=font)
    return grid
