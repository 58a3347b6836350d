"""Tiny StreamingT2V models shared by the tests/test_st2v_*.py files (built once per session).

Tests must not modify the returned models (copy them first)."""

from __future__ import annotations

from functools import lru_cache

import torch

SMALL_VOCAB = 512  # tests that never tokenize a real prompt: keeps the text encoder small


@lru_cache(maxsize=None)
def tiny_model(text_vocab_size: int = SMALL_VOCAB, seed: int = 0):
    from streaming_core.tiny.st2v import build_tiny_streamingt2v

    return build_tiny_streamingt2v(seed, text_vocab_size=text_vocab_size)


def tiny_inputs(batch: int = 2, frames: int = 16, cam_frames: int = 8, hw=(8, 8), seed: int = 0):
    """latents (B, 4, F, h, w), context (B, 93, 1024), CAM frames (B, Fc, 3, 8h, 8w) in [-1, 1]."""
    gen = torch.Generator().manual_seed(seed)
    h, w = hw
    latents = torch.randn(batch, 4, frames, h, w, generator=gen)
    context = torch.randn(batch, 93, 1024, generator=gen)
    pixels = torch.rand(batch, cam_frames, 3, 8 * h, 8 * w, generator=gen) * 2 - 1
    return latents, context, pixels
