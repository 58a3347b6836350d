"""Template-browser thumbnails: a drawn map of a workflow's groups and nodes (Pillow), labelled as a diagram.

ComfyUI's template browser shows ``example_workflows/<name>.jpg`` beside each template. A map of the
graph itself (groups in their colours, nodes by display name, in their real layout) tells what a
workflow does without claiming to be model output; it is redrawn with the workflow, so it never drifts.
"""

from __future__ import annotations

import io
import textwrap

from PIL import Image, ImageDraw, ImageFont

SIZE = (768, 576)
HEADER, FOOTER, MARGIN = 64, 34, 18
BACKGROUND, NODE, NODE_TEXT, INK = "#202020", "#353535", "#e8e8e8", "#ffffff"
LABEL = "diagram of the workflow (not model output)"


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one fixed size
        return ImageFont.load_default()


def _box(draw, xy, fill, outline=None, radius=8):
    draw.rounded_rectangle(xy, radius=radius, fill=fill, outline=outline, width=2)


def _fit(text: str, font, width: float) -> str:
    """``text`` cut (with an ellipsis) to ``width`` pixels."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "...") > width:
        text = text[:-1]
    return text.rstrip() + "..."


def thumbnail(wf, title: str, names: dict[str, str]) -> bytes:
    """JPEG bytes: ``title`` on top, the workflow's groups and nodes scaled into the frame, a label below."""
    image = Image.new("RGB", SIZE, BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.text((MARGIN, 16), title, fill=INK, font=_font(28))

    rects = [tuple(g["bounding"]) for g in wf.groups]
    rects += [(*n.pos, *wf._size(n)) for n in wf.nodes]
    rects += [(*note["pos"], *note["size"]) for note in wf.notes]
    left = min(r[0] for r in rects)
    top = min(r[1] for r in rects)
    right = max(r[0] + r[2] for r in rects)
    bottom = max(r[1] + r[3] for r in rects)
    width, height = SIZE[0] - 2 * MARGIN, SIZE[1] - HEADER - FOOTER - MARGIN
    scale = min(width / (right - left), height / (bottom - top))

    def place(x, y, w, h):
        x0 = MARGIN + (x - left) * scale
        y0 = HEADER + (y - top) * scale
        return (x0, y0, x0 + w * scale, y0 + h * scale)

    group_font, node_font = _font(max(11, int(22 * scale * 2.2))), _font(max(10, int(18 * scale * 2.2)))
    for group in wf.groups:
        box = place(*group["bounding"])
        _box(draw, box, fill=group["color"])
        draw.text((box[0] + 6, box[1] + 4), _fit(group["title"], group_font, box[2] - box[0] - 10), fill=INK,
                  font=group_font)
    for note in wf.notes:
        box = place(*note["pos"], *note["size"])
        _box(draw, box, fill="#5a4a33")
        draw.text((box[0] + 6, box[1] + 4), "Note", fill=NODE_TEXT, font=node_font)
    for node in wf.nodes:
        box = place(*node.pos, *wf._size(node))
        _box(draw, box, fill=NODE, outline="#888888", radius=5)
        label = node.title or names.get(node.type, node.type)
        chars = max(6, int((box[2] - box[0] - 8) / max(1, node_font.getlength("n"))))
        draw.multiline_text((box[0] + 5, box[1] + 4), "\n".join(textwrap.wrap(label, chars)[:3]), fill=NODE_TEXT,
                            font=node_font, spacing=2)
    draw.text((MARGIN, SIZE[1] - FOOTER + 6), LABEL, fill="#bbbbbb", font=_font(18))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=88)
    return out.getvalue()
