"""One CAM extension chunk (pipelines/extend.py): guidance passes, the official random-draw order,
progress and cancellation."""

from __future__ import annotations

import pytest
import torch

from streaming_core.errors import Cancelled, InputError
from streaming_core.progress import SD_LATENTS, LatentPreview
from streaming_core.pipelines import extend as extend_module
from streaming_core.pipelines.extend import ExtendConditioning, ExtensionSettings, extend_chunk
from st2v_shared import tiny_model

STEPS = 2
FRAMES, CAM_FRAMES = 8, 4  # mechanics only: the official 16 / 8 shape runs in the parity fixture test


def _settings(**kw) -> ExtensionSettings:
    """Official settings at the tiny test sizes."""
    return ExtensionSettings(**{"frames": FRAMES, "steps": STEPS, **kw})


def _conditioning(seed: int = 1) -> ExtendConditioning:
    gen = torch.Generator().manual_seed(seed)
    return ExtendConditioning(text=torch.randn(1, 77, 1024, generator=gen),
                              uncond_text=torch.randn(1, 77, 1024, generator=gen),
                              anchor=torch.randn(1, 16, 1024, generator=gen),
                              uncond_anchor=torch.randn(1, 16, 1024, generator=gen))


def _frames(seed: int = 2) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(1, CAM_FRAMES, 3, 64, 64, generator=gen) * 2 - 1


class _BatchRecorder:
    """Records the batch size of every denoiser and CAM forward."""

    def __init__(self, model):
        self.unet, self.cam = [], []
        self.handles = [model.unet.register_forward_pre_hook(lambda m, a: self.unet.append(a[0].shape[0])),
                        model.cam.register_forward_pre_hook(lambda m, a: self.cam.append(a[0].shape[0]))]

    def close(self):
        for h in self.handles:
            h.remove()


def test_equal_scales_use_two_passes_and_match_eq12_three_passes(monkeypatch):
    model = tiny_model()
    cond, frames = _conditioning(), _frames()
    rec = _BatchRecorder(model)
    try:
        joint = extend_chunk(model, frames, cond, _settings(guidance=7.5, anchor_guidance=7.5),
                             generator=torch.Generator().manual_seed(4))
        assert rec.unet == [2] * STEPS  # [uncond, cond] in one forward per step
        rec.unet.clear(), rec.cam.clear()
        # force the 3-pass eq. 12 path with the same scales: it must telescope to the joint result
        monkeypatch.setattr(extend_module, "uses_two_passes", lambda *a: False)
        eq12 = extend_chunk(model, frames, cond, _settings(guidance=7.5, anchor_guidance=7.5),
                            generator=torch.Generator().manual_seed(4))
        assert rec.unet == [3] * STEPS
        assert rec.cam == [2] * STEPS  # (empty, grey) and (empty, anchor) share one CAM row
    finally:
        rec.close()
    torch.testing.assert_close(eq12, joint, rtol=1e-4, atol=1e-4)


def test_different_scales_use_three_passes_and_change_the_result():
    model = tiny_model()
    cond, frames = _conditioning(), _frames()
    rec = _BatchRecorder(model)
    try:
        a = extend_chunk(model, frames, cond, _settings(guidance=7.5, anchor_guidance=2.0),
                         generator=torch.Generator().manual_seed(4))
    finally:
        rec.close()
    assert rec.unet == [3] * STEPS
    b = extend_chunk(model, frames, cond, _settings(), generator=torch.Generator().manual_seed(4))
    assert (a - b).abs().max() > 1e-3


def test_generator_draws_follow_the_official_order():
    """Unless injected, the initial latents (B,4,F,h,w) are drawn first and then, at every step, the
    DDIM variance noise (B*F,4,h,w) frame-major, all from the one CPU generator."""
    model = tiny_model()
    cond, frames = _conditioning(), _frames()
    drawn = extend_chunk(model, frames, cond, _settings(), generator=torch.Generator().manual_seed(33))
    gen = torch.Generator().manual_seed(33)
    init = torch.randn(1, 4, FRAMES, 8, 8, generator=gen)
    steps = [torch.randn(FRAMES, 4, 8, 8, generator=gen) for _ in range(STEPS)]
    injected = extend_chunk(model, frames, cond, _settings(), init_noise=init, variance_noise=steps,
                            generator=torch.Generator().manual_seed(999))
    assert torch.equal(drawn, injected)
    default = extend_chunk(model, frames, cond, _settings())  # official default seed 33
    assert torch.equal(default, drawn)


