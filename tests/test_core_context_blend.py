"""The hard-cut fuse used inside a host sampler's context windows (streaming_core.sampling.context_blend)."""

from __future__ import annotations

import random

import pytest
import torch

from streaming_core.errors import InputError
from streaming_core.sampling.blend import (chunk_windows, draw_offsets, fuse_hard_cut, overlaps, owner_of_frames,
                                           write_window)
from streaming_core.sampling.context_blend import cut_offsets, latent_frames, latent_window, locate_step, step_rng


@pytest.mark.parametrize("pixels, ratio, latent", [
    (1, 4, 1), (4, 4, 1), (5, 4, 2), (81, 4, 21), (25, 4, 7), (97, 8, 13), (121, 8, 16), (33, 8, 5),
    (163, 6, 28), (16, 1, 16), (0, 4, 0),
])
def test_latent_frames_follow_causal_vae_rule(pixels, ratio, latent):
    assert latent_frames(pixels, ratio) == latent


def test_latent_window_converts_and_rejects_impossible_overlaps():
    assert latent_window(81, 25, 4) == (21, 7)
    assert latent_window(24, 8, 1) == (24, 8)
    assert latent_window(97, 0, 8) == (13, 0)
    with pytest.raises(InputError, match="lower context_overlap"):
        latent_window(33, 33, 4)
    with pytest.raises(InputError, match="raise context_length"):
        latent_window(4, 0, 4)
    with pytest.raises(InputError):
        latent_frames(10, 0)


@pytest.mark.parametrize("frames, chunk, overlap", [
    (40, 24, 8),   # official tiling: 24 + 16k
    (13, 5, 3),    # tiles exactly (stride 2)
    (45, 21, 9),   # Wan-like: tiles exactly
    (41, 21, 7),   # does not tile: the last window moves back
    (30, 24, 8),
    (21, 21, 7),   # one window
])
def test_windows_cover_every_frame_for_tiling_and_non_tiling_lengths(frames, chunk, overlap):
    windows = chunk_windows(frames, chunk, overlap)
    assert windows[0].start == 0 and windows[-1].end == frames
    assert all(w.length == chunk for w in windows)
    assert all(ov >= overlap for ov in overlaps(windows))
    covered = set()
    for w in windows:
        covered.update(range(w.start, w.end))
    assert covered == set(range(frames))
    tiles = (frames - overlap) % (chunk - overlap) == 0
    assert (overlaps(windows) == [overlap] * (len(windows) - 1)) == tiles or len(windows) == 1


def test_randomized_cuts_fall_inside_each_overlap_and_use_all_of_it():
    windows = chunk_windows(41, 21, 7)  # overlaps 7 and 15 (the last window moved back)
    seen = [set() for _ in overlaps(windows)]
    for step in range(400):
        for i, (ov, off) in enumerate(zip(overlaps(windows), cut_offsets(windows, "randomized", seed=3, step=step))):
            assert 0 <= off <= ov - 1
            seen[i].add(off)
    assert seen == [set(range(ov)) for ov in overlaps(windows)]


def test_middle_cut_ignores_seed_and_step():
    windows = chunk_windows(45, 21, 9)
    assert cut_offsets(windows, "middle", seed=1, step=0) == cut_offsets(windows, "middle", seed=9, step=7) == [4, 4]


def test_cuts_are_reproducible_from_seed_and_step_only():
    windows = chunk_windows(100, 16, 8)
    first = [cut_offsets(windows, "randomized", seed=42, step=s) for s in range(10)]
    random.seed(0)
    random.random()
    torch.manual_seed(123)
    again = [cut_offsets(windows, "randomized", seed=42, step=s) for s in reversed(range(10))][::-1]
    assert first == again
    assert len({tuple(c) for c in first}) > 1, "cuts must change from step to step"
    assert first != [cut_offsets(windows, "randomized", seed=43, step=s) for s in range(10)]
    assert cut_offsets(windows, "randomized", 42, 3, salt=0) != cut_offsets(windows, "randomized", 42, 3, salt=77)
    # the generator is the official draw (random.randint over the overlap) on a seeded Random
    assert first[5] == draw_offsets(windows, "randomized", step_rng(42, 5))


def test_unknown_mode_is_a_clear_error():
    with pytest.raises(InputError, match="unknown hard-cut mode"):
        cut_offsets(chunk_windows(20, 8, 4), "pyramid", 0, 0)


