"""DDIM as a small pure function (Song et al. 2021; diffusers' ``DDIMScheduler.step`` arithmetic).

Used by the StreamingT2V CAM extension (eta 1, epsilon) and by Stream-DiffVSR (eta 0, v-prediction,
trailing spacing). The caller owns the random draws: ``noise`` is passed in, so the loop decides
which generator and which layout the official code used.
"""

from __future__ import annotations

from typing import Optional

import torch

from ..schedules.discrete import DiscreteVPSchedule


def ddim_prev_timestep(schedule: DiscreteVPSchedule, t: int, steps: int) -> int:
    return int(t) - schedule.num_train_timesteps // steps


def ddim_step(
    schedule: DiscreteVPSchedule,
    model_output: torch.Tensor,
    t: int,
    x: torch.Tensor,
    steps: int,
    eta: float = 0.0,
    noise: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One DDIM update from timestep ``t``; returns ``(x_prev, x0_pred)``.

    With ``eta > 0`` the stochastic part needs ``noise`` shaped like ``x``.
    """
    t = int(t)
    t_prev = ddim_prev_timestep(schedule, t, steps)
    a_t = schedule.alpha_at(t)
    a_prev = schedule.alpha_at(t_prev)
    x0, eps = schedule.x0_and_eps(model_output, x, t)
    variance = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)
    std = eta * variance**0.5
    x_prev = a_prev**0.5 * x0 + (1 - a_prev - std**2) ** 0.5 * eps
    if eta > 0:
        if noise is None:
            raise ValueError("ddim_step with eta > 0 needs the variance noise")
        x_prev = x_prev + std * noise
    return x_prev, x0
