"""Everything the upscaler needs, loaded once: the four networks, the empty-prompt embedding and
the noise schedule."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import nn
from diffusers import ControlNetModel, UNet2DConditionModel

from ...official import UPSCALE
from ...schedules.discrete import DiscreteVPSchedule
from .raft import RaftFlow
from .temporal_vae import TemporalAutoencoderTiny
from ..operations import execution_device, execution_dtype

NUM_STEPS = UPSCALE.steps  # the distilled UNet was trained for t = 999, 749, 499, 249 (trailing spacing)


def sdvsr_schedule(config: Optional[dict] = None) -> DiscreteVPSchedule:
    """The scheduler of the official ``scheduler/scheduler_config.json`` (spec §2.5), or ``config``'s."""
    c = {"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "scaled_linear",
         "prediction_type": "v_prediction", "timestep_spacing": "trailing", "set_alpha_to_one": False,
         "steps_offset": 1, **(config or {})}
    return DiscreteVPSchedule.from_betas(
        c["num_train_timesteps"], c["beta_start"], c["beta_end"], c["beta_schedule"],
        prediction_type=c["prediction_type"], set_alpha_to_one=c["set_alpha_to_one"],
        timestep_spacing=c["timestep_spacing"], steps_offset=c["steps_offset"],
    )


@dataclass
class SDVSRModels:
    """The loaded Stream-DiffVSR. ``prompt_embeds`` is CLIP("") computed once at load time (the text
    encoder itself is not kept).

    Precision: UNet and ControlNet (99.7 % of the parameters and of the work) take the chosen
    ``dtype``. RAFT always stays float32 (see ``raft.py``); the 2 M-parameter VAE stays float32 by
    default because it writes the output pixels and the recurrent state directly (bfloat16's 8-bit
    mantissa is one 8-bit grey level near white) and costs little next to the UNet.
    """

    unet: UNet2DConditionModel
    controlnet: ControlNetModel
    vae: TemporalAutoencoderTiny
    raft: RaftFlow
    prompt_embeds: torch.Tensor  # (1, 77, cross_attention_dim) float32
    schedule: DiscreteVPSchedule = field(default_factory=sdvsr_schedule)
    name: str = "stream_diffvsr"

    @property
    def device(self) -> torch.device:
        return execution_device(self.unet)

    @property
    def dtype(self) -> torch.dtype:
        return execution_dtype(self.unet)

    @property
    def scale(self) -> int:
        """Output pixels per input pixel (4)."""
        return self.vae.config.spatial_factor

    @property
    def vae_dtype(self) -> torch.dtype:
        return execution_dtype(self.vae)

    def to(self, device=None, dtype: Optional[torch.dtype] = None, vae_dtype: Optional[torch.dtype] = None) -> "SDVSRModels":
        """Move in place (and return self). ``dtype``: UNet and ControlNet; ``vae_dtype``: the VAE
        (default: keep its dtype, float32 as loaded). RAFT stays float32."""
        for m in (self.unet, self.controlnet):
            nn.Module.to(m, device=device, dtype=dtype)  # (diffusers' own .to() logs a spurious warning)
        self.vae.to(device=device, dtype=vae_dtype)
        self.raft.to(device=device)
        self.prompt_embeds = self.prompt_embeds.to(device=device)
        return self
