"""DPM-Solver++(2M) SDE (Lu et al. 2022; k-diffusion's ``sample_dpmpp_2m_sde``) as a small pure
function, and the noise sources it draws from.

Works in EDM terms: ``x`` is the noisy latent at noise level ``sigma`` (x = x0 + sigma * eps), and
``denoise(x, sigma)`` returns the clean estimate. The caller owns every random draw through
``noise(i, sigma, sigma_next)``, so a run can be replayed exactly from recorded increments
(``ReplayNoise``) or driven by a Brownian tree (``BrownianTreeNoise``; MS-Vid2Vid-XL seeds it with
entropy 0 over the whole-video tensor, so overlapping chunks share the SDE noise too).
"""

from __future__ import annotations

import warnings
from typing import Callable, Optional, Sequence

import torch

# k-diffusion's inner shape: (x at EDM sigma, sigma) -> x0. sdedit.BlendedDenoiser builds one from the
# pack's denoiser (sampling/denoiser.py) with the one x0 conversion.
EDMDenoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
NoiseSource = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]


class BrownianTreeNoise:
    """Unit-variance increments of one Brownian motion over [sigma_min, sigma_max], as k-diffusion's
    ``BrownianTreeNoiseSampler`` (a torchsde Brownian tree: the same path whatever the step sizes).

    Exactly the official values for a given ``seed`` (entropy; checked against the parity fixture's
    recorded increments), at a price that grows with the video: every query walks ~22 tree levels,
    each drawing a full-size Gaussian tensor, and torchsde caches interval values. The tree lives on
    the CPU (values do not depend on the device; GPU memory stays free) with a smaller cache than
    torchsde's default 45 (the values do not depend on the cache, only the speed does).
    """

    def __init__(self, like: torch.Tensor, sigmas: torch.Tensor, seed: int = 0, cache_size: int = 16):
        import torchsde

        positive = sigmas[sigmas > 0].cpu()
        self.tree = torchsde.BrownianInterval(
            t0=positive.min(), t1=sigmas.max().cpu(), size=tuple(like.shape), dtype=torch.float32, device="cpu",
            entropy=int(seed), tol=1e-6, pool_size=24, halfway_tree=True, cache_size=cache_size)

    def __call__(self, i: int, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        sigma, sigma_next = sigma.cpu(), sigma_next.cpu()
        lo, hi = (sigma_next, sigma) if sigma_next < sigma else (sigma, sigma_next)
        sign = -1 if sigma_next < sigma else 1
        with warnings.catch_warnings():
            # float32 sigmas vs the tree's float64 end point: torchsde warns, harmlessly (also officially)
            warnings.filterwarnings("ignore", message="Should have")
            w = self.tree(lo, hi) * sign
        return w / (sigma_next - sigma).abs().sqrt()


class GaussianStepNoise:
    """Independent N(0, 1) per step from a seeded generator (on the CPU, so device independent).

    For a fixed list of sigmas this has the same law as the Brownian tree's increments (increments of
    a Brownian motion over disjoint intervals are independent Gaussians) at the cost of one draw per
    step: the choice for long videos, where the tree's cost and memory grow with the frame count.
    """

    def __init__(self, like: torch.Tensor, seed: int = 0):
        self.shape = tuple(like.shape)
        self.generator = torch.Generator().manual_seed(int(seed))

    def __call__(self, i: int, sigma, sigma_next) -> torch.Tensor:
        return torch.randn(self.shape, generator=self.generator)


class ReplayNoise:
    """Recorded increments, one per solver step that draws (the last step to sigma 0 draws none)."""

    def __init__(self, increments: Sequence[torch.Tensor]):
        self.increments = list(increments)

    def __call__(self, i: int, sigma, sigma_next) -> torch.Tensor:
        if i >= len(self.increments):
            raise IndexError(f"no recorded noise for solver step {i} ({len(self.increments)} recorded)")
        return self.increments[i]


def dpmpp_2m_sde_step(
    x: torch.Tensor,
    denoised: torch.Tensor,
    old_denoised: Optional[torch.Tensor],
    sigma: torch.Tensor,
    sigma_next: torch.Tensor,
    h_last: Optional[torch.Tensor],
    noise: Optional[Callable[[], torch.Tensor]],
    *,
    eta: float = 1.0,
    s_noise: float = 1.0,
) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """One solver update, ``(x_next, h)``. Every operation is per element of ``x``, so updating a
    slice of the frames gives bit for bit the slice of a whole-video update: the wavefront refiner
    (``sampling/wavefront.py``) updates frames as they are ready with this same function."""
    if sigma_next == 0:
        return denoised, h_last
    h = sigma.log() - sigma_next.log()
    eta_h = eta * h
    x = sigma_next / sigma * (-eta_h).exp() * x + (-h - eta_h).expm1().neg() * denoised
    if old_denoised is not None:
        r = h_last / h
        x = x + 0.5 * (-h - eta_h).expm1().neg() * (1 / r) * (denoised - old_denoised)
    if eta:
        if noise is None:
            raise ValueError("an SDE step (eta > 0) needs a noise source")
        x = x + noise().to(x.device, x.dtype) * sigma_next * (-2 * eta_h).expm1().neg().sqrt() * s_noise
    return x, h


def sample_dpmpp_2m_sde(
    denoise: EDMDenoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    noise: Optional[NoiseSource] = None,
    *,
    eta: float = 1.0,
    s_noise: float = 1.0,
    callback: Optional[Callable[[dict], None]] = None,
) -> torch.Tensor:
    """Second-order multistep SDE solver, midpoint variant. ``eta=0`` gives the deterministic
    DPM-Solver++(2M) ODE (then ``noise`` may be None). ``callback`` gets
    ``{i, x, sigma, denoised}`` after each step's update."""
    old_denoised = h_last = None
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = denoise(x, sigma)
        draw = None if noise is None else (lambda i=i, a=sigma, b=sigma_next: noise(i, a, b))
        x, h_last = dpmpp_2m_sde_step(x, denoised, old_denoised, sigma, sigma_next, h_last, draw,
                                      eta=eta, s_noise=s_noise)
        old_denoised = denoised
        if callback is not None:
            callback({"i": i, "x": x, "sigma": sigma, "denoised": denoised})
    return x
