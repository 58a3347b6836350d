"""The first chunk's DPM-Solver++ against diffusers' DPMSolverMultistepScheduler as an oracle,
configured the way the official code configures it: from the ModelScope DDIM scheduler's config."""

from __future__ import annotations

import pytest
import torch

from streaming_core.sampling.dpm_solver import dpm_solver_plan, dpmpp_2m_step, sample_dpmpp_2m, vp_alpha_sigma
from streaming_core.schedules.discrete import modelscope_t2v_schedule
from streaming_core.schedules.prediction import to_x0

# text-to-video-ms-1.7b scheduler/scheduler_config.json as the spec gives it (§1.3): no timestep_spacing key
HUB_DDIM_CONFIG = {
    "_class_name": "DDIMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
    "clip_sample": False, "num_train_timesteps": 1000, "prediction_type": "epsilon", "set_alpha_to_one": False,
    "skip_prk_steps": True, "steps_offset": 1, "trained_betas": None,
}


def official_scheduler():
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    ddim = DDIMScheduler.from_config(HUB_DDIM_CONFIG)  # what DDIMScheduler.from_pretrained(repo) builds
    return DPMSolverMultistepScheduler.from_config(ddim.config)  # the official first-chunk line


def fake_eps(x: torch.Tensor, t: int, weight: torch.Tensor) -> torch.Tensor:
    """A smooth nonlinear stand-in for a UNet, depending on x and t."""
    return torch.tanh(torch.einsum("bcfhw,cd->bdfhw", x, weight) * 0.3 + t / 1000.0)


def test_official_config_ends_up_dpmsolverpp_order2_linspace():
    s = official_scheduler()
    assert (s.config.algorithm_type, s.config.solver_order, s.config.lower_order_final) == ("dpmsolver++", 2, True)
    assert s.config.timestep_spacing == "linspace"  # DDIM's "leading" was only a default: not carried over
    s.set_timesteps(50)
    plan = dpm_solver_plan(modelscope_t2v_schedule(), 50)
    assert plan.timesteps[:3].tolist() == [999, 979, 959] and plan.timesteps[-1].item() == 20


@pytest.mark.parametrize("steps", [1, 2, 3, 7, 14, 15, 50])
def test_plan_equals_diffusers(steps):
    s = official_scheduler()
    s.set_timesteps(steps)
    plan = dpm_solver_plan(modelscope_t2v_schedule(), steps)
    assert torch.equal(plan.timesteps, s.timesteps)
    assert torch.equal(plan.sigmas, s.sigmas)


@pytest.mark.parametrize("steps", [1, 2, 5, 20])
def test_trajectory_equals_diffusers(steps):
    gen = torch.Generator().manual_seed(steps)
    weight = torch.randn(4, 4, generator=gen)
    x_ref = torch.randn(1, 4, 3, 5, 6, generator=gen)
    s = official_scheduler()
    s.set_timesteps(steps)

    x = x_ref.clone()
    for t in s.timesteps.tolist():  # the diffusers pipeline's loop: (B, C, F, h, w) -> frame-major step
        eps = fake_eps(x, t, weight)
        b, c, f, h, w = x.shape
        flat = lambda v: v.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)  # noqa: E731
        x = s.step(flat(eps), t, flat(x)).prev_sample.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)

    ours = sample_dpmpp_2m(lambda v, t: fake_eps(v, t, weight), x_ref.clone(), modelscope_t2v_schedule(), steps)
    torch.testing.assert_close(ours, x, rtol=0, atol=1e-6)
    assert not torch.equal(ours, x_ref)


def test_second_order_step_uses_history():
    plan = dpm_solver_plan(modelscope_t2v_schedule(), 5)
    x = torch.randn(2, 3)
    x0 = torch.randn(2, 3)
    with pytest.raises(ValueError):
        dpmpp_2m_step(x, x0, plan, 2)  # second order without the previous prediction
    a = dpmpp_2m_step(x, x0, plan, 2, previous_x0=torch.zeros(2, 3))
    b = dpmpp_2m_step(x, x0, plan, 2, previous_x0=torch.ones(2, 3))
    assert not torch.equal(a, b)
    assert plan.order(0) == 1 and plan.order(4) == 1 and plan.order(2) == 2
    # the final step lands on the data prediction (final sigma 0)
    torch.testing.assert_close(dpmpp_2m_step(x, x0, plan, 4, previous_x0=x0 * 2), x0)


def test_x0_from_a_noise_prediction_inverts_the_noising():
    plan = dpm_solver_plan(modelscope_t2v_schedule(), 10)
    sigma = plan.sigmas[3]
    alpha = 1 / (sigma**2 + 1) ** 0.5
    x0, eps = torch.randn(4, 4), torch.randn(4, 4)
    x = alpha * x0 + sigma * alpha * eps
    torch.testing.assert_close(to_x0(eps, x, *vp_alpha_sigma(sigma), "epsilon"), x0, rtol=1e-5, atol=1e-5)
