"""Samplers and what they step through: DDIM, DPM-Solver++, DPM++ SDE, guidance, windows and the
randomized-blend cut, SDEdit over windows; small functions over a denoiser callable.

May import: torch, ``streaming_core.models`` (for a bundle's shape), ``streaming_core.schedules`` and the
base modules; never checkpoints, pipelines or above. A new sampler is a new module here.
"""
