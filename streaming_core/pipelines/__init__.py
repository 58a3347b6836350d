"""Whole runs over tensors: initial chunk, CAM extension, the chunk loop and its resume folder, refine,
upscale, and their benchmarks; what the CLI and the nodes call.

May import: checkpoints, sampling, models, schedules and the base modules (``state_files`` for state
files); never ``cli`` or ``nodes``. A new run mode is a new module here.
"""
