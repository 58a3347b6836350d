"""DPM-Solver++(2M) (Lu et al. 2022) as small pure functions: the official first-chunk sampler.

The official first chunk runs diffusers' ``DPMSolverMultistepScheduler.from_config(<ModelScope DDIM
config>)``. ``from_config`` carries over only the values the hub config *wrote* (betas, epsilon
prediction, steps_offset 1); values the DDIM scheduler merely defaulted are not carried (diffusers
records them as ``_use_default_values``), and the timestep spacing is one of them: DDIM's default
"leading" becomes DPM-Solver's default "linspace". The rest are DPM defaults too: dpmsolver++,
order 2, midpoint, lower_order_final, final sigma 0. What that scheduler then does, reproduced here in
its float32 arithmetic so the two agree to the last bits:

- timesteps: ``steps + 1`` slots spaced over 0..999 with the last dropped; "linspace" for the
  official first chunk, so 50 steps give 999, 979, ..., 40, 20 (DDIM would run 981, ..., 1);
- sigmas ``sqrt((1 - a) / a)`` at those timesteps, then a final 0;
- first order at the first step (no history yet) and at the last (final sigma 0), second order
  (midpoint) in between.

The solver works in VP space: ``x`` is the noisy latent as the UNet sees it (no input scaling).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Optional

import numpy as np
import torch

from ..schedules.discrete import DiscreteVPSchedule, modelscope_t2v_schedule


def dpm_solver_timesteps(num_train_timesteps: int, steps: int, spacing: str = "leading", steps_offset: int = 0) -> torch.Tensor:
    """Descending int64 timesteps of diffusers' DPM-Solver schedulers (they space ``steps + 1``
    slots and drop the last, unlike DDIM)."""
    if not 1 <= steps <= num_train_timesteps:
        raise ValueError(f"steps must be in 1..{num_train_timesteps}, got {steps}")
    n = num_train_timesteps
    if spacing == "leading":
        ratio = n // (steps + 1)
        ts = (np.arange(0, steps + 1) * ratio).round()[::-1][:-1].copy().astype(np.int64) + steps_offset
    elif spacing == "linspace":
        ts = np.linspace(0, n - 1, steps + 1).round()[::-1][:-1].copy().astype(np.int64)
    elif spacing == "trailing":
        ts = np.arange(n, 0, -n / steps).round().copy().astype(np.int64) - 1
    else:
        raise ValueError(f"unknown timestep spacing {spacing!r} (leading, trailing or linspace)")
    return torch.from_numpy(ts)


@dataclass(frozen=True)
class DPMSolverPlan:
    """What a run of ``steps`` needs: the UNet timesteps and the sigmas between them."""

    timesteps: torch.Tensor  # int64 (steps,)
    sigmas: torch.Tensor  # float32 (steps + 1,), sigmas[i] belongs to timesteps[i], last is 0

    @property
    def steps(self) -> int:
        return int(self.timesteps.shape[0])

    def order(self, i: int) -> int:
        """1 at the first step (no history) and the last (lower_order_final, final sigma 0), else 2."""
        return 1 if i == 0 or i == self.steps - 1 else 2


def modelscope_dpm_solver_schedule() -> DiscreteVPSchedule:
    """The schedule ``DPMSolverMultistepScheduler.from_config(<ModelScope DDIM config>)`` ends up
    with: the DDIM betas and offset, but DPM-Solver's own default "linspace" spacing (see above)."""
    return replace(modelscope_t2v_schedule(), timestep_spacing="linspace")


def dpm_solver_plan(schedule: DiscreteVPSchedule, steps: int) -> DPMSolverPlan:
    ts = dpm_solver_timesteps(schedule.num_train_timesteps, steps, schedule.timestep_spacing, schedule.steps_offset)
    ac = schedule.alphas_cumprod
    table = ((1 - ac) / ac) ** 0.5  # float32, as the scheduler computes it
    sigmas = torch.cat([table[ts], torch.zeros(1, dtype=table.dtype)]).to(torch.float32)
    return DPMSolverPlan(ts, sigmas)


def _alpha_sigma(sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """VE sigma -> the VP pair (alpha_t, sigma_t)."""
    alpha = 1 / ((sigma**2 + 1) ** 0.5)
    return alpha, sigma * alpha


def _lambda(alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    return torch.log(alpha) - torch.log(sigma)


def x0_from_eps(x: torch.Tensor, eps: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Data prediction from a noise prediction at VE ``sigma`` (x in VP space)."""
    alpha, sig = _alpha_sigma(sigma)
    return (x - sig * eps) / alpha


def dpmpp_2m_step(x: torch.Tensor, x0: torch.Tensor, plan: DPMSolverPlan, i: int,
                  previous_x0: Optional[torch.Tensor] = None) -> torch.Tensor:
    """One DPM-Solver++ update from ``plan.sigmas[i]`` to ``plan.sigmas[i + 1]``.

    ``x0``: the data prediction at step ``i``; ``previous_x0``: the one of step ``i - 1`` (needed
    where ``plan.order(i) == 2``). Computed in float32.
    """
    x = x.to(torch.float32)
    alpha_t, sigma_t = _alpha_sigma(plan.sigmas[i + 1])
    alpha_s0, sigma_s0 = _alpha_sigma(plan.sigmas[i])
    h = _lambda(alpha_t, sigma_t) - _lambda(alpha_s0, sigma_s0)
    phi = alpha_t * (torch.exp(-h) - 1.0)
    if plan.order(i) == 1:
        return ((sigma_t / sigma_s0) * x - phi * x0).to(torch.float32)
    if previous_x0 is None:
        raise ValueError(f"step {i} is second order and needs the previous data prediction")
    alpha_s1, sigma_s1 = _alpha_sigma(plan.sigmas[i - 1])
    h_0 = _lambda(alpha_s0, sigma_s0) - _lambda(alpha_s1, sigma_s1)
    r0 = h_0 / h
    d1 = (1.0 / r0) * (x0 - previous_x0)
    return ((sigma_t / sigma_s0) * x - phi * x0 - 0.5 * phi * d1).to(torch.float32)


def sample_dpmpp_2m(eps_fn: Callable[[torch.Tensor, int], torch.Tensor], x: torch.Tensor, plan: DPMSolverPlan,
                    after_step: Optional[Callable[[int, torch.Tensor], None]] = None) -> torch.Tensor:
    """Run the whole plan. ``eps_fn(x, t)`` is the (guided) noise prediction at integer timestep
    ``t``; ``after_step(i, x0)`` runs after each step with its data prediction (progress, previews, cancel)."""
    previous = None
    for i, t in enumerate(plan.timesteps.tolist()):
        x0 = x0_from_eps(x, eps_fn(x, t), plan.sigmas[i])
        x = dpmpp_2m_step(x, x0, plan, i, previous)
        previous = x0
        if after_step is not None:
            after_step(i, x0)
    return x
