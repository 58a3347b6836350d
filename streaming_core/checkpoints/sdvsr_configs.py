"""Architecture configs of the Stream-DiffVSR networks, read from tensor shapes.

Every number that a shape determines is taken from the shapes, so official, converted and tiny
checkpoints go through the same code. A few hyper-parameters leave no trace in any shape (number of
attention heads, GroupNorm groups, activation, sinusoid layout); they come from the part's own
``config.json`` when the folder has one, else from the official x4-upscaler values (spec §2.1).
"""

from __future__ import annotations

import math
import re
from typing import Mapping, Optional, Sequence

Shapes = Mapping[str, Sequence[int]]

# Hyper-parameters invisible in shapes: official values (spec §2.1/2.2), overridden by config.json.
UNET_HIDDEN_DEFAULTS = {
    "attention_head_dim": 8,  # diffusers' legacy name: the NUMBER of heads
    "num_attention_heads": None,
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "act_fn": "silu",
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "upcast_attention": False,
    "resnet_time_scale_shift": "default",
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "center_input_sample": False,
    "dual_cross_attention": False,
    "sample_size": 128,
}
CONTROLNET_HIDDEN_DEFAULTS = {
    "global_pool_conditions": False,
    "controlnet_conditioning_channel_order": "rgb",
}


def indices(shapes: Shapes, prefix: str) -> list[int]:
    """Sorted integer indices that follow ``prefix`` in the keys (``down_blocks.`` -> [0, 1, 2, 3])."""
    pat = re.compile(re.escape(prefix) + r"(\d+)\.")
    return sorted({int(m.group(1)) for k in shapes for m in [pat.match(k)] if m})


def _has(shapes: Shapes, prefix: str) -> bool:
    return any(k.startswith(prefix) for k in shapes)


def _groups(channels: Sequence[int], preferred: int = 32) -> int:
    """GroupNorm groups when no config says: 32 if it divides every width, else the largest that does."""
    g = math.gcd(*channels)
    return max(d for d in range(1, preferred + 1) if g % d == 0)


def _heads(channels: Sequence[int], preferred: int = 8) -> int:
    g = math.gcd(*channels)
    return max(d for d in range(1, preferred + 1) if g % d == 0)


