"""The one progress/cancel protocol every pipeline speaks.

A pipeline calls ``on_step(done, total, preview)`` after each unit of work (a denoising step, a
frame). ``preview`` is None or a small (F, H, W, 3) float tensor in 0..1 on the CPU. The callback
stops the run by raising (``streaming_core.errors.Cancelled`` or the host's own interrupt
exception); pipelines never swallow it, so a stop lands within one step.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

ProgressCallback = Callable[[int, int, Optional[torch.Tensor]], None]


def no_progress(done: int, total: int, preview: Optional[torch.Tensor] = None) -> None:
    """Default callback: does nothing, never stops the run."""


class StepCounter:
    """Turns per-stage step counts into one running total for a callback."""

    def __init__(self, total: int, on_step: Optional[ProgressCallback] = None):
        self.total = int(total)
        self.done = 0
        self.on_step = on_step or no_progress

    def step(self, preview: Optional[torch.Tensor] = None, n: int = 1) -> None:
        self.done += n
        self.on_step(self.done, self.total, preview)
