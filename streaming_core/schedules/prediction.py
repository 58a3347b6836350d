"""What a denoiser's output is, and the one conversion from it to the clean sample and the noise.

One vocabulary for the pack ("epsilon", "v", "sample"): hub scheduler configs (diffusers) spell
v-prediction "v_prediction"; ``prediction_type`` reads both spellings and returns ours. ``to_x0`` and
``to_eps`` serve every sampler: each passes the VP (alpha, sigma) it works at (DDIM the schedule's
``sqrt(alphas_cumprod)``, DPM-Solver the pair of its continuous sigma), and the operation order is the
one the parity fixtures pin bit for bit (diffusers' and MS-Vid2Vid-XL's).
"""

from __future__ import annotations

import torch

PREDICTION_TYPES = ("epsilon", "v", "sample")
_HUB_SPELLINGS = {"v_prediction": "v"}


def prediction_type(name: str) -> str:
    """``name`` in the pack's vocabulary; ValueError for an unknown one."""
    ours = _HUB_SPELLINGS.get(name, name)
    if ours not in PREDICTION_TYPES:
        raise ValueError(f"unknown prediction type {name!r}; one of {PREDICTION_TYPES} (or diffusers' v_prediction)")
    return ours


def _unknown(name: str) -> ValueError:
    return ValueError(f"unknown prediction type {name!r}; one of {PREDICTION_TYPES}")


def to_x0(output: torch.Tensor, x: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor,
          prediction_type: str) -> torch.Tensor:
    """The clean sample implied by a network ``output`` for the VP latent ``x = alpha x0 + sigma eps``."""
    if prediction_type == "epsilon":
        return (x - sigma * output) / alpha
    if prediction_type == "v":
        return alpha * x - sigma * output
    if prediction_type == "sample":
        return output
    raise _unknown(prediction_type)


def to_eps(output: torch.Tensor, x: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor,
           prediction_type: str) -> torch.Tensor:
    """The noise implied by a network ``output`` for the VP latent ``x = alpha x0 + sigma eps``."""
    if prediction_type == "epsilon":
        return output
    if prediction_type == "v":
        return alpha * output + sigma * x
    if prediction_type == "sample":
        return (x - alpha * output) / sigma
    raise _unknown(prediction_type)