def _backbone_config(shapes: Shapes, hub: Optional[dict]) -> dict:
    """Fields shared by the UNet and its ControlNet copy (encoder half + mid block)."""
    hub = dict(hub or {})
    downs = indices(shapes, "down_blocks.")
    if not downs or "conv_in.weight" not in shapes:
        raise KeyError("conv_in.weight / down_blocks.*")
    channels = [int(shapes[f"down_blocks.{i}.resnets.0.conv1.weight"][0]) for i in downs]
    attn = [_has(shapes, f"down_blocks.{i}.attentions.") for i in downs]
    cross_keys = [k for k in shapes if k.endswith("attn2.to_k.weight")]
    cross_dim = int(shapes[cross_keys[0]][1]) if cross_keys else hub.get("cross_attention_dim", 1280)
    hub_oc = hub.get("only_cross_attention", False)
    only_cross = []
    for i, has_attn in zip(downs, attn):
        key = f"down_blocks.{i}.attentions.0.transformer_blocks.0.attn1.to_k.weight"
        kdim, width = (int(shapes[key][1]) if key in shapes else None), channels[i]
        if has_attn and kdim == width and kdim != cross_dim:
            only_cross.append(False)
        elif has_attn and kdim == cross_dim and kdim != width:
            only_cross.append(True)
        else:  # no attention, or width == cross_attention_dim: shapes cannot tell; config.json, else self-attention
            only_cross.append(bool(hub_oc[i] if isinstance(hub_oc, (list, tuple)) and i < len(hub_oc) else hub_oc))
    counts = [len(indices(shapes, f"down_blocks.{i}.attentions.0.transformer_blocks.")) if a else 1
              for i, a in zip(downs, attn)]
    distinct = {c for c, a in zip(counts, attn) if a}
    transformer_layers = next(iter(distinct)) if len(distinct) == 1 else (1 if not distinct else counts)
    proj = [k for k in shapes if k.endswith("attentions.0.proj_in.weight")]
    time_dim = int(shapes["time_embedding.linear_1.weight"][0])
    mid_type = None
    if _has(shapes, "mid_block.attentions."):
        mid_type = "UNetMidBlock2DCrossAttn"
    elif _has(shapes, "mid_block."):
        mid_type = "UNetMidBlock2D"
    cfg = {k: hub.get(k, v) for k, v in UNET_HIDDEN_DEFAULTS.items()}
    if "norm_num_groups" not in hub:
        cfg["norm_num_groups"] = _groups(channels)
    if "attention_head_dim" not in hub and "num_attention_heads" not in hub:
        cfg["attention_head_dim"] = _heads([c for c, a in zip(channels, attn) if a] or channels)
    cfg.update(
        in_channels=int(shapes["conv_in.weight"][1]),
        conv_in_kernel=int(shapes["conv_in.weight"][2]),
        block_out_channels=channels,
        down_block_types=["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attn],
        mid_block_type=mid_type,
        layers_per_block=len(indices(shapes, "down_blocks.0.resnets.")),
        cross_attention_dim=cross_dim,
        transformer_layers_per_block=transformer_layers,
        only_cross_attention=only_cross,
        use_linear_projection=bool(proj) and len(shapes[proj[0]]) == 2,
        num_class_embeds=None,
        class_embed_type=None,
        time_embedding_dim=None if time_dim == 4 * channels[0] else time_dim,
    )
    return cfg


def unet_config(shapes: Shapes, hub: Optional[dict] = None) -> dict:
    """diffusers ``UNet2DConditionModel`` config for a state dict's shapes (+ its config.json)."""
    cfg = _backbone_config(shapes, hub)
    ups = indices(shapes, "up_blocks.")
    cfg.update(
        out_channels=int(shapes["conv_out.weight"][0]),
        conv_out_kernel=int(shapes["conv_out.weight"][2]),
        up_block_types=["CrossAttnUpBlock2D" if _has(shapes, f"up_blocks.{i}.attentions.") else "UpBlock2D" for i in ups],
    )
    return cfg


def controlnet_config(shapes: Shapes, hub: Optional[dict] = None) -> dict:
    """diffusers ``ControlNetModel`` config: the UNet backbone plus the conditioning embedding."""
    cfg = _backbone_config(shapes, hub)
    emb = "controlnet_cond_embedding."
    blocks = indices(shapes, emb + "blocks.")
    cfg.update(
        conditioning_channels=int(shapes[emb + "conv_in.weight"][1]),
        conditioning_embedding_out_channels=[int(shapes[emb + "conv_in.weight"][0])]
        + [int(shapes[f"{emb}blocks.{i}.weight"][0]) for i in blocks if i % 2 == 1],
    )
    cfg.update({k: (hub or {}).get(k, v) for k, v in CONTROLNET_HIDDEN_DEFAULTS.items()})
    return cfg


def text_encoder_config(shapes: Shapes, hub: Optional[dict] = None) -> dict:
    """transformers ``CLIPTextConfig`` fields (keys without the ``text_model.`` prefix)."""
    hub = dict(hub or {})
    vocab, hidden = (int(x) for x in shapes["embeddings.token_embedding.weight"])
    cfg = {
        "hidden_act": "gelu",  # OpenCLIP-H (SD2 family); OpenAI CLIP-L would be quick_gelu
        "layer_norm_eps": 1e-5,
        "num_attention_heads": max(1, hidden // 64),
        "bos_token_id": 49406,
        "eos_token_id": 49407,
        "pad_token_id": 1,
        **{k: v for k, v in hub.items() if not k.startswith("_")},
    }
    cfg.update(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=int(shapes["encoder.layers.0.mlp.fc1.weight"][0]),
        num_hidden_layers=len(indices(shapes, "encoder.layers.")),
        max_position_embeddings=int(shapes["embeddings.position_embedding.weight"][0]),
    )
    cfg.setdefault("projection_dim", hidden)
    return cfg
