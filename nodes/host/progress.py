"""Progress bar, cancel and previews for ComfyUI, spoken through the core's ``on_step`` protocol.

The core calls ``on_step(done, total, preview)`` after every unit of work; the callback made here
checks ComfyUI's interrupt flag first (so Cancel lands within one step even where the progress hook
is not installed), then moves the node's progress bar and sends the newest frames as a JPEG preview.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ...streaming_core.progress import ProgressCallback, no_progress
from .runtime import comfy_module

PREVIEW_FRAMES = 4


def preview_image(frames: Optional[torch.Tensor], max_frames: int = PREVIEW_FRAMES):
    """The newest ``max_frames`` frames of a (F, H, W, 3) 0..1 tensor side by side, as a PIL image."""
    if frames is None:
        return None
    from PIL import Image

    frames = frames.detach().float().cpu()
    if frames.ndim == 3:
        frames = frames[None]
    strip = torch.cat(list(frames[-max_frames:]), dim=1)  # (H, W * n, 3)
    pixels = (strip.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return Image.fromarray(np.ascontiguousarray(pixels[..., :3]))


def progress_callback(total: int, node_id: Optional[str] = None, max_frames: int = PREVIEW_FRAMES) -> ProgressCallback:
    """An ``on_step`` callback driving ComfyUI's progress bar for ``total`` steps (no-op outside ComfyUI)."""
    utils = comfy_module("comfy.utils")
    if utils is None:
        return no_progress
    mm = comfy_module("comfy.model_management")
    max_size = comfy_module("comfy.cli_args").args.preview_size
    bar = utils.ProgressBar(int(total), node_id=node_id)

    def on_step(done: int, total_now: int, preview: Optional[torch.Tensor] = None) -> None:
        mm.throw_exception_if_processing_interrupted()
        image = preview_image(preview, max_frames)
        bar.update_absolute(done, total_now, None if image is None else ("JPEG", image, max_size))

    return on_step
