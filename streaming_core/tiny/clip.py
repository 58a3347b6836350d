"""A tiny open_clip checkpoint with both towers (image and text) of one embedding width, for the CLIP
score's tests and tiny evaluation runs: the key layout of ``open_clip_pytorch_model.bin``, random weights."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..checkpoints.files import save_torch
from ..models.clip_image import OpenCLIPImageEncoder, VisionTowerConfig
from .enhancer import tiny_open_clip_state_dict
from .st2v import randomize_

TINY_EMBED = 32  # the text tower's width and projection (tiny_open_clip_state_dict's default)
TINY_VISION = VisionTowerConfig(image_size=32, patch_size=16, width=32, layers=1, heads=1, mlp_ratio=2.0,
                                output_dim=TINY_EMBED)


def tiny_open_clip_full_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """``visual.*`` (a 1-layer ViT on 32 px) + a 3-layer text tower + CLIP head, 32-d embeddings."""
    sd = tiny_open_clip_state_dict(seed, width=TINY_EMBED)
    vision = OpenCLIPImageEncoder(TINY_VISION)
    randomize_(vision, seed + 1)
    sd.update({k[len("model."):]: v.detach().clone() for k, v in vision.state_dict().items()})
    return sd


def write_tiny_open_clip(path: str | os.PathLike, seed: int = 0) -> Path:
    return save_torch(tiny_open_clip_full_state_dict(seed), path)
