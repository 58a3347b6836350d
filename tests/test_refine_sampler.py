"""The randomized-blend SDEdit sampler: windows, cuts, shared noise, modes, the solver, the seam measure.

Synthetic chunk models (no network) keep these fast; the MS-Vid2Vid-XL parity fixture's recorded
UNet outputs, offsets and Brownian increments pin the official sampler exactly.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from streaming_core.metrics import seam_report, seam_score
from streaming_core.parity.report import NORMAL_DRAW_ATOL
from streaming_core.sampling.blend import chunk_windows, owner_of_frames
from streaming_core.sampling.dpmpp_sde import BrownianTreeNoise, GaussianStepNoise, sample_dpmpp_2m_sde
from streaming_core.sampling.guided_model import guided_chunk_model
from streaming_core.sampling.sdedit import SDEditReplay, SDEditSettings, sdedit_windows
from streaming_core.schedules.prediction import to_eps, to_x0
from streaming_core.schedules.vp_sigmas import VPSigmaTable, strength_to_timestep

TABLE = VPSigmaTable.ms_vid2vid()



@pytest.fixture(scope="module")
def fixture_io(shared_dir):
    return load_file(str(shared_dir / "fixtures" / "msvid2vid_parity" / "io.safetensors"))


class WindowIndexModel:
    """x0-prediction equal to the index of the window being predicted (calls come window by window)."""

    def __init__(self, windows):
        self.windows, self.calls = windows, 0

    def __call__(self, chunk, t):
        k = self.calls % len(self.windows)
        assert chunk.shape[2] == self.windows[k].length
        self.calls += 1
        return torch.full_like(chunk, float(k))


def position_model(chunk, t):
    """Per-frame x0 that depends on the frame's position inside its chunk (no mixing across frames)."""
    alpha, sigma = TABLE.alpha_sigma_at(t)
    pos = torch.arange(chunk.shape[2], dtype=chunk.dtype).view(1, 1, -1, 1, 1)
    return 0.7 * chunk / alpha + 0.05 * pos


def chunk_mean_model(chunk, t):
    """x0 pulled towards the chunk's own temporal mean, strongly at high noise: neighbouring chunks
    disagree in their overlaps, so a hard cut at a fixed place leaves a seam."""
    alpha, sigma = TABLE.alpha_sigma_at(t)
    est = chunk / alpha
    w = float(sigma)
    return w * est.mean(dim=2, keepdim=True).expand_as(est) + (1 - w) * est / (1 + (sigma / alpha) ** 2)


def ramp_video(frames: int, hw: int = 8) -> torch.Tensor:
    return (2 * torch.linspace(0, 1, frames)).view(1, 1, -1, 1, 1).expand(1, 4, frames, hw, hw).clone()


# -- schedule facts -------------------------------------------------------------------------------------
def test_official_strength_and_sigmas():
    assert strength_to_timestep(0.6, TABLE) == 599  # the official t = randint(599, 600)
    sigmas = TABLE.sdedit_sigmas(599, 30)
    assert sigmas.shape == (31,) and sigmas[-1] == 0  # 30 solver iterations (spec §6.5)
    assert sigmas[0].item() == pytest.approx(4.1648, abs=1e-4) and sigmas[-2].item() == pytest.approx(0.1229, abs=1e-4)
    assert TABLE.sigma_vp[599].item() == pytest.approx(0.97236, abs=1e-5)  # spec §6.2
    assert TABLE.alpha_vp[599].item() == pytest.approx(0.23347, abs=1e-5)
    assert strength_to_timestep(1.0, TABLE) == TABLE.max_finite_timestep() == 998  # t=999 is pure noise


@pytest.mark.parametrize("prediction", ["v", "epsilon", "sample"])
def test_prediction_types_recover_the_clean_latent_and_the_noise(prediction):
    z, eps = torch.randn(2, 4, 3, 5, 5), torch.randn(2, 4, 3, 5, 5)
    alpha, sigma = TABLE.alpha_sigma_at(400)
    x = alpha * z + sigma * eps
    output = {"v": alpha * eps - sigma * z, "epsilon": eps, "sample": z}[prediction]
    assert torch.allclose(to_x0(output, x, alpha, sigma, prediction), z, atol=1e-5)
    assert torch.allclose(to_eps(output, x, alpha, sigma, prediction), eps, atol=1e-5)


# -- windows and cuts -------------------------------------------------------------------------------------
@pytest.mark.parametrize("frames,chunk,overlap", [(40, 24, 8), (56, 24, 8), (24, 24, 8), (30, 24, 8), (47, 16, 6),
                                                  (13, 8, 3)])
