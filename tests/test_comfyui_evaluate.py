"""ST2V Evaluate Video inside a real ComfyUI: two stock EmptyImage batches joined by ImageBatch make a
36-frame video with one hard cut at frame 18; the node's table and JSON go to Preview Any (ComfyUI's
history keeps its text) and its plot to SaveImage. The same frames as a VIDEO (CreateVideo's, in
memory; LoadVideo's, a lossless file read lazily) give the same numbers. Tiny RAFT and tiny open_clip files stand in for the
real weights under the real file names."""

from __future__ import annotations

import json

import pytest
import torch

from comfy_harness_util import comfyui, run_workflows, summarize
from streaming_core.checkpoints.files import save_torch
from streaming_core.video_io import LOSSLESS, VideoWriter

pytestmark = comfyui

RAFT = "raft_large_C_T_SKHT_V2-ff5fadd5.pth"
CLIP = "open_clip_pytorch_model.bin"
BLUE, ORANGE = 0x3366AA, 0xCC8822
CUT_FILE = "evaluate_cut.mkv"


def solid(color: int, frames: int) -> torch.Tensor:
    rgb = torch.tensor([(color >> 16) & 255, (color >> 8) & 255, color & 255], dtype=torch.uint8)
    return rgb.expand(frames, 64, 64, 3)


def evaluate_graph(raft, clip, video=("3", 0)):
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 18, "color": BLUE}},
        "2": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 18, "color": ORANGE}},
        "3": {"class_type": "ImageBatch", "inputs": {"image1": ["1", 0], "image2": ["2", 0]}},
        "8": {"class_type": "CreateVideo", "inputs": {"images": ["3", 0], "fps": 8.0}},
        "9": {"class_type": "LoadVideo", "inputs": {"file": CUT_FILE}},
        "4": {"class_type": "ST2VEvaluateVideo",
              "inputs": {"video": list(video), "prompt": "a blue square", "raft": raft, "clip": clip, "clip_image": "auto",
                         "chunks": "st2v", "mawe_size": 32}},
        "5": {"class_type": "PreviewAny", "inputs": {"source": ["4", 0]}},
        "6": {"class_type": "PreviewAny", "inputs": {"source": ["4", 1]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["4", 2], "filename_prefix": "st2v/evaluate_plot"}},
    }


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from streaming_core.models.sdvsr.raft import build_raft
    from streaming_core.tiny.clip import write_tiny_open_clip
    from streaming_core.tiny.sdvsr import TINY_RAFT, randomize_

    root = tmp_path_factory.mktemp("models")
    save_torch(randomize_(build_raft(TINY_RAFT), torch.Generator().manual_seed(0)).state_dict(),
               root / "stream_diffvsr" / RAFT)
    write_tiny_open_clip(root / "streamingt2v" / CLIP)
    return root


def test_evaluate_node_in_comfyui(models, tmp_path):
    cut = tmp_path / CUT_FILE  # the same 36 frames as a lossless 8 fps file, for LoadVideo
    with VideoWriter(cut, 8, format=LOSSLESS) as writer:
        writer.write(torch.cat([solid(BLUE, 18), solid(ORANGE, 18)]))
    picks = (f"stream_diffvsr/{RAFT}", f"streamingt2v/{CLIP}")
    result = run_workflows({"evaluate": evaluate_graph(*picks),
                            "evaluate_created_video": evaluate_graph(*picks, video=("8", 0)),
                            "evaluate_loaded_video": evaluate_graph(*picks, video=("9", 0)),
                            "bad_pick": evaluate_graph("stream_diffvsr/missing.pth", "none")},
                           tmp_path, expect={"bad_pick": "invalid"}, models_dir=models, inputs=(cut,))
    record = result.workflow("evaluate")
    assert record["status"] == "success", summarize(result)
    table = record["outputs"]["5"]["text"][0]
    data = json.loads(record["outputs"]["6"]["text"][0])["videos"][0]
    print(table)
    assert data["frames"] == 36 and data["scuts"] == 1 and data["scut_frames"] == [18]
    assert data["mawe"] is not None and -1 <= data["clip_score"] <= 1 and data["seam_score"] > 10
    assert "skipped" not in table
    assert result.outputs("evaluate_plot*.png"), "the plot was saved"
    for name in ("evaluate_created_video", "evaluate_loaded_video"):
        record = result.workflow(name)
        assert record["status"] == "success", summarize(result)
        assert json.loads(record["outputs"]["6"]["text"][0])["videos"][0] == data, name
    assert result.workflow("bad_pick")["status"] == "invalid"  # a file not in the menu is refused by ComfyUI
