"""Samplers by name: the one table the pipelines, the CLI's ``--sampler`` choices and tests look up.

Every entry is a loop of the one shape in ``sampling/denoiser.py``. A new sampler is a module here
plus one row in ``SAMPLERS`` (or a ``register_sampler`` call); the first chunk, the CAM extension and
the upscaler then take it by name. ``OFFICIAL_SAMPLERS``: each product's official choice.

The refiner's SDEdit (``sdedit.py``, ``wavefront.py``) is not a row: it steps EDM sigmas from a
``VPSigmaTable`` with randomized blending inside its denoiser and a resumable wavefront state, which
this loop shape does not carry. It uses the same denoiser signature and ``to_x0``.
"""

from __future__ import annotations

from ..errors import InputError
from .ddim import sample_ddim
from .denoiser import SamplerLoop
from .dpm_solver import sample_dpmpp_2m

SAMPLERS: dict[str, SamplerLoop] = {
    "dpmpp_2m": sample_dpmpp_2m,  # DPM-Solver++(2M), diffusers' DPMSolverMultistepScheduler defaults
    "ddim": sample_ddim,  # DDIM with eta (diffusers' DDIMScheduler)
}

# product -> the official code's sampler
OFFICIAL_SAMPLERS = {
    "initial_chunk": "dpmpp_2m",  # TextToVideoSDPipeline with DPMSolverMultistepScheduler.from_config(DDIM)
    "extension": "ddim",  # StreamingT2V's CAM extension, eta 1
    "upscale": "ddim",  # Stream-DiffVSR, eta 0, 4 trailing steps
}


def sampler_names() -> tuple[str, ...]:
    return tuple(SAMPLERS)


def register_sampler(name: str, loop: SamplerLoop) -> SamplerLoop:
    """Add ``loop`` under ``name`` (a new name only); returns ``loop``."""
    if name in SAMPLERS:
        raise ValueError(f"a sampler named {name!r} is already registered")
    SAMPLERS[name] = loop
    return loop


def get_sampler(name: str) -> SamplerLoop:
    """The loop registered as ``name``; a one-line InputError listing the choices otherwise."""
    loop = SAMPLERS.get(name) if isinstance(name, str) else None
    if loop is None:
        raise InputError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    return loop
