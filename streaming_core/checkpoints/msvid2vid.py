"""MS-Vid2Vid-XL UNet checkpoints (``non_ema_0035000.pth``): official key names <-> ours.

The official ``Vid2VidSDUNet`` names blocks by position (``input_blocks.4.1.*``); ours are
diffusers' (``down_blocks.1.attentions.0.*``). The map is generated from the level structure, which
is itself read from the official key names, so the tiny fixture, tiny test models and the released
1.4B model go through the same code. Only two kinds of tensors change beyond their name: the
temporal transformers' ``proj_in``/``proj_out`` are Conv1d k=1 officially, (out, in, 1), and Linear
here, (out, in).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional

import torch

from ..errors import CheckpointError
from ..models.msvid2vid import MSVid2VidUNet, msvid2vid_config
from ..models.unet3d import TRANSFORMER_IN_HEADS, UNet3DConfig
from .components import load_component
from .files import load_state_dict
from .key_report import KeyReport, compare_shapes
from .layouts import MSVID2VID_UNET_FILE as UNET_FILE, describe, detect_file_layout

# official ResBlock part -> ours (ResnetBlock2D)
_RESNET_PARTS = {
    "in_layers.0": "norm1",
    "in_layers.2": "conv1",
    "emb_layers.1": "time_emb_proj",
    "out_layers.0": "norm2",
    "out_layers.3": "conv2",
    "skip_connection": "conv_shortcut",
}
_TEMPORAL_PROJ = ("proj_in.weight", "proj_out.weight")


@dataclass(frozen=True)
class LevelStructure:
    layers: int  # ResBlocks per encoder level (the decoder has one more)
    attention: tuple  # per encoder level: has spatial + temporal transformers

    @classmethod
    def from_official_keys(cls, keys) -> "LevelStructure":
        keys = set(keys)
        if "input_blocks.0.0.weight" not in keys or "input_blocks.1.0.in_layers.2.weight" not in keys:
            raise KeyError("input_blocks.0.0.weight")
        attention, layers, i = [], None, 1
        while f"input_blocks.{i}.0.in_layers.2.weight" in keys:
            first = i
            while f"input_blocks.{i}.0.in_layers.2.weight" in keys:
                i += 1
            if layers is None:
                layers = i - first
            elif i - first != layers:
                raise ValueError(f"encoder levels have different ResBlock counts ({layers} and {i - first})")
            attention.append(f"input_blocks.{first}.1.proj_in.weight" in keys)
            if f"input_blocks.{i}.op.weight" not in keys:
                break
            i += 1
        return cls(layers, tuple(attention))

    @classmethod
    def from_config(cls, config: UNet3DConfig) -> "LevelStructure":
        return cls(config.layers_per_block, tuple(config.down_attention))


def module_pairs(st: LevelStructure) -> list[tuple[str, str, str]]:
    """(our module prefix, official module prefix, kind) for every module; kind is 'resnet',
    'temporal' (Conv1d projections) or 'same' (identical parameter names)."""
    pairs = [("time_embedding.linear_1", "time_embed.0", "same"), ("time_embedding.linear_2", "time_embed.2", "same"),
             ("conv_in", "input_blocks.0.0", "same"), ("transformer_in", "input_blocks.0.1", "temporal")]

    def layer(ours: str, j: int, official: str, attention: bool):
        out = [(f"{ours}.resnets.{j}", f"{official}.0", "resnet"),
               (f"{ours}.temp_convs.{j}", f"{official}.0.temopral_conv", "same")]
        if attention:
            out += [(f"{ours}.attentions.{j}", f"{official}.1", "same"),
                    (f"{ours}.temp_attentions.{j}", f"{official}.2", "temporal")]
        return out

    levels = len(st.attention)
    i = 1
    for lvl, attention in enumerate(st.attention):
        for j in range(st.layers):
            pairs += layer(f"down_blocks.{lvl}", j, f"input_blocks.{i}", attention)
            i += 1
        if lvl < levels - 1:
            pairs.append((f"down_blocks.{lvl}.downsamplers.0.conv", f"input_blocks.{i}.op", "same"))
            i += 1
    pairs += [("mid_block.resnets.0", "middle_block.0", "resnet"),
              ("mid_block.temp_convs.0", "middle_block.0.temopral_conv", "same"),
              ("mid_block.attentions.0", "middle_block.1", "same"),
              ("mid_block.temp_attentions.0", "middle_block.2", "temporal"),
              ("mid_block.resnets.1", "middle_block.3", "resnet"),
              ("mid_block.temp_convs.1", "middle_block.3.temopral_conv", "same")]
    i = 0
    for lvl, attention in enumerate(reversed(st.attention)):
        for j in range(st.layers + 1):
            pairs += layer(f"up_blocks.{lvl}", j, f"output_blocks.{i}", attention)
            if j == st.layers and lvl < levels - 1:
                pairs.append((f"up_blocks.{lvl}.upsamplers.0.conv", f"output_blocks.{i}.{3 if attention else 1}.conv", "same"))
            i += 1
    pairs += [("conv_norm_out", "out.0", "same"), ("conv_out", "out.2", "same")]
    return pairs


def _translate(sd: Mapping[str, torch.Tensor], pairs, to_ours: bool) -> dict[str, torch.Tensor]:
    src_i, dst_i = (1, 0) if to_ours else (0, 1)
    by_prefix = sorted(pairs, key=lambda p: -len(p[src_i]))
    out, unmapped = {}, []
    for key, value in sd.items():
        for pair in by_prefix:
            src, dst, kind = pair[src_i], pair[dst_i], pair[2]
            if not key.startswith(src + "."):
                continue
            rest = key[len(src) + 1:]
            if kind == "resnet":
                parts = _RESNET_PARTS if to_ours else {v: k for k, v in _RESNET_PARTS.items()}
                head, _, tail = rest.rpartition(".")
                if head not in parts:
                    continue  # e.g. the temporal conv under the official ResBlock: a longer prefix
                rest = parts[head] + "." + tail
            elif kind == "temporal" and rest in _TEMPORAL_PROJ:
                value = value.squeeze(-1) if to_ours else value.unsqueeze(-1)
            out[dst + "." + rest] = value
            break
        else:
            unmapped.append(key)
    if unmapped:
        raise ValueError(f"{len(unmapped)} tensors fit no block of this UNet, e.g. {unmapped[:3]}")
    return out


def official_to_ours(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return _translate(sd, module_pairs(LevelStructure.from_official_keys(sd.keys())), to_ours=True)


def ours_to_official(sd: Mapping[str, torch.Tensor], config: UNet3DConfig) -> dict[str, torch.Tensor]:
    return _translate(sd, module_pairs(LevelStructure.from_config(config)), to_ours=False)


def config_from_official(sd: Mapping[str, torch.Tensor], transformer_in_heads: int = TRANSFORMER_IN_HEADS,
                         converted: Optional[Mapping[str, torch.Tensor]] = None) -> UNet3DConfig:
    """Every number from the shapes; the first temporal transformer's head count (invisible in shapes)
    is the official constructor's ``num_heads``: 8 in the released model."""
    ours = converted if converted is not None else official_to_ours(sd)
    inner_in = ours["transformer_in.proj_in.weight"].shape[0]
    if inner_in % transformer_in_heads:
        raise ValueError(f"the first temporal transformer is {inner_in} wide: not divisible by {transformer_in_heads} heads")
    config = UNet3DConfig.from_state_dict(ours)
    config.attention_head_dim = inner_in // transformer_in_heads
    return msvid2vid_config(config, transformer_in_heads)


