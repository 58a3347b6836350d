"""Random draws of the refiner keyed by what they belong to, so any order of work draws the same values.

A whole-video draw (one generator stepping through every frame) ties each frame's noise to the
frames before it, so the video has to be sampled in one piece. Keyed draws give every value its own
seed from (user seed, purpose, step, frame): the wavefront refiner (``sampling/wavefront.py``) can
work on any window at any step, a resumed run draws exactly what an uninterrupted one would, and a
lock-step run fed the same draws (``lockstep_draws``) computes the same video bit for bit.

What is keyed by what:
- initial SDEdit noise: (seed, frame);
- Gaussian SDE noise of solver step s: (sde seed, s, frame);
- randomized blend cut of overlap j at step s: (seed, s, j) -> ``randint(0, overlap - 1)``.
"Frame" is the video frame for ``randomized`` and ``shared_noise`` (overlapping windows read the same
noise), and (window, frame in window) for ``independent`` (every window its own noise).
"""

from __future__ import annotations

import random
from typing import Hashable, Optional, Sequence

import torch

from ..seeds import derive_seed
from .blend import Window, overlaps

INIT_PURPOSE = "sdedit init noise"
SDE_PURPOSE = "sdedit sde noise"
CUT_PURPOSE = "blend cut"


def frame_noise(purpose: str, seed: int, key: Hashable, shape: Sequence[int], step: Optional[int] = None) -> torch.Tensor:
    """N(0, 1) of ``shape`` (one frame, e.g. (B, C, h, w)) from its own seeded CPU generator."""
    parts = (purpose, int(seed), key) if step is None else (purpose, int(seed), int(step), key)
    return torch.randn(tuple(shape), generator=torch.Generator().manual_seed(derive_seed(*parts)))


def blend_cut(seed: int, step: int, index: int, overlap: int) -> int:
    """Where the later window of overlap ``index`` starts to win at ``step`` (``randomized`` mode)."""
    if overlap <= 0:
        return 0
    return random.Random(derive_seed(CUT_PURPOSE, int(seed), int(step), int(index))).randint(0, overlap - 1)


def step_cuts(windows: Sequence[Window], seed: int, step: int) -> list[int]:
    return [blend_cut(seed, step, j, ov) for j, ov in enumerate(overlaps(windows))]


def sde_seed_of(seed: int, sde_seed: Optional[int]) -> int:
    return int(seed) if sde_seed is None else int(sde_seed)


def slot_keys(windows: Sequence[Window], mode: str) -> list[Hashable]:
    """The draw key of every solver frame: video frames for ``randomized``, the windows laid end to end
    for the separate modes (keyed by video frame for ``shared_noise``, by (window, frame) for ``independent``)."""
    if mode == "randomized":
        return list(range(windows[-1].end))
    if mode == "shared_noise":
        return [w.start + j for w in windows for j in range(w.length)]
    return [f"w{k}.{j}" for k, w in enumerate(windows) for j in range(w.length)]


def lockstep_draws(frame_shape: Sequence[int], windows: Sequence[Window], mode: str, seed: int,
                   sde_seed: Optional[int], steps: int, draws_sde: bool = True):
    """The keyed draws laid out as ``sdedit_windows`` replays them: ``(noise, offsets, increments)``
    (whole-video tensors, or laid-out ones for ``independent``). For tests and for small videos only:
    this holds every draw of the run at once."""
    keys = slot_keys(windows, mode) if mode != "shared_noise" else list(range(windows[-1].end))
    noise = torch.stack([frame_noise(INIT_PURPOSE, seed, key, frame_shape) for key in keys], dim=2)
    offsets = [step_cuts(windows, seed, s) if mode == "randomized" else [0] * (len(windows) - 1)
               for s in range(steps)] if mode == "randomized" else None
    sseed = sde_seed_of(seed, sde_seed)
    increments = [torch.stack([frame_noise(SDE_PURPOSE, sseed, key, frame_shape, step=s) for key in keys], dim=2)
                  for s in range(steps - 1)] if draws_sde else None
    return noise, offsets, increments
