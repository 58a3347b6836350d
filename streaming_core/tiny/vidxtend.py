"""Tiny weight files in the layouts users already have: VidXTend (one file or diffusers folders),
a ComfyUI ``clip_vision`` file (Hugging Face CLIPVisionModelWithProjection names) and an open_clip
checkpoint, all holding the networks of the tiny StreamingT2V (``tiny.st2v``), so each of them,
loaded, must give back exactly the modules of the tiny official checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import torch

from ..state_files import save_safetensors, save_torch
from ..checkpoints.image_encoder import open_clip_to_hf
from ..checkpoints.vidxtend import from_official, write_folders
from ..models.streamingt2v import StreamingT2V
from .st2v import build_tiny_streamingt2v, tiny_official_state_dict

VIDXTEND_FILE = "vidxtend.fp16.safetensors"  # the hub's fp16 single file name
CLIP_VISION_FILE = "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"  # the name ComfyUI / IP-Adapter users have
OPEN_CLIP_FILE = "open_clip_pytorch_model.bin"


def _cast(sd: dict, dtype: Optional[torch.dtype]) -> dict:
    return {k: v.to(dtype) if dtype is not None and v.is_floating_point() else v for k, v in sd.items()}


def _image_encoder_sd(model: StreamingT2V) -> dict[str, torch.Tensor]:
    if model.image_encoder is None:
        raise ValueError("the tiny model has no image encoder to write")
    return model.image_encoder.state_dict()  # model.visual.*


def vidxtend_state_dict(model: StreamingT2V, dtype: Optional[torch.dtype] = None) -> dict[str, torch.Tensor]:
    """VidXTend's single-file keys for the model (no image encoder, as on the hub)."""
    return _cast(from_official(model.official_state_dict()), dtype)


def write_vidxtend_file(model: StreamingT2V, path: str | os.PathLike, dtype: Optional[torch.dtype] = None) -> Path:
    save_safetensors(vidxtend_state_dict(model, dtype), path)
    return Path(path)


def write_vidxtend_folders(model: StreamingT2V, folder: str | os.PathLike, dtype: Optional[torch.dtype] = None,
                           variant: str = "") -> Path:
    sd = {k: v for k, v in model.official_state_dict().items() if not k.startswith("image_encoder.")}
    return write_folders(_cast(sd, dtype), folder, variant)


def clip_vision_state_dict(model: StreamingT2V, dtype: Optional[torch.dtype] = None) -> dict[str, torch.Tensor]:
    """The tiny image encoder in the Hugging Face CLIPVisionModelWithProjection layout."""
    return _cast(open_clip_to_hf(_image_encoder_sd(model)), dtype)


def write_clip_vision_file(model: StreamingT2V, path: str | os.PathLike, dtype: Optional[torch.dtype] = None) -> Path:
    save_safetensors(clip_vision_state_dict(model, dtype), path)
    return Path(path)


def write_open_clip_file(model: StreamingT2V, path: str | os.PathLike, text_width: int = 32) -> Path:
    """An open_clip checkpoint (pickle, as released): ``visual.*`` plus a small random text tower and
    CLIP head that the image-encoder loader must ignore."""
    sd = {"visual." + k[len("model.visual."):]: v for k, v in _image_encoder_sd(model).items()}
    gen = torch.Generator().manual_seed(5)
    w = text_width
    text = {"token_embedding.weight": (64, w), "positional_embedding": (77, w), "text_projection": (w, 1024),
            "logit_scale": (), "ln_final.weight": (w,), "ln_final.bias": (w,),
            "transformer.resblocks.0.ln_1.weight": (w,), "transformer.resblocks.0.attn.in_proj_weight": (3 * w, w),
            "transformer.resblocks.0.attn.in_proj_bias": (3 * w,),
            "transformer.resblocks.0.mlp.c_fc.weight": (4 * w, w)}
    sd.update({k: torch.randn(shape, generator=gen) for k, shape in text.items()})
    return save_torch(sd, path)


def write_tiny_vidxtend(models_dir: str | os.PathLike, seed: int = 0,
                        model: Optional[StreamingT2V] = None) -> dict[str, Path]:
    """For make-tiny: ``models_dir/streamingt2v/vidxtend.fp16.safetensors`` (fp16, as on the hub) and
    ``models_dir/clip_vision/CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors`` (the tiny ViT, HF layout).
    Together they load as the tiny StreamingT2V of ``seed`` (fp16-rounded)."""
    models_dir = Path(models_dir)
    model = model if model is not None else build_tiny_streamingt2v(seed)
    return {
        "vidxtend": write_vidxtend_file(model, models_dir / "streamingt2v" / VIDXTEND_FILE, torch.float16),
        "clip_vision": write_clip_vision_file(model, models_dir / "clip_vision" / CLIP_VISION_FILE),
    }


def official_without_image_encoder(model: StreamingT2V) -> dict[str, torch.Tensor]:
    """The tiny official state dict minus ``image_encoder.*`` (what a VidXTend load must reproduce)."""
    return {k: v for k, v in tiny_official_state_dict(model).items() if not k.startswith("image_encoder.")}
