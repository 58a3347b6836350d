"""The LDM / Stable Diffusion KL autoencoder layout (``first_stage_model.*`` of an SD checkpoint such
as ``v2-1_512-ema-pruned.ckpt``) <-> diffusers ``AutoencoderKL`` names.

Both are the same network. The LDM decoder numbers its resolution levels from the lowest
resolution (``up.0`` is the last to run), diffusers from the first to run, and the LDM mid-block
attention uses 1x1 convolutions where diffusers uses linear layers.
"""

from __future__ import annotations

import re
from typing import Mapping

import torch

LDM_PREFIX = "first_stage_model."
_RESNET = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2", "nin_shortcut": "conv_shortcut"}
_ATTN = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}
_TOP = {"conv_in": "conv_in", "conv_out": "conv_out", "norm_out": "conv_norm_out"}


def _levels(keys, prefix: str, side: str) -> int:
    pat = re.compile(re.escape(prefix) + side + r"\.(\d+)\.")
    return 1 + max(int(m.group(1)) for k in keys if (m := pat.match(k)))


def _convert_key(key: str, decoder_levels: int) -> str:
    part, _, rest = key.partition(".")  # encoder / decoder / quant_conv / post_quant_conv
    if part not in ("encoder", "decoder"):
        return key
    if m := re.match(r"(down|up)\.(\d+)\.block\.(\d+)\.(\w+)\.(weight|bias)$", rest):
        kind, lvl, j, name, p = m.groups()
        lvl = int(lvl) if kind == "down" else decoder_levels - 1 - int(lvl)
        blocks = "down_blocks" if kind == "down" else "up_blocks"
        return f"{part}.{blocks}.{lvl}.resnets.{j}.{_RESNET[name]}.{p}"
    if m := re.match(r"down\.(\d+)\.downsample\.conv\.(weight|bias)$", rest):
        return f"{part}.down_blocks.{m[1]}.downsamplers.0.conv.{m[2]}"
    if m := re.match(r"up\.(\d+)\.upsample\.conv\.(weight|bias)$", rest):
        return f"{part}.up_blocks.{decoder_levels - 1 - int(m[1])}.upsamplers.0.conv.{m[2]}"
    if m := re.match(r"mid\.block_(\d)\.(\w+)\.(weight|bias)$", rest):
        return f"{part}.mid_block.resnets.{int(m[1]) - 1}.{_RESNET[m[2]]}.{m[3]}"
    if m := re.match(r"mid\.attn_1\.(\w+)\.(weight|bias)$", rest):
        return f"{part}.mid_block.attentions.0.{_ATTN[m[1]]}.{m[2]}"
    if m := re.match(r"(\w+)\.(weight|bias)$", rest):
        if m[1] in _TOP:
            return f"{part}.{_TOP[m[1]]}.{m[2]}"
    raise KeyError(f"unknown LDM autoencoder tensor {key}")


def ldm_to_diffusers(sd: Mapping[str, torch.Tensor], prefix: str = LDM_PREFIX) -> dict[str, torch.Tensor]:
    """The autoencoder tensors under ``prefix`` renamed for diffusers' ``AutoencoderKL``."""
    sub = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    if not sub:
        raise KeyError(f"{prefix}encoder.conv_in.weight")
    levels = _levels(sub.keys(), "", "decoder.up")
    out = {}
    for key, value in sub.items():
        new = _convert_key(key, levels)
        if ".mid_block.attentions.0.to_" in new and new.endswith(".weight") and value.ndim == 4:
            value = value.reshape(value.shape[0], value.shape[1])  # 1x1 conv -> linear
        out[new] = value
    return out


def diffusers_to_ldm(sd: Mapping[str, torch.Tensor], prefix: str = LDM_PREFIX) -> dict[str, torch.Tensor]:
    """The inverse (for writing SD-layout files, e.g. tiny test checkpoints)."""
    levels = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("decoder.up_blocks."))
    out = {}
    for key, value in sd.items():
        ldm = _diffusers_key_to_ldm(key, levels)
        if ".mid.attn_1." in ldm and ".norm." not in ldm and ldm.endswith(".weight") and value.ndim == 2:
            value = value.reshape(*value.shape, 1, 1)  # linear -> 1x1 conv
        out[prefix + ldm] = value
    return out


def _diffusers_key_to_ldm(key: str, levels: int) -> str:
    inv_resnet = {v: k for k, v in _RESNET.items()}
    inv_attn = {v: k for k, v in _ATTN.items()}
    inv_top = {v: k for k, v in _TOP.items()}
    part, _, rest = key.partition(".")
    if part not in ("encoder", "decoder"):
        return key
    if m := re.match(r"(down|up)_blocks\.(\d+)\.resnets\.(\d+)\.(\w+)\.(weight|bias)$", rest):
        kind, lvl, j, name, p = m.groups()
        lvl = int(lvl) if kind == "down" else levels - 1 - int(lvl)
        return f"{part}.{kind}.{lvl}.block.{j}.{inv_resnet[name]}.{p}"
    if m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(weight|bias)$", rest):
        return f"{part}.down.{m[1]}.downsample.conv.{m[2]}"
    if m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(weight|bias)$", rest):
        return f"{part}.up.{levels - 1 - int(m[1])}.upsample.conv.{m[2]}"
    if m := re.match(r"mid_block\.resnets\.(\d)\.(\w+)\.(weight|bias)$", rest):
        return f"{part}.mid.block_{int(m[1]) + 1}.{inv_resnet[m[2]]}.{m[3]}"
    if m := re.match(r"mid_block\.attentions\.0\.(\w+(?:\.0)?)\.(weight|bias)$", rest):
        return f"{part}.mid.attn_1.{inv_attn[m[1]]}.{m[2]}"
    if m := re.match(r"(\w+)\.(weight|bias)$", rest):
        if m[1] in inv_top:
            return f"{part}.{inv_top[m[1]]}.{m[2]}"
    raise KeyError(f"unknown diffusers autoencoder tensor {key}")
