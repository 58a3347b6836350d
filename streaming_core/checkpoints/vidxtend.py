"""The VidXTend repack of StreamingT2V (``benjamin-paine/vidxtend``) -> the official key layout.

VidXTend holds the same stage-2 networks as ``streaming_t2v.ckpt`` minus the image encoder, with one
top-level prefix changed, so reading it is a rename followed by the official loader
(``st2v.build_streamingt2v``). The rename has a trap: VidXTend's ``unet.`` is the *denoiser*
(official ``base_model.``) and its ``controlnet.`` the *CAM encoder* (official ``unet.``); copying
prefixes literally would put the CAM encoder's weights into the denoiser's name space.

Two forms exist (vidxtend_notes.md §1-2): one flat file (``vidxtend[.fp16].safetensors``, keys
``<component>.<module key>``) and diffusers folders (``unet/``, ``controlnet/``, ``vae/``,
``text_encoder/``, ``resampler/``, each with ``diffusion_pytorch_model[.fp16].safetensors`` or
``model[.fp16].safetensors``, keys without prefix). Renaming only re-labels tensors: nothing is copied.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

import torch

from ..errors import CheckpointError
from ..state_files import save_safetensors
from .files import load_state_dicts, part_weight_files
from .layouts import describe, detect_folder_layout, is_vidxtend_folder

HUB_REPO = "benjamin-paine/vidxtend"
FETCH_HINT = f"download its .safetensors file from {HUB_REPO}"
# our component name -> (VidXTend prefix / folder, official prefix)
PARTS = {
    "unet": ("unet", "base_model."),
    "cam": ("controlnet", "unet."),
    "resampler": ("resampler", "resampler."),
    "text_encoder": ("text_encoder", "text_encoder."),
    "vae": ("vae", "vae."),
}
VIDXTEND_TO_OFFICIAL = {f"{part}.": official for part, official in PARTS.values()}
# tensor counts and fp16 sizes of the hub release (vidxtend_notes.md §1.1, §1.3), for error messages
PART_FACTS = {
    "unet": ("the denoising UNet", 1703, "2.96 GB"),
    "cam": ("the CAM encoder", 682, "1.24 GB"),
    "resampler": ("the APM resampler", 4, "45 MB (derived from its 22.3 M parameters)"),
    "text_encoder": ("the CLIP text encoder", 372, "681 MB (derived from its 340 M parameters)"),
    "vae": ("the VAE", 248, "167 MB"),
}
# buffers some transformers versions saved; our modules rebuild them
DROPPED_KEYS = ("text_encoder.text_model.embeddings.position_ids",)
HALF_DTYPES = (torch.float16, torch.bfloat16)


def _part_counts(keys: Iterable[str]) -> dict[str, int]:
    counts = dict.fromkeys(PARTS, 0)
    for key in keys:
        head = key.split(".", 1)[0]
        for name, (part, _) in PARTS.items():
            if head == part:
                counts[name] += 1
    return counts


def check_parts(keys: Iterable[str], wanted: Sequence[str], allow_missing: Iterable[str], source: str,
                folder: bool = False) -> None:
    """Name every VidXTend part of ``wanted`` that the file lacks (in VidXTend's own names)."""
    counts = _part_counts(keys)
    allowed = set(allow_missing) - {"unet", "cam", "resampler"}
    absent = [n for n in wanted if n in PARTS and counts[n] == 0 and n not in allowed]
    if not absent:
        return
    optional = [n for n in absent if n not in ("unet", "cam", "resampler")]
    hint = (f" Or, to run without {' and '.join(optional)}, load with allow_missing={tuple(optional)!r}."
            if optional else "")
    if folder:
        parts = "; ".join(f"{PARTS[n][0]}/ ({PART_FACTS[n][0]}: {PART_FACTS[n][1]} tensors, {PART_FACTS[n][2]} "
                          f"in fp16)" for n in absent)
        raise CheckpointError(
            f"{source} is a VidXTend folder without its {parts} subfolder(s). Download "
            f"{', '.join(PARTS[n][0] + '/' for n in absent)} (its .safetensors file) from {HUB_REPO} into it.{hint}")
    parts = "; ".join(f"{PARTS[n][0]}.* part ({PART_FACTS[n][0]}: {PART_FACTS[n][1]} tensors, {PART_FACTS[n][2]} "
                      f"in fp16)" for n in absent)
    raise CheckpointError(
        f"{source} is a VidXTend file without its {parts}. The file is incomplete or was cut down: download "
        f"vidxtend.fp16.safetensors (5.1 GB) from {HUB_REPO} again.{hint}")


def to_official(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same tensors under the official keys (``unet.`` -> ``base_model.``, ``controlnet.`` -> ``unet.``).
    Keys of no VidXTend part (there are none in the hub files) are kept as they are."""
    out = {}
    for key, value in sd.items():
        if key in DROPPED_KEYS:
            continue
        head, sep, rest = key.partition(".")
        official = VIDXTEND_TO_OFFICIAL.get(head + sep)
        out[official + rest if official else key] = value
    return out


def from_official(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The VidXTend single-file keys of an official-layout state dict (its image encoder is left out,
    as VidXTend does)."""
    back = {official: f"{part}." for part, official in PARTS.values()}
    out = {}
    for key, value in sd.items():
        for official, vid in back.items():
            if key.startswith(official):
                out[vid + key[len(official):]] = value
                break
    return out


# -- the diffusers folder form ------------------------------------------------------------------------
def read_folder(folder: str | os.PathLike, *, wanted: Sequence[str] = tuple(PARTS), allow_missing: Iterable[str] = (),
                dtype: Optional[torch.dtype] = None) -> dict[str, torch.Tensor]:
    """The official-layout state dict of a VidXTend folder, reading only the parts in ``wanted``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a folder.")
    if not is_vidxtend_folder(folder):
        layout = detect_folder_layout(folder)
        raise CheckpointError(
            f"{folder} is not a VidXTend folder (it needs resampler/, unet/ and controlnet/ subfolders as in "
            f"{HUB_REPO}); it looks like {describe(layout)}.")
    present = [name for name in wanted if name in PARTS and (folder / PARTS[name][0]).is_dir()]
    check_parts([f"{PARTS[n][0]}.x" for n in present], wanted, allow_missing, str(folder), folder=True)
    sd: dict[str, torch.Tensor] = {}
    for name in present:
        part, official = PARTS[name]
        for key, value in load_state_dicts(part_weight_files(folder, part, dtype in HALF_DTYPES, hint=FETCH_HINT)).items():
            if official + key not in DROPPED_KEYS:
                sd[official + key] = value
    return sd


def write_folders(sd: Mapping[str, torch.Tensor], folder: str | os.PathLike, variant: str = "") -> Path:
    """Write an official-layout state dict as VidXTend folders (``variant`` '.fp16' for the fp16 names)."""
    folder = Path(folder)
    for part, official in PARTS.values():
        tensors = {k[len(official):]: v for k, v in sd.items() if k.startswith(official)}
        if not tensors:
            continue
        name = "model" if part == "text_encoder" else "diffusion_pytorch_model"
        save_safetensors(tensors, folder / part / f"{name}{variant}.safetensors", metadata={"format": "pt"})
    return folder
