"""``python -m streaming_core demo``: the whole long-video pipeline on tiny random models.

Builds a tiny StreamingT2V and a tiny ModelScope UNet in memory (seeded, no file read or written
besides the output), then runs exactly the code ``generate`` runs: initial chunk, CAM extensions,
streaming to an mp4, resume state. A few steps at 64x64 take seconds on a CPU. The output shows
that the pipeline works end to end; without trained weights it is coloured noise, and it says so.
"""

from __future__ import annotations

import argparse
import sys
from functools import lru_cache

DEMO_PROMPT = "a red panda climbing a tree, pipeline demo"
BANNER = ("PIPELINE DEMO: tiny random-weight models, no trained weights. The video proves the pipeline "
          "runs end to end; its content is noise.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .generate import add_generation_arguments

    add_generation_arguments(parser, demo=True)
    parser.set_defaults(out="streamingt2v_demo.mp4")


@lru_cache(maxsize=1)
def tiny_models():
    """(tiny StreamingT2V, tiny ModelScope UNet), seeded, built once per process (eval, no grad:
    nothing a run does changes them)."""
    from ..tiny.modelscope import build_tiny_modelscope_unet
    from ..tiny.st2v import build_tiny_streamingt2v

    return build_tiny_streamingt2v(seed=0), build_tiny_modelscope_unet(seed=0)


def run_demo(args) -> int:
    """Also what ``generate`` falls back to when no weights exist (its sizes and steps are then
    reduced to demo values)."""
    import torch

    from .generate import check_generation_args, render

    if not args.prompt:
        args.prompt = [DEMO_PROMPT]
    check_generation_args(args)
    # generate's full-size defaults would be slow and pointless on random tiny models
    args.steps, args.base_steps = min(args.steps, 3), min(args.base_steps, 3)
    if args.height > 128 or args.width > 128:
        args.height, args.width = 64, 64
    print(BANNER, file=sys.stderr)
    model, base = tiny_models()
    with torch.inference_mode():
        written = render(args, model, base, label="demo ")
    print(f"wrote {args.out}: {written} frames at {args.fps:g} fps ({BANNER})", file=sys.stderr)
    return 0


def run(args) -> int:
    return run_demo(args)
