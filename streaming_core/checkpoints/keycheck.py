"""Key coverage: does our model, built at full size on the meta device, have exactly the official
state-dict keys and shapes once our key mapping is applied?

The official key lists in ``shared/specs/*_keys.json`` come in three formats; ``detect_key_list``
tells them apart and each model family provides ``key_report(spec) -> KeyReport``.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError

# key-list kind -> module providing ``key_report(spec: dict) -> KeyReport``
KEY_REPORTERS = {
    "streamingt2v": "streaming_core.checkpoints.st2v",
    "ms_vid2vid_xl_unet": "streaming_core.checkpoints.msvid2vid",
    "stream_diffvsr": "streaming_core.checkpoints.sdvsr",
}


@dataclass
class KeyReport:
    """Official keys vs the keys our mapping produces from our full-size model."""

    model: str
    expected: int
    missing: list[str] = field(default_factory=list)  # official keys our model does not provide
    unexpected: list[str] = field(default_factory=list)  # keys our model has that are not official
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # key, official, ours

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def lines(self, limit: int = 20) -> list[str]:
        out = [f"{self.model}: {self.expected} official entries"]
        for title, items in (("not mapped", self.missing), ("extra", self.unexpected)):
            if items:
                out.append(f"  {len(items)} {title}: " + ", ".join(items[:limit]) + (" ..." if len(items) > limit else ""))
        if self.mismatched:
            out.append(f"  {len(self.mismatched)} shape mismatches:")
            out += [f"    {k}: official {list(a)} vs ours {list(b)}" for k, a, b in self.mismatched[:limit]]
        mapped = self.expected - len(self.missing) - len(self.mismatched)
        out.append(f"  {mapped}/{self.expected} entries map exactly" + ("" if self.ok else " -> FAIL"))
        return out


def compare_shapes(model: str, official: dict[str, tuple], ours: dict[str, tuple]) -> KeyReport:
    report = KeyReport(model, len(official))
    report.missing = sorted(official.keys() - ours.keys())
    report.unexpected = sorted(ours.keys() - official.keys())
    report.mismatched = [(k, tuple(official[k]), tuple(ours[k])) for k in sorted(official.keys() & ours.keys())
                         if tuple(official[k]) != tuple(ours[k])]
    return report


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
    module = importlib.import_module(KEY_REPORTERS[detect_key_list(spec)])
    reports = module.key_report(spec)
    return reports if isinstance(reports, list) else [reports]
