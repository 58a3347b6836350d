"""StreamingT2V's APM resampler: one CLIP image vector -> 16 context tokens (spec §3.2).

The official class is called a resampler but is a two-layer MLP; its constructor options for
layers, aggregation and token counts are ignored by the official code, so only the widths matter
and all of them are read from the weight shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn
from .operations import execution_dtype

APM_TOKENS = 16  # image tokens appended to the 77 text tokens (77 + 16 = 93, hard-coded officially)
CONTEXT_DIM = 1024  # width of every context token (text width, CLIP embedding, LayerNorm literal)


@dataclass(frozen=True)
class ResamplerConfig:
    embed_dim: int = 1024  # CLIP image embedding width
    inner_dim: int = 1280  # official class default; the parity fixture uses 16
    num_tokens: int = APM_TOKENS
    context_dim: int = CONTEXT_DIM

    @classmethod
    def from_state_dict(cls, sd: Mapping[str, torch.Tensor], prefix: str = "") -> "ResamplerConfig":
        first = sd[prefix + "context_embedding.0.weight"].shape  # (inner, embed)
        last = sd[prefix + "context_embedding.2.weight"].shape  # (tokens * context, inner)
        if last[0] % CONTEXT_DIM:
            raise ValueError(f"{prefix}context_embedding.2.weight has {last[0]} outputs, not a multiple of {CONTEXT_DIM}")
        return cls(embed_dim=first[1], inner_dim=first[0], num_tokens=last[0] // CONTEXT_DIM, context_dim=CONTEXT_DIM)


class ImageContextResampler(nn.Module):
    """Mean of the CLIP embeddings of a video's anchor frames -> (B, 16, 1024) APM tokens."""

    def __init__(self, config: ResamplerConfig = ResamplerConfig()):
        super().__init__()
        self.config = config
        self.context_embedding = nn.Sequential(
            nn.Linear(config.embed_dim, config.inner_dim),
            nn.SiLU(),
            nn.Linear(config.inner_dim, config.num_tokens * config.context_dim),
        )

    def forward(self, embeddings: torch.Tensor, batch_size: int = 1) -> torch.Tensor:
        """``embeddings`` (B*F, D) with the F anchor frames of each video consecutive, or (B, F, D)."""
        if embeddings.ndim == 2:
            embeddings = embeddings.reshape(batch_size, -1, embeddings.shape[-1])
        x = embeddings.to(execution_dtype(self)).mean(dim=1)
        return self.context_embedding(x).reshape(x.shape[0], self.config.num_tokens, self.config.context_dim)
