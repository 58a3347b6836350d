"""What the loaders' dropdowns offer, and how a picked name becomes a path.

A model is a file or a folder (a diffusers layout, Stream-DiffVSR's hub folder), so each dropdown
lists the folders that hold such a model first, then the weight files. Which folders qualify, and
which file names belong to a model, is asked of the core's layout table (``checkpoints/layouts.py``,
the detectors loading applies), so the menus never offer a folder the loader would reject for its
layout, and a new layout appears in them by its row alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from ..streaming_core.checkpoints.layouts import file_name_hints, flat_name, folder_serves, with_role
from . import host

ST2V = "streamingt2v"
SDVSR = "stream_diffvsr"
CLIP_VISION = "clip_vision"
CHECKPOINTS = "checkpoints"
NONE = "none"
AUTO = "auto"


def _folders(kind: str, role: str) -> list[str]:
    """The subfolders of ``kind`` that the layout table says can be given as ``role``."""
    return [name for name in host.list_subfolders(kind) if folder_serves(host.subfolder_path(kind, name), role)]


def _named_files(kind: str, role: str) -> list[str]:
    """The files of ``kind`` (at any depth) named as a file layout of ``role`` is named."""
    names = {name for row in with_role(role, kind="file") for name in row.file_names}
    return [f for f in host.list_files(kind) if f.rsplit("/", 1)[-1] in names]


def _path(kind: str, name: str) -> str:
    """A folder or a file picked from one of the menus below."""
    if name in host.list_subfolders(kind):
        return host.subfolder_path(kind, name)
    return host.full_path(kind, name)


# -- StreamingT2V --------------------------------------------------------------------------------
def _is_st2v_file_name(name: str) -> bool:
    """A StreamingT2V file by its name (models/checkpoints/ holds every other checkpoint too, and reading
    each one's header to tell would slow every menu): streaming_t2v.ckpt and conversions, vidxtend files."""
    flat = flat_name(name)
    return any(hint in flat for hint in file_name_hints("streamingt2v"))


def st2v_models() -> list[str]:
    """VidXTend folders, then every weight file (streaming_t2v.ckpt, its safetensors, vidxtend.fp16...), then
    StreamingT2V files in ComfyUI's checkpoints folder (where users of the older port keep them), as 'checkpoints/<name>'."""
    in_checkpoints = [f"{CHECKPOINTS}/{n}" for n in host.list_files(CHECKPOINTS) if _is_st2v_file_name(n)]
    return _folders(ST2V, "streamingt2v") + host.list_files(ST2V) + in_checkpoints


def st2v_model_path(name: str) -> str:
    prefix = CHECKPOINTS + "/"
    if name.startswith(prefix) and name not in host.list_files(ST2V) and name not in host.list_subfolders(ST2V):
        return host.full_path(CHECKPOINTS, name[len(prefix):])
    return _path(ST2V, name)


def image_encoders() -> list[str]:
    """'none', our folder's files, then ComfyUI's clip_vision files (prefixed 'clip_vision/')."""
    return [NONE] + host.list_files(ST2V) + [f"{CLIP_VISION}/{name}" for name in host.list_files(CLIP_VISION)]


def image_encoder_path(name: str) -> Optional[str]:
    if name in (None, "", NONE):
        return None
    prefix = CLIP_VISION + "/"
    if name.startswith(prefix):
        clip_name = name[len(prefix):]
        # A 'clip_vision/' name is ComfyUI's clip_vision file; only a sub-folder of our own folder that
        # happens to be called clip_vision (streamingt2v/clip_vision/<file>, listed under the same name)
        # takes it otherwise. Gone from both: the error names the clip_vision folders it was picked from.
        if clip_name in host.list_files(CLIP_VISION) or name not in host.list_files(ST2V):
            return host.full_path(CLIP_VISION, clip_name)
    return host.full_path(ST2V, name)


# -- ModelScope first-chunk UNet -----------------------------------------------------------------
def base_models() -> list[str]:
    """Folders holding a ModelScope-style UNet (text-to-video-ms-1.7b, zeroscope_v2_576w), then files."""
    folders = _folders(ST2V, "first_chunk")
    loose = [f for f in host.list_files(ST2V) if not any(f.startswith(d + "/") for d in folders)]
    return folders + loose


def base_model_path(name: str) -> str:
    return _path(ST2V, name)


# -- enhancer ------------------------------------------------------------------------------------
def enhancers() -> list[str]:
    """MS-Vid2Vid-XL's UNet file wherever it lies (its two companions sit beside it), then diffusers
    UNet3D folders with a text encoder and a VAE (zeroscope_v2_XL)."""
    return _named_files(ST2V, "enhancer.unet") + _folders(ST2V, "enhancer")


def enhancer_path(name: str) -> str:
    """The folder to hand the enhancer loader (it finds the three MS-Vid2Vid-XL files by name)."""
    path = _path(ST2V, name)
    return str(Path(path).parent) if os.path.isfile(path) else path


# -- Stream-DiffVSR ------------------------------------------------------------------------------
def sdvsr_models() -> list[str]:
    return _folders(SDVSR, "upscaler")


def sdvsr_model_path(name: str) -> str:
    return host.subfolder_path(SDVSR, name)


def raft_files() -> list[str]:
    """'auto' (the RAFT file in the model folder or beside it), then the loose files of the folder."""
    return [AUTO] + [f for f in host.list_files(SDVSR) if "/" not in f]


def raft_path(name: str) -> Optional[str]:
    return None if name in (None, "", AUTO) else host.full_path(SDVSR, name)
