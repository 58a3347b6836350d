"""The evaluation models from local files: RAFT-large for MAWE, the OpenCLIP ViT-H towers for the CLIP score.

Both reuse the pack's loaders (the Stream-DiffVSR RAFT loader; the APM image-encoder loader; the
open_clip text-tower conversion of the enhancer loader). A missing file is not an error for
``evaluate``: the metric is skipped with a line naming the file to add (``find_*`` return the path or
that line).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import torch

from ..checkpoints import files
from ..checkpoints.components import load_component
from ..checkpoints.image_encoder import load_image_encoder
from ..checkpoints.layouts import CLIP_VISION_H14_FILE, MSVID2VID_FILES, hf_vision_prefix, open_clip_visual_prefix
from ..checkpoints.open_clip_text import is_open_clip_text, open_clip_to_hf_text
from ..checkpoints.sdvsr import RAFT_FILE_NAME, RAFT_URL, build_raft_from
from ..errors import CheckpointError
from ..models.text_encoder import CLIPTextEncoder, text_config_from_state_dict
from .clip_score import ClipTextTower
from .evaluate import EvalModels
from .mawe import RaftPairFlow

OPEN_CLIP_FILE = MSVID2VID_FILES["text"]  # the layout table's names
CLIP_VISION_FILE = CLIP_VISION_H14_FILE
OPEN_CLIP_SOURCE = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K (also shipped in MS-Vid2Vid-XL's damo/Video-to-Video folder)"


def default_raft(models_dir: str | os.PathLike) -> Path:
    return Path(models_dir) / "stream_diffvsr" / RAFT_FILE_NAME


def default_clip_text(models_dir: str | os.PathLike) -> Path:
    return Path(models_dir) / "streamingt2v" / OPEN_CLIP_FILE


def default_clip_image(models_dir: str | os.PathLike) -> Path:
    return Path(models_dir) / "clip_vision" / CLIP_VISION_FILE


def raft_missing_line(path: Optional[Path], how: str = "pass --raft FILE") -> str:
    where = f"not found at {path}" if path else "not given"
    return f"MAWE skipped: RAFT-large weights {where}. Add {RAFT_FILE_NAME} (from {RAFT_URL}) and {how}."


def clip_missing_line(path: Optional[Path], how: str = "pass --clip FILE") -> str:
    where = f"not found at {path}" if path else "not given"
    return (f"CLIP score skipped: the OpenCLIP ViT-H/14 text tower is {where}. Add {OPEN_CLIP_FILE} from "
            f"{OPEN_CLIP_SOURCE} and {how}.")


def load_raft_flow(path: str | os.PathLike, device: str | torch.device = "cpu") -> RaftPairFlow:
    """torchvision RAFT (architecture from the file's shapes), float32, as a MAWE flow function."""
    path = files.check_exists(path, "RAFT weight file")
    raft = build_raft_from(files.load_state_dict(path), what=f"RAFT ({path.name})")
    return RaftPairFlow(raft.to(device))


def load_clip_text_tower(path: str | os.PathLike, device: str | torch.device = "cpu",
                         dtype: torch.dtype = torch.float32) -> ClipTextTower:
    """open_clip's whole text tower + ``text_projection`` from an open_clip checkpoint."""
    path = files.check_exists(path, "open_clip file")
    sd = files.load_state_dict(path)
    if not is_open_clip_text(sd) or "text_projection" not in sd:
        raise CheckpointError(f"{path.name} holds no open_clip text tower with its projection (no token_embedding/"
                              f"transformer.resblocks/text_projection). Use {OPEN_CLIP_FILE} from {OPEN_CLIP_SOURCE}.")
    encoder = load_component(open_clip_to_hf_text(sd, skip_last_layers=0), "",
                              lambda s: CLIPTextEncoder(text_config_from_state_dict(s, "text_model.")),
                              what="CLIP text tower", dtype=dtype, device=device, source=path.name)
    return ClipTextTower(encoder, sd["text_projection"].to(device=device, dtype=dtype)).eval()


def has_visual_tower(path: str | os.PathLike) -> bool:
    """Whether an open_clip / clip_vision / StreamingT2V file holds a CLIP image tower (keys only)."""
    keys = files.load_state_dict(path).keys()
    return open_clip_visual_prefix(keys) is not None or hf_vision_prefix(keys) is not None


def load_clip_image_tower(path: str | os.PathLike, device: str | torch.device = "cpu",
                          dtype: torch.dtype = torch.float32):
    return load_image_encoder(files.check_exists(path, "CLIP image encoder file"), dtype=dtype, device=device)


def pick_clip_image_file(text_file: Optional[Path], models_dir: str | os.PathLike) -> Optional[Path]:
    """Without an explicit image-tower file: None (the open_clip file's own tower) when that file holds
    ``visual.*`` (the hub file does), else ComfyUI's clip_vision ViT-H file under the models folder."""
    if text_file is not None and text_file.is_file() and has_visual_tower(text_file):
        return None
    return default_clip_image(models_dir)


def load_eval_models(raft: Optional[Path], clip: Optional[Path], clip_image: Optional[Path], prompt: Optional[str],
                     device: str | torch.device = "cpu", *, raft_how: str = "pass --raft FILE",
                     clip_how: str = "pass --clip FILE", log=lambda message: None) -> EvalModels:
    """The models ``evaluate_video`` needs, from local files; a missing file (or no prompt, for CLIP)
    becomes a skip line instead of an error. ``clip_image`` None: the ``clip`` file's own image tower."""
    skipped = []
    flow = flow_source = image_encoder = text_tower = clip_sources = None
    if raft is not None and raft.is_file():
        log(f"loading RAFT {raft} ...")
        flow, flow_source = load_raft_flow(raft, device), str(raft)
    else:
        skipped.append(raft_missing_line(raft, raft_how))
    if not (prompt and prompt.strip()):
        skipped.append("CLIP score skipped: no prompt given (the prompt the video was made from)")
    elif clip is None or not clip.is_file():
        skipped.append(clip_missing_line(clip, clip_how))
    else:
        image = clip_image or (clip if has_visual_tower(clip) else None)
        if image is None or not image.is_file():
            skipped.append(f"CLIP score skipped: {clip.name} holds no CLIP image tower and "
                           f"{image or 'no image-tower file'} was given. Add the ViT-H clip_vision file "
                           f"{CLIP_VISION_FILE} or use the full {OPEN_CLIP_FILE}.")
        else:
            log(f"loading CLIP towers (text: {clip.name}, image: {image.name}) ...")
            text_tower = load_clip_text_tower(clip, device)
            image_encoder = load_clip_image_tower(image, device)
            clip_sources = f"text: {clip}; image: {image}"
    return EvalModels(flow, flow_source, image_encoder, text_tower, clip_sources, tuple(skipped))
