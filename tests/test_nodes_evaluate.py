"""ST2V Evaluate Video outside ComfyUI (the host's fallbacks): menus, numbers, JSON and the plot IMAGE."""

from __future__ import annotations

import json

import pytest
import torch

from pack_loader import load_pack
from streaming_core.checkpoints.files import save_torch
from streaming_core.errors import InputError
from test_metrics import smooth_pattern, translated

PACK = load_pack()
host = PACK.nodes.host
NODE = PACK.NODE_CLASS_MAPPINGS["ST2VEvaluateVideo"]
RAFT = "stream_diffvsr/raft_large_C_T_SKHT_V2-ff5fadd5.pth"
CLIP = "streamingt2v/open_clip_pytorch_model.bin"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from streaming_core.models.sdvsr.raft import build_raft
    from streaming_core.tiny.clip import write_tiny_open_clip
    from streaming_core.tiny.sdvsr import TINY_RAFT, randomize_

    root = tmp_path_factory.mktemp("models")
    save_torch(randomize_(build_raft(TINY_RAFT), torch.Generator().manual_seed(0)).state_dict(), root / RAFT)
    write_tiny_open_clip(root / CLIP)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STREAMING_MODELS_DIR", str(root))
        yield root


def video():
    frames = translated(smooth_pattern(0, 120, 120), 20, dx=1, dy=0, size=32)
    return frames.float() / 255


def test_menus_default_to_the_files_evaluation_needs(models):
    required = NODE.INPUT_TYPES()["required"]
    assert required["raft"][1]["default"] == RAFT and "none" in required["raft"][0]
    assert required["clip"][1]["default"] == CLIP
    assert required["clip_image"][1]["default"] == "auto"


def test_the_node_gives_numbers_json_and_a_plot_image(models):
    report, data, plot = NODE().evaluate(video(), "a drifting pattern", RAFT, CLIP, "auto", "st2v", 32)
    parsed = json.loads(data)["videos"][0]
    assert parsed["frames"] == 20 and parsed["mawe"] >= 0 and -1 <= parsed["clip_score"] <= 1
    assert parsed["scuts"] == 0 and parsed["seam_score"] is not None
    assert "MAWE" in report and "skipped" not in report
    assert plot.ndim == 4 and plot.shape[0] == 1 and plot.shape[2] == 960 and plot.shape[3] == 3
    assert plot.dtype == torch.float32 and 0 <= float(plot.min()) and float(plot.max()) <= 1


def test_a_video_gives_the_numbers_of_the_same_frames_as_an_image(models, tmp_path, monkeypatch):
    """A VIDEO (a hand-off file, as the pack's nodes give) is read from its file, never whole through
    get_components, and measures exactly as the IMAGE of its frames: the file is lossless, so both paths
    feed the same float frames through the same kernels. Only the rate differs: the VIDEO's own (10 fps)
    against an IMAGE's 8."""
    monkeypatch.setenv("STREAMING_TEMP_DIR", str(tmp_path))
    frames = video()
    clip = host.write_video_output([frames], 10, "test input")

    def whole_video():
        raise AssertionError("the whole video was decoded into memory")

    clip.get_components = whole_video
    assert torch.equal(host.video_source(clip).windows(frames.shape[0]).__next__(), frames), "lossless hand-off"
    as_image = NODE().evaluate(frames, "a drifting pattern", RAFT, CLIP, "auto", "st2v", 32)
    as_video = NODE().evaluate(clip, "a drifting pattern", RAFT, CLIP, "auto", "st2v", 32)
    image_report, video_report = (json.loads(out[1])["videos"][0] for out in (as_image, as_video))
    assert (image_report.pop("fps"), video_report.pop("fps")) == (8.0, 10.0)
    assert image_report["mawe"] is not None and image_report["clip_score"] is not None
    assert image_report["seam_score"] is not None and image_report["frames"] == 20
    assert video_report == image_report
    assert torch.equal(as_video[2], as_image[2]), "the same curves make the same plot"


def test_none_picks_skip_with_the_file_to_add(models):
    report, data, _ = NODE().evaluate(video(), "", "none", "none", "auto", "none", 720)
    assert "MAWE skipped" in report and "raft_large_C_T_SKHT_V2-ff5fadd5.pth" in report
    assert "CLIP score skipped: no prompt given" in report
    assert json.loads(data)["videos"][0]["mawe"] is None


def test_a_one_frame_video_is_a_clear_error(models):
    with pytest.raises(InputError, match="at least 2 frames"):
        NODE().evaluate(video()[:1], "", "none", "none", "auto", "st2v", 720)


def test_the_nodes_file_names_are_the_cores():
    from streaming_core.checkpoints.sdvsr import RAFT_FILE_NAME
    from streaming_core.metrics.evaluate import CHUNK_PRESETS
    from streaming_core.metrics.weights import OPEN_CLIP_FILE

    module = PACK.nodes.evaluate
    assert (module.RAFT_FILE, module.OPEN_CLIP_FILE) == (RAFT_FILE_NAME, OPEN_CLIP_FILE)
    assert set(module.CHUNK_CHOICES) == set(CHUNK_PRESETS) | {"none"}
