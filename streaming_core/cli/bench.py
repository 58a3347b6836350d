"""``python -m streaming_core bench``: seconds per generated frame and peak memory, per stage.

Tiny random models by default (any device, seconds on a CPU); ``--full`` builds the real-size
networks with random weights directly on a GPU (no weights file). Stages other than the
generation ones come from their pipeline modules (``streaming_core.pipelines.refine`` /
``upscale`` with a ``benchmark(...)`` function, see ``streaming_core.benchmark``) and are skipped
with a message where absent.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time

import torch

from .. import benchmark
from ..errors import InputError
from ..pipelines import generate_benchmark
from .devices import DTYPES, pick_device, pick_dtype
from .progress_bar import duration

STAGES = ("initial", "extend", "refine", "upscale")
OTHER_STAGE_MODULES = {"refine": "streaming_core.pipelines.refine", "upscale": "streaming_core.pipelines.upscale"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stage", choices=STAGES + ("all",), default="all", help="which stage (default: all)")
    parser.add_argument("--full", action="store_true",
                        help="full-size networks with random weights, built on the GPU (needs ~14 GB in fp16)")
    parser.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda when available)")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default=None,
                        help="precision (default: fp16 on a GPU, fp32 on the CPU)")
    parser.add_argument("--steps", type=int, default=None,
                        help="denoising steps to time (default 2 tiny, 5 full; results are scaled to the official "
                             "counts; upscale times this many frames)")


def resolve(args) -> tuple[torch.device, torch.dtype]:
    device = pick_device(args.device)
    if args.full and device.type != "cuda":
        raise InputError("--full builds the full-size networks (about 3.4 billion parameters) and is meant for a "
                         "GPU: run it with --device cuda on a machine with one. Without --full the tiny models "
                         "run anywhere.")
    if args.steps is not None and args.steps < 2:
        raise InputError("--steps must be at least 2 (one step is timed separately to split off fixed costs)")
    dtype = pick_dtype(args.dtype, device)
    return device, dtype


def _other_stage(stage: str, full: bool, device, dtype, steps):
    try:
        module = importlib.import_module(OTHER_STAGE_MODULES[stage])
    except ImportError:
        print(f"{stage:<8} skipped: {OTHER_STAGE_MODULES[stage]} is not part of this installation", file=sys.stderr)
        return []
    if not hasattr(module, "benchmark"):
        print(f"{stage:<8} skipped: {OTHER_STAGE_MODULES[stage]} has no benchmark() yet", file=sys.stderr)
        return []
    result = module.benchmark(full=full, device=str(device), dtype=dtype, steps=steps)
    return result if isinstance(result, (list, tuple)) else [result]


class StageProgress:
    """Says which stage runs and, after each stage's first (1-step) timed run, how long the rest takes."""

    def __init__(self, stages: tuple[str, ...]):
        self.stages = stages
        self.started = time.monotonic()
        self.stage_started = self.started
        self.index = 0
        self.costs: list[float] = []  # seconds of each finished stage

    def begin(self, stage: str) -> None:
        if self.index:
            self.costs.append(time.monotonic() - self.stage_started)
        self.index += 1
        self.stage_started = time.monotonic()
        print(f"bench: {stage} ({self.index}/{len(self.stages)}), {duration(self.stage_started - self.started)} "
              "elapsed ...", file=sys.stderr, flush=True)

    def __call__(self, one_step_seconds: float, steps: int) -> None:
        # the coming run costs at most `steps` one-step runs (its fixed part is paid once)
        stage_left = one_step_seconds * steps
        stage_total = time.monotonic() - self.stage_started + stage_left
        per_stage = sum(self.costs + [stage_total]) / (len(self.costs) + 1)
        total_left = stage_left + per_stage * (len(self.stages) - self.index)
        print(f"bench:   1-step run {duration(one_step_seconds)}; ~{duration(total_left)} left in all (later stages "
              "estimated from the ones so far)", file=sys.stderr, flush=True)


def run(args) -> int:
    device, dtype = resolve(args)
    stages = STAGES if args.stage == "all" else (args.stage,)
    print(f"benchmark on {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
          f"{'full-size random' if args.full else 'tiny random'} models, {str(dtype).replace('torch.', '')}",
          file=sys.stderr)
    progress = StageProgress(stages)
    benchmark.on_first_run = progress
    try:
        return _run_stages(args, stages, device, dtype, progress, generate_benchmark)
    finally:
        benchmark.on_first_run = None


def _run_stages(args, stages, device, dtype, progress: StageProgress, generate_benchmark) -> int:
    results = []
    if "initial" in stages or "extend" in stages:
        models = generate_benchmark.build_models(args.full, device, dtype, need_base="initial" in stages)
        if "initial" in stages:
            progress.begin("initial")
            results.append(generate_benchmark.benchmark_initial(full=args.full, device=device, dtype=dtype,
                                                                steps=args.steps, models=models))
            print(results[-1].line())
        if "extend" in stages:
            progress.begin("extend")
            results.append(generate_benchmark.benchmark_extend(full=args.full, device=device, dtype=dtype,
                                                               steps=args.steps, models=models))
            print(results[-1].line())
        del models
    for stage in ("refine", "upscale"):
        if stage in stages:
            progress.begin(stage)
            for result in _other_stage(stage, args.full, device, dtype, args.steps):
                print(result.line() if hasattr(result, "line") else result)
    print(f"bench: done in {duration(time.monotonic() - progress.started)}", file=sys.stderr)
    return 0
