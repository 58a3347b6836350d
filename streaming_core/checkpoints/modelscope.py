"""Read the stock ModelScope text-to-video UNet (the first-chunk model) from its diffusers files.

What users have: ``damo-vilab/text-to-video-ms-1.7b`` or ``cerspense/zeroscope_v2_576w`` (same
architecture, other weights) as a diffusers folder, or just its ``unet/diffusion_pytorch_model*``
file. Every architecture number is read from the tensor shapes (``UNet3DConfig.from_state_dict``);
no hub config is read. The text encoder and VAE of the first chunk come from the StreamingT2V
checkpoint, which holds the same frozen ModelScope parts.

The StreamingT2V checkpoint holds a ModelScope-shaped UNet too (``base_model.``), fine-tuned with CAM
and APM, which is not the first-chunk model: given here, it gets an error saying which file goes where.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Optional

import torch

from ..errors import CheckpointError
from ..models.unet3d import UNet3D, UNet3DConfig
from .components import load_component
from .files import WEIGHT_SUFFIXES, load_state_dict
from .layouts import LAYOUTS, check_unet3d_kind, detect_file_layout, has_role, top_level_names

# diffusers file names, preferred first (fp16 variant last: same weights, half the bytes)
UNET_FILE_NAMES = tuple(
    f"diffusion_pytorch_model{variant}{suffix}"
    for variant in ("", ".fp16")
    for suffix in (".safetensors", ".bin")
)
# folder names under <models>/streamingt2v/ where the first-chunk model is looked for (the layout table's)
BASE_FOLDER_NAMES = LAYOUTS["modelscope_folder"].file_names
WHAT = "first-chunk ModelScope UNet"


def find_unet_file(path: str | os.PathLike) -> Path:
    """The UNet weight file for ``path``: the file itself, or inside a diffusers pipeline folder
    (``unet/diffusion_pytorch_model*``) or a UNet folder (``diffusion_pytorch_model*``)."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.exists():
        raise CheckpointError(f"{WHAT} not found: {path}. Give the text-to-video-ms-1.7b (or zeroscope_v2_576w) "
                              f"folder or its unet/diffusion_pytorch_model.safetensors file.")
    for folder in (path / "unet", path):
        for name in UNET_FILE_NAMES:
            if (folder / name).is_file():
                return folder / name
    found = sorted(p.name for p in path.iterdir() if p.suffix.lower() in WEIGHT_SUFFIXES)[:5]
    raise CheckpointError(
        f"no {WHAT} in the folder {path}: expected unet/diffusion_pytorch_model.safetensors (or .bin, or the "
        f".fp16 variant) as in the text-to-video-ms-1.7b download"
        + (f"; weight files found there: {', '.join(found)}" if found else "") + ".")


def _unet_prefix(sd: Mapping[str, torch.Tensor], source: str) -> str:
    """'' for a diffusers UNet file, 'unet.' for a pipeline saved as one file; clear errors otherwise."""
    layout = detect_file_layout(sd)
    if has_role(layout, "streamingt2v") or layout == "streamingt2v_denoiser":
        raise CheckpointError(
            f"{source} is a StreamingT2V checkpoint (it has the CAM/APM tensors), not the stock ModelScope UNet. "
            f"The first chunk needs the stock text-to-video-ms-1.7b UNet "
            f"(unet/diffusion_pytorch_model.safetensors) or zeroscope_v2_576w; give this file as the "
            f"StreamingT2V model instead (--st2v on the command line, the StreamingT2V Loader in ComfyUI).")
    if layout == "modelscope_unet":
        return ""
    if "unet.conv_in.weight" in sd and "unet.conv_out.weight" in sd:
        return "unet."
    if any(k.startswith("input_blocks.") or k.startswith("model.diffusion_model.") for k in sd):
        raise CheckpointError(
            f"{source} has the original ModelScope key layout (input_blocks.*), not diffusers' UNet3D layout. "
            f"Use the diffusers release text-to-video-ms-1.7b (unet/diffusion_pytorch_model.safetensors).")
    raise CheckpointError(
        f"{source} is not a ModelScope text-to-video UNet: it lacks conv_in/down_blocks/up_blocks tensors "
        f"(top-level names found: {top_level_names(sd, limit=8)}). Give the text-to-video-ms-1.7b unet file.")


def _build_stock_unet(sd: Mapping[str, torch.Tensor]) -> UNet3D:
    config = UNet3DConfig.from_state_dict(sd)
    check_unet3d_kind(config, "modelscope_unet")
    return UNet3D(config)


def build_modelscope_unet(sd: Mapping[str, torch.Tensor], *, dtype: Optional[torch.dtype] = None,
                          device: str | torch.device = "cpu", source: str = "checkpoint") -> UNet3D:
    """The stock UNet3D from a diffusers-layout state dict (config from shapes)."""
    prefix = _unet_prefix(sd, source)
    return load_component(sd, prefix, _build_stock_unet, what=WHAT, dtype=dtype, device=device, source=source)


def load_modelscope_unet(path: str | os.PathLike, *, dtype: Optional[torch.dtype] = None,
                         device: str | torch.device = "cpu") -> UNet3D:
    """Load the first-chunk UNet from a file or a diffusers folder; ``dtype`` None keeps the file's."""
    file = find_unet_file(path)
    sd = load_state_dict(file)
    return build_modelscope_unet(sd, dtype=dtype, device=device, source=file.name)