def build_unet_from_official(sd: Mapping[str, torch.Tensor], *, transformer_in_heads: int = TRANSFORMER_IN_HEADS,
                             dtype: Optional[torch.dtype] = None, device="cpu", source: str = UNET_FILE) -> MSVid2VidUNet:
    """Our UNet holding the official tensors (no copy on the meta-build path)."""
    if "input_blocks.0.0.weight" not in sd:
        raise CheckpointError(f"{source} is not the MS-Vid2Vid-XL UNet ({UNET_FILE}): it looks like "
                              f"{describe(detect_file_layout(sd))}.")
    try:
        ours = official_to_ours(sd)
        config = config_from_official(sd, transformer_in_heads, converted=ours)
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{source}: cannot read the MS-Vid2Vid-XL UNet structure from its keys ({exc}). "
                              f"The file is damaged or a different model.") from exc
    return load_component(ours, "", lambda _sd: MSVid2VidUNet(config), what="MS-Vid2Vid-XL UNet",
                          dtype=dtype, device=device, source=str(source))


def load_unet(path: str | os.PathLike, **kwargs) -> MSVid2VidUNet:
    return build_unet_from_official(load_state_dict(path), source=str(path), **kwargs)


def official_state_dict(unet: MSVid2VidUNet) -> dict[str, torch.Tensor]:
    """Our UNet's weights under the official names (tiny checkpoints, round trips)."""
    return ours_to_official(unet.state_dict(), unet.config)


# -- key coverage against shared/specs/ms_vid2vid_xl_unet_keys.json ---------------------------------
def key_report(spec: dict) -> KeyReport:
    """Build the full-size UNet on the meta device from the listed shapes (the loading code path),
    map its keys back to the official names and compare names and shapes."""
    official = {e["key"]: tuple(e["shape"]) for e in spec["entries"]}
    fake = {k: torch.empty(s, device="meta") for k, s in official.items()}
    try:
        config = config_from_official(fake)
    except (KeyError, ValueError) as exc:
        report = KeyReport("MS-Vid2Vid-XL UNet", len(official))
        report.missing = sorted(official)
        report.mismatched = []
        report.unexpected = [f"<structure not readable: {exc}>"]
        return report
    with torch.device("meta"):
        model = MSVid2VidUNet(config)
    ours = {k: tuple(v.shape) for k, v in official_state_dict(model).items()}
    return compare_shapes("MS-Vid2Vid-XL UNet (Vid2VidSDUNet)", official, ours)


def official_block_modules(unet: MSVid2VidUNet) -> dict[str, torch.nn.Module]:
    """Official top-level block name -> the module of ours whose output is that block's output
    (for per-block traces: ``input_blocks.i``, ``middle_block.i``, ``output_blocks.i``)."""
    st = LevelStructure.from_config(unet.config)
    out: dict[str, torch.nn.Module] = {"input_blocks.0": unet.transformer_in}

    def last_of_layer(level, j):
        return level.temp_attentions[j] if level.temp_attentions is not None else level.temp_convs[j]

    i = 1
    for lvl, level in enumerate(unet.down_blocks):
        for j in range(st.layers):
            out[f"input_blocks.{i}"] = last_of_layer(level, j)
            i += 1
        if hasattr(level, "downsamplers"):
            out[f"input_blocks.{i}"] = level.downsamplers[0]
            i += 1
    mid = unet.mid_block
    out.update({"middle_block.0": mid.temp_convs[0], "middle_block.1": mid.attentions[0],
                "middle_block.2": mid.temp_attentions[0], "middle_block.3": mid.temp_convs[1]})
    i = 0
    for level in unet.up_blocks:
        for j in range(st.layers + 1):
            last = j == st.layers and hasattr(level, "upsamplers")
            out[f"output_blocks.{i}"] = level.upsamplers[0] if last else last_of_layer(level, j)
            i += 1
    return out


