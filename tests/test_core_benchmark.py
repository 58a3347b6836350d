"""The benchmark's timing model on a fake clock: a fixed part and a per-step part are separated from a
1-step and a K-step run, and the per-frame figure is extrapolated to the official step count."""

from __future__ import annotations

import pytest
import torch

from streaming_core import benchmark as bench
from streaming_core.benchmark import BenchResult, measure_steps


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_measure_steps_separates_fixed_and_per_step_cost(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(bench.time, "perf_counter", clock)
    calls = []

    def run(steps):
        calls.append(steps)
        clock.now += 1.5 + 0.25 * steps  # 1.5 s fixed + 0.25 s per step

    seconds, per_step, fixed = measure_steps(run, 5, torch.device("cpu"))
    assert calls == [1, 1, 5]  # warm-up, then the two timed runs
    assert seconds == pytest.approx(1.5 + 5 * 0.25)
    assert per_step == pytest.approx(0.25) and fixed == pytest.approx(1.5)
    with pytest.raises(ValueError, match="at least 2 steps"):
        measure_steps(run, 1, torch.device("cpu"))


def test_noise_never_makes_costs_negative(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(bench.time, "perf_counter", clock)
    durations = iter([1.0, 3.0, 2.0])  # warm-up, 1 step (slow: a hiccup), 4 steps

    def run(steps):
        clock.now += next(durations)

    seconds, per_step, fixed = measure_steps(run, 4, torch.device("cpu"))
    assert (seconds, per_step) == (2.0, 0.0) and fixed == pytest.approx(3.0)


def test_seconds_per_frame_is_extrapolated_to_the_official_steps():
    result = BenchResult(stage="extend", device="cpu", dtype="float32", size="64x64", frames=8, steps=2,
                         seconds=3.0, seconds_per_step=0.5, fixed_seconds=2.0, official_steps=50,
                         peak_memory_bytes=2**30, memory_kind="process peak RSS")
    assert result.seconds_per_frame == pytest.approx((2.0 + 50 * 0.5) / 8)
    line = result.line()
    assert "3.375 s/frame at 50 steps" in line and "1.00 GiB" in line


def test_warm_up_run_and_first_run_report(monkeypatch):
    """The 1-step run is reported before the long one, after the warm-up (which can be left out)."""
    clock = FakeClock()
    monkeypatch.setattr(bench.time, "perf_counter", clock)
    calls, reports = [], []

    def run(steps):
        calls.append(steps)
        clock.now += 1.0 + steps

    monkeypatch.setattr(bench, "on_first_run", lambda seconds, steps: reports.append((seconds, steps, list(calls))))
    measure_steps(run, 3, torch.device("cpu"))
    assert calls == [1, 1, 3] and reports == [(2.0, 3, [1, 1])]
    calls.clear(), reports.clear()
    measure_steps(run, 2, torch.device("cpu"), warm_up=False)
    assert calls == [1, 2] and reports == [(2.0, 2, [1])]


def test_upscale_line_counts_frames_not_steps():
    """Upscale is timed frame by frame: its line says frames, never "1 frames 3 steps ... at 1 steps"."""
    result = BenchResult(stage="upscale", device="cpu", dtype="float32", size="64x48", frames=1, steps=3,
                         seconds=6.0, seconds_per_step=2.0, fixed_seconds=0.0, official_steps=1,
                         peak_memory_bytes=None, memory_kind="process peak RSS", per="frame")
    line = result.line()
    assert "3 frames in 6.00s (2.000 s per further frame)  -> 2.000 s/frame" in line, line
    assert "steps" not in line and "1 frames" not in line, line
