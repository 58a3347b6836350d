"""Stream-DiffVSR building blocks: the official warp (shift and borders), the TPM decoder, RAFT split
into features + flow, the RAFT architecture read from shapes, and the tiled flow blending."""

from __future__ import annotations

import pytest
import torch

from streaming_core.models.sdvsr.flow import FlowEstimator, Tile, auto_tile_size, correlation_bytes, tile_grid, tile_weight
from streaming_core.models.sdvsr.raft import RaftConfig, RaftFlow, build_raft
from streaming_core.models.sdvsr.temporal_vae import TemporalAutoencoderTiny, TemporalVAEConfig, TPMBlock
from streaming_core.models.sdvsr.warp import flow_warp
from streaming_core.tiny.sdvsr import TINY_RAFT, randomize_

# ------------------------------------------------------------------------------------------ warp


def test_zero_flow_warp_keeps_constants_inside_and_halves_borders():
    """Official quirk: (W-1) normalisation with align_corners=False -> edges blend 50 % with the zero
    padding, corners 25 %, everything else of a constant image is kept."""
    h, w = 9, 13
    out = flow_warp(torch.ones(1, 2, h, w), torch.zeros(1, h, w, 2))[0, 0]
    expected = torch.ones(h, w)
    expected[0, :] *= 0.5
    expected[-1, :] *= 0.5
    expected[:, 0] *= 0.5
    expected[:, -1] *= 0.5
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def test_integer_shift_samples_at_the_official_positions():
    """A horizontal ramp (value = x) warped by dx = +3 reads position (x + 3) W/(W-1) - 0.5:
    content moves left by ~3 px, with the slight official magnification."""
    h, w, dx = 6, 20, 3.0
    ramp = torch.arange(w, dtype=torch.float32).expand(h, w)[None, None]
    flow = torch.zeros(1, h, w, 2)
    flow[..., 0] = dx
    out = flow_warp(ramp, flow)[0, 0]
    x = torch.arange(w, dtype=torch.float32)
    pos = (x + dx) * w / (w - 1) - 0.5
    inside = pos <= w - 1
    rows = slice(1, h - 1)  # away from the top/bottom border blend
    torch.testing.assert_close(out[rows][:, inside], pos[inside].expand(h - 2, -1), atol=1e-4, rtol=0)
    assert inside.sum() == w - 4  # the last 4 columns read beyond the image (zero padding)
    assert (out[rows][:, ~inside] < pos[~inside]).all()


def test_warp_accepts_both_flow_layouts():
    img = torch.randn(1, 3, 10, 12)
    flow = torch.randn(1, 10, 12, 2) * 3
    assert torch.equal(flow_warp(img, flow), flow_warp(img, flow.permute(0, 3, 1, 2)))
    with pytest.raises(ValueError, match="does not match"):
        flow_warp(img, torch.zeros(1, 5, 12, 2))


# ------------------------------------------------------------------------------------- TPM decoder


def _tiny_vae(seed=0):
    return randomize_(TemporalAutoencoderTiny(TemporalVAEConfig(encoder_block_out_channels=(8, 8, 8),
                                                                decoder_block_out_channels=(8, 8, 8))),
                      torch.Generator().manual_seed(seed))


def test_tpm_block_without_previous_is_the_plain_residual_block():
    block = randomize_(TPMBlock(8), torch.Generator().manual_seed(1))
    x = torch.randn(1, 8, 12, 16)
    torch.testing.assert_close(block(x), torch.relu(block.conv(x) + x))


def test_tpm_alpha_mixes_current_and_previous_token_halves():
    """With alpha = 1 the correction uses only the current half of the Conv1d output, with alpha = 0
    only the previous half; the Conv1d itself sees [current | previous]."""
    block = randomize_(TPMBlock(4), torch.Generator().manual_seed(2))
    feat, prev = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    pooled = torch.cat([torch.nn.functional.avg_pool2d(t, 4).flatten(2) for t in (feat, prev)], dim=2)
    mixed = block.temporal_processor(pooled)  # (1, 4, 8): 4 current + 4 previous tokens
    for alpha, half in ((1.0, mixed[..., :4]), (0.0, mixed[..., 4:])):
        with torch.no_grad():
            block.alpha.fill_(alpha)
        expected = torch.nn.functional.interpolate(half.view(1, 4, 2, 2), size=(8, 8), mode="bilinear",
                                                   align_corners=False)
        torch.testing.assert_close(block.temporal_correction(feat, prev), expected)


def test_decoder_pairs_encoder_features_deep_to_shallow_and_keeps_no_state():
    vae = _tiny_vae()
    z = torch.randn(1, 4, 8, 12)
    warped = torch.rand(1, 3, 32, 48) * 2 - 1
    with torch.no_grad():
        plain = vae.decode(z)
        guided = vae.decode(z, warped)
        again = vae.decode(z)
        feats = vae.temporal_features(warped)
    assert plain.shape == (1, 3, 32, 48)
    assert torch.equal(plain, again)  # nothing left over from the guided call
    assert (plain - guided).abs().max() > 1e-3
    # deep to shallow: the first map is at latent size, the last at output size
    assert [f.shape[-2:] for f in feats] == [(8, 12)] * 3 + [(16, 24)] * 3 + [(32, 48)]


def test_vae_config_is_read_back_from_its_own_shapes():
    cfg = TemporalVAEConfig(encoder_block_out_channels=(6, 10, 12), decoder_block_out_channels=(12, 10, 6),
                            num_encoder_blocks=(2, 1, 3), num_decoder_blocks=(1, 2, 2), latent_channels=5)
    vae = TemporalAutoencoderTiny(cfg)
    shapes = {k: tuple(v.shape) for k, v in vae.state_dict().items()}
    assert TemporalVAEConfig.from_shapes(shapes) == cfg


