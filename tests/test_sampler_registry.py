"""The sampler seam: samplers by name (``sampling/registry.py``), every loop of one shape over one
denoiser, one spacing function. A sampler registered by name in a test reaches each pipeline that
samples (first chunk, CAM extension, upscaler); an unknown name is a one-line error with the choices."""

from __future__ import annotations

import argparse

import pytest
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

from streaming_core.cli.generate import add_generation_arguments
from streaming_core.errors import InputError
from streaming_core.pipelines.extend import ExtendConditioning, ExtensionSettings, extend_chunk
from streaming_core.pipelines.initial_chunk import InitialChunkSettings, generate_initial_chunk
from streaming_core.pipelines.upscale import denoise_and_decode
from streaming_core.sampling import registry
from streaming_core.sampling.ddim import sample_ddim
from streaming_core.sampling.dpm_solver import sample_dpmpp_2m
from streaming_core.schedules.discrete import DiscreteVPSchedule, spaced_timesteps
from streaming_core.tiny.modelscope import build_tiny_modelscope_unet
from streaming_core.tiny.sdvsr import build_tiny_sdvsr
from streaming_core.tiny.st2v import build_tiny_streamingt2v

SIZE = 64
BETAS = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")


@pytest.fixture(scope="module")
def st2v():
    return build_tiny_streamingt2v(seed=0)


@pytest.fixture(scope="module")
def base():
    return build_tiny_modelscope_unet(seed=0)


@pytest.fixture
def spy(monkeypatch):
    """Registers "spy_ddim" (DDIM, recording how it was called) and "zeros" (no model call at all) in a
    copy of the table, so the real registry is untouched after the test."""
    monkeypatch.setattr(registry, "SAMPLERS", dict(registry.SAMPLERS))
    calls = []

    def spy_ddim(model, x, schedule, steps, *, eta=0.0, noise=None, callback=None):
        calls.append({"prediction": schedule.prediction_type, "steps": steps, "eta": eta})
        return sample_ddim(model, x, schedule, steps, eta=eta, noise=noise, callback=callback)

    registry.register_sampler("spy_ddim", spy_ddim)
    registry.register_sampler("zeros", lambda model, x, schedule, steps, **kw: torch.zeros_like(x))
    return calls


