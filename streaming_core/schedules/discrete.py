"""Discrete variance-preserving noise schedules and timestep spacings, built from facts.

Never read from a hub config: the numbers of each model's scheduler are written where the model is
defined (see ``ModelScopeDDIM`` below and the Stream-DiffVSR scheduler config). The arithmetic
follows diffusers' float32 computation exactly, so the DDIM steps of the parity fixtures match
bit for bit where they can.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from .prediction import prediction_type


def betas_for(num_train_timesteps: int, beta_start: float, beta_end: float, beta_schedule: str) -> torch.Tensor:
    if beta_schedule == "scaled_linear":
        return torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float32) ** 2
    if beta_schedule == "linear":
        return torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float32)
    raise ValueError(f"unknown beta_schedule {beta_schedule!r} (scaled_linear or linear)")


def spaced_timesteps(num_train_timesteps: int, steps: int, spacing: str = "leading", steps_offset: int = 0, *,
                     extra_slot: bool = False) -> torch.Tensor:
    """Descending int64 timesteps for ``steps`` sampling steps (diffusers' three spacings).

    ``extra_slot``: DPM-Solver's schedulers space ``steps + 1`` slots and drop the last ("leading",
    "linspace"; "trailing" is the same for both), where DDIM's space ``steps``.
    """
    if not 1 <= steps <= num_train_timesteps:
        raise ValueError(f"steps must be in 1..{num_train_timesteps}, got {steps}")
    slots = steps + 1 if extra_slot else steps
    if spacing == "leading":
        ratio = num_train_timesteps // slots
        ts = (np.arange(0, slots) * ratio).round()[::-1].copy().astype(np.int64) + steps_offset
    elif spacing == "trailing":
        ratio = num_train_timesteps / steps
        ts = np.round(np.arange(num_train_timesteps, 0, -ratio)).astype(np.int64) - 1
    elif spacing == "linspace":
        ts = np.linspace(0, num_train_timesteps - 1, slots).round()[::-1].copy().astype(np.int64)
    else:
        raise ValueError(f"unknown timestep spacing {spacing!r} (leading, trailing or linspace)")
    if slots > steps and spacing != "trailing":
        ts = ts[:-1].copy()
    return torch.from_numpy(ts)


@dataclass(frozen=True)
class DiscreteVPSchedule:
    """alphas_cumprod of a 1000-step VP model plus how its network output is parameterised."""

    alphas_cumprod: torch.Tensor  # float32, (num_train_timesteps,)
    prediction_type: str = "epsilon"
    set_alpha_to_one: bool = False
    # None: the config wrote none, so each sampler takes its scheduler's default (diffusers' DDIM
    # "leading", DPM-Solver "linspace"): what ``from_config`` of one scheduler into another does
    timestep_spacing: Optional[str] = None
    steps_offset: int = 0

    def __post_init__(self):
        object.__setattr__(self, "prediction_type", prediction_type(self.prediction_type))  # "v_prediction" -> "v"

    @classmethod
    def from_betas(cls, num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", **kw):
        betas = betas_for(num_train_timesteps, beta_start, beta_end, beta_schedule)
        return cls(torch.cumprod(1.0 - betas, dim=0), **kw)

    @property
    def num_train_timesteps(self) -> int:
        return self.alphas_cumprod.shape[0]

    @property
    def final_alpha_cumprod(self) -> torch.Tensor:
        return torch.tensor(1.0) if self.set_alpha_to_one else self.alphas_cumprod[0]

    def timesteps(self, steps: int, *, default_spacing: str = "leading", extra_slot: bool = False) -> torch.Tensor:
        """``spaced_timesteps`` with this schedule's spacing, or the sampler's ``default_spacing`` where
        the config wrote none (DDIM's "leading" unless told)."""
        return spaced_timesteps(self.num_train_timesteps, steps, self.timestep_spacing or default_spacing,
                                self.steps_offset, extra_slot=extra_slot)

    def alpha_at(self, t: int) -> torch.Tensor:
        """alphas_cumprod[t], or the final alpha for t < 0 (the step after the last)."""
        return self.alphas_cumprod[t] if t >= 0 else self.final_alpha_cumprod

    def alpha_sigma_at(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """VP (alpha, sigma) = (sqrt(alphas_cumprod[t]), sqrt(1 - alphas_cumprod[t])), for
        ``schedules.prediction.to_x0``/``to_eps``; t < 0 is the step after the last."""
        a = self.alpha_at(t)
        return a**0.5, (1 - a) ** 0.5


def modelscope_t2v_schedule() -> DiscreteVPSchedule:
    """DDIM config of damo-vilab/text-to-video-ms-1.7b (spec §1.3). It writes no timestep spacing:
    DDIM runs 981, 961, ..., 1 for 50 steps ("leading"), DPM-Solver 999, 979, ..., 20 ("linspace")."""
    return DiscreteVPSchedule.from_betas(
        1000, 0.00085, 0.012, "scaled_linear",
        prediction_type="epsilon", set_alpha_to_one=False, timestep_spacing=None, steps_offset=1,
    )
