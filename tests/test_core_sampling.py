"""Schedules and DDIM against diffusers' DDIMScheduler (an independent oracle), guidance algebra."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler

from streaming_core.sampling.ddim import ddim_step
from streaming_core.sampling.guidance import cfg, rescale_guidance, text_anchor_guidance
from streaming_core.schedules.discrete import DiscreteVPSchedule, modelscope_t2v_schedule, spaced_timesteps
from streaming_core.schedules.prediction import to_eps, to_x0


def test_modelscope_timesteps_are_the_official_ones():
    # spec §1.3: 50 DDIM steps give 981, 961, ..., 21, 1
    assert modelscope_t2v_schedule().timesteps(50).tolist() == list(range(981, 0, -20))


@pytest.mark.parametrize("spacing,steps", [("leading", 50), ("leading", 3), ("trailing", 4), ("linspace", 7)])
def test_spacings_match_diffusers(spacing, steps):
    ref = DDIMScheduler(timestep_spacing=spacing, steps_offset=1 if spacing == "leading" else 0)
    ref.set_timesteps(steps)
    assert spaced_timesteps(1000, steps, spacing, 1 if spacing == "leading" else 0).tolist() == ref.timesteps.tolist()


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction", "sample"])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_step_bit_identical_to_diffusers(prediction, eta):
    ours = DiscreteVPSchedule.from_betas(prediction_type=prediction, steps_offset=1)
    ref = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                        set_alpha_to_one=False, steps_offset=1, prediction_type=prediction)
    ref.set_timesteps(10)
    x = torch.randn(2, 4, 6, 6)
    for t in ref.timesteps.tolist():
        out, noise = torch.randn_like(x), torch.randn_like(x)
        expected = ref.step(out, t, x, eta=eta, variance_noise=noise).prev_sample
        got, _ = ddim_step(ours, out, t, x, 10, eta=eta, noise=noise)
        assert torch.equal(got, expected), (t, (got - expected).abs().max())
        x = expected


def test_stochastic_ddim_needs_noise():
    with pytest.raises(ValueError, match="variance noise"):
        ddim_step(modelscope_t2v_schedule(), torch.zeros(1), 981, torch.zeros(1), 50, eta=1.0)


def test_eq12_with_equal_scales_is_the_joint_cfg():
    e_null, e_anchor, e_full = torch.randn(3, 2, 4, 8)
    assert torch.allclose(text_anchor_guidance(e_null, e_anchor, e_full, 7.5, 7.5), cfg(e_null, e_full, 7.5), atol=1e-5)
    # and the anchor term really matters when the scales differ
    assert not torch.allclose(text_anchor_guidance(e_null, e_anchor, e_full, 7.5, 2.0), cfg(e_null, e_full, 7.5))


def test_guidance_rescale_matches_its_definition():
    cond, uncond = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
    guided = cfg(uncond, cond, 7.5)
    out = rescale_guidance(guided, cond, 0.2)
    for i in range(2):
        ratio = cond[i].std() / guided[i].std()
        assert torch.allclose(out[i], guided[i] * (0.2 * ratio + 0.8), atol=1e-6)
    assert torch.equal(rescale_guidance(guided, cond, 0.0), guided)


def test_one_prediction_vocabulary_reads_the_hub_spelling():
    hub = DiscreteVPSchedule.from_betas(prediction_type="v_prediction")
    ours = DiscreteVPSchedule.from_betas(prediction_type="v")
    assert hub.prediction_type == ours.prediction_type == "v"
    x, out = torch.randn(2, 4), torch.randn(2, 4)
    for convert in (to_x0, to_eps):
        assert torch.equal(convert(out, x, *hub.alpha_sigma_at(500), hub.prediction_type),
                           convert(out, x, *ours.alpha_sigma_at(500), ours.prediction_type))
    with pytest.raises(ValueError, match="unknown prediction type"):
        DiscreteVPSchedule.from_betas(prediction_type="x0")