def test_progress_and_cancel():
    model = tiny_model()
    cond, frames = _conditioning(), _frames()
    calls = []
    seen_x0 = []
    extend_chunk(model, frames, cond, _settings(steps=3), on_step=lambda d, t, p: calls.append((d, t, p)),
                 step_hook=lambda info: seen_x0.append(info.x0.clone()))
    assert [(d, t) for d, t, _ in calls] == [(1, 3), (2, 3), (3, 3)]
    # every step hands its x0 estimate to the host as a latent preview
    assert all(isinstance(p, LatentPreview) and p.family == SD_LATENTS for _, _, p in calls)
    assert all(torch.equal(p.latents, x0) for (_, _, p), x0 in zip(calls, seen_x0))

    rec = _BatchRecorder(model)

    def stop(done, total, preview):
        raise Cancelled("user stop")

    try:
        with pytest.raises(Cancelled):
            extend_chunk(model, frames, cond, _settings(steps=5), on_step=stop)
    finally:
        rec.close()
    assert len(rec.unet) == 1  # stopped right after the first step


def test_bad_inputs_are_explained():
    model = tiny_model()
    cond = _conditioning()
    with pytest.raises(InputError, match="multiples of 8"):
        extend_chunk(model, torch.zeros(1, CAM_FRAMES, 3, 76, 64), cond, _settings(steps=1))
    with pytest.raises(InputError, match="variance noise of step 0"):
        extend_chunk(model, _frames(), cond, _settings(steps=1), variance_noise=[torch.zeros(3)])
    with pytest.raises(InputError, match="cannot hold"):
        extend_chunk(model, _frames(), cond, _settings(steps=1, frames=CAM_FRAMES - 1))


def test_sizes_that_are_multiples_of_8_but_not_64_work():
    """The UNet upsamples to its skips' sizes, so 72x56 pixels (9x7 latents) need no padding."""
    model = tiny_model()
    latents = extend_chunk(model, torch.rand(1, CAM_FRAMES, 3, 72, 56) * 2 - 1, _conditioning(),
                           _settings(steps=1))
    assert latents.shape[-2:] == (9, 7) and torch.isfinite(latents).all()


def test_a_single_extension_never_reuses_the_initial_chunks_seed():
    from streaming_core.pipelines.long_video import chunk_seed, extension_chunk_index

    # the loop: 16 frames -> chunk 1, 24 -> chunk 2, ...; a short clip (8-15 frames) is a first extension too
    assert [extension_chunk_index(n) for n in (8, 15, 16, 23, 24, 32)] == [1, 1, 1, 1, 2, 3]
    assert chunk_seed(7, extension_chunk_index(8)) != chunk_seed(7, 0) == 7


def test_build_conditioning_pairs_prompts_with_negatives_and_the_grey_anchor():
    from streaming_core.cli.demo import tiny_models
    from streaming_core.pipelines.extend import build_conditioning

    model = tiny_models()[0]  # a text encoder with the real CLIP vocabulary
    anchor = _frames()[:, 0]  # (1, 3, H, W) signed pixels
    cond = build_conditioning(model, ["a cat", "a dog"], anchor.expand(2, -1, -1, -1), negative_prompt="blurry")
    with torch.no_grad():
        assert torch.equal(cond.text, model.encode_prompts(["a cat", "a dog"]))
        assert torch.equal(cond.uncond_text, model.encode_prompts(["blurry", "blurry"]))
        assert torch.equal(cond.anchor, model.anchor_tokens(anchor.expand(2, -1, -1, -1)))
        assert torch.equal(cond.uncond_anchor, model.grey_anchor_tokens(batch=2))
    assert not torch.equal(cond.anchor, cond.uncond_anchor)
