"""``python -m streaming_core evaluate``: the table, JSON and PNG, skip lines for missing weights, and
errors before any model loads."""

from __future__ import annotations

import json

import pytest
import torch

from streaming_core.cli import main
from streaming_core.checkpoints.files import save_torch
from streaming_core.video_io import write_video
from test_metrics import smooth_pattern, translated


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    drift = translated(smooth_pattern(0, 120, 120), 20, dx=1, dy=0, size=32)
    cut = torch.cat([drift[:18], translated(smooth_pattern(1, 120, 120), 18, dx=0, dy=1, size=32)])
    return {"drift": write_video(folder / "drift.mp4", drift), "cut": write_video(folder / "cut.mp4", cut),
            "one": write_video(folder / "one.mp4", drift[:1])}


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    from streaming_core.models.sdvsr.raft import build_raft
    from streaming_core.tiny.clip import write_tiny_open_clip
    from streaming_core.tiny.sdvsr import TINY_RAFT, randomize_

    root = tmp_path_factory.mktemp("models")
    raft = randomize_(build_raft(TINY_RAFT), torch.Generator().manual_seed(0))
    save_torch(raft.state_dict(), root / "stream_diffvsr" / "raft_large_C_T_SKHT_V2-ff5fadd5.pth")
    write_tiny_open_clip(root / "streamingt2v" / "open_clip_pytorch_model.bin")
    return root


def test_missing_weights_skip_their_metric_with_the_file_to_add(videos, tmp_path, capsys):
    rc = main(["evaluate", str(videos["drift"]), str(videos["cut"]), "--models-dir", str(tmp_path), "--prompt", "x",
               "--chunks", "none"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "MAWE skipped: RAFT-large weights not found at" in out and "raft_large_C_T_SKHT_V2-ff5fadd5.pth" in out
    assert "CLIP score skipped: the OpenCLIP ViT-H/14 text tower is not found at" in out
    assert "open_clip_pytorch_model.bin" in out
    scuts = next(line for line in out.splitlines() if line.startswith("SCuts"))
    assert scuts.split()[-2:] == ["0", "1"]  # drift.mp4: no cut; cut.mp4: one
    mawe = next(line for line in out.splitlines() if line.startswith("MAWE"))
    assert mawe.split()[-2:] == ["-", "-"]


def test_full_run_writes_json_and_png(videos, models_dir, tmp_path, capsys):
    out_json, out_png = tmp_path / "report.json", tmp_path / "curves.png"
    rc = main(["evaluate", str(videos["drift"]), str(videos["cut"]), "--models-dir", str(models_dir),
               "--prompt", "a drifting pattern", "--chunks", "16:8", "--mawe-size", "32", "--names", "a,b",
               "--json", str(out_json), "--plot", str(out_png), "--device", "cpu"])
    captured = capsys.readouterr()
    out = captured.out
    assert rc == 0 and "skipped" not in out, out
    # One progress line for the whole command with the time left from the first unit: 19 + 35 MAWE pairs
    # and 20 + 36 CLIP frames over the two videos.
    progress = [line for line in captured.err.splitlines() if line.startswith("evaluate [")]
    assert progress[0].split("] ")[1].startswith("1/110 MAWE pairs + CLIP frames") and " left" in progress[0]
    assert progress[-1].split("] ")[1].startswith("110/110 ")
    data = json.loads(out_json.read_text())
    a, b = data["videos"]
    assert (a["name"], b["name"], a["frames"], b["frames"]) == ("a", "b", 20, 36)
    assert len(a["curves"]["warp_error"]) == 19 and len(b["curves"]["flow_magnitude"]) == 35
    assert a["mawe"] >= 0 and -1 <= a["clip_score"] <= 1 and b["scuts"] == 1
    assert a["weights"]["raft"].endswith("raft_large_C_T_SKHT_V2-ff5fadd5.pth")
    assert "open_clip_pytorch_model.bin" in a["weights"]["clip"]
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"raft weights: {models_dir / 'stream_diffvsr' / 'raft_large_C_T_SKHT_V2-ff5fadd5.pth'}" in out
    assert "clip weights: text: " in out and "open_clip_pytorch_model.bin" in out


def test_a_one_frame_video_fails_before_any_model_loads(videos, models_dir, capsys):
    rc = main(["evaluate", str(videos["one"]), "--models-dir", str(models_dir)])
    err = capsys.readouterr().err
    assert rc == 2 and "has 1 frame" in err and "at least 2" in err and "loading" not in err


@pytest.mark.parametrize("args, message", [
    (["--chunks", "24-8"], "use st2v, refine, none or CHUNK:OVERLAP"),
    (["--mawe-size", "100"], "multiple of 8"),
    (["--names", "a,b"], "2 names for 1 videos"),
])
def test_bad_options_are_one_line_errors(videos, args, message, capsys):
    rc = main(["evaluate", str(videos["drift"]), *args])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.startswith("error: ")


def test_an_output_never_overwrites_an_input(videos, capsys):
    before = videos["drift"].read_bytes()
    rc = main(["evaluate", str(videos["drift"]), "--json", str(videos["drift"])])
    assert rc == 2 and "inputs are never overwritten" in capsys.readouterr().err
    assert videos["drift"].read_bytes() == before
