"""The APM image encoder (OpenCLIP ViT-H/14 visual tower) from the files users already have.

VidXTend ships without it, and 2.5-3.9 GB of the same weights are often on disk already:

(a) open_clip checkpoints (``open_clip_pytorch_model.bin`` of ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``,
    also shipped with MS-Vid2Vid-XL): ``visual.*`` next to the text tower, which is ignored;
(b) ComfyUI ``clip_vision`` files (``CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors``, the IP-Adapter one):
    Hugging Face ``CLIPVisionModelWithProjection`` names, ``vision_model.*`` + ``visual_projection.weight``;
(c) the official StreamingT2V checkpoint (or our safetensors of it): ``image_encoder.model.visual.*``.

All become open_clip's names under ``model.visual.`` (``OpenCLIPImageEncoder``). The Hugging Face
layout differs beyond names: attention keeps q, k, v as three linears where open_clip has one
in-projection (rows q, k, v stacked), and the projection is a Linear weight (out, in) where open_clip
keeps the matrix (in, out). Head counts are invisible in shapes; both layouts use open_clip's per-width
rule (ViT-H/14: 16 heads of 80, as ComfyUI's clip_vision_config_h.json says).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Optional

import torch

from ..errors import CheckpointError
from ..models.clip_image import OpenCLIPImageEncoder, VisionTowerConfig
from .components import load_component
from .files import load_state_dict, load_state_dicts, part_weight_files
from .layouts import detect_file_layout, describe, hf_vision_prefix, open_clip_visual_prefix, top_level_names

OURS = "model.visual."  # OpenCLIPImageEncoder's parameter prefix
WHAT = "OpenCLIP image encoder"
_HF_LAYER = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
             "self_attn.out_proj": "attn.out_proj"}
_HF_TOP = {"embeddings.class_embedding": "class_embedding", "embeddings.patch_embedding.weight": "conv1.weight",
           "embeddings.position_embedding.weight": "positional_embedding", "pre_layrnorm.weight": "ln_pre.weight",
           "pre_layrnorm.bias": "ln_pre.bias", "post_layernorm.weight": "ln_post.weight",
           "post_layernorm.bias": "ln_post.bias"}
_HF_BUFFERS = ("embeddings.position_ids",)
# (width, layers) -> name, for messages about the wrong tower
KNOWN_TOWERS = {(1280, 32): "ViT-H/14", (1024, 24): "ViT-L/14", (1664, 48): "ViT-bigG/14", (768, 12): "ViT-B",
                (1408, 40): "ViT-g/14"}

MISSING_HELP = (
    "APM needs the OpenCLIP ViT-H/14 image encoder (laion2b_s32b_b79k), which VidXTend does not ship. Any one of "
    "these files works as image_encoder (in ComfyUI: the StreamingT2V loader's image_encoder input; on the command "
    "line: --image-encoder FILE, or put it in models/clip_vision/ where generate looks for it):\n"
    "  - ComfyUI's models/clip_vision/CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors (the ViT-H image encoder "
    "IP-Adapter uses, also distributed as IP-Adapter's image_encoder/model.safetensors; 2.5 GB in fp32);\n"
    "  - open_clip_pytorch_model.bin from laion/CLIP-ViT-H-14-laion2B-s32B-b79K (3.9 GB; MS-Vid2Vid-XL's "
    "damo/Video-to-Video folder ships a file of that name);\n"
    "  - the official streaming_t2v.ckpt, or its safetensors conversion (its image_encoder.* part).\n"
    "A ViT-L/14 or ViT-bigG clip_vision file does not fit (other embedding width); other ViT-H/14 weights (other "
    "training runs) have the same shapes and load, but give other embeddings.")


def _hf_to_open_clip(sd: Mapping[str, torch.Tensor], prefix: str, source: str) -> dict[str, torch.Tensor]:
    """Hugging Face CLIP vision names (``prefix`` before ``vision_model.``) -> ``model.visual.*``."""
    vm = prefix + "vision_model."
    proj = prefix + "visual_projection.weight"
    if proj not in sd:
        raise CheckpointError(
            f"{source} is a CLIP vision model without its image projection (no {proj}): a CLIPVisionModel "
            f"saved without 'WithProjection'. APM needs the projected embedding; use the clip_vision file that "
            f"IP-Adapter uses (CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors), which has it.")
    out = {OURS + "proj": sd[proj].t().contiguous()}
    for key, value in sd.items():
        if not key.startswith(vm):
            continue
        rest = key[len(vm):]
        if rest in _HF_TOP:
            out[OURS + _HF_TOP[rest]] = value
        elif rest in _HF_BUFFERS:
            continue
        elif rest.startswith("encoder.layers."):
            index, _, name = rest[len("encoder.layers."):].partition(".")
            block = f"{OURS}transformer.resblocks.{index}."
            module, _, kind = name.rpartition(".")
            if module in _HF_LAYER:
                out[block + _HF_LAYER[module] + "." + kind] = value
            elif module in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"):
                if module == "self_attn.q_proj":  # open_clip's in_proj stacks the rows q, k, v
                    names = [vm + f"encoder.layers.{index}.self_attn.{p}_proj.{kind}" for p in "qkv"]
                    absent = [n for n in names if n not in sd]
                    if absent:
                        raise CheckpointError(f"{source}: the CLIP vision tower lacks {', '.join(absent)}. The file "
                                              f"is damaged or not a CLIP ViT.")
                    out[block + f"attn.in_proj_{kind}"] = torch.cat([sd[n] for n in names], dim=0)
            else:
                out[OURS + rest] = value  # unknown: reported by the strict load
        else:
            out[OURS + rest] = value
    return out


def open_clip_to_hf(sd: Mapping[str, torch.Tensor], prefix: str = OURS) -> dict[str, torch.Tensor]:
    """open_clip visual names (under ``prefix``) -> Hugging Face ``CLIPVisionModelWithProjection`` names
    (used to write clip_vision files; the tests check the result against transformers itself)."""
    top = {v: k for k, v in _HF_TOP.items()}
    layer = {v: k for k, v in _HF_LAYER.items()}
    out = {"visual_projection.weight": sd[prefix + "proj"].t().contiguous()}
    for key, value in sd.items():
        if not key.startswith(prefix) or key == prefix + "proj":
            continue
        rest = key[len(prefix):]
        if rest in top:
            out["vision_model." + top[rest]] = value
            continue
        index, _, name = rest[len("transformer.resblocks."):].partition(".")
        dst = f"vision_model.encoder.layers.{index}."
        module, _, kind = name.rpartition(".")
        if module == "attn" and kind.startswith("in_proj_"):
            for p, part in zip("qkv", value.chunk(3, dim=0)):
                out[dst + f"self_attn.{p}_proj.{kind[len('in_proj_'):]}"] = part.contiguous()
        else:
            out[dst + layer[module] + "." + kind] = value
    return out


def to_open_clip_visual(sd: Mapping[str, torch.Tensor],
                        source: str = "checkpoint") -> tuple[dict[str, torch.Tensor], str]:
    """The visual tower under ``model.visual.*`` from any of the three layouts, and the layout's name."""
    keys = sd.keys()
    prefix = open_clip_visual_prefix(keys)
    if prefix is not None:
        layout = "streamingt2v" if prefix.startswith("image_encoder.") else "open_clip"
        n = len(prefix)
        return {OURS + k[n:]: v for k, v in sd.items() if k.startswith(prefix)}, layout
    prefix = hf_vision_prefix(keys)
    if prefix is not None:
        return _hf_to_open_clip(sd, prefix, source), "clip_vision"
    layout = detect_file_layout(sd)
    if layout == "open_clip":
        raise CheckpointError(f"{source} is an open_clip file without a complete visual tower (no visual.conv1 and "
                              f"transformer blocks): probably a text-only copy. {MISSING_HELP}")
    raise CheckpointError(f"{source} holds no CLIP image encoder: it looks like {describe(layout)} (top-level "
                          f"names: {top_level_names(keys)}). {MISSING_HELP}")


