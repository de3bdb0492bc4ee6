"""Render printed lines as a picture of the paper strip (the only module that uses Pillow).

A thermal printer draws every character in a fixed cell (12 x 24 dots in font A) and makes
double size by doubling dots. We do the same: each glyph is fitted into its cell once and
scaled by whole factors, so widths line up like on paper and double size is unmistakable.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from appliance.edge.escpos_decoder import PrintedLine

CELL_W, CELL_H = 12, 24
"""Font A character cell in dots on a 203 dpi head: 48 cells fill an 80 mm roll."""
LINE_GAP = 6  # ESC 2 default spacing is 30 dots for 24-dot characters
MARGIN = 18
BACKGROUND = (214, 214, 214)
INK = (16, 16, 16)
_FONT_SIZE = 20
_BASELINE = 19


@functools.cache
def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=_FONT_SIZE)


def _missing(ch: str) -> bool:
    """True if the font would draw its 'no glyph' box for `ch`."""
    mask, box = _font().getmask(ch), _font().getmask("\uffff")
    return mask.size == box.size and bytes(mask) == bytes(box)


def _drawable(ch: str) -> str:
    """`ch`, or its unaccented base letter when the bundled font lacks it ('é' -> 'e')."""
    if not _missing(ch):
        return ch
    base = unicodedata.normalize("NFKD", ch)[:1]
    return base if base and base != ch and not _missing(base) else "?"


@functools.cache
def _glyph(ch: str, bold: bool) -> Image.Image:
    """An L-mode ink mask of one cell; wide glyphs are squeezed to the cell like a printer's."""
    ch = _drawable(ch)
    canvas = Image.new("L", (CELL_W * 3, CELL_H), 0)
    ImageDraw.Draw(canvas).text(
        (CELL_W * 3 // 2, _BASELINE), ch, font=_font(), fill=255, anchor="ms",
        stroke_width=1 if bold else 0, stroke_fill=255,
    )
    box = canvas.getbbox()
    if box is None:
        return Image.new("L", (CELL_W, CELL_H), 0)
    left, _, right, _ = box
    if right - left <= CELL_W:
        start = CELL_W * 3 // 2 - CELL_W // 2
        return canvas.crop((start, 0, start + CELL_W, CELL_H))
    return canvas.crop((left, 0, right, CELL_H)).resize((CELL_W, CELL_H), Image.Resampling.LANCZOS)


def _line_height(line: PrintedLine) -> int:
    return CELL_H * line.height + LINE_GAP


def render_ticket(lines: Sequence[PrintedLine], columns: int = 48) -> Image.Image:
    """The ticket as an RGB image: a white strip of `columns` cells on a grey table."""
    paper_w = columns * CELL_W + 2 * MARGIN
    paper_h = sum(_line_height(line) for line in lines) + 2 * MARGIN
    image = Image.new("RGB", (paper_w + 2 * MARGIN, paper_h + 2 * MARGIN), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.rectangle((MARGIN, MARGIN, MARGIN + paper_w - 1, MARGIN + paper_h - 1), fill="white")
    ink = Image.new("RGB", (CELL_W * 8, CELL_H * 8), INK)
    y = 2 * MARGIN
    for line in lines:
        cell_w, cell_h = CELL_W * line.width, CELL_H * line.height
        text = line.text[: max(1, columns // line.width)]
        width = len(text) * cell_w
        x = 2 * MARGIN + {"left": 0, "center": (columns * CELL_W - width) // 2,
                          "right": columns * CELL_W - width}[line.align]
        for ch in text:
            if not ch.isspace():
                mask = _glyph(ch, line.bold)
                if line.width > 1 or line.height > 1:
                    mask = mask.resize((cell_w, cell_h), Image.Resampling.NEAREST)
                image.paste(ink.crop((0, 0, cell_w, cell_h)), (x, y), mask)
            x += cell_w
        if line.underline and width:
            base = y + cell_h - 1
            draw.line((x - width, base, x - 1, base), fill=INK, width=line.height)
        y += _line_height(line)
    return image


def save_ticket_png(lines: Sequence[PrintedLine], path: Path, columns: int = 48) -> None:
    """Write the rendered ticket to `path` as PNG."""
    render_ticket(lines, columns).save(path, format="PNG")
