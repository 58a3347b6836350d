"""Convolutional building blocks of the ModelScope UNet3D (diffusers key layout).

Frames travel flattened into the batch, ``(B*F, C, H, W)`` with the frames of one video
consecutive; the temporal layers fold them back out with ``num_frames``.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .attention import Transformer2D, TransformerTemporal


def timestep_embedding(timesteps: torch.Tensor, dim: int, flip_sin_to_cos: bool = True, shift: float = 0.0,
                       max_period: int = 10000) -> torch.Tensor:
    """Sinusoidal embedding in float32 (diffusers' ``get_timestep_embedding``)."""
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / (half - shift)
    args = timesteps[:, None].float() * torch.exp(exponent)[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class TimestepEmbedding(nn.Module):
    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)))


class ResnetBlock2D(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, temb_channels: int, groups: int = 32, eps: float = 1e-5):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, out_channels)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps)
        self.dropout = nn.Dropout(0.0)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return x + h


class TemporalConvLayer(nn.Module):
    """Four GroupNorm-SiLU-Conv3d(3,1,1) layers over the frame axis, residual (diffusers layout)."""

    def __init__(self, channels: int, groups: int = 32, dropout: float = 0.1):
        super().__init__()

        def layer(drop: bool) -> nn.Sequential:
            mods = [nn.GroupNorm(groups, channels), nn.SiLU()]
            mods += [nn.Dropout(dropout)] if drop else []
            return nn.Sequential(*mods, nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0)))

        self.conv1, self.conv2, self.conv3, self.conv4 = layer(False), layer(True), layer(True), layer(True)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        bf, c, h, w = x.shape
        x = x.reshape(bf // num_frames, num_frames, c, h, w).permute(0, 2, 1, 3, 4)
        y = self.conv4(self.conv3(self.conv2(self.conv1(x))))
        return (x + y).permute(0, 2, 1, 3, 4).reshape(bf, c, h, w)


class Downsample2D(nn.Module):
    """3x3 stride-2 conv. ``padding`` is (1, 1) in ModelScope; MS-Vid2Vid-XL pads (2, 1)."""

    def __init__(self, channels: int, padding: tuple[int, int] = (1, 1)):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=padding)

    def forward(self, x):
        return self.conv(x)


class Upsample2D(nn.Module):
    """Nearest x2 then 3x3 conv. ``crop_rows`` drops rows top and bottom (MS-Vid2Vid-XL crops 1)."""

    def __init__(self, channels: int, crop_rows: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.crop_rows = crop_rows

    def forward(self, x: torch.Tensor, size: Optional[tuple[int, int]] = None) -> torch.Tensor:
        dtype = x.dtype
        if dtype == torch.bfloat16:  # nearest upsampling has no bf16 kernel on some backends
            x = x.float()
        x = F.interpolate(x, size=size, mode="nearest") if size is not None else F.interpolate(x, scale_factor=2.0, mode="nearest")
        x = x.to(dtype)
        if self.crop_rows:
            x = x[..., self.crop_rows:-self.crop_rows, :]
        return self.conv(x)


class Level(nn.Module):
    """One resolution level of the encoder or decoder: layers of resnet -> temporal conv
    [-> spatial attention -> temporal attention], then an optional resampler.

    Encoder levels (``skip_channels=None``) return the output of every layer and of the downsampler
    as skips; decoder levels consume skips from the end of the list.
    """

    def __init__(self, in_channels: int, out_channels: int, temb_channels: int, num_layers: int, *,
                 attention: bool, heads: int, dim_head: int, context_dim: int, groups: int, eps: float,
                 skip_channels: Optional[list[int]] = None, resample: Optional[str] = None,
                 apm: bool = False, downsample_padding=(1, 1), upsample_crop_rows: int = 0):
        super().__init__()
        self.resnets = nn.ModuleList()
        self.temp_convs = nn.ModuleList()
        for i in range(num_layers):
            cin = (in_channels if i == 0 else out_channels)
            if skip_channels is not None:
                cin = (in_channels if i == 0 else out_channels) + skip_channels[i]
            self.resnets.append(ResnetBlock2D(cin, out_channels, temb_channels, groups, eps))
            self.temp_convs.append(TemporalConvLayer(out_channels, groups))
        if attention:
            self.attentions = nn.ModuleList(
                Transformer2D(out_channels, heads, dim_head, context_dim, groups, apm=apm) for _ in range(num_layers))
            self.temp_attentions = nn.ModuleList(
                TransformerTemporal(out_channels, heads, dim_head, groups) for _ in range(num_layers))
        else:
            self.attentions = self.temp_attentions = None
        if resample == "down":
            self.downsamplers = nn.ModuleList([Downsample2D(out_channels, downsample_padding)])
        elif resample == "up":
            self.upsamplers = nn.ModuleList([Upsample2D(out_channels, upsample_crop_rows)])

    def _layer(self, i: int, x, temb, context, num_frames):
        x = self.resnets[i](x, temb)
        x = self.temp_convs[i](x, num_frames)
        if self.attentions is not None:
            x = self.attentions[i](x, context)
            x = self.temp_attentions[i](x, num_frames)
        return x

    def encode(self, x, temb, context, num_frames) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for i in range(len(self.resnets)):
            x = self._layer(i, x, temb, context, num_frames)
            skips.append(x)
        if hasattr(self, "downsamplers"):
            x = self.downsamplers[0](x)
            skips.append(x)
        return x, skips

    def decode(self, x, skips: list[torch.Tensor], temb, context, num_frames, upsample_size=None) -> torch.Tensor:
        for i in range(len(self.resnets)):
            x = torch.cat([x, skips.pop()], dim=1)
            x = self._layer(i, x, temb, context, num_frames)
        if hasattr(self, "upsamplers"):
            x = self.upsamplers[0](x, upsample_size)
        return x


class MidBlock3D(nn.Module):
    """resnet -> temporal conv -> spatial attn -> temporal attn -> resnet -> temporal conv."""

    def __init__(self, channels: int, temb_channels: int, heads: int, dim_head: int, context_dim: int,
                 groups: int, eps: float, apm: bool = False):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(channels, channels, temb_channels, groups, eps) for _ in range(2)])
        self.temp_convs = nn.ModuleList([TemporalConvLayer(channels, groups) for _ in range(2)])
        self.attentions = nn.ModuleList([Transformer2D(channels, heads, dim_head, context_dim, groups, apm=apm)])
        self.temp_attentions = nn.ModuleList([TransformerTemporal(channels, heads, dim_head, groups)])

    def forward(self, x, temb, context, num_frames):
        x = self.temp_convs[0](self.resnets[0](x, temb), num_frames)
        x = self.attentions[0](x, context)
        x = self.temp_attentions[0](x, num_frames)
        return self.temp_convs[1](self.resnets[1](x, temb), num_frames)
