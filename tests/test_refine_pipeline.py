"""The refiner end to end on tiny enhancers written to disk under the real file names and loaded through
the real loaders; file-set detection and its errors; the VAE and text-encoder conversions; tiling."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from streaming_core.checkpoints.enhancer import find_enhancer_files, load_enhancer
from streaming_core.state_files import save_safetensors
from streaming_core.cli import main
from streaming_core.errors import Cancelled, CheckpointError, InputError
from streaming_core.models.enhancer import NativeResolution, plan_frames
from streaming_core.pipelines.refine import RefineSettings, benchmark, refine
from streaming_core.progress import SD_LATENTS, LatentPreview
from streaming_core.tiny.enhancer import TINY_RESOLUTION, build_tiny_vae, tiny_open_clip_state_dict, write_tiny_enhancers
from streaming_core.video_io import read_video, write_video

RUN = dict(chunk=8, overlap=4, steps=2, resolution=TINY_RESOLUTION)


def tiny(**kw) -> RefineSettings:
    """Settings for the tiny enhancer: small chunks, 2 steps, the tiny canvas."""
    return RefineSettings(**{**RUN, **kw})



@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    return write_tiny_enhancers(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def ms_enhancer(tiny_models):
    return load_enhancer(tiny_models["ms_vid2vid_xl"])


def video(frames=12, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, size, size, 3, generator=g)
    drift = torch.linspace(0, 0.3, frames).view(-1, 1, 1, 1)
    return (base + drift).clamp(0, 1)


# -- files ---------------------------------------------------------------------------------------------
def test_tiny_files_are_plain_weights_under_the_real_names(tiny_models):
    root = tiny_models["ms_vid2vid_xl"]
    unet = torch.load(root / "non_ema_0035000.pth", weights_only=True)
    assert "input_blocks.1.0.temopral_conv.conv1.2.weight" in unet and "out.2.weight" in unet
    clip = torch.load(root / "open_clip_pytorch_model.bin", weights_only=True)
    assert clip["token_embedding.weight"].shape == (49408, 32) and "visual.conv1.weight" in clip
    sd = torch.load(root / "v2-1_512-ema-pruned.ckpt", weights_only=True)["state_dict"]
    assert sd and all(k.startswith("first_stage_model.") for k in sd)
    assert "first_stage_model.encoder.mid.attn_1.q.weight" in sd and sd["first_stage_model.encoder.mid.attn_1.q.weight"].ndim == 4
    zeroscope = tiny_models["zeroscope"]
    for part in ("unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors",
                 "vae/diffusion_pytorch_model.safetensors", "scheduler/scheduler_config.json"):
        assert (zeroscope / part).is_file()
    assert find_enhancer_files([root]).kind == "ms_vid2vid_xl"
    assert find_enhancer_files([zeroscope]).kind == "diffusers_unet3d"


def test_loaded_enhancers_carry_the_official_settings(tiny_models, ms_enhancer):
    e = ms_enhancer
    assert (e.kind, e.prediction_type, e.init, e.guidance_rescale, e.prompt_suffix) == ("ms_vid2vid_xl", "v", "modelscope", 0.2, ", ")
    assert (e.resolution.width, e.resolution.height, e.resolution.pad) == (1280, 720, True)
    assert e.unet.config.downsample_padding == (2, 1) and e.unet.config.upsample_crop_rows == 1
    z = load_enhancer(tiny_models["zeroscope"])
    assert (z.kind, z.prediction_type, z.init, z.guidance_rescale) == ("diffusers_unet3d", "epsilon", "exact", 0.0)
    assert (z.resolution.width, z.resolution.height) == (1024, 576)
    ac = 1 - z.table.sigma_vp**2
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2
    assert torch.allclose(ac, torch.cumprod(1 - betas, 0), atol=1e-6)


def test_diffusers_enhancer_schedule_follows_its_scheduler_config(tiny_models, tmp_path):
    import json
    import shutil

    folder = Path(shutil.copytree(tiny_models["zeroscope"], tmp_path / "zeroscope_v2_XL"))
    config = folder / "scheduler" / "scheduler_config.json"
    betas = torch.linspace(1e-4, 2e-2, 500)
    config.write_text(json.dumps({**json.loads(config.read_text()), "trained_betas": betas.tolist(),
                                  "prediction_type": "v_prediction"}))
    e = load_enhancer(folder)
    assert e.prediction_type == "v" and len(e.table.sigma_vp) == 500
    assert torch.allclose(1 - e.table.sigma_vp**2, torch.cumprod(1 - betas, 0), atol=1e-6)
    config.write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_enhancer(folder)
    config.write_text(json.dumps({"beta_schedule": "squaredcos_cap_v2"}))
    with pytest.raises(CheckpointError, match="noise schedule cannot be built.*squaredcos"):
        load_enhancer(folder)


def test_official_frame_plan():
    plan = plan_frames(256, 256, NativeResolution(1280, 720), 8)  # spec §6.3: 720x720 centred on 1280x720
    assert plan.fitted == (720, 720) and plan.canvas == (720, 1280) and plan.offset == (0, 280)
    assert plan_frames(256, 256, NativeResolution(1280, 720, pad=False), 8).canvas == (720, 720)


# -- refine end to end ------------------------------------------------------------------------------------
def test_refine_msvid2vid_end_to_end(ms_enhancer):
    frames = video()
    seen = []
    out = refine(ms_enhancer, frames, "a red car", settings=tiny(seed=1), on_step=lambda d, t, p: seen.append((d, t, p)))
    assert out.shape == (12, 32, 32, 3) and out.dtype == torch.float32  # 16 px fitted into 48x32: 32x32
    assert torch.isfinite(out).all() and 0 <= out.min() and out.max() <= 1
    total = seen[0][1]
    assert [d for d, _, _ in seen] == list(range(1, total + 1))
    windows = 2  # 12 frames, chunks of 8 overlapping by 4
    slices = -(-12 // ms_enhancer.vae_slice)
    assert total == 2 * slices + RUN["steps"] * windows  # encode and decode slices + chunks x steps
    previews = [p for _, _, p in seen if p is not None]
    # each window's x0 (8 frames) at every step, in SD latents (4 channels), for the host to decode
    assert len(previews) == RUN["steps"] * windows
    assert all(isinstance(p, LatentPreview) and p.family == SD_LATENTS for p in previews)
    assert all(p.latents.ndim == 5 and p.latents.shape[:3] == (1, 4, 8) for p in previews)
    again = refine(ms_enhancer, frames, "a red car", settings=tiny(seed=1))
    assert torch.equal(out, again)
    assert not torch.equal(out, refine(ms_enhancer, frames, "a red car", settings=tiny(seed=2)))
    assert not torch.equal(out, refine(ms_enhancer, frames, "a blue boat", settings=tiny(seed=1)))
    assert not torch.equal(out, refine(ms_enhancer, frames, "a red car", settings=tiny(seed=1, mode="independent")))


def test_refine_zeroscope_end_to_end(tiny_models):
    enhancer = load_enhancer(tiny_models["zeroscope"])
    out = refine(enhancer, video(frames=10), "a red car", settings=tiny(mode="shared_noise"))
    assert out.shape == (10, 32, 32, 3) and torch.isfinite(out).all()


def test_cancel_stops_the_run(ms_enhancer):
    # 12 frames: 3 VAE-encode slices, 2 windows x 2 steps of the UNet, 3 decode slices = 10 units; the
    # wavefront encodes the 2 slices window 0 covers (units 1, 2), then runs window 0 at step 0 (unit 3)
    unet_calls, decodes, seen = [], [], []
    hooks = [ms_enhancer.unet.register_forward_pre_hook(lambda m, a: unet_calls.append(a[0].shape[0])),
             ms_enhancer.vae.decoder.register_forward_pre_hook(lambda m, a: decodes.append(a[0].shape[0]))]

    def stop(done, total, preview):
        seen.append((done, total, len(unet_calls)))
        if done == 3:  # right after the first window of the first denoising step
            raise Cancelled("stop")

    try:
        with pytest.raises(Cancelled):
            refine(ms_enhancer, video(), "x", settings=tiny(), on_step=stop)
    finally:
        for h in hooks:
            h.remove()
    assert [(d, t) for d, t, _ in seen] == [(1, 10), (2, 10), (3, 10)]  # no step reported after the raise
    assert [n for _, _, n in seen] == [0, 0, 1]  # one UNet forward (cond+uncond batched) before the stop ...
    assert len(unet_calls) == 1 and decodes == []  # ... and nothing of the UNet or the decoder after it


def test_bad_input_gets_a_clear_error(ms_enhancer):
    with pytest.raises(InputError, match="overlap .* smaller than the chunk"):
        tiny(chunk=8, overlap=8)
    with pytest.raises(InputError, match="fewer than one chunk"):
        refine(ms_enhancer, video(frames=6), "x", settings=tiny(chunk=8, overlap=4))
    with pytest.raises(InputError, match="0..1"):
        refine(ms_enhancer, video() * 255, "x", settings=tiny())
    with pytest.raises(InputError, match="mode"):
        tiny(mode="pyramid")
    with pytest.raises(InputError, match="strength"):
        tiny(strength=1.5)
    with pytest.raises(InputError, match="sde_noise"):
        tiny(sde_noise="pink")


def test_wrong_file_sets_are_named(tiny_models, tmp_path):
    root, zeroscope = tiny_models["ms_vid2vid_xl"], tiny_models["zeroscope"]
    with pytest.raises(CheckpointError, match="no text encoder.*non_ema_0035000.pth: the MS-Vid2Vid-XL UNet"):
        load_enhancer([tiny_models["ms_vid2vid_xl.unet"], tiny_models["ms_vid2vid_xl.vae"]])
    with pytest.raises(CheckpointError, match="several files could be the VAE"):
        find_enhancer_files([root, zeroscope / "vae" / "diffusion_pytorch_model.safetensors"])
    odd = tmp_path / "odd.safetensors"
    save_safetensors({"foo.weight": torch.zeros(2)}, odd)
    with pytest.raises(CheckpointError, match="not a file this pack knows"):
        find_enhancer_files([root, odd])
    st2v = tmp_path / "streaming_t2v.safetensors"
    save_safetensors({"base_model.conv_in.weight": torch.zeros(2)}, st2v)
    with pytest.raises(CheckpointError, match="StreamingT2V checkpoint"):
        find_enhancer_files([st2v])
    with pytest.raises(CheckpointError, match="not found"):
        find_enhancer_files([tmp_path / "missing.pth"])


def test_cli_refine_writes_the_video(tiny_models, tmp_path, capsys):
    src, dst = tmp_path / "in.mp4", tmp_path / "out.mp4"
    write_video(src, video(frames=12), fps=8)
    rc = main(["refine", "--enhancer", str(tiny_models["ms_vid2vid_xl"]), "--video", str(src), "--prompt", "a car",
               "--out", str(dst), "--chunk", "8", "--overlap", "4", "--steps", "2", "--width", "48", "--height", "32",
               "--device", "cpu", "--sde-noise", "gaussian"])
    assert rc == 0, capsys.readouterr().err
    out = read_video(dst)
    assert out.shape == (12, 32, 32, 3)
    assert not list(tmp_path.glob("*.partial*"))
    rc = main(["refine", "--enhancer", str(tiny_models["ms_vid2vid_xl"]), "--video", str(src), "--prompt", "a car",
               "--out", str(tmp_path / "bad.mp4"), "--chunk", "8", "--overlap", "9", "--device", "cpu"])
    assert rc == 2 and "overlap" in capsys.readouterr().err
    assert not (tmp_path / "bad.mp4").exists()


# -- conversions, checked against independent implementations -------------------------------------------
def test_ldm_vae_names_match_diffusers_converter():
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    from streaming_core.checkpoints.ldm_vae import diffusers_to_ldm, ldm_to_diffusers
    from streaming_core.tiny.enhancer import tiny_vae_config

    vae = build_tiny_vae(seed=4)
    ldm = diffusers_to_ldm(vae.state_dict())
    theirs = convert_ldm_vae_checkpoint(ldm, tiny_vae_config())
    ours = ldm_to_diffusers(ldm)
    assert set(theirs) == set(ours) == set(vae.state_dict())
    for key, value in vae.state_dict().items():
        assert torch.equal(theirs[key].reshape(value.shape), value) and torch.equal(ours[key], value)


def test_open_clip_text_matches_open_clip_penultimate_layer(ms_enhancer):
    from open_clip.transformer import TextTransformer

    from streaming_core.models.clip_tokenizer import tokenize

    sd = tiny_open_clip_state_dict(seed=2)  # what the tiny open_clip_pytorch_model.bin holds
    ref = TextTransformer(context_length=77, vocab_size=49408, width=32, heads=1, layers=3, output_dim=32)
    ref.load_state_dict({k: v for k, v in sd.items() if not k.startswith("visual.") and k != "logit_scale"}, strict=False)
    ids = tokenize(["a red car, ", ""])
    with torch.no_grad():
        x = ref.token_embedding(ids) + ref.positional_embedding
        for block in ref.transformer.resblocks[:-1]:  # the official "penultimate" layer
            x = block(x, attn_mask=ref.attn_mask)
        expected = ref.ln_final(x)
        cond, uncond = ms_enhancer.encode_prompts("a red car", "")
    assert torch.allclose(torch.cat([cond, uncond]), expected, atol=1e-5)


def test_tile_layout_and_blending_arithmetic():
    from streaming_core.models.vae_tiling import tile_starts, tiled_map

    assert tile_starts(160, 64, 16) == [0, 48, 96] and tile_starts(40, 64, 16) == [0]
    assert tile_starts(1280, 768, 256) == [0, 512]  # the default on a 1280x720 canvas: two tiles
    for size in (100, 160, 257):
        starts = tile_starts(size, 64, 16)
        assert starts[0] == 0 and starts[-1] + 64 == size
        assert all(b - a <= 64 - 16 for a, b in zip(starts, starts[1:]))  # overlap at least 16
    # a per-pixel network: tiling must change nothing, whatever the scale between input and output
    weight = torch.randn(5, 3)
    x = torch.randn(2, 3, 40, 70)

    def pointwise(t):
        return torch.einsum("oc,bchw->bohw", weight, t)

    up = lambda t: torch.nn.functional.interpolate(pointwise(t), scale_factor=2, mode="nearest")  # noqa: E731
    down = lambda t: torch.nn.functional.avg_pool2d(pointwise(t), 2)  # noqa: E731
    assert torch.allclose(tiled_map(pointwise, x, 16, 6), pointwise(x), atol=1e-5)
    assert torch.allclose(tiled_map(up, x, 16, 6, 2, 1), up(x), atol=1e-5)
    assert torch.allclose(tiled_map(down, x, 16, 6, 1, 2), down(x), atol=1e-5)


def test_vae_tiles_close_to_untiled():
    """On a horizontally periodic texture every tile sees the statistics of the whole frame, so what
    is left is the tiling itself (borders, blending): within 10% of the untiled VAE, no seam column."""
    from streaming_core.models.vae_tiling import decode_frames, encode_frames

    vae = build_tiny_vae(seed=5)
    period = torch.rand(2, 3, 64, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    x = period.repeat(1, 1, 1, 3)  # 64 x 96: tiles of 64 at columns 0 and 32
    with torch.no_grad():
        z_full = encode_frames(vae, x, tile_px=None)
        z_tiled = encode_frames(vae, x, tile_px=64, overlap_px=32)
        px_full = decode_frames(vae, z_full, tile_px=None)
        px_tiled = decode_frames(vae, z_full, tile_px=64, overlap_px=32)
    assert z_tiled.shape == z_full.shape and px_tiled.shape == px_full.shape == x.shape
    assert (z_tiled - z_full).norm() <= 0.1 * z_full.norm()
    assert (px_tiled - px_full).norm() <= 0.1 * px_full.norm()
    column_error = (px_tiled - px_full).abs().mean(dim=(0, 1, 2))
    assert column_error.max() <= 4 * column_error.mean()


def test_benchmark_tiny_runs_the_refine_stage():
    result = benchmark(device="cpu", steps=2, frames=8, chunk=8, overlap=4)
    assert result.stage == "refine" and result.frames == 8 and result.steps == 2
    assert result.memory_kind == "process peak RSS"
    assert result.size == "32x32" and result.official_steps == 30
