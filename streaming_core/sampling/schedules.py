"""Moved to ``streaming_core.schedules.discrete``; this re-export keeps other branches' imports working
until they are rebased (remove once nothing imports ``sampling.schedules``)."""

from ..schedules.discrete import (PREDICTION_TYPES, DiscreteVPSchedule, betas_for,  # noqa: F401
                                  modelscope_t2v_schedule, spaced_timesteps)
