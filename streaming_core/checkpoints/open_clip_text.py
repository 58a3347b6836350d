"""open_clip text tower weights (``open_clip_pytorch_model.bin``) -> the HF ``CLIPTextModel`` layout of
``models/text_encoder.py``, cut at the penultimate layer.

MS-Vid2Vid-XL (like SD 2) encodes prompts with open_clip ViT-H/14's text transformer *minus its last
residual block*, then ``ln_final``, with the causal mask (spec §6.2). That is exactly a
``CLIPTextModel`` with one layer fewer whose ``final_layer_norm`` is ``ln_final``, which is also how
the ModelScope/zeroscope text encoders ship. So one text-model implementation serves both, and the
632M-parameter visual tower in the same file is never built (nor read: the file is memory-mapped).
"""

from __future__ import annotations

import re
from typing import Mapping

import torch

HF_PREFIX = "text_model."


def is_open_clip_text(sd: Mapping[str, torch.Tensor]) -> bool:
    return "token_embedding.weight" in sd and "transformer.resblocks.0.attn.in_proj_weight" in sd


def open_clip_text_layers(sd: Mapping[str, torch.Tensor]) -> int:
    pat = re.compile(r"transformer\.resblocks\.(\d+)\.")
    return 1 + max(int(m.group(1)) for k in sd if (m := pat.match(k)))


def open_clip_to_hf_text(sd: Mapping[str, torch.Tensor], skip_last_layers: int = 1) -> dict[str, torch.Tensor]:
    """HF-layout text encoder tensors from an open_clip state dict; ``skip_last_layers=1`` is the
    "penultimate" cut. Visual-tower and CLIP-head tensors are left out on purpose."""
    if not is_open_clip_text(sd):
        raise KeyError("token_embedding.weight")
    layers = open_clip_text_layers(sd) - skip_last_layers
    if layers < 1:
        raise ValueError(f"the text transformer has {layers + skip_last_layers} layers: nothing left after the cut")
    p = HF_PREFIX
    out = {
        p + "embeddings.token_embedding.weight": sd["token_embedding.weight"],
        p + "embeddings.position_embedding.weight": sd["positional_embedding"],
        p + "final_layer_norm.weight": sd["ln_final.weight"],
        p + "final_layer_norm.bias": sd["ln_final.bias"],
    }
    for i in range(layers):
        src, dst = f"transformer.resblocks.{i}.", f"{p}encoder.layers.{i}."
        q, k, v = sd[src + "attn.in_proj_weight"].chunk(3, dim=0)
        qb, kb, vb = sd[src + "attn.in_proj_bias"].chunk(3, dim=0)
        out.update({
            dst + "self_attn.q_proj.weight": q, dst + "self_attn.q_proj.bias": qb,
            dst + "self_attn.k_proj.weight": k, dst + "self_attn.k_proj.bias": kb,
            dst + "self_attn.v_proj.weight": v, dst + "self_attn.v_proj.bias": vb,
            dst + "self_attn.out_proj.weight": sd[src + "attn.out_proj.weight"],
            dst + "self_attn.out_proj.bias": sd[src + "attn.out_proj.bias"],
            dst + "layer_norm1.weight": sd[src + "ln_1.weight"], dst + "layer_norm1.bias": sd[src + "ln_1.bias"],
            dst + "layer_norm2.weight": sd[src + "ln_2.weight"], dst + "layer_norm2.bias": sd[src + "ln_2.bias"],
            dst + "mlp.fc1.weight": sd[src + "mlp.c_fc.weight"], dst + "mlp.fc1.bias": sd[src + "mlp.c_fc.bias"],
            dst + "mlp.fc2.weight": sd[src + "mlp.c_proj.weight"], dst + "mlp.fc2.bias": sd[src + "mlp.c_proj.bias"],
        })
    return out
