"""The paper's metrics and the seam measures on synthetic videos with known answers.

Known answers: a pattern translated by whole pixels is explained exactly by its true flow (warp error
0), and a uniform brightness step of +10 on top of it gives W = 100 exactly; a still video has no
warp error; a hard cut between two scenes is one scene cut and a seam. RAFT is replaced by the true
flow (RAFT itself is checked against torchvision's own forward), and the CLIP towers are tiny random
ones checked against open_clip's own CLIP model built from the same file.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from streaming_core.errors import InputError
from streaming_core.metrics import flow_smoothness
from streaming_core.metrics.clip_score import clip_image_input, clip_score
from streaming_core.metrics.evaluate import (EvalModels, EvalSettings, evaluate_video, format_table, report_json,
                                             save_text)
from streaming_core.metrics.mawe import MAWE_COEFF, RaftPairFlow, mawe, splat_forward, warp_error
from streaming_core.metrics.plot import render_curves, save_png
from streaming_core.metrics.scene_cuts import scene_cuts
from streaming_core.sampling.blend import chunk_windows

SIZE = 64


def smooth_pattern(seed: int, h: int, w: int, low: float = 20, high: float = 200) -> torch.Tensor:
    """(h, w, 3) uint8 image of smooth colour blobs (a 1-px shift changes it a little), values in [low, high]."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 6, 8, generator=g)
    img = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)[0].permute(1, 2, 0)
    return (low + (high - low) * img).round().to(torch.uint8)


def translated(canvas: torch.Tensor, frames: int, dx: int, dy: int, size: int = SIZE) -> torch.Tensor:
    """Crops of ``canvas`` whose content moves by (dx, dy) pixels per frame (new content enters at the edges)."""
    y0, x0 = canvas.shape[0] // 2 - size // 2, canvas.shape[1] // 2 - size // 2
    return torch.stack([canvas[y0 - t * dy:y0 - t * dy + size, x0 - t * dx:x0 - t * dx + size] for t in range(frames)])


def constant_flow(dx: float, dy: float):
    def flow(frame_t, frame_t1):
        h, w = frame_t.shape[-2:]
        return torch.tensor([dx, dy], dtype=torch.float32).view(2, 1, 1).expand(2, h, w)
    return flow


# ----------------------------------------------------------------------------------------- MAWE

def test_a_translated_pattern_has_zero_warp_error_with_its_true_flow():
    video = translated(smooth_pattern(0, 160, 160), 5, dx=3, dy=-2)
    result = mawe(iter(video), constant_flow(3, -2), size=SIZE)
    assert result.warp_error == (0.0,) * 4
    assert result.mawe == 0.0
    assert result.flow_magnitude == pytest.approx((math.sqrt(13),) * 4, rel=1e-6)
    wrong = mawe(iter(video), constant_flow(0, 0), size=SIZE)  # the same video with a wrong flow is not explained
    assert min(wrong.warp_error) > 10


def test_a_brightness_step_gives_the_known_warp_error_and_mawe():
    video = translated(smooth_pattern(1, 160, 160), 3, dx=2, dy=1)
    video[1:] += 10  # values stay in [30, 210]: no clipping
    video[2:] += 10
    result = mawe(iter(video), constant_flow(2, 1), size=SIZE)
    assert result.warp_error == pytest.approx((100.0, 100.0), abs=1e-9)
    assert result.mawe == pytest.approx(100.0 / (MAWE_COEFF * math.sqrt(5)), rel=1e-6)


def test_a_still_video_has_zero_mawe():
    still = smooth_pattern(2, SIZE, SIZE)[None].expand(4, -1, -1, -1)
    assert mawe(iter(still), constant_flow(0, 0), size=SIZE).mawe == 0.0
    assert mawe(iter(still), constant_flow(0.3, -0.2), size=SIZE).mawe == 0.0  # sub-pixel flow rounds to no move


