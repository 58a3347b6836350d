"""StreamingT2V parts: tokenizer ids, text encoder, CLIP preprocessing and image tokens, resampler,
VAE helpers, and the container in bf16."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from streaming_core.errors import InputError
from streaming_core.models.clip_tokenizer import tokenize
from st2v_shared import tiny_inputs, tiny_model


# -- tokenizer -------------------------------------------------------------------------------------
# Expected ids are CLIP's published vocabulary, not our output: single-character words map into the
# first 256 "word-final" entries at 256 + their byte-to-unicode rank ('a' is the 65th printable
# character after '!', so 'a</w>' = 256 + 64 = 320); 'photo</w>' 1125, 'of</w>' 539, 'cat</w>' 2368,
# 'dog</w>' 1929 are the ids the HF CLIPTokenizer documentation example produces.
def test_tokenizer_ids_of_simple_prompts():
    ids = tokenize(["a photo of a cat", "a dog", ""])
    assert ids.shape == (3, 77) and ids.dtype == torch.long
    assert ids[0, :8].tolist() == [49406, 320, 1125, 539, 320, 2368, 49407, 0]
    assert ids[1, :5].tolist() == [49406, 320, 1929, 49407, 0]
    assert ids[2, :3].tolist() == [49406, 49407, 0]
    assert (ids[0, 7:] == 0).all()  # padded with id 0 (the SD 2 tokenizer's pad token "!")
    assert tokenize("A  Photo of a CAT")[0, :7].tolist() == ids[0, :7].tolist()  # lower case, whitespace


def test_tokenizer_truncates_keeping_the_end_token():
    ids = tokenize("a " * 200)
    assert ids.shape == (1, 77)
    assert ids[0, 0] == 49406 and ids[0, 76] == 49407
    assert (ids[0, 1:76] == 320).all()


# -- text encoder -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def text_encoder():
    from streaming_core.models.text_encoder import CLIPTextEncoder
    from streaming_core.tiny.st2v import randomize_, tiny_text_config

    enc = CLIPTextEncoder(tiny_text_config(vocab_size=49408, layers=2))
    randomize_(enc, 3)
    return enc.eval()


def test_text_encoder_config_from_shapes(text_encoder):
    from streaming_core.models.text_encoder import text_config_from_state_dict

    cfg = text_config_from_state_dict(text_encoder.state_dict())
    assert (cfg.vocab_size, cfg.hidden_size, cfg.num_hidden_layers, cfg.intermediate_size) == (49408, 1024, 2, 64)
    assert cfg.num_attention_heads == 16 and cfg.max_position_embeddings == 77 and cfg.hidden_act == "gelu"
    assert all(k.startswith("text_model.") for k in text_encoder.state_dict())


def test_text_encoder_is_causal_and_uses_the_whole_prompt(text_encoder):
    with torch.no_grad():
        out = text_encoder.encode(["a photo of a cat", "a photo of a dog", "a photo of a cat"])
    assert out.shape == (3, 77, 1024)
    assert torch.equal(out[0], out[2])
    # tokens 0..4 ("<start> a photo of a") are shared; a causal mask keeps them equal, the rest differ
    torch.testing.assert_close(out[0, :5], out[1, :5], rtol=1e-5, atol=1e-5)
    assert (out[0, 5:] - out[1, 5:]).abs().max() > 1e-2
    # the final LayerNorm is applied: every token has ~zero mean before its affine part
    ln = text_encoder.text_model.final_layer_norm
    normalized = (out - ln.bias) / ln.weight
    assert normalized.mean(-1).abs().max() < 1e-3


# -- CLIP image side ---------------------------------------------------------------------------------
def test_clip_preprocess_blurs_when_downscaling():
    """kornia's antialias: a 1-pixel checkerboard shrunk 448 -> 224 is blurred towards grey (Gaussian,
    sigma = (factor - 1) / 2), where a plain bicubic resize aliases it into a full-contrast beat
    pattern. (For the real 256 -> 224 anchor the sigma is 0.07 and the blur changes < 1e-6.)"""
    from streaming_core.models.clip_image import CLIP_MEAN, CLIP_STD, clip_preprocess

    yy, xx = torch.meshgrid(torch.arange(448), torch.arange(448), indexing="ij")
    board = ((yy + xx) % 2).float()[None, None].expand(1, 3, 448, 448) * 2 - 1
    ours = clip_preprocess(board)
    std = torch.tensor(CLIP_STD)[:, None, None]
    mean = torch.tensor(CLIP_MEAN)[:, None, None]
    unit = ours[0] * std + mean  # back to [0, 1]
    plain = (F.interpolate(board, size=(224, 224), mode="bicubic", align_corners=True)[0] + 1) / 2
    assert plain.std() > 0.2
    assert unit.std() < 0.5 * plain.std()  # measured 0.080 vs 0.244
    assert abs(unit.mean().item() - 0.5) < 0.02


def test_clip_preprocess_upscale_equals_bicubic_align_corners():
    from streaming_core.models.clip_image import CLIP_MEAN, CLIP_STD, clip_preprocess

    x = torch.rand(2, 3, 96, 64) * 2 - 1
    expected = (F.interpolate(x, size=(224, 224), mode="bicubic", align_corners=True) + 1) / 2
    expected = (expected - torch.tensor(CLIP_MEAN)[:, None, None]) / torch.tensor(CLIP_STD)[:, None, None]
    torch.testing.assert_close(clip_preprocess(x), expected, rtol=1e-5, atol=1e-5)


def test_anchor_tokens_average_frames_and_grey_tokens():
    model = tiny_model()
    gen = torch.Generator().manual_seed(5)
    frames = torch.rand(1, 3, 3, 64, 64, generator=gen) * 2 - 1
    with torch.no_grad():
        tokens = model.anchor_tokens(frames)
        emb = model.image_encoder(frames[0])  # (3, 1024)
        lin0, lin2 = model.resampler.context_embedding[0], model.resampler.context_embedding[2]
        expected = F.linear(F.silu(F.linear(emb.mean(0), lin0.weight, lin0.bias)), lin2.weight, lin2.bias)
        grey_default = model.grey_anchor_tokens()
        grey_256 = model.grey_anchor_tokens(like=torch.rand(1, 3, 256, 256))
    assert tokens.shape == (1, 16, 1024)
    torch.testing.assert_close(tokens, expected.reshape(1, 16, 1024), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grey_default, grey_256, rtol=1e-6, atol=1e-6)
    assert (grey_default - tokens).abs().max() > 1e-3


# -- VAE -------------------------------------------------------------------------------------------------
def test_vae_config_from_shapes_and_sliced_decode():
    from streaming_core.models.vae import (decode_latents, decode_video, encode_video, to_signed_range,
                                           to_unit_range, vae_config_from_state_dict)

    vae = tiny_model().vae
    cfg = vae_config_from_state_dict(vae.state_dict())
    assert list(cfg["block_out_channels"]) == [32, 32, 32, 32]
    assert (cfg["layers_per_block"], cfg["latent_channels"], cfg["in_channels"], cfg["out_channels"]) == (1, 4, 3, 3)
    assert cfg["scaling_factor"] == 0.18215
    latents = torch.randn(1, 4, 3, 4, 4)
    with torch.no_grad():
        video = decode_video(vae, latents, slice_size=2)
        whole = decode_latents(vae, latents[0].permute(1, 0, 2, 3), slice_size=8)
        back = encode_video(vae, video.clamp(-1, 1), slice_size=1)
    assert video.shape == (1, 3, 3, 32, 32)
    torch.testing.assert_close(video[0], whole, rtol=1e-5, atol=1e-5)
    assert back.shape == latents.shape
    x = torch.tensor([-2.0, -1.0, 0.0, 1.0, 3.0])
    assert to_unit_range(x).tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]
    assert to_signed_range(torch.tensor([0.0, 0.5, 1.0])).tolist() == [-1.0, 0.0, 1.0]


# -- container ----------------------------------------------------------------------------------------
def test_bf16_model_close_to_fp32():
    model = tiny_model()
    latents, context, frames = tiny_inputs(batch=1, frames=8, cam_frames=4)
    with torch.no_grad():
        ref = model.predict_noise(latents, 600, context, frames)
        bf16 = copy.deepcopy(model).to(torch.bfloat16)
        out = bf16.predict_noise(latents, 600, context, frames)
    assert out.dtype == torch.float32  # returned in the latents' dtype
    rel = ((out - ref).norm() / ref.norm()).item()
    assert rel < 0.1, rel  # bf16 keeps ~3 significant digits; measured 0.025 on this model (16 frames)


def test_predict_noise_input_errors():
    model = tiny_model()
    latents, context, frames = tiny_inputs(batch=1, frames=8, cam_frames=4)
    with pytest.raises(InputError, match="93"):
        model.predict_noise(latents, 10, context[:, :77], frames)
    with pytest.raises(InputError, match="pixels"):
        model.predict_noise(latents, 10, context, frames[..., :32, :])


def test_cam_features_shared_rows_match_full_batch():
    """Equal (latents, text, frames) rows are computed once; the result equals computing all rows.

    Run in float64: the two paths batch differently, so in float32 they differ by kernel-dependent
    rounding (0 to 3.2e-5 measured across ATEN_CPU_CAPABILITY default/avx2/avx512, AVX2-capped oneDNN/MKL
    and 1 or 2 threads, on values up to 18.5; the same size as float32 against float64). In float64
    they agree to 5e-14 on every one of those paths, so 1e-10 holds anywhere and a real difference
    (a row mixed up, a dropped token) is larger than 1e-3."""
    model = copy.deepcopy(tiny_model()).double()  # tiny_model() is shared between tests: never convert it in place
    latents, context, frames = (t.double() for t in tiny_inputs(batch=1, frames=8, cam_frames=4))
    ctx3 = torch.cat([context, context, context.flip(1)])  # rows 0 and 1 share the text tokens
    lat3, fr3 = latents.expand(3, -1, -1, -1, -1), frames.expand(3, -1, -1, -1, -1)
    with torch.no_grad():
        skips, mid = model.cam_features(lat3, 300, ctx3, fr3)
        ref_skips, ref_mid = model.cam(lat3, 300, ctx3[:, :77], fr3)
    assert mid.dtype == torch.float64
    torch.testing.assert_close(mid, ref_mid, rtol=0, atol=1e-10)
    for s, r in zip(skips, ref_skips):
        torch.testing.assert_close(s, r, rtol=0, atol=1e-10)
