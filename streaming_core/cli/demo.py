"""``python -m streaming_core demo``: the whole long-video pipeline on tiny random models.

Builds a tiny StreamingT2V and a tiny ModelScope UNet in memory (seeded, no file read or written
besides the output), then runs exactly the code ``generate`` runs: initial chunk, CAM extensions,
streaming to an mp4, resume state. A few steps at 64x64 take seconds on a CPU. The output shows
that the pipeline works end to end; without trained weights it is coloured noise, and it says so.
The demo itself lives in ``generate.py``, which falls back to it when no weights exist.
"""

from __future__ import annotations

import argparse

from .generate import BANNER, DEMO_PROMPT, add_generation_arguments, run_demo, tiny_models  # noqa: F401 (the demo's API)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_generation_arguments(parser, demo=True)
    parser.set_defaults(out="streamingt2v_demo.mp4")


def run(args) -> int:
    return run_demo(args)