def test_change_without_motion_is_infinite_and_json_says_null():
    flicker = smooth_pattern(3, SIZE, SIZE)[None].repeat(3, 1, 1, 1)
    flicker[1] += 5
    result = mawe(iter(flicker), constant_flow(0, 0), size=SIZE)
    assert result.warp_error == pytest.approx((25.0, 25.0)) and math.isinf(result.mawe)
    report = evaluate_video(lambda: iter(flicker), "flicker", EvalModels(flow=constant_flow(0, 0)),
                            EvalSettings(chunk=None, mawe_size=SIZE))
    data = json.loads(report_json([report], EvalSettings(chunk=None)))
    assert data["videos"][0]["mawe"] is None and "inf" in format_table([report])


def test_forward_splat_drops_outside_targets_and_the_last_source_in_raster_order_wins():
    image = torch.tensor([[[10.0, 20.0, 30.0, 40.0]]])  # (C=1, H=1, W=4)
    flow = torch.zeros(2, 1, 4)
    flow[0] = torch.tensor([1.0, 0.0, -1.0, 5.0])  # sources 0, 1, 2 all land on x = 1; source 3 leaves the frame
    warped, known = splat_forward(image, flow)
    assert known.tolist() == [[False, True, False, False]]
    assert warped.tolist() == [[[0.0, 30.0, 0.0, 0.0]]]
    target = torch.tensor([[[1.0, 33.0, 7.0, 9.0]]])
    assert warp_error(target, warped, known) == pytest.approx(9.0)  # only the known pixel counts


def _tiny_raft():
    from streaming_core.models.sdvsr.raft import RaftFlow, build_raft
    from streaming_core.tiny.sdvsr import TINY_RAFT, randomize_

    return RaftFlow(randomize_(build_raft(TINY_RAFT), torch.Generator().manual_seed(0)), TINY_RAFT)


def test_raft_pair_flow_is_torchvisions_raft_on_the_official_preprocessing():
    raft = _tiny_raft()
    size = raft.min_image_size
    frames = translated(smooth_pattern(4, 96, 96), 3, dx=1, dy=0, size=size)
    pairs = RaftPairFlow(raft)
    chw = frames.permute(0, 3, 1, 2)
    got = [pairs(chw[t], chw[t + 1]) for t in range(2)]  # the second call reuses frame 1's features
    for t in range(2):
        a = (chw[t].float() / 255 - 0.5) / 0.5
        b = (chw[t + 1].float() / 255 - 0.5) / 0.5
        ref = raft.raft(a[None], b[None], num_flow_updates=raft.iterations)[-1][0]
        # torchvision encodes both images in one batch: fp32 rounding differences only (measured 6e-7 relative)
        torch.testing.assert_close(got[t], ref, rtol=1e-5, atol=1e-5)


def test_a_mawe_size_below_rafts_minimum_is_a_clear_error():
    raft = _tiny_raft()
    video = smooth_pattern(5, 40, 40)[None].expand(2, -1, -1, -1)
    with pytest.raises(InputError, match="official size is 720"):
        mawe(iter(video), RaftPairFlow(raft), size=raft.min_image_size - 8)


# ---------------------------------------------------------------------------- SCuts and seams

def _cut_video():
    """40 frames: scene A drifting 1 px per frame, a hard cut at frame 24 to scene B, drifting too."""
    a = translated(smooth_pattern(6, 200, 200), 24, dx=1, dy=0)
    b = translated(smooth_pattern(7, 200, 200), 16, dx=0, dy=1)
    return torch.cat([a, b])


def test_a_hard_cut_is_one_scene_cut_and_a_seam():
    video = _cut_video()
    assert scene_cuts(iter(video)).cuts == (24,)
    assert scene_cuts(iter(video[:24])).count == 0
    report = evaluate_video(lambda: iter(video), "cut", EvalModels(), EvalSettings(chunk=16, overlap=8))
    assert report.scuts == 1 and report.scut_frames == [24]
    assert report.seam_score > 10  # the cut lies in the second overlap (frames 16..23 -> 24)
    assert report.seam_per_overlap[1] > 100 and report.seam_per_overlap[0] < 3
    smooth = evaluate_video(lambda: iter(video[:24]), "smooth", EvalModels(), EvalSettings(chunk=16, overlap=8))
    assert smooth.seam_score < 3


