"""DDIM as a small pure function (Song et al. 2021; diffusers' ``DDIMScheduler.step`` arithmetic),
and ``sample_ddim``, its loop over a denoiser (``sampling/denoiser.py``).

Used by the StreamingT2V CAM extension (eta 1, epsilon) and by Stream-DiffVSR (eta 0, v-prediction,
trailing spacing). The caller owns the random draws: ``noise`` is passed in, so the loop decides
which generator and which layout the official code used.
"""

from __future__ import annotations

from typing import Optional

import torch

from ..schedules.discrete import DiscreteVPSchedule
from ..schedules.prediction import to_eps, to_x0
from .denoiser import Denoiser, StepCallback, StepNoise


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
    alpha, sigma = schedule.alpha_sigma_at(t)
    x0 = to_x0(model_output, x, alpha, sigma, schedule.prediction_type)
    eps = to_eps(model_output, x, alpha, sigma, schedule.prediction_type)
    variance = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)
    std = eta * variance**0.5
    x_prev = a_prev**0.5 * x0 + (1 - a_prev - std**2) ** 0.5 * eps
    if eta > 0:
        if noise is None:
            raise ValueError("ddim_step with eta > 0 needs the variance noise")
        x_prev = x_prev + std * noise
    return x_prev, x0


def sample_ddim(model: Denoiser, x: torch.Tensor, schedule: DiscreteVPSchedule, steps: int, *, eta: float = 0.0,
                noise: Optional[StepNoise] = None, callback: Optional[StepCallback] = None) -> torch.Tensor:
    """DDIM over ``schedule.timesteps(steps)`` (the schedule's spacing, "leading" where it wrote none);
    ``noise(i)`` is asked for once per step, after the model call, only when ``eta > 0``."""
    for i, t in enumerate(schedule.timesteps(steps).tolist()):
        output = model(x, t)
        x, x0 = ddim_step(schedule, output, t, x, steps, eta, noise(i) if eta > 0 and noise is not None else None)
        if callback is not None:
            callback({"i": i, "t": t, "x": x, "denoised": x0, "output": output})
    return x
