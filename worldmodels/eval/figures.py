"""Pictures for reports, drawn with Pillow only: frame grids with labels and curves with a band.

* :func:`draw_frame_grid`: rows of frames (``R T C H W``) with row and column labels, upscaled
  to a readable size (:func:`picture_scale`, :func:`upscale`); its :class:`GridLayout` says
  where each frame landed, so tests and tools can find them.
* :func:`draw_curve`: one line over ``x`` with an optional band (e.g. one standard deviation)
  and a marked ``x``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = ["GridLayout", "draw_curve", "draw_frame_grid", "picture_scale", "upscale"]

_WHITE = (255, 255, 255)
_BLACK = (0, 0, 0)
_GREY = (150, 150, 150)
_LIGHT = (225, 225, 225)
_BLUE = (31, 100, 180)
_BAND = (190, 210, 240)
_ORANGE = (220, 110, 20)


def _font(size: int = 12) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def _text_size(draw: Any, text: str, font: Any) -> tuple[int, int]:
    if not text:
        return 0, 0
    left, top, right, bottom = draw.multiline_textbbox((0, 0), text, font=font)
    return int(math.ceil(right - min(left, 0))), int(math.ceil(bottom - min(top, 0)))


def _to_uint8_hwc(frame_CHW: Tensor) -> np.ndarray:
    frame = frame_CHW.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()
    frame = np.transpose(frame, (1, 2, 0))
    if frame.shape[-1] == 1:
        frame = np.repeat(frame, 3, axis=-1)
    return np.ascontiguousarray(frame[..., :3])


def upscale(frame_HWC: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscaling by an integer factor (every pixel becomes a ``scale x scale`` block).

    Shapes:
        ``H W C`` -> ``(H * scale) (W * scale) C``.
    """
    return np.repeat(np.repeat(frame_HWC, scale, axis=0), scale, axis=1)