def test_float_frames_give_the_same_cuts_as_uint8():
    video = _cut_video()
    assert scene_cuts(iter(video.float() / 255)).cuts == scene_cuts(iter(video)).cuts


def test_flow_smoothness_known_values():
    windows = chunk_windows(10, 4, 2)  # overlap spans (transitions): [1, 4), [3, 6), [5, 8)
    flat = flow_smoothness([1.0] * 9, windows)
    assert flat.overall == 0 and flat.at_seams == 0
    bump = flow_smoothness([1, 1, 1, 3, 1, 1, 1, 1, 1], windows)
    spread = math.sqrt(((2 / 3) ** 2 * 2 + (4 / 3) ** 2) / 3)  # population std of [1, 1, 3]
    assert bump.per_overlap == pytest.approx((spread, spread, 0.0))
    assert bump.overall == pytest.approx(math.sqrt((8 * (2 / 9) ** 2 + (16 / 9) ** 2) / 9))


# ------------------------------------------------------------------------------------ CLIP score

@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    from streaming_core.metrics.weights import load_clip_image_tower, load_clip_text_tower
    from streaming_core.tiny.clip import write_tiny_open_clip

    path = write_tiny_open_clip(tmp_path_factory.mktemp("clip") / "open_clip_pytorch_model.bin", seed=3)
    return path, load_clip_image_tower(path), load_clip_text_tower(path)


def test_clip_score_is_deterministic_and_a_cosine(tiny_clip):
    _, image, text = tiny_clip
    video = translated(smooth_pattern(8, 120, 120), 5, dx=2, dy=1, size=48)
    first = clip_score(iter(video), "a red panda", image, text, batch=2)
    again = clip_score(iter(video.float() / 255), "a red panda", image, text, batch=4)
    assert len(first.per_frame) == 5 and all(-1 <= s <= 1 for s in first.per_frame)
    assert first.per_frame == pytest.approx(again.per_frame, abs=1e-6)  # 1/255 rounding of the input is exact
    assert first.score == pytest.approx(sum(first.per_frame) / 5)
    other = clip_score(iter(video), "an empty street at night", image, text)
    assert other.per_frame != pytest.approx(first.per_frame, abs=1e-4)  # the prompt matters


def test_clip_towers_equal_open_clips_own_model(tiny_clip):
    import open_clip
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    from streaming_core.checkpoints.files import load_state_dict
    from streaming_core.models.clip_tokenizer import tokenize

    path, image, text = tiny_clip
    model = CLIP(embed_dim=32, vision_cfg=CLIPVisionCfg(layers=1, width=32, head_width=32, mlp_ratio=2.0, patch_size=16,
                                                        image_size=32),
                 text_cfg=CLIPTextCfg(context_length=77, vocab_size=49408, width=32, heads=1, layers=3)).eval()
    model.load_state_dict(load_state_dict(path), strict=True)
    prompt = "a red panda climbing a tree"
    ids = open_clip.tokenize([prompt])
    assert torch.equal(ids, tokenize(prompt))
    with torch.no_grad():
        torch.testing.assert_close(text(ids), model.encode_text(ids), rtol=0, atol=2e-5)
        frames = smooth_pattern(9, 40, 56)[None].float() / 255
        pixels = clip_image_input(frames, 32)
        torch.testing.assert_close(image.model.visual(pixels), model.encode_image(pixels), rtol=0, atol=1e-6)


def test_clip_score_without_prompt_or_with_unmatched_towers_is_a_clear_error(tiny_clip):
    from streaming_core.errors import CheckpointError
    from streaming_core.metrics.clip_score import ClipTextTower

    _, image, text = tiny_clip
    frames = smooth_pattern(10, 32, 32)[None]
    with pytest.raises(InputError, match="prompt"):
        clip_score(iter(frames), "  ", image, text)
    wider = ClipTextTower(text.encoder, torch.zeros(32, 16))
    with pytest.raises(CheckpointError, match="not the two halves of one CLIP model"):
        clip_score(iter(frames), "a cat", image, wider)


