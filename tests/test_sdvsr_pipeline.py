"""The streaming upscaler on a tiny random Stream-DiffVSR: first-frame path, causality, state round
trip, noise, progress/cancel, tiling, precisions and what bad input gets."""

from __future__ import annotations

import logging

import pytest
import torch

from streaming_core.errors import Cancelled, InputError
from streaming_core.pipelines.upscale import UpscaleSettings, UpscaleState, upscale_stream
from streaming_core.tiny.sdvsr import build_tiny_sdvsr

H, W = 12, 16  # LR; HR 48x64 (the tiny RAFT needs >= 32 px)


@pytest.fixture(scope="module")
def models():
    return build_tiny_sdvsr(seed=0)


@pytest.fixture(scope="module")
def frames():
    g = torch.Generator().manual_seed(5)
    return torch.randint(0, 256, (5, H, W, 3), generator=g, dtype=torch.uint8)


@pytest.fixture(scope="module")
def reference(models, frames):
    """One call over all frames: the outputs the other tests compare with."""
    stream = upscale_stream(models, frames, settings=UpscaleSettings(seed=7))
    return torch.stack(list(stream)), stream.state


def test_output_size_range_and_state(reference):
    out, state = reference
    assert out.shape == (5, 4 * H, 4 * W, 3) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    assert state.frames_done == 5 and state.prev_hr.shape == (1, 3, 4 * H, 4 * W)
    assert state.prev_hr.device.type == "cpu"
    assert state.prev_hr.min() < -1 or state.prev_hr.max() > 1  # kept unclamped (the tiny decoder overshoots)


