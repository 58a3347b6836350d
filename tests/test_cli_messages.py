"""What a new user reads: defaults in --help, a mistyped path named as such, the time left from the
first step (and a warning when it is long), tiny test weights named, refine's canvas on them."""

from __future__ import annotations

import argparse
import io

import pytest
import torch

from streaming_core.cli import main, progress_bar
from streaming_core.cli.progress_bar import ProgressBar
from streaming_core.cli.refine import choose_resolution
from streaming_core.models.enhancer import NativeResolution
from streaming_core.progress import LatentPreview
from streaming_core.tiny.marker import TEST_SIZED_PARAMETERS, tiny_tree_of, tiny_weights_note, write_marker


def _help(capsys, command: str) -> str:
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    assert stop.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines; compare word by word


def test_help_shows_defaults(capsys):
    text = _help(capsys, "generate")
    assert "length of the video in frames (at least 16) (default: 24)" in text, text
    assert "DDIM steps per extension chunk (default: 50)" in text and "(default: 256)" in text, text
    assert "--keep-state keep the resume state after a finished run --steps" in text.replace("sampling: ", ""), text
    text = _help(capsys, "upscale")
    assert "[--raft FILE]" in text and "H.264 quality (lower = better) (default: 18)" in text, text
    text = _help(capsys, "refine")
    assert "solver steps (default 30)" in text and "(default 30) (default" not in text, text


def test_a_mistyped_st2v_path_is_named_before_anything_else(tmp_path, capsys):
    missing = tmp_path / "streaming_t2v.ckpt"
    assert main(["generate", "--prompt", "x", "--st2v", str(missing), "--models-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: --st2v {missing}: no such file or folder. Check the path.\n", err


class _Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_progress_prints_the_time_left_at_the_first_step_and_warns_when_long(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(progress_bar.time, "monotonic", clock)
    out = io.StringIO()  # not a terminal: lines, not redraws
    bar = ProgressBar("refine ", stream=out, every=30, long_run_hint="use fewer --steps")
    clock.now += 20
    bar(1, 100)  # 20 s per step: 99 steps left
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("refine [") and lines[0].endswith("1/100 steps, 20 s elapsed, ~33 min left"), lines
    assert lines[1] == "warning: at the pace of the first step this run takes about 33 min more; use fewer --steps"
    for done in range(2, 5):  # quick steps within 30 s and no chunk end (a step's latent preview is none): nothing printed
        clock.now += 5
        bar(done, 100, LatentPreview(torch.zeros(1, 4, 2, 2, 2)) if done % 2 else None)
    assert len(out.getvalue().splitlines()) == 2
    clock.now += 20  # 35 s since the last line
    bar(5, 100)
    bar(6, 100, torch.zeros(1, 2, 2, 3))  # a chunk ended
    assert len(out.getvalue().splitlines()) == 4 and "warning" not in out.getvalue().splitlines()[-1]


def test_a_short_run_gets_no_warning(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(progress_bar.time, "monotonic", clock)
    out = io.StringIO()
    bar = ProgressBar(stream=out)
    clock.now += 1
    bar(1, 10)
    assert out.getvalue().splitlines() == ["[###---------------------------] 1/10 steps, 1 s elapsed, ~9 s left"]


def test_tiny_weights_are_named_by_size_and_by_make_tiny_marker(tmp_path):
    tiny = torch.nn.Linear(8, 8)
    real_size = torch.nn.Linear(20_000, 20_000, device="meta")  # 400 M parameters, no memory
    assert sum(p.numel() for p in real_size.parameters()) > TEST_SIZED_PARAMETERS
    weights = tmp_path / "models" / "stream_diffvsr" / "Stream-DiffVSR" / "unet" / "model.safetensors"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"")

    assert tiny_tree_of(weights) is None
    note = tiny_weights_note([weights], tiny)
    assert note.startswith("tiny test weights (by their size; 0.0 M parameters"), note
    write_marker(tmp_path / "models")
    assert tiny_tree_of(weights) == (tmp_path / "models").resolve()
    note = tiny_weights_note([weights], tiny)
    assert note.startswith(f"tiny test weights (written by make-tiny in {(tmp_path / 'models').resolve()}"), note
    assert "the output is noise" in note
    # real-size weights are never called test weights, even beside make-tiny's marker
    assert tiny_weights_note([weights], real_size) is None


def test_refine_canvas_on_tiny_weights_is_the_videos_own():
    native = NativeResolution(1280, 720, pad=True)
    args = argparse.Namespace(width=None, height=None, no_pad=False)
    resolution, why = choose_resolution(native, 48, 64, args, tiny=True)
    assert resolution == NativeResolution(64, 48, pad=False) and "64x48" in why and "1280x720" in why
    assert choose_resolution(native, 48, 64, args, tiny=False) == (native, None)
    args = argparse.Namespace(width=320, height=None, no_pad=False)  # asked for: kept, also on tiny weights
    assert choose_resolution(native, 48, 64, args, tiny=True) == (NativeResolution(320, 720, pad=True), None)