def picture_scale(height: int, width: int, target: int = 64) -> int:
    """Integer upscaling that makes the larger side of a frame at least ``target`` pixels (at least 1)."""
    return max(1, -(-target // max(height, width)))


@dataclass(frozen=True)
class GridLayout:
    """Where the cells of a frame grid lie in its picture.

    Attributes:
        rows: rows of cells.
        cols: columns of cells.
        cell_height: cell height in pixels (frame height times ``scale``).
        cell_width: cell width in pixels.
        scale: integer upscaling of the frames.
        left: x of the first column (the row labels lie left of it).
        top: y of the first row (the title and column labels lie above it).
        gap: pixels between neighbouring cells.
        margin: pixels right of the last column and below the last row.
        min_width: the picture is at least this wide (room for a long title).
    """

    rows: int
    cols: int
    cell_height: int
    cell_width: int
    scale: int
    left: int
    top: int
    gap: int = 2
    margin: int = 6
    min_width: int = 0

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the picture in pixels."""
        width = self.left + self.cols * (self.cell_width + self.gap) - self.gap + self.margin
        width = max(width, self.min_width)
        height = self.top + self.rows * (self.cell_height + self.gap) - self.gap + self.margin
        return width, height

    def cell_box(self, row: int, col: int) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)`` of cell ``(row, col)``, as :meth:`PIL.Image.Image.crop` takes it."""
        if not (0 <= row < self.rows and 0 <= col < self.cols):
            raise IndexError(f"cell ({row}, {col}) is outside a {self.rows} x {self.cols} grid.")
        x0 = self.left + col * (self.cell_width + self.gap)
        y0 = self.top + row * (self.cell_height + self.gap)
        return x0, y0, x0 + self.cell_width, y0 + self.cell_height

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (with the picture's ``size``)."""
        return {
            "rows": self.rows,
            "cols": self.cols,
            "cell_height": self.cell_height,
            "cell_width": self.cell_width,
            "scale": self.scale,
            "left": self.left,
            "top": self.top,
            "gap": self.gap,
            "margin": self.margin,
            "min_width": self.min_width,
            "size": list(self.size),
        }


def draw_frame_grid(
    frames: Tensor,
    *,
    row_labels: Sequence[str] = (),
    col_labels: Sequence[str] = (),
    title: str = "",
    scale: int | None = None,
    group_rows: int = 0,
) -> tuple[PILImage, GridLayout]:
    """Draw frames as a labelled grid (rows x columns), upscaled with nearest neighbours.

    Shapes:
        ``frames``: ``R L C H W`` float in ``[0, 1]`` (``R`` rows, ``L`` columns).

    Args:
        frames: the frames, one per cell.
        row_labels: text left of each row (may hold line breaks).
        col_labels: text above each column.
        title: text above everything (may hold line breaks).
        scale: integer upscaling (default: :func:`picture_scale`).
        group_rows: draw a separating line after every ``group_rows`` rows (0: none).

    Returns:
        The RGB :class:`PIL.Image.Image` and its :class:`GridLayout`.
    """
    from PIL import Image, ImageDraw

    if frames.ndim != 5:
        raise ValueError(f"draw_frame_grid takes frames shaped R L C H W, got {tuple(frames.shape)}.")
    rows, cols, _, h, w = frames.shape
    scale = scale or picture_scale(h, w)
    font = _font(12)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_w = max((_text_size(probe, s, font)[0] for s in row_labels), default=0)
    col_h = max((_text_size(probe, s, font)[1] for s in col_labels), default=0)
    title_w, title_h = _text_size(probe, title, font)
    pad = 6
    layout = GridLayout(
        rows=rows,
        cols=cols,
        cell_height=h * scale,
        cell_width=w * scale,
        scale=scale,
        left=pad + (label_w + pad if label_w else 0),
        top=pad + (title_h + pad if title_h else 0) + (col_h + 4 if col_h else 0),
        min_width=title_w + 2 * pad if title else 0,
    )
    image = Image.new("RGB", layout.size, _WHITE)
    draw = ImageDraw.Draw(image)
    if title:
        draw.multiline_text((pad, pad), title, fill=_BLACK, font=font)
    for c, text in enumerate(col_labels[:cols]):
        x0, y0, x1, _ = layout.cell_box(0, c)
        tw, th = _text_size(draw, text, font)
        draw.text((x0 + max(0, (x1 - x0 - tw) // 2), y0 - th - 4), text, fill=_BLACK, font=font)
    for r in range(rows):
        x0, y0, _, y1 = layout.cell_box(r, 0)
        if r < len(row_labels) and row_labels[r]:
            tw, th = _text_size(draw, row_labels[r], font)
            draw.multiline_text((x0 - pad - tw, y0 + max(0, (y1 - y0 - th) // 2)), row_labels[r], fill=_BLACK,
                                font=font, align="right")
        if group_rows and r % group_rows == 0 and r:
            y = y0 - layout.gap // 2 - 1
            draw.line([(pad, y), (layout.size[0] - pad, y)], fill=_GREY, width=1)
        for c in range(cols):
            bx0, by0, _, _ = layout.cell_box(r, c)
            image.paste(Image.fromarray(upscale(_to_uint8_hwc(frames[r, c]), scale)), (bx0, by0))
    return image, layout


def _nice_step(span: float, target_ticks: int = 5) -> float:
    raw = max(span, 1e-12) / max(target_ticks, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * magnitude >= raw:
            return factor * magnitude
    return 10 * magnitude


def _format_tick(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step < 1 else 0
    if step < 1 and abs(step * 10**decimals - round(step * 10**decimals)) > 1e-9:
        decimals += 1
    text = f"{value:.{decimals}f}"
    return "0" if float(text) == 0 else text


def draw_curve(
    x: Sequence[float],
    y: Sequence[float],
    *,
    band_low: Sequence[float] | None = None,
    band_high: Sequence[float] | None = None,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    legend: str = "",
    mark_x: float | None = None,
    mark_label: str = "",
    size: tuple[int, int] = (640, 400),
) -> PILImage:
    """A line chart with an optional shaded band, drawn with Pillow.

    Axes, ticks on "nice" values (1, 2, 2.5, 5 x 10^k), a dashed line at ``y = 0`` when it lies
    in range, and an optional dotted vertical marker (e.g. the paper's ``t = 4``).

    Shapes:
        ``x, y, band_low, band_high``: ``L`` values each (non-finite band values are not drawn).

    Args:
        x: x positions (increasing).
        y: the curve.
        band_low: lower edge of the band.
        band_high: upper edge of the band.
        title: text above the plot.
        xlabel: x axis label.
        ylabel: y axis label (drawn vertically).
        legend: a line of text above the top right corner of the plot area.
        mark_x: x of the vertical marker.
        mark_label: text next to the marker.
        size: ``(width, height)`` of the picture.

    Returns:
        The RGB :class:`PIL.Image.Image`.
    """
    from PIL import Image, ImageDraw

    xs = [float(v) for v in x]
    ys = [float(v) for v in y]
    if not xs or len(xs) != len(ys):
        raise ValueError(f"draw_curve needs as many y values as x values (at least one), got {len(xs)} and {len(ys)}.")
    band = None
    if band_low is not None and band_high is not None:
        band = [(float(lo), float(hi)) for lo, hi in zip(band_low, band_high, strict=True)]
        if not all(math.isfinite(lo) and math.isfinite(hi) for lo, hi in band):
            band = None
    values = [v for v in ys if math.isfinite(v)] + [v for pair in (band or []) for v in pair] + [0.0]
    y_min, y_max = min(values), max(values)
    if y_max - y_min < 1e-9:
        y_min, y_max = y_min - 1.0, y_max + 1.0
    pad_y = 0.08 * (y_max - y_min)
    y_min, y_max = y_min - pad_y, y_max + pad_y
    if len(xs) == 1:
        x_min, x_max = xs[0] - 0.5, xs[0] + 0.5
    else:
        pad_x = 0.04 * (max(xs) - min(xs))
        x_min, x_max = min(xs) - pad_x, max(xs) + pad_x

    width, height = size
    font = _font(12)
    image = Image.new("RGB", size, _WHITE)
    draw = ImageDraw.Draw(image)
    left, right, top, bottom = 78, width - 20, 48, height - 52
    plot_w, plot_h = right - left, bottom - top

    def px(value: float) -> float:
        return left + (value - x_min) / (x_max - x_min) * plot_w

    def py(value: float) -> float:
        return bottom - (value - y_min) / (y_max - y_min) * plot_h

    step = _nice_step(y_max - y_min)
    tick = math.ceil(y_min / step) * step
    while tick <= y_max + 1e-9:
        yy = py(tick)
        draw.line([(left, yy), (right, yy)], fill=_LIGHT)
        draw.line([(left - 5, yy), (left, yy)], fill=_BLACK)
        label = _format_tick(tick, step)
        tw, th = _text_size(draw, label, font)
        draw.text((left - 8 - tw, yy - th / 2 - 1), label, fill=_BLACK, font=font)
        tick += step
    x_step = max(1, math.ceil(_nice_step(x_max - x_min, 10))) if len(xs) > 1 else 1
    for value in xs:
        if len(xs) > 12 and (value - xs[0]) % x_step:  # few points: label each, wherever it lies
            continue
        xx = px(value)
        draw.line([(xx, bottom), (xx, bottom + 5)], fill=_BLACK)
        label = f"{value:g}"
        tw, _ = _text_size(draw, label, font)
        draw.text((xx - tw / 2, bottom + 8), label, fill=_BLACK, font=font)

    if band is not None:
        if len(xs) == 1:
            lo, hi = band[0]
            draw.rectangle([px(xs[0]) - 6, py(hi), px(xs[0]) + 6, py(lo)], fill=_BAND)
        else:
            upper = [(px(v), py(hi)) for v, (_, hi) in zip(xs, band)]
            lower = [(px(v), py(lo)) for v, (lo, _) in zip(xs, band)]
            draw.polygon(upper + lower[::-1], fill=_BAND)
    if y_min < 0 < y_max:
        y0 = py(0.0)
        for xx in range(left, right, 10):
            draw.line([(xx, y0), (min(xx + 5, right), y0)], fill=_GREY, width=1)
    if mark_x is not None and x_min <= mark_x <= x_max:
        xx = px(mark_x)
        for yy in range(top, bottom, 6):
            draw.line([(xx, yy), (xx, min(yy + 2, bottom))], fill=_ORANGE, width=1)
        if mark_label:
            tw, th = _text_size(draw, mark_label, font)
            tx = xx + 4 if xx + 4 + tw <= right - 2 else xx - 4 - tw
            draw.rectangle([tx - 1, bottom - th - 8, tx + tw + 1, bottom - 3], fill=_WHITE)
            draw.text((tx, bottom - th - 6), mark_label, fill=_ORANGE, font=font)
    points = [(px(v), py(w)) for v, w in zip(xs, ys) if math.isfinite(w)]
    if len(points) > 1:
        draw.line(points, fill=_BLUE, width=2)
    for xx, yy in points:
        draw.ellipse([xx - 3, yy - 3, xx + 3, yy + 3], fill=_BLUE)
    draw.rectangle([left, top, right, bottom], outline=_BLACK)

    if title:
        tw, _ = _text_size(draw, title, font)
        draw.text(((width - tw) / 2, 10), title, fill=_BLACK, font=font)
    if legend:
        tw, th = _text_size(draw, legend, font)
        draw.text((right - tw, top - th - 6), legend, fill=_BLACK, font=font)
    if xlabel:
        tw, _ = _text_size(draw, xlabel, font)
        draw.text(((left + right - tw) / 2, height - 22), xlabel, fill=_BLACK, font=font)
    if ylabel:
        tw, th = _text_size(draw, ylabel, font)
        label_image = Image.new("RGB", (tw + 2, th + 4), _WHITE)
        ImageDraw.Draw(label_image).text((1, 1), ylabel, fill=_BLACK, font=font)
        label_image = label_image.rotate(90, expand=True)
        image.paste(label_image, (8, int((top + bottom - label_image.height) / 2)))
    return image
