"""The per-stage memory estimates: monotone in frames and size, and within 2x of the peak measured on
the CPU for the tiny models (memory_probe.peak_bytes: the profiler's tensor allocation total)."""

from __future__ import annotations

import pytest
import torch

from streaming_core.pipelines import memory_estimates as me
from streaming_core.pipelines.memory_probe import peak_bytes
from streaming_core.pipelines.upscale import UpscaleSettings, upscale_stream
from streaming_core.sampling.guided_model import enhancer_chunk_model
from streaming_core.tiny.workloads import WORKLOADS
from st2v_shared import tiny_model

F32 = torch.float32
SHAPE = me.UNetShape((320, 640, 1280, 1280), 2)


def within_2x(estimate: int, measured: int) -> bool:
    return measured / 2 <= estimate <= 2 * measured


@pytest.mark.parametrize("stage", [
    lambda f, h, w: me.extension_chunk_bytes(SHAPE, SHAPE, frames=f, height=h, width=w, dtype=F32),
    lambda f, h, w: me.initial_chunk_bytes(SHAPE, frames=f, height=h, width=w, dtype=F32),
    lambda f, h, w: me.refine_window_bytes(SHAPE, frames=f, height=h, width=w, dtype=F32),
    lambda f, h, w: me.upscale_frame_bytes(SHAPE, height=h, width=w, dtype=F32) * f,
    lambda f, h, w: me.anchor_encode_bytes(1280, frames=f, dtype=F32, pixels=(h, w)),
], ids=["extension", "initial", "refine", "upscale", "anchor"])
def test_estimates_grow_with_frames_and_size(stage):
    base = stage(16, 256, 256)
    assert stage(24, 256, 256) > base
    assert stage(16, 512, 256) > base and stage(16, 256, 512) > base
    assert me.extension_chunk_bytes(SHAPE, SHAPE, height=256, width=256, dtype=torch.float16) < \
        me.extension_chunk_bytes(SHAPE, SHAPE, height=256, width=256, dtype=F32)


def test_full_size_targets_are_plausible():
    """The issue's targets: the 256x256 extension fits 8 GB with its ~5.5 GB of fp16 weights only if the
    activations are around a gigabyte; the estimate says what ComfyUI must free."""
    ext = me.extension_chunk_bytes(SHAPE, SHAPE, height=256, width=256, dtype=torch.float16)
    assert 0.2e9 < ext < 3e9, ext


@pytest.mark.parametrize("size", [(64, 96)])
def test_extension_chunk_within_2x(size):
    model = tiny_model()
    hp, wp = size
    g = torch.Generator().manual_seed(0)
    lat = torch.randn(3, 4, 16, hp // 8, wp // 8, generator=g)
    ctx = torch.randn(3, 93, 1024, generator=g)
    cam = torch.rand(3, 8, 3, hp, wp, generator=g) * 2 - 1
    with torch.no_grad():
        measured, _ = peak_bytes(lambda: model.predict_noise(lat, 500, ctx, cam))
    est = me.extension_chunk_bytes(me.UNetShape.of(model.unet), me.UNetShape.of(model.cam.trunk), height=hp, width=wp,
                                   dtype=F32)
    assert within_2x(est, measured), (est, measured)


def test_anchor_encode_within_2x():
    model = tiny_model()
    frames = torch.rand(1, 4, 3, 64, 64) * 2 - 1
    measured, _ = peak_bytes(lambda: model.anchor_tokens(frames))
    c = model.image_encoder.config
    est = me.anchor_encode_bytes(c.width, frames=4, image_size=c.image_size, patch_size=c.patch_size, dtype=F32,
                                 pixels=(64, 64))
    assert within_2x(est, measured), (est, measured)


@pytest.mark.parametrize("size", [(128, 96)])
def test_initial_chunk_step_within_2x(size):
    unet = WORKLOADS["modelscope_unet"].build()
    hp, wp = size
    x, ctx = torch.randn(2, 4, 16, hp // 8, wp // 8), torch.randn(2, 77, 1024)
    with torch.no_grad():
        measured, _ = peak_bytes(lambda: unet(x, torch.tensor([1, 2]), ctx))
    est = me.initial_chunk_bytes(me.UNetShape.of(unet), height=hp, width=wp, dtype=F32, vae_channels=1)
    assert within_2x(est, measured), (est, measured)


@pytest.mark.parametrize("name", ["enhancer_msvid2vid", "enhancer_unet3d"])
def test_refine_window_within_2x(name):
    enhancer = WORKLOADS[name].build()
    cond, uncond = enhancer.encode_prompts("a")
    frames, hp, wp = 4, 64, 64
    z = torch.randn(1, 4, frames, hp // enhancer.vae_factor, wp // enhancer.vae_factor)
    model = enhancer_chunk_model(enhancer, cond, uncond, 7.5)
    with torch.no_grad():
        step, _ = peak_bytes(lambda: model(z, 300))
        decode, _ = peak_bytes(lambda: enhancer.decode(z))
    est = me.refine_window_bytes(me.UNetShape.of(enhancer.unet), frames=frames, height=hp, width=wp, dtype=F32,
                                 vae_factor=enhancer.vae_factor, vae_channels=enhancer.vae.config.block_out_channels[-1],
                                 vae_slice=enhancer.vae_slice)
    assert within_2x(est, max(step, decode)), (est, step, decode)


@pytest.mark.parametrize("size", [(24, 32), (48, 64)])
def test_upscale_frame_with_flow_within_2x(size):
    """(At 16x16 input, a size-independent ~1.9 MB of per-frame workspace of the tiny bundle makes the
    measured peak 2.8x the estimate; from 24x32 on, the size-proportional part dominates, as at real sizes.)"""
    models = WORKLOADS["stream_diffvsr"].build()
    hp, wp = size
    frames = (torch.rand(2, hp, wp, 3, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    stream = iter(upscale_stream(models, frames, settings=UpscaleSettings(seed=7, steps=2)))
    with torch.no_grad():
        next(stream)  # the first frame has no flow; the second is the steady state
        measured, _ = peak_bytes(lambda: next(stream))
    est = me.upscale_frame_bytes(me.UNetShape.of(models.unet), height=hp, width=wp, dtype=F32,
                                 vae_channels=max(models.vae.config.decoder_block_out_channels))
    assert within_2x(est, measured), (est, measured)
