"""Input checks shared by the generation pipelines: one place for the rules and their messages."""

from __future__ import annotations

from typing import Sequence

import torch

from .. import validation
from ..errors import InputError
from ..official import EXTENSION

CHUNK_FRAMES = 16  # frames the StreamingT2V UNet makes per chunk
CONDITIONING_FRAMES = 8  # frames CAM conditions on (the last 8 of the video so far)
NEW_FRAMES_PER_CHUNK = CHUNK_FRAMES - CONDITIONING_FRAMES
LATENT_FACTOR = validation.LATENT_FACTOR  # VAE downscale


def check_size(height: int, width: int) -> None:
    validation.frame_size(height, width, LATENT_FACTOR)
    validation.canvas(height, width, CHUNK_FRAMES, "frames")


def check_steps(steps: int) -> None:
    validation.steps(steps, default_hint=f"the official value is {EXTENSION.steps}")


def check_scale(name: str, value: float) -> float:
    return validation.number(name, value)


def check_prompt(prompt: str, what: str = "prompt") -> str:
    if not isinstance(prompt, str):
        raise InputError(f"the {what} must be text, got {type(prompt).__name__}")
    return prompt


def check_prompts(prompts: str | Sequence[str]) -> list[str]:
    """One prompt, or one per chunk; at least one."""
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = list(prompts) if prompts is not None else []
    if not prompts:
        raise InputError("no prompt given: pass one prompt, or one per chunk (the last one repeats).")
    return [check_prompt(p, f"prompt {i + 1}") for i, p in enumerate(prompts)]


def check_seed(seed: int) -> int:
    return validation.seed(seed)


def check_image_batch(frames: torch.Tensor, what: str, min_frames: int = 1) -> torch.Tensor:
    """An IMAGE batch (F, H, W, 3) of floats in 0..1."""
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[-1] != 3:
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise InputError(f"{what} must be an image batch of shape (frames, height, width, 3) with values in "
                         f"0..1, got {shape}")
    if frames.shape[0] < min_frames:
        raise InputError(f"{what} has {frames.shape[0]} frame(s); at least {min_frames} are needed.")
    if not frames.is_floating_point():
        raise InputError(f"{what} must hold float values in 0..1, got dtype {frames.dtype}")
    return frames
