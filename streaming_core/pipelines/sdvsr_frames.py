"""Low-resolution frames in, model tensors out, HR tensors back to images: Stream-DiffVSR's pre- and
post-processing (spec §4.2, §4.4 i).

Official preprocessing (diffusers ``VaeImageProcessor`` with vae_scale_factor 4): the size is floored
to a multiple of 4 and, only if that changed it, the image is *resized* (not cropped) to the floored
size with PIL's Lanczos filter; then /255 and x2-1. uint8 frames follow that path exactly. Float
frames (ComfyUI IMAGE, 0..1) skip the uint8 rounding: they are resized with the same Lanczos filter
in PIL's float mode, so no precision is thrown away.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError

log = logging.getLogger("streaming_core.sdvsr")

SIZE_MULTIPLE = 4  # the official VaeImageProcessor(vae_scale_factor=4)
RANGE_SLACK = 1e-3  # float frames may overshoot 0..1 by this much (resampling) and are clamped


def floor_size(height: int, width: int) -> tuple[int, int]:
    return height // SIZE_MULTIPLE * SIZE_MULTIPLE, width // SIZE_MULTIPLE * SIZE_MULTIPLE


def as_frame_tensor(frame: Any, index: int = 0) -> torch.Tensor:
    """One frame as an (H, W, 3) tensor (uint8 or float32), with clear errors for what cannot be one."""
    if hasattr(frame, "convert") and hasattr(frame, "size"):  # a PIL image: RGB like the official pipeline
        frame = np.asarray(frame.convert("RGB"))
    if isinstance(frame, np.ndarray):
        frame = torch.from_numpy(np.ascontiguousarray(frame))
    if not isinstance(frame, torch.Tensor):
        raise InputError(f"frame {index} is a {type(frame).__name__}; expected an (H, W, 3) tensor, array or PIL image.")
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[-1] == 1):
        raise InputError(f"frame {index} is greyscale (shape {tuple(frame.shape)}); Stream-DiffVSR needs RGB frames "
                         f"(H, W, 3). Repeat the channel first, e.g. frame.expand(-1, -1, 3), or convert the "
                         f"image to RGB.")
    if frame.ndim != 3:
        raise InputError(f"frame {index} has shape {tuple(frame.shape)}; expected (H, W, 3) RGB "
                         f"(a batch is (F, H, W, 3), given as the iterable of frames).")
    if frame.shape[-1] != 3:
        hint = " (channels first? permute to (H, W, 3))" if frame.shape[0] in (1, 3) else ""
        raise InputError(f"frame {index} has shape {tuple(frame.shape)}: expected 3 RGB channels last{hint}. "
                         f"Drop an alpha channel first.")
    if frame.dtype == torch.uint8:
        return frame
    if not frame.is_floating_point():
        raise InputError(f"frame {index} has dtype {frame.dtype}; expected uint8 (0..255) or float (0..1).")
    frame = frame.detach().float()
    lo, hi = frame.min().item(), frame.max().item()
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise InputError(f"frame {index} contains NaN or infinite values.")
    if lo < -RANGE_SLACK or hi > 1 + RANGE_SLACK:
        hint = " It looks like 0..255: divide by 255." if hi > 2 else ""
        hint += " It looks like -1..1: map with (x + 1) / 2." if lo < -0.5 and hi <= 1 + RANGE_SLACK else ""
        raise InputError(f"frame {index} has values in [{lo:.3g}, {hi:.3g}]; float frames must be in 0..1.{hint}")
    return frame.clamp(0, 1)


def _lanczos(frame: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """PIL Lanczos resize; uint8 stays uint8 (official path), float is resized per channel in 'F' mode."""
    from PIL import Image

    array = frame.cpu().numpy()
    if frame.dtype == torch.uint8:
        return torch.from_numpy(np.asarray(Image.fromarray(array, "RGB").resize((width, height), Image.LANCZOS)).copy())
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(array[..., c]), "F").resize((width, height), Image.LANCZOS))
                for c in range(3)]
    return torch.from_numpy(np.stack(channels, axis=-1).copy())


def preprocess_frame(frame: Any, index: int = 0) -> torch.Tensor:
    """(H, W, 3) frame -> (1, 3, h, w) float32 in [-1, 1] with h, w floored to a multiple of 4."""
    frame = as_frame_tensor(frame, index)
    h0, w0 = frame.shape[:2]
    h, w = floor_size(h0, w0)
    if h == 0 or w == 0:
        raise InputError(f"frame {index} is {w0}x{h0}: too small (each side must be at least {SIZE_MULTIPLE} px).")
    if (h, w) != (h0, w0):
        if index == 0:
            log.warning("input frames of %dx%d are resized to %dx%d (a multiple of 4, as the official "
                        "Stream-DiffVSR preprocessing does); the output is %dx%d.", w0, h0, w, h, 4 * w, 4 * h)
        frame = _lanczos(frame, h, w)
    x = frame.float() / 255.0 if frame.dtype == torch.uint8 else frame.float()
    x = 2.0 * x - 1.0
    return x.permute(2, 0, 1)[None].contiguous()


def bicubic_x4(lr: torch.Tensor, scale: int = 4) -> torch.Tensor:
    """The official RAFT input: bicubic upscaling, no antialiasing, no clamping (values may overshoot)."""
    return F.interpolate(lr, scale_factor=scale, mode="bicubic")


def to_image(hr: torch.Tensor) -> torch.Tensor:
    """(1, 3, H, W) decoder output in ~[-1, 1] -> (H, W, 3) float in 0..1 (the official postprocess
    before its uint8 rounding, which ``video_io.to_uint8`` reproduces: round half to even)."""
    return (hr[0].float() / 2 + 0.5).clamp(0, 1).permute(1, 2, 0)
