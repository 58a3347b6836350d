"""The first-chunk model loader, the initial chunk against diffusers' pipeline, and the long-video
loop end to end on the tiny real networks (tiny StreamingT2V + tiny stock ModelScope UNet)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from streaming_core.state_files import save_safetensors
from streaming_core.checkpoints.modelscope import find_unet_file, load_modelscope_unet
from streaming_core.cli.demo import tiny_models
from streaming_core.errors import CheckpointError, InputError
from streaming_core.pipelines.extend import ExtensionSettings
from streaming_core.pipelines.initial_chunk import InitialChunkSettings, generate_initial_chunk
from streaming_core.pipelines.long_video import generate_long_video
from streaming_core.tiny.modelscope import build_tiny_modelscope_unet, tiny_modelscope_config, write_tiny_modelscope

SIZE = 64


@pytest.fixture(scope="module")
def models():
    return tiny_models()


# -- loading the first-chunk UNet ----------------------------------------------------------------------
def test_modelscope_unet_loads_from_folder_file_and_variants(tmp_path):
    unet = build_tiny_modelscope_unet(seed=3)
    file = write_tiny_modelscope(unet, tmp_path / "text-to-video-ms-1.7b")
    assert find_unet_file(tmp_path / "text-to-video-ms-1.7b") == file
    x, ctx = torch.randn(1, 4, 2, 8, 8), torch.randn(1, 77, 1024)
    with torch.no_grad():
        ref = unet(x, 10, ctx)
        for source in (tmp_path / "text-to-video-ms-1.7b", file, file.parent):
            loaded = load_modelscope_unet(source)
            assert loaded.config.block_out_channels == tiny_modelscope_config().block_out_channels
            torch.testing.assert_close(loaded(x, 10, ctx), ref, rtol=1e-4, atol=1e-4)  # same weights; float32 kernels differ
        # zeroscope-style fp16 variant as a pickle .bin
        bin_file = tmp_path / "zeroscope_v2_576w" / "unet" / "diffusion_pytorch_model.fp16.bin"
        bin_file.parent.mkdir(parents=True)
        torch.save({k: v.half() for k, v in unet.state_dict().items()}, bin_file)
        half = load_modelscope_unet(tmp_path / "zeroscope_v2_576w", dtype=torch.float32)
        assert half.dtype == torch.float32
        torch.testing.assert_close(half(x, 10, ctx), ref, rtol=0.05, atol=0.05)


def test_streamingt2v_checkpoint_given_as_base_is_refused(tmp_path, models):
    st2v, _ = models
    sd = {k: v for k, v in st2v.official_state_dict().items() if k.startswith(("base_model.", "unet.", "resampler."))}
    save_safetensors(sd, tmp_path / "streaming_t2v.safetensors")
    with pytest.raises(CheckpointError, match="StreamingT2V checkpoint.*--st2v"):
        load_modelscope_unet(tmp_path / "streaming_t2v.safetensors")
    denoiser = {k[len("base_model."):]: v for k, v in sd.items() if k.startswith("base_model.")}
    save_safetensors(denoiser, tmp_path / "denoiser.safetensors")
    with pytest.raises(CheckpointError, match="StreamingT2V"):
        load_modelscope_unet(tmp_path / "denoiser.safetensors")
    save_safetensors({"foo.weight": torch.zeros(2)}, tmp_path / "other.safetensors")
    with pytest.raises(CheckpointError, match="not a ModelScope"):
        load_modelscope_unet(tmp_path / "other.safetensors")
    with pytest.raises(CheckpointError, match="not found"):
        load_modelscope_unet(tmp_path / "missing")
    (tmp_path / "empty_folder").mkdir()
    with pytest.raises(CheckpointError, match="unet/diffusion_pytorch_model"):
        load_modelscope_unet(tmp_path / "empty_folder")


# -- the initial chunk ----------------------------------------------------------------------------------
def test_initial_chunk_equals_diffusers_pipeline(models):
    """The official first-chunk computation, run by diffusers' own TextToVideoSDPipeline with the
    official scheduler line, on the same weights, tokens and initial noise."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, TextToVideoSDPipeline, UNet3DConditionModel

    from test_generate_dpm_solver import HUB_DDIM_CONFIG

    st2v, base = models
    c = base.config
    ref_unet = UNet3DConditionModel(block_out_channels=c.block_out_channels, attention_head_dim=c.attention_head_dim,
                                    cross_attention_dim=c.cross_attention_dim, norm_num_groups=32).eval()
    ref_unet.load_state_dict(base.state_dict())
    scheduler = DPMSolverMultistepScheduler.from_config(DDIMScheduler.from_config(HUB_DDIM_CONFIG).config)
    pipe = TextToVideoSDPipeline(vae=st2v.vae, text_encoder=None, tokenizer=None, unet=ref_unet, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)

    noise = torch.randn(1, 4, 8, SIZE // 8, SIZE // 8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        eight = InitialChunkSettings(steps=3, height=SIZE, width=SIZE, frames=8)
        ours = generate_initial_chunk(base, st2v, "a boat", eight, seed=5)
        ref = pipe(prompt_embeds=st2v.encode_prompts(["a boat"]), negative_prompt_embeds=st2v.encode_prompts([""]),
                   latents=noise, num_inference_steps=3, guidance_scale=9.0, num_frames=8, height=SIZE, width=SIZE,
                   output_type="pt").frames
    assert ours.shape == (8, SIZE, SIZE, 3)
    ref = ref.reshape(8, 3, SIZE, SIZE).permute(0, 2, 3, 1) if ref.shape[-1] != 3 else ref.reshape(ours.shape)
    torch.testing.assert_close(ours, ref, rtol=0, atol=2e-4)


def test_initial_chunk_batches_cond_and_uncond(models, monkeypatch):
    st2v, base = models
    batches = []
    real_forward = type(base).forward

    def spy(self, sample, t, context, **kw):
        batches.append((sample.shape[0], context.shape[0]))
        return real_forward(self, sample, t, context, **kw)

    monkeypatch.setattr(type(base), "forward", spy)
    steps = []
    tiny = InitialChunkSettings(steps=2, height=SIZE, width=SIZE)
    a = generate_initial_chunk(base, st2v, "a boat", tiny, seed=1,
                               on_step=lambda d, t, p: steps.append((d, t, type(p).__name__)))
    assert batches == [(2, 2), (2, 2)]  # one forward per step, [uncond, cond] together
    assert steps == [(1, 2, "LatentPreview"), (2, 2, "Tensor")]  # the x0 estimate, then the decoded frames
    b = generate_initial_chunk(base, st2v, "a boat", tiny, seed=1)
    c = generate_initial_chunk(base, st2v, "a boat", tiny, seed=2)
    d = generate_initial_chunk(base, st2v, "a boat", replace(tiny, sampler="ddim"), seed=1, negative_prompt="fog")
    assert a.shape == (16, SIZE, SIZE, 3) and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, d)


