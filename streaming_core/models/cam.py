"""StreamingT2V's Conditional Attention Module (spec §2).

Two halves:
- ``CAMEncoder`` (checkpoint prefix ``unet.``): a frame encoder on the 8 conditioning frames in
  pixel space, added after ``transformer_in`` of a copy of the UNet encoder that sees only the first
  8 noisy latent frames and the 77 text tokens. It returns 12 skip features and a mid feature.
- ``CrossAttentionMerger`` (``base_model.cross_attention_merger_*``, in ``cam_merger.py`` because the
  UNet holds it while this encoder holds a UNet): in the denoiser, each of the 16 generated frames
  attends over the 8 CAM features at the same pixel; the result is added to the skip through a
  zero-initialised projection.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .unet3d import UNet3D

APM_TEXT_TOKENS = 77


class FrameEncoder(nn.Module):
    """``controlnet_cond_embedding``: 3x3 convs with SiLU, stride 2 on every second block, no norms."""

    def __init__(self, out_channels: int, block_channels: Sequence[int] = (32, 96, 256, 512), in_channels: int = 3):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, block_channels[0], 3, padding=1)
        self.blocks = nn.ModuleList()
        for cin, cout in zip(block_channels[:-1], block_channels[1:]):
            self.blocks.append(nn.Conv2d(cin, cin, 3, padding=1))
            self.blocks.append(nn.Conv2d(cin, cout, 3, padding=1, stride=2))
        self.conv_out = nn.Conv2d(block_channels[-1], out_channels, 3, padding=1)

    @property
    def downscale(self) -> int:
        return 2 ** (len(self.blocks) // 2)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = F.silu(self.conv_in(frames))
        for block in self.blocks:
            x = F.silu(block(x))
        return self.conv_out(x)


class CAMEncoder(nn.Module):
    """The ControlNet-style CAM trunk (official ``unet.*``)."""

    def __init__(self, unet_config, frame_channels: Sequence[int] = (32, 96, 256, 512)):
        super().__init__()
        self.config = unet_config
        self.trunk = UNet3D(unet_config, with_decoder=False)  # the trunk is the UNet encoder itself
        self.controlnet_cond_embedding = FrameEncoder(unet_config.block_out_channels[0], frame_channels)

    # Parameter names of the trunk are the official ``unet.conv_in`` etc. with no "trunk." level.
    def state_dict(self, *args, **kwargs):
        sd = super().state_dict(*args, **kwargs)
        return type(sd)((k.replace("trunk.", "", 1) if k.startswith("trunk.") else k, v) for k, v in sd.items())

    def load_state_dict(self, state_dict: Mapping[str, torch.Tensor], strict: bool = True, assign: bool = False):
        sd = {(k if k.startswith("controlnet_cond_embedding.") else "trunk." + k): v for k, v in state_dict.items()}
        return super().load_state_dict(sd, strict=strict, assign=assign)

    def forward(self, latents: torch.Tensor, timestep, text_context: torch.Tensor, frames: torch.Tensor):
        """latents (B, C, F>=Fc, h, w): only the first Fc frames are read; frames (B, Fc, 3, H, W) in
        [-1, 1]; text_context (B, >=77, D): only the 77 text tokens are used (no APM in CAM)."""
        b, fc = frames.shape[:2]
        latents = latents[:, :, :fc]
        cond = self.controlnet_cond_embedding(frames.reshape(b * fc, *frames.shape[2:]).to(self.trunk.dtype))
        mid, skips, _, _ = self.trunk.encode(latents, timestep, text_context[:, :APM_TEXT_TOKENS], added_features=cond)
        return skips, mid

    @staticmethod
    def frame_channels_from_state_dict(sd: Mapping[str, torch.Tensor], prefix: str = "") -> list[int]:
        first = sd[prefix + "controlnet_cond_embedding.conv_in.weight"].shape[0]
        chans, i = [first], 1
        while prefix + f"controlnet_cond_embedding.blocks.{i}.weight" in sd:
            chans.append(sd[prefix + f"controlnet_cond_embedding.blocks.{i}.weight"].shape[0])
            i += 2
        return chans
