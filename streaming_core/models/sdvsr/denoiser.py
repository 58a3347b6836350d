"""The denoiser: diffusers' ``UNet2DConditionModel`` (x4-upscaler UNet, 7 input channels) and the
ARTG ``ControlNetModel`` on the flow-warped previous HR output (spec §2.1-2.2).

Both are stock diffusers classes with stock key names, used as they are; only their configs come
from us (inferred from tensor shapes, see ``checkpoints.sdvsr``). Attention runs through diffusers'
default processor, i.e. ``scaled_dot_product_attention``.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Callable, Iterator, Optional

import torch
from diffusers import ControlNetModel, UNet2DConditionModel
from torch import nn


def _accepted(cls, config: dict) -> dict:
    params = inspect.signature(cls.__init__).parameters
    return {k: v for k, v in config.items() if k in params}


def build_unet(config: dict) -> UNet2DConditionModel:
    """A UNet from a diffusers config dict (keys the installed diffusers does not know are dropped)."""
    return UNet2DConditionModel(**_accepted(UNet2DConditionModel, config)).eval().requires_grad_(False)


def build_controlnet(config: dict) -> ControlNetModel:
    return ControlNetModel(**_accepted(ControlNetModel, config)).eval().requires_grad_(False)


class _ReusedEmbedding(nn.Module):
    """Returns a precomputed conditioning embedding (the warped frame is the same at all 4 steps)."""

    def __init__(self, embedding: torch.Tensor):
        super().__init__()
        self.embedding = embedding

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        return self.embedding


@contextlib.contextmanager
def reuse_cond_embedding(controlnet: ControlNetModel, cond: torch.Tensor) -> Iterator[None]:
    """Compute ARTG's conditioning embedding of ``cond`` once for all denoising steps of a frame.

    The embedding is a stack of HR-resolution convolutions that does not depend on the timestep;
    diffusers would recompute it at every step. The module is swapped back on exit, so the model's
    state dict and behaviour outside the block are untouched.
    """
    original = controlnet.controlnet_cond_embedding
    with torch.no_grad():
        embedding = original(cond)
    controlnet.controlnet_cond_embedding = _ReusedEmbedding(embedding)
    try:
        yield
    finally:
        controlnet.controlnet_cond_embedding = original


@torch.no_grad()
def predict_v(
    unet: UNet2DConditionModel,
    controlnet: Optional[ControlNetModel],
    sample: torch.Tensor,
    timestep: torch.Tensor,
    prompt_embeds: torch.Tensor,
    cond: Optional[torch.Tensor] = None,
    record: Optional[Callable[[str, torch.Tensor], None]] = None,
) -> torch.Tensor:
    """The UNet's v-prediction for the 7-channel ``sample``; with ARTG residuals when ``cond`` is given.

    ``cond=None`` is the first-frame path: the ControlNet is not run at all (as official).
    """
    down = mid = None
    if cond is not None:
        down, mid = controlnet(sample, timestep, encoder_hidden_states=prompt_embeds, controlnet_cond=cond,
                               conditioning_scale=1.0, guess_mode=False, return_dict=False)
        if record is not None:
            for i, r in enumerate(down):
                record(f"cn_down.{i}", r)
            record("cn_mid", mid)
    return unet(sample, timestep, encoder_hidden_states=prompt_embeds, down_block_additional_residuals=down,
                mid_block_additional_residual=mid, return_dict=False)[0]
