"""A tiny random stock ModelScope UNet3D (the first-chunk model), for tests, the demo and make-tiny.

Same class and key layout as text-to-video-ms-1.7b's UNet with small widths; its cross-attention
width stays 1024 so it reads the StreamingT2V text encoder's tokens, as the real one does. Written
under the diffusers folder layout (``<folder>/unet/diffusion_pytorch_model.safetensors``), so it
loads through exactly the path real downloads take.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import torch

from ..models.unet3d import UNet3D, UNet3DConfig
from ..state_files import save_safetensors
from .st2v import randomize_

TINY_BASE_FOLDER = "text-to-video-ms-1.7b"  # name under <models>/streamingt2v/ where generate looks


def tiny_modelscope_config() -> UNet3DConfig:
    return UNet3DConfig(block_out_channels=(32, 32, 32, 32), attention_head_dim=8, cross_attention_dim=1024)


def build_tiny_modelscope_unet(seed: int = 0, dtype: torch.dtype = torch.float32) -> UNet3D:
    unet = UNet3D(tiny_modelscope_config())
    randomize_(unet, seed)
    return unet.to(dtype).eval().requires_grad_(False)


def write_tiny_modelscope(unet: UNet3D, folder: str | os.PathLike, dtype: Optional[torch.dtype] = None) -> Path:
    """Write ``<folder>/unet/diffusion_pytorch_model.safetensors`` (atomic); returns the file."""
    sd = unet.state_dict()
    if dtype is not None:
        sd = {k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()}
    path = Path(folder) / "unet" / "diffusion_pytorch_model.safetensors"
    save_safetensors(sd, path, metadata={"format": "pt"})
    return path