# ------------------------------------------------------------------------------------------- RAFT


def test_raft_config_defaults_are_raft_large_and_read_back_from_shapes():
    from torchvision.models.optical_flow import raft_large

    with torch.device("meta"):
        ours = {k: tuple(v.shape) for k, v in build_raft(RaftConfig()).state_dict().items()}
        official = {k: tuple(v.shape) for k, v in raft_large(weights=None).state_dict().items()}
    assert ours == official
    assert RaftConfig.from_shapes(official) == RaftConfig()
    tiny = {k: tuple(v.shape) for k, v in build_raft(TINY_RAFT).state_dict().items()}
    assert RaftConfig.from_shapes(tiny) == TINY_RAFT
    assert tiny.keys() == official.keys()  # the tiny RAFT keeps raft_large's key layout


def test_split_raft_equals_torchvision_forward():
    raft = randomize_(build_raft(TINY_RAFT), torch.Generator().manual_seed(3))
    flow = RaftFlow(raft, TINY_RAFT)
    a, b = torch.rand(1, 3, 48, 64) * 2 - 1, torch.rand(1, 3, 48, 64) * 2 - 1
    with torch.no_grad():
        reference = raft(a, b, num_flow_updates=12)
    ours = flow.flow(a, flow.features(a), flow.features(b), all_iterations=True)
    assert len(ours) == len(reference) == 12
    # Both run float32 with different batching, so they differ by rounding. Noise floor measured on this
    # tiny RAFT (flows up to 60 px): float32 against float64 up to 2.0e-5 px, ours against torchvision
    # up to 1.9e-5 px, across ATEN_CPU_CAPABILITY default/avx2/avx512, AVX2-capped oneDNN/MKL and 1 or
    # 2 threads. torchvision's RAFT builds float32 grids, so float64 cannot be used instead. 1e-4 px
    # is 5x that floor; a real mistake (an iteration off, a wrong correlation level) moves flows by >0.1 px.
    for o, r in zip(ours, reference):
        torch.testing.assert_close(o, r, atol=1e-4, rtol=0)
    assert raft.corr_block.corr_pyramid == []  # the correlation volume is not kept between calls


def test_raft_rejects_sizes_it_cannot_handle():
    flow = RaftFlow(build_raft(TINY_RAFT), TINY_RAFT)
    with pytest.raises(ValueError, match="divisible by 8"):
        flow.features(torch.zeros(1, 3, 36, 64))
    assert RaftConfig().min_image_size == 128 and TINY_RAFT.min_image_size == 32


# ----------------------------------------------------------------------------------------- tiles


def test_tile_grid_covers_the_frame_with_the_overlap():
    tiles = tile_grid(200, 336, 128, 32)
    cover = torch.zeros(200, 336)
    for t in tiles:
        assert t.y1 - t.y0 == 128 and t.x1 - t.x0 == 128 and t.y0 % 8 == 0 and t.x0 % 8 == 0
        cover[t.y0 : t.y1, t.x0 : t.x1] += 1
    assert cover.min() >= 1
    xs = sorted({t.x0 for t in tiles})
    assert all(b - a <= 128 - 32 for a, b in zip(xs, xs[1:]))


class _ConstantFlow:
    """Stands in for RAFT: every tile's flow is one constant, so the blend can be checked exactly."""

    min_image_size = 32

    def __init__(self):
        self.values = {}

    def features(self, image):
        return image

    def flow(self, image1, f1, f2, all_iterations=False):
        key = tuple(image1.shape[-2:]) + (float(image1[0, 0, 0, 0]),)
        value = self.values.setdefault(key, float(len(self.values)))
        return torch.full((1, 2, *image1.shape[-2:]), value)


def test_tiled_flow_is_a_partition_of_unity_blend():
    h, w = 64, 160
    image = torch.arange(h * w, dtype=torch.float32).view(1, 1, h, w).expand(1, 3, h, w)
    est = FlowEstimator(_ConstantFlow(), tile=64, overlap=32)
    tiles = est.tiles(h, w)
    assert len(tiles) > 1
    flow = est.flow(image, est.features(image), est.features(image))
    assert flow.shape == (1, h, w, 2)
    # each pixel is a convex combination of the constants of the tiles covering it
    values = torch.arange(len(tiles), dtype=torch.float32)
    weights = torch.stack([torch.nn.functional.pad(tile_weight(t, h, w, 32), (t.x0, w - t.x1, t.y0, h - t.y1))
                           for t in tiles])
    expected = (weights * values[:, None, None]).sum(0) / weights.sum(0)
    torch.testing.assert_close(flow[0, ..., 0], expected)
    # inside one tile only and away from any overlap: exactly that tile's value
    assert flow[0, 10, 5, 0] == 0
    # one tile as big as the frame is the untiled path
    whole = FlowEstimator(_ConstantFlow(), tile=256)
    assert whole.tiles(h, w) == [Tile(0, h, 0, w)]


def test_auto_tile_size_follows_the_correlation_budget():
    assert correlation_bytes(720, 1280) == pytest.approx((90 * 160) ** 2 * 16 / 3)
    assert auto_tile_size(720, 1280, 6 * 1024**3) is None  # 720p HR (1.1 GB) fits: official whole-frame flow
    side = auto_tile_size(2304, 2304, 6 * 1024**3)
    assert side is not None and side % 8 == 0 and correlation_bytes(side, side) <= 6 * 1024**3
    assert correlation_bytes(side + 8, side + 8) > 6 * 1024**3 * 0.9
