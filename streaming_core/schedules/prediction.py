"""What a denoiser's output is: one vocabulary for the pack ("epsilon", "v", "sample").

Hub scheduler configs (diffusers) spell v-prediction "v_prediction"; ``prediction_type`` reads both
spellings and returns ours, so a config value and a pack value compare equal.
"""

from __future__ import annotations

PREDICTION_TYPES = ("epsilon", "v", "sample")
_HUB_SPELLINGS = {"v_prediction": "v"}


def prediction_type(name: str) -> str:
    """``name`` in the pack's vocabulary; ValueError for an unknown one."""
    ours = _HUB_SPELLINGS.get(name, name)
    if ours not in PREDICTION_TYPES:
        raise ValueError(f"unknown prediction type {name!r}; one of {PREDICTION_TYPES} (or diffusers' v_prediction)")
    return ours
