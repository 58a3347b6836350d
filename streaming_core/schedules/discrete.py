"""Discrete variance-preserving noise schedules and timestep spacings, built from facts.

Never read from a hub config: the numbers of each model's scheduler are written where the model is
defined (see ``ModelScopeDDIM`` below and the Stream-DiffVSR scheduler config). The arithmetic
follows diffusers' float32 computation exactly, so the DDIM steps of the parity fixtures match
bit for bit where they can.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .prediction import PREDICTION_TYPES, prediction_type  # noqa: F401 (PREDICTION_TYPES: old import path)


def betas_for(num_train_timesteps: int, beta_start: float, beta_end: float, beta_schedule: str) -> torch.Tensor:
    if beta_schedule == "scaled_linear":
        return torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float32) ** 2
    if beta_schedule == "linear":
        return torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float32)
    raise ValueError(f"unknown beta_schedule {beta_schedule!r} (scaled_linear or linear)")


def spaced_timesteps(num_train_timesteps: int, steps: int, spacing: str = "leading", steps_offset: int = 0) -> torch.Tensor:
    """Descending int64 timesteps for ``steps`` sampling steps (diffusers' three spacings)."""
    if not 1 <= steps <= num_train_timesteps:
        raise ValueError(f"steps must be in 1..{num_train_timesteps}, got {steps}")
    if spacing == "leading":
        ratio = num_train_timesteps // steps
        ts = (np.arange(0, steps) * ratio).round()[::-1].copy().astype(np.int64) + steps_offset
    elif spacing == "trailing":
        ratio = num_train_timesteps / steps
        ts = np.round(np.arange(num_train_timesteps, 0, -ratio)).astype(np.int64) - 1
    elif spacing == "linspace":
        ts = np.linspace(0, num_train_timesteps - 1, steps).round()[::-1].copy().astype(np.int64)
    else:
        raise ValueError(f"unknown timestep spacing {spacing!r} (leading, trailing or linspace)")
    return torch.from_numpy(ts)


@dataclass(frozen=True)
class DiscreteVPSchedule:
    """alphas_cumprod of a 1000-step VP model plus how its network output is parameterised."""

    alphas_cumprod: torch.Tensor  # float32, (num_train_timesteps,)
    prediction_type: str = "epsilon"
    set_alpha_to_one: bool = False
    timestep_spacing: str = "leading"
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

    def timesteps(self, steps: int) -> torch.Tensor:
        return spaced_timesteps(self.num_train_timesteps, steps, self.timestep_spacing, self.steps_offset)

    def alpha_at(self, t: int) -> torch.Tensor:
        """alphas_cumprod[t], or the final alpha for t < 0 (the step after the last)."""
        return self.alphas_cumprod[t] if t >= 0 else self.final_alpha_cumprod

    def x0_and_eps(self, model_output: torch.Tensor, x: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The clean sample and the noise implied by a network output at timestep ``t``."""
        a = self.alpha_at(t)
        sa, s1a = a**0.5, (1 - a) ** 0.5
        if self.prediction_type == "epsilon":
            return (x - s1a * model_output) / sa, model_output
        if self.prediction_type == "v":
            return sa * x - s1a * model_output, sa * model_output + s1a * x
        if self.prediction_type == "sample":
            return model_output, (x - sa * model_output) / s1a
        raise AssertionError(self.prediction_type)  # checked in __post_init__


def modelscope_t2v_schedule() -> DiscreteVPSchedule:
    """DDIM config of damo-vilab/text-to-video-ms-1.7b (spec §1.3): 981, 961, ..., 1 for 50 steps."""
    return DiscreteVPSchedule.from_betas(
        1000, 0.00085, 0.012, "scaled_linear",
        prediction_type="epsilon", set_alpha_to_one=False, timestep_spacing="leading", steps_offset=1,
    )
