"""Moved to ``streaming_core.schedules.vp_sigmas``; this re-export keeps other branches' imports working
until they are rebased (remove once nothing imports ``sampling.vp_schedules``)."""

from ..schedules.vp_sigmas import (VPSigmaTable, logsnr_cosine_interp, strength_to_timestep,  # noqa: F401
                                   zero_terminal_snr)
