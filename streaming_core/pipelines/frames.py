"""Frame layout conversions and the anchor-image rule of the generation pipelines.

Users and ComfyUI hold frames as IMAGE batches: (F, H, W, 3) floats in 0..1. The networks want
(F, 3, H, W) signed pixels in [-1, 1]. These helpers are the only place the two meet.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import InputError


def image_to_signed(frames: torch.Tensor) -> torch.Tensor:
    """(F, H, W, 3) unit -> (F, 3, H, W) signed, float32, contiguous: the same values in another
    memory layout could take other kernels downstream and round differently (a resumed run must
    match an uninterrupted one bit for bit)."""
    return (frames.float().permute(0, 3, 1, 2) * 2 - 1).contiguous()


def unit_to_image(frames: torch.Tensor) -> torch.Tensor:
    """(F, 3, H, W) unit -> (F, H, W, 3) unit, float32."""
    return frames.float().permute(0, 2, 3, 1)


def as_image_batch(image: torch.Tensor, what: str = "anchor image") -> torch.Tensor:
    """(H, W, 3) or (F, H, W, 3) -> (F, H, W, 3) float; anything else is an error."""
    if not isinstance(image, torch.Tensor):
        raise InputError(f"the {what} must be a tensor (H, W, 3) or (frames, H, W, 3) in 0..1, got "
                         f"{type(image).__name__}")
    if image.ndim == 3:
        image = image[None]
    if image.ndim != 4 or image.shape[-1] != 3 or image.shape[0] < 1 or min(image.shape[1:3]) < 1:
        raise InputError(f"the {what} must be an RGB image (H, W, 3) or a batch (frames, H, W, 3) with values in "
                         f"0..1, got shape {tuple(image.shape)}")
    if not image.is_floating_point():
        image = image.float() / 255.0 if image.dtype == torch.uint8 else image.float()
    return image


def fit_image(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The anchor rule: centre-crop to the working aspect ratio, then resize to (height, width)
    (bicubic with antialiasing, clamped to 0..1). A frame of the video itself passes unchanged.

    Why: the APM encoder sees the anchor the way it saw frame 0 of the first chunk during training:
    a square 256 px frame (or whatever the working size is), never a squashed one.
    """
    image = as_image_batch(image)
    f, h, w, _ = image.shape
    if (h, w) == (height, width):
        return image.float()
    # largest centred crop with the target aspect ratio
    if h * width > w * height:
        crop_h, crop_w = max(1, round(w * height / width)), w
    else:
        crop_h, crop_w = h, max(1, round(h * width / height))
    top, left = (h - crop_h) // 2, (w - crop_w) // 2
    x = image[:, top:top + crop_h, left:left + crop_w].float().permute(0, 3, 1, 2)
    x = F.interpolate(x, size=(height, width), mode="bicubic", align_corners=False, antialias=True)
    return x.clamp(0, 1).permute(0, 2, 3, 1).contiguous()
