"""Discrete VP noise tables seen as continuous EDM sigmas (the view DPM-Solver++ SDE works in).

A VP model at integer timestep t sees ``x_t = alpha_t * x0 + sigma_t * eps`` with
``alpha_t^2 + sigma_t^2 = 1``. The equivalent EDM (variance-exploding) noise level is
``sigma_t / alpha_t``; between integer timesteps it is interpolated linearly in log space, and the
inverse map gives a (fractional) timestep for any EDM sigma. Both MS-Vid2Vid-XL's schedule and a
diffusers ``alphas_cumprod`` table (zeroscope) become a ``VPSigmaTable``, so one sampler serves both.

The float32 operation order below reproduces the official MS-Vid2Vid-XL tables bit for bit (checked
against the parity fixture), which is why some expressions are not written in their shortest form.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def _logsnr_cosine(n: int, logsnr_min: float, logsnr_max: float) -> torch.Tensor:
    """Cosine schedule in log-SNR, index 0 the cleanest (logsnr_max), index n-1 the noisiest."""
    angle_noisy = math.atan(math.exp(-0.5 * logsnr_min))
    angle_clean = math.atan(math.exp(-0.5 * logsnr_max))
    weight = torch.linspace(1, 0, n)  # 1 at the clean end
    return -2 * torch.log(torch.tan(angle_noisy + weight * (angle_clean - angle_noisy)))


def logsnr_cosine_interp(n: int = 1000, logsnr_min: float = -15.0, logsnr_max: float = 15.0,
                         scale_min: float = 2.0, scale_max: float = 4.0) -> torch.Tensor:
    """Log-SNR of a cosine schedule shifted by ``scale``, the shift moving from ``scale_min`` at the
    clean end to ``scale_max`` at the noisy end (more noise at high resolution)."""
    weight = torch.linspace(1, 0, n)
    shifted_min = _logsnr_cosine(n, logsnr_min, logsnr_max) + 2 * math.log(1 / scale_min)
    shifted_max = _logsnr_cosine(n, logsnr_min, logsnr_max) + 2 * math.log(1 / scale_max)
    return weight * shifted_min + (1 - weight) * shifted_max


def zero_terminal_snr(sigma_vp: torch.Tensor) -> torch.Tensor:
    """Stretch the VP sigmas linearly so the last one is exactly 1 (pure noise at the last step).
    A no-op when it already is, as for MS-Vid2Vid-XL's table in float32."""
    lo, hi = sigma_vp.min(), sigma_vp.max()
    if hi == 1.0:
        return sigma_vp
    return lo + (1.0 - lo) / (hi - lo) * (sigma_vp - lo)


@dataclass(frozen=True)
class VPSigmaTable:
    """VP sigma per integer timestep, with the EDM-sigma <-> timestep maps of k-diffusion."""

    sigma_vp: torch.Tensor  # (n,) float32, increasing with t

    @classmethod
    def ms_vid2vid(cls) -> "VPSigmaTable":
        """MS-Vid2Vid-XL (spec §6.2): logsnr_cosine_interp n=1000, logsnr [-15, 15], scale 2 -> 4,
        zero terminal SNR."""
        return cls(zero_terminal_snr(torch.sqrt(torch.sigmoid(-logsnr_cosine_interp(1000, -15, 15, 2, 4)))))

    @classmethod
    def from_alphas_cumprod(cls, alphas_cumprod: torch.Tensor) -> "VPSigmaTable":
        return cls(torch.sqrt(1 - alphas_cumprod.float()))

    @property
    def num_timesteps(self) -> int:
        return self.sigma_vp.shape[0]

    @property
    def alpha_vp(self) -> torch.Tensor:
        return torch.sqrt(1 - self.sigma_vp**2)

    @property
    def log_edm_sigmas(self) -> torch.Tensor:
        """log(sigma/alpha) per integer t (+inf where alpha is 0)."""
        s = self.sigma_vp
        return torch.log(torch.sqrt(s**2 / (1 - s**2)))

    def max_finite_timestep(self) -> int:
        """The noisiest timestep with a finite EDM sigma (zero-terminal-SNR tables end at infinity)."""
        finite = torch.isfinite(self.log_edm_sigmas).nonzero()
        return int(finite.max())

    def alpha_sigma_at(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """VP alpha and sigma at integer timesteps ``t`` (the official x0 conversion uses these, not
        the continuous sigma the solver is at)."""
        t = torch.as_tensor(t, dtype=torch.long, device=self.sigma_vp.device)
        return self.alpha_vp[t], self.sigma_vp[t]

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t).float().to(self.sigma_vp.device)
        low, high, frac = t.floor().long(), t.ceil().long(), t.frac()
        log_sigmas = self.log_edm_sigmas
        return ((1 - frac) * log_sigmas[low] + frac * log_sigmas[high]).exp()

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """Fractional timestep of an EDM sigma, piecewise linear in log sigma (clamped to the table)."""
        sigma = torch.as_tensor(sigma, dtype=torch.float32).detach().to(self.sigma_vp.device)
        log_sigma = sigma.log()
        log_sigmas = self.log_edm_sigmas
        dists = log_sigma - log_sigmas[:, None]
        low = dists.ge(0).cumsum(dim=0).argmax(dim=0).clamp(max=log_sigmas.shape[0] - 2)
        high = low + 1
        lo, hi = log_sigmas[low], log_sigmas[high]
        w = ((lo - log_sigma) / (lo - hi)).clamp(0, 1)
        return ((1 - w) * low + w * high).view(sigma.shape)

    def timestep_for_sigma(self, sigma: torch.Tensor) -> int:
        """The integer timestep the network is called with at EDM ``sigma`` (rounded, as official)."""
        return int(self.sigma_to_t(sigma.reshape(1)).round().long())

    def sdedit_sigmas(self, t_start: int, steps: int, t_end: int = 0,
                      discard_penultimate: bool = True) -> torch.Tensor:
        """EDM sigmas from ``t_start`` down to 0 for ``steps`` solver iterations.

        'trailing' spacing over ``steps + 1`` points (one extra, then the penultimate sigma is
        dropped after appending 0: DPM++ 2M SDE's last step to sigma 0 is then a full-size one), as
        MS-Vid2Vid-XL's ``sample(..., discretization='trailing', discard_penultimate_step=True)``.
        """
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        n = steps + 1 if discard_penultimate else steps
        span = t_start - t_end + 1
        # float arange can yield one extra point just above t_end - 1 (e.g. n = 7); keep n of them
        ts = torch.arange(t_start, t_end - 1, -span / n)[:n].clamp(t_end, t_start)
        sigmas = torch.cat([self.t_to_sigma(ts), torch.zeros(1)])
        if discard_penultimate:
            sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
        return sigmas


def strength_to_timestep(strength: float, table: VPSigmaTable) -> int:
    """SDEdit start timestep for a strength in (0, 1]: official 599 of 1000 is strength 0.6.

    ``round(strength * n) - 1`` (0.6 -> 599), capped at the noisiest finite EDM sigma.
    """
    if not 0 < strength <= 1:
        raise ValueError(f"strength must be in (0, 1], got {strength}")
    return max(1, min(round(strength * table.num_timesteps) - 1, table.max_finite_timestep()))