def test_every_frame_comes_from_exactly_one_window_that_contains_it(frames, chunk, overlap):
    windows = chunk_windows(frames, chunk, overlap)
    assert windows[0].start == 0 and windows[-1].end == frames
    assert all(w.length == chunk for w in windows)
    if (frames - overlap) % (chunk - overlap) == 0:  # the official tiling: starts every chunk - overlap
        assert [w.start for w in windows] == list(range(0, frames - chunk + 1, chunk - overlap))
    model = WindowIndexModel(windows)
    seen = []
    sdedit_windows(model, torch.zeros(1, 4, frames, 2, 2), TABLE,
                   SDEditSettings(599, 6, chunk=chunk, overlap=overlap, seed=3, eta=0.0), prediction_type="sample",
                   observer=lambda step, x_in, x0: seen.append(x0[0, 0, :, 0, 0].round().long().tolist()))
    assert model.calls == 6 * len(windows)
    for owners in seen:
        for f, k in enumerate(owners):
            assert windows[k].start <= f < windows[k].end
        # owners never go back: each window takes over from its cut on
        assert owners == sorted(owners) and owners[0] == 0 and owners[-1] == len(windows) - 1


def cuts_per_step(frames, chunk, overlap, mode, steps=12, seed=0):
    windows = chunk_windows(frames, chunk, overlap)
    cuts = []

    def observe(step, x_in, x0):
        owners = x0[0, 0, :, 0, 0].round().long().tolist()
        cuts.append([owners.index(k) - windows[k].start for k in range(1, len(windows))])

    sdedit_windows(WindowIndexModel(windows), torch.zeros(1, 4, frames, 2, 2), TABLE,
                   SDEditSettings(599, steps, chunk=chunk, overlap=overlap, mode=mode, seed=seed, eta=0.0),
                   prediction_type="sample", observer=observe)
    return windows, cuts


def test_random_cut_stays_inside_the_overlap_and_changes_every_step():
    windows, cuts = cuts_per_step(56, 24, 8, "randomized")
    assert len(cuts) == 12
    for row in cuts:
        assert all(0 <= c < 8 for c in row)  # the later window writes from start + offset, offset in [0, 7]
    per_overlap = list(zip(*cuts))
    assert all(len(set(column)) > 2 for column in per_overlap)  # a new draw per overlap per step
    assert cuts != cuts_per_step(56, 24, 8, "randomized", seed=1)[1]
    assert cuts == cuts_per_step(56, 24, 8, "randomized")[1]  # seeded


def test_frames_outside_overlaps_equal_a_single_chunk_run():
    frames, chunk, overlap = 40, 16, 4
    windows = chunk_windows(frames, chunk, overlap)  # [0,16) [12,28) [24,40)
    z0 = torch.randn(1, 4, frames, 3, 3)
    noise = torch.randn(1, 4, frames, 3, 3)
    brownian = [torch.randn(1, 4, frames, 3, 3) for _ in range(4)]
    settings = SDEditSettings(599, 5, chunk=chunk, overlap=overlap, mode="randomized", seed=7)
    full = sdedit_windows(position_model, z0, TABLE, settings, prediction_type="sample",
                          replay=SDEditReplay(noise, brownian=brownian))
    in_overlap = torch.zeros(frames, dtype=torch.bool)
    for prev, cur in zip(windows[:-1], windows[1:]):
        in_overlap[cur.start:prev.end] = True
    for w in windows:
        part = slice(w.start, w.end)
        single = sdedit_windows(position_model, z0[:, :, part], TABLE, settings, prediction_type="sample",
                                replay=SDEditReplay(noise[:, :, part], brownian=[b[:, :, part] for b in brownian]))
        own = ~in_overlap[part]
        assert own.any()
        assert torch.equal(full[:, :, part][:, :, own], single[:, :, own])
        # inside the overlaps the blend really changes things
        if in_overlap[part].any():
            assert not torch.equal(full[:, :, part][:, :, ~own], single[:, :, ~own])


