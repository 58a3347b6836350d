"""Randomized blending at every model call of someone else's sampler (ComfyUI's context windows).

A host sampler (any ComfyUI sampler, for instance) runs the model on one full-length latent; a
context handler splits each model call into overlapping windows and fuses the windows' outputs
back into one full-length prediction. The paper's fuse is a hard cut: inside each overlap, frames
before a random cut come from the earlier window and frames from the cut on from the later one,
drawn anew at every call. This module holds the pieces of that fuse that know nothing of the host:
the latent window size and the per-step cut (seeded from the step, never from global RNG state, so
samplers that call the model several times per step stay reproducible). Window tiling, the cut and
the streamed write of one window's frames are ``blend.py``'s, shared with the Randomized Blend
Refiner.
"""

from __future__ import annotations

import random
import struct
from typing import Sequence

from ..errors import InputError
from .blend import Window, draw_offsets

# Hard-cut modes, by the name draw_offsets knows them.
HARD_CUT_MODES = ("randomized", "middle")


def latent_frames(pixel_frames: int, temporal_compression: int) -> int:
    """Latent frames of a causal video VAE for ``pixel_frames`` frames: the first frame is encoded
    alone and every ``temporal_compression`` following frames share one latent frame, hence
    ``(n - 1) // r + 1`` (Wan, Hunyuan: r=4; Mochi: r=6; LTXV, Cosmos: r=8; image models: r=1)."""
    if temporal_compression < 1:
        raise InputError(f"temporal compression must be at least 1, got {temporal_compression}")
    if pixel_frames <= 0:
        return 0
    return (pixel_frames - 1) // temporal_compression + 1


def latent_window(context_frames: int, overlap_frames: int, temporal_compression: int) -> tuple[int, int]:
    """Window length and overlap in latent frames for sizes given in pixel frames."""
    chunk = latent_frames(context_frames, temporal_compression)
    overlap = latent_frames(overlap_frames, temporal_compression)
    if chunk < 2:
        raise InputError(
            f"a context window of {context_frames} frames is {chunk} latent frame(s) at {temporal_compression}x "
            "temporal compression: raise context_length so a window holds at least 2 latent frames")
    if overlap >= chunk:
        raise InputError(
            f"an overlap of {overlap_frames} frames is {overlap} latent frames, not less than the window of "
            f"{chunk} latent frames ({context_frames} frames): lower context_overlap or raise context_length")
    return chunk, overlap


def step_rng(seed: int, step: int, salt: int = 0) -> random.Random:
    """A generator that depends on (seed, step, salt) only: the same run draws the same cuts again,
    whatever else used Python's global RNG in between. String seeds go through SHA-512, so this is
    stable across processes and platforms."""
    return random.Random(f"st2v-context-blend:{int(seed)}:{int(step)}:{int(salt)}")


def cut_offsets(windows: Sequence[Window], mode: str, seed: int, step: int, salt: int = 0) -> list[int]:
    """Per window after the first: where inside its overlap it starts to win at this model call."""
    if mode not in HARD_CUT_MODES:
        raise InputError(f"unknown hard-cut mode {mode!r}; one of {HARD_CUT_MODES}")
    return draw_offsets(windows, mode, step_rng(seed, step, salt))


def locate_step(sample_sigmas: Sequence[float], sigma: float, rel_tol: float = 1e-4) -> tuple[int, int]:
    """(step, salt) of a model call from the sampler's sigma schedule.

    A sigma on the schedule is step ``i`` with salt 0 (ComfyUI's own rule: first entry within
    ``rel_tol``). Second-order and midpoint samplers also call the model between two schedule
    entries; such a call gets the step of the entry above it and a salt made from the sigma's bits,
    so it draws cuts of its own, reproducibly, instead of failing or reusing the step's cuts.
    """
    sigma = float(sigma)
    schedule = [float(s) for s in sample_sigmas]
    for i, s in enumerate(schedule):
        if abs(s - sigma) <= 1e-8 + rel_tol * abs(sigma):
            return i, 0
    above = [i for i, s in enumerate(schedule) if s > sigma]
    step = above[-1] if above else 0
    salt = int.from_bytes(struct.pack("<d", sigma), "little") or 1
    return step, salt


def describe_windows(windows: Sequence[Window]) -> str:
    """One log line's worth: '[0,21) [14,35) [28,49)'."""
    return " ".join(f"[{w.start},{w.end})" for w in windows)


__all__ = [
    "HARD_CUT_MODES", "latent_frames", "latent_window", "step_rng", "cut_offsets", "locate_step",
    "describe_windows",
]
