"""Which model is this folder? Told apart by its subfolders, its file names and the key names of its
UNet (header only), for the loaders' error messages, ``inspect`` and the CLI's and nodes' discovery.

A module of its own, below the family loaders (``vidxtend.py``, ``msvid2vid.py``) and ``inspect.py``,
because each of those asks it.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import CheckpointError
from .files import part_weight_files, read_tensor_infos
from .msvid2vid import UNET_FILE


def is_vidxtend_folder(folder: str | os.PathLike) -> bool:
    """A folder with VidXTend's ``resampler/``, or ``unet/`` + ``controlnet/`` whose UNet has CAM mergers."""
    folder = Path(folder)
    if (folder / "resampler").is_dir():
        return True
    if not ((folder / "unet").is_dir() and (folder / "controlnet").is_dir()):
        return False
    try:
        keys = read_tensor_infos(part_weight_files(folder, "unet", hint="")[0]).tensors
    except CheckpointError:
        return False
    return any(k.startswith("cross_attention_merger_") for k in keys)


def detect_folder_layout(folder: str | os.PathLike) -> str:
    folder = Path(folder)
    if is_vidxtend_folder(folder):
        return "vidxtend_folders"
    if (folder / UNET_FILE).is_file():
        return "msvid2vid_folder"
    if (folder / "unet").is_dir():
        try:
            unet_file = part_weight_files(folder, "unet", hint="")[0]
        except CheckpointError:
            return "unknown"
        keys = read_tensor_infos(unet_file).tensors  # a refused or broken file says so, not "no weights"
        if "transformer_in.proj_in.weight" in keys:
            return "modelscope_folder"
        if (folder / "controlnet").is_dir():
            return "sdvsr_folder"
    return "unknown"