@pytest.mark.parametrize("frames, chunk, overlap, dim", [(40, 24, 8, 2), (41, 21, 7, 2), (13, 5, 3, 0), (30, 24, 8, 1)])
def test_streamed_writes_equal_fuse_hard_cut_and_give_each_frame_one_owner(frames, chunk, overlap, dim):
    windows = chunk_windows(frames, chunk, overlap)
    offsets = cut_offsets(windows, "randomized", seed=5, step=2)
    shape = [2, 3, 4, 2, 2]
    shape[dim] = frames
    # window i's output at window position p is i * 1000 + (start + p): readable ownership
    outputs = []
    for i, w in enumerate(windows):
        wshape = list(shape)
        wshape[dim] = w.length
        idx = torch.arange(w.start, w.end, dtype=torch.float32) + 1000 * i
        view = [1] * len(shape)
        view[dim] = w.length
        outputs.append(idx.view(view).expand(wshape).clone())
    out = torch.full(shape, float("nan"))
    for i, value in enumerate(outputs):
        write_window(out, value, windows, offsets, i, dim)
    assert not torch.isnan(out).any(), "every frame is written"
    assert torch.equal(out, fuse_hard_cut(outputs, windows, offsets, dim))
    frame_values = out.movedim(dim, 0).reshape(frames, -1)[:, 0]
    owners = owner_of_frames(windows, offsets)
    assert frame_values.tolist() == [1000 * owners[f] + f for f in range(frames)]
    for f in range(frames):  # the owner covers the frame and no later window starts owning it
        assert windows[owners[f]].start <= f < windows[owners[f]].end


def test_locate_step_matches_schedule_and_salts_midpoints():
    sigmas = [14.6, 7.0, 3.1, 1.0, 0.0]
    assert locate_step(sigmas, 14.6) == (0, 0)
    assert locate_step(sigmas, 3.1 * (1 + 5e-5)) == (2, 0)
    step, salt = locate_step(sigmas, 2.0)  # dpm_2-style midpoint between 3.1 and 1.0
    assert step == 2 and salt != 0
    assert locate_step(sigmas, 2.0) == (step, salt)
    assert locate_step(sigmas, 1.5)[1] != salt
    assert locate_step(sigmas, 20.0)[0] == 0
    assert locate_step([], 1.0)[0] == 0


def _toy_denoiser(x_window: torch.Tensor, sigma: float) -> torch.Tensor:
    """Mixes frames inside its window (like a video model), so windows disagree in the overlaps."""
    return torch.tanh(x_window * 0.5 + x_window.mean(dim=2, keepdim=True) * (1 + sigma))


def test_fusing_denoised_equals_blending_chunk_latents_for_euler_with_shared_noise():
    """The claim in the docs: with one full-length latent and one noise tensor, a first-order step
    (Euler; Euler ancestral with its per-step noise) on the hard-cut fused prediction gives exactly
    the video that stepping every window's own latent and hard-cutting the chunk latents gives."""
    frames, chunk, overlap = 29, 9, 4
    windows = chunk_windows(frames, chunk, overlap)
    sigmas = [10.0, 6.0, 3.0, 1.5, 0.5, 0.0]
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(1, 2, frames, 3, 3, generator=gen) * sigmas[0]
    step_noise = [torch.randn(1, 2, frames, 3, 3, generator=gen) for _ in sigmas]

    def euler_ancestral(x, denoised, s, s_next, noise):
        s_up = min(s_next, (s_next ** 2 * (s ** 2 - s_next ** 2) / s ** 2) ** 0.5)
        s_down = (s_next ** 2 - s_up ** 2) ** 0.5
        return x + (x - denoised) / s * (s_down - s) + noise * s_up

    host = x0.clone()  # the handler's way: fuse the prediction, step the whole latent
    paper = x0.clone()  # the paper's way: step each chunk, hard-cut the chunk latents
    whole = x0.clone()  # no windows at all, to show the windows matter
    for i, (s, s_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
        offsets = cut_offsets(windows, "randomized", seed=11, step=i)
        fused = torch.empty_like(host)
        for k, w in enumerate(windows):
            write_window(fused, _toy_denoiser(host[:, :, w.start:w.end], s), windows, offsets, k, 2)
        host = euler_ancestral(host, fused, s, s_next, step_noise[i])

        chunk_latents = []
        for w in windows:
            xw = paper[:, :, w.start:w.end]
            chunk_latents.append(euler_ancestral(xw, _toy_denoiser(xw, s), s, s_next, step_noise[i][:, :, w.start:w.end]))
        paper = fuse_hard_cut(chunk_latents, windows, offsets, dim=2)
        whole = euler_ancestral(whole, _toy_denoiser(whole, s), s, s_next, step_noise[i])
    assert torch.allclose(host, paper, atol=1e-6)
    assert (host - whole).abs().max() > 1e-2, "the toy model must see its window, or the check proves nothing"