def test_initial_chunk_bad_input(models):
    st2v, base = models
    with pytest.raises(InputError, match="multiple of 8"):
        generate_initial_chunk(base, st2v, "x", InitialChunkSettings(height=60))
    with pytest.raises(InputError, match="sampler"):
        generate_initial_chunk(base, st2v, "x", InitialChunkSettings(sampler="euler"))
    with pytest.raises(InputError, match="StreamingT2V denoiser"):
        generate_initial_chunk(st2v.unet, st2v, "x", InitialChunkSettings(steps=1, height=SIZE, width=SIZE))


# -- the whole loop on the tiny real networks -----------------------------------------------------------
def test_long_video_end_to_end(models):
    st2v, base = models
    settings = ExtensionSettings(["a boat", "a boat at night"], seed=4, steps=2)
    initial = InitialChunkSettings(steps=2, height=SIZE, width=SIZE)
    with torch.no_grad():
        out = generate_long_video(st2v, base, 17, settings, initial)
        first = generate_initial_chunk(base, st2v, "a boat", initial, seed=4)
    assert out.shape == (17, SIZE, SIZE, 3) and torch.isfinite(out).all()
    # the Initial Chunk node + Chunk Loop node path gives the CLI's video: chunk 0 is the seed's chunk
    assert torch.equal(out[:16], first)
    assert (out[16] - out[15]).abs().max() > 0  # a new frame, not a copy
