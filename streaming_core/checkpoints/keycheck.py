"""Key coverage: does our model, built at full size on the meta device, have exactly the official
state-dict keys and shapes once our key mapping is applied?

The official key lists in ``shared/specs/*_keys.json`` come in three formats; ``detect_key_list``
tells them apart and each model family provides ``key_report(spec) -> KeyReport`` (``key_report.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputError
from . import msvid2vid, sdvsr, st2v
from .key_report import KeyReport, compare_shapes  # noqa: F401 (the report type of check_key_file)

# key-list kind -> module providing ``key_report(spec: dict) -> KeyReport``
KEY_REPORTERS = {"streamingt2v": st2v, "ms_vid2vid_xl_unet": msvid2vid, "stream_diffvsr": sdvsr}


def detect_key_list(spec: dict) -> str:
    if "entries" in spec and "num_params_by_prefix" in spec:
        return "streamingt2v"
    if "entries" in spec and any(e["key"].startswith("input_blocks.") for e in spec["entries"][:50]):
        return "ms_vid2vid_xl_unet"
    if {"unet", "controlnet", "vae"} <= spec.keys():
        return "stream_diffvsr"
    raise InputError("unrecognised key list: expected the StreamingT2V, MS-Vid2Vid-XL or Stream-DiffVSR format "
                     "of shared/specs/*_keys.json.")


def check_key_file(path: str | Path) -> list[KeyReport]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"key list not found: {path}")
    try:
        spec = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from exc
    module = KEY_REPORTERS[detect_key_list(spec)]
    reports = module.key_report(spec)
    return reports if isinstance(reports, list) else [reports]
