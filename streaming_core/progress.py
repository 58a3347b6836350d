"""The one progress/cancel protocol every pipeline speaks.

A pipeline calls ``on_step(done, total, preview)`` after each unit of work (a denoising step, a
frame). ``preview`` is None, a small (F, H, W, 3) float tensor in 0..1 on the CPU (decoded frames),
or a ``LatentPreview``: the sampler's current clean-latent estimate, which a host decodes with its
own previewer (ComfyUI's latent-to-RGB factors or TAESD), so the core needs no preview decoder. The callback
stops the run by raising (``streaming_core.errors.Cancelled`` or the host's own interrupt
exception); pipelines never swallow it, so a stop lands within one step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch

# The latent space of a LatentPreview. "sd": the SD 1.x/2.x VAE (4 channels, scaled by 0.18215), used by
# ModelScope, StreamingT2V, MS-Vid2Vid-XL and zeroscope.
SD_LATENTS = "sd"


@dataclass(frozen=True)
class LatentPreview:
    """The sampler's x0 estimate at this step, for hosts that decode previews themselves.

    latents: (B, C, F, h, w) *scaled* latents (what the denoiser works in), on the model's device;
    the newest frame is the last one along F. family: which latent space (``SD_LATENTS``).
    """

    latents: torch.Tensor
    family: str = SD_LATENTS

    def newest_frame(self) -> torch.Tensor:
        """(1, C, h, w): the last frame of the first video, detached."""
        return self.latents[:1, :, -1].detach()


Preview = Optional[Union[torch.Tensor, LatentPreview]]
ProgressCallback = Callable[[int, int, Preview], None]


def is_frames(preview: Preview) -> bool:
    """True for decoded frames (a tensor), False for None or a LatentPreview."""
    return isinstance(preview, torch.Tensor)


def no_progress(done: int, total: int, preview: Preview = None) -> None:
    """Default callback: does nothing, never stops the run."""


def all_but_last(on_step: ProgressCallback) -> ProgressCallback:
    """``on_step`` for every step of a stage but its last: the caller reports that one itself once the
    stage's result exists (its decoded frames as the preview, so a bar reaches the end with a picture)."""

    def report(done: int, total: int, preview: Preview = None) -> None:
        if done < total:
            on_step(done, total, preview)

    return report


class StepCounter:
    """Turns per-stage step counts into one running total for a callback."""

    def __init__(self, total: int, on_step: Optional[ProgressCallback] = None):
        self.total = int(total)
        self.done = 0
        self.on_step = on_step or no_progress

    def step(self, preview: Preview = None, n: int = 1) -> None:
        self.done += n
        self.on_step(self.done, self.total, preview)

    def count(self, done: int, total: int, preview: Preview = None) -> None:
        """A stage's own ``on_step`` (its done/total are its own): one step more of the whole run."""
        self.step(preview)