def tower_name(config: VisionTowerConfig) -> str:
    return KNOWN_TOWERS.get((config.width, config.layers), f"a ViT of width {config.width} with {config.layers} layers")


def check_embedding_width(config: VisionTowerConfig, embed_dim: int, source: str) -> None:
    """APM's resampler takes one fixed embedding width: a different tower gives a clear error, not a
    matmul shape error at the first anchor."""
    if config.output_dim == embed_dim:
        return
    raise CheckpointError(
        f"{source} is {tower_name(config)} (width {config.width}, {config.layers} layers), whose image embeddings "
        f"are {config.output_dim}-d, but this StreamingT2V model's APM resampler takes {embed_dim}-d embeddings "
        f"from OpenCLIP ViT-H/14 (width 1280, 32 layers). {MISSING_HELP}")


def build_image_encoder(sd: Mapping[str, torch.Tensor], *, embed_dim: Optional[int] = None,
                        dtype: Optional[torch.dtype] = None, device: str | torch.device = "cpu",
                        source: str = "checkpoint") -> OpenCLIPImageEncoder:
    """The encoder from a state dict of any of the three layouts; ``embed_dim``: the resampler's input
    width to check against (None: no check)."""
    visual, _ = to_open_clip_visual(sd, source)
    try:
        config = VisionTowerConfig.from_state_dict(visual, OURS)
    except (KeyError, ValueError, IndexError) as exc:
        raise CheckpointError(f"{source}: cannot read the CLIP image tower's architecture from its tensors "
                              f"({exc}). The file is damaged or not a CLIP ViT.") from exc
    if embed_dim is not None:
        check_embedding_width(config, embed_dim, source)
    return load_component(visual, "", lambda _sd: OpenCLIPImageEncoder(config), what=WHAT, dtype=dtype,
                          device=device, source=source)


def load_image_encoder(path: str | os.PathLike, **kwargs) -> OpenCLIPImageEncoder:
    """``build_image_encoder`` on a file (safetensors, or a pickle read weights-only and memory-mapped,
    so only the visual tower of a 3.9 GB open_clip file or a 25 GB checkpoint is ever touched), or on
    a folder holding one such file (e.g. IP-Adapter's ``image_encoder/`` with its config.json)."""
    path = Path(path)
    if path.is_dir():  # every shard of a sharded folder, not only the first
        half = kwargs.get("dtype") in (torch.float16, torch.bfloat16)
        return build_image_encoder(load_state_dicts(part_weight_files(path.parent, path.name, prefer_half=half)),
                                   source=path.name, **kwargs)
    return build_image_encoder(load_state_dict(path), source=path.name, **kwargs)
