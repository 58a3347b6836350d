"""The one shape every sampler loop has, k-diffusion style: ``loop(model, x, schedule, steps, *, eta,
noise, callback) -> x``, over one denoiser signature.

The denoiser is ``model(x, t) -> output``: ``x`` the noisy latent as the network sees it (VP space,
float32), ``t`` an integer training timestep, ``output`` the (guided) network output in the
schedule's prediction type ("epsilon", "v" or "sample", ``schedules.prediction``). It returns the raw
output, not x0, because each solver derives x0 (``schedules.prediction.to_x0``) at its own VP
(alpha, sigma): DDIM at ``sqrt(alphas_cumprod[t])``, DPM-Solver at the pair of its continuous sigma,
and the parity fixtures pin each to the last bit. The pipelines' guided closures, the refiner's
``ChunkModel`` and ``guided_model.guided_chunk_model`` all have this shape.
"""

from __future__ import annotations

from typing import Callable, Optional, Protocol

import torch

from ..schedules.discrete import DiscreteVPSchedule

Denoiser = Callable[[torch.Tensor, int], torch.Tensor]
# fresh N(0, 1) noise shaped like x for step i (stochastic samplers only; the caller owns the draws)
StepNoise = Callable[[int], torch.Tensor]
# after each step: {"i": step index, "t": its timestep, "x": the latent after the step,
#                   "denoised": the step's x0 estimate, "output": the denoiser's output}
StepCallback = Callable[[dict], None]


class SamplerLoop(Protocol):
    def __call__(self, model: Denoiser, x: torch.Tensor, schedule: DiscreteVPSchedule, steps: int, *,
                 eta: float = 0.0, noise: Optional[StepNoise] = None,
                 callback: Optional[StepCallback] = None) -> torch.Tensor: ...
