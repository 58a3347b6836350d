"""The tiny models tree: every model the pack loads, with tiny random weights, under the real folder
and file names, so a ComfyUI (or ``generate``) pointed at it runs every example workflow unchanged.

``TINY_MODELS`` is the registry ``make-tiny`` writes. To add a model, append one line::

    TINY_MODELS.append(TinyModel("my model", ("streamingt2v/my_model.safetensors",), write_my_model))

``paths`` are relative to the models dir and are what must exist afterwards (an entry whose paths all
exist is skipped unless forced, so the command is idempotent and cheap to repeat); ``write`` gets the
models dir and writes atomically per file (a crash leaves old files or none, never half a file).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

from .enhancer import write_tiny_enhancers
from .marker import write_marker
from .modelscope import TINY_BASE_FOLDER, build_tiny_modelscope_unet, write_tiny_modelscope
from .st2v import build_tiny_streamingt2v, write_tiny_checkpoint
from .vidxtend import write_tiny_vidxtend

ST2V_DIR = "streamingt2v"
SDVSR_DIR = "stream_diffvsr"
CLIP_VISION_DIR = "clip_vision"  # ComfyUI's own folder: an image encoder for VidXTend may live there
SDVSR_NAME = "Stream-DiffVSR"  # the hub repo's name: what `hf download ... --local-dir` creates
RAFT_FILE = "raft_large_C_T_SKHT_V2-ff5fadd5.pth"


@dataclass(frozen=True)
class TinyModel:
    name: str
    paths: tuple[str, ...]  # relative to the models dir; all exist once written
    write: Callable[[Path], object]  # models_dir -> (anything); writes those paths


def _write_st2v(models_dir: Path) -> None:
    write_tiny_checkpoint(build_tiny_streamingt2v(seed=0), models_dir / ST2V_DIR / "streaming_t2v.ckpt")


def _write_modelscope(models_dir: Path) -> None:
    write_tiny_modelscope(build_tiny_modelscope_unet(seed=0), models_dir / ST2V_DIR / TINY_BASE_FOLDER)


def _write_enhancers(models_dir: Path) -> None:
    write_tiny_enhancers(models_dir)


def _write_sdvsr(models_dir: Path) -> None:
    from .sdvsr import write_tiny_sdvsr

    write_tiny_sdvsr(models_dir, name=SDVSR_NAME)


def _write_vidxtend(models_dir: Path) -> None:
    write_tiny_vidxtend(models_dir)


TINY_MODELS: list[TinyModel] = [
    TinyModel("StreamingT2V (official Lightning checkpoint layout)", (f"{ST2V_DIR}/streaming_t2v.ckpt",), _write_st2v),
    TinyModel("ModelScope text-to-video UNet (first chunk)",
              (f"{ST2V_DIR}/text-to-video-ms-1.7b/unet/diffusion_pytorch_model.safetensors",), _write_modelscope),
    TinyModel("MS-Vid2Vid-XL enhancer files + zeroscope_v2_XL-style diffusers enhancer",
              tuple(f"{ST2V_DIR}/{f}" for f in ("non_ema_0035000.pth", "open_clip_pytorch_model.bin",
                                                "v2-1_512-ema-pruned.ckpt",
                                                "zeroscope_v2_XL/unet/diffusion_pytorch_model.safetensors",
                                                "zeroscope_v2_XL/text_encoder/model.safetensors",
                                                "zeroscope_v2_XL/vae/diffusion_pytorch_model.safetensors",
                                                "zeroscope_v2_XL/scheduler/scheduler_config.json")),
              _write_enhancers),
    TinyModel("Stream-DiffVSR (hub folder layout) + RAFT-large file",
              (f"{SDVSR_DIR}/{SDVSR_NAME}/unet/diffusion_pytorch_model.safetensors",
               f"{SDVSR_DIR}/{SDVSR_NAME}/controlnet/diffusion_pytorch_model.safetensors",
               f"{SDVSR_DIR}/{SDVSR_NAME}/vae/diffusion_pytorch_model.safetensors",
               f"{SDVSR_DIR}/{SDVSR_NAME}/text_encoder/model.safetensors",
               f"{SDVSR_DIR}/{RAFT_FILE}"), _write_sdvsr),
    TinyModel("VidXTend single file (fp16) + ViT-H clip_vision image encoder",
              (f"{ST2V_DIR}/vidxtend.fp16.safetensors",
               f"{CLIP_VISION_DIR}/CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"), _write_vidxtend),
]


def extra_model_paths_yaml(models_dir: str | os.PathLike, section: str = "streaming_tiny") -> str:
    """The lines that point a ComfyUI at ``models_dir`` (for its extra_model_paths.yaml)."""
    folders = (ST2V_DIR, SDVSR_DIR, CLIP_VISION_DIR)
    return f"{section}:\n  base_path: {Path(models_dir).resolve()}\n" + "".join(f"  {f}: {f}\n" for f in folders)


def write_tree(models_dir: str | os.PathLike, *, force: bool = False, only: Optional[Iterable[str]] = None,
               log: Callable[[str], None] = print) -> list[Path]:
    """Write every registered tiny model under ``models_dir``; returns the paths written (skipped
    entries excluded). ``only``: substrings of entry names to restrict to."""
    models_dir = Path(models_dir)
    wanted = list(only or [])
    written = []
    write_marker(models_dir)  # how the commands recognise these files as tiny test weights
    for model in TINY_MODELS:
        if wanted and not any(w.lower() in model.name.lower() for w in wanted):
            continue
        paths = [models_dir / p for p in model.paths]
        if not force and all(p.exists() for p in paths):
            log(f"exists   {model.name}: {', '.join(model.paths)}")
            continue
        model.write(models_dir)
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise RuntimeError(f"the tiny writer of {model.name} did not write {', '.join(missing)}")
        for p in model.paths:
            log(f"wrote    {models_dir / p}")
        written += paths
    return written