@pytest.mark.parametrize("sde_noise", ["brownian", "gaussian"])
def test_shared_noise_is_separate_runs_on_one_noise_cut_in_the_middle(sde_noise):
    """The paper's shared-noise baseline: each window sampled on its own from the whole video's noise
    (init and SDE), nothing fused while sampling, the results concatenated at the overlaps' middles."""
    frames, chunk, overlap = 40, 16, 4
    windows = chunk_windows(frames, chunk, overlap)  # [0,16) [12,28) [24,40)
    z0 = torch.randn(1, 4, frames, 3, 3)
    noise = torch.randn(1, 4, frames, 3, 3)
    settings = SDEditSettings(599, 5, chunk=chunk, overlap=overlap, seed=7, sde_noise=sde_noise, sde_seed=3)
    out = sdedit_windows(position_model, z0, TABLE, replace(settings, mode="shared_noise"), prediction_type="sample",
                         replay=SDEditReplay(noise))
    # the SDE noise of a window is the whole video's noise at its frames: replay those increments
    if sde_noise == "gaussian":
        source = GaussianStepNoise(z0, 3)
        increments = [source(i, None, None) for i in range(5)]
    else:
        sigmas = TABLE.sdedit_sigmas(599, 5)
        tree = BrownianTreeNoise(z0, sigmas, 3)
        increments = [tree(i, sigmas[i], sigmas[i + 1]) for i in range(len(sigmas) - 2)]
    singles = [sdedit_windows(position_model, z0[:, :, w.start:w.end], TABLE, settings, prediction_type="sample",
                              replay=SDEditReplay(noise[:, :, w.start:w.end],
                                                  brownian=[n[:, :, w.start:w.end] for n in increments]))
               for w in windows]
    owner = owner_of_frames(windows, [overlap // 2] * (len(windows) - 1))
    for f in range(frames):
        w = windows[owner[f]]
        assert torch.allclose(out[:, :, f], singles[owner[f]][:, :, f - w.start], atol=1e-6), f
    # and it is not the randomized blend: that one couples the windows at every step
    blended = sdedit_windows(position_model, z0, TABLE, settings, prediction_type="sample", replay=SDEditReplay(noise))
    assert not torch.allclose(out, blended)


def test_the_seed_controls_the_gaussian_sde_noise_and_it_is_not_the_init_noise():
    z0 = ramp_video(40, 4)
    kw = dict(t_start=599, steps=4, chunk=16, overlap=8, sde_noise="gaussian")
    seen = []
    original = GaussianStepNoise.__call__

    def spy(self, i, sigma, sigma_next):
        seen.append(original(self, i, sigma, sigma_next))
        return seen[-1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(GaussianStepNoise, "__call__", spy)
        sdedit_windows(chunk_mean_model, z0, TABLE, SDEditSettings(seed=0, **kw), prediction_type="sample")
        first = seen[0]
        seen.clear()
        sdedit_windows(chunk_mean_model, z0, TABLE, SDEditSettings(seed=1, **kw), prediction_type="sample")
    init_noise = torch.randn(z0.shape, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(first, init_noise)  # a stream of its own, not the initial noise again
    assert not torch.equal(first, seen[0])  # another seed, other SDE noise


def test_same_seed_same_output_and_modes_differ():
    z0 = ramp_video(40, 4)
    def run(**kw):
        return sdedit_windows(chunk_mean_model, z0, TABLE, SDEditSettings(599, 4, chunk=16, overlap=8, **kw),
                              prediction_type="sample")

    a = run(seed=5)  # Brownian tree SDE noise (official kind)
    b = run(seed=5)
    assert torch.equal(a, b)
    assert not torch.equal(a, run(seed=6))
    assert not torch.equal(a, run(seed=5, sde_seed=1))
    outs = {m: run(seed=5, mode=m) for m in ("randomized", "shared_noise", "independent")}
    assert not torch.equal(outs["randomized"], outs["shared_noise"])
    assert not torch.equal(outs["shared_noise"], outs["independent"])
    assert all(o.shape == z0.shape and torch.isfinite(o).all() for o in outs.values())
    gaussian = run(seed=5, sde_noise="gaussian")
    assert torch.equal(gaussian, run(seed=5, sde_noise="gaussian"))


def test_bad_sampler_options_are_refused():
    z0 = torch.zeros(1, 4, 20, 2, 2)
    def run(**kw):
        return sdedit_windows(chunk_mean_model, z0, TABLE, SDEditSettings(599, 2, **kw), prediction_type="sample")

    with pytest.raises(ValueError, match="overlap"):
        run(chunk=8, overlap=8)
    with pytest.raises(ValueError, match="fewer than one chunk"):
        run(chunk=24, overlap=8)
    with pytest.raises(ValueError, match="blend mode"):
        run(chunk=8, overlap=4, mode="pyramid")
    with pytest.raises(ValueError, match="sde_noise"):
        run(chunk=8, overlap=4, sde_noise="pink")


# -- the seam measure --------------------------------------------------------------------------------------
def test_seam_measure_sees_a_jump_at_a_border_and_not_elsewhere():
    windows = chunk_windows(40, 16, 8)
    smooth = ramp_video(40)[0].permute(1, 2, 3, 0)  # (F, H, W, C)
    assert seam_score(smooth, windows) == pytest.approx(1.0, abs=1e-4)
    jump_at_border = smooth.clone()
    jump_at_border[12:] += 1.0  # inside the overlap [8, 16)
    assert seam_score(jump_at_border, windows) > 100
    jump_elsewhere = smooth.clone()
    jump_elsewhere[5:] += 1.0  # between frames 4 and 5: no overlap there
    report = seam_report(jump_elsewhere, windows)
    assert report.score < 2 and len(report.per_overlap) == len(windows) - 1
    latents = ramp_video(40)
    latents[:, :, 20:] += 1.0  # latent layout (B, C, F, h, w), overlap [16, 24)
    assert seam_score(latents, windows) > 100


def test_seam_ordering_randomized_below_shared_noise_below_independent():
    z0 = ramp_video(40)
    windows = chunk_windows(40, 16, 8)
    scores = {}
    for mode in ("randomized", "shared_noise", "independent"):
        runs = [sdedit_windows(chunk_mean_model, z0, TABLE, SDEditSettings(599, 10, chunk=16, overlap=8, mode=mode,
                                                                          seed=seed, sde_noise="gaussian"),
                               prediction_type="sample")
                for seed in range(3)]
        scores[mode] = sum(seam_score(r, windows) for r in runs) / len(runs)
    assert scores["randomized"] < scores["shared_noise"] < scores["independent"], scores
    assert scores["randomized"] < 0.8 * scores["shared_noise"]


# -- the official sampler, replayed from the parity fixture --------------------------------------------------
def test_brownian_tree_gives_the_official_increments(fixture_io):
    sigmas = fixture_io["c1.sigmas"]
    tree = BrownianTreeNoise(fixture_io["c1.z0"], sigmas, seed=0)
    for i in range(2):
        # the same random bits as official; the normals carry the CPU kernel path's last bits (NORMAL_DRAW_ATOL)
        torch.testing.assert_close(tree(i, sigmas[i], sigmas[i + 1]), fixture_io[f"c1.brownian.{i}"],
                                   atol=NORMAL_DRAW_ATOL, rtol=0)


def test_official_3_step_sampler_from_recorded_unet_outputs(fixture_io):
    """Feed our guidance + sampler the official UNet outputs (recorded per call): every model input,
    every blended x0 and the final latent must match, with the recorded cuts and increments."""
    io = fixture_io
    steps, windows = 3, chunk_windows(56, 24, 8)

    def run(offsets):
        calls, record = [], {}

        def recorded_network(x, t, y):
            step, k = divmod(len(calls), len(windows))
            calls.append((x, t))
            return torch.cat([io[f"c1.unet_v.{step}.{k}.cond"], io[f"c1.unet_v.{step}.{k}.uncond"]])

        model = guided_chunk_model(recorded_network, io["text.y_cond"], io["text.y_uncond"], 7.5, 0.2)
        final = sdedit_windows(model, io["c1.z0"], TABLE, SDEditSettings(int(io["c1.t_sdedit"]), steps, chunk=24,
                                                                         overlap=8),
                               prediction_type="v",
                               replay=SDEditReplay(io["c1.noise"], offsets, [io["c1.brownian.0"], io["c1.brownian.1"]]),
                               observer=lambda i, x_in, x0: record.update({("in", i): x_in, ("x0", i): x0}))
        return final, calls, record

    final, calls, record = run(io["c1.offsets"].tolist())
    assert len(calls) == steps * len(windows)
    for n, (x, t) in enumerate(calls):
        step, k = divmod(n, len(windows))
        assert x.shape[0] == 2 and torch.equal(x[0], x[1])  # cond and uncond batched
        assert int(t[0]) == int(io["c1.t_per_iter"][step])
        w = windows[k]
        assert torch.allclose(x[:1], io[f"c1.model_in.{step}"][:, :, w.start:w.end], rtol=1e-4, atol=2e-4)
    for i in range(steps):
        assert torch.allclose(record[("in", i)], io[f"c1.model_in.{i}"], rtol=1e-4, atol=2e-4)
        assert torch.allclose(record[("x0", i)], io[f"c1.denoised.{i}"], rtol=1e-4, atol=2e-4)
    assert torch.allclose(final, io["c1.final"], rtol=1e-4, atol=2e-4)
    # the recorded cuts matter: with other cuts the result is far off
    other, _, _ = run([[0, 0, 0]] * steps)
    assert (other - io["c1.final"]).abs().max() > 1e-2


def test_solver_reaches_a_fixed_clean_estimate():
    """With a denoiser that always answers z, DPM++ 2M SDE ends exactly at z (last step x = x0)."""
    z = torch.randn(1, 4, 6, 3, 3)
    sigmas = TABLE.sdedit_sigmas(599, 7)
    x = torch.randn_like(z) * sigmas[0]
    out = sample_dpmpp_2m_sde(lambda x, s: z, x, sigmas, lambda i, a, b: torch.randn_like(z))
    assert torch.equal(out, z)
    with pytest.raises(ValueError, match="noise source"):
        sample_dpmpp_2m_sde(lambda x, s: z, x, sigmas, None)
