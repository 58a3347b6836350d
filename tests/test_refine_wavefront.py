"""The wavefront refiner computes what lock-step computes, bit for bit, with bounded state.

Lock-step (``sdedit_windows``) is fed the keyed draws (``lockstep_draws``) as recorded replays; the
wavefront draws them itself in its own order. Both run the same per-element kernels on the same
window tensors (the models below make their input contiguous first, so a window sliced out of the
whole video and one stacked from frames reach the same kernels), hence bitwise equality on CPU fp32.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from streaming_core.sampling.blend import chunk_windows
from streaming_core.sampling.keyed_draws import lockstep_draws
from streaming_core.sampling.sdedit import SDEditReplay, SDEditSettings, sdedit_windows
from streaming_core.schedules.vp_sigmas import VPSigmaTable
from streaming_core.sampling.wavefront import WavefrontSDEdit, wavefront_sdedit

TABLE = VPSigmaTable.ms_vid2vid()
MODES = ("randomized", "shared_noise", "independent")


def mixing_model(chunk, t):
    """A v-prediction that mixes frames inside the window (temporal mean and a shifted neighbour) and
    depends on the frame's position in it, so cuts, windows and order all change the result."""
    chunk = chunk.contiguous()
    pos = torch.arange(chunk.shape[2], dtype=chunk.dtype).view(1, 1, -1, 1, 1)
    mean = chunk.mean(dim=2, keepdim=True)
    shifted = torch.roll(chunk, 1, dims=2)
    return torch.tanh(0.6 * chunk - 0.3 * mean + 0.2 * shifted) + 0.01 * pos * (t / 1000)


def video_latents(frames: int, seed: int = 0, hw: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 4, frames, hw, hw, generator=g) * 0.5 + torch.linspace(-1, 1, frames).view(1, 1, -1, 1, 1)


def settings(chunk, overlap, mode, steps, seed=3, sde_seed=None, eta=1.0, init="modelscope") -> SDEditSettings:
    """One settings object for both samplers (Gaussian SDE noise: the wavefront's kind)."""
    return SDEditSettings(599, steps, chunk=chunk, overlap=overlap, mode=mode, seed=seed, sde_seed=sde_seed,
                          sde_noise="gaussian", eta=eta, init=init)


def lockstep(model, z0, chunk, overlap, mode, steps, prediction_type="v", **kw):
    windows = chunk_windows(z0.shape[2], chunk, overlap)
    run = settings(chunk, overlap, mode, steps, **kw)
    draws = SDEditReplay(*lockstep_draws(z0[:, :, 0].shape, windows, mode, run.seed, run.sde_seed, steps))
    return sdedit_windows(model, z0, TABLE, run, prediction_type=prediction_type, replay=draws)


def wavefront(model, z0, chunk, overlap, mode, steps, prediction_type="v", **kw):
    parts = list(wavefront_sdedit(model, z0, TABLE, settings(chunk, overlap, mode, steps, **kw),
                                  prediction_type=prediction_type))
    return torch.cat(parts, dim=2)


