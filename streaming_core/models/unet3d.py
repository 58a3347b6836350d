"""The ModelScope text-to-video UNet3D, and StreamingT2V's denoiser built on it.

One class serves three roles, chosen by its config (which the loaders infer from tensor shapes):
- the stock ModelScope / zeroscope UNet3D (first chunk, diffusers UNet3D enhancers);
- StreamingT2V's ``base_model``: the same UNet with APM mixers in its 16 spatial cross-attentions and
  13 CAM cross-attention mergers on its skip connections (spec §2.4, §3.4);
- the encoder-only trunk of the CAM encoder (``with_decoder=False``; see ``cam.py``).

Parameter names equal diffusers' ``UNet3DConditionModel`` (plus the official StreamingT2V names), so
checkpoints load without renaming.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .attention import TransformerTemporal
from .cam_merger import CrossAttentionMerger
from .unet3d_blocks import Level, MidBlock3D, TimestepEmbedding, timestep_embedding
from .operations import execution_dtype

TRANSFORMER_IN_HEADS = 8  # hard-coded in diffusers' UNet3DConditionModel and the official code


@dataclass
class UNet3DConfig:
    in_channels: int = 4
    out_channels: int = 4
    block_out_channels: Sequence[int] = (320, 640, 1280, 1280)
    down_attention: Sequence[bool] = (True, True, True, False)  # CrossAttnDownBlock3D x3, DownBlock3D
    layers_per_block: int = 2
    attention_head_dim: int = 64  # per-head width; heads = channels // attention_head_dim
    cross_attention_dim: int = 1024
    norm_num_groups: int = 32
    norm_eps: float = 1e-5
    apm: bool = False  # StreamingT2V APM mixers in the spatial cross-attentions
    cam_mergers: bool = False  # StreamingT2V CAM mergers on the skip connections
    downsample_padding: tuple = (1, 1)
    upsample_crop_rows: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def time_embed_dim(self) -> int:
        return self.block_out_channels[0] * 4

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_state_dict(cls, sd: Mapping[str, torch.Tensor], prefix: str = "") -> "UNet3DConfig":
        """Every architecture number from tensor shapes (official, diffusers, tiny: same code)."""

        def shape(key):
            t = sd.get(prefix + key)
            return None if t is None else tuple(t.shape)

        if shape("conv_in.weight") is None:
            raise KeyError(f"{prefix}conv_in.weight")
        channels, attention = [], []
        while shape(f"down_blocks.{len(channels)}.resnets.0.conv1.weight") is not None:
            i = len(channels)
            channels.append(shape(f"down_blocks.{i}.resnets.0.conv1.weight")[0])
            attention.append(shape(f"down_blocks.{i}.attentions.0.proj_in.weight") is not None)
        layers = 0
        while shape(f"down_blocks.0.resnets.{layers}.conv1.weight") is not None:
            layers += 1
        inner_in = shape("transformer_in.proj_in.weight")[0]
        first_attn = next(i for i, a in enumerate(attention) if a) if any(attention) else None
        context_dim = shape(f"down_blocks.{first_attn}.attentions.0.transformer_blocks.0.attn2.to_k.weight")[1] \
            if first_attn is not None else 1024
        out = shape("conv_out.weight")
        return cls(
            in_channels=shape("conv_in.weight")[1],
            out_channels=out[0] if out else shape("conv_in.weight")[1],
            block_out_channels=tuple(channels),
            down_attention=tuple(attention),
            layers_per_block=layers,
            attention_head_dim=inner_in // TRANSFORMER_IN_HEADS,
            cross_attention_dim=context_dim,
            apm=shape(f"down_blocks.{first_attn}.attentions.0.transformer_blocks.0.attn2.conv.weight") is not None
            if first_attn is not None else False,
            cam_mergers=shape("cross_attention_merger_mid_block.temporal_transformer.proj_in.weight") is not None,
        )


class UNet3D(nn.Module):
    def __init__(self, config: UNet3DConfig, with_decoder: bool = True):
        super().__init__()
        self.config = c = config
        ch = list(c.block_out_channels)
        temb = c.time_embed_dim
        hd = c.attention_head_dim
        common = dict(dim_head=hd, context_dim=c.cross_attention_dim, groups=c.norm_num_groups, eps=c.norm_eps)

        self.conv_in = nn.Conv2d(c.in_channels, ch[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(ch[0], temb)
        self.transformer_in = TransformerTemporal(ch[0], TRANSFORMER_IN_HEADS, hd, c.norm_num_groups)

        self.down_blocks = nn.ModuleList()
        cin = ch[0]
        for i, cout in enumerate(ch):
            last = i == len(ch) - 1
            self.down_blocks.append(Level(
                cin, cout, temb, c.layers_per_block, attention=c.down_attention[i], heads=cout // hd,
                resample=None if last else "down", apm=c.apm, downsample_padding=c.downsample_padding, **common))
            cin = cout
        self.mid_block = MidBlock3D(ch[-1], temb, ch[-1] // hd, apm=c.apm, **common)

        self.with_decoder = with_decoder
        if with_decoder:
            self.up_blocks = nn.ModuleList()
            rev = ch[::-1]
            up_attention = list(c.down_attention)[::-1]
            prev = rev[0]
            for i, cout in enumerate(rev):
                skip_in = rev[min(i + 1, len(rev) - 1)]
                n = c.layers_per_block + 1
                skips = [cout] * (n - 1) + [skip_in]
                last = i == len(rev) - 1
                self.up_blocks.append(Level(
                    prev, cout, temb, n, attention=up_attention[i], heads=cout // hd, skip_channels=skips,
                    resample=None if last else "up", apm=c.apm, upsample_crop_rows=c.upsample_crop_rows, **common))
                prev = cout
            self.conv_norm_out = nn.GroupNorm(c.norm_num_groups, ch[0], eps=c.norm_eps)
            self.conv_out = nn.Conv2d(ch[0], c.out_channels, 3, padding=1)

        if c.cam_mergers:
            merger_channels = self.skip_channels()
            self.cross_attention_merger_down_blocks = nn.ModuleList(
                CrossAttentionMerger(m, c.norm_num_groups) for m in merger_channels)
            self.cross_attention_merger_mid_block = CrossAttentionMerger(ch[-1], c.norm_num_groups)

    # -- structure -------------------------------------------------------------------------------
    def skip_channels(self) -> list[int]:
        """Channels of the encoder skips in order: transformer_in output, then each level's layers and
        downsampler (12 for the ModelScope layout)."""
        ch = list(self.config.block_out_channels)
        out = [ch[0]]
        for i, c in enumerate(ch):
            out += [c] * self.config.layers_per_block + ([c] if i < len(ch) - 1 else [])
        return out

    @property
    def dtype(self) -> torch.dtype:
        return execution_dtype(self)

    # -- forward pieces --------------------------------------------------------------------------
    def embed_time(self, timestep, batch: int, num_frames: int, device) -> torch.Tensor:
        t = torch.as_tensor(timestep, device=device)
        t = t.expand(batch) if t.ndim == 0 else t.reshape(batch)
        emb = timestep_embedding(t, self.config.block_out_channels[0]).to(self.dtype)
        return self.time_embedding(emb).repeat_interleave(num_frames, dim=0)

    def encode(self, sample: torch.Tensor, timestep, context: torch.Tensor,
               added_features: Optional[torch.Tensor] = None):
        """Encoder and mid block. ``sample`` (B, C, F, H, W); ``added_features`` (B*F, C0, H, W) are
        added after ``transformer_in`` (the CAM frame encoder). Returns (mid, skips, temb, F)."""
        b, _, f, h, w = sample.shape
        temb = self.embed_time(timestep, b, f, sample.device)
        x = sample.permute(0, 2, 1, 3, 4).reshape(b * f, -1, h, w)
        x = self.transformer_in(self.conv_in(x), f)
        if added_features is not None:
            x = x + added_features
        skips = [x]
        for block in self.down_blocks:
            x, level_skips = block.encode(x, temb, context, f)
            skips += level_skips
        x = self.mid_block(x, temb, context, f)
        return x, skips, temb, f

    def merge_cam(self, skips: list[torch.Tensor], mid: torch.Tensor, cam_skips: Sequence[torch.Tensor],
                  cam_mid: torch.Tensor, num_frames: int):
        """CAM: every skip and the mid output attend over the CAM features at the same pixel."""
        if len(cam_skips) != len(skips):
            raise ValueError(f"CAM gave {len(cam_skips)} skip features, the UNet has {len(skips)}")
        skips = [m(s, k, num_frames) for m, s, k in zip(self.cross_attention_merger_down_blocks, skips, cam_skips)]
        return skips, self.cross_attention_merger_mid_block(mid, cam_mid, num_frames)

    def decode(self, x, skips: list[torch.Tensor], temb, context, num_frames: int, batch: int) -> torch.Tensor:
        skips = list(skips)
        for i, block in enumerate(self.up_blocks):
            # odd latent sizes: upsample to the size of the skip the next level will concatenate
            size = None
            if hasattr(block, "upsamplers") and not block.upsamplers[0].crop_rows:
                nxt = skips[-len(block.resnets) - 1]
                size = tuple(nxt.shape[-2:])
            x = block.decode(x, skips, temb, context, num_frames, upsample_size=size)
        x = self.conv_out(F.silu(self.conv_norm_out(x)))
        bf, c, h, w = x.shape
        return x.reshape(batch, num_frames, c, h, w).permute(0, 2, 1, 3, 4)

    def forward(self, sample: torch.Tensor, timestep, context: torch.Tensor,
                cam_features: Optional[tuple[Sequence[torch.Tensor], torch.Tensor]] = None) -> torch.Tensor:
        """``sample`` (B, C, F, H, W) -> model output of the same shape.

        ``context``: (B, tokens, D), shared by the frames of each video (77 text tokens, or 93 with
        the APM anchor tokens). ``cam_features``: (12 skips, mid) from ``CAMEncoder``, or None.
        """
        mid, skips, temb, f = self.encode(sample, timestep, context)
        if cam_features is not None:
            if not self.config.cam_mergers:
                raise ValueError("this UNet has no CAM mergers: it is not a StreamingT2V denoiser")
            skips, mid = self.merge_cam(skips, mid, cam_features[0], cam_features[1], f)
        return self.decode(mid, skips, temb, context, f, sample.shape[0])
