"""The CAM's cross-attention merger (official ``base_model.cross_attention_merger_*``, spec §2): in the
denoiser, each of the 16 generated frames attends over the 8 CAM features at the same pixel; the
result is added to the skip through a zero-initialised projection.

A module of its own because the UNet holds mergers while the CAM encoder (``cam.py``) holds a UNet.
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import Attention

MERGER_HEAD_DIM = 64  # hard-coded in the official ConditionalModel


class _MergerTransformer(nn.Module):
    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, channels)
        self.attention = Attention(channels, channels // MERGER_HEAD_DIM, MERGER_HEAD_DIM, context_dim=channels)
        self.proj_out = nn.Linear(channels, channels)


class CrossAttentionMerger(nn.Module):
    def __init__(self, channels: int, groups: int = 32):
        super().__init__()
        if channels % MERGER_HEAD_DIM:
            raise ValueError(f"CAM merger channels must be a multiple of {MERGER_HEAD_DIM}, got {channels}")
        self.temporal_transformer = _MergerTransformer(channels, groups)

    def forward(self, skip: torch.Tensor, cam: torch.Tensor, num_frames: int) -> torch.Tensor:
        """skip (B*F, C, H, W), cam (B*Fc, C, H, W) -> skip + proj_out(attention)."""
        tt = self.temporal_transformer
        bf, c, h, w = skip.shape
        b = bf // num_frames
        fc = cam.shape[0] // b
        q = tt.norm(skip.reshape(b, num_frames, c, h, w).permute(0, 2, 1, 3, 4))
        q = q.permute(0, 3, 4, 2, 1).reshape(b * h * w, num_frames, c)
        kv = cam.reshape(b, fc, c, h, w).permute(0, 3, 4, 1, 2).reshape(b * h * w, fc, c)
        out = tt.proj_out(tt.attention(tt.proj_in(q), kv))
        out = out.reshape(b, h, w, num_frames, c).permute(0, 3, 4, 1, 2).reshape(bf, c, h, w)
        return skip + out