def test_first_frame_is_the_plain_unet_ddim_chain_without_controlnet(models, frames, reference, monkeypatch):
    """Frame 0 = 4 DDIM steps (diffusers' own scheduler here) of the UNet alone, decoded without TPM."""
    from diffusers import DDIMScheduler

    sched = DDIMScheduler(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="scaled_linear",
                          prediction_type="v_prediction", timestep_spacing="trailing", set_alpha_to_one=False,
                          steps_offset=1, clip_sample=False)
    sched.set_timesteps(4)
    assert sched.timesteps.tolist() == [999, 749, 499, 249]
    lr = frames[0].permute(2, 0, 1)[None].float() / 255.0 * 2.0 - 1.0
    z = torch.randn((1, 4, H, W), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        for t in sched.timesteps:
            v = models.unet(torch.cat([z, lr], 1), t, encoder_hidden_states=models.prompt_embeds).sample
            z = sched.step(v, t, z).prev_sample
        hr = models.vae.decoder(z)  # no TPM features
    expected = (hr[0] / 2 + 0.5).clamp(0, 1).permute(1, 2, 0)
    torch.testing.assert_close(reference[0][0], expected, atol=2e-6, rtol=0)

    def no_controlnet(*a, **k):
        raise AssertionError("the ControlNet must not run on the first frame")

    monkeypatch.setattr(models.controlnet, "forward", no_controlnet)
    first = next(iter(upscale_stream(models, frames[:1], settings=UpscaleSettings(seed=7))))
    assert torch.equal(first, reference[0][0])


def test_later_frames_use_the_warped_previous_output(models, frames, reference):
    """Frame 1 depends on frame 0's output: a different previous HR state changes it."""
    out, _ = reference
    stream = upscale_stream(models, frames[:1], settings=UpscaleSettings(seed=7))
    list(stream)
    state = stream.state
    fake = UpscaleState(-state.prev_hr, state.prev_lr, state.rng_state, state.frames_done, state.seed)
    changed = next(iter(upscale_stream(models, frames[1:2], fake)))
    same = next(iter(upscale_stream(models, frames[1:2], state)))
    assert torch.equal(same, out[1])
    assert (changed - out[1]).abs().max() > 1e-3


def test_causality_future_frames_never_change_past_outputs(models, frames, reference):
    out, _ = reference
    altered = frames.clone()
    altered[3:] = 255 - altered[3:]
    new = torch.stack(list(upscale_stream(models, altered, settings=UpscaleSettings(seed=7))))
    assert torch.equal(new[:3], out[:3])
    assert (new[3] - out[3]).abs().max() > 1e-3


def test_two_calls_with_a_saved_state_equal_one_call(models, frames, reference, tmp_path):
    out, final = reference
    first = upscale_stream(models, frames[:2], settings=UpscaleSettings(seed=7))
    part1 = list(first)
    path = tmp_path / "state.safetensors"
    first.state.save(path)
    resumed = UpscaleState.load(path)
    second = upscale_stream(models, frames[2:], resumed, settings=UpscaleSettings(seed=12345))  # the state's noise stream wins
    part2 = list(second)
    assert torch.equal(torch.stack(part1 + part2), out)
    assert second.state.frames_done == 5
    assert torch.equal(second.state.prev_hr, final.prev_hr)


def test_state_after_an_early_break_continues_exactly(models, frames, reference):
    out, _ = reference
    stream = upscale_stream(models, frames, settings=UpscaleSettings(seed=7))
    got = []
    for frame in stream:
        got.append(frame)
        if len(got) == 3:
            break
    got += list(upscale_stream(models, frames[3:], stream.state))
    assert torch.equal(torch.stack(got), out)


def test_seeds_and_injected_noise(models, frames, reference):
    out, _ = reference
    other = torch.stack(list(upscale_stream(models, frames[:2], settings=UpscaleSettings(seed=8))))
    assert (other - out[:2]).abs().max() > 1e-3
    g = torch.Generator().manual_seed(7)
    noise = [torch.randn((1, 4, H, W), generator=g) for _ in range(2)]  # the documented draw order
    injected = torch.stack(list(upscale_stream(models, frames[:2], noise=noise)))
    assert torch.equal(injected, out[:2])
    with pytest.raises(InputError, match="ran out"):
        list(upscale_stream(models, frames[:2], noise=noise[:1]))


def test_progress_reports_every_step_and_cancel_stops_within_a_step(models, frames, reference):
    calls = []
    list(upscale_stream(models, frames[:2], on_step=lambda d, t, p: calls.append((d, t, p is not None))))
    assert [c[:2] for c in calls] == [(i, 8) for i in range(1, 9)]
    assert [c[2] for c in calls] == [False, False, False, True] * 2

    def cancel(done, stop_at):
        if done == stop_at:
            raise Cancelled()

    for stop_at in (6, 8):  # inside frame 1, and at its last step (whose preview is frame 1 itself)
        got = []
        stream = upscale_stream(models, frames, on_step=lambda d, t, p, s=stop_at: cancel(d, s), settings=UpscaleSettings(seed=7))
        with pytest.raises(Cancelled):
            for frame in stream:
                got.append(frame)
        assert len(got) == 1 and stream.state.frames_done == 1  # the state matches the frames handed out
        resumed = next(iter(upscale_stream(models, frames[1:2], stream.state)))
        assert torch.equal(resumed, reference[0][1])


def test_flow_tiling_whole_frame_tile_is_exact_and_small_tiles_run(models, frames, reference):
    out, _ = reference
    whole = torch.stack(list(upscale_stream(models, frames[:3], settings=UpscaleSettings(seed=7, flow_tile=64))))
    assert torch.equal(whole, out[:3])  # a tile as big as the 48x64 frame is the official flow
    tiled = torch.stack(list(upscale_stream(models, frames[:3], settings=UpscaleSettings(seed=7, flow_tile=32, flow_tile_overlap=16))))
    assert torch.equal(tiled[0], out[0])  # frame 0 has no flow at all
    assert torch.isfinite(tiled).all() and (tiled[1:] - out[1:3]).abs().max() > 0
    with pytest.raises(InputError, match="smaller than RAFT"):
        list(upscale_stream(models, frames[:2], settings=UpscaleSettings(flow_tile=16)))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precisions_run_close_to_float32(frames, reference, dtype):
    out, _ = reference
    models = build_tiny_sdvsr(seed=0).to(dtype=dtype, vae_dtype=dtype)
    assert models.dtype == models.vae_dtype == dtype
    assert next(models.raft.parameters()).dtype == torch.float32  # RAFT stays float32
    half = torch.stack(list(upscale_stream(models, frames[:3], settings=UpscaleSettings(seed=7))))
    assert half.dtype == torch.float32 and torch.isfinite(half).all()
    assert (half - out[:3]).abs().mean() < 5e-3


# ------------------------------------------------------------------------------------ bad input


def test_sizes_not_multiple_of_4_are_resized_down_and_said(models, caplog):
    frames = torch.rand(2, 14, 19, 3)
    with caplog.at_level(logging.WARNING, logger="streaming_core.sdvsr"):
        out = list(upscale_stream(models, frames))
    assert out[0].shape == (48, 64, 3)
    assert "19x14" in caplog.text and "16x12" in caplog.text and "64x48" in caplog.text


@pytest.mark.parametrize("grey", [torch.rand(2, H, W, 1), [torch.rand(H, W)] * 2])
def test_grey_frames_get_a_clear_error(models, grey):
    with pytest.raises(InputError, match="greyscale"):
        list(upscale_stream(models, grey, settings=UpscaleSettings(seed=3)))


def test_grey_pil_images_become_rgb_like_the_official_pipeline(models):
    from PIL import Image

    grey = (torch.rand(H, W) * 255).to(torch.uint8)
    pil = [Image.fromarray(grey.numpy(), "L")] * 2
    a = torch.stack(list(upscale_stream(models, pil, settings=UpscaleSettings(seed=3))))
    b = torch.stack(list(upscale_stream(models, grey[None, :, :, None].expand(2, -1, -1, 3), settings=UpscaleSettings(seed=3))))
    assert torch.equal(a, b)


@pytest.mark.parametrize("frames, message", [
    (torch.rand(2, H, W, 4), "3 RGB channels"),
    (torch.rand(2, 3, H, W), "channels first"),
    (torch.rand(2, H, W, 3) * 255, "divide by 255"),
    (torch.rand(2, H, W, 3) * 2 - 1, r"\(x \+ 1\) / 2"),
    (torch.randint(0, 255, (2, H, W, 3), dtype=torch.int32), "uint8"),
    (torch.full((2, H, W, 3), float("nan")), "NaN"),
    (torch.rand(2, 4, 8, 3), "at least 8x8"),
    (torch.rand(H, W, 3), "one frame"),
])
def test_bad_frames_get_clear_errors(models, frames, message):
    with pytest.raises(InputError, match=message):
        list(upscale_stream(models, frames))


def test_a_state_from_another_size_is_refused(models, reference):
    _, state = reference
    with pytest.raises(InputError, match="one size"):
        list(upscale_stream(models, torch.rand(1, 16, 16, 3), state))


def test_upscale_benchmark_runs_the_upscale_stage():
    from streaming_core.pipelines.upscale import benchmark

    result = benchmark(steps=2)
    assert (result.stage, result.size, result.frames, result.steps) == ("upscale", "64x48", 1, 2)
    assert result.memory_kind == "process peak RSS"


def test_released_sizes_for_bench_full_match_the_official_key_lists(shared_dir):
    """``bench --full`` builds the released networks without files: their sizes must be the official ones."""
    import json

    from streaming_core.tiny.sdvsr import build_random_sdvsr

    spec = json.loads((shared_dir / "specs" / "stream_diffvsr_expected_keys.json").read_text())
    models = build_random_sdvsr(True, "meta")
    for part in ("unet", "controlnet", "vae"):
        expected = {k: tuple(v) for k, v in spec[part]["keys"].items()}
        ours = {k: tuple(v.shape) for k, v in getattr(models, part).state_dict().items()}
        assert ours == expected, part
    assert sum(p.numel() for p in models.raft.parameters()) == 5_257_536  # torchvision's raft_large


def test_flow_tile_settings_from_the_cli_and_the_node_menu():
    from streaming_core.pipelines.upscale import parse_flow_tile

    assert [parse_flow_tile(v) for v in ("auto", "off", "none", None, "0", 0, "512", 256)] == \
        ["auto", None, None, None, None, None, 512, 256]
    with pytest.raises(InputError, match="positive tile side in pixels, got -3"):  # a typo, not "off"
        parse_flow_tile(-3)
    with pytest.raises(InputError, match="flow tile must be 'auto', 'off' or a tile side in pixels, got 'big'"):
        parse_flow_tile("big")