# lengths: one chunk, an overlap-sized remainder (the last window moves back), 20 windows
CASES = [(8, 4, 8), (8, 4, 8 + 4 * 3 + 4), (8, 4, 4 * 20 + 4), (6, 2, 6), (6, 2, 6 + 4 * 2 + 2), (6, 2, 4 * 20 + 2),
         (5, 3, 5 + 2 * 19), (7, 0, 21)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("chunk,overlap,frames", CASES)
def test_wavefront_equals_lockstep_bitwise(mode, chunk, overlap, frames):
    z0 = video_latents(frames)
    expected = lockstep(mixing_model, z0, chunk, overlap, mode, steps=4)
    got = wavefront(mixing_model, z0, chunk, overlap, mode, steps=4)
    assert got.shape == expected.shape
    assert torch.equal(got, expected)


@pytest.mark.parametrize("steps,eta,init,prediction_type,sde_seed", [
    (1, 1.0, "modelscope", "v", None), (2, 0.0, "exact", "epsilon", None), (5, 0.5, "exact", "sample", None),
    (3, 1.0, "modelscope", "v", 11)])
def test_wavefront_equals_lockstep_for_other_solver_settings(steps, eta, init, prediction_type, sde_seed):
    z0 = video_latents(30, seed=1)
    for mode in MODES:
        kw = dict(steps=steps, eta=eta, init=init, prediction_type=prediction_type, sde_seed=sde_seed)
        assert torch.equal(wavefront(mixing_model, z0, 8, 3, mode, **kw), lockstep(mixing_model, z0, 8, 3, mode, **kw))


def test_the_keyed_draws_change_with_the_seed_and_between_modes():
    z0 = video_latents(20)
    a = wavefront(mixing_model, z0, 8, 4, "randomized", steps=3, seed=0)
    b = wavefront(mixing_model, z0, 8, 4, "randomized", steps=3, seed=1)
    c = wavefront(mixing_model, z0, 8, 4, "randomized", steps=3, seed=0, sde_seed=5)
    assert not torch.equal(a, b) and not torch.equal(a, c)
    assert (a - b).abs().max() > 0.05  # a different seed is a different sample, not a rounding difference
    # shared noise: overlapping frames of neighbouring windows start from the same noise, independent: not
    windows = chunk_windows(20, 8, 4)
    shared, _, _ = lockstep_draws((1, 4, 3, 3), windows, "shared_noise", 0, None, 2)
    independent, _, _ = lockstep_draws((1, 4, 3, 3), windows, "independent", 0, None, 2)
    assert shared.shape[2] == 20 and independent.shape[2] == 8 * len(windows)
    assert not torch.equal(independent[:, :, 4:8], independent[:, :, 8:12])  # window 0's tail vs window 1's head


@pytest.mark.parametrize("mode", MODES)
def test_state_is_bounded_by_steps_plus_two_windows_on_a_20_window_video(mode):
    chunk, overlap, steps = 8, 4, 6
    frames = (chunk - overlap) * 20 + overlap
    z0 = video_latents(frames)
    source_reads = []

    def source(start):  # read in slices of 3 frames, as a VAE encodes them
        for a in range(start, frames, 3):
            source_reads.append(a)
            yield z0[:, :, a:a + 3]

    sampler = WavefrontSDEdit(mixing_model, source, frames, TABLE, settings(chunk, overlap, mode, steps, seed=3),
                              prediction_type="v")
    first_final_at, out = None, []
    for part in sampler.run():
        if part is not None:
            if first_final_at is None:
                first_final_at = sampler.read
            out.append(part)
    assert len(chunk_windows(frames, chunk, overlap)) == 20
    assert sampler.max_held <= (steps + 2) * chunk, sampler.max_held
    assert sampler.max_held < frames  # not the whole video (84 frames)
    assert first_final_at < frames // 2  # the first frames leave while the video is still being read
    assert torch.equal(torch.cat(out, dim=2), lockstep(mixing_model, z0, chunk, overlap, mode, steps=steps))


@pytest.mark.parametrize("mode", MODES)
def test_a_run_restored_from_a_snapshot_yields_what_the_uninterrupted_run_yields(mode):
    chunk, overlap, steps, frames = 6, 2, 3, 4 * 9 + 2
    z0 = video_latents(frames, seed=4)
    calls = []

    def source(start):
        calls.append(start)
        for a in range(start, frames, 4):
            yield z0[:, :, a:a + 4]

    run = settings(chunk, overlap, mode, steps, seed=9)
    full = torch.cat([p for p in WavefrontSDEdit(mixing_model, source, frames, TABLE, run,
                                                 prediction_type="v").run() if p is not None], 2)
    first = WavefrontSDEdit(mixing_model, source, frames, TABLE, run, prediction_type="v")
    head = []
    for i, part in enumerate(first.run()):
        if part is not None:
            head.append(part)
        if i == 13:
            tensors, meta = first.snapshot()
            break
    assert first.read % 4 == 0 or first.read >= frames  # the source restarts at a slice boundary
    resumed = WavefrontSDEdit(mixing_model, source, frames, TABLE, run, prediction_type="v",
                              state={"tensors": tensors, "meta": meta})
    tail = [p for p in resumed.run() if p is not None]
    assert calls[-1] == meta["read"]
    assert torch.equal(torch.cat(head + tail, dim=2), full)
    with pytest.raises(ValueError, match="seed"):
        WavefrontSDEdit(mixing_model, source, frames, TABLE, replace(run, seed=10), prediction_type="v",
                        state={"tensors": tensors, "meta": meta})
    with pytest.raises(ValueError, match="gaussian"):  # the Brownian tree is one whole-video draw: lock-step only
        WavefrontSDEdit(mixing_model, source, frames, TABLE, replace(run, sde_noise="brownian"), prediction_type="v")
