"""ComfyUI IMAGE batches <-> the core's frame tensors.

Both are (F, H, W, C) float in 0..1, so the conversion is about where the tensor lives and what it
may contain: the core gets contiguous float32 RGB; ComfyUI gets its result on the intermediate
device, as every node's output should be.
"""

from __future__ import annotations

import torch

from ...streaming_core.errors import InputError
from .devices import intermediate_device


def image_to_frames(image: torch.Tensor, what: str = "image") -> torch.Tensor:
    """(F, H, W, 3) float32 frames from an IMAGE batch (an alpha channel is dropped)."""
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[-1] not in (3, 4):
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise InputError(f"{what} must be an IMAGE batch (frames, height, width, 3), got {shape}: "
                         "connect an IMAGE output (Load Image, VAE Decode, ...)")
    if image.shape[0] == 0:
        raise InputError(f"{what} holds no frames: connect a non-empty IMAGE batch")
    return image[..., :3].float().contiguous()


def frames_to_image(frames: torch.Tensor) -> torch.Tensor:
    """An IMAGE batch on ComfyUI's intermediate device from (F, H, W, 3) frames in 0..1."""
    return frames.detach().clamp(0, 1).float().to(intermediate_device()).contiguous()


class FrameCollector:
    """Frames handed over one by one, gathered into one IMAGE batch of known length without a second
    copy (a list stacked at the end holds the video twice)."""

    def __init__(self, count: int):
        self.count = count
        self.batch: torch.Tensor | None = None
        self.filled = 0

    def add(self, frames: torch.Tensor) -> None:
        frames = frames[None] if frames.ndim == 3 else frames
        if self.batch is None:
            self.batch = torch.empty((self.count, *frames.shape[1:]), dtype=torch.float32, device=intermediate_device())
        n = min(frames.shape[0], self.count - self.filled)
        self.batch[self.filled:self.filled + n] = frames[:n].clamp(0, 1)
        self.filled += n

    def image(self) -> torch.Tensor:
        if self.batch is None:
            raise InputError("no frames were made")
        return self.batch[:self.filled]
