"""The APM anchor-frame encoder: OpenCLIP's ViT visual tower with the official preprocessing.

StreamingT2V's checkpoint stores open_clip ViT-H/14 under ``image_encoder.model.*``: the visual tower
plus six leftover text-side tensors (the official code deletes the text transformer but not these).
Only the visual tower is built here, never the ~350M-parameter text tower; the leftovers are named in
``OPEN_CLIP_TEXT_LEFTOVERS`` so loaders can accept and drop them on purpose.

Preprocessing uses kornia itself: its bicubic ``antialias=True`` resize blurs with a Gaussian only
when downscaling (the real 256 px anchor), which torch's antialiased resize does not reproduce.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn
from .operations import execution_dtype

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# open_clip text-side tensors left in the official checkpoint next to ``visual``: present, never used.
OPEN_CLIP_TEXT_LEFTOVERS = (
    "token_embedding.weight",
    "positional_embedding",
    "text_projection",
    "logit_scale",
    "ln_final.weight",
    "ln_final.bias",
)

# Per-head width of open_clip's large towers (model configs' ``head_width``); the rest use 64.
# ViT-H/14 is width 1280 with 16 heads of 80, not 20 heads of 64: the split is invisible in shapes.
_OPEN_CLIP_HEAD_WIDTH = {1280: 80, 1408: 88, 1664: 104, 1792: 112}


@dataclass(frozen=True)
class VisionTowerConfig:
    image_size: int = 224
    patch_size: int = 14
    width: int = 1280
    layers: int = 32
    heads: int = 16
    mlp_ratio: float = 4.0
    output_dim: int = 1024

    @staticmethod
    def heads_for_width(width: int) -> int:
        return max(1, width // _OPEN_CLIP_HEAD_WIDTH.get(width, 64))

    @classmethod
    def from_state_dict(cls, sd: Mapping[str, torch.Tensor], prefix: str = "") -> "VisionTowerConfig":
        """``prefix`` points at the tower (e.g. ``image_encoder.model.visual.``)."""
        conv = sd[prefix + "conv1.weight"].shape  # (width, 3, patch, patch)
        positions = sd[prefix + "positional_embedding"].shape[0]
        grid = math.isqrt(positions - 1)
        if grid * grid != positions - 1:
            raise ValueError(f"{prefix}positional_embedding has {positions} rows: not 1 + a square patch grid")
        layers = 0
        while prefix + f"transformer.resblocks.{layers}.ln_1.weight" in sd:
            layers += 1
        width = conv[0]
        mlp = sd[prefix + "transformer.resblocks.0.mlp.c_fc.weight"].shape[0]
        return cls(
            image_size=grid * conv[2],
            patch_size=conv[2],
            width=width,
            layers=layers,
            heads=cls.heads_for_width(width),
            mlp_ratio=mlp / width,
            output_dim=sd[prefix + "proj"].shape[1],
        )


def clip_preprocess(pixels: torch.Tensor, size: int = 224) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] -> CLIP input: kornia bicubic resize (align_corners, antialias), to
    [0, 1], CLIP mean/std. Computed in float32 whatever the input dtype."""
    import kornia

    x = pixels.float()
    x = kornia.geometry.transform.resize(x, (size, size), interpolation="bicubic", align_corners=True, antialias=True)
    x = (x + 1.0) / 2.0
    mean = torch.tensor(CLIP_MEAN, device=x.device)
    std = torch.tensor(CLIP_STD, device=x.device)
    return kornia.enhance.normalize(x, mean, std)


class OpenCLIPImageEncoder(nn.Module):
    """Pooled, projected CLIP image embedding of frames in [-1, 1] (the official
    ``FrozenOpenCLIPImageEmbedder`` with ``output_tokens=False``). Parameters live under
    ``model.visual.*`` so the official ``image_encoder.model.visual.*`` keys load unchanged."""

    def __init__(self, config: VisionTowerConfig = VisionTowerConfig()):
        super().__init__()
        from open_clip.transformer import VisionTransformer

        self.config = config
        self.model = nn.Module()
        self.model.visual = VisionTransformer(
            image_size=config.image_size,
            patch_size=config.patch_size,
            width=config.width,
            layers=config.layers,
            heads=config.heads,
            mlp_ratio=config.mlp_ratio,
            output_dim=config.output_dim,
        )

    @property
    def dtype(self) -> torch.dtype:
        return execution_dtype(self)

    def preprocess(self, pixels: torch.Tensor) -> torch.Tensor:
        return clip_preprocess(pixels, self.config.image_size)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, output_dim)."""
        return self.model.visual(self.preprocess(pixels).to(self.dtype))
