"""Out-of-memory fallbacks: the first torch.OutOfMemoryError is caught, the work retried smaller and
logged; a second one is a clear error naming what would fit."""

from __future__ import annotations

import logging

import pytest
import torch

from streaming_core.errors import OutOfMemory, UserFacingError
from streaming_core.models.vae import decode_latents, encode_pixels
from streaming_core.sampling.guided_model import guided_chunk_model
from streaming_core.tiny.enhancer import build_tiny_vae
from streaming_core.tiny.sdvsr import build_tiny_sdvsr
from streaming_core.pipelines.upscale import UpscaleSettings, upscale_stream


def oom_when(condition):
    """A wrapper raising torch.OutOfMemoryError whenever ``condition(*args)`` holds (counting the raises)."""
    raised = []

    def wrap(fn):
        def call(*args, **kwargs):
            if condition(*args, **kwargs):
                raised.append(1)
                raise torch.OutOfMemoryError("CUDA out of memory (test)")
            return fn(*args, **kwargs)
        return call
    return wrap, raised


def test_vae_decode_retries_one_frame_at_a_time(caplog):
    vae = build_tiny_vae(0)
    latents = torch.randn(4, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = decode_latents(vae, latents, slice_size=1)
        wrap, raised = oom_when(lambda z, *a, **k: z.shape[0] > 1)  # only a batch of several frames fails
        vae.decode = wrap(vae.decode)
        with caplog.at_level(logging.WARNING, logger="streaming_core"):
            out = decode_latents(vae, latents, slice_size=4)
    assert raised == [1]
    assert torch.equal(out, expected)
    assert "VAE decode ran out of memory at 4 frames per VAE slice; retrying with 1 frame per VAE slice" in caplog.text


def test_vae_encode_retry_draws_the_same_sample():
    vae = build_tiny_vae(0)
    pixels = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        expected = encode_pixels(vae, pixels, 1, torch.Generator().manual_seed(5), sample_posterior=True)
        wrap, raised = oom_when(lambda x, *a, **k: x.shape[0] > 1)
        vae.encode = wrap(vae.encode)
        out = encode_pixels(vae, pixels, 8, torch.Generator().manual_seed(5), sample_posterior=True)
    assert raised == [1] and torch.equal(out, expected)


def test_vae_second_failure_names_what_fits():
    vae = build_tiny_vae(0)
    wrap, raised = oom_when(lambda *a, **k: True)
    vae.decode = wrap(vae.decode)
    with pytest.raises(OutOfMemory, match=r"VAE decode ran out of memory even at 1 frame per VAE slice: free GPU "
                                          r"memory .*--offload.*VAE tile size") as exc:
        decode_latents(vae, torch.zeros(2, 4, 8, 8), slice_size=2)
    assert isinstance(exc.value, UserFacingError) and raised == [1, 1]


def test_refine_window_retries_one_guidance_pass_at_a_time(caplog):
    torch.manual_seed(0)
    weight = torch.randn(4, 4)

    def network(x, t, ctx):
        return torch.einsum("bcfhw,dc->bdfhw", x, weight) + ctx.mean() + t.float().mean()

    x = torch.randn(2, 4, 3, 4, 4)
    cond, uncond = torch.randn(1, 5, 8), torch.randn(1, 5, 8)
    expected = guided_chunk_model(network, cond, uncond, 7.5, batch_cond_uncond=False)(x, 10)
    wrap, raised = oom_when(lambda xb, *a: xb.shape[0] > 2)  # the cond+uncond batch (4 rows) does not fit
    with caplog.at_level(logging.WARNING, logger="streaming_core"):
        out = guided_chunk_model(wrap(network), cond, uncond, 7.5, batch_cond_uncond=True)(x, 10)
    assert raised == [1]
    assert torch.equal(out, expected)  # the same passes, in smaller batches
    assert "refine window's denoiser ran out of memory at cond and uncond in one batch; retrying with one guidance " \
           "pass at a time" in caplog.text
    wrap, raised = oom_when(lambda *a: True)
    with pytest.raises(OutOfMemory, match="even at one guidance pass at a time: .*fewer frames per window"):
        guided_chunk_model(wrap(network), cond, uncond, 7.5)(x, 10)


def test_raft_retries_with_smaller_tiles(caplog):
    models = build_tiny_sdvsr(seed=0)
    frames = (torch.rand(2, 32, 32, 3, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    wrap, raised = oom_when(lambda image, *a: image.shape[-1] > 64)  # RAFT on a whole 128 px HR frame fails
    models.raft.flow = wrap(models.raft.flow)
    stream = upscale_stream(models, frames, settings=UpscaleSettings(seed=7, steps=2))
    with caplog.at_level(logging.WARNING, logger="streaming_core"), torch.no_grad():
        out = list(stream)
    assert len(out) == 2 and raised == [1]
    assert stream._estimator.tile == 64
    assert "RAFT optical flow ran out of memory at whole frames; retrying with 64-pixel tiles" in caplog.text


def test_raft_second_failure_names_the_tile_setting():
    models = build_tiny_sdvsr(seed=0)
    frames = (torch.rand(2, 32, 32, 3, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    wrap, _ = oom_when(lambda *a: True)
    models.raft.flow = wrap(models.raft.flow)
    with pytest.raises(OutOfMemory, match=r"RAFT optical flow ran out of memory even at 64-pixel tiles: .*--tile"):
        with torch.no_grad():
            list(upscale_stream(models, frames, settings=UpscaleSettings(seed=7, steps=2)))