def _conditioning() -> tuple[ExtendConditioning, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    cond = ExtendConditioning(*(torch.randn(1, n, 1024, generator=gen) for n in (77, 77, 16, 16)))
    return cond, torch.rand(1, 4, 3, SIZE, SIZE, generator=gen) * 2 - 1


# -- the table ------------------------------------------------------------------------------------------
def test_unknown_sampler_is_one_line_listing_the_choices():
    with pytest.raises(InputError) as err:
        registry.get_sampler("euler")
    message = str(err.value)
    assert "\n" not in message and "'euler'" in message
    assert all(name in message for name in ("dpmpp_2m", "ddim"))


def test_official_choices_are_registered_and_names_are_not_overwritten(spy):
    assert registry.OFFICIAL_SAMPLERS == {"initial_chunk": "dpmpp_2m", "extension": "ddim", "upscale": "ddim"}
    assert all(registry.get_sampler(name) for name in registry.OFFICIAL_SAMPLERS.values())
    with pytest.raises(ValueError, match="already registered"):
        registry.register_sampler("ddim", sample_dpmpp_2m)
    assert registry.get_sampler("ddim") is sample_ddim


def test_cli_offers_what_is_registered(spy):
    parser = argparse.ArgumentParser()
    add_generation_arguments(parser)
    assert parser.parse_args(["--prompt", "x", "--sampler", "spy_ddim"]).sampler == "spy_ddim"
    assert parser.parse_args(["--prompt", "x"]).sampler == "dpmpp_2m"


# -- a registered sampler reaches every pipeline ---------------------------------------------------------
def test_first_chunk_takes_a_registered_sampler(spy, st2v, base):
    kw = dict(steps=2, height=SIZE, width=SIZE, frames=8, eta=0.5)
    via_spy = generate_initial_chunk(base, st2v, "a boat", InitialChunkSettings(sampler="spy_ddim", **kw), seed=1)
    assert spy == [{"prediction": "epsilon", "steps": 2, "eta": 0.5}]
    assert torch.equal(via_spy, generate_initial_chunk(base, st2v, "a boat", InitialChunkSettings(sampler="ddim", **kw),
                                                       seed=1))
    with pytest.raises(InputError, match="unknown sampler 'euler'; choose one of .*spy_ddim"):
        generate_initial_chunk(base, st2v, "a boat", InitialChunkSettings(sampler="euler", **kw), seed=1)


def test_extension_takes_a_registered_sampler(spy, st2v, monkeypatch):
    cond, frames = _conditioning()
    kw = dict(frames=8, steps=2)
    via_spy = extend_chunk(st2v, frames, cond, ExtensionSettings(sampler="spy_ddim", **kw),
                           generator=torch.Generator().manual_seed(4))
    assert spy == [{"prediction": "epsilon", "steps": 2, "eta": 1.0}]  # official eta 1: the variance noise is wired
    assert torch.equal(via_spy, extend_chunk(st2v, frames, cond, ExtensionSettings(**kw),
                                             generator=torch.Generator().manual_seed(4)))
    assert torch.equal(extend_chunk(st2v, frames, cond, ExtensionSettings(sampler="zeros", **kw)),
                       torch.zeros_like(via_spy))

    def no_network(*a, **k):
        raise AssertionError("the sampler name is checked before any network runs")

    monkeypatch.setattr(st2v, "predict_noise", no_network)
    with pytest.raises(InputError, match="unknown sampler"):
        extend_chunk(st2v, frames, cond, ExtensionSettings(sampler="euler", **kw))


def test_upscaler_takes_a_registered_sampler(spy):
    models = build_tiny_sdvsr(seed=0)
    gen = torch.Generator().manual_seed(2)
    lr, noise = torch.rand(1, 3, 12, 16, generator=gen) * 2 - 1, torch.randn(1, 4, 12, 16, generator=gen)
    via_spy = denoise_and_decode(models, lr, noise, None, sampler="spy_ddim")
    assert spy == [{"prediction": "v", "steps": 4, "eta": 0.0}]
    assert torch.equal(via_spy, denoise_and_decode(models, lr, noise, None))
    zeros = denoise_and_decode(models, lr, noise, None, sampler="zeros")
    assert torch.equal(zeros, models.vae.decode(torch.zeros_like(noise), None).float())
    with pytest.raises(InputError, match="unknown sampler"):
        denoise_and_decode(models, lr, noise, None, sampler="euler")


# -- the loops against diffusers' schedulers (independent oracles) ----------------------------------------
def _fake_model(weight: torch.Tensor):
    return lambda x, t: torch.tanh(torch.einsum("bcfhw,cd->bdfhw", x, weight) * 0.3 + t / 1000.0)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_loop_is_diffusers_ddim_bit_for_bit(eta):
    gen = torch.Generator().manual_seed(3)
    model, x = _fake_model(torch.randn(4, 4, generator=gen)), torch.randn(1, 4, 3, 5, 6, generator=gen)
    draws = [torch.randn(1, 4, 3, 5, 6, generator=gen) for _ in range(6)]
    ref = DDIMScheduler(**BETAS, clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    ref.set_timesteps(6)
    expected = x.clone()
    for i, t in enumerate(ref.timesteps.tolist()):
        expected = ref.step(model(expected, t), t, expected, eta=eta, variance_noise=draws[i]).prev_sample
    seen = []
    ours = sample_ddim(model, x.clone(), DiscreteVPSchedule.from_betas(steps_offset=1), 6, eta=eta,
                       noise=draws.__getitem__, callback=lambda s: seen.append(s["t"]))
    assert torch.equal(ours, expected)
    assert seen == ref.timesteps.tolist()


def test_dpm_loop_converts_a_v_prediction_like_diffusers():
    """One x0 conversion for every prediction type: DPM-Solver++ over a v-prediction model (not an
    official combination) against diffusers' scheduler configured for it."""
    gen = torch.Generator().manual_seed(4)
    model, x = _fake_model(torch.randn(4, 4, generator=gen)), torch.randn(1, 4, 3, 5, 6, generator=gen)
    ref = DPMSolverMultistepScheduler(**BETAS, prediction_type="v_prediction", timestep_spacing="trailing")
    ref.set_timesteps(5)
    expected = x.clone()
    for t in ref.timesteps.tolist():  # elementwise steps: the (B, C, F, h, w) layout needs no reshaping
        expected = ref.step(model(expected, t), t, expected).prev_sample
    schedule = DiscreteVPSchedule.from_betas(prediction_type="v_prediction", timestep_spacing="trailing")
    ours = sample_dpmpp_2m(model, x.clone(), schedule, 5)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-6)  # the DPM trajectory test's bound
    assert not torch.equal(ours, x)


# -- one spacing function ---------------------------------------------------------------------------------
@pytest.mark.parametrize("spacing,offset", [("leading", 1), ("linspace", 0), ("trailing", 0)])
@pytest.mark.parametrize("steps", [1, 3, 7, 50])
def test_one_spacing_function_serves_ddim_and_dpm_solver(spacing, offset, steps):
    for scheduler, extra_slot in ((DDIMScheduler, False), (DPMSolverMultistepScheduler, True)):
        ref = scheduler(timestep_spacing=spacing, steps_offset=offset)
        ref.set_timesteps(steps)
        ours = spaced_timesteps(1000, steps, spacing, offset, extra_slot=extra_slot)
        assert ours.tolist() == ref.timesteps.tolist(), scheduler.__name__


def test_a_schedule_without_spacing_takes_each_samplers_default():
    """diffusers' from_config: a spacing the config never wrote is each scheduler's own default."""
    schedule = DiscreteVPSchedule.from_betas(steps_offset=1)
    assert schedule.timestep_spacing is None
    assert schedule.timesteps(50).tolist()[:2] == [981, 961]  # DDIM: leading
    assert schedule.timesteps(50, default_spacing="linspace", extra_slot=True).tolist()[:2] == [999, 979]
