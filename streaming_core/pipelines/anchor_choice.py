"""The APM anchor as a thing of its own: picked from any frames, encoded once, re-fitted to the video.

The ComfyUI Anchor APM Encoder node encodes a frame of any IMAGE batch (the first chunk, a photo, a
frame of another model's video) before it knows which video it will condition; the loop re-fits it
to the video's size when they differ (``long_video._as_anchor``).
"""

from __future__ import annotations

import torch

from ..errors import InputError
from .frames import as_image_batch
from .long_video import Anchor, encode_anchor


def select_frame(images: torch.Tensor, index: int) -> torch.Tensor:
    """Frame ``index`` of an (F, H, W, 3) batch as a 1-frame batch; negative indices count from the end."""
    images = as_image_batch(images, "anchor image")
    count = images.shape[0]
    if isinstance(index, bool) or not isinstance(index, int) or not -count <= index < count:
        raise InputError(f"frame index {index!r} is outside the {count} given frame(s): use 0..{count - 1}, or "
                         f"-1 for the last frame.")
    return images[index:index + 1] if index >= 0 else images[count + index:count + index + 1]


def encode_anchor_frame(model, images: torch.Tensor, index: int = 0,
                        output_device: str | torch.device = "cpu") -> Anchor:
    """The ``Anchor`` of one frame, its tokens moved to ``output_device`` (they outlive the model's load)."""
    anchor = encode_anchor(model, select_frame(images, index))
    return Anchor(anchor.frames, anchor.tokens.to(output_device), anchor.grey_tokens.to(output_device))
