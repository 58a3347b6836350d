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
