"""ST2V Evaluate Video inside a real ComfyUI: two stock EmptyImage batches joined by ImageBatch make a
36-frame video with one hard cut at frame 18; the node's table and JSON go to Preview Any (ComfyUI's
history keeps its text) and its plot to SaveImage. Tiny RAFT and tiny open_clip files stand in for the
real weights under the real file names."""

from __future__ import annotations

import json

import pytest
import torch

from comfy_harness_util import comfyui, run_workflows, summarize
from streaming_core.checkpoints.files import save_torch

pytestmark = comfyui

RAFT = "raft_large_C_T_SKHT_V2-ff5fadd5.pth"
CLIP = "open_clip_pytorch_model.bin"


def evaluate_graph(raft, clip):
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 18, "color": 0x3366AA}},
        "2": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 18, "color": 0xCC8822}},
        "3": {"class_type": "ImageBatch", "inputs": {"image1": ["1", 0], "image2": ["2", 0]}},
        "4": {"class_type": "ST2VEvaluateVideo",
              "inputs": {"video": ["3", 0], "prompt": "a blue square", "raft": raft, "clip": clip, "clip_image": "auto",
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
    result = run_workflows({"evaluate": evaluate_graph(f"stream_diffvsr/{RAFT}", f"streamingt2v/{CLIP}"),
                            "bad_pick": evaluate_graph("stream_diffvsr/missing.pth", "none")},
                           tmp_path, expect={"bad_pick": "invalid"}, models_dir=models)
    record = result.workflow("evaluate")
    assert record["status"] == "success", summarize(result)
    table = record["outputs"]["5"]["text"][0]
    data = json.loads(record["outputs"]["6"]["text"][0])["videos"][0]
    print(table)
    assert data["frames"] == 36 and data["scuts"] == 1 and data["scut_frames"] == [18]
    assert data["mawe"] is not None and -1 <= data["clip_score"] <= 1 and data["seam_score"] > 10
    assert "skipped" not in table
    assert result.outputs("evaluate_plot*.png"), "the plot was saved"
    assert result.workflow("bad_pick")["status"] == "invalid"  # a file not in the menu is refused by ComfyUI
