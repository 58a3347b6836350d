"""Attention and transformer blocks of the ModelScope UNet3D, in diffusers' key layout.

Written here rather than imported from diffusers because StreamingT2V changes the spatial
cross-attention (the APM token mixer below) and because every attention must go through
``scaled_dot_product_attention``. Module and parameter names equal diffusers' so official
checkpoints load without renaming.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head attention with diffusers' parameter names (to_q, to_k, to_v, to_out.0)."""

    def __init__(self, query_dim: int, heads: int, dim_head: int, context_dim: Optional[int] = None, bias: bool = False):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=bias)
        self.to_k = nn.Linear(context_dim or query_dim, inner, bias=bias)
        self.to_v = nn.Linear(context_dim or query_dim, inner, bias=bias)
        self.to_out = nn.ModuleList([nn.Linear(inner, query_dim), nn.Dropout(0.0)])

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """(B, Lq, inner) x (Bk, Lk, inner) -> (B, Lq, query_dim).

        ``Bk`` may divide ``B``: one context shared by ``B // Bk`` consecutive query rows (the frames
        of one video), projected once instead of once per frame.
        """
        b, lq, inner = q.shape
        if k.shape[0] != b:
            k = k.repeat_interleave(b // k.shape[0], dim=0)
            v = v.repeat_interleave(b // v.shape[0], dim=0)
        h, d = self.heads, inner // self.heads
        q = q.view(b, lq, h, d).transpose(1, 2)
        k = k.view(b, k.shape[1], h, d).transpose(1, 2)
        v = v.view(b, v.shape[1], h, d).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out[0](out.transpose(1, 2).reshape(b, lq, inner))

    def forward(self, x: torch.Tensor, context: Optional[torch.Tensor] = None) -> torch.Tensor:
        context = x if context is None else context
        return self.attend(self.to_q(x), self.to_k(context), self.to_v(context))


class APMCrossAttention(Attention):
    """Spatial cross-attention with StreamingT2V's Appearance Preservation Module mixer.

    The context holds 77 text tokens followed by 16 anchor-image tokens. A Conv1d whose *channels*
    are the 93 tokens (kernel 3 sliding along the 1024 features) mixes them into 77 tokens, which
    are LayerNorm-ed and added to the text tokens through a learned gate SiLU(alpha); keys and values
    come from that sum (spec §3.4). With alpha = 0 the anchor has no effect.
    """

    def __init__(self, query_dim, heads, dim_head, context_dim=1024, text_tokens=77, image_tokens=16):
        super().__init__(query_dim, heads, dim_head, context_dim)
        self.text_tokens = text_tokens
        self.conv = nn.Conv1d(text_tokens + image_tokens, text_tokens, kernel_size=3, padding=1)
        self.conv_ln = nn.LayerNorm(context_dim)
        self.alpha = nn.Parameter(torch.zeros(()))

    def mix_context(self, context: torch.Tensor) -> torch.Tensor:
        if context.shape[1] != self.conv.in_channels:
            raise ValueError(
                f"APM cross-attention needs {self.conv.in_channels} context tokens (77 text + 16 anchor), "
                f"got {context.shape[1]}: pass the anchor tokens from the APM encoder."
            )
        mixed = self.conv_ln(self.conv(context))
        return context[:, : self.text_tokens] + F.silu(self.alpha) * mixed

    def forward(self, x, context=None):
        context = self.mix_context(context)
        return self.attend(self.to_q(x), self.to_k(context), self.to_v(context))


class GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x):
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, dim * mult), nn.Dropout(0.0), nn.Linear(dim * mult, dim)])

    def forward(self, x):
        for layer in self.net:
            x = layer(x)
        return x


class BasicTransformerBlock(nn.Module):
    """LN -> self-attn; LN -> attn2 (cross-attn, or a second self-attn in temporal blocks); LN -> GEGLU."""

    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: Optional[int] = None, apm: bool = False):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads, dim_head)
        self.norm2 = nn.LayerNorm(dim)
        if apm:
            self.attn2 = APMCrossAttention(dim, heads, dim_head, context_dim)
        else:
            self.attn2 = Attention(dim, heads, dim_head, context_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x: torch.Tensor, context: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context) + x
        return self.ff(self.norm3(x)) + x


class Transformer2D(nn.Module):
    """Spatial transformer over the H*W tokens of every frame (linear proj_in/proj_out)."""

    def __init__(self, channels: int, heads: int, dim_head: int, context_dim: int, groups: int = 32, apm: bool = False):
        super().__init__()
        inner = heads * dim_head
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(inner, heads, dim_head, context_dim, apm=apm)])
        self.proj_out = nn.Linear(inner, channels)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """x: (B*F, C, H, W); context: (B or B*F, tokens, context_dim)."""
        bf, c, h, w = x.shape
        residual = x
        x = self.norm(x).permute(0, 2, 3, 1).reshape(bf, h * w, c)
        x = self.proj_in(x)
        for block in self.transformer_blocks:
            x = block(x, context)
        x = self.proj_out(x).reshape(bf, h, w, -1).permute(0, 3, 1, 2)
        return x + residual


class TransformerTemporal(nn.Module):
    """Attention over the frames at each pixel; both attentions are self-attention, no positions."""

    def __init__(self, channels: int, heads: int, dim_head: int, groups: int = 32):
        super().__init__()
        inner = heads * dim_head
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(inner, heads, dim_head)])
        self.proj_out = nn.Linear(inner, channels)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        """x: (B*F, C, H, W), frames of one video consecutive."""
        bf, c, h, w = x.shape
        b = bf // num_frames
        residual = x
        x = x.reshape(b, num_frames, c, h, w).permute(0, 2, 1, 3, 4)
        x = self.norm(x)
        x = x.permute(0, 3, 4, 2, 1).reshape(b * h * w, num_frames, c)
        x = self.proj_in(x)
        for block in self.transformer_blocks:
            x = block(x)
        x = self.proj_out(x)
        x = x.reshape(b, h, w, num_frames, c).permute(0, 3, 4, 1, 2).reshape(bf, c, h, w)
        return x + residual
