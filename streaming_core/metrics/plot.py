"""The per-transition curves of one or more videos as a PNG, drawn with Pillow (no plotting library).

Three stacked panels (warp error W_t, flow magnitude OFS_t, frame difference), one colour per video,
the chunk overlaps shaded grey and a line where each chunk's own frames end, so a seam shows as a
spike on a line or inside a band. Pillow is already a
dependency; matplotlib would be a large one for three line charts.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..checkpoints.files import atomic_path
from .evaluate import VideoReport

PANELS = (("warp_error", "warp error W_t (0-255 scale, MSE)"),
          ("flow_magnitude", "flow magnitude OFS_t (px)"),
          ("frame_difference", "frame difference (0-255 scale, MSE)"))
COLOURS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (23, 190, 207),
           (140, 86, 75), (227, 119, 194))
WIDTH, PANEL_H, MARGIN_L, MARGIN_R, MARGIN_T, GAP = 960, 200, 70, 20, 40, 46


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _nice(value: float) -> str:
    return f"{value:.3g}"


def render_curves(reports: Sequence[VideoReport]) -> Image.Image:
    """An RGB image of the curves the reports hold (a panel without any curve says so)."""
    font, small = _font(14), _font(11)
    height = MARGIN_T + len(PANELS) * (PANEL_H + GAP) + 10
    img = Image.new("RGB", (WIDTH, height), "white")
    draw = ImageDraw.Draw(img)
    x = MARGIN_L
    for i, rep in enumerate(reports):  # legend
        colour = COLOURS[i % len(COLOURS)]
        draw.line((x, 18, x + 24, 18), fill=colour, width=3)
        draw.text((x + 30, 10), rep.name, fill="black", font=font)
        x += 40 + int(draw.textlength(rep.name, font=font)) + 20
    draw.text((WIDTH - MARGIN_R - 260, 10), "grey: chunk overlaps, line: chunk ends", fill=(110, 110, 110), font=small)
    plot_w = WIDTH - MARGIN_L - MARGIN_R
    longest = max((len(c) for rep in reports for c in rep.curves.values()), default=1)
    span = max(longest - 1, 1)
    for p, (key, title) in enumerate(PANELS):
        top = MARGIN_T + p * (PANEL_H + GAP) + 18
        bottom = top + PANEL_H
        draw.text((MARGIN_L, top - 18), title, fill="black", font=font)
        curves = [(i, rep.curves[key]) for i, rep in enumerate(reports) if rep.curves.get(key)]
        for rep in reports[:1]:
            for a, b in rep.overlaps:
                xa = MARGIN_L + plot_w * max(a, 0) / span
                xb = MARGIN_L + plot_w * min(b, longest - 1) / span
                draw.rectangle((xa, top, max(xb, xa + 1), bottom), fill=(232, 232, 232))
            for a, b in rep.overlaps:  # the last transition of each overlap: where the earlier chunk's frames end
                xj = MARGIN_L + plot_w * min(b - 1, longest - 1) / span
                draw.line((xj, top, xj, bottom), fill=(150, 150, 150), width=1)
        draw.rectangle((MARGIN_L, top, MARGIN_L + plot_w, bottom), outline="black")
        if not curves:
            draw.text((MARGIN_L + 10, top + PANEL_H // 2 - 7), "not measured (see the report)", fill="grey", font=font)
            continue
        values = [v for _, c in curves for v in c if v == v and abs(v) != float("inf")]
        hi = max(values, default=1.0)
        hi = hi if hi > 0 else 1.0
        for frac in (0.0, 0.5, 1.0):
            y = bottom - frac * PANEL_H
            draw.line((MARGIN_L - 4, y, MARGIN_L, y), fill="black")
            label = _nice(hi * frac)
            draw.text((MARGIN_L - 8 - draw.textlength(label, font=small), y - 6), label, fill="black", font=small)
        for t in range(0, longest, max(1, longest // 10)):
            xt = MARGIN_L + plot_w * t / span
            draw.line((xt, bottom, xt, bottom + 4), fill="black")
            draw.text((xt - 6, bottom + 5), str(t), fill="black", font=small)
        for i, curve in curves:
            points = [(MARGIN_L + plot_w * t / span, bottom - PANEL_H * min(max(v, 0.0), hi) / hi)
                      for t, v in enumerate(curve) if v == v and abs(v) != float("inf")]
            if len(points) == 1:
                points = points * 2
            draw.line(points, fill=COLOURS[i % len(COLOURS)], width=2)
    draw.text((MARGIN_L, height - 16), "transition t -> t+1", fill="black", font=small)
    return img


def save_png(image: Image.Image, path: str | os.PathLike) -> None:
    """Written under a temporary name and renamed: never a half-written PNG under ``path``."""
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def image_batch(image: Image.Image) -> torch.Tensor:
    """A PIL image as a one-image batch (1, H, W, 3) float 0..1 (ComfyUI's IMAGE layout)."""
    return torch.from_numpy(np.array(image.convert("RGB"))).float().div(255.0)[None]
