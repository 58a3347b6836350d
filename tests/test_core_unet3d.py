"""Our UNet3D against diffusers' UNet3DConditionModel with the same weights (an independent oracle),
and the StreamingT2V additions behaving as the spec says."""

from __future__ import annotations

import pytest
import torch
from diffusers import UNet3DConditionModel

from streaming_core.models.cam import CAMEncoder
from streaming_core.models.unet3d import UNet3D, UNet3DConfig


def _fan_in_random(sd):
    """Random weights of a sane scale (N(0,1)/sqrt(fan_in)) so half precision does not overflow."""
    out = {}
    for k, v in sd.items():
        if v.ndim >= 2:
            out[k] = torch.randn_like(v) / v[0].numel() ** 0.5
        elif k.endswith("weight"):
            out[k] = 1 + 0.1 * torch.randn_like(v)
        else:
            out[k] = 0.1 * torch.randn_like(v)
    return out


def _diffusers_pair(seed=0):
    torch.manual_seed(seed)
    ref = UNet3DConditionModel(block_out_channels=(32, 64, 64, 64), layers_per_block=2, norm_num_groups=32,
                               cross_attention_dim=48, attention_head_dim=8).eval()
    sd = _fan_in_random(ref.state_dict())
    ref.load_state_dict(sd)
    ours = UNet3D(UNet3DConfig.from_state_dict(sd)).eval()
    ours.load_state_dict(sd, strict=True)
    return ref, ours, sd


def test_config_inferred_from_shapes():
    _, _, sd = _diffusers_pair()
    cfg = UNet3DConfig.from_state_dict(sd)
    assert cfg.block_out_channels == (32, 64, 64, 64)
    assert cfg.down_attention == (True, True, True, False)
    assert cfg.layers_per_block == 2 and cfg.attention_head_dim == 8 and cfg.cross_attention_dim == 48
    assert not cfg.apm and not cfg.cam_mergers


@pytest.mark.parametrize("hw", [(16, 8), (12, 10)])  # (12, 10) exercises the odd-size upsampling path
def test_matches_diffusers_unet3d(hw):
    ref, ours, _ = _diffusers_pair()
    x = torch.randn(2, 4, 5, *hw)
    t = torch.tensor([501, 3])
    ctx = torch.randn(2, 7, 48)
    with torch.no_grad():
        expected = ref(x, t, ctx).sample
        got = ours(x, t, ctx)
    assert got.shape == expected.shape
    assert (got - expected).abs().max() < 1e-4 * (1 + expected.abs().max())


def test_shared_context_equals_per_frame_context():
    """Projecting one context per video (our shortcut) equals diffusers' per-frame repetition."""
    ref, ours, _ = _diffusers_pair(1)
    x = torch.randn(1, 4, 3, 8, 8)
    ctx = torch.randn(1, 5, 48)
    with torch.no_grad():
        a = ours(x, 10, ctx)
        b = ref(x, torch.tensor([10]), ctx).sample
    assert torch.allclose(a, b, atol=1e-4)


def _tiny_st2v_unet():
    cfg = UNet3DConfig(block_out_channels=(64, 64, 64, 64), attention_head_dim=8, cross_attention_dim=1024,
                       apm=True, cam_mergers=True)
    torch.manual_seed(0)
    unet = UNet3D(cfg).eval()
    cam = CAMEncoder(UNet3DConfig(**{**cfg.to_dict(), "apm": False, "cam_mergers": False}), (16, 32, 32, 48)).eval()
    return unet, cam


def test_zero_initialised_additions_reduce_to_the_stock_unet():
    """Spec: with alpha = 0 and merger proj_out = 0, StreamingT2V's denoiser equals stock ModelScope."""
    unet, cam = _tiny_st2v_unet()
    x = torch.randn(1, 4, 16, 8, 8)
    ctx = torch.randn(1, 93, 1024)
    frames = torch.rand(1, 8, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if name.endswith("attn2.alpha") or ".proj_out." in name and "merger" in name:
                p.zero_()
        full = unet(x, 5, ctx, cam(x, 5, ctx, frames))
        stock = UNet3D(UNet3DConfig(block_out_channels=(64,) * 4, attention_head_dim=8, cross_attention_dim=1024)).eval()
        stock_sd = {k: v for k, v in unet.state_dict().items()
                    if "merger" not in k and not k.endswith(("attn2.alpha", "attn2.conv.weight", "attn2.conv.bias",
                                                             "attn2.conv_ln.weight", "attn2.conv_ln.bias"))}
        stock.load_state_dict(stock_sd, strict=True)
        plain = stock(x, 5, ctx[:, :77])
    assert torch.allclose(full, plain, atol=1e-5)


def test_anchor_tokens_and_cam_frames_change_the_output():
    unet, cam = _tiny_st2v_unet()
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if name.endswith("attn2.alpha"):
                p.fill_(1.0)
            if "merger" in name and ".proj_out." in name:
                p.normal_(0, 0.05)
    x = torch.randn(1, 4, 16, 8, 8)
    ctx = torch.randn(1, 93, 1024)
    frames = torch.rand(1, 8, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        base = unet(x, 5, ctx, cam(x, 5, ctx, frames))
        ctx2 = ctx.clone()
        ctx2[:, 77:] = torch.randn(1, 16, 1024)
        other_anchor = unet(x, 5, ctx2, cam(x, 5, ctx2, frames))
        other_frames = unet(x, 5, ctx, cam(x, 5, ctx, -frames))
        again = unet(x, 5, ctx, cam(x, 5, ctx, frames))
    assert torch.equal(base, again)
    assert (base - other_anchor).abs().max() > 1e-5
    assert (base - other_frames).abs().max() > 1e-5


def test_cam_reads_only_first_conditioning_frames_and_text_tokens():
    _, cam = _tiny_st2v_unet()
    x = torch.randn(1, 4, 16, 8, 8)
    ctx = torch.randn(1, 93, 1024)
    frames = torch.rand(1, 8, 3, 64, 64)
    with torch.no_grad():
        skips, mid = cam(x, 5, ctx, frames)
        x2 = x.clone()
        x2[:, :, 8:] = torch.randn(1, 4, 8, 8, 8)
        ctx2 = ctx.clone()
        ctx2[:, 77:] = 0
        skips2, mid2 = cam(x2, 5, ctx2, frames)
    assert len(skips) == 12
    assert torch.equal(mid, mid2) and all(torch.equal(a, b) for a, b in zip(skips, skips2))


def test_apm_layer_demands_anchor_tokens():
    unet, _ = _tiny_st2v_unet()
    with pytest.raises(ValueError, match="93 context tokens"):
        unet(torch.randn(1, 4, 2, 8, 8), 5, torch.randn(1, 77, 1024))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_close_to_fp32(dtype):
    _, ours, _ = _diffusers_pair(2)
    x = torch.randn(1, 4, 3, 8, 8)
    ctx = torch.randn(1, 5, 48)
    with torch.no_grad():
        ref = ours(x, 100, ctx)
        low = ours.to(dtype)(x.to(dtype), 100, ctx.to(dtype)).float()
    assert low.dtype == torch.float32 and torch.isfinite(low).all()
    rel = (low - ref).norm() / ref.norm()
    assert rel < 0.05, rel