# ---------------------------------------------------------------------------------- evaluate

def test_a_one_frame_video_is_a_clear_error():
    one = smooth_pattern(11, 32, 32)[None]
    with pytest.raises(InputError, match="at least 2 frames; this one has 1"):
        evaluate_video(lambda: iter(one), "one", EvalModels(), EvalSettings())


def test_json_and_png_are_written_atomically(tmp_path, monkeypatch):
    video = _cut_video()
    report = evaluate_video(lambda: iter(video), "cut", EvalModels(flow=constant_flow(1, 0)),
                            EvalSettings(chunk=16, overlap=8, mawe_size=SIZE))
    out_json, out_png = tmp_path / "r.json", tmp_path / "r.png"
    save_text(report_json([report], EvalSettings()), out_json)
    save_png(render_curves([report, report]), out_png)
    data = json.loads(out_json.read_text())
    assert len(data["videos"][0]["curves"]["warp_error"]) == 39 and data["videos"][0]["scuts"] == 1
    from PIL import Image

    assert Image.open(out_png).size[0] == 960
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.png"]

    before_json, before_png = out_json.read_bytes(), out_png.read_bytes()

    def crash_after_writing(self, fp, *args, **kwargs):
        with open(fp, "wb") as f:
            f.write(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", crash_after_writing)
    with pytest.raises(OSError):
        save_png(render_curves([report]), out_png)
    monkeypatch.setattr(type(out_json), "write_text", lambda self, *a, **k: (open(self, "w").write("{"), 1 / 0))
    with pytest.raises(ZeroDivisionError):
        save_text("{}", out_json)
    assert out_png.read_bytes() == before_png and out_json.read_bytes() == before_json  # old files untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.png"]  # no half-written leftovers


def test_the_plot_marks_chunk_overlaps_and_differs_per_video():
    video = _cut_video()
    with_seams = evaluate_video(lambda: iter(video), "a", EvalModels(), EvalSettings(chunk=24, overlap=8))
    without = evaluate_video(lambda: iter(video), "a", EvalModels(), EvalSettings(chunk=None))
    assert with_seams.overlaps == [[15, 24]]
    a, b = render_curves([with_seams]), render_curves([without])
    grey = (232, 232, 232)

    def grey_pixels(img):
        return dict((c, n) for n, c in img.getcolors(1 << 20)).get(grey, 0)
    assert grey_pixels(a) > 5000 > 100 > grey_pixels(b)  # the shaded band (text antialiasing may touch a few)


def test_progress_counts_mawe_pairs_and_can_stop_the_run():
    from streaming_core.errors import Cancelled

    video = translated(smooth_pattern(12, 120, 120), 6, dx=1, dy=0, size=32)
    seen = []
    evaluate_video(lambda: iter(video), "v", EvalModels(flow=constant_flow(1, 0)), EvalSettings(chunk=None, mawe_size=32),
                   on_step=lambda done, total, preview: seen.append((done, total)))
    assert seen == [(k, 5) for k in range(1, 6)]

    def stop_after_two(done, total, preview):
        if done == 2:
            raise Cancelled("stop")
    with pytest.raises(Cancelled):
        evaluate_video(lambda: iter(video), "v", EvalModels(flow=constant_flow(1, 0)),
                       EvalSettings(chunk=None, mawe_size=32), on_step=stop_after_two)


def test_without_pyscenedetect_scuts_is_skipped_with_what_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_scenedetect(name, *args, **kwargs):
        if name == "scenedetect" or name.startswith("scenedetect."):
            raise ImportError("No module named 'scenedetect'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_scenedetect)
    video = _cut_video()
    report = evaluate_video(lambda: iter(video), "v", EvalModels(), EvalSettings(chunk=None))
    assert report.scuts is None
    assert any(line.startswith("SCuts skipped:") and "pip install scenedetect-headless" in line for line in report.skipped)
