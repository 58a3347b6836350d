"""DPM-Solver++(2M) (Lu et al. 2022) as small pure functions: the official first-chunk sampler.

The official first chunk runs diffusers' ``DPMSolverMultistepScheduler.from_config(<ModelScope DDIM
config>)``. ``from_config`` carries over only the values the hub config *wrote* (betas, epsilon
prediction, steps_offset 1); values the DDIM scheduler merely defaulted are not carried (diffusers
records them as ``_use_default_values``), and the timestep spacing is one of them: DDIM's default
"leading" becomes DPM-Solver's default "linspace". The rest are DPM defaults too: dpmsolver++,
order 2, midpoint, lower_order_final, final sigma 0. What that scheduler then does, reproduced here in
its float32 arithmetic so the two agree to the last bits:

- timesteps: ``steps + 1`` slots spaced over 0..999 with the last dropped (``spaced_timesteps(...,
  extra_slot=True)``); "linspace" for the official first chunk, whose schedule writes no spacing, so
  50 steps give 999, 979, ..., 40, 20 (DDIM would run 981, ..., 1);
- sigmas ``sqrt((1 - a) / a)`` at those timesteps, then a final 0;
- first order at the first step (no history yet) and at the last (final sigma 0), second order
  (midpoint) in between.

The solver works in VP space: ``x`` is the noisy latent as the UNet sees it (no input scaling).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..schedules.discrete import DiscreteVPSchedule
from ..schedules.prediction import to_x0
from .denoiser import Denoiser, StepCallback, StepNoise


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


def dpm_solver_plan(schedule: DiscreteVPSchedule, steps: int) -> DPMSolverPlan:
    """The schedule's spacing ("linspace", DPM-Solver's default, where it wrote none) over
    ``steps + 1`` slots, the last dropped (see above)."""
    ts = schedule.timesteps(steps, default_spacing="linspace", extra_slot=True)
    ac = schedule.alphas_cumprod
    table = ((1 - ac) / ac) ** 0.5  # float32, as the scheduler computes it
    sigmas = torch.cat([table[ts], torch.zeros(1, dtype=table.dtype)]).to(torch.float32)
    return DPMSolverPlan(ts, sigmas)


def vp_alpha_sigma(sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """VE sigma -> the VP pair (alpha_t, sigma_t)."""
    alpha = 1 / ((sigma**2 + 1) ** 0.5)
    return alpha, sigma * alpha


def _lambda(alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    return torch.log(alpha) - torch.log(sigma)


def dpmpp_2m_step(x: torch.Tensor, x0: torch.Tensor, plan: DPMSolverPlan, i: int,
                  previous_x0: Optional[torch.Tensor] = None) -> torch.Tensor:
    """One DPM-Solver++ update from ``plan.sigmas[i]`` to ``plan.sigmas[i + 1]``.

    ``x0``: the data prediction at step ``i``; ``previous_x0``: the one of step ``i - 1`` (needed
    where ``plan.order(i) == 2``). Computed in float32.
    """
    x = x.to(torch.float32)
    alpha_t, sigma_t = vp_alpha_sigma(plan.sigmas[i + 1])
    alpha_s0, sigma_s0 = vp_alpha_sigma(plan.sigmas[i])
    h = _lambda(alpha_t, sigma_t) - _lambda(alpha_s0, sigma_s0)
    phi = alpha_t * (torch.exp(-h) - 1.0)
    if plan.order(i) == 1:
        return ((sigma_t / sigma_s0) * x - phi * x0).to(torch.float32)
    if previous_x0 is None:
        raise ValueError(f"step {i} is second order and needs the previous data prediction")
    alpha_s1, sigma_s1 = vp_alpha_sigma(plan.sigmas[i - 1])
    h_0 = _lambda(alpha_s0, sigma_s0) - _lambda(alpha_s1, sigma_s1)
    r0 = h_0 / h
    d1 = (1.0 / r0) * (x0 - previous_x0)
    return ((sigma_t / sigma_s0) * x - phi * x0 - 0.5 * phi * d1).to(torch.float32)


def sample_dpmpp_2m(model: Denoiser, x: torch.Tensor, schedule: DiscreteVPSchedule, steps: int, *, eta: float = 0.0,
                    noise: Optional[StepNoise] = None, callback: Optional[StepCallback] = None) -> torch.Tensor:
    """The whole ``dpm_solver_plan(schedule, steps)``. Deterministic: ``eta`` and ``noise`` do not
    apply (accepted so every loop has one shape, ``sampling/denoiser.py``)."""
    plan = dpm_solver_plan(schedule, steps)
    previous = None
    for i, t in enumerate(plan.timesteps.tolist()):
        output = model(x, t)
        x0 = to_x0(output, x, *vp_alpha_sigma(plan.sigmas[i]), schedule.prediction_type)
        x = dpmpp_2m_step(x, x0, plan, i, previous)
        previous = x0
        if callback is not None:
            callback({"i": i, "t": t, "x": x, "denoised": x0, "output": output})
    return x
