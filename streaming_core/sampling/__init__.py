"""Samplers: loops of one shape over one denoiser, ``model(x, t) -> output`` in the schedule's prediction
type (``denoiser.py``); DDIM, DPM-Solver++(2M), guidance, and the refiner's blended SDEdit (dpmpp_sde).
A new sampler is a module here plus a row in ``registry.py``; pipelines and the CLI take it by name.

May import: torch, ``streaming_core.models`` (for a bundle's shape), ``streaming_core.schedules`` (tables,
spacing, the one x0/eps conversion) and the base modules; never checkpoints, pipelines or above.
"""
